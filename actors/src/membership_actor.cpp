#include "troupe/actors/membership_actor.hpp"

#include "troupe/actors/inventory.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"
#include "troupe/transport/wire.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

namespace troupe::actors {

namespace {

using rerr = runtime::errc;
using tick_atom = caf::atom_constant<caf::atom("mb_tick")>;
using peer_atom = caf::atom_constant<caf::atom("mb_peer")>;
using rejoin_atom = caf::atom_constant<caf::atom("mb_rejoin")>;

caf::error to_caf(const error& e) {
  return caf::make_error(caf::sec::invalid_argument, e.to_string());
}

/// Sends `tick_atom` to the actor every `interval` from a thread of its
/// own that holds only a weak handle. (CAF 0.17's clock keeps a strong
/// reference for every delayed message and request timeout until it
/// fires, and drops pending ones only after waiting for detached actors
/// at shutdown, so a detached actor that re-arms a timer could never be
/// destroyed.) The thread ends at the first tick after the actor is gone.
void start_ticker(caf::actor_addr weak, duration interval) {
  std::thread{[weak = std::move(weak), interval] {
    for (;;) {
      std::this_thread::sleep_for(interval);
      auto self = caf::actor_cast<caf::actor>(weak);
      if (!self) return;
      caf::anon_send(self, tick_atom::value);
    }
  }}.detach();
}

class membership_actor final : public actor {
public:
  membership_actor(caf::actor_config& cfg, transport::fabric* f,
                   membership_actor_config mc)
      : actor(cfg), fabric_(f), cfg_(std::move(mc)),
        table_(cfg_.membership, cfg_.head ? fabric_->node_id() : 0),
        incarnation_(fabric_->incarnation()), log_(logging::get("membership")) {}

  const char* name() const override { return "membership"; }

