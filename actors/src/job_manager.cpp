#include "troupe/actors/job_manager.hpp"

#include "ticker.hpp"
#include "troupe/actors/errc.hpp"
#include "troupe/actors/finops_actor.hpp"
#include "troupe/actors/inventory.hpp"
#include "troupe/actors/job_table.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/actors/node_agent.hpp"
#include "troupe/placement/codec.hpp"
#include "troupe/placement/placement_actor.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/store.hpp"
#include "troupe/transport/fabric.hpp"

#include <caf/all.hpp>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

namespace troupe::actors {
namespace {

using tick_atom = caf::atom_constant<caf::atom("jm_tick")>;
using json = nlohmann::json;

constexpr const char* cf_jobs = "jobs";
constexpr const char* cf_meta = "jobs_meta";

/// Wall-clock time in the clock's type: records outlive the process.
time_point wall_now() {
  return time_point{std::chrono::duration_cast<duration>(
      std::chrono::system_clock::now().time_since_epoch())};
}

std::string error_json(std::string_view code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

std::string error_json(const error& e) {
  std::string code = "internal";
  if (e.code().category() == actors_category())
    code = actors_category().message(e.code().value());
  else if (e.code() == runtime::errc::invalid_argument)
    code = "invalid_argument";
  else if (e.code() == runtime::errc::not_found)
    code = "not_found";
  else if (e.code() == runtime::errc::timeout)
    code = "timeout";
  else if (e.code() == runtime::errc::unavailable)
    code = "unavailable";
  return error_json(code, e.message());
}

int64_t wall_ms(time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch())
      .count();
}

bool holds(replica_state s) {
  return s == replica_state::starting || s == replica_state::running;
}

uint64_t job_number(const std::string& id) {
  try {
    return id.rfind("j-", 0) == 0 ? std::stoull(id.substr(2)) : 0;
  } catch (...) {
    return 0;
  }
}

class job_manager final : public actor {
public:
  job_manager(caf::actor_config& cfg, job_manager_config c,
              std::unique_ptr<runtime::store> store)
      : actor(cfg), cfg_(std::move(c)), store_(std::move(store)),
        log_(logging::get("jobs")) {}

  const char* name() const override { return "job_manager"; }

  behavior make_behavior() override {
    if (auto* sv = services()) {
      auto& reg = sv->registry();
      m_jobs_ = &reg.get_gauge("troupe_jobs_active", "Jobs pending or running");
      m_submitted_ = &reg.get_counter("troupe_jobs_submitted_total", "Jobs submitted");
      m_launches_ = &reg.get_counter("troupe_replica_launches_total", "Replica launches");
    }
    recover();
    auto self = caf::actor_cast<caf::actor>(this);
    // Stray messages (answers nobody waits for, a peer's mistake) are
    // logged and dropped, never fatal.
    set_default_handler([this](caf::scheduled_actor* self,
                               caf::message_view& m) -> caf::result<caf::message> {
      log_->warn("jobs: dropped an unexpected message: {}",
                 caf::to_string(m.copy_content_to_message()));
      return answer_unhandled(self);
    });
    request(cfg_.placement, std::chrono::seconds{10}, placement::subscribe_atom::value,
            self)
        .then([](bool) {},
              [this](caf::error& e) {
                log_->error("jobs: cannot subscribe to placement: {}", caf::to_string(e));
              });
    request(cfg_.membership, std::chrono::seconds{10}, subscribe_atom::value, self)
        .then([this](const std::string& members) { on_members(members); },
              [this](caf::error& e) {
                log_->error("jobs: cannot subscribe to membership: {}",
                            caf::to_string(e));
              });
    detail::start_ticker(caf::actor_cast<caf::actor_addr>(this), cfg_.tick,
                         tick_atom::value);
    return {
        [this](jm_submit_atom, const std::string& tenant, const std::string& spec_json)
            -> caf::result<std::string> { return submit(tenant, spec_json); },
        [this](jm_list_atom, const std::string& tenant, bool admin, uint32_t limit,
               const std::string& after) { return list(tenant, admin, limit, after); },
        [this](jm_get_atom, const std::string& tenant, bool admin,
               const std::string& id) -> caf::result<std::string> {
          auto* j = visible(tenant, admin, id);
          if (j == nullptr) return error_json("not_found", "no job " + id);
          auto doc = json::parse(job_json(*j));
          // A replica waiting for placement: say why (placement's words).
          uint64_t waiting = 0;
          for (auto& r : j->replicas)
            if (r.state == replica_state::pending && r.request != 0) waiting = r.request;
          if (waiting == 0) return json{{"job", std::move(doc)}}.dump();
          auto rp = make_response_promise<std::string>();
          request(placement(), std::chrono::seconds{5}, placement::why_atom::value,
                  waiting)
              .then(
                  [rp, doc](const std::string& why) mutable {
                    doc["why_pending"] = why;
                    rp.deliver(json{{"job", std::move(doc)}}.dump());
                  },
                  [rp, doc](caf::error&) mutable {
                    rp.deliver(json{{"job", std::move(doc)}}.dump());
                  });
          return rp;
        },
        [this](jm_cancel_atom, const std::string& tenant, bool admin,
               const std::string& id) {
          auto* j = visible(tenant, admin, id);
          if (j == nullptr) return error_json("not_found", "no job " + id);
          std::vector<job_command> out;
          (void)table_.cancel(id, wall_now(), out);
          commit(std::move(out));
          return json{{"job", json::parse(job_json(*table_.find(id)))}}.dump();
        },
        [this](jm_logs_atom, const std::string& tenant, bool admin, const std::string& id,
               uint32_t replica, uint8_t stream, uint64_t offset,
               uint32_t max_bytes) -> caf::result<std::string> {
          return logs(tenant, admin, id, replica, stream, offset, max_bytes);
        },
        [this](placement::placed_atom, uint64_t request, uint64_t allocation,
               const std::string& text) { on_placed(request, allocation, text); },
        [](placement::preempt_atom, const std::string&) {
          // Preemption of running jobs is the FinOps/priority work's.
        },
        [this](event_atom, const std::string& text) { on_member_event(text); },
        [this](agent_event_atom, const std::string& text) { on_agent_event(text); },
        [this](tick_atom) { on_tick(); },
        [this](jm_allocs_atom, uint64_t after) { return allocs(after); },
        [this](jm_reclaim_atom, const std::string& job, const std::string& action,
               const std::string& reason) { return reclaim(job, action, reason); },
        [this](jm_vacate_atom, const std::string& node, const std::string& plan) {
          return vacate(node, plan);
        },
    };
  }

private:
  // -- durability -------------------------------------------------------------------

