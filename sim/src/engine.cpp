#include "troupe/sim/engine.hpp"

#include "troupe/finops/idle.hpp"
#include "troupe/finops/ledger.hpp"
#include "troupe/finops/spot.hpp"
#include "troupe/placement/placer.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"
#include "troupe/sim/event_queue.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

namespace troupe::sim {

using runtime::errc;
namespace pl = troupe::placement;

// --- policies ---------------------------------------------------------------

const std::vector<std::string>& known_disciplines() {
  static const std::vector<std::string> names{"fifo", "sjf", "troupe"};
  return names;
}

const std::vector<std::string>& known_scorers() {
  static const std::vector<std::string> names{"bestfit", "paper-bestfit", "fgd",
                                              "fgd-sim", "troupe",        "random"};
  return names;
}

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

} // namespace

result<sim_policy> parse_policy(std::string_view spec) {
  sim_policy p;
  p.name = std::string(spec);
  auto colon = spec.find(':');
  auto disc = spec.substr(0, colon);
  if (disc == "fifo") {
    p.discipline = queue_discipline::fifo;
  } else if (disc == "sjf") {
    p.discipline = queue_discipline::sjf;
  } else if (disc == "troupe") {
    p.discipline = queue_discipline::troupe;
  } else {
    return error{errc::invalid_argument, "unknown policy \"" + std::string(spec) +
                                             "\": expected <discipline>[:<scorer>] with "
                                             "discipline one of " +
                                             joined(known_disciplines())};
  }
  if (colon != std::string_view::npos) {
    auto sc = std::string(spec.substr(colon + 1));
    const auto& known = known_scorers();
    if (std::find(known.begin(), known.end(), sc) == known.end())
      return error{errc::invalid_argument, "unknown scorer \"" + sc + "\" in policy \"" +
                                               std::string(spec) +
                                               "\": expected one of " + joined(known)};
    p.scorer = sc;
  }
  return p;
}

result<std::unique_ptr<pl::scorer>> make_scorer(std::string_view name,
                                                const pl::cluster_state& st,
                                                const pl::workload_mix* mix,
                                                uint64_t seed) {
  if (name == "bestfit") return std::unique_ptr<pl::scorer>(new pl::best_fit_scorer());
  if (name == "paper-bestfit")
    return std::unique_ptr<pl::scorer>(new pl::paper_best_fit_scorer());
  if (name == "random")
    return std::unique_ptr<pl::scorer>(new pl::random_scorer(st, seed));
  if (name == "troupe") {
    if (mix == nullptr || mix->classes.empty())
      return error{errc::invalid_argument, "scorer \"troupe\" needs a workload mix"};
    if (auto v = mix->validate(); !v) return v.err();
    return std::unique_ptr<pl::scorer>(new pl::troupe_scorer(st, *mix));
  }
  if (name == "fgd" || name == "fgd-sim") {
    if (mix == nullptr || mix->classes.empty())
      return error{errc::invalid_argument,
                   "scorer \"" + std::string(name) + "\" needs a workload mix"};
    if (auto v = mix->validate(); !v) return v.err();
    return std::unique_ptr<pl::scorer>(new pl::fgd_scorer(
        st, *mix, name == "fgd" ? pl::fgd_score::gradient : pl::fgd_score::simulator));
  }
  return error{errc::invalid_argument, "unknown scorer \"" + std::string(name) +
                                           "\": expected one of " +
                                           joined(known_scorers())};
}

// --- config -----------------------------------------------------------------

placement::queue_policy batch_queue_policy() {
  placement::queue_policy q;
  q.aging_interval = std::chrono::hours(1);
  q.aging_step = 1;
  q.aging_cap = 16;
  q.size_boost_levels = 16;
  q.size_boost_base = std::chrono::minutes(10);
  return q;
}

result<void> fault_model::validate() const {
  std::string bad;
  if (node_mtbf.count() < 0) bad += "node_mtbf is negative; ";
  if (node_mtbf.count() > 0 && node_repair.count() <= 0)
    bad += "node_repair must be positive; ";
  if (!(spot_reclaims_per_hour >= 0) || !std::isfinite(spot_reclaims_per_hour))
    bad += "spot_reclaims_per_hour must be a finite number >= 0; ";
  if (spot_reclaims_per_hour > 0 && spot_outage.count() <= 0)
    bad += "spot_outage must be positive; ";
  if (spot_notice.count() < 0) bad += "spot_notice is negative; ";
  for (size_t i = 0; i < spot_traces.size(); ++i) {
    if (spot_traces[i].tick.count() <= 0)
      bad += "spot trace " + std::to_string(i) + " has no positive tick; ";
    if (spot_traces[i].counts.empty())
      bad += "spot trace " + std::to_string(i) + " is empty; ";
  }
  if (bad.empty()) return ok();
  bad.resize(bad.size() - 2);
  return error{errc::invalid_argument, "faults: " + bad};
}

result<void> sim_config::validate() const {
  if (auto v = topology.validate(); !v) return v.err();
  if (topology.nodes.empty())
    return error{errc::invalid_argument, "the cluster has no node"};
  if (auto v = queue.validate(); !v) return v.err();
  if (auto v = checkpoints.validate(); !v) return v.err();
  for (const auto& [tenant, m] : checkpoints_by_tenant)
    if (auto v = m.validate(); !v)
      return error{errc::invalid_argument, "tenant " + tenant + ": " + v.err().message()};
  if (auto v = faults.validate(); !v) return v.err();
  if (sample_interval.count() <= 0)
    return error{errc::invalid_argument, "sample_interval must be positive"};
  if (horizon.count() < 0) return error{errc::invalid_argument, "horizon is negative"};
  if (finops)
    if (auto v = finops->validate(); !v) return v.err();
  return ok();
}

// --- the engine -------------------------------------------------------------

