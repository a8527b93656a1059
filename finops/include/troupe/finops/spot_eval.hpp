#pragma once
/// Spot policies against a deadline, replayed over a real availability
/// trace: greedy, troupe's rule (spot.hpp, choose_capacity) and the offline
/// optimum, in the setting of "Can't Be Late" (Wu et al., NSDI'24).
///
/// Plain code over plain data: no actors, no I/O, no clock.
///
/// The model (discrete, one step = one tick of the trace):
/// - A job needs `work_ticks` ticks of work and must finish within
///   `deadline_ticks` ticks of its start. Each tick it runs on spot (only if
///   the trace has spot capacity that tick), on on-demand, or waits.
/// - Every start of an instance (the first one, after a preemption, and
///   every changeover between spot and on-demand) spends `restart_ticks`
///   paid ticks without work. A voluntary stop or changeover checkpoints on
///   the way out (covered by the next start's restart ticks), so it keeps
///   all work done.
/// - On spot the job checkpoints after every `checkpoint_ticks` ticks of
///   work; a checkpoint takes `checkpoint_cost_ticks` paid ticks without
///   work (0: instantaneous) and counts once complete. On on-demand it does
///   not checkpoint (nothing to protect against).
/// - A tick whose trace has no spot capacity preempts a job on spot at the
///   tick's start, without notice (the trace cannot place a notice inside a
///   tick): the work since its last completed checkpoint is lost (during a
///   checkpoint, the whole interval). The tick is not charged.
/// - Money: each tick on spot or on-demand costs price x gpus x tick. Costs
///   are summed exactly in micro-USD x milliseconds / hour units and turned
///   into micro-USD once, rounding down: floor(sum of gpu_ms x price /
///   3,600,000), the showback ledger's rule (ledger.hpp).
/// - A job not done at its deadline (only a policy without the safety net
///   can get there) is finished on on-demand after it, and counted as a miss.
///
/// Every policy and the optimum go through the same step functions
/// (`preempt`, `apply`), so the optimum is exact for this model: the
/// dynamic programme runs over (tick, work done, instance, work at risk,
/// restart/checkpoint ticks left) at the trace's own resolution.

#include "troupe/finops/spot.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/strong_id.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace troupe::finops {

/// A job in wall-clock terms (what a user states).
struct spot_job_spec {
  duration work = std::chrono::hours{48};
  duration deadline = std::chrono::hours{52};
  duration checkpoint_interval = std::chrono::minutes{30};
  duration checkpoint_cost{0};
  duration restart_overhead = std::chrono::minutes{12};
  uint32_t gpus = 1;
  /// AWS p3.2xlarge (1 V100), us-east-1 on-demand list price.
  micro_usd on_demand_price_per_gpu_hour{3'060'000};
  /// The spot price recorded in the shipped preemption trace (USD 0.918).
  micro_usd spot_price_per_gpu_hour{918'000};
};

/// The same job in ticks of one trace.
struct spot_job_model {
  duration tick{0};
  int64_t work_ticks = 0;
  int64_t deadline_ticks = 0;
  int64_t checkpoint_ticks = 1; ///< >= 1
  int64_t checkpoint_cost_ticks = 0;
  int64_t restart_ticks = 0;
  uint32_t gpus = 1;
  micro_usd on_demand_price_per_gpu_hour{0};
  micro_usd spot_price_per_gpu_hour{0};

  /// invalid_argument listing every bad value (tick <= 0, work < 1,
  /// deadline < restart + work (infeasible even on on-demand), interval < 1,
  /// negative costs or prices, gpus 0).
  [[nodiscard]] result<void> validate() const;
};

/// `spec` at resolution `tick`. Rounding, each toward the job's harm: work,
/// restart overhead and checkpoint cost round up to whole ticks; deadline
/// and checkpoint interval round down (the interval to at least 1 tick).
[[nodiscard]] result<spot_job_model> to_model(const spot_job_spec& spec, duration tick);

enum class run_mode : uint8_t { none, spot, on_demand };
enum class tick_action : uint8_t { wait, spot, on_demand };
const char* to_string(tick_action a) noexcept;

/// Where a job stands between two ticks.
struct job_state {
  run_mode mode = run_mode::none;
  int64_t done = 0;     ///< work ticks done, at-risk work included
  int64_t at_risk = 0;  ///< work since the last completed checkpoint (spot only)
  int64_t overhead = 0; ///< restart or checkpoint ticks left before work
  /// Spot only: `overhead` ticks of a checkpoint are left (at_risk is then
  /// checkpoint_ticks), else they are restart ticks.
  bool checkpointing = false;