  void recover() {
    if (!store_) return;
    size_t loaded = 0;
    if (auto m = store_->get(cf_meta, "counters"); m.ok() && m->has_value())
      if (auto r = table_.restore_meta(**m); !r.ok())
        log_->error("jobs: stored counters unreadable: {}", r.err().to_string());
    auto r = store_->scan(cf_jobs, "", [&](std::string_view, std::string_view v) {
      auto j = decode_job(v);
      if (!j.ok()) {
        log_->error("jobs: stored job unreadable, skipped: {}", j.err().to_string());
        return true;
      }
      (void)table_.restore_job(std::move(*j));
      ++loaded;
      return true;
    });
    if (!r.ok()) log_->error("jobs: reading the store failed: {}", r.err().to_string());
    recovered_at_ = wall_now();
    recovering_ = loaded > 0;
    for (auto& [id, j] : table_.jobs())
      note_launches(j, recovered_at_);
    // Requests never acknowledged are made again (an orphan request placed
    // later is released).
    std::vector<job_command> out;
    table_.place_unacknowledged(out);
    log_->info("jobs: recovered {} jobs", loaded);
    if (!out.empty()) execute(std::move(out));
  }

  /// Persists what changed, then carries out the commands.
  void commit(std::vector<job_command> out) {
    persist();
    execute(std::move(out));
  }

  void persist() {
    auto dirty = table_.take_dirty();
    if (dirty.empty()) return;
    auto now = wall_now();
    for (auto& id : dirty)
      if (const auto* j = table_.find(id)) note_launches(*j, now);
    if (m_jobs_ != nullptr) {
      size_t active = 0;
      for (auto& [id, j] : table_.jobs())
        active += is_final(j.state) ? 0 : 1;
      m_jobs_->set(static_cast<double>(active));
    }
    if (!store_) return;
    runtime::write_batch b;
    for (auto& id : dirty)
      if (const auto* j = table_.find(id)) b.put(cf_jobs, id, encode_job(*j));
    b.put(cf_meta, "counters", table_.meta_json());
    if (auto w = store_->write(std::move(b)); !w.ok())
      log_->error("jobs: state not persisted: {}", w.err().to_string());
  }

  // -- commands ---------------------------------------------------------------------

  void execute(std::vector<job_command> cmds) {
    std::deque<job_command> queue(std::make_move_iterator(cmds.begin()),
                                  std::make_move_iterator(cmds.end()));
    while (!queue.empty()) {
      auto c = std::move(queue.front());
      queue.pop_front();
      std::vector<job_command> more;
      switch (c.what) {
      case job_command::kind::place:
        place(c);
        break;
      case job_command::kind::launch:
        launch_replica(c, more);
        break;
      case job_command::kind::stop:
        if (auto a = agent(c.node))
          tell(*a, agent_stop_atom::value, c.job, c.replica.value_or(0), c.generation);
        break;
      case job_command::kind::release_bundle:
        request(placement(), std::chrono::seconds{10},
                placement::release_bundle_atom::value, c.allocation, c.bundle)
            .then([](bool) {},
                  [this, c](caf::error& e) {
                    log_->warn("jobs: release of allocation {} bundle {}: {}",
                               c.allocation, c.bundle, caf::to_string(e));
                  });
        break;
      case job_command::kind::checkpoint:
        periodic_checkpoint(c);
        break;
      }
      if (!more.empty()) {
        persist();
        for (auto& m : more)
          queue.push_back(std::move(m));
      }
    }
  }

  const actor_ref& placement() const { return cfg_.placement; }

  void place(const job_command& c) {
    auto job = c.job;
    auto replica = c.replica;
    // await: the placement actor announces a placement (placed_atom) before
    // it answers the submit; the answer must reach the table first.
    request(placement(), std::chrono::seconds{10}, placement::submit_atom::value,
            placement::encode(c.request))
        .await(
            [this, job, replica](uint64_t id) {
              table_.on_request(job, replica, id);
              persist();
            },
            [this, job](caf::error& e) {
              log_->error("jobs: placement refused job {}: {}", job, caf::to_string(e));
              std::vector<job_command> out;
              table_.fail(job, "placement refused it: " + caf::to_string(e), wall_now(),
                          out);
              commit(std::move(out));
            });
  }