namespace {

/// Exponential with mean `mean` from our own generator.
duration exponential(seeded_rng& rng, duration mean) {
  double u = rng.unit();
  double x = -std::log1p(-u) * static_cast<double>(mean.count());
  return duration{static_cast<int64_t>(std::min(x, 9.0e18))};
}

/// A spot trace prepared for O(1) "when does the state change next".
struct spot_replay {
  duration tick{0};
  std::vector<uint8_t> up;         ///< per tick
  std::vector<uint32_t> next_diff; ///< ticks until the state differs (0: never)

  explicit spot_replay(const spot_trace& t) : tick(t.tick) {
    size_t n = t.counts.size();
    up.resize(n);
    for (size_t i = 0; i < n; ++i)
      up[i] = t.counts[i] > 0 ? 1 : 0;
    next_diff.assign(n, 0);
    // Two passes backwards over the cyclic sequence.
    uint32_t dist = 0;
    bool found = false;
    for (size_t pass = 0; pass < 2; ++pass) {
      for (size_t k = n; k-- > 0;) {
        size_t nx = (k + 1) % n;
        if (up[nx] != up[k]) {
          dist = 1;
          found = true;
        } else if (found) {
          ++dist;
        }
        if (found) next_diff[k] = dist;
      }
    }
  }
};

enum class job_phase : uint8_t {
  future,
  waiting,
  running,
  evicting,
  away, ///< FinOps reclaimed it in a pause; back to the queue at `return_at`
  done,
  rejected
};

struct job_state {
  pl::gang_request req;
  duration work{0};  ///< total work (the trace's run time)
  duration saved{0}; ///< work kept by the last checkpoint
  const checkpoint_model* model = nullptr;
  job_phase phase = job_phase::future;
  pl::allocation_id alloc{0};
  time_point seg_start{};
  time_point wait_since{};
  bool restart = false;
  uint32_t epoch = 0;
  double gpus = 0;     ///< whole-GPU equivalents
  bool finite = false; ///< has a run time (FinOps may shorten `work`, not end it)
  // FinOps (finops_loop.hpp):
  finops::workload_class cls = finops::workload_class::training;
  idle_phase idle;                  ///< what is left of its idle phase (work time)
  bool complete_on_release = false; ///< a reclaim of its end phase: done when released
  time_point return_at{};           ///< a reclaimed pause: back to the queue then
};

/// One price group of a running allocation: its GPUs on nodes of one price
/// and capacity type, metered under its own ledger id.
struct finops_group {
  int64_t gpu_milli = 0;
  micro_usd price{0};
  bool spot = false;
  finops::allocation_meter meter;
};

/// FinOps' view of one running segment of a job.
struct finops_segment {
  pl::allocation_id alloc{0};
  time_point start{};
  bool has_idle = false;
  time_point idle_begin{}; ///< wall time of the idle phase in this segment
  time_point idle_end{};
  bool notified = false;  ///< the detector told the owner
  bool busy_sent = false; ///< the busy sample after the phase went out
  uint32_t gpus = 0;      ///< whole GPUs the detector sees (at least 1)
  std::vector<finops_group> groups;
};

/// Everything FinOps keeps during a run.
struct finops_state {
  finops_loop_config cfg;
  std::optional<finops::idle_detector> detector; ///< dry_run and on
  finops::ledger_state ledger;
  finops_outcome out;
  std::map<uint32_t, finops_segment> segments; ///< running jobs, by job index
  /// GPUs each tenant holds now, in milli-GPUs (decide_spot's share test is
  /// a ratio, so the unit only has to be the same on both sides).
  std::map<std::string, finops::tenant_gpus, std::less<>> held;
  std::set<uint64_t> spot_ledger_ids;
  std::vector<double> idle_values, busy_values; ///< one per GPU of the largest job
  bool tick_pending = false;

  explicit finops_state(const finops_loop_config& c) : cfg(c), ledger(c.ledger_period) {
    out.mode = c.mode;
    if (c.mode != finops_mode::off) {
      auto p = c.idle;
      p.dry_run = c.mode == finops_mode::dry_run;
      detector.emplace(std::move(p));
    }
  }
};

/// Node unavailability reasons (bits).
enum : uint8_t { node_failed = 1, node_noticed = 2, node_reclaimed = 4 };

class engine {
public:
  /// The scorer's name must have been checked with make_scorer.
  engine(const trace& t, const sim_config& c, const pl::workload_mix* mix,
         const progress_fn& progress)
      : t_(t), c_(c), st_(c.topology), empty_(c.topology), mix_(mix),
        scorer_(make_scorer(c.policy.scorer, st_, mix, c.seed).value()),
        placer_(scorer_.get()), fit_placer_(nullptr), queue_(c.queue),
        progress_(progress), rng_(c.seed ^ 0x5eedfa17c0ffee11ULL) {}

  result<sim_result> run();

private:
  void start_faults();
  void handle(const event& e);
  void arrive(uint32_t j);
  void enqueue(uint32_t j);
  void schedule_pass();
  void greedy_pass(bool stop_at_first);
  void troupe_pass();
  void start(uint32_t j, pl::allocation_id a);
  void finish(uint32_t j);
  void evict(uint32_t j, duration notice);
  void release(uint32_t j);
  void node_down(uint32_t n, uint8_t why);
  void node_up(uint32_t n, uint8_t why);
  void schedule_spot(uint32_t n);
  void sample();
  /// After a job's GPUs were released by an eviction: done (a reclaimed end
  /// phase), away until its pause ends (a reclaimed pause), or queued.
  void resume_or_enqueue(uint32_t j);
  void finops_start(uint32_t j, pl::allocation_id a);
  void finops_stop(uint32_t j);
  void finops_tick();
  void finops_reclaim(uint32_t j, finops::idle_action_kind kind);
  void finops_finish(sim_result& res);
  void account(time_point to);
  bool never_fits(const pl::gang_request& r);
  /// Jobs with a bundle on node `n` (allocation order).
  std::vector<uint32_t> jobs_on_node(uint32_t n) const;
  void finished_one(uint32_t j) {
    ++finished_;
    if (jobs_[j].finite) ++finite_done_;
    if (progress_ && (finished_ % 1024 == 0 || finished_ == jobs_.size()))
      progress_(finished_, jobs_.size());
  }
  time_point now() const { return clock_.now(); }

