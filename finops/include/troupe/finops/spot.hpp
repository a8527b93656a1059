#pragma once
/// Spot capacity policy: which work may run on spot nodes, which pool to
/// use, and what to do when a spot node gets a preemption notice.
///
/// Plain code over plain data: no actors, no I/O, no clock (the caller
/// passes the notice's times). The checkpoint semantics match the
/// simulator's cost model (sim/cost_model.hpp, `evict_segment`): with a
/// notice at least as long as the checkpoint the job checkpoints and loses
/// nothing; otherwise it runs until the notice ends and loses the work since
/// its last completed checkpoint.

#include "troupe/finops/idle.hpp"
#include "troupe/placement/topology.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/strong_id.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe::finops {

/// A node pool: nodes bought the same way at the same price.
struct node_pool {
  std::string name;
  placement::capacity_type capacity = placement::capacity_type::on_demand;
  micro_usd price_per_gpu_hour{0};
  uint32_t free_gpus = 0; ///< GPUs free now
};

/// The spot policy.
struct spot_policy {
  /// At most this share (permille of the tenant's GPUs, counting the new
  /// job) may run on spot. 0 forbids spot; 1000 allows all.
  int64_t max_spot_share_permille = 500;
  /// Spot work must checkpoint at least this often.
  duration max_checkpoint_interval = std::chrono::minutes{30};
  /// Time a preempted job needs after its checkpoint completes before the
  /// node goes (flush, deregister): a checkpoint counts as in time only if
  /// it ends this long before the deadline.
  duration notice_margin = std::chrono::seconds{10};

  /// invalid_argument listing every bad value.
  [[nodiscard]] result<void> validate() const;
};

/// A job asking to run.
struct spot_candidate {
  std::string tenant = "default";
  uint32_t gpus = 1;
  bool spot_tolerant = false; ///< the owner allows spot (gang_request::spot_tolerant)
  bool checkpoints = false;   ///< the workload can checkpoint and restore
  duration checkpoint_interval{0}; ///< how often it checkpoints; 0: unknown
};

/// GPUs a tenant holds now.
struct tenant_gpus {
  uint64_t spot = 0;
  uint64_t total = 0; ///< all capacity types, spot included
};

/// Why a job may or may not use spot.
enum class spot_verdict : uint8_t {
  allowed,
  not_tolerant,       ///< the owner did not mark it spot tolerant
  no_checkpointing,   ///< it cannot checkpoint
  interval_too_long,  ///< it checkpoints less often than the policy requires
  share_cap_exceeded, ///< the tenant's spot share would exceed the cap
};
const char* to_string(spot_verdict v) noexcept;

struct spot_decision {
  spot_verdict verdict = spot_verdict::allowed;
  std::string reason;
  bool allowed() const noexcept { return verdict == spot_verdict::allowed; }
};

/// Whether `job` may go on spot given what its tenant already holds.
/// Checked in the order of spot_verdict; the share test is
/// (spot + gpus) * 1000 <= cap * (total + gpus).
spot_decision decide_spot(const spot_policy& policy, const spot_candidate& job,
                          const tenant_gpus& held);

/// The cheapest pool with `gpus` free that `decision` allows (spot only when
/// allowed); ties go to the earlier pool. Returns an index into `pools`, or
/// nullopt when none fits.
std::optional<size_t> choose_pool(const std::vector<node_pool>& pools, uint32_t gpus,
                                  const spot_decision& decision);

/// A spot preemption notice for one node (or pool): it goes at `deadline`.
struct preemption_notice {
  std::string node;
  time_point received{};
  time_point deadline{};
};

/// A job running on the node that got the notice.
struct spot_job {
  allocation_id allocation{0};
  uint32_t gpus = 1;
  bool can_checkpoint = true;
  duration checkpoint_estimate{0}; ///< how long one checkpoint takes
  time_point started{};            ///< when this run started
  /// Last completed checkpoint of this run; nullopt: none yet (a loss goes
  /// back to `started`).
  std::optional<time_point> last_checkpoint;
};

enum class notice_action : uint8_t {
  checkpoint_then_reschedule, ///< checkpoint now, then place it elsewhere
  lose_work,                  ///< cannot checkpoint in time: killed at the deadline
};
const char* to_string(notice_action a) noexcept;