  void launch_replica(const job_command& c, std::vector<job_command>& more) {
    const auto* j = table_.find(c.job);
    if (j == nullptr) return;
    const auto& r = j->replicas.at(*c.replica);
    auto a = agent(c.node);
    if (!a) {
      table_.on_launch_failed(c.job, *c.replica, c.generation,
                              "no node agent reachable on " + c.node, wall_now(), more);
      return;
    }
    json env = json::object();
    for (auto& [k, v] : j->spec.env)
      env[k] = v;
    env["TROUPE_REPLICAS"] = std::to_string(j->spec.replicas);
    json l = {
        {"job", c.job},
        {"replica", *c.replica},
        {"generation", c.generation},
        {"argv", j->spec.argv()},
        {"env", std::move(env)},
        {"working_dir", j->spec.working_dir},
        {"gpus", r.gpus},
        {"grace_ms",
         std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.stop_grace).count()}};
    tell(*a, agent_launch_atom::value, l.dump());
    if (m_launches_ != nullptr) m_launches_->inc();
  }

  /// The agent of `node`, looked up (and cached) when needed.
  std::optional<actor_ref> agent(const std::string& node) {
    if (auto it = agents_.find(node); it != agents_.end()) return it->second;
    result<actor_ref> ref = error{runtime::errc::not_found, "no node agent known"};
    if (node == cfg_.local_node) {
      if (cfg_.local_agent.handle()) ref = cfg_.local_agent;
    } else if (cfg_.fabric != nullptr) {
      ref = cfg_.fabric->lookup(node, agent_actor_name, std::chrono::seconds{5});
    }
    if (!ref.ok()) {
      log_->warn("jobs: no node agent on {}: {}", node, ref.err().to_string());
      return std::nullopt;
    }
    agents_[node] = *ref;
    return *ref;
  }

  // -- events -----------------------------------------------------------------------

  void on_placed(uint64_t request, uint64_t allocation, const std::string& text) {
    std::vector<placed_bundle> bundles;
    try {
      auto doc = json::parse(text);
      auto& names = doc.at("node_names");
      auto& placed = doc.at("plan").at("bundles");
      for (size_t i = 0; i < placed.size(); ++i)
        bundles.push_back({placed[i].at("bundle").get<uint32_t>(),
                           names.at(i).get<std::string>(),
                           placed[i].at("gpus").get<std::vector<uint32_t>>()});
    } catch (const json::exception& e) {
      log_->error("jobs: unreadable placement of request {}: {}", request, e.what());
      return;
    }
    std::vector<job_command> out;
    table_.on_placed(request, allocation, bundles, wall_now(), out);
    commit(std::move(out));
  }

  void on_members(const std::string& text) {
    try {
      for (auto& m : json::parse(text)) {
        auto state = m.value("state", std::string{});
        auto name = m.value("node", std::string{});
        if (m.contains("inventory")) remember_inventory(name, m["inventory"].dump());
        if (state == "up") node_up(name);
      }
    } catch (const json::exception& e) {
      log_->error("jobs: unreadable member list: {}", e.what());
    }
  }

  void on_member_event(const std::string& text) {
    json e;
    try {
      e = json::parse(text);
    } catch (const json::exception&) {
      return;
    }
    auto kind = e.value("kind", std::string{});
    auto name = e.value("node", std::string{});
    if (kind == "up" || kind == "uncordoned" || kind == "recovered") {
      // The inventory comes with the member list.
      request(cfg_.membership, std::chrono::seconds{10}, members_atom::value)
          .then(
              [this, name, kind](const std::string& members) {
                try {
                  for (auto& m : json::parse(members))
                    if (m.value("node", std::string{}) == name && m.contains("inventory"))
                      remember_inventory(name, m["inventory"].dump());
                } catch (const json::exception&) {
                }
                if (kind == "up" || kind == "uncordoned") node_up(name);
              },
              [](caf::error&) {});
    } else if (kind == "down" || kind == "left") {
      agents_.erase(name);
      attached_.erase(name);
      unschedulable(name);
      std::vector<job_command> out;
      table_.on_node_down(name, wall_now(), out);
      commit(std::move(out));
    } else if (kind == "cordoned" || kind == "draining") {
      unschedulable(name);
    }
  }

  void unschedulable(const std::string& name) {
    request(placement(), std::chrono::seconds{10}, placement::node_down_atom::value, name)
        .then([](bool) {}, [](caf::error&) {}); // unknown to placement: nothing to do
  }

  void remember_inventory(const std::string& name, std::string text) {
    if (auto inv = decode_inventory(text); inv.ok()) {
      auto spec = to_node_spec(*inv);
      node_prices_[name] = {spec.price_per_gpu_hour.value(),
                            placement::to_string(spec.capacity)};
      std::vector<std::string> models;
      for (auto& g : inv->gpus)
        models.push_back(g.model);
      gpu_models_[name] = std::move(models);
      std::vector<uint64_t> memory;
      for (auto& g : inv->gpus)
        memory.push_back(g.memory_mib);
      gpu_memory_[name] = std::move(memory);
    }
    inventories_[name] = std::move(text);
  }

  /// Why no node the cluster has known could ever host one replica of
  /// `spec` (GPUs per replica, of its model); nullopt when one could, or
  /// when no node has reported yet.
  std::optional<std::string> never_fits(const job_spec& spec) const {
    if (spec.resources.gpus == 0 || gpu_models_.empty()) return std::nullopt;
    size_t best = 0;
    for (auto& [node, models] : gpu_models_) {
      size_t n = 0;
      for (auto& m : models)
        n += spec.resources.gpu_model.empty() || m == spec.resources.gpu_model ? 1 : 0;
      best = std::max(best, n);
    }
    if (best >= spec.resources.gpus) return std::nullopt;
    return "job.resources.gpus: a replica needs " + std::to_string(spec.resources.gpus) +
           (spec.resources.gpu_model.empty() ? "" : " " + spec.resources.gpu_model) +
           " GPUs on one node; the largest node of the cluster has " +
           std::to_string(best);
  }