  const trace& t_;
  const sim_config& c_;
  pl::cluster_state st_;
  pl::cluster_state empty_;
  const pl::workload_mix* mix_;
  std::unique_ptr<pl::scorer> scorer_;
  pl::placer placer_;
  pl::placer fit_placer_;
  pl::scheduling_queue queue_;
  const progress_fn& progress_;
  seeded_rng rng_;
  sim_clock clock_;
  event_queue events_;
  std::vector<job_state> jobs_;
  std::vector<job_record> records_;
  std::map<pl::allocation_id, uint32_t> job_of_alloc_;
  // fifo / sjf waiting sets: (key, submit ns, job)
  std::set<std::tuple<int64_t, int64_t, uint32_t>> waiting_;
  size_t troupe_waiting_ = 0;
  std::vector<std::pair<const pl::gang_request*, bool>> fits_cache_;
  std::vector<uint8_t> node_flags_;
  std::vector<std::optional<spot_replay>> spot_;
  std::vector<uint64_t> spot_offset_;
  std::vector<uint32_t> spot_nodes_;
  time_point origin_{};
  time_point last_account_{};
  time_point last_end_{};
  double util_integral_ = 0; // GPU-milli x seconds
  uint64_t running_ = 0;
  uint64_t finished_ = 0;
  uint64_t finite_done_ = 0; ///< finished or rejected jobs that have a run time
  uint64_t arrivals_left_ = 0;
  uint64_t down_nodes_ = 0;        ///< failed or reclaimed
  uint64_t unavailable_nodes_ = 0; ///< any flag set (also: reclaim noticed)
  bool dirty_ = false;
  uint64_t away_ = 0; ///< jobs reclaimed in a pause, not yet back
  std::unique_ptr<finops_state> fo_;
  sim_summary sum_;
  sim_series ser_;
};

std::vector<uint32_t> engine::jobs_on_node(uint32_t n) const {
  std::vector<uint32_t> out;
  for (const auto& [id, a] : st_.allocations())
    for (const auto& b : a.plan.bundles)
      if (b.node.value() == n) {
        out.push_back(job_of_alloc_.at(id));
        break;
      }
  return out;
}

bool engine::never_fits(const pl::gang_request& r) {
  for (auto& [req, nf] : fits_cache_)
    if (pl::same_shape(*req, r)) return nf;
  auto out = fit_placer_.place(empty_, r);
  bool nf = !out.plan || out.bundles_placed < r.required_bundles();
  fits_cache_.emplace_back(&r, nf);
  return nf;
}

result<sim_result> engine::run() {
  const size_t n = t_.jobs.size();
  jobs_.resize(n);
  records_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& tj = t_.jobs[i];
    auto& js = jobs_[i];
    js.req = to_gang_request(tj, pl::request_id{i + 1});
    if (auto v = js.req.validate(); !v)
      return error{errc::invalid_argument, "job " + std::to_string(i) + " (" + tj.name +
                                               "): " + v.err().message()};
    js.work = tj.run_time;
    js.finite = js.work.count() > 0;
    auto it = c_.checkpoints_by_tenant.find(js.req.tenant);
    js.model = it == c_.checkpoints_by_tenant.end() ? &c_.checkpoints : &it->second;
    js.gpus = js.req.gpu_equivalent();
    records_[i].job = static_cast<uint32_t>(i);
  }
  if (c_.finops) {
    fo_ = std::make_unique<finops_state>(*c_.finops);
    size_t widest = 1;
    for (size_t i = 0; i < n; ++i) {
      auto& js = jobs_[i];
      js.cls = fo_->cfg.class_of(t_.jobs[i]);
      if (js.gpus > 0 && js.work.count() > 0)
        js.idle = draw_idle_phase(fo_->cfg.model, js.cls, js.work, i);
      if (!js.idle.empty()) ++fo_->out.jobs_with_idle_phase;
      widest = std::max(widest, static_cast<size_t>(std::ceil(js.gpus)));
    }
    fo_->idle_values.assign(widest, fo_->cfg.model.idle_utilisation);
    fo_->busy_values.assign(widest, fo_->cfg.model.busy_utilisation);
  }
  events_.reserve(1024 + n / 4);
  if (n > 0) origin_ = t_.jobs.front().submit + time_point{};
  clock_.advance_to(origin_);
  last_account_ = origin_;
  last_end_ = origin_;
  // Arrivals are pushed one at a time (each pushes the next) to keep the
  // heap small.
  arrivals_left_ = n;
  if (n > 0) events_.push(time_point{} + t_.jobs[0].submit, event_kind::arrival, 0);
  node_flags_.assign(c_.topology.nodes.size(), 0);
  start_faults();
  events_.push(origin_, event_kind::sample);

