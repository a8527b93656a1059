#include "troupe/actors/membership_actor.hpp"

#include "ticker.hpp"
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
using probe_atom = caf::atom_constant<caf::atom("mb_probe")>;
using probe_result_atom = caf::atom_constant<caf::atom("mb_presult")>;
using ping_atom = caf::atom_constant<caf::atom("mb_ping")>;
using pong_atom = caf::atom_constant<caf::atom("mb_pong")>;

caf::error to_caf(const error& e) {
  return caf::make_error(caf::sec::invalid_argument, e.to_string());
}

/// A node's first membership incarnation: microseconds since the epoch at
/// start (Cassandra's "generation"), so a restarted node always comes back
/// higher than its previous life, which the table requires.
uint64_t start_generation() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return us > 0 ? static_cast<uint64_t>(us) : 1;
}

class membership_actor final : public actor {
public:
  membership_actor(caf::actor_config& cfg, transport::fabric* f,
                   membership_actor_config mc)
      : actor(cfg), fabric_(f), cfg_(std::move(mc)),
        table_(cfg_.membership, cfg_.head ? fabric_->node_id() : 0),
        incarnation_(start_generation()), log_(logging::get("membership")) {}

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
    detail::start_ticker(weak,
                         cfg_.head ? cfg_.membership.heartbeat_interval / 2
                                   : cfg_.membership.heartbeat_interval,
                         tick_atom::value);
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
          auto id = transport::node_id_of(name);
          if (!inventory.empty()) inventories_[id] = inventory;
          if (to) member_refs_[id] = to; // probes and events go to it
          publish(*r);
          if (to) send(to, joined_atom::value, members_json());
        },
        [this](joined_atom, const std::string& members) {
          if (cfg_.head || !joining_) return;
          joining_ = false;
          joined_ = true;
          last_members_ = members;
          learn_members(members);
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
        [this](leave_atom) -> caf::result<bool> {
          // Local trigger on a worker: leave gracefully (the daemon's
          // shutdown). Answered when the head confirms.
          if (cfg_.head || !joined_ || !head_) return false;
          leaving_ = make_response_promise<bool>();
          left_ = true; // no more heartbeats
          send(head_, leave_atom::value, fabric_->node_id(), incarnation_);
          return leaving_;
        },
        [this](bool confirmed) {
          // The head's answer to our leave.
          if (leaving_.pending()) leaving_.deliver(confirmed);
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
        [this](event_atom, const std::string& text) {
          // A worker hears the head's events: they keep its mesh current.
          if (!cfg_.head) on_member_event(text);
        },
        [this](probe_atom, uint64_t target, uint64_t incarnation) {
          if (!cfg_.head) start_probe(target, incarnation);
        },
        [this](probe_result_atom, uint64_t prober, uint64_t target, uint64_t incarnation,
               bool reached) {
          if (!cfg_.head) return;
          auto r =
              table_.probe_result(prober, target, incarnation, reached, clock().now());
          if (r) publish(*r);
        },
        [this](ping_atom, uint64_t seq) {
          // A paused node (the test hook) answers nothing, like a stopped one.
          if (clock().now() < paused_until_) return;
          if (auto to = caf::actor_cast<caf::actor>(current_sender()))
            send(to, pong_atom::value, seq);
        },
        [this](pong_atom, uint64_t seq) {
          auto it = probes_.find(seq);
          if (it == probes_.end()) return;
          report_probe(it->second, true);
          probes_.erase(it);
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

  /// The table, with each member's inventory and, for members this node
  /// has a live connection to, the UCX lanes of that connection (how a
  /// test asserts the transport between nodes, and `troupe nodes` shows it).
  std::string members_json() const {
    auto text = to_json(table_.members(), inventories_);
    std::map<uint64_t, std::vector<std::string>> lanes;
    for (const auto& p : fabric_->peers())
      if (p.up) lanes[p.node_id] = p.transports;
    if (lanes.empty()) return text;
    auto j = nlohmann::json::parse(text);
    for (auto& m : j)
      if (auto it = lanes.find(m["id"].get<uint64_t>()); it != lanes.end())
        m["transports"] = it->second;
    return j.dump();
  }

  void on_tick() {
    auto now = clock().now();
    if (cfg_.head) {
      auto out = table_.tick(now);
      publish(out.events);
      for (const auto& pr : out.probes)
        for (auto prober : pr.probers) {
          auto it = member_refs_.find(prober);
          if (it != member_refs_.end()) {
            send(it->second, probe_atom::value, pr.target, pr.incarnation);
          } else {
            auto r = table_.probe_result(prober, pr.target, pr.incarnation, false, now);
            if (r) publish(*r);
          }
        }
      return;
    }
    if (joining_ && now - joining_since_ > 10 * cfg_.membership.heartbeat_interval)
      joining_ = false; // no answer: try again
    if (!joined_) {
      try_join();
      return;
    }
    if (now < paused_until_ || left_) return;
    if (head_) send(head_, heartbeat_atom::value, fabric_->node_id(), incarnation_);
    for (auto it = probes_.begin(); it != probes_.end();) {
      if (now >= it->second.deadline) {
        report_probe(it->second, false);
        it = probes_.erase(it);
      } else {
        ++it;
      }
    }
    mesh_step();
  }

  // -- worker: the mesh of members, for probes ----------------------------------

  struct mesh_member {
    std::string name;
    std::string address;
    caf::actor membership; ///< its membership actor, once found
  };
  struct pending_probe {
    uint64_t target = 0;
    uint64_t incarnation = 0;
    time_point deadline{};
  };

  void learn_members(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_array()) return;
    for (const auto& m : j) {
      if (!m.is_object() || !m.contains("id") || !m.contains("node") ||
          !m.contains("address") || !m.contains("state"))
        continue;
      auto state = m["state"].get<std::string>();
      add_mesh(m["id"].get<uint64_t>(), m["node"].get<std::string>(),
               m["address"].get<std::string>(), state == "up" || state == "joining");
    }
  }

  void on_member_event(const std::string& text) {
    auto e = nlohmann::json::parse(text, nullptr, false);
    if (!e.is_object() || !e.contains("kind") || !e.contains("id")) return;
    auto kind = e["kind"].get<std::string>();
    auto id = e["id"].get<uint64_t>();
    if (kind == "down" || kind == "left") {
      mesh_.erase(id);
    } else if (kind == "joined" || kind == "rejoined" || kind == "up") {
      add_mesh(id, e.value("node", std::string{}), e.value("address", std::string{}),
               true);
    }
  }

  void add_mesh(uint64_t id, const std::string& name, const std::string& address,
                bool live) {
    if (id == fabric_->node_id() || name == cfg_.head_name || name.empty()) return;
    if (!live) {
      mesh_.erase(id);
      return;
    }
    auto& m = mesh_[id];
    m.name = name;
    m.address = address;
  }

  /// One step per tick: connect to (smaller id dials larger, so two nodes
  /// never dial each other at once) or find the membership actor of one
  /// member. Blocks at most two short timeouts, after the heartbeat left.
  void mesh_step() {
    using namespace std::chrono_literals;
    for (auto& [id, m] : mesh_) {
      if (m.membership) continue;
      bool connected = false;
      for (const auto& p : fabric_->peers())
        connected = connected || (p.up && p.node_name == m.name);
      if (!connected) {
        if (fabric_->node_id() > id) continue; // it dials us
        auto r = fabric_->connect(m.address, cfg_.membership.probe_timeout);
        if (!r) {
          log_->debug("membership: mesh connect to {} failed: {}", m.name,
                      r.err().to_string());
          return;
        }
      }
      auto ref =
          fabric_->lookup(m.name, membership_actor_name, cfg_.membership.probe_timeout);
      if (ref) m.membership = ref->handle();
      return;
    }
  }

  void start_probe(uint64_t target, uint64_t incarnation) {
    pending_probe p{target, incarnation, clock().now() + cfg_.membership.probe_timeout};
    auto it = mesh_.find(target);
    if (it == mesh_.end() || !it->second.membership) {
      report_probe(p, false); // no way to reach it from here
      return;
    }
    auto seq = ++probe_seq_;
    probes_[seq] = p;
    send(it->second.membership, ping_atom::value, seq);
  }

  void report_probe(const pending_probe& p, bool reached) {
    if (head_)
      send(head_, probe_result_atom::value, fabric_->node_id(), p.target, p.incarnation,
           reached);
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
      // Workers keep their mesh current from the same events.
      for (const auto& [id, ref] : member_refs_)
        if (id != e.node) send(ref, event_atom::value, text);
      if (e.kind == event_kind::down || e.kind == event_kind::left)
        member_refs_.erase(e.node);
    }
  }

  transport::fabric* fabric_;
  membership_actor_config cfg_;
  membership_table table_;
  uint64_t incarnation_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<caf::actor> subscribers_;
  std::map<uint64_t, std::string> inventories_; ///< head: reported resources by node id
  std::map<uint64_t, caf::actor> member_refs_;  ///< head: workers' membership actors
  // worker: mesh and probes
  std::map<uint64_t, mesh_member> mesh_;
  std::map<uint64_t, pending_probe> probes_;
  uint64_t probe_seq_ = 0;
  // worker
  caf::actor head_;
  bool joined_ = false;
  bool joining_ = false;
  time_point joining_since_{};
  std::string last_members_ = "[]";
  time_point paused_until_{};
  bool left_ = false;                         ///< worker: left gracefully
  caf::typed_response_promise<bool> leaving_; ///< worker: the leave in progress
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