  void node_up(const std::string& name) {
    auto it = inventories_.find(name);
    if (it != inventories_.end()) {
      auto inv = decode_inventory(it->second);
      if (inv.ok()) {
        auto spec = to_node_spec(*inv);
        spec.name = name;
        request(placement(), std::chrono::seconds{10}, placement::node_up_atom::value,
                placement::encode(spec))
            .then([](bool) {},
                  [this, name](caf::error& e) {
                    log_->error("jobs: placement refused node {}: {}", name,
                                caf::to_string(e));
                  });
      } else {
        log_->warn("jobs: node {} inventory unreadable: {}", name, inv.err().to_string());
      }
    }
    attach_agent(name);
  }

  void attach_agent(const std::string& name) {
    agents_.erase(name);
    auto a = agent(name);
    if (!a) return;
    request(*a, std::chrono::seconds{10}, agent_attach_atom::value,
            caf::actor_cast<caf::actor>(this))
        .then([this, name](const std::string& report) { on_report(name, report); },
              [this, name](caf::error& e) {
                log_->warn("jobs: node agent on {} did not answer: {}", name,
                           caf::to_string(e));
              });
  }

  void on_report(const std::string& node, const std::string& text) {
    std::vector<job_command> out;
    auto now = wall_now();
    std::vector<reported_replica> running;
    try {
      auto r = json::parse(text);
      for (auto& e : r.at("exited"))
        apply_exit(e, now, out);
      for (auto& x : r.at("running"))
        running.push_back(
            {x.at("job").get<std::string>(), x.at("replica").get<uint32_t>(),
             x.at("generation").get<uint64_t>(), x.at("pid").get<int32_t>()});
    } catch (const json::exception& e) {
      log_->error("jobs: unreadable report from {}: {}", node, e.what());
      return;
    }
    table_.reconcile(node, running, now, out);
    attached_.insert(node);
    log_->info("jobs: node {} reports {} running replicas", node, running.size());
    commit(std::move(out));
  }

  void apply_exit(const json& e, time_point now, std::vector<job_command>& out) {
    auto how = e.at("how").get<std::string>();
    auto code = e.at("code").get<int>();
    auto exit = make_replica_exit(how, code);
    table_.on_exited(e.at("job").get<std::string>(), e.at("replica").get<uint32_t>(),
                     e.at("generation").get<uint64_t>(), exit, now, out);
  }

  void on_agent_event(const std::string& text) {
    std::vector<job_command> out;
    auto now = wall_now();
    try {
      auto e = json::parse(text);
      auto kind = e.at("kind").get<std::string>();
      auto job = e.at("job").get<std::string>();
      auto replica = e.at("replica").get<uint32_t>();
      auto gen = e.at("generation").get<uint64_t>();
      if (kind == "checkpoint_confirmed" || kind == "checkpoint_timed_out" ||
          kind == "exited")
        checkpoint_resolved(job, replica, gen, kind == "checkpoint_confirmed", out);
      if (kind == "checkpoint_confirmed" || kind == "checkpoint_timed_out")
        table_.on_checkpoint(job, replica, gen, kind == "checkpoint_confirmed", now);
      if (kind == "started")
        table_.on_started(job, replica, gen, e.at("pid").get<int32_t>(), now);
      else if (kind == "launch_failed")
        table_.on_launch_failed(job, replica, gen, e.at("why").get<std::string>(), now,
                                out);
      else if (kind == "exited")
        apply_exit(e, now, out);
    } catch (const json::exception& ex) {
      log_->error("jobs: unreadable agent event: {}", ex.what());
      return;
    }
    commit(std::move(out));
  }

  void on_tick() {
    auto now = wall_now();
    std::vector<job_command> out;
    table_.tick(now, out);
    checkpoints_due(now, out);
    if (recovering_ && now - recovered_at_ >= cfg_.reconcile_grace) {
      recovering_ = false;
      // Nodes that held replicas before the restart and never came back.
      std::set<std::string> silent;
      for (auto& [id, j] : table_.jobs())
        for (auto& r : j.replicas)
          if ((r.state == replica_state::starting || r.state == replica_state::running ||
               r.state == replica_state::backoff) &&
              !attached_.count(r.node))
            silent.insert(r.node);
      for (auto& n : silent) {
        log_->warn(
            "jobs: node {} did not come back after the restart: its replicas are lost",
            n);
        table_.on_node_down(n, now, out);
      }
    }
    commit(std::move(out));
  }

  // -- queries ----------------------------------------------------------------------

  const job_record* visible(const std::string& tenant, bool admin,
                            const std::string& id) {
    const auto* j = table_.find(id);
    if (j == nullptr || (!admin && j->tenant != tenant)) return nullptr;
    return j;
  }

