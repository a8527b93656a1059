#include "troupe/placement/placement_actor.hpp"

#include "troupe/placement/codec.hpp"
#include "troupe/placement/errc.hpp"
#include "troupe/placement/placer.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/store.hpp"

#include <caf/all.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

namespace troupe::placement {

const char* to_string(scorer_kind k) noexcept {
  switch (k) {
  case scorer_kind::best_fit:
    return "best_fit";
  case scorer_kind::fgd:
    return "fgd";
  case scorer_kind::fgd_simulator:
    return "fgd_simulator";
  case scorer_kind::troupe:
    return "troupe";
  }
  return "?";
}

result<scorer_kind> parse_scorer_kind(std::string_view s) {
  for (auto k : {scorer_kind::best_fit, scorer_kind::fgd, scorer_kind::fgd_simulator,
                 scorer_kind::troupe})
    if (s == to_string(k)) return k;
  return error{
      errc::invalid_argument,
      "placement.scorer: expected one of best_fit|fgd|fgd_simulator|troupe, got \"" +
          std::string(s) + "\""};
}

namespace {

using tick_atom = caf::atom_constant<caf::atom("pl_tick")>;

constexpr const char* cf_requests = "placement_requests";
constexpr const char* cf_allocations = "placement_allocations";
constexpr const char* cf_nodes = "placement_nodes";

/// A node that joined: rack 0 of the topology (a rack "default" when it
/// has none).
void append_node(cluster_topology& topo, node_spec n) {
  if (topo.racks.empty()) topo.racks.push_back(rack_spec{"default", 0, 1.0});
  n.rack = 0;
  topo.nodes.push_back(std::move(n));
}

std::string key_of(uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(id));
  return buf;
}

caf::error to_caf(const error& e) {
  return caf::make_error(caf::sec::invalid_argument, e.to_string());
}

class placement_actor final : public actor {
public:
  placement_actor(caf::actor_config& cfg, placement_actor_config pc)
      : actor(cfg), cfg_(std::move(pc)), state_(cfg_.topology), queue_(cfg_.policy),
        log_(logging::get("placement")) {
    bool have_mix = !cfg_.expected_mix.classes.empty();
    if (cfg_.scorer != scorer_kind::best_fit && !have_mix)
      log_->warn("placement: scorer {} needs an expected workload mix; using best fit",
                 to_string(cfg_.scorer));
    make_scorer();
  }

  void make_scorer() {
    scorer_.reset();
    if (!cfg_.expected_mix.classes.empty()) {
      if (cfg_.scorer == scorer_kind::fgd)
        scorer_ =
            std::make_unique<fgd_scorer>(state_, cfg_.expected_mix, fgd_score::gradient);
      else if (cfg_.scorer == scorer_kind::fgd_simulator)
        scorer_ =
            std::make_unique<fgd_scorer>(state_, cfg_.expected_mix, fgd_score::simulator);
      else if (cfg_.scorer == scorer_kind::troupe)
        scorer_ = std::make_unique<troupe_scorer>(state_, cfg_.expected_mix);
    }
    placer_ = placer{scorer_.get()}; // null: best fit
  }

  const char* name() const override { return "placement"; }

