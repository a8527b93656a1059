#include "troupe/actors/registry_actor.hpp"

#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/caf_error.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"
#include "troupe/transport/wire.hpp"

#include <caf/all.hpp>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

namespace troupe::actors {

namespace {

using rerr = runtime::errc;

caf::error to_caf(const error& e) {
  auto code = e.is(errc::conflict)    ? rerr::already_exists
              : e.is(errc::not_found) ? rerr::not_found
                                      : rerr::invalid_argument;
  return to_caf_error(code, e.message());
}

class registry_actor final : public actor {
public:
  registry_actor(caf::actor_config& cfg, transport::fabric* f, caf::actor membership)
      : actor(cfg), fabric_(f), membership_(std::move(membership)),
        log_(logging::get("registry")) {}

  const char* name() const override { return "registry"; }

  /// Drops the handles it holds when it ends. The membership actor holds
  /// this one as a subscriber and this one holds it: a terminated actor's
  /// members live until the object is destroyed, so the pair kept each
  /// other alive and the actor system waited for the (detached) membership
  /// actor's thread forever at shutdown. (Not done in the membership actor:
  /// its state is still needed while a graceful leave completes.)
  void on_exit() override {
    membership_ = caf::actor{};
    handles_.clear();
    watchers_.clear();
    actor::on_exit();
  }

  behavior make_behavior() override {
    send(membership_, subscribe_atom::value, caf::actor_cast<caf::actor>(this));
    set_down_handler([this](caf::down_msg& d) { on_down(d); });
    return {
        [](const std::string&) {
          // The membership snapshot that answers the subscription.
        },
        [this](event_atom, const std::string& text) { on_member_event(text); },
        [this](reg_put_atom, const std::string& name,
               const caf::actor& who) -> caf::result<bool> {
          if (!who)
            return to_caf(error{errc::invalid_argument, "registry: empty handle"});
          auto e = entry_of(name, who);
          if (auto r = names_.add(e); !r) return to_caf(r.err());
          handles_[key(e.node, e.actor)] = who;
          monitor(who);
          log_->info("registry: {} -> actor {} on {}", name, e.actor, node_name_of(who));
          return true;
        },
        [this](reg_del_atom, const std::string& name,
               const caf::actor& who) -> caf::result<bool> {
          auto e = entry_of(name, who);
          auto r = names_.remove(name, e.node, e.actor);
          if (!r) return to_caf(r.err());
          tell_watchers(*r);
          return true;
        },
        [this](reg_get_atom, const std::string& name) -> caf::result<caf::actor> {
          const auto* e = names_.find(name);
          if (e == nullptr)
            return to_caf(
                error{errc::not_found, "registry: no actor named \"" + name + "\""});
          auto it = handles_.find(key(e->node, e->actor));
          if (it == handles_.end())
            return to_caf(error{errc::not_found, "registry: \"" + name + "\" is gone"});
          return it->second;
        },
        [this](reg_watch_atom, const std::string& name,
               const caf::actor& watcher) -> bool {
          if (!watcher) return false;
          auto id = next_watcher_++;
          watchers_[id] = watcher;
          names_.watch(name, id);
          monitor(watcher);
          return true;
        },
        [this](reg_list_atom) -> std::string {
          auto out = nlohmann::json::array();
          for (const auto& e : names_.entries())
            out.push_back({{"name", e.name}, {"node", e.node}, {"actor", e.actor}});
          return out.dump();
        },
    };
  }

private:
  static std::pair<uint64_t, uint64_t> key(uint64_t node, uint64_t actor) {
    return {node, actor};
  }

  std::string node_name_of(const caf::actor& who) const {
    auto n = fabric_->node_of(actor_ref{who});
    return n.empty() ? fabric_->node_name() : n;
  }

  registry_entry entry_of(const std::string& name, const caf::actor& who) const {
    registry_entry e;
    e.name = name;
    e.node = transport::node_id_of(node_name_of(who));
    e.actor = who ? who.id() : 0;
    return e;
  }

  void tell_watchers(const registry_removal& r) {
    for (auto id : r.watchers) {
      auto it = watchers_.find(id);
      if (it == watchers_.end()) continue;
      send(it->second, reg_gone_atom::value, r.entry.name,
           std::string{to_string(r.reason)});
    }
  }

  void on_down(const caf::down_msg& d) {
    // A registered actor or a watcher exited.
    for (auto it = handles_.begin(); it != handles_.end();) {
      if (it->second.address() == d.source) {
        for (const auto& r : names_.actor_exited(it->first.first, it->first.second))
          tell_watchers(r);
        it = handles_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = watchers_.begin(); it != watchers_.end();) {
      if (it->second.address() == d.source) {
        names_.forget_watcher(it->first);
        it = watchers_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void on_member_event(const std::string& text) {
    auto e = nlohmann::json::parse(text, nullptr, false);
    if (!e.is_object() || !e.contains("kind") || !e.contains("id")) return;
    auto kind = e["kind"].get<std::string>();
    if (kind != "down" && kind != "left") return;
    auto node = e["id"].get<uint64_t>();
    auto why = kind == "down" ? removal_reason::node_down : removal_reason::node_left;
    for (const auto& r :
         names_.node_gone(node, std::numeric_limits<uint64_t>::max(), why)) {
      handles_.erase(key(r.entry.node, r.entry.actor));
      log_->info("registry: {} removed ({})", r.entry.name, to_string(r.reason));
      tell_watchers(r);
    }
  }

  transport::fabric* fabric_;
  caf::actor membership_;
  std::shared_ptr<spdlog::logger> log_;
  name_registry names_;
  std::map<std::pair<uint64_t, uint64_t>, caf::actor> handles_;
  std::map<uint64_t, caf::actor> watchers_;
  uint64_t next_watcher_ = 1;
};

} // namespace

result<actor_ref> start_registry(node& n, transport::fabric& f) {
  auto membership = n.lookup(membership_actor_name);
  if (!membership)
    return error{rerr::not_found, "start the membership actor before the registry"};
  if (n.lookup(registry_actor_name).ok())
    return error{rerr::already_exists, "this node already runs the registry"};
  auto ref = n.spawn<registry_actor>(&f, membership->handle());
  if (auto r = n.register_name(registry_actor_name, ref); !r) return std::move(r).err();
  return ref;
}

result<void> register_cluster_name(node& n, transport::fabric& f, std::string_view head,
                                   std::string name, const actor_ref& who,
                                   std::chrono::nanoseconds timeout) {
  auto reg = f.lookup(head, registry_actor_name, timeout);
  if (!reg) return std::move(reg).err();
  auto r =
      n.request<bool>(*reg, timeout, reg_put_atom::value, std::move(name), who.handle());
  if (!r) return std::move(r).err();
  return ok();
}

result<actor_ref> lookup_cluster_name(node& n, transport::fabric& f,
                                      std::string_view head, std::string name,
                                      std::chrono::nanoseconds timeout) {
  auto reg = f.lookup(head, registry_actor_name, timeout);
  if (!reg) return std::move(reg).err();
  auto r = n.request<caf::actor>(*reg, timeout, reg_get_atom::value, std::move(name));
  if (!r) return std::move(r).err();
  return actor_ref{*r};
}

} // namespace troupe::actors