  caf::result<std::string> submit(const std::string& tenant,
                                  const std::string& spec_json) {
    auto spec = decode_job_spec(spec_json, cfg_.spec_limits);
    if (!spec.ok()) return error_json(spec.err());
    if (auto why = never_fits(*spec)) return error_json("invalid_argument", *why);
    // A repeated idempotency key answers the first job, whatever the budget.
    bool known = !spec->idempotency_key.empty() &&
                 table_.find_by_key(tenant, spec->idempotency_key) != nullptr;
    auto fo = known || !cfg_.finops ? std::nullopt : cfg_.finops();
    if (!fo) {
      // FinOps is configured but not found now: the share cap cannot be
      // checked, so spot work stays off spot (as when it does not answer).
      if (!known && cfg_.finops && spec->spot_tolerant)
        return accept(tenant, std::move(*spec), unchecked_spot("no FinOps actor"));
      return accept(tenant, std::move(*spec));
    }
    auto rp = make_response_promise<std::string>();
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      wall_now().time_since_epoch())
                      .count();
    // 3 s for the budget and 3 s for the spot answer: the two together stay
    // well inside the control plane's 10 s for a submit.
    request(*fo, std::chrono::seconds{3}, fo_budget_atom::value, tenant, spec->priority,
            static_cast<int64_t>(now_ms))
        .then(
            [this, rp, fo = *fo, tenant,
             spec = *spec](const std::string& answer) mutable {
              auto d = json::parse(answer, nullptr, false);
              if (d.is_object() && d.value("admit", true) == false) {
                log_->info("jobs: {}'s job {} refused: {}", tenant, spec.name,
                           d.value("reason", std::string{}));
                rp.deliver(error_json("exhausted",
                                      "tenant " + tenant + ": " +
                                          d.value("reason", std::string{"over budget"})));
                return;
              }
              admit_spot(rp, fo, tenant, std::move(spec));
            },
            [this, rp, fo = *fo, tenant, spec = *spec](caf::error& e) mutable {
              log_->warn("jobs: no budget answer from FinOps ({}): {}'s job admitted",
                         caf::to_string(e), tenant);
              admit_spot(rp, fo, tenant, std::move(spec));
            });
    return rp;
  }

  /// GPUs `tenant` holds now, as the spot share cap counts them: every GPU
  /// of its replicas that have not ended; on spot, those on spot nodes and
  /// those waiting for placement that may go on spot; plus the GPUs of its
  /// jobs whose spot answer is still on its way (counted as spot).
  std::pair<uint64_t, uint64_t> tenant_spot_use(const std::string& tenant) const {
    uint64_t spot = 0, total = 0;
    for (auto& [id, j] : table_.jobs()) {
      if (j.tenant != tenant || is_final(j.state)) continue;
      const uint64_t g = j.spec.resources.gpus;
      for (auto& r : j.replicas) {
        if (is_final(r.state)) continue;
        total += g;
        if (r.node.empty()) {
          if (may_use_spot(j)) spot += g;
        } else if (auto p = node_prices_.find(r.node);
                   p != node_prices_.end() && p->second.second == "spot") {
          spot += g;
        }
      }
    }
    if (auto it = spot_asking_.find(tenant); it != spot_asking_.end()) {
      spot += it->second;
      total += it->second;
    }
    return {spot, total};
  }

  /// Spot work whose share could not be checked stays off spot.
  static spot_admission unchecked_spot(const std::string& why) {
    return {false, "unchecked", why + ": the spot share could not be checked"};
  }