  behavior make_behavior() override {
    if (auto* sv = services()) {
      auto& reg = sv->registry();
      m_pending_ = &reg.get_gauge("troupe_placement_pending_requests",
                                  "Requests waiting for placement");
      m_allocated_ = &reg.get_gauge("troupe_placement_allocated_gpu_milli",
                                    "GPU capacity allocated, in milli-GPUs");
      m_total_ = &reg.get_gauge("troupe_placement_total_gpu_milli",
                                "GPU capacity of the cluster, in milli-GPUs");
      m_placed_ = &reg.get_counter("troupe_placement_placed_total", "Requests placed");
      m_preempt_ =
          &reg.get_counter("troupe_placement_preemption_plans_total",
                           "Scheduling passes that asked for victims to be evicted");
      m_pass_ = &reg.get_histogram("troupe_placement_pass_seconds",
                                   "Time of one scheduling pass",
                                   metrics::histogram::default_latency_buckets());
      if (!cfg_.expected_mix.classes.empty())
        m_frag_ =
            &reg.get_gauge("troupe_placement_fragmentation_rate",
                           "Expected fragmentation over free GPU capacity (FGD measure)");
      m_total_->set(static_cast<double>(state_.total_gpu_milli()));
    }
    if (!cfg_.store_path.empty()) {
      runtime::store_options so;
      so.path = cfg_.store_path;
      so.column_families = {cf_requests, cf_allocations, cf_nodes};
      auto s = runtime::store::open(so);
      if (!s.ok()) {
        log_->error("placement: cannot open store: {}", s.err().to_string());
        quit(caf::make_error(caf::sec::runtime_error, s.err().to_string()));
        return {};
      }
      store_ = std::move(*s);
      recover();
      run_pass();
    }
    delayed_send(this, cfg_.schedule_interval, tick_atom::value);
    return {
        [this](submit_atom, const std::string& text) -> caf::result<uint64_t> {
          auto req = decode_request(text);
          if (!req.ok()) return to_caf(req.err());
          req->id = request_id{next_request_++};
          req->submitted = clock().now();
          if (store_) {
            if (auto w = store_->put(cf_requests, key_of(req->id.value()), encode(*req));
                !w.ok())
              return to_caf(w.err());
          }
          auto id = req->id.value();
          if (auto r = queue_.submit(std::move(*req)); !r.ok()) return to_caf(r.err());
          run_pass();
          return id;
        },
        [this](release_atom, uint64_t id) -> caf::result<bool> {
          queue_.charge(state_, clock().now());
          auto r = state_.release(allocation_id{id});
          if (!r.ok()) return to_caf(r.err());
          if (store_) {
            if (auto w = store_->erase(cf_allocations, key_of(id)); !w.ok())
              log_->error("placement: release of {} not persisted: {}", id,
                          w.err().to_string());
          }
          run_pass();
          return true;
        },
        [this](checkpoint_atom, uint64_t id, int64_t at_ns) -> caf::result<bool> {
          auto r =
              state_.update_checkpoint(allocation_id{id}, time_point{duration{at_ns}});
          if (!r.ok()) return to_caf(r.err());
          if (store_) {
            if (auto* a = state_.find(allocation_id{id})) {
              if (auto w = store_->put(cf_allocations, key_of(id), encode(*a)); !w.ok())
                log_->error("placement: checkpoint of {} not persisted: {}", id,
                            w.err().to_string());
            }
          }
          return true;
        },
        [this](node_up_atom, const std::string& text) -> caf::result<bool> {
          auto spec = decode_node_spec(text);
          if (!spec.ok()) return to_caf(spec.err());
          if (auto r = node_up(std::move(*spec)); !r.ok()) return to_caf(r.err());
          run_pass();
          return true;
        },
        [this](node_down_atom, const std::string& name) -> caf::result<bool> {
          auto n = state_.topology().find_node(name);
          if (!n.ok()) return to_caf(n.err());
          state_.set_schedulable(*n, false);
          return true;
        },
        [this](release_bundle_atom, uint64_t id, uint32_t bundle) -> caf::result<bool> {
          queue_.charge(state_, clock().now());
          auto r = state_.release_bundle(allocation_id{id}, bundle);
          if (!r.ok()) return to_caf(r.err());
          if (store_) {
            auto w = r->plan.bundles.empty()
                         ? store_->erase(cf_allocations, key_of(id))
                         : store_->put(cf_allocations, key_of(id), encode(*r));
            if (!w.ok())
              log_->error("placement: release of a bundle of {} not persisted: {}", id,
                          w.err().to_string());
          }
          run_pass();
          return true;
        },
        [this](why_atom, uint64_t id) { return why(request_id{id}); },
        [this](status_atom) { return status(); },
        [this](subscribe_atom, const caf::actor& who) {
          subscribers_.push_back(who);
          return true;
        },
        [this](tick_atom) {
          run_pass();
          delayed_send(this, cfg_.schedule_interval, tick_atom::value);
        },
    };
  }

private:
  /// Adds or revives a node; rebuilds the state (allocations restored) when
  /// the topology changes.
  result<void> node_up(node_spec spec) {
    auto topo = state_.topology();
    auto known = topo.find_node(spec.name);
    if (known.ok()) {
      auto& old = topo.nodes[known->value()];
      spec.rack = old.rack;
      bool same = encode(old) == encode(spec);
      if (same) {
        state_.set_schedulable(*known, true);
        return {};
      }
      old = std::move(spec);
    } else {
      append_node(topo, std::move(spec));
    }
    if (auto v = topo.validate(); !v.ok()) return v;
    auto idx = known.ok() ? known->value() : static_cast<uint32_t>(topo.nodes.size() - 1);
    if (store_) {
      if (auto w = store_->put(cf_nodes, key_of(idx), encode(topo.nodes[idx])); !w.ok())
        return w;
    }
    rebuild(std::move(topo), idx);
    return {};
  }