  bool finished(const spot_job_model& m) const noexcept { return done >= m.work_ticks; }
  friend bool operator==(const job_state&, const job_state&) = default;
};

/// The start of tick: a job on spot in a tick without spot capacity is
/// preempted. Returns the work ticks lost (0 otherwise).
int64_t preempt(const spot_job_model& m, job_state& s, bool spot_available) noexcept;

/// Runs `a` for one tick (after `preempt`); returns what it cost in
/// micro-USD x ms / hour (divide the sum by 3,600,000 for micro-USD).
/// `spot` without capacity is a bug (the runner turns it into `wait`).
int64_t apply(const spot_job_model& m, job_state& s, tick_action a) noexcept;

/// Cost units of one tick of `a` (0 for wait).
int64_t tick_cost_units(const spot_job_model& m, tick_action a) noexcept;

/// What a policy sees at the start of a tick (after preemption).
struct tick_view {
  int64_t tick = 0; ///< ticks since the job started
  bool spot_available = false;
  const job_state* state = nullptr;
};

/// A policy: called once per tick until the job is done.
using tick_policy = std::function<tick_action(const spot_job_model&, const tick_view&)>;

/// Greedy (Can't Be Late's baseline): spot whenever available; otherwise
/// wait until the safety net (deadline_forces_on_demand) forces on-demand.
tick_policy greedy_policy();

/// troupe: decide_spot on the job (spot tolerant, checkpointing at the
/// model's interval) with `policy` and what its tenant already `held`s,
/// then choose_capacity each tick. (Mind the share cap: a tenant holding
/// nothing else is refused spot under any cap below 1000 permille.)
tick_policy troupe_policy(const spot_policy& policy, const tenant_gpus& held);

/// The progress a tick_view shows to choose_capacity (durations = ticks x tick).
deadline_progress to_progress(const spot_job_model& m, const tick_view& v);

/// What a replay gave.
struct spot_run {
  micro_usd cost{0};
  int64_t cost_units = 0; ///< exact: cost = cost_units / 3,600,000 (floor)
  bool met_deadline = false;
  int64_t finish_tick = 0;     ///< ticks from the start to completion
  int64_t lost_work_ticks = 0; ///< work lost to preemptions
  int64_t preemptions = 0;
  int64_t spot_ticks = 0;      ///< ticks paid on spot
  int64_t on_demand_ticks = 0; ///< ticks paid on on-demand
};

/// Replays `policy` from tick 0 of `available` (one flag per tick; it must
/// cover deadline_ticks). After the deadline an unfinished job runs on
/// on-demand until done (a miss). invalid_argument for a bad model or a
/// short trace.
[[nodiscard]] result<spot_run> replay(const spot_job_model& m,
                                      std::span<const uint8_t> available,
                                      const tick_policy& policy);

/// The offline optimum: the cheapest action per (tick, state) by backward
/// dynamic programming over the whole trace window (it knows the future).
class optimal_plan {
public:
  /// infeasible (invalid_argument) when no schedule meets the deadline.
  [[nodiscard]] static result<optimal_plan> solve(const spot_job_model& m,
                                                  std::span<const uint8_t> available);
  /// The optimum's cost in micro-USD x ms / hour units (exact).
  int64_t cost_units() const noexcept { return cost_units_; }
  micro_usd cost() const noexcept { return micro_usd{cost_units_ / 3'600'000}; }
  /// The optimum as a policy (for `replay`; states it cannot reach wait).
  /// The plan must outlive the policy.
  tick_policy policy() const;
  /// States per tick of the programme (its size is this x deadline_ticks).
  size_t states_per_tick() const noexcept { return states_; }

private:
  size_t index(const job_state& s) const noexcept;
  spot_job_model model_;
  size_t states_ = 0;
  std::vector<uint8_t> choice_; // [tick * states_ + index] -> tick_action
  int64_t cost_units_ = 0;
};

/// A job run on on-demand from tick 0: (restart + work) ticks.
micro_usd all_on_demand_cost(const spot_job_model& m);

/// availability[t] = counts[t] >= need.
std::vector<uint8_t> availability_from_counts(std::span<const uint32_t> counts,
                                              uint32_t need = 1);

} // namespace troupe::finops