  /// Asks the FinOps actor `fo` (the one that answered the budget) whether
  /// a spot-tolerant job may use spot, then accepts it with the answer (a
  /// refusal places it off spot). No answer: kept off spot.
  void admit_spot(caf::typed_response_promise<std::string> rp, const actor_ref& fo,
                  const std::string& tenant, job_spec spec) {
    if (!spec.spot_tolerant) {
      rp.deliver(accept(tenant, std::move(spec)));
      return;
    }
    const uint64_t gpus = uint64_t{spec.resources.gpus} * spec.replicas;
    auto [held_spot, held_total] = tenant_spot_use(tenant);
    json q{{"job", spec.name},
           {"tenant", tenant},
           {"gpus", gpus},
           {"spot_tolerant", true},
           {"checkpoints", spec.checkpoint.has_value()},
           {"checkpoint_interval_ms",
            spec.checkpoint ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                  spec.checkpoint->interval)
                                  .count()
                            : 0},
           {"held_spot", held_spot},
           {"held_total", held_total},
           {"now_ms", wall_ms(wall_now())}};
    spot_asking_[tenant] += gpus;
    auto done = [this, tenant, gpus] {
      if (auto it = spot_asking_.find(tenant);
          it != spot_asking_.end() && (it->second -= gpus) == 0)
        spot_asking_.erase(it);
    };
    request(fo, std::chrono::seconds{3}, fo_spot_atom::value, q.dump())
        .then(
            [this, rp, tenant, spec, done](const std::string& answer) mutable {
              done();
              auto d = json::parse(answer, nullptr, false);
              spot_admission a;
              if (!d.is_object() || !d.contains("allowed") ||
                  !d["allowed"].is_boolean()) {
                a = {false, "unchecked", "unreadable answer from FinOps: " + answer};
              } else {
                a.allowed = d["allowed"].get<bool>();
                a.verdict = d.value("verdict", std::string{});
                a.reason = d.value("reason", std::string{});
              }
              if (!a.allowed)
                log_->info("jobs: {}'s job {} placed off spot: {}", tenant, spec.name,
                           a.reason);
              rp.deliver(accept(tenant, std::move(spec), std::move(a)));
            },
            [this, rp, tenant, spec, done](caf::error& e) mutable {
              done();
              log_->warn(
                  "jobs: no spot answer from FinOps ({}): {}'s job {} placed off spot",
                  caf::to_string(e), tenant, spec.name);
              rp.deliver(accept(tenant, std::move(spec),
                                unchecked_spot("no answer from the FinOps actor (" +
                                               caf::to_string(e) + ")")));
            });
  }

  /// Puts an admitted job in the table and carries out what that asks.
  std::string accept(const std::string& tenant, job_spec spec,
                     std::optional<spot_admission> spot = std::nullopt) {
    std::vector<job_command> out;
    auto s = table_.submit(std::move(spec), tenant, wall_now(), out, std::move(spot));
    if (!s.ok()) return error_json(s.err());
    if (s->created && m_submitted_ != nullptr) m_submitted_->inc();
    commit(std::move(out));
    return json{{"job", json::parse(job_json(*table_.find(s->id)))},
                {"created", s->created}}
        .dump();
  }

  std::string list(const std::string& tenant, bool admin, uint32_t limit,
                   const std::string& after) {
    limit = std::clamp<uint32_t>(limit, 1, 1000);
    std::vector<const job_record*> mine;
    for (auto& [id, j] : table_.jobs())
      if (admin || j.tenant == tenant) mine.push_back(&j);
    std::sort(mine.begin(), mine.end(),
              [](auto* a, auto* b) { return job_number(a->id) > job_number(b->id); });
    uint64_t cursor = after.empty() ? UINT64_MAX : job_number(after);
    json jobs = json::array();
    std::string next;
    for (auto* j : mine) {
      if (job_number(j->id) >= cursor) continue;
      if (jobs.size() == limit) {
        next = jobs.back().at("id").get<std::string>();
        break;
      }
      jobs.push_back(json::parse(job_json(*j)));
    }
    return json{{"jobs", std::move(jobs)}, {"next", next}}.dump();
  }

  caf::result<std::string> logs(const std::string& tenant, bool admin,
                                const std::string& id, uint32_t replica, uint8_t stream,
                                uint64_t offset, uint32_t max_bytes) {
    const auto* j = visible(tenant, admin, id);
    if (j == nullptr) return error_json("not_found", "no job " + id);
    if (replica >= j->replicas.size())
      return error_json("not_found",
                        "job " + id + " has no replica " + std::to_string(replica));
    const auto& r = j->replicas[replica];
    if (r.node.empty())
      return json{{"data", ""}, {"next", offset}, {"finished", is_final(r.state)}}.dump();
    auto a = agent(r.node);
    if (!a) return error_json("unavailable", "node " + r.node + " is not reachable");
    auto rp = make_response_promise<std::string>();
    bool final_state = is_final(r.state);
    request(*a, std::chrono::seconds{10}, agent_log_atom::value, id, replica, stream,
            offset, max_bytes)
        .then(
            [rp, final_state](const std::string& chunk) mutable {
              // The replica may run again later (restart): only a final
              // replica's log is finished.
              try {
                auto c = json::parse(chunk);
                c["finished"] = c.value("finished", false) && final_state;
                rp.deliver(c.dump(-1, ' ', false, json::error_handler_t::replace));
              } catch (const json::exception&) {
                rp.deliver(chunk);
              }
            },
            [rp](caf::error& e) mutable {
              rp.deliver(error_json("unavailable", caf::to_string(e)));
            });
    return rp;
  }

  // -- FinOps: launches, reclaims, vacating a node --------------------------------

  /// Keeps `launches_` in step with the table: a replica's generation that
  /// stops holding a process (or is replaced by a newer one) is an ended
  /// launch. Its end is the replica's `ended` when that falls within the
  /// launch, otherwise `now` (the launch ended in this operation).
  void note_launches(const job_record& j, time_point now) {
    for (auto& r : j.replicas) {
      auto key = std::pair{j.id, r.index};
      auto it = launches_.find(key);
      bool h = holds(r.state);
      if (it != launches_.end() && (!h || it->second.generation != r.generation)) {
        auto end = r.ended >= it->second.started && r.ended <= now ? r.ended : now;
        auto e = std::move(it->second.doc);
        e["seq"] = next_ended_++;
        e["ended_ms"] = wall_ms(end);
        ended_.push_back(std::move(e));
        if (ended_.size() > 10000) ended_.pop_front();
        launches_.erase(it);
        it = launches_.end();
      }
      if (h && it == launches_.end())
        launches_[key] = {r.generation, r.started, launch_doc(j, r)};
    }
  }

  /// The launch's document for the FinOps actor (the protocol above).
  json launch_doc(const job_record& j, const replica_record& r) const {
    json labels = json::object();
    for (auto& [k, v] : j.spec.labels.custom)
      labels[k] = v;
    if (!j.spec.labels.team.empty()) labels["team"] = j.spec.labels.team;
    if (!j.spec.labels.project.empty()) labels["project"] = j.spec.labels.project;
    if (!j.spec.labels.env.empty()) labels["env"] = j.spec.labels.env;
    int64_t price = -1;
    std::string capacity = "on_demand";
    if (auto p = node_prices_.find(r.node); p != node_prices_.end()) {
      price = p->second.first;
      capacity = p->second.second;
    }
    return {{"job", j.id},
            {"replica", r.index},
            {"generation", r.generation},
            {"node", r.node},
            {"gpus", r.gpus},
            {"started_ms", wall_ms(r.started)},
            {"tenant", j.tenant},
            {"labels", std::move(labels)},
            {"class", to_string(j.spec.kind)},
            {"priority", j.spec.priority},
            {"spot_tolerant", may_use_spot(j)},
            {"checkpoint", j.spec.checkpoint.has_value()},
            {"checkpoint_timeout_ms",
             j.spec.checkpoint ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                     j.spec.checkpoint->timeout)
                                     .count()
                               : 0},
            {"price_micro_usd", price},
            {"capacity", capacity}};
  }

  /// The model and memory of the launch's first GPU, from its node's
  /// inventory (MIG advice pools launches by model), when known.
  void add_gpu_model(json& doc) const {
    auto node = doc.value("node", std::string{});
    auto m = gpu_models_.find(node);
    auto mem = gpu_memory_.find(node);
    if (m == gpu_models_.end() || mem == gpu_memory_.end() || !doc.contains("gpus") ||
        doc["gpus"].empty())
      return;
    auto g = doc["gpus"][0].get<uint32_t>();
    if (g >= m->second.size() || g >= mem->second.size()) return;
    doc["gpu_model"] = m->second[g];
    doc["gpu_memory_mib"] = mem->second[g];
  }

  std::string allocs(uint64_t after) const {
    json running = json::array();
    for (auto& [key, l] : launches_) {
      auto doc = l.doc;
      // The node's price may have become known since (after a restart the
      // table is read back before the nodes report their inventories).
      if (auto p = node_prices_.find(doc.value("node", std::string{}));
          p != node_prices_.end()) {
        doc["price_micro_usd"] = p->second.first;
        doc["capacity"] = p->second.second;
      }
      add_gpu_model(doc);
      if (const auto* j = table_.find(key.first);
          j != nullptr && key.second < j->replicas.size()) {
        const auto& r = j->replicas[key.second];
        if (r.generation == l.generation && r.last_checkpoint != time_point{})
          doc["last_checkpoint_ms"] = wall_ms(r.last_checkpoint);
      }
      running.push_back(std::move(doc));
    }
    json ended = json::array();
    uint64_t next = after;
    for (auto& e : ended_) {
      auto seq = e.at("seq").get<uint64_t>();
      if (seq <= after) continue;
      ended.push_back(e);
      next = seq;
    }
    return json{
        {"running", std::move(running)}, {"ended", std::move(ended)}, {"next", next}}
        .dump();
  }

  /// What must happen once the replicas in `waiting` have checkpointed.
  struct pending_checkpoint {
    bool vacate = false; ///< false: end the job `target`; true: move off node `target`
    std::string target;
    std::string reason;
    std::set<std::tuple<std::string, uint32_t, uint64_t>> waiting;
    time_point deadline{};
  };

  /// Asks the agent of replica `r` of `j` to checkpoint within `timeout`;
  /// false when no agent is reachable.
  bool ask_checkpoint(const job_record& j, const replica_record& r, duration timeout) {
    auto a = agent(r.node);
    if (!a || !j.spec.checkpoint) return false;
    auto ms = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
    tell(*a, agent_checkpoint_atom::value, j.id, r.index, r.generation,
         static_cast<int32_t>(j.spec.checkpoint->signal), static_cast<uint64_t>(ms));
    return true;
  }

  /// A checkpoint the table's periodic schedule asks for (the job's
  /// checkpoint interval); the agent's answer comes back as an agent event.
  void periodic_checkpoint(const job_command& c) {
    const auto* j = table_.find(c.job);
    if (j == nullptr || !j->spec.checkpoint || !c.replica ||
        *c.replica >= j->replicas.size())
      return;
    const auto& r = j->replicas[*c.replica];
    if (r.generation != c.generation || r.node != c.node) return;
    // A reclaim or a spot notice is checkpointing it already: a second
    // signal would restart the checkpoint and lose the first confirmation.
    // Its answer ends the periodic ask too (on_agent_event).
    for (auto& p : checkpoints_)
      if (p.waiting.count({c.job, r.index, r.generation})) return;
    if (ask_checkpoint(*j, r, j->spec.checkpoint->timeout))
      log_->debug("jobs: {} replica {} asked for its periodic checkpoint", c.job,
                  r.index);
    else
      log_->warn("jobs: {} replica {}: no agent on {} for its periodic checkpoint", c.job,
                 r.index, c.node);
  }

  std::string reclaim(const std::string& id, const std::string& action,
                      const std::string& reason) {
    const auto* j = table_.find(id);
    if (j == nullptr) return error_json("not_found", "no job " + id);
    if (is_final(j->state))
      return error_json("conflict", "job " + id + " has already ended");
    auto answer = [&](const char* state) {
      return json{{"job", id}, {"action", action}, {"state", state}}.dump();
    };
    if (action == "scale_to_min_replicas") {
      if (!j->spec.min_replicas)
        return error_json("conflict",
                          "job " + id + " has no min_replicas: it is not scaled down");
      std::vector<job_command> out;
      auto n = table_.scale_down(id, *j->spec.min_replicas, reason, wall_now(), out);
      if (!n.ok()) return error_json(n.err());
      log_->info("jobs: job {} scaled down to {} replica(s) ({} stopped): {}", id,
                 *j->spec.min_replicas, *n, reason);
      commit(std::move(out));
      return answer("scaled_down");
    }
    if (action != "checkpoint_and_evict" && action != "evict" && action != "release")
      return error_json("invalid_argument", "unknown reclaim action "
                                            " + action + "
                                            "");
    auto now = wall_now();
    if (action == "checkpoint_and_evict" && j->spec.checkpoint) {
      pending_checkpoint p;
      p.target = id;
      p.reason = reason;
      p.deadline = now + j->spec.checkpoint->timeout;
      for (auto& r : j->replicas)
        if (holds(r.state) && ask_checkpoint(*j, r, j->spec.checkpoint->timeout))
          p.waiting.insert({id, r.index, r.generation});
      if (!p.waiting.empty()) {
        log_->info("jobs: job {} checkpoints before it is reclaimed: {}", id, reason);
        checkpoints_.push_back(std::move(p));
        return answer("checkpointing");
      }
    }
    evict(id, reason, now);
    return answer("evicted");
  }

  void evict(const std::string& id, const std::string& reason, time_point now) {
    log_->info("jobs: job {} reclaimed: {}", id, reason);
    std::vector<job_command> out;
    table_.fail(id, "reclaimed: " + reason, now, out);
    commit(std::move(out));
  }

  std::string vacate(const std::string& node, const std::string& text) {
    json plan;
    try {
      plan = json::parse(text);
    } catch (const json::exception& e) {
      return error_json("invalid_argument", std::string{"unreadable plan: "} + e.what());
    }
    auto now = wall_now();
    auto deadline =
        time_point{std::chrono::milliseconds{plan.value("deadline_ms", wall_ms(now))}};
    auto reason = plan.value("reason", std::string{"spot preemption notice"});
    // No new work on the node; sent before any placement request below, so
    // placement sees it first.
    unschedulable(node);
    pending_checkpoint p;
    p.vacate = true;
    p.target = node;
    p.reason = reason;
    p.deadline = deadline;
    try {
      for (auto& c : plan.value("checkpoint", json::array())) {
        auto id = c.at("job").get<std::string>();
        auto replica = c.at("replica").get<uint32_t>();
        auto gen = c.at("generation").get<uint64_t>();
        const auto* j = table_.find(id);
        if (j == nullptr || replica >= j->replicas.size()) continue;
        const auto& r = j->replicas[replica];
        if (r.generation != gen || r.node != node || !holds(r.state)) continue;
        auto timeout = j->spec.checkpoint ? j->spec.checkpoint->timeout : duration{0};
        timeout = std::min(timeout, deadline - now);
        if (timeout > duration{0} && ask_checkpoint(*j, r, timeout))
          p.waiting.insert({id, replica, gen});
      }
    } catch (const json::exception& e) {
      return error_json("invalid_argument", std::string{"bad plan: "} + e.what());
    }
    auto n = p.waiting.size();
    log_->info("jobs: vacating node {} ({} replicas checkpoint first): {}", node, n,
               reason);
    if (n == 0) {
      std::vector<job_command> out;
      move_off(node, now, out);
      commit(std::move(out));
    } else {
      checkpoints_.push_back(std::move(p));
    }
    return json{{"node", node}, {"checkpointing", n}, {"moving", n == 0}}.dump();
  }

  /// Stops every replica on `node` and places it elsewhere.
  void move_off(const std::string& node, time_point now, std::vector<job_command>& out) {
    for (auto& [id, j] : table_.jobs())
      for (auto& r : j.replicas)
        if (r.node == node && holds(r.state)) {
          job_command c;
          c.what = job_command::kind::stop;
          c.job = id;
          c.replica = r.index;
          c.generation = r.generation;
          c.node = node;
          out.push_back(std::move(c));
        }
    table_.on_node_down(node, now, out);
  }

  void finish(pending_checkpoint& p, time_point now, std::vector<job_command>& out) {
    if (p.vacate) {
      move_off(p.target, now, out);
    } else {
      log_->info("jobs: job {} reclaimed: {}", p.target, p.reason);
      table_.fail(p.target, "reclaimed: " + p.reason, now, out);
    }
  }

  void checkpoint_resolved(const std::string& job, uint32_t replica, uint64_t gen,
                           bool confirmed, std::vector<job_command>& out) {
    auto now = wall_now();
    for (auto it = checkpoints_.begin(); it != checkpoints_.end();) {
      if (it->waiting.erase({job, replica, gen}) != 0 && confirmed)
        log_->info("jobs: {} replica {} checkpointed", job, replica);
      if (it->waiting.empty()) {
        auto p = std::move(*it);
        it = checkpoints_.erase(it);
        finish(p, now, out);
      } else {
        ++it;
      }
    }
  }

  void checkpoints_due(time_point now, std::vector<job_command>& out) {
    for (auto it = checkpoints_.begin(); it != checkpoints_.end();) {
      if (it->deadline <= now) {
        log_->warn("jobs: {} replica(s) of {} did not confirm their checkpoint in time",
                   it->waiting.size(), it->target);
        auto p = std::move(*it);
        it = checkpoints_.erase(it);
        finish(p, now, out);
      } else {
        ++it;
      }
    }
  }

  struct launch_seen {
    uint64_t generation = 0;
    time_point started{};
    json doc; ///< launch_doc when it started
  };

  job_manager_config cfg_;
  std::unique_ptr<runtime::store> store_;
  job_table table_;
  std::map<std::pair<std::string, uint32_t>, launch_seen> launches_;
  std::deque<json> ended_; ///< ended launches, oldest first
  uint64_t next_ended_ = 1;
  std::vector<pending_checkpoint> checkpoints_;
  /// GPUs of each tenant's jobs waiting for their spot answer.
  std::map<std::string, uint64_t> spot_asking_;
  /// Per node: price per GPU-hour (micro-USD) and capacity type.
  std::map<std::string, std::pair<int64_t, std::string>> node_prices_;
  std::map<std::string, actor_ref> agents_;
  std::set<std::string> attached_;
  std::map<std::string, std::string> inventories_;
  std::map<std::string, std::vector<std::string>>
      gpu_models_; ///< per node, from inventories
  std::map<std::string, std::vector<uint64_t>> gpu_memory_; ///< per node and GPU, MiB
  time_point recovered_at_{};
  bool recovering_ = false;
  metrics::gauge* m_jobs_ = nullptr;
  metrics::counter* m_submitted_ = nullptr;
  metrics::counter* m_launches_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
};

} // namespace

result<actor_ref> start_job_manager(node& n, job_manager_config cfg) {
  if (!cfg.placement.handle() || !cfg.membership.handle())
    return error{runtime::errc::invalid_argument,
                 "the job manager needs the placement and membership actors"};
  std::unique_ptr<runtime::store> store;
  if (!cfg.store_path.empty()) {
    runtime::store_options so;
    so.path = cfg.store_path;
    so.column_families = {cf_jobs, cf_meta};
    auto s = runtime::store::open(so);
    if (!s.ok()) return std::move(s).err();
    store = std::move(*s);
  }
  auto ref = n.adopt(actor_ref{
      n.system().spawn<job_manager, caf::detached>(std::move(cfg), std::move(store))});
  if (auto r = n.register_name(job_manager_name, ref); !r) return std::move(r).err();
  return ref;
}

} // namespace troupe::actors