  /// A new state over `topo` with every allocation restored and every
  /// node's schedulable flag kept (node `up` is schedulable).
  void rebuild(cluster_topology topo, uint32_t up) {
    cluster_state next(std::move(topo));
    // Allocations first: restoring checks that their nodes are schedulable.
    for (auto& [id, a] : state_.allocations())
      if (auto r = next.restore(a); !r.ok())
        log_->error("placement: allocation {} no longer fits after a node change: {}",
                    id.value(), r.err().to_string());
    for (uint32_t n = 0; n < state_.node_count(); ++n)
      next.set_schedulable(node_id{n}, state_.state(node_id{n}).schedulable);
    next.set_schedulable(node_id{up}, true);
    state_ = std::move(next);
    make_scorer();
    if (m_total_ != nullptr) m_total_->set(static_cast<double>(state_.total_gpu_milli()));
  }

  void recover() {
    uint64_t max_id = 0;
    size_t requests = 0, allocations = 0, dropped = 0;
    // Nodes first (allocations name them by index); they come back
    // unschedulable until they are up again.
    cluster_topology topo = state_.topology();
    size_t base = topo.nodes.size();
    std::vector<node_spec> stored;
    auto r0 = store_->scan(cf_nodes, "", [&](std::string_view, std::string_view v) {
      auto n = decode_node_spec(v);
      if (!n.ok()) {
        log_->error("placement: stored node unreadable, skipped: {}",
                    n.err().to_string());
        return true;
      }
      stored.push_back(std::move(*n));
      return true;
    });
    if (!r0.ok())
      log_->error("placement: reading nodes failed: {}", r0.err().to_string());
    for (auto& n : stored)
      if (!topo.find_node(n.name).ok()) append_node(topo, std::move(n));
    size_t restored_nodes = 0;
    if (topo.nodes.size() > base && topo.validate().ok()) {
      state_ = cluster_state(std::move(topo));
      restored_nodes = state_.node_count();
      make_scorer();
    }
    auto r1 = store_->scan(cf_allocations, "", [&](std::string_view, std::string_view v) {
      auto a = decode_allocation(v);
      if (!a.ok()) {
        log_->error("placement: stored allocation unreadable, skipped: {}",
                    a.err().to_string());
        ++dropped;
        return true;
      }
      max_id = std::max(max_id, a->request.id.value());
      if (auto r = state_.restore(*a); !r.ok()) {
        log_->error("placement: stored allocation {} no longer fits the cluster: {}",
                    a->id.value(), r.err().to_string());
        ++dropped;
      } else {
        ++allocations;
      }
      return true;
    });
    auto r2 = store_->scan(cf_requests, "", [&](std::string_view, std::string_view v) {
      auto q = decode_request(v);
      if (!q.ok()) {
        log_->error("placement: stored request unreadable, skipped: {}",
                    q.err().to_string());
        ++dropped;
        return true;
      }
      max_id = std::max(max_id, q->id.value());
      if (queue_.submit(std::move(*q)).ok()) ++requests;
      return true;
    });
    if (!r1.ok() || !r2.ok())
      log_->error("placement: reading the store failed: {}",
                  (!r1.ok() ? r1.err() : r2.err()).to_string());
    // Stored nodes wait for their node_up (allocations restored above,
    // while every node was schedulable).
    for (size_t i = base; i < restored_nodes; ++i)
      state_.set_schedulable(node_id{static_cast<uint32_t>(i)}, false);
    next_request_ = max_id + 1;
    log_->info("placement: recovered {} allocations and {} pending requests ({} dropped)",
               allocations, requests, dropped);
  }