/// What happens to one job.
struct notice_step {
  allocation_id allocation{0};
  notice_action action = notice_action::checkpoint_then_reschedule;
  time_point checkpoint_done{}; ///< checkpoint: when it should complete
  duration lost_work{0};   ///< lose_work: work time lost (deadline - last checkpoint)
  int64_t lost_gpu_ms = 0; ///< lost_work in GPU-ms (floor_ms rule of ledger.hpp)
  std::string reason;
};

/// The plan for a notice.
struct notice_plan {
  std::vector<notice_step> steps;  ///< one per job, in input order
  int64_t lost_gpu_ms = 0;         ///< sum over the steps
  uint32_t gpus_to_reschedule = 0; ///< GPUs of every job (all leave the node)
};

/// Plans a notice: a job checkpoints then reschedules when it can
/// checkpoint and received + checkpoint_estimate + notice_margin <=
/// deadline; otherwise it keeps running until the deadline and loses the
/// work since its last checkpoint (or since it started), which is recorded.
/// Checkpoints of different jobs run in parallel.
notice_plan plan_preemption(const spot_policy& policy, const preemption_notice& notice,
                            const std::vector<spot_job>& jobs);

// --- Deadline-aware capacity choice ----------------------------------------

/// What a deadline-bound job should run on for the next step.
enum class capacity_choice : uint8_t {
  wait,      ///< run nothing (no cost, no progress)
  spot,      ///< run on spot
  on_demand, ///< run on on-demand
};
const char* to_string(capacity_choice c) noexcept;

/// Where a job that must finish `work_total` of work within `deadline` of
/// its submission stands, as seen by the policy at `elapsed`.
struct deadline_progress {
  duration elapsed{0};
  duration deadline{0};
  duration work_total{0};
  duration work_done{0};    ///< work done so far, counting work not yet checkpointed
  duration work_at_risk{0}; ///< of work_done, what a preemption now would lose
  /// Wall time a new start (or a changeover between spot and on-demand)
  /// takes before work resumes: reschedule, restore the checkpoint, warm up.
  duration restart_overhead{0};
  duration step{0}; ///< time until the policy is asked again (> 0)
  /// What the job runs on now; nullopt: nothing (waiting, or just preempted).
  std::optional<placement::capacity_type> running;
  bool spot_available = false; ///< spot capacity can be had now
};

/// The safety net: true when the job can no longer afford a step off
/// on-demand. Off on-demand for one step, the worst case is a preemption at
/// its end that keeps only the checkpointed work (work_done -
/// work_at_risk), after which on-demand needs a restart and the rest:
///   elapsed + step + restart_overhead + (work_total - checkpointed) > deadline.
/// Greedy and choose_capacity both obey it, so neither misses a deadline
/// that was feasible when the job started (deadline >= restart + work).
bool deadline_forces_on_demand(const deadline_progress& p) noexcept;

/// troupe's deadline-aware spot rule, in the spirit of Uniform Progress
/// (Wu et al., "Can't Be Late", NSDI'24). The job should have done the
/// share of its work that the share of its deadline gone asks for
/// (expected = work_total * elapsed / deadline). In order:
/// 1. work done: wait. Spot not allowed (`allowed`, decide_spot): on-demand.
/// 2. The safety net (deadline_forces_on_demand): on-demand.
/// 3. Spot available: spot; except that a job on on-demand moves to spot
///    only when it stays on schedule after paying the changeover
///    (work_done >= expected at elapsed + restart_overhead) and its slack
///    still holds a second restart back to on-demand (elapsed + step +
///    2 x restart_overhead + work left <= deadline); else it stays on
///    on-demand.
/// 4. Spot unavailable: a job on on-demand keeps it (it leaves on-demand
///    only for spot, by 3: stopping to wait would pay a restart for every
///    few steps it gains); a job behind schedule (work_done < expected)
///    takes on-demand; otherwise it waits for spot.
/// (Measured on the real traces, docs/FINOPS-EXPERIMENT.md: leaving
/// on-demand to wait once ahead by a restart overhead, Uniform Progress's
/// plain hysteresis, cost more than all on-demand on a low-availability
/// zone; requiring a restart's lead before moving to spot cost more too.)
/// Greedy differs only in 3 and 4: spot whenever available, otherwise wait
/// until the safety net forces on-demand. Integer arithmetic throughout.
capacity_choice choose_capacity(const spot_decision& allowed, const deadline_progress& p);

} // namespace troupe::finops
