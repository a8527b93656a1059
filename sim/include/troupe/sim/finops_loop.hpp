#pragma once
/// The FinOps policies in the simulator's loop: the idle detector
/// (finops/idle.hpp), the showback ledger (finops/ledger.hpp) and the spot
/// policy (finops/spot.hpp), the same plain code the live FinOps actor runs,
/// driven by the engine (engine.hpp: `sim_config::finops`).
///
/// No shipped trace has GPU utilisation, so utilisation comes from an
/// explicit, seeded idle model (`idle_model`, docs/FINOPS-EXPERIMENT.md):
/// per workload class, the share of jobs that have one idle phase, the
/// phase's length as a share of the job's run time, and whether it sits at
/// the end of the run (the work is done but the GPUs are still held) or in
/// the middle (a pause). The trace's run time is the time the job held its
/// GPUs, idle phase included, so a replay with FinOps off is the plain
/// replay, event for event.
///
/// In the loop (mode `on`):
/// - Every `telemetry_interval` the engine feeds the detector one sample per
///   allocation that is in its idle phase (utilisation `idle_utilisation` on
///   every GPU) and one busy sample at the first tick after the phase ends.
///   Samples of busy allocations outside that change carry no information
///   for the rule (an active allocation with no idle run stays as it is),
///   so this gives the decisions a sample of every allocation at every tick
///   would give, at a cost of O(idle allocations) per tick.
/// - The detector's reclaim is carried out at the tick: training
///   checkpoints (the model's checkpoint `cost`, nothing lost) and is
///   evicted; eval is evicted (it loses the work since its last
///   checkpoint); serving is scaled down (to 0: one trace job is the
///   replicas above the minimum) and interactive sessions are released
///   (both stateless: nothing lost). The rest of the idle phase is what is
///   reclaimed: a job reclaimed in its end phase is complete; one reclaimed
///   in a pause comes back to the queue when the pause would have ended
///   (the pause is the job's own: reclaim frees the GPUs, it does not
///   shorten the pause) and resumes from where it was.
/// - Every allocation is metered (`allocation_meter`, one per price on the
///   nodes of its plan) and applied to a `ledger_state` when it ends, with
///   `busy_utilisation` or `idle_utilisation` as the used share of each
///   piece, so the ledger's idle GPU-ms are the idle phases' held GPU-ms.
/// - With `spot` set, each job's spot tolerance is decided at arrival by
///   `decide_spot` (tolerant classes, checkpointing, the interval cap, the
///   tenant's share cap over the GPUs it holds then).
/// Mode `dry_run` runs the detector with `idle_policy::dry_run` (nothing is
/// reclaimed; `finops_outcome::dry_run_savings` says what would have been);
/// mode `off` runs only the ledger.

#include "troupe/finops/idle.hpp"
#include "troupe/finops/ledger.hpp"
#include "troupe/finops/spot.hpp"
#include "troupe/placement/topology.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/sim/trace.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace troupe::sim {

/// Idle behaviour of one workload class. Assumptions, not data: see
/// docs/FINOPS-EXPERIMENT.md for the figures they are swept around.
struct idle_class_model {
  /// Share of jobs (0..1) that have an idle phase.
  double idle_job_probability = 0;
  /// The phase's length as a share of the job's run time: uniform in
  /// [min, max], 0 <= min <= max <= 1.
  double idle_share_min = 0;
  double idle_share_max = 0;
  /// Probability (0..1) that the phase is the end of the run (work done,
  /// GPUs still held); otherwise it is a pause starting uniformly in the
  /// run (so that it ends before the run does).
  double tail_probability = 0.35;
  friend bool operator==(const idle_class_model&, const idle_class_model&) = default;
};

/// The whole idle model: per class, and the utilisation GPUs report in and
/// out of an idle phase.
struct idle_model {
  std::array<idle_class_model, finops::workload_class_count> classes{};
  double busy_utilisation = 1.0; ///< outside the idle phase
  double idle_utilisation = 0.0; ///< inside it
  uint64_t seed = 1;             ///< the draws (independent of the engine's seed)

  const idle_class_model& of(finops::workload_class c) const noexcept {
    return classes[static_cast<size_t>(c)];
  }
  idle_class_model& of(finops::workload_class c) noexcept {
    return classes[static_cast<size_t>(c)];
  }
  /// The same model for every class.
  static idle_model uniform(const idle_class_model& m, uint64_t seed = 1);
  /// invalid_argument listing every bad value (probabilities or shares
  /// outside [0, 1] or NaN, min > max, utilisations outside [0, 1]).
  [[nodiscard]] result<void> validate() const;
};