  behavior make_behavior() override {
    // Transport errors (and, on a worker, the head going away) as messages.
    // The listener holds a weak handle: it must not keep this actor alive.
    auto weak = caf::actor_cast<caf::actor_addr>(this);
    fabric_->watch_peers([weak](const transport::peer_info& p, const std::string& why) {
      if (p.up) return;
      if (auto self = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(self, peer_atom::value, p.node_id, p.node_name, why);
    });
    if (cfg_.head) {
      if (!cfg_.inventory_json.empty())
        inventories_[fabric_->node_id()] = cfg_.inventory_json;
      auto r = table_.join(fabric_->node_name(), fabric_->listen_address(), incarnation_,
                           clock().now());
      if (r)
        publish(*r);
      else
        log_->error("membership: the head cannot join its own table: {}",
                    r.err().to_string());
    }
    set_down_handler([this](caf::down_msg& d) {
      std::erase_if(subscribers_, [&](const caf::actor& a) { return a == d.source; });
    });
    start_ticker(weak, cfg_.head ? cfg_.membership.heartbeat_interval / 2
                                 : cfg_.membership.heartbeat_interval);
    send(this, tick_atom::value);
    return {
        [this](tick_atom) { on_tick(); },
        [this](peer_atom, uint64_t node, const std::string& name,
               const std::string& why) { on_peer_down(node, name, why); },
        [this](join_atom, const std::string& name, const std::string& address,
               uint64_t incarnation, const std::string& inventory) {
          // One way, answered with joined or refused (a request would
          // leave a timeout holding the worker's actor in CAF's clock).
          auto to = caf::actor_cast<caf::actor>(current_sender());
          if (!cfg_.head) {
            if (to) send(to, refused_atom::value, caf::to_string(not_head("join")));
            return;
          }
          if (!inventory.empty()) {
            auto inv = decode_inventory(inventory);
            if (!inv) {
              log_->warn("membership: join of {} refused: {}", name,
                         inv.err().to_string());
              if (to) send(to, refused_atom::value, inv.err().message());
              return;
            }
          }
          auto r = table_.join(name, address, incarnation, clock().now());
          if (!r) {
            if (to) send(to, refused_atom::value, r.err().message());
            return;
          }
          if (!inventory.empty()) inventories_[transport::node_id_of(name)] = inventory;
          publish(*r);
          if (to) send(to, joined_atom::value, members_json());
        },
        [this](joined_atom, const std::string& members) {
          if (cfg_.head || !joining_) return;
          joining_ = false;
          joined_ = true;
          last_members_ = members;
          if (head_) send(head_, heartbeat_atom::value, fabric_->node_id(), incarnation_);
          log_->info("membership: {} joined the cluster of head {} (incarnation {})",
                     fabric_->node_name(), cfg_.head_name, incarnation_);
        },
        [this](refused_atom, const std::string& why) {
          if (cfg_.head) return;
          joining_ = false;
          log_->warn("membership: join refused by head {}: {}", cfg_.head_name, why);
          if (why.find("rejoin with a higher incarnation") != std::string::npos ||
              why.find("is stale") != std::string::npos)
            ++incarnation_;
        },
        [this](heartbeat_atom, uint64_t node, uint64_t incarnation) {
          if (!cfg_.head) return;
          auto r = table_.heartbeat(node, incarnation, clock().now());
          if (r) {
            publish(*r);
            return;
          }
          // A generation the table no longer accepts (declared down, or
          // unknown after a head restart): the worker must join again.
          if (auto to = caf::actor_cast<caf::actor>(current_sender()))
            send(to, rejoin_atom::value, r.err().message());
        },
        [this](rejoin_atom, const std::string& why) {
          if (cfg_.head) return;
          log_->warn("membership: the head asks {} to join again: {}",
                     fabric_->node_name(), why);
          // A generation the head declared down comes back as a new one.
          if (why.find("rejoin with a higher incarnation") != std::string::npos ||
              why.find(" is down") != std::string::npos)
            ++incarnation_;
          joined_ = false;
        },
        [this](leave_atom, uint64_t node, uint64_t incarnation) -> caf::result<bool> {
          if (!cfg_.head) return not_head("leave");
          auto r = table_.leave(node, incarnation, clock().now());
          if (!r) return to_caf(r.err());
          publish(*r);
          return true;
        },
        [this](subscribe_atom, const caf::actor& who) -> std::string {
          monitor(who);
          subscribers_.push_back(who);
          return cfg_.head ? members_json() : last_members_;
        },
        [this](members_atom) -> std::string {
          return cfg_.head ? members_json() : last_members_;
        },
        [this](cordon_atom, const std::string& name) -> caf::result<bool> {
          return flag(name, &membership_table::cordon);
        },
        [this](uncordon_atom, const std::string& name) -> caf::result<bool> {
          return flag(name, &membership_table::uncordon);
        },
        [this](drain_atom, const std::string& name) -> caf::result<bool> {
          return flag(name, &membership_table::drain);
        },
        [this](pause_atom, int64_t ms) {
          paused_until_ = clock().now() + std::chrono::milliseconds{ms};
        },
    };
  }

private:
  caf::error not_head(const char* what) const {
    return caf::make_error(caf::sec::invalid_argument,
                           std::string{what} +
                               " goes to the head's membership actor, not "
                               "to worker " +
                               fabric_->node_name());
  }

  caf::result<bool> flag(const std::string& name,
                         result<membership_events> (membership_table::*op)(std::uint64_t,
                                                                           time_point)) {
    if (!cfg_.head) return not_head("cordon/drain");
    const member* m = table_.find(std::string_view{name});
    if (m == nullptr)
      return to_caf(error{errc::not_found, "no member named \"" + name + "\""});
    auto r = (table_.*op)(m->id, clock().now());
    if (!r) return to_caf(r.err());
    publish(*r);
    return true;
  }

  std::string members_json() const { return to_json(table_.members(), inventories_); }

  void on_tick() {
    auto now = clock().now();
    if (cfg_.head) {
      auto out = table_.tick(now);
      publish(out.events);
      return;
    }
    if (joining_ && now - joining_since_ > 10 * cfg_.membership.heartbeat_interval)
      joining_ = false; // no answer: try again
    if (!joined_) {
      try_join();
    } else if (now >= paused_until_ && head_) {
      send(head_, heartbeat_atom::value, fabric_->node_id(), incarnation_);
    }
  }

  /// Worker: connect to the head, find its membership actor, join. Blocks
  /// this (detached) actor's thread for at most the connect timeout.
  void try_join() {
    if (joining_) return;
    auto peer = fabric_->connect(cfg_.head_address);
    if (!peer) {
      log_->info("membership: head {} at {} not reachable yet: {}", cfg_.head_name,
                 cfg_.head_address, peer.err().to_string());
      return;
    }
    auto head =
        fabric_->lookup(cfg_.head_name, membership_actor_name, std::chrono::seconds{5});
    if (!head) {
      log_->info("membership: no membership actor on head {} yet: {}", cfg_.head_name,
                 head.err().to_string());
      return;
    }
    joining_ = true;
    joining_since_ = clock().now();
    head_ = head->handle();
    send(head_, join_atom::value, fabric_->node_name(), fabric_->listen_address(),
         incarnation_, cfg_.inventory_json);
  }

  void on_peer_down(uint64_t node, const std::string& name, const std::string& why) {
    if (!cfg_.head) {
      if (name == cfg_.head_name) {
        log_->warn("membership: lost head {} ({}); joining again", name, why);
        joined_ = false;
        head_ = caf::actor{};
      }
      return;
    }
    const member* m = table_.find(node);
    if (m == nullptr) return;
    auto r = table_.transport_error(node, m->incarnation, clock().now());
    if (r) publish(*r);
  }

  void publish(const membership_events& events) {
    for (const auto& e : events) {
      log_->info("membership: {} {} (incarnation {}){}", to_string(e.kind), e.name,
                 e.incarnation,
                 e.kind == event_kind::down
                     ? std::string{", "} + std::string{to_string(e.reason)}
                     : std::string{});
      auto text = to_json(e);
      for (const auto& s : subscribers_)
        send(s, event_atom::value, text);
    }
  }

  transport::fabric* fabric_;
  membership_actor_config cfg_;
  membership_table table_;
  uint64_t incarnation_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<caf::actor> subscribers_;
  std::map<uint64_t, std::string> inventories_; ///< head: reported resources by node id
  // worker
  caf::actor head_;
  bool joined_ = false;
  bool joining_ = false;
  time_point joining_since_{};
  std::string last_members_ = "[]";
  time_point paused_until_{};
};

} // namespace

std::string to_json(const membership_event& e) {
  nlohmann::json j{{"kind", to_string(e.kind)},
                   {"node", e.name},
                   {"id", e.node},
                   {"address", e.address},
                   {"incarnation", e.incarnation}};
  if (e.kind == event_kind::down) j["reason"] = to_string(e.reason);
  if (e.kind == event_kind::suspect) j["phi"] = e.phi;
  return j.dump();
}

std::string to_json(const std::vector<member>& members) {
  return to_json(members, {});
}

std::string to_json(const std::vector<member>& members,
                    const std::map<std::uint64_t, std::string>& inventories) {
  auto out = nlohmann::json::array();
  for (const auto& m : members) {
    nlohmann::json j{{"node", m.name},
                     {"id", m.id},
                     {"address", m.address},
                     {"incarnation", m.incarnation},
                     {"state", to_string(m.state)},
                     {"cordoned", m.cordoned},
                     {"draining", m.draining}};
    if (m.state == member_state::down) j["reason"] = to_string(m.reason);
    if (auto it = inventories.find(m.id); it != inventories.end())
      j["inventory"] = nlohmann::json::parse(it->second, nullptr, false);
    out.push_back(std::move(j));
  }
  return out.dump();
}

result<actor_ref> start_membership(node& n, transport::fabric& f,
                                   membership_actor_config cfg) {
  if (!cfg.head && (cfg.head_name.empty() || cfg.head_address.empty()))
    return error{rerr::invalid_argument,
                 "a worker's membership needs the head's name and address"};
  if (n.lookup(membership_actor_name).ok())
    return error{rerr::already_exists, "this node already runs a membership actor"};
  auto ref = n.adopt(
      actor_ref{n.system().spawn<membership_actor, caf::detached>(&f, std::move(cfg))});
  if (auto r = n.register_name(membership_actor_name, ref); !r) return std::move(r).err();
  return ref;
}

} // namespace troupe::actors