  const time_point stop =
      c_.horizon.count() > 0 ? origin_ + c_.horizon : time_point::max();
  // Jobs with no run time never end (they hold their GPUs to the horizon);
  // the run ends when every other job is done.
  const uint64_t finite = static_cast<uint64_t>(std::count_if(
      jobs_.begin(), jobs_.end(), [](const job_state& j) { return j.work.count() > 0; }));
  while (!events_.empty() && (finite_done_ < finite || arrivals_left_ > 0)) {
    const event& top = events_.top();
    if (top.at > stop) break;
    event e = events_.pop();
    account(e.at);
    clock_.advance_to(e.at);
    handle(e);
    ++sum_.events;
    if (dirty_ && (events_.empty() || events_.top().at > now())) {
      dirty_ = false;
      schedule_pass();
      // Nothing can change any more: the rest waits forever.
      if (running_ == 0 && arrivals_left_ == 0 && unavailable_nodes_ == 0 && away_ == 0 &&
          std::none_of(jobs_.begin(), jobs_.end(),
                       [](const job_state& j) { return j.phase == job_phase::evicting; }))
        break;
    }
  }
  account(std::max(now(), last_end_));
  sample();
  std::optional<finops_outcome> finops_out;
  if (fo_) {
    sim_result tmp;
    finops_finish(tmp);
    finops_out = std::move(tmp.finops);
  }

  // Summary.
  sim_result res;
  res.policy = c_.policy.name;
  auto& s = sum_;
  s.jobs = n;
  std::vector<double> jct, wait;
  for (size_t i = 0; i < n; ++i) {
    const auto& r = records_[i];
    if (r.never_fits) {
      ++s.never_fit;
      continue;
    }
    if (r.end) {
      ++s.completed;
      jct.push_back(std::chrono::duration<double>(*r.end - r.submit).count());
    } else {
      ++s.unfinished;
    }
    if (r.first_start) wait.push_back(std::chrono::duration<double>(r.queued).count());
    s.preemptions += r.preemptions;
    s.failures += r.failures;
    s.lost_gpu_hours +=
        std::chrono::duration<double>(r.lost_work).count() / 3600.0 * jobs_[i].gpus;
  }
  auto stats = [](std::vector<double>& v, double& mean, double& median, double& p99) {
    if (v.empty()) return;
    std::sort(v.begin(), v.end());
    double total = 0;
    for (double x : v)
      total += x;
    mean = total / static_cast<double>(v.size());
    auto at = [&](double q) {
      // nearest rank
      auto k = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
      return v[std::clamp<size_t>(k, 1, v.size()) - 1];
    };
    median = at(0.5);
    p99 = at(0.99);
  };
  stats(jct, s.jct_mean_s, s.jct_median_s, s.jct_p99_s);
  stats(wait, s.queue_mean_s, s.queue_median_s, s.queue_p99_s);
  double span = std::chrono::duration<double>(last_end_ - origin_).count();
  s.makespan_h = span / 3600.0;
  double cap = static_cast<double>(st_.total_gpu_milli());
  s.utilisation_pct = span > 0 && cap > 0 ? 100.0 * util_integral_ / (cap * span) : 0;
  res.summary = s;
  res.series = std::move(ser_);
  res.jobs = std::move(records_);
  res.finops = std::move(finops_out);
  return res;
}

void engine::account(time_point to) {
  if (to <= last_account_) return;
  double dt = std::chrono::duration<double>(to - last_account_).count();
  util_integral_ += static_cast<double>(st_.allocated_gpu_milli()) * dt;
  last_account_ = to;
}

void engine::start_faults() {
  const auto& f = c_.faults;
  const auto& nodes = c_.topology.nodes;
  if (f.node_mtbf.count() > 0)
    for (uint32_t i = 0; i < nodes.size(); ++i)
      events_.push(origin_ + exponential(rng_, f.node_mtbf), event_kind::node_fail, i);
  spot_.resize(nodes.size());
  spot_offset_.assign(nodes.size(), 0);
  std::vector<spot_replay> replays;
  for (const auto& tr : f.spot_traces)
    replays.emplace_back(tr);
  uint32_t k = 0;
  for (uint32_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].capacity != pl::capacity_type::spot) continue;
    spot_nodes_.push_back(i);
    if (!replays.empty()) {
      spot_[i] = replays[k % replays.size()];
      spot_offset_[i] = rng_.below(spot_[i]->up.size());
      ++k;
      // A node that starts in a gap of its trace starts away.
      if (!spot_[i]->up[spot_offset_[i]]) node_down(i, node_reclaimed);
    }
    schedule_spot(i);
  }
}

/// Schedules the next reclaim (notice first) or return of spot node `n`.
void engine::schedule_spot(uint32_t n) {
  const auto& f = c_.faults;
  if (spot_[n]) {
    const auto& sr = *spot_[n];
    auto len = static_cast<int64_t>(sr.up.size());
    int64_t tick = (now() - origin_) / sr.tick;
    auto idx = static_cast<size_t>((static_cast<int64_t>(spot_offset_[n]) + tick) % len);
    uint32_t ahead = sr.next_diff[idx];
    if (ahead == 0) return; // never changes
    time_point change = origin_ + (tick + ahead) * sr.tick;
    if (sr.up[idx]) {
      time_point notice = std::max(now(), change - f.spot_notice);
      events_.push(notice, event_kind::spot_notice, n);
      events_.push(change, event_kind::spot_reclaim, n);
    } else {
      events_.push(change, event_kind::spot_return, n);
    }
    return;
  }
  if (f.spot_reclaims_per_hour > 0) {
    auto mean = std::chrono::duration_cast<duration>(
        std::chrono::duration<double>(3600.0 / f.spot_reclaims_per_hour));
    time_point change = now() + exponential(rng_, mean);
    events_.push(std::max(now(), change - f.spot_notice), event_kind::spot_notice, n);
    events_.push(change, event_kind::spot_reclaim, n);
  }
}

