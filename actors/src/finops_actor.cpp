#include "troupe/actors/finops_actor.hpp"

#include "ticker.hpp"
#include "troupe/actors/job_manager.hpp"
#include "troupe/finops/idle.hpp"
#include "troupe/finops/ledger_store.hpp"
#include "troupe/finops/mig_advice.hpp"
#include "troupe/finops/spot.hpp"
#include "troupe/finops/telemetry_store.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/store.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <tuple>

namespace troupe::actors {

time_point finops_wall_now() {
  return time_point{std::chrono::duration_cast<duration>(
      std::chrono::system_clock::now().time_since_epoch())};
}

namespace {

using json = nlohmann::json;
using rerr = runtime::errc;
using tick_atom = caf::atom_constant<caf::atom("fo_autotic")>;

constexpr const char* cf_audit = "finops_audit";

int64_t to_ms(time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch())
      .count();
}
time_point from_ms(int64_t ms) {
  return time_point{std::chrono::milliseconds{ms}};
}

std::string error_json(std::string_view code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

std::string audit_key(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "a/%016llx", static_cast<unsigned long long>(seq));
  return buf;
}

/// "j-42" -> 42 (the idle detector's allocation id of a job); 0 otherwise.
uint64_t job_number(const std::string& id) {
  if (id.rfind("j-", 0) != 0 || id.size() < 3) return 0;
  uint64_t n = 0;
  for (char c : id.substr(2)) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

finops::workload_class class_of(const std::string& job_class) {
  // Batch jobs have no class of their own in the idle policy: training's.
  return finops::parse_workload_class(job_class).value_or(
      finops::workload_class::training);
}

json totals_json(const finops::usage_totals& t) {
  return {{"gpu_ms", t.gpu_ms},
          {"used_gpu_ms", t.used_gpu_ms},
          {"idle_gpu_ms", t.idle_gpu_ms()},
          {"cost_micro_usd", t.cost.value()},
          {"used_cost_micro_usd", t.used_cost.value()},
          {"idle_cost_micro_usd", t.idle_cost().value()},
          {"entries", t.entries}};
}

/// A launch of a replica as the job manager reports it (jm_allocs_atom).
struct replica_launch {
  uint64_t generation = 0;
  std::string job;
  uint32_t replica = 0;
  std::string node;
  std::vector<uint32_t> gpus;
  time_point started{};
  std::string tenant;
  finops::labels labels;
  finops::workload_class cls = finops::workload_class::training;
  bool checkpoint = false;
  duration checkpoint_timeout{0};
  micro_usd price{0};
  std::string gpu_model;                     ///< of its first GPU ("" unknown)
  uint64_t gpu_memory_mib = 0;               ///< of its first GPU (0 unknown)
  std::optional<time_point> last_checkpoint; ///< this launch's last confirmed one
};

class finops_actor final : public actor {
public:
  finops_actor(caf::actor_config& cfg, finops_actor_config c,
               std::unique_ptr<runtime::store> db,
               std::unique_ptr<finops::ledger_store> ledger,
               std::unique_ptr<finops::telemetry_store> telemetry,
               finops::idle_policy policy, uint64_t next_audit,
               std::map<std::string, finops::tenant_budget, std::less<>> budgets)
      : actor(cfg), cfg_(std::move(c)), budgets_(std::move(budgets)), db_(std::move(db)),
        ledger_(std::move(ledger)), telemetry_(std::move(telemetry)),
        detector_(std::move(policy)), spot_(finops::to_spot_policy(cfg_.finops)),
        next_audit_(next_audit), log_(logging::get("finops")) {}

  const char* name() const override { return "finops"; }

  void on_exit() override {
    // The stores go with the actor (they borrow db_).
    telemetry_.reset();
    ledger_.reset();
    db_.reset();
    actor::on_exit();
  }

  behavior make_behavior() override {
    if (auto* sv = services()) {
      auto& reg = sv->registry();
      m_actions_ = &reg.get_counter("troupe_finops_actions_total",
                                    "Idle and spot actions taken (audited)");
      m_lost_ = &reg.get_counter("troupe_finops_lost_gpu_ms_total",
                                 "GPU-ms of work lost to spot preemptions");
      m_samples_ = &reg.get_counter("troupe_finops_samples_total",
                                    "GPU telemetry samples received");
    }
    set_default_handler([this](caf::scheduled_actor* self,
                               caf::message_view& m) -> caf::result<caf::message> {
      log_->warn("finops: dropped an unexpected message: {}",
                 caf::to_string(m.copy_content_to_message()));
      return answer_unhandled(self);
    });
    // No error that is no answer to a request of ours ends the ledger's
    // owner (troupe::actor drops only unexpected_message/_response ones).
    set_error_handler([this](caf::scheduled_actor*, caf::error& e) {
      log_->warn("finops: dropped an error message: {}", caf::to_string(e));
    });
    if (cfg_.tick > duration{0})
      detail::start_ticker(caf::actor_cast<caf::actor_addr>(this), cfg_.tick,
                           tick_atom::value);
    return {
        [this](fo_samples_atom, const std::string& text) { ingest(text); },
        [this](fo_tick_atom, int64_t now_ms) -> caf::result<std::string> {
          auto rp = make_response_promise<std::string>();
          tick(from_ms(now_ms),
               [rp](std::string summary) mutable { rp.deliver(std::move(summary)); });
          return rp;
        },
        [this](tick_atom) { tick(finops_wall_now(), [](std::string) {}); },
        [this](fo_report_atom, const std::string& query) { return report(query); },
        [this](fo_audit_atom, uint64_t after, uint32_t limit) {
          return audit_list(after, limit);
        },
        [this](fo_notice_atom, const std::string& notice) -> caf::result<std::string> {
          return on_notice(notice);
        },
        [this](fo_mig_atom) { return mig(); },
        [this](fo_budget_atom, const std::string& tenant, int32_t priority,
               int64_t now_ms) { return budget(tenant, priority, from_ms(now_ms)); },
        [this](fo_spot_atom, const std::string& query) { return spot_admission(query); },
    };
  }

private:
  // -- telemetry ---------------------------------------------------------------------

  void ingest(const std::string& text) {
    auto s = decode_samples(text);
    if (!s.ok()) {
      log_->warn("finops: samples refused: {}", s.err().message());
      return;
    }
    if (m_samples_ != nullptr) m_samples_->inc(s->size());
    // Bounded: a tick that never comes must not grow memory without end.
    if (pending_.size() + s->size() > 1'000'000) pending_.clear();
    for (auto& x : *s)
      pending_.push_back(std::move(x));
  }

  // -- the tick ----------------------------------------------------------------------

  template <class Done> void tick(time_point now, Done done) {
    if (ticking_) {
      // One tick at a time: the job manager's answer of the previous one is
      // still awaited.
      done(json{{"now_ms", to_ms(now)}, {"skipped", true}}.dump());
      return;
    }
    ticking_ = true;
    request(cfg_.jobs, std::chrono::seconds{10}, jm_allocs_atom::value, ended_cursor_)
        .then(
            [this, now, done](const std::string& text) mutable {
              tag_pending();
              on_launches(text, now);
              done(finish_tick(now));
            },
            [this, now, done](caf::error& e) mutable {
              log_->warn("finops: the job manager did not list launches: {}",
                         caf::to_string(e));
              tag_pending();
              done(finish_tick(now));
            });
  }

  replica_launch parse_launch(const json& r) const {
    replica_launch l;
    l.generation = r.at("generation").get<uint64_t>();
    l.job = r.at("job").get<std::string>();
    l.replica = r.at("replica").get<uint32_t>();
    l.node = r.at("node").get<std::string>();
    l.gpus = r.at("gpus").get<std::vector<uint32_t>>();
    l.started = from_ms(r.at("started_ms").get<int64_t>());
    l.tenant = r.value("tenant", std::string{"default"});
    if (l.tenant.empty()) l.tenant = "default";
    if (auto it = r.find("labels"); it != r.end())
      for (auto& [k, v] : it->items())
        l.labels[k] = v.get<std::string>();
    l.cls = class_of(r.value("class", std::string{}));
    l.checkpoint = r.value("checkpoint", false);
    l.checkpoint_timeout =
        std::chrono::milliseconds{r.value("checkpoint_timeout_ms", int64_t{0})};
    auto price = r.value("price_micro_usd", int64_t{-1});
    l.price = price >= 0 ? micro_usd{price} : cfg_.default_price_per_gpu_hour;
    l.gpu_model = r.value("gpu_model", std::string{});
    l.gpu_memory_mib = r.value("gpu_memory_mib", uint64_t{0});
    if (auto c = r.find("last_checkpoint_ms"); c != r.end())
      l.last_checkpoint = from_ms(c->get<int64_t>());
    return l;
  }

  /// Records a launch in the ledger (a known launch changes nothing).
  void start_launch(const replica_launch& l, time_point now) {
    // Known already (told again after a restart of the head or of the job
    // manager, whose price may not be known yet): nothing to do.
    if (ledger_->allocations().count(finops::allocation_id{l.generation})) return;
    finops::allocation_spec spec;
    spec.id = finops::allocation_id{l.generation};
    spec.tenant = l.tenant;
    spec.cost_labels = l.labels;
    spec.gpu_milli = static_cast<int64_t>(l.gpus.size()) * 1000;
    spec.start = std::min(l.started, now);
    spec.price_per_gpu_hour = l.price;
    if (auto r = ledger_->start(spec); !r.ok())
      log_->error("finops: ledger refused launch {} of {}: {}", l.generation, l.job,
                  r.err().to_string());
  }

  void on_launches(const std::string& text, time_point now) {
    std::map<uint64_t, replica_launch> running;
    std::vector<std::pair<replica_launch, time_point>> ended;
    uint64_t next = ended_cursor_;
    try {
      auto doc = json::parse(text);
      if (doc.contains("error")) {
        log_->warn("finops: the job manager refused to list launches: {}", text);
        return;
      }
      for (auto& r : doc.at("running")) {
        auto l = parse_launch(r);
        running[l.generation] = std::move(l);
      }
      for (auto& e : doc.at("ended"))
        ended.push_back({parse_launch(e), from_ms(e.at("ended_ms").get<int64_t>())});
      next = doc.value("next", ended_cursor_);
    } catch (const json::exception& e) {
      log_->error("finops: unreadable launch list: {}", e.what());
      return;
    }
    ended_cursor_ = next;
    // Launches that ended: metered to their end and closed (started first
    // when one began and ended between two ticks).
    std::set<uint64_t> closed;
    for (auto& [l, at] : ended) {
      closed.insert(l.generation);
      if (!ledger_->allocations().count(finops::allocation_id{l.generation}))
        start_launch(l, std::min(at, now));
      end_launch(l.generation, std::min(at, now));
    }
    // Open in the ledger but neither running nor reported ended (the job
    // manager restarted, or its list of ended launches overflowed): closed
    // now.
    for (auto& [id, a] : ledger_->allocations())
      if (!a.end && !running.count(id.value()) && !closed.count(id.value()))
        closed.insert(id.value());
    for (auto gen : closed)
      if (!running.count(gen)) end_launch(gen, now);
    for (auto& [gen, l] : running)
      if (!launches_.count(gen)) start_launch(l, now);
    launches_ = std::move(running);
    for (auto& [gen, l] : launches_)
      job_of_launch_[gen] = l.job;
    for (auto it = job_of_launch_.begin(); it != job_of_launch_.end();)
      it = launches_.count(it->first) || util_.count(it->first)
               ? std::next(it)
               : job_of_launch_.erase(it);
    std::erase_if(peak_memory_,
                  [&](const auto& kv) { return !launches_.count(kv.first); });
    gpu_owner_.clear();
    for (auto& [gen, l] : launches_)
      for (auto g : l.gpus)
        gpu_owner_[{l.node, g}] = gen;
    retrack_jobs();
  }

  void end_launch(uint64_t gen, time_point at) {
    auto id = finops::allocation_id{gen};
    auto it = ledger_->allocations().find(id);
    if (it == ledger_->allocations().end() || it->second.end) return;
    at = std::max(at, it->second.metered_until);
    if (auto r = ledger_->end(id, at, utilisation_of(gen)); !r.ok())
      log_->error("finops: ledger refused the end of launch {}: {}", gen,
                  r.err().to_string());
  }

  /// Follows each job with running launches in the idle detector: its GPUs
  /// are those of its launches; a job whose GPU count changed starts over.
  void retrack_jobs() {
    std::map<uint64_t, finops::tracked_allocation> now_running;
    for (auto& [gen, l] : launches_) {
      auto n = job_number(l.job);
      if (n == 0) continue;
      auto [it, fresh] = now_running.try_emplace(n);
      auto& t = it->second;
      if (fresh) {
        t.id = finops::allocation_id{n};
        t.cls = l.cls;
        t.start = l.started;
        t.gpus = 0;
        t.price_per_gpu_hour = l.price;
        t.owner = l.tenant;
        t.allocation_labels = l.labels;
        t.allocation_labels["job"] = l.job;
      }
      t.start = std::min(t.start, l.started);
      t.gpus += static_cast<uint32_t>(l.gpus.size());
    }
    for (auto it = tracked_.begin(); it != tracked_.end();) {
      auto r = now_running.find(it->first);
      if (r == now_running.end() || r->second.gpus != it->second) {
        detector_.untrack(finops::allocation_id{it->first});
        it = tracked_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [n, t] : now_running) {
      if (tracked_.count(n) || t.gpus == 0) continue;
      if (auto r = detector_.track(t); r.ok()) tracked_[n] = t.gpus;
    }
  }

  double utilisation_of(uint64_t gen) const {
    auto it = util_.find(gen);
    if (it == util_.end() || it->second.second == 0) return 0;
    return static_cast<double>(it->second.first) /
           (100.0 * static_cast<double>(it->second.second));
  }

  /// Tags the samples received since the last tick with the launch that
  /// held each GPU then (the previous launch list), and sums each launch's
  /// utilisation: the used share of its piece up to this tick.
  void tag_pending() {
    util_.clear();
    for (auto& s : pending_) {
      auto o = gpu_owner_.find({s.node, s.gpu_index});
      if (o == gpu_owner_.end()) continue;
      s.allocation = finops::allocation_id{o->second};
      auto& peak = peak_memory_[o->second];
      peak = std::max(peak, s.memory_used_mib);
      auto& u = util_[o->second];
      u.first += s.utilisation_pct;
      u.second += 1;
    }
  }

  std::string finish_tick(time_point now) {
    ticking_ = false;
    if (!pending_.empty())
      if (auto r = telemetry_->append(pending_); !r.ok())
        log_->warn("finops: telemetry not stored: {}", r.err().to_string());
    // One idle sample per (job, node, time): that node's GPUs of the job.
    std::map<std::tuple<int64_t, uint64_t, std::string>, std::vector<double>> by_job;
    for (auto& s : pending_) {
      if (s.allocation.value() == 0) continue;
      auto l = job_of_launch_.find(s.allocation.value());
      if (l == job_of_launch_.end()) continue;
      auto n = job_number(l->second);
      if (n == 0) continue;
      by_job[{to_ms(s.at), n, s.node}].push_back(s.utilisation_pct / 100.0);
    }
    pending_.clear();
    std::vector<finops::utilisation_sample> samples;
    samples.reserve(by_job.size());
    for (auto& [k, utils] : by_job)
      samples.push_back({finops::allocation_id{std::get<1>(k)}, from_ms(std::get<0>(k)),
                         std::span<const double>{utils}});
    auto actions = detector_.step(now, samples);
    // Meter every open launch up to now.
    for (auto& [gen, l] : launches_) {
      auto id = finops::allocation_id{gen};
      auto it = ledger_->allocations().find(id);
      if (it == ledger_->allocations().end() || it->second.end) continue;
      if (auto r = ledger_->advance(id, now, utilisation_of(gen)); !r.ok())
        log_->error("finops: ledger refused to meter launch {}: {}", gen,
                    r.err().to_string());
    }
    json done = json::array();
    for (auto& a : actions)
      done.push_back(act(a));
    if (++ticks_ % 360 == 0)
      if (auto c = telemetry_->compact(now); !c.ok())
        log_->warn("finops: telemetry compaction: {}", c.err().to_string());
    return json{{"now_ms", to_ms(now)},
                {"launches", launches_.size()},
                {"jobs_tracked", detector_.size()},
                {"actions", std::move(done)},
                {"ledger", totals_json(ledger_->state().total())}}
        .dump();
  }

  /// The job of idle allocation `n` (a job number), from the launches.
  std::string job_of(uint64_t n) const {
    for (auto& [gen, l] : launches_)
      if (job_number(l.job) == n) return l.job;
    return "j-" + std::to_string(n);
  }

  /// Audits one idle action and carries it out; returns its record.
  json act(const finops::idle_action& a) {
    auto job = job_of(a.allocation.value());
    json rec = json::parse(finops::to_json_line(finops::to_audit(a)));
    rec["kind"] = "idle";
    rec["job"] = job;
    rec["class"] = finops::to_string(a.cls);
    rec["gpus"] = a.gpus;
    rec["owner"] = a.owner;
    rec["idle_since_ms"] = to_ms(a.idle_since);
    bool reclaim = finops::is_reclaim(a.kind);
    if (!reclaim) {
      rec["outcome"] = a.kind == finops::idle_action_kind::notify_owner
                           ? "owner notified (log)"
                           : "pending reclaim cancelled";
      log_->warn("finops: {} {}: {}", finops::to_string(a.kind), job, a.reason);
    } else if (a.dry_run) {
      auto s = detector_.savings();
      rec["outcome"] = "dry run: would reclaim " + std::to_string(a.gpus) + " GPU(s)";
      rec["savings"] = {{"reclaims", s.reclaims},
                        {"gpu_ms", s.gpu_ms},
                        {"cost_micro_usd", s.cost.value()}};
    } else {
      rec["outcome"] = "requested";
    }
    auto seq = append_audit(rec);
    if (reclaim && !a.dry_run) {
      log_->warn("finops: reclaiming {} ({}): {}", job, finops::to_string(a.kind),
                 a.reason);
      request(cfg_.jobs, std::chrono::seconds{10}, jm_reclaim_atom::value, job,
              std::string{finops::to_string(a.kind)}, a.reason)
          .then(
              [this, seq, rec](const std::string& answer) mutable {
                auto doc = json::parse(answer, nullptr, false);
                if (doc.is_object() && doc.contains("error"))
                  rec["outcome"] = "refused: " + doc["error"].value("code", "") + ": " +
                                   doc["error"].value("message", "");
                else if (doc.is_object())
                  rec["outcome"] = doc.value("state", std::string{"done"});
                else
                  rec["outcome"] = "unreadable answer";
                update_audit(seq, rec);
              },
              [this, seq, rec](caf::error& e) mutable {
                rec["outcome"] = "job manager unreachable: " + caf::to_string(e);
                update_audit(seq, rec);
              });
    }
    return rec;
  }

  // -- audit log ---------------------------------------------------------------------

  uint64_t append_audit(json& rec) {
    auto seq = next_audit_++;
    rec["seq"] = seq;
    update_audit(seq, rec);
    if (m_actions_ != nullptr) m_actions_->inc();
    return seq;
  }

  void update_audit(uint64_t seq, const json& rec) {
    if (auto r = db_->put(cf_audit, audit_key(seq), rec.dump()); !r.ok())
      log_->error("finops: audit record {} not written: {}", seq, r.err().to_string());
  }

  std::string audit_list(uint64_t after, uint32_t limit) {
    limit = std::clamp<uint32_t>(limit, 1, 10000);
    json records = json::array();
    uint64_t next = after;
    // Keys are "a/" + the sequence in fixed-width hex: seek past `after`.
    const auto from = after == UINT64_MAX ? audit_key(after) + "~" : audit_key(after + 1);
    auto r = db_->scan(cf_audit, "a/", from, [&](std::string_view, std::string_view v) {
      auto rec = json::parse(v, nullptr, false);
      if (!rec.is_object()) return true;
      auto seq = rec.value("seq", uint64_t{0});
      if (seq <= after) return true;
      records.push_back(std::move(rec));
      next = seq;
      return records.size() < limit;
    });
    if (!r.ok()) return error_json("unavailable", r.err().message());
    return json{{"records", std::move(records)}, {"next", next}}.dump();
  }

  // -- MIG advice --------------------------------------------------------------------

  /// MIG advice per pool (GPU model) for the serving launches that hold one
  /// whole GPU each, from the peak memory their GPU reported since they
  /// started (launches without a sample yet are left out).
  std::string mig() const {
    std::map<std::string, std::pair<uint64_t, std::vector<finops::inference_job>>> pools;
    std::map<uint64_t, const replica_launch*> by_gen;
    for (auto& [gen, l] : launches_) {
      if (l.cls != finops::workload_class::serving || l.gpus.size() != 1 ||
          l.gpu_model.empty() || l.gpu_memory_mib == 0)
        continue;
      auto peak = peak_memory_.find(gen);
      if (peak == peak_memory_.end()) continue;
      auto& pool = pools[l.gpu_model];
      pool.first = l.gpu_memory_mib;
      pool.second.push_back({finops::allocation_id{gen}, peak->second, 0});
      by_gen[gen] = &l;
    }
    auto name = [&](finops::allocation_id a) {
      auto& l = *by_gen.at(a.value());
      return l.job + "/" + std::to_string(l.replica);
    };
    json out = json::array();
    for (auto& [model, pool] : pools) {
      auto advice = finops::advise_mig(model, pool.first, pool.second);
      if (!advice.ok()) {
        out.push_back({{"gpu_model", model}, {"error", advice.err().message()}});
        continue;
      }
      json layout = json::array();
      for (auto& g : advice->layout) {
        json instances = json::array();
        for (size_t i = 0; i < g.instances.size(); ++i)
          instances.push_back({{"profile", g.instances[i].profile},
                               {"start", g.instances[i].start},
                               {"replica", name(g.jobs.at(i))}});
        layout.push_back({{"instances", std::move(instances)}});
      }
      json whole = json::array();
      for (auto a : advice->whole_gpu)
        whole.push_back(name(a));
      out.push_back({{"gpu_model", model},
                     {"gpu_memory_mib", pool.first},
                     {"gpus_before", advice->gpus_before},
                     {"gpus_after", advice->gpus_after},
                     {"gpus_freed", advice->gpus_freed()},
                     {"layout", std::move(layout)},
                     {"whole_gpu", std::move(whole)},
                     {"summary", advice->summary}});
    }
    return json{{"pools", std::move(out)}}.dump();
  }

  // -- budgets -----------------------------------------------------------------------

  /// May new work of `priority` start for `tenant` at `now`? The spend in
  /// the budget window holding `now` against the tenant's budget (none:
  /// admitted). The first warn and the first exceeded of each window are
  /// audited, and so is every refusal.
  std::string budget(const std::string& tenant, int32_t priority, time_point now) {
    auto it = budgets_.find(tenant);
    if (it == budgets_.end())
      return json{{"tenant", tenant},
                  {"status", "ok"},
                  {"admit", true},
                  {"reason", "no budget set"}}
          .dump();
    const auto window = cfg_.finops.finops.budget_period;
    const auto spent = finops::budget_spend(ledger_->state(), tenant, now, window);
    const auto d = finops::check_budget(it->second, spent, priority);
    const auto window_ms = to_ms(finops::period_start(now, window));
    json out{{"tenant", tenant},
             {"status", finops::to_string(d.status)},
             {"admit", d.admit},
             {"reason", d.reason},
             {"spent_micro_usd", spent.value()},
             {"limit_micro_usd", it->second.limit.value()},
             {"window_start_ms", window_ms}};
    auto audit = [&](const char* action) {
      json rec{{"at_ms", to_ms(now)},
               {"kind", "budget"},
               {"action", action},
               {"tenant", tenant},
               {"reason", d.reason},
               {"priority", priority},
               {"spent_micro_usd", spent.value()},
               {"limit_micro_usd", it->second.limit.value()}};
      append_audit(rec);
    };
    if (d.status != finops::budget_status::ok &&
        budget_told_.emplace(tenant, window_ms, d.status).second) {
      log_->warn("finops: tenant {}: {}", tenant, d.reason);
      audit(d.status == finops::budget_status::warn ? "budget_warn" : "budget_exceeded");
    }
    if (!d.admit) audit("budget_block");
    return out.dump();
  }

  // -- spot admission ----------------------------------------------------------------

  /// May a spot-tolerant job use spot? The spot policy (decide_spot) on the
  /// candidate and the GPUs its tenant holds, as the job manager counts
  /// them. Every answer is audited.
  std::string spot_admission(const std::string& text) {
    finops::spot_candidate job;
    finops::tenant_gpus held;
    std::string name;
    int64_t at_ms = 0;
    try {
      auto q = json::parse(text);
      if (!q.is_object()) throw std::invalid_argument{"expected an object"};
      // Counts: non-negative integers up to `max` (absent: 0).
      auto count = [&](const char* key, uint64_t max) -> uint64_t {
        auto it = q.find(key);
        if (it == q.end()) return 0;
        if (!it->is_number_unsigned() || it->get<uint64_t>() > max)
          throw std::invalid_argument{std::string{key} + ": expected an integer in [0, " +
                                      std::to_string(max) + "]"};
        return it->get<uint64_t>();
      };
      name = q.value("job", std::string{});
      job.tenant = q.value("tenant", std::string{"default"});
      if (!q.contains("gpus")) throw std::invalid_argument{"gpus: missing"};
      job.gpus = static_cast<uint32_t>(count("gpus", UINT32_MAX));
      job.spot_tolerant = q.value("spot_tolerant", false);
      job.checkpoints = q.value("checkpoints", false);
      job.checkpoint_interval = std::chrono::milliseconds{
          static_cast<int64_t>(count("checkpoint_interval_ms", INT64_MAX / 1'000'000))};
      held.spot = count("held_spot", UINT32_MAX * uint64_t{1024});
      held.total = count("held_total", UINT32_MAX * uint64_t{1024});
      if (held.spot > held.total)
        throw std::invalid_argument{"held_spot: more than held_total"};
      at_ms = q.contains("now_ms") ? static_cast<int64_t>(count("now_ms", INT64_MAX / 2))
                                   : to_ms(finops_wall_now());
    } catch (const std::exception& e) {
      return error_json("invalid_argument", std::string{"spot query: "} + e.what());
    }
    const auto d = finops::decide_spot(spot_, job, held);
    json rec{{"at_ms", at_ms},
             {"kind", "spot"},
             {"action", d.allowed() ? "spot_allowed" : "spot_refused"},
             {"job", name},
             {"owner", job.tenant},
             {"gpus", job.gpus},
             {"verdict", finops::to_string(d.verdict)},
             {"held_spot_gpus", held.spot},
             {"held_gpus", held.total},
             {"reason", d.reason}};
    append_audit(rec);
    if (!d.allowed())
      log_->info("finops: {}'s job {} kept off spot: {}", job.tenant, name, d.reason);
    return json{{"allowed", d.allowed()},
                {"verdict", finops::to_string(d.verdict)},
                {"reason", d.reason},
                {"max_spot_share_permille", spot_.max_spot_share_permille},
                {"max_checkpoint_interval_ms",
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     spot_.max_checkpoint_interval)
                     .count()}}
        .dump();
  }

  // -- reports -----------------------------------------------------------------------

  std::string report(const std::string& text) {
    json q = text.empty() ? json::object() : json::parse(text, nullptr, false);
    if (!q.is_object()) return error_json("invalid_argument", "unreadable report query");
    finops::report_grouping g;
    auto from = time_point::min();
    auto to = time_point::max();
    std::string format = "json";
    std::string tenant; // only this tenant's rows ("" all)
    try {
      if (q.contains("group")) {
        g = finops::report_grouping{false, false, false, false, false};
        for (auto& k : q.at("group")) {
          auto key = k.get<std::string>();
          if (key == "period")
            g.period = true;
          else if (key == "tenant")
            g.tenant = true;
          else if (key == "team")
            g.team = true;
          else if (key == "project")
            g.project = true;
          else if (key == "env")
            g.env = true;
          else
            return error_json("invalid_argument",
                              "group: expected period|tenant|team|project|env, got \"" +
                                  key + "\"");
        }
      }
      if (q.contains("from_ms")) from = from_ms(q.at("from_ms").get<int64_t>());
      if (q.contains("to_ms")) to = from_ms(q.at("to_ms").get<int64_t>());
      format = q.value("format", format);
      tenant = q.value("tenant", tenant);
    } catch (const json::exception& e) {
      return error_json("invalid_argument", std::string{"report query: "} + e.what());
    }
    auto rows = finops::make_report(ledger_->state(), g, from, to, tenant);
    if (format == "csv")
      return json{{"format", "csv"}, {"csv", finops::render_csv(rows)}}.dump();
    if (format != "json")
      return error_json("invalid_argument",
                        "format: expected json or csv, got \"" + format + "\"");
    finops::usage_totals total;
    for (auto& r : rows)
      total.add(r.totals);
    return json{{"format", "json"},
                {"rows", json::parse(finops::render_json(rows))},
                {"total", totals_json(total)}}
        .dump();
  }

  // -- spot preemption notices -------------------------------------------------------

  caf::result<std::string> on_notice(const std::string& text) {
    finops::preemption_notice notice;
    try {
      auto n = json::parse(text);
      notice.node = n.at("node").get<std::string>();
      notice.deadline = from_ms(n.at("deadline_ms").get<int64_t>());
      notice.received = n.contains("received_ms")
                            ? from_ms(n.at("received_ms").get<int64_t>())
                            : finops_wall_now();
    } catch (const json::exception& e) {
      return error_json("invalid_argument", std::string{"notice: "} + e.what());
    }
    if (notice.node.empty()) return error_json("invalid_argument", "notice: empty node");
    std::vector<finops::spot_job> jobs;
    std::vector<const replica_launch*> on_node;
    for (auto& [gen, l] : launches_) {
      if (l.node != notice.node) continue;
      finops::spot_job j;
      j.allocation = finops::allocation_id{gen};
      j.gpus = static_cast<uint32_t>(l.gpus.size());
      j.can_checkpoint = l.checkpoint;
      j.checkpoint_estimate = l.checkpoint_timeout;
      j.started = l.started;
      j.last_checkpoint = l.last_checkpoint;
      jobs.push_back(j);
      on_node.push_back(&l);
    }
    auto plan = finops::plan_preemption(spot_, notice, jobs);
    json steps = json::array();
    json checkpoint = json::array();
    for (size_t i = 0; i < plan.steps.size(); ++i) {
      auto& s = plan.steps[i];
      const auto& l = *on_node[i];
      json rec = {{"kind", "spot"},
                  {"at_ms", to_ms(notice.received)},
                  {"allocation", s.allocation.value()},
                  {"job", l.job},
                  {"replica", l.replica},
                  {"node", notice.node},
                  {"action", finops::to_string(s.action)},
                  {"dry_run", false},
                  {"gpus", l.gpus.size()},
                  {"owner", l.tenant},
                  {"deadline_ms", to_ms(notice.deadline)},
                  {"lost_gpu_ms", s.lost_gpu_ms},
                  // What a loss counts from: its last checkpoint, or its start.
                  {"since_ms", to_ms(l.last_checkpoint.value_or(l.started))},
                  {"reason", s.reason},
                  {"outcome", "vacating the node"}};
      append_audit(rec);
      steps.push_back(rec);
      if (s.action == finops::notice_action::checkpoint_then_reschedule)
        checkpoint.push_back({{"job", l.job},
                              {"replica", l.replica},
                              {"generation", s.allocation.value()}});
    }
    if (m_lost_ != nullptr)
      m_lost_->inc(static_cast<uint64_t>(std::max<int64_t>(plan.lost_gpu_ms, 0)));
    log_->warn("finops: spot notice for {}: {} launch(es) move, {} GPU-ms lost",
               notice.node, plan.steps.size(), plan.lost_gpu_ms);
    json answer = {{"node", notice.node},
                   {"steps", std::move(steps)},
                   {"lost_gpu_ms", plan.lost_gpu_ms},
                   {"gpus_to_reschedule", plan.gpus_to_reschedule}};
    json vacate = {{"deadline_ms", to_ms(notice.deadline)},
                   {"reason", "spot preemption notice for " + notice.node},
                   {"checkpoint", std::move(checkpoint)}};
    auto rp = make_response_promise<std::string>();
    request(cfg_.jobs, std::chrono::seconds{10}, jm_vacate_atom::value, notice.node,
            vacate.dump())
        .then(
            [rp, answer](const std::string& jobs) mutable {
              answer["jobs"] = json::parse(jobs, nullptr, false);
              rp.deliver(answer.dump());
            },
            [rp, answer](caf::error& e) mutable {
              answer["jobs"] = json{
                  {"error", {{"code", "unavailable"}, {"message", caf::to_string(e)}}}};
              rp.deliver(answer.dump());
            });
    return rp;
  }

  finops_actor_config cfg_;
  std::map<std::string, finops::tenant_budget, std::less<>> budgets_;
  /// Per running launch: the highest GPU memory its GPUs reported, MiB.
  std::map<uint64_t, uint64_t> peak_memory_;
  /// (tenant, window start, status) already audited and logged.
  std::set<std::tuple<std::string, int64_t, finops::budget_status>> budget_told_;
  std::unique_ptr<runtime::store> db_;
  std::unique_ptr<finops::ledger_store> ledger_;       // borrows db_
  std::unique_ptr<finops::telemetry_store> telemetry_; // borrows db_
  finops::idle_detector detector_;
  finops::spot_policy spot_;
  uint64_t next_audit_;
  uint64_t ended_cursor_ = 0;
  bool ticking_ = false;
  uint64_t ticks_ = 0;
  std::map<uint64_t, replica_launch> launches_; ///< by generation
  /// Job of each launch running now or sampled in this tick.
  std::map<uint64_t, std::string> job_of_launch_;
  std::map<std::pair<std::string, uint32_t>, uint64_t>
      gpu_owner_;                           ///< (node, gpu) -> generation
  std::map<uint64_t, uint32_t> tracked_;    ///< job number -> GPUs, in the detector
  std::vector<finops::gpu_sample> pending_; ///< received since the last tick
  /// Per generation: utilisation sum (percent) and samples of this tick.
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> util_;
  metrics::counter* m_actions_ = nullptr;
  metrics::counter* m_lost_ = nullptr;
  metrics::counter* m_samples_ = nullptr;
  std::shared_ptr<spdlog::logger> log_;
};

} // namespace

result<actor_ref> start_finops_actor(node& n, finops_actor_config cfg) {
  if (cfg.store_path.empty())
    return error{rerr::invalid_argument, "the FinOps actor needs a store path"};
  if (!cfg.jobs.handle())
    return error{rerr::invalid_argument, "the FinOps actor needs the job manager"};
  auto policy = finops::to_idle_policy(cfg.finops);
  if (!policy.ok()) return std::move(policy).err();
  auto budgets = finops::to_budgets(cfg.finops);
  if (!budgets.ok()) return std::move(budgets).err();
  if (auto v = finops::to_spot_policy(cfg.finops).validate(); !v.ok())
    return std::move(v).err();
  runtime::store_options so;
  so.path = cfg.store_path;
  so.column_families = finops::ledger_store::column_families();
  for (auto& c : finops::telemetry_store::column_families())
    so.column_families.push_back(c);
  so.column_families.push_back(cf_audit);
  auto db = runtime::store::open(so);
  if (!db.ok()) return std::move(db).err();
  finops::ledger_store_options lo;
  lo.period = cfg.finops.finops.ledger_period;
  auto ledger = finops::ledger_store::open(**db, lo);
  if (!ledger.ok()) return std::move(ledger).err();
  auto telemetry =
      finops::telemetry_store::open(**db, finops::to_store_options(cfg.telemetry));
  if (!telemetry.ok()) return std::move(telemetry).err();
  uint64_t next_audit = 1;
  auto scanned = (*db)->scan(cf_audit, "a/", [&](std::string_view, std::string_view v) {
    auto rec = json::parse(v, nullptr, false);
    if (rec.is_object())
      next_audit = std::max(next_audit, rec.value("seq", uint64_t{0}) + 1);
    return true;
  });
  if (!scanned.ok()) return std::move(scanned).err();
  auto ref = n.adopt(actor_ref{n.system().spawn<finops_actor, caf::detached>(
      std::move(cfg), std::move(*db), std::move(*ledger), std::move(*telemetry),
      std::move(*policy), next_audit, std::move(*budgets))});
  if (auto r = n.register_name(finops_actor_name, ref); !r) return std::move(r).err();
  return ref;
}

std::string encode_samples(const std::vector<finops::gpu_sample>& samples) {
  json out = json::array();
  for (auto& s : samples)
    out.push_back({{"node", s.node},
                   {"gpu", s.gpu_index},
                   {"uuid", s.uuid},
                   {"at_ms", to_ms(s.at)},
                   {"util", s.utilisation_pct},
                   {"mem_mib", s.memory_used_mib},
                   {"power_mw", s.power_mw}});
  return out.dump();
}

result<std::vector<finops::gpu_sample>> decode_samples(std::string_view text) {
  auto doc = json::parse(text, nullptr, false);
  if (!doc.is_array())
    return error{rerr::invalid_argument, "samples: expected a JSON array"};
  std::vector<finops::gpu_sample> out;
  out.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    auto where = "samples[" + std::to_string(i) + "]";
    finops::gpu_sample s;
    try {
      auto& x = doc[i];
      if (!x.is_object())
        return error{rerr::invalid_argument, where + ": expected an object"};
      // Unsigned fields must be non-negative integers that fit (nlohmann
      // would wrap -1 around).
      auto unsigned_field = [&](const char* key, uint64_t max,
                                bool required) -> result<uint64_t> {
        auto it = x.find(key);
        if (it == x.end()) {
          if (required)
            return error{rerr::invalid_argument, where + "." + key + ": missing"};
          return uint64_t{0};
        }
        if (!it->is_number_unsigned() || it->get<uint64_t>() > max)
          return error{rerr::invalid_argument, where + "." + key +
                                                   ": expected an integer in [0, " +
                                                   std::to_string(max) + "]"};
        return it->get<uint64_t>();
      };
      s.node = x.at("node").get<std::string>();
      s.uuid = x.value("uuid", std::string{});
      auto gpu = unsigned_field("gpu", UINT32_MAX, true);
      auto at = unsigned_field("at_ms", INT64_MAX / 1'000'000, true);
      auto util = unsigned_field("util", 100, true);
      auto mem = unsigned_field("mem_mib", finops::max_sample_memory_mib, false);
      auto power = unsigned_field("power_mw", finops::max_sample_power_mw, false);
      for (auto* r : {&gpu, &at, &util, &mem, &power})
        if (!r->ok()) return r->err();
      s.gpu_index = static_cast<uint32_t>(*gpu);
      s.at = from_ms(static_cast<int64_t>(*at));
      s.utilisation_pct = static_cast<uint32_t>(*util);
      s.memory_used_mib = *mem;
      s.power_mw = static_cast<uint32_t>(*power);
    } catch (const json::exception& e) {
      return error{rerr::invalid_argument, where + ": " + e.what()};
    }
    if (auto v = finops::validate(s); !v.ok())
      return error{rerr::invalid_argument, where + ": " + v.err().message()};
    out.push_back(std::move(s));
  }
  return out;
}

} // namespace troupe::actors