/// One job's idle phase, in the job's run-time coordinates: [begin, end).
/// Empty (begin == end) when the job has none.
struct idle_phase {
  duration begin{0};
  duration end{0};
  bool empty() const noexcept { return end <= begin; }
  friend bool operator==(const idle_phase&, const idle_phase&) = default;
};

/// The idle phase of job `job_index` of class `cls` with run time
/// `run_time` (0: a job that never ends has none). A pure function of the
/// model's seed, the class, the run time and the index: the same job gets
/// the same phase whatever else runs. Times are whole milliseconds.
idle_phase draw_idle_phase(const idle_model& m, finops::workload_class cls,
                           duration run_time, uint64_t job_index);

enum class finops_mode : uint8_t {
  off,     ///< ledger only
  dry_run, ///< detector in dry run: reports, reclaims nothing
  on,      ///< detector acts: idle allocations are reclaimed
};
const char* to_string(finops_mode m) noexcept;

/// FinOps in the simulator's loop.
struct finops_loop_config {
  finops_mode mode = finops_mode::on;
  /// Thresholds per class (the live defaults: 5%, 30 min window, 10 min
  /// warm-up, 30 min grace). `dry_run` is set from `mode`.
  finops::idle_policy idle;
  idle_model model;
  /// How often utilisation is sampled (> 0, at most every class's window).
  duration telemetry_interval = std::chrono::minutes{5};
  /// The ledger's aggregation period.
  duration ledger_period = std::chrono::hours{24};
  /// Class of a job: by its trace `qos` label, else `default_class`.
  std::map<std::string, finops::workload_class, std::less<>> class_by_qos;
  finops::workload_class default_class = finops::workload_class::training;
  /// Spot: unset, jobs keep the trace's spot tolerance. Set, the policy
  /// decides at arrival for jobs of `spot_tolerant_classes` (owners of the
  /// others never allow spot).
  std::optional<finops::spot_policy> spot;
  std::vector<finops::workload_class> spot_tolerant_classes = {
      finops::workload_class::training, finops::workload_class::eval};

  /// The class of `j`.
  finops::workload_class class_of(const trace_job& j) const;
  /// invalid_argument listing every bad value.
  [[nodiscard]] result<void> validate() const;
};

/// What FinOps saw and did in one run. GPU-ms follow the ledger's
/// cumulative rule (ledger.hpp); money is the ledger's.
struct finops_outcome {
  finops_mode mode = finops_mode::off;
  /// GPU-ms allocated, counted by the engine per allocation and price
  /// group from its start to its release (the conservation check: equals
  /// `ledger.gpu_ms`).
  int64_t allocated_gpu_ms = 0;
  finops::usage_totals ledger; ///< the ledger's total
  int64_t ledger_entries_duplicate =
      0;                   ///< entries the ledger refused as applied twice (0)
  int64_t spot_gpu_ms = 0; ///< of the ledger's, on spot nodes
  micro_usd spot_cost{0};
  micro_usd on_demand_cost{0}; ///< every other capacity type
  /// GPU-ms of idle phases the allocations held (the ledger's idle GPU-ms
  /// when busy_utilisation is 1 and idle_utilisation 0).
  int64_t idle_held_gpu_ms = 0;
  /// GPU-ms of idle phases reached: held plus reclaimed.
  int64_t idle_gpu_ms = 0;
  /// Of idle_gpu_ms, those of segments whose owner was notified.
  int64_t detected_gpu_ms = 0;
  /// Idle-phase GPU-ms freed by reclaims (from the release to where the
  /// phase would have ended), and their price at the allocation's prices.
  int64_t reclaimed_gpu_ms = 0;
  micro_usd reclaimed_cost{0};
  int64_t jobs_with_idle_phase = 0;
  int64_t notices = 0;
  int64_t cancels = 0;
  int64_t reclaims = 0;               ///< carried out (mode on)
  int64_t reclaims_outside_phase = 0; ///< of those, of a job already busy again
  int64_t tail_completions = 0;       ///< jobs completed by a reclaim of their end phase
  int64_t pause_returns = 0;          ///< jobs re-queued after a reclaimed pause
  int64_t spot_tolerant_jobs = 0;     ///< jobs decide_spot allowed on spot (spot set)
  int64_t telemetry_ticks = 0;
  int64_t samples = 0;
  finops::idle_savings dry_run_savings; ///< mode dry_run
};

/// Puts prices on `topo`: every node on-demand at `on_demand`, then
/// round(spot_fraction x nodes) of them, chosen by a seeded shuffle, spot at
/// `spot`. invalid_argument for a fraction outside [0, 1] or a negative
/// price.
[[nodiscard]] result<void> price_nodes(placement::cluster_topology& topo,
                                       micro_usd on_demand, double spot_fraction,
                                       micro_usd spot, uint64_t seed);

} // namespace troupe::sim