void engine::handle(const event& e) {
  auto idx = static_cast<uint32_t>(e.subject);
  switch (e.kind) {
  case event_kind::arrival:
    --arrivals_left_;
    if (idx + 1 < t_.jobs.size())
      events_.push(time_point{} + t_.jobs[idx + 1].submit, event_kind::arrival, idx + 1);
    arrive(idx);
    break;
  case event_kind::finish:
    if (jobs_[idx].phase == job_phase::running && jobs_[idx].epoch == e.tag) finish(idx);
    break;
  case event_kind::evict:
    if (jobs_[idx].phase == job_phase::evicting && jobs_[idx].epoch == e.tag) {
      release(idx);
      resume_or_enqueue(idx);
    }
    break;
  case event_kind::node_fail: {
    ++sum_.node_failures;
    // Kill every job with a bundle on the node.
    auto victims = jobs_on_node(idx);
    for (auto j : victims) {
      ++records_[j].failures;
      evict(j, duration{0});
    }
    node_down(idx, node_failed);
    events_.push(now() + c_.faults.node_repair, event_kind::node_repair, idx);
    break;
  }
  case event_kind::node_repair:
    node_up(idx, node_failed);
    events_.push(now() + exponential(rng_, c_.faults.node_mtbf), event_kind::node_fail,
                 idx);
    break;
  case event_kind::spot_notice: {
    node_down(idx, node_noticed);
    auto victims = jobs_on_node(idx);
    for (auto j : victims)
      if (jobs_[j].phase == job_phase::running) {
        ++records_[j].failures;
        auto left = c_.faults.spot_notice; // the reclaim is at most this far
        evict(j, left);
      }
    break;
  }
  case event_kind::spot_reclaim: {
    ++sum_.spot_reclaims;
    // Anything still on the node (an eviction that did not finish) dies now.
    auto victims = jobs_on_node(idx);
    for (auto j : victims) {
      release(j);
      resume_or_enqueue(j);
    }
    node_down(idx, node_reclaimed);
    node_up(idx, node_noticed);
    if (spot_[idx]) {
      schedule_spot(idx);
    } else {
      events_.push(now() + c_.faults.spot_outage, event_kind::spot_return, idx);
    }
    break;
  }
  case event_kind::spot_return:
    node_up(idx, node_reclaimed);
    schedule_spot(idx);
    break;
  case event_kind::telemetry:
    finops_tick();
    break;
  case event_kind::finops_return:
    if (jobs_[idx].phase == job_phase::away && jobs_[idx].epoch == e.tag) {
      --away_;
      enqueue(idx);
    }
    break;
  case event_kind::sample:
    sample();
    // Keep sampling while anything else is pending; alone, the sampler
    // would keep a run that can no longer change alive forever.
    if (finished_ < jobs_.size() && !events_.empty())
      events_.push(now() + c_.sample_interval, event_kind::sample);
    break;
  }
}

void engine::arrive(uint32_t j) {
  auto& js = jobs_[j];
  records_[j].submit = now();
  js.req.submitted = now();
  if (fo_ && fo_->cfg.spot) {
    const auto& tol = fo_->cfg.spot_tolerant_classes;
    finops::spot_candidate cand;
    cand.tenant = js.req.tenant;
    cand.gpus = static_cast<uint32_t>(std::llround(js.gpus * 1000.0));
    cand.spot_tolerant = std::find(tol.begin(), tol.end(), js.cls) != tol.end();
    cand.checkpoints = js.model->interval.count() > 0;
    cand.checkpoint_interval = js.model->interval;
    auto h = fo_->held.find(js.req.tenant);
    auto d = finops::decide_spot(
        *fo_->cfg.spot, cand, h == fo_->held.end() ? finops::tenant_gpus{} : h->second);
    // As in the live cluster (job_table): allowed spot work asks for the
    // cheapest nodes first.
    js.req.spot_tolerant = js.req.cheapest_first = d.allowed();
    if (d.allowed()) ++fo_->out.spot_tolerant_jobs;
  }
  if (never_fits(js.req)) {
    js.phase = job_phase::rejected;
    records_[j].never_fits = true;
    finished_one(j);
    return;
  }
  enqueue(j);
}

void engine::enqueue(uint32_t j) {
  auto& js = jobs_[j];
  js.phase = job_phase::waiting;
  js.wait_since = now();
  dirty_ = true;
  switch (c_.policy.discipline) {
  case queue_discipline::fifo:
    waiting_.emplace(js.req.submitted.time_since_epoch().count(), 0, j);
    break;
  case queue_discipline::sjf:
    waiting_.emplace((js.work - js.saved).count(),
                     js.req.submitted.time_since_epoch().count(), j);
    break;
  case queue_discipline::troupe: {
    auto r = js.req;
    r.runtime_estimate = segment_wall_time(*js.model, js.saved, js.work, js.restart);
    auto s = queue_.submit(std::move(r));
    TROUPE_ASSERT(s.ok(), "a validated job did not queue");
    ++troupe_waiting_;
    break;
  }
  }
}

void engine::schedule_pass() {
  switch (c_.policy.discipline) {
  case queue_discipline::fifo:
    greedy_pass(true);
    break;
  case queue_discipline::sjf:
    greedy_pass(false);
    break;
  case queue_discipline::troupe:
    troupe_pass();
    break;
  }
}

void engine::greedy_pass(bool stop_at_first) {
  std::vector<const pl::gang_request*> failed;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    uint32_t j = std::get<2>(*it);
    const auto& req = jobs_[j].req;
    bool known_fail = std::any_of(failed.begin(), failed.end(),
                                  [&](const auto* f) { return pl::same_shape(*f, req); });
    if (!known_fail && !pl::capacity_rules_out(st_, req)) {
      auto plan = placer_.find_plan(st_, req);
      if (plan) {
        auto a = st_.commit(req, std::move(*plan), now());
        TROUPE_ASSERT(a.ok(), "a plan from the placer did not commit");
        it = waiting_.erase(it);
        start(j, *a);
        continue;
      }
    }
    if (stop_at_first) break;
    if (!known_fail) failed.push_back(&req);
    ++it;
  }
}