  void run_pass() {
    auto now = clock().now();
    auto t0 = std::chrono::steady_clock::now();
    auto res = queue_.schedule(state_, placer_, now);
    if (m_pass_ != nullptr) {
      m_pass_->observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      m_placed_->inc(res.placed.size());
      if (res.preemption) m_preempt_->inc();
      m_pending_->set(static_cast<double>(res.pending.size()));
      m_allocated_->set(static_cast<double>(state_.allocated_gpu_milli()));
      if (m_frag_ != nullptr) m_frag_->set(fragmentation_rate(state_, cfg_.expected_mix));
    }
    for (auto& p : res.placed) {
      const auto* a = state_.find(p.allocation);
      if (a == nullptr) continue;
      auto text = encode(*a);
      if (store_) {
        runtime::write_batch batch;
        batch.put(cf_allocations, key_of(p.allocation.value()), text);
        batch.erase(cf_requests, key_of(p.request.value()));
        if (auto w = store_->write(std::move(batch)); !w.ok())
          log_->error("placement: allocation {} not persisted: {}", p.allocation.value(),
                      w.err().to_string());
      }
      if (subscribers_.empty()) continue;
      // Subscribers get the node names too (the stored form names nodes by
      // index only).
      auto doc = nlohmann::json::parse(text);
      auto names = nlohmann::json::array();
      for (auto& b : a->plan.bundles)
        names.push_back(state_.spec(b.node).name);
      doc["node_names"] = std::move(names);
      auto named = doc.dump();
      for (auto& s : subscribers_)
        send(s, placed_atom::value, p.request.value(), p.allocation.value(), named);
    }
    why_.clear();
    for (auto& p : res.pending)
      why_[p.request.value()] = p.why;
    if (res.preemption) {
      nlohmann::json victims = nlohmann::json::array();
      for (auto& v : res.preemption->victims)
        victims.push_back({{"allocation", v.allocation.value()},
                           {"request", v.request.value()},
                           {"tenant", v.tenant},
                           {"lost_gpu_seconds", v.lost_gpu_seconds},
                           {"reclaim", v.reclaim}});
      nlohmann::json plan = {{"incoming", res.preemption->incoming.value()},
                             {"victims", std::move(victims)},
                             {"lost_gpu_seconds", res.preemption->lost_gpu_seconds}};
      for (auto& s : subscribers_)
        send(s, preempt_atom::value, plan.dump());
    }
  }

  std::string why(request_id id) const {
    auto it = why_.find(id.value());
    if (it != why_.end()) return "pending: " + it->second;
    for (auto& [aid, a] : state_.allocations()) {
      if (a.request.id != id) continue;
      std::string nodes;
      for (auto& b : a.plan.bundles) {
        auto& name = state_.spec(b.node).name;
        if (nodes.find(name) == std::string::npos)
          nodes += (nodes.empty() ? "" : ",") + name;
      }
      return "running as allocation " + std::to_string(aid.value()) + " on " + nodes;
    }
    for (auto& q : queue_.pending())
      if (q.id == id) return "pending: waiting for the next scheduling pass";
    return "unknown request " + std::to_string(id.value());
  }

  std::string status() const {
    nlohmann::json allocs = nlohmann::json::array();
    for (auto& [id, a] : state_.allocations())
      allocs.push_back({{"allocation", id.value()},
                        {"request", a.request.id.value()},
                        {"tenant", a.request.tenant}});
    nlohmann::json pending = nlohmann::json::array();
    for (auto& [id, w] : why_)
      pending.push_back({{"request", id}, {"why", w}});
    nlohmann::json j = {{"total_gpu_milli", state_.total_gpu_milli()},
                        {"allocated_gpu_milli", state_.allocated_gpu_milli()},
                        {"allocations", std::move(allocs)},
                        {"pending", std::move(pending)}};
    return j.dump();
  }

  placement_actor_config cfg_;
  cluster_state state_;
  scheduling_queue queue_;
  std::unique_ptr<scorer> scorer_; // null: best fit
  placer placer_;
  metrics::gauge* m_pending_ = nullptr;
  metrics::gauge* m_allocated_ = nullptr;
  metrics::gauge* m_total_ = nullptr;
  metrics::gauge* m_frag_ = nullptr;
  metrics::counter* m_placed_ = nullptr;
  metrics::counter* m_preempt_ = nullptr;
  metrics::histogram* m_pass_ = nullptr;
  std::unique_ptr<runtime::store> store_;
  std::vector<caf::actor> subscribers_;
  std::map<uint64_t, std::string> why_;
  uint64_t next_request_ = 1;
  std::shared_ptr<spdlog::logger> log_;
};

} // namespace

actor_ref spawn_placement_actor(caf::actor_system& sys, placement_actor_config cfg) {
  return actor_ref{sys.spawn<placement_actor, caf::detached>(std::move(cfg))};
}

} // namespace troupe::placement
