#pragma once
/// The discrete-event cluster simulator: jobs of a trace arrive, queue, are
/// placed by the real placement code (placer, scorers, scheduling_queue),
/// run for their trace duration with checkpoints, may be preempted, killed
/// by node failures or spot reclaims and restarted, and complete. The engine
/// is single-threaded and deterministic: the same trace, config and seed
/// give the same result, byte for byte in every report (no wall time, no
/// unordered iteration, troupe's own PRNG).

#include "troupe/placement/fragmentation.hpp"
#include "troupe/placement/queue.hpp"
#include "troupe/placement/topology.hpp"
#include "troupe/sim/cost_model.hpp"
#include "troupe/sim/finops_loop.hpp"
#include "troupe/sim/report.hpp"
#include "troupe/sim/trace.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe::sim {

/// How the queue orders waiting jobs.
enum class queue_discipline : uint8_t {
  fifo,   ///< arrival order; the first job that does not fit blocks the rest
  sjf,    ///< shortest remaining run time first (the trace's, an oracle);
          ///< any job that fits starts (greedy, no reservation)
  troupe, ///< placement::scheduling_queue: priorities with aging, fair
          ///< share, quotas, EASY backfill on runtime estimates, preemption
};

/// A policy: a queue discipline and the scorer the placer uses.
struct sim_policy {
  std::string name; ///< as spelled, e.g. "troupe" or "fifo:fgd"
  queue_discipline discipline = queue_discipline::troupe;
  std::string scorer = "bestfit"; ///< see `known_scorers`
};

/// Parses "<discipline>[:<scorer>]": disciplines fifo, sjf, troupe; scorers
/// `known_scorers()`. invalid_argument naming the known ones.
[[nodiscard]] result<sim_policy> parse_policy(std::string_view spec);
const std::vector<std::string>& known_disciplines();
/// bestfit (troupe's best fit), paper-bestfit (the FGD paper's), fgd,
/// fgd-sim (the paper simulator's quantised FGD score), troupe
/// (`troupe_scorer`: FGD plus node capacity), random.
const std::vector<std::string>& known_scorers();

/// Builds scorer `name` over `st` (which must outlive it). FGD scorers need
/// `mix`. invalid_argument for an unknown name or a missing mix.
[[nodiscard]] result<std::unique_ptr<placement::scorer>>
make_scorer(std::string_view name, const placement::cluster_state& st,
            const placement::workload_mix* mix, uint64_t seed);

/// Node failures and spot reclaims.
struct fault_model {
  /// Mean time between failures of one node (exponential); 0: none.
  duration node_mtbf{0};
  /// How long a failed node stays down.
  duration node_repair = std::chrono::hours(2);
  /// Spot reclaims per spot node per hour (Poisson), used when no spot
  /// traces are given; 0: none.
  double spot_reclaims_per_hour = 0;
  /// How long a reclaimed spot node stays away (rate mode).
  duration spot_outage = std::chrono::hours(1);
  /// Real spot traces: spot node i replays trace (i mod count) from a
  /// seeded offset, cyclically; the node is there while the count is > 0.
  std::vector<spot_trace> spot_traces;
  /// Warning before a spot reclaim (AWS gives 2 minutes); the jobs on the
  /// node checkpoint if their checkpoint fits in it.
  duration spot_notice = std::chrono::minutes(2);

  [[nodiscard]] result<void> validate() const;
};

/// troupe's queue settings for batch GPU clusters, the `troupe` discipline's
/// default here: EASY backfill, fair share, preemption, aging of one point
/// per hour waited up to 16, and a small-job boost of 16 levels from 10
/// GPU-minutes (a job of at most 10 GPU-minutes gets 16 points, one of at
/// most 20 gets 15, ...; beyond 10 x 2^15 GPU-minutes, none). Chosen on the
/// Philly virtual clusters 2869ce, 7f04ca and ee9e8c at 0.1 arrival scale
/// (docs/SIMULATOR.md).
placement::queue_policy batch_queue_policy();