void engine::troupe_pass() {
  for (int round = 0; round < 8; ++round) {
    auto res = queue_.schedule(st_, placer_, now(), pl::schedule_options{false});
    for (const auto& p : res.placed) {
      --troupe_waiting_;
      start(static_cast<uint32_t>(p.request.value() - 1), p.allocation);
    }
    if (!res.preemption || res.preemption->victims.empty()) return;
    for (const auto& v : res.preemption->victims) {
      uint32_t j = job_of_alloc_.at(v.allocation);
      ++records_[j].preemptions;
      evict(j, duration{0});
    }
  }
}

void engine::start(uint32_t j, pl::allocation_id a) {
  auto& js = jobs_[j];
  auto& rec = records_[j];
  js.phase = job_phase::running;
  js.alloc = a;
  js.seg_start = now();
  ++js.epoch;
  job_of_alloc_[a] = j;
  ++running_;
  if (!rec.first_start) rec.first_start = now();
  rec.queued += now() - js.wait_since;
  ++rec.starts;
  duration wall = segment_wall_time(*js.model, js.saved, js.work, js.restart);
  if (js.work.count() > 0) events_.push(now() + wall, event_kind::finish, j, js.epoch);
  if (fo_) finops_start(j, a);
}

void engine::release(uint32_t j) {
  auto& js = jobs_[j];
  if (fo_) finops_stop(j);
  if (c_.policy.discipline == queue_discipline::troupe) queue_.charge(st_, now());
  auto r = st_.release(js.alloc);
  TROUPE_ASSERT(r.ok(), "a running job's allocation is unknown");
  job_of_alloc_.erase(js.alloc);
  --running_;
  dirty_ = true;
}

void engine::finish(uint32_t j) {
  auto& js = jobs_[j];
  release(j);
  js.phase = job_phase::done;
  records_[j].end = now();
  last_end_ = std::max(last_end_, now());
  finished_one(j);
}

void engine::evict(uint32_t j, duration notice) {
  auto& js = jobs_[j];
  if (js.phase != job_phase::running) return;
  auto ev = evict_segment(*js.model, js.saved, js.work, now() - js.seg_start, js.restart,
                          notice);
  records_[j].lost_work += ev.lost;
  js.saved = ev.saved;
  js.restart = true;
  ++js.epoch;
  if (ev.release_after.count() <= 0) {
    release(j);
    enqueue(j);
  } else {
    js.phase = job_phase::evicting;
    events_.push(now() + ev.release_after, event_kind::evict, j, js.epoch);
  }
}

void engine::node_down(uint32_t n, uint8_t why) {
  uint8_t before = node_flags_[n];
  node_flags_[n] |= why;
  if (before == 0 && node_flags_[n] != 0) {
    st_.set_schedulable(pl::node_id{n}, false);
    ++unavailable_nodes_;
  }
  bool was_down = (before & (node_failed | node_reclaimed)) != 0;
  bool is_down = (node_flags_[n] & (node_failed | node_reclaimed)) != 0;
  if (!was_down && is_down) ++down_nodes_;
}

void engine::node_up(uint32_t n, uint8_t why) {
  uint8_t before = node_flags_[n];
  node_flags_[n] &= static_cast<uint8_t>(~why);
  if (before != 0 && node_flags_[n] == 0) {
    st_.set_schedulable(pl::node_id{n}, true);
    --unavailable_nodes_;
    dirty_ = true;
  }
  bool was_down = (before & (node_failed | node_reclaimed)) != 0;
  bool is_down = (node_flags_[n] & (node_failed | node_reclaimed)) != 0;
  if (was_down && !is_down) --down_nodes_;
}

void engine::sample() {
  double h = std::chrono::duration<double>(now() - origin_).count() / 3600.0;
  if (!ser_.hours.empty() && ser_.hours.back() == h) return;
  ser_.hours.push_back(h);
  double cap = static_cast<double>(st_.total_gpu_milli());
  ser_.allocation_pct.push_back(
      cap > 0 ? 100.0 * static_cast<double>(st_.allocated_gpu_milli()) / cap : 0);
  size_t waiting = c_.policy.discipline == queue_discipline::troupe ? troupe_waiting_
                                                                    : waiting_.size();
  ser_.queue_length.push_back(static_cast<double>(waiting));
  ser_.running.push_back(static_cast<double>(running_));
  ser_.nodes_down.push_back(static_cast<double>(down_nodes_));
  if (c_.fragmentation_series && mix_ != nullptr)
    ser_.fragmentation_pct.push_back(100.0 * pl::fragmentation_rate(st_, *mix_));
}

// --- FinOps in the loop (finops_loop.hpp) ------------------------------------

void engine::resume_or_enqueue(uint32_t j) {
  auto& js = jobs_[j];
  if (js.complete_on_release) {
    js.complete_on_release = false;
    js.return_at = time_point{};
    js.phase = job_phase::done;
    records_[j].end = now();
    last_end_ = std::max(last_end_, now());
    ++fo_->out.tail_completions;
    finished_one(j);
    return;
  }
  if (js.return_at > now()) {
    js.phase = job_phase::away;
    ++away_;
    ++fo_->out.pause_returns;
    events_.push(js.return_at, event_kind::finops_return, j, js.epoch);
    js.return_at = time_point{};
    return;
  }
  js.return_at = time_point{};
  enqueue(j);
}

