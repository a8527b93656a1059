#include "troupe/finops/spot.hpp"

#include "troupe/finops/errc.hpp"
#include "troupe/finops/ledger.hpp"

#include <algorithm>

namespace troupe::finops {
namespace {

std::string seconds_text(duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

} // namespace

result<void> spot_policy::validate() const {
  std::string problems;
  auto add = [&](const std::string& p) {
    problems += (problems.empty() ? "" : "\n") + p;
  };
  if (max_spot_share_permille < 0 || max_spot_share_permille > 1000)
    add("max_spot_share_permille: expected 0..1000, got " +
        std::to_string(max_spot_share_permille));
  if (max_checkpoint_interval <= duration::zero())
    add("max_checkpoint_interval: expected > 0");
  if (notice_margin < duration::zero()) add("notice_margin: negative");
  if (!problems.empty()) return error{errc::invalid_argument, problems};
  return ok();
}

const char* to_string(spot_verdict v) noexcept {
  switch (v) {
  case spot_verdict::allowed:
    return "allowed";
  case spot_verdict::not_tolerant:
    return "not_tolerant";
  case spot_verdict::no_checkpointing:
    return "no_checkpointing";
  case spot_verdict::interval_too_long:
    return "interval_too_long";
  case spot_verdict::share_cap_exceeded:
    return "share_cap_exceeded";
  }
  return "?";
}

const char* to_string(notice_action a) noexcept {
  switch (a) {
  case notice_action::checkpoint_then_reschedule:
    return "checkpoint_then_reschedule";
  case notice_action::lose_work:
    return "lose_work";
  }
  return "?";
}

spot_decision decide_spot(const spot_policy& policy, const spot_candidate& job,
                          const tenant_gpus& held) {
  spot_decision d;
  if (!job.spot_tolerant) {
    d.verdict = spot_verdict::not_tolerant;
    d.reason = "the job is not marked spot tolerant";
    return d;
  }
  if (!job.checkpoints) {
    d.verdict = spot_verdict::no_checkpointing;
    d.reason = "the job cannot checkpoint, so a preemption would lose all its work";
    return d;
  }
  if (job.checkpoint_interval <= duration::zero() ||
      job.checkpoint_interval > policy.max_checkpoint_interval) {
    d.verdict = spot_verdict::interval_too_long;
    d.reason = "checkpoint interval " +
               (job.checkpoint_interval <= duration::zero()
                    ? std::string{"unknown"}
                    : seconds_text(job.checkpoint_interval)) +
               " exceeds the " + seconds_text(policy.max_checkpoint_interval) +
               " spot work must keep";
    return d;
  }
  const unsigned __int128 spot = held.spot + job.gpus;
  const unsigned __int128 total = held.total + job.gpus;
  const auto cap = static_cast<unsigned __int128>(
      std::max<int64_t>(0, std::min<int64_t>(1000, policy.max_spot_share_permille)));
  if (spot * 1000 > cap * total) {
    d.verdict = spot_verdict::share_cap_exceeded;
    d.reason = "tenant " + job.tenant + " would hold " +
               std::to_string(held.spot + job.gpus) + " of " +
               std::to_string(held.total + job.gpus) + " GPUs on spot, over the " +
               std::to_string(policy.max_spot_share_permille / 10) + "." +
               std::to_string(policy.max_spot_share_permille % 10) + "% cap";
    return d;
  }
  d.reason = "spot tolerant, checkpoints every " + seconds_text(job.checkpoint_interval) +
             ", tenant " + job.tenant + " within its spot share";
  return d;
}

std::optional<size_t> choose_pool(const std::vector<node_pool>& pools, uint32_t gpus,
                                  const spot_decision& decision) {
  std::optional<size_t> best;
  for (size_t i = 0; i < pools.size(); ++i) {
    const auto& p = pools[i];
    if (p.free_gpus < gpus) continue;
    if (p.capacity == placement::capacity_type::spot && !decision.allowed()) continue;
    if (!best || p.price_per_gpu_hour < pools[*best].price_per_gpu_hour) best = i;
  }
  return best;
}

notice_plan plan_preemption(const spot_policy& policy, const preemption_notice& notice,
                            const std::vector<spot_job>& jobs) {
  notice_plan plan;
  const duration window = notice.deadline - notice.received;
  for (const auto& j : jobs) {
    notice_step step;
    step.allocation = j.allocation;
    plan.gpus_to_reschedule += j.gpus;
    const bool fits = j.can_checkpoint && j.checkpoint_estimate >= duration::zero() &&
                      j.checkpoint_estimate + policy.notice_margin <= window;
    if (fits) {
      step.action = notice_action::checkpoint_then_reschedule;
      step.checkpoint_done = notice.received + j.checkpoint_estimate;
      step.reason = "checkpoint (" + seconds_text(j.checkpoint_estimate) +
                    ") + margin (" + seconds_text(policy.notice_margin) + ") fits the " +
                    seconds_text(window) + " notice for node " + notice.node +
                    "; then reschedule";
    } else {
      step.action = notice_action::lose_work;
      const time_point saved = std::max(j.started, j.last_checkpoint.value_or(j.started));
      const time_point until = std::max(saved, notice.deadline);
      step.lost_work = until - saved;
      step.lost_gpu_ms =
          (floor_ms(until) - floor_ms(saved)) * static_cast<int64_t>(j.gpus);
      step.reason =
          (j.can_checkpoint ? "checkpoint (" + seconds_text(j.checkpoint_estimate) +
                                  ") + margin (" + seconds_text(policy.notice_margin) +
                                  ") does not fit the " + seconds_text(window) + " notice"
                            : std::string{"the job cannot checkpoint"}) +
          " for node " + notice.node + "; loses " + seconds_text(step.lost_work) +
          " of work since its " + (j.last_checkpoint ? "last checkpoint" : "start") +
          " (" + std::to_string(step.lost_gpu_ms) + " GPU-ms)";
    }
    plan.lost_gpu_ms += step.lost_gpu_ms;
    plan.steps.push_back(std::move(step));
  }
  return plan;
}

const char* to_string(capacity_choice c) noexcept {
  switch (c) {
  case capacity_choice::wait:
    return "wait";
  case capacity_choice::spot:
    return "spot";
  case capacity_choice::on_demand:
    return "on_demand";
  }
  return "?";
}

namespace {

using wide = __int128;

wide ns(duration d) {
  return static_cast<wide>(d.count());
}

bool on(const deadline_progress& p, placement::capacity_type t) {
  return p.running == t;
}

} // namespace

bool deadline_forces_on_demand(const deadline_progress& p) noexcept {
  const wide checkpointed = ns(p.work_done) - ns(p.work_at_risk);
  return ns(p.elapsed) + ns(p.step) + ns(p.restart_overhead) + ns(p.work_total) -
             checkpointed >
         ns(p.deadline);
}

capacity_choice choose_capacity(const spot_decision& allowed,
                                const deadline_progress& p) {
  if (p.work_done >= p.work_total) return capacity_choice::wait;
  if (!allowed.allowed()) return capacity_choice::on_demand;
  if (deadline_forces_on_demand(p)) return capacity_choice::on_demand;
  // done / total >= at / deadline, cross-multiplied (all non-negative).
  const auto on_schedule_at = [&](wide done, wide at) {
    return done * ns(p.deadline) >= ns(p.work_total) * at;
  };
  const bool on_demand_now = on(p, placement::capacity_type::on_demand);
  if (p.spot_available) {
    if (on_demand_now) {
      // The changeover must leave the job on schedule, and leave room for
      // a second restart (back to on-demand) before the safety net.
      const wide two_restarts = ns(p.elapsed) + 2 * ns(p.restart_overhead) + ns(p.step) +
                                ns(p.work_total) - ns(p.work_done);
      if (two_restarts > ns(p.deadline) ||
          !on_schedule_at(ns(p.work_done), ns(p.elapsed) + ns(p.restart_overhead)))
        return capacity_choice::on_demand;
    }
    return capacity_choice::spot;
  }
  if (on_demand_now) return capacity_choice::on_demand; // only spot ends it (rule 3)
  return on_schedule_at(ns(p.work_done), ns(p.elapsed)) ? capacity_choice::wait
                                                        : capacity_choice::on_demand;
}

} // namespace troupe::finops