/// Everything a run needs besides the trace.
struct sim_config {
  placement::cluster_topology topology;
  sim_policy policy;
  /// Queue policy of the troupe discipline (aging, weights, quotas,
  /// preemption, backfill).
  placement::queue_policy queue = batch_queue_policy();
  /// Checkpoint/restart model of every job, and per tenant overrides.
  checkpoint_model checkpoints;
  std::map<std::string, checkpoint_model, std::less<>> checkpoints_by_tenant;
  fault_model faults;
  /// Time series resolution (simulated time).
  duration sample_interval = std::chrono::minutes(10);
  /// Workload mix for FGD scorers and the fragmentation series; when unset
  /// and needed, built from the trace's jobs with typical_workload_mix.
  std::optional<placement::workload_mix> mix;
  /// Record the fragmentation series (costs O(nodes x GPUs x classes) per sample).
  bool fragmentation_series = false;
  uint64_t seed = 1;
  /// Stop at this simulated time after the first arrival; 0: run until
  /// every job has completed or can never run.
  duration horizon{0};
  /// FinOps in the loop: idle detection and reclaim, the showback ledger,
  /// the spot policy (finops_loop.hpp); unset: none of it runs.
  std::optional<finops_loop_config> finops;

  [[nodiscard]] result<void> validate() const;
};

/// What happened to one job.
struct job_record {
  uint32_t job = 0; ///< index into the trace's jobs
  time_point submit{};
  std::optional<time_point> first_start;
  std::optional<time_point> end;
  duration queued{0};  ///< total time waiting (all segments)
  uint32_t starts = 0; ///< 1 + restarts
  uint32_t preemptions = 0;
  uint32_t failures = 0;   ///< killed by node failure or spot reclaim
  duration lost_work{0};   ///< work lost to evictions (job time, not GPU time)
  bool never_fits = false; ///< cannot run even on the empty cluster
};

/// Summary figures of a run.
struct sim_summary {
  uint64_t jobs = 0;
  uint64_t completed = 0;
  uint64_t never_fit = 0;
  uint64_t unfinished = 0; ///< still queued or running at the horizon
  double jct_mean_s = 0, jct_median_s = 0, jct_p99_s = 0;       ///< completed jobs
  double queue_mean_s = 0, queue_median_s = 0, queue_p99_s = 0; ///< started jobs
  double utilisation_pct = 0; ///< time-weighted allocated GPU share
  double makespan_h = 0;      ///< first arrival to last completion
  uint64_t preemptions = 0;
  uint64_t failures = 0; ///< job kills by node failure or spot reclaim
  uint64_t node_failures = 0;
  uint64_t spot_reclaims = 0;
  double lost_gpu_hours = 0;
  uint64_t events = 0;
};

/// Time series sampled every `sample_interval`.
struct sim_series {
  std::vector<double> hours;             ///< since the first arrival
  std::vector<double> allocation_pct;    ///< GPU milli allocated / total
  std::vector<double> queue_length;      ///< jobs waiting
  std::vector<double> running;           ///< jobs running
  std::vector<double> fragmentation_pct; ///< fragment share of free GPU (if recorded)
  std::vector<double> nodes_down;        ///< failed or reclaimed nodes
};

struct sim_result {
  std::string policy;
  std::string label; ///< e.g. the virtual cluster; empty by default
  sim_summary summary;
  sim_series series;
  std::vector<job_record> jobs;
  std::optional<finops_outcome> finops; ///< when `sim_config::finops` was set
};

/// Called now and then with (jobs finished or rejected, total jobs).
using progress_fn = std::function<void(uint64_t, uint64_t)>;

/// Runs `t`'s jobs on `c.topology` under `c.policy`. invalid_argument for a
/// bad config (named) or a job that is malformed.
[[nodiscard]] result<sim_result> simulate(const trace& t, const sim_config& c,
                                          const progress_fn& progress = {});

/// One row per result: policy, label, jobs, completed, JCT and queueing
/// mean/median/p99 (hours), utilisation, preemptions, failures, lost GPU-h.
summary_table compare_table(const std::vector<sim_result>& results, std::string title);
/// Allocation, queue length, running jobs, nodes down (and fragmentation
/// when recorded) over time, one line per result; when the results carry
/// several labels (e.g. one per virtual cluster), one set of charts per
/// label (ids and titles suffixed with it), one line per policy.
std::vector<chart> compare_charts(const std::vector<sim_result>& results);
/// One row per result that ran with FinOps: policy, label, mode, the
/// ledger's cost (USD) and GPU-h, of which on spot, idle GPU-h held,
/// detected and reclaimed, notices and reclaims. No rows without FinOps.
summary_table finops_table(const std::vector<sim_result>& results, std::string title);
/// The results as JSON (summary of each, and its FinOps outcome when it
/// ran with FinOps; no per-job records).
std::string results_json(const std::vector<sim_result>& results);

} // namespace troupe::sim