void engine::finops_start(uint32_t j, pl::allocation_id a) {
  auto& js = jobs_[j];
  auto& fo = *fo_;
  const pl::allocation* al = st_.find(a);
  TROUPE_ASSERT(al != nullptr, "a started job has no allocation");
  finops_segment seg;
  seg.alloc = a;
  seg.start = now();
  struct part {
    int64_t milli;
    micro_usd price;
    bool spot;
  };
  std::vector<part> parts;
  int64_t total = 0, spot_milli = 0;
  for (const auto& b : al->plan.bundles) {
    int64_t milli = static_cast<int64_t>(b.gpus.size()) * 1000 + b.gpu_milli;
    if (milli == 0) continue;
    const auto& node = c_.topology.nodes[b.node.value()];
    bool spot = node.capacity == pl::capacity_type::spot;
    total += milli;
    if (spot) spot_milli += milli;
    auto it = std::find_if(parts.begin(), parts.end(), [&](const part& p) {
      return p.price == node.price_per_gpu_hour && p.spot == spot;
    });
    if (it == parts.end())
      parts.push_back({milli, node.price_per_gpu_hour, spot});
    else
      it->milli += milli;
  }
  if (total == 0) return; // CPU only: nothing to meter or watch
  TROUPE_ASSERT(parts.size() <= 8, "more than 8 prices in one allocation");
  for (size_t k = 0; k < parts.size(); ++k) {
    uint64_t id = a.value() * 8 + k;
    seg.groups.push_back(
        finops_group{parts[k].milli, parts[k].price, parts[k].spot,
                     finops::allocation_meter(finops::allocation_id{id}, js.req.tenant,
                                              {}, parts[k].milli, now(), parts[k].price,
                                              fo.cfg.ledger_period)});
    if (parts[k].spot) fo.spot_ledger_ids.insert(id);
  }
  auto& held = fo.held[js.req.tenant];
  held.total += static_cast<uint64_t>(total);
  held.spot += static_cast<uint64_t>(spot_milli);
  seg.gpus = static_cast<uint32_t>(std::max<int64_t>(1, (total + 999) / 1000));
  if (!js.idle.empty() && js.idle.end > js.saved) {
    duration b = std::max(js.idle.begin, js.saved);
    seg.has_idle = true;
    seg.idle_begin = now() + segment_wall_time(*js.model, js.saved, b, js.restart);
    seg.idle_end =
        now() + segment_wall_time(*js.model, js.saved, js.idle.end, js.restart);
  }
  if (fo.detector) {
    finops::tracked_allocation ta;
    ta.id = a;
    ta.cls = js.cls;
    ta.start = now();
    ta.gpus = seg.gpus;
    ta.price_per_gpu_hour = seg.groups.front().price;
    ta.owner = js.req.tenant;
    auto r = fo.detector->track(ta);
    TROUPE_ASSERT(r.ok(), "the detector refused a new allocation");
  }
  fo.segments.emplace(j, std::move(seg));
  if (fo.detector && !fo.tick_pending) {
    // Ticks on a grid from the first arrival, as a periodic sampler would.
    auto iv = fo.cfg.telemetry_interval;
    auto k = (now() - origin_ + iv - duration{1}) / iv;
    fo.tick_pending = true;
    events_.push(origin_ + k * iv, event_kind::telemetry);
  }
}

void engine::finops_stop(uint32_t j) {
  auto& fo = *fo_;
  auto it = fo.segments.find(j);
  if (it == fo.segments.end()) return;
  auto& seg = it->second;
  const time_point t = now();
  const double busy = fo.cfg.model.busy_utilisation;
  const double idle = fo.cfg.model.idle_utilisation;
  auto apply = [&](std::vector<finops::usage_entry> entries) {
    for (const auto& e : entries) {
      auto r = fo.ledger.apply(e);
      TROUPE_ASSERT(r.ok(), "the ledger refused a meter's entry");
      if (*r == finops::apply_outcome::duplicate) ++fo.out.ledger_entries_duplicate;
    }
  };
  int64_t total = 0;
  for (auto& g : seg.groups) {
    if (seg.has_idle) {
      apply(g.meter.advance(std::min(seg.idle_begin, t), busy));
      apply(g.meter.advance(std::min(seg.idle_end, t), idle));
    }
    apply(g.meter.advance(t, busy));
    fo.out.allocated_gpu_ms += finops::cumulative_gpu_ms(g.gpu_milli, seg.start, t);
    total += g.gpu_milli;
    if (seg.has_idle && t > seg.idle_begin) {
      int64_t held =
          finops::cumulative_gpu_ms(g.gpu_milli, seg.start, std::min(seg.idle_end, t)) -
          finops::cumulative_gpu_ms(g.gpu_milli, seg.start, seg.idle_begin);
      fo.out.idle_held_gpu_ms += held;
      fo.out.idle_gpu_ms += held;
      if (seg.notified) fo.out.detected_gpu_ms += held;
    }
  }
  auto& h = fo.held[jobs_[j].req.tenant];
  h.total -= static_cast<uint64_t>(total);
  for (const auto& g : seg.groups)
    if (g.spot) h.spot -= static_cast<uint64_t>(g.gpu_milli);
  if (fo.detector) fo.detector->untrack(seg.alloc);
  fo.segments.erase(it);
}

void engine::finops_tick() {
  auto& fo = *fo_;
  ++fo.out.telemetry_ticks;
  std::vector<finops::utilisation_sample> samples;
  for (auto& [j, seg] : fo.segments) {
    if (!seg.has_idle || seg.busy_sent || now() < seg.idle_begin) continue;
    bool in_phase = now() < seg.idle_end;
    if (!in_phase) seg.busy_sent = true;
    const auto& values = in_phase ? fo.idle_values : fo.busy_values;
    samples.push_back(finops::utilisation_sample{
        seg.alloc, now(), std::span<const double>(values.data(), seg.gpus)});
  }
  fo.out.samples += static_cast<int64_t>(samples.size());
  auto actions = fo.detector->step(now(), samples);
  std::vector<std::pair<uint32_t, finops::idle_action_kind>> reclaims;
  for (const auto& a : actions) {
    auto ja = job_of_alloc_.find(a.allocation);
    if (ja == job_of_alloc_.end()) continue;
    switch (a.kind) {
    case finops::idle_action_kind::notify_owner:
      ++fo.out.notices;
      fo.segments.at(ja->second).notified = true;
      break;
    case finops::idle_action_kind::cancel_reclaim:
      ++fo.out.cancels;
      break;
    default:
      if (!a.dry_run) reclaims.emplace_back(ja->second, a.kind);
      break;
    }
  }
  for (const auto& [j, kind] : reclaims)
    finops_reclaim(j, kind);
  if (!fo.segments.empty()) {
    events_.push(now() + fo.cfg.telemetry_interval, event_kind::telemetry);
  } else {
    fo.tick_pending = false;
  }
}

void engine::finops_reclaim(uint32_t j, finops::idle_action_kind kind) {
  auto& js = jobs_[j];
  auto& fo = *fo_;
  if (js.phase != job_phase::running) return;
  auto si = fo.segments.find(j);
  TROUPE_ASSERT(si != fo.segments.end(), "a reclaimed job has no FinOps segment");
  const auto& seg = si->second;
  const duration wall = now() - js.seg_start;
  const auto at = segment_after(*js.model, js.saved, js.work, wall, js.restart);
  const duration w = at.done;
  const bool in_phase = !js.idle.empty() && w >= js.idle.begin && w < js.idle.end;
  duration saved = w;
  duration release_after{0};
  switch (kind) {
  case finops::idle_action_kind::checkpoint_and_evict:
    release_after = js.model->cost; // asked to checkpoint; it confirms
    break;
  case finops::idle_action_kind::evict: {
    auto ev = evict_segment(*js.model, js.saved, js.work, wall, js.restart, duration{0});
    saved = ev.saved;
    records_[j].lost_work += ev.lost;
    break;
  }
  default: // serving scaled down, interactive released: stateless
    break;
  }
  ++fo.out.reclaims;
  if (!in_phase) ++fo.out.reclaims_outside_phase;
  if (in_phase) {
    js.work -= js.idle.end - w; // the rest of the phase is not held any more
    js.idle.end = w;
  }
  const bool complete = in_phase && saved >= js.work;
  if (complete) release_after = duration{0}; // nothing left to save
  const time_point release_at = now() + release_after;
  if (in_phase && seg.idle_end > release_at) {
    for (const auto& g : seg.groups) {
      int64_t freed = finops::cumulative_gpu_ms(g.gpu_milli, seg.start, seg.idle_end) -
                      finops::cumulative_gpu_ms(g.gpu_milli, seg.start, release_at);
      fo.out.reclaimed_gpu_ms += freed;
      fo.out.idle_gpu_ms += freed;
      fo.out.detected_gpu_ms += freed;
      fo.out.reclaimed_cost = micro_usd{fo.out.reclaimed_cost.value() +
                                        finops::cost_of(freed, g.price).value()};
    }
  }
  js.complete_on_release = complete;
  js.return_at =
      in_phase && !complete ? std::max(release_at, seg.idle_end) : time_point{};
  js.saved = saved;
  js.restart = true;
  ++js.epoch;
  if (release_after.count() <= 0) {
    release(j);
    resume_or_enqueue(j);
  } else {
    js.phase = job_phase::evicting;
    events_.push(release_at, event_kind::evict, j, js.epoch);
  }
}

void engine::finops_finish(sim_result& res) {
  auto& fo = *fo_;
  // Allocations still held at the end are metered up to now.
  std::vector<uint32_t> open;
  for (const auto& [j, seg] : fo.segments)
    open.push_back(j);
  for (auto j : open)
    finops_stop(j);
  fo.out.ledger = fo.ledger.total();
  for (const auto& [id, acct] : fo.ledger.accounts()) {
    if (fo.spot_ledger_ids.count(id.value()) != 0) {
      fo.out.spot_gpu_ms += acct.totals.gpu_ms;
      fo.out.spot_cost = micro_usd{fo.out.spot_cost.value() + acct.totals.cost.value()};
    } else {
      fo.out.on_demand_cost =
          micro_usd{fo.out.on_demand_cost.value() + acct.totals.cost.value()};
    }
  }
  if (fo.detector) fo.out.dry_run_savings = fo.detector->savings();
  res.finops = fo.out;
}

} // namespace

result<sim_result> simulate(const trace& t, const sim_config& c,
                            const progress_fn& progress) {
  if (auto v = c.validate(); !v) return v.err();
  pl::cluster_state probe(c.topology);
  std::optional<pl::workload_mix> built;
  const pl::workload_mix* mix = c.mix ? &*c.mix : nullptr;
  bool wants_mix = c.fragmentation_series || c.policy.scorer == "fgd" ||
                   c.policy.scorer == "fgd-sim" || c.policy.scorer == "troupe";
  if (mix == nullptr && wants_mix) {
    std::vector<pl::bundle> bundles;
    for (size_t i = 0; i < t.jobs.size(); ++i) {
      auto r = to_gang_request(t.jobs[i], pl::request_id{i + 1});
      for (auto& b : r.bundles)
        bundles.push_back(std::move(b));
    }
    auto m = pl::typical_workload_mix(bundles);
    if (!m) return m.err();
    built = std::move(*m);
    mix = &*built;
  }
  bool faults = c.faults.node_mtbf.count() > 0 || c.faults.spot_reclaims_per_hour > 0 ||
                !c.faults.spot_traces.empty();
  if (faults && c.horizon.count() == 0)
    for (size_t i = 0; i < t.jobs.size(); ++i)
      if (t.jobs[i].run_time.count() == 0)
        return error{
            errc::invalid_argument,
            "job " + std::to_string(i) + " (" + t.jobs[i].name +
                ") never ends (no run time) and faults are on: set a horizon, or "
                "faults would keep the run going forever"};
  auto check = make_scorer(c.policy.scorer, probe, mix, c.seed);
  if (!check) return check.err();
  engine e(t, c, mix, progress);
  return e.run();
}

} // namespace troupe::sim
