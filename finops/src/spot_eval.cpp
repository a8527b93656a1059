#include "troupe/finops/spot_eval.hpp"

#include "troupe/finops/errc.hpp"

#include <algorithm>
#include <limits>

namespace troupe::finops {
namespace {

constexpr int64_t units_per_micro_usd = 3'600'000; // ms per hour
constexpr int64_t infinite = std::numeric_limits<int64_t>::max();

int64_t ticks_up(duration d, duration tick) {
  return (d.count() + tick.count() - 1) / tick.count();
}
int64_t ticks_down(duration d, duration tick) {
  return d.count() / tick.count();
}

void finish(job_state& s, const spot_job_model& m) {
  s = job_state{};
  s.done = m.work_ticks;
}

} // namespace

result<void> spot_job_model::validate() const {
  std::string problems;
  auto add = [&](const std::string& p) {
    problems += (problems.empty() ? "" : "\n") + p;
  };
  if (tick <= duration::zero()) add("tick: expected > 0");
  if (work_ticks < 1) add("work_ticks: expected >= 1");
  if (checkpoint_ticks < 1) add("checkpoint_ticks: expected >= 1");
  if (checkpoint_cost_ticks < 0) add("checkpoint_cost_ticks: negative");
  if (restart_ticks < 0) add("restart_ticks: negative");
  if (deadline_ticks < restart_ticks + work_ticks)
    add("deadline_ticks " + std::to_string(deadline_ticks) +
        " < restart_ticks + work_ticks = " + std::to_string(restart_ticks + work_ticks) +
        ": infeasible even on on-demand");
  if (gpus == 0) add("gpus: expected >= 1");
  if (on_demand_price_per_gpu_hour.value() < 0)
    add("on_demand_price_per_gpu_hour: negative");
  if (spot_price_per_gpu_hour.value() < 0) add("spot_price_per_gpu_hour: negative");
  if (!problems.empty()) return error{errc::invalid_argument, problems};
  return ok();
}

result<spot_job_model> to_model(const spot_job_spec& spec, duration tick) {
  if (tick <= duration::zero())
    return error{errc::invalid_argument, "tick: expected > 0"};
  if (spec.work < duration::zero() || spec.deadline < duration::zero() ||
      spec.checkpoint_interval < duration::zero() ||
      spec.checkpoint_cost < duration::zero() || spec.restart_overhead < duration::zero())
    return error{errc::invalid_argument, "spot_job_spec: negative duration"};
  spot_job_model m;
  m.tick = tick;
  m.work_ticks = ticks_up(spec.work, tick);
  m.deadline_ticks = ticks_down(spec.deadline, tick);
  m.checkpoint_ticks = std::max<int64_t>(1, ticks_down(spec.checkpoint_interval, tick));
  m.checkpoint_cost_ticks = ticks_up(spec.checkpoint_cost, tick);
  m.restart_ticks = ticks_up(spec.restart_overhead, tick);
  m.gpus = spec.gpus;
  m.on_demand_price_per_gpu_hour = spec.on_demand_price_per_gpu_hour;
  m.spot_price_per_gpu_hour = spec.spot_price_per_gpu_hour;
  if (auto v = m.validate(); !v) return v.err();
  return m;
}

const char* to_string(tick_action a) noexcept {
  switch (a) {
  case tick_action::wait:
    return "wait";
  case tick_action::spot:
    return "spot";
  case tick_action::on_demand:
    return "on_demand";
  }
  return "?";
}

int64_t preempt(const spot_job_model&, job_state& s, bool spot_available) noexcept {
  if (s.mode != run_mode::spot || spot_available) return 0;
  const int64_t lost = s.at_risk;
  s.done -= lost;
  s.mode = run_mode::none;
  s.at_risk = 0;
  s.overhead = 0;
  s.checkpointing = false;
  return lost;
}

int64_t tick_cost_units(const spot_job_model& m, tick_action a) noexcept {
  const int64_t tick_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(m.tick).count();
  switch (a) {
  case tick_action::wait:
    return 0;
  case tick_action::spot:
    return m.spot_price_per_gpu_hour.value() * static_cast<int64_t>(m.gpus) * tick_ms;
  case tick_action::on_demand:
    return m.on_demand_price_per_gpu_hour.value() * static_cast<int64_t>(m.gpus) *
           tick_ms;
  }
  return 0;
}

int64_t apply(const spot_job_model& m, job_state& s, tick_action a) noexcept {
  if (s.finished(m)) return 0;
  if (a == tick_action::wait) {
    // A voluntary stop checkpoints on the way out: nothing is lost.
    s.mode = run_mode::none;
    s.at_risk = 0;
    s.overhead = 0;
    s.checkpointing = false;
    return 0;
  }
  const run_mode want = a == tick_action::spot ? run_mode::spot : run_mode::on_demand;
  if (s.mode != want) { // a new instance: restart ticks first
    s.mode = want;
    s.at_risk = 0;
    s.overhead = m.restart_ticks;
    s.checkpointing = false;
  }
  if (s.overhead > 0) {
    --s.overhead;
    if (s.checkpointing && s.overhead == 0) {
      s.checkpointing = false;
      s.at_risk = 0;
    }
  } else {
    ++s.done;
    if (want == run_mode::spot) ++s.at_risk;
    if (s.done >= m.work_ticks) {
      const int64_t cost = tick_cost_units(m, a);
      finish(s, m);
      return cost;
    }
    if (s.at_risk >= m.checkpoint_ticks) {
      if (m.checkpoint_cost_ticks == 0) {
        s.at_risk = 0;
      } else {
        s.checkpointing = true;
        s.overhead = m.checkpoint_cost_ticks;
      }
    }
  }
  return tick_cost_units(m, a);
}

deadline_progress to_progress(const spot_job_model& m, const tick_view& v) {
  deadline_progress p;
  const job_state& s = *v.state;
  p.elapsed = m.tick * v.tick;
  p.deadline = m.tick * m.deadline_ticks;
  p.work_total = m.tick * m.work_ticks;
  p.work_done = m.tick * s.done;
  p.work_at_risk = m.tick * s.at_risk;
  p.restart_overhead = m.tick * m.restart_ticks;
  p.step = m.tick;
  if (s.mode == run_mode::spot) p.running = placement::capacity_type::spot;
  if (s.mode == run_mode::on_demand) p.running = placement::capacity_type::on_demand;
  p.spot_available = v.spot_available;
  return p;
}

namespace {

tick_action to_action(capacity_choice c) {
  switch (c) {
  case capacity_choice::wait:
    return tick_action::wait;
  case capacity_choice::spot:
    return tick_action::spot;
  case capacity_choice::on_demand:
    return tick_action::on_demand;
  }
  return tick_action::wait;
}

} // namespace

tick_policy greedy_policy() {
  return [](const spot_job_model& m, const tick_view& v) {
    if (deadline_forces_on_demand(to_progress(m, v))) return tick_action::on_demand;
    return v.spot_available ? tick_action::spot : tick_action::wait;
  };
}

tick_policy troupe_policy(const spot_policy& policy, const tenant_gpus& held) {
  return [policy, held](const spot_job_model& m, const tick_view& v) {
    spot_candidate job;
    job.gpus = m.gpus;
    job.spot_tolerant = true;
    job.checkpoints = true;
    job.checkpoint_interval = m.tick * m.checkpoint_ticks;
    const spot_decision allowed = decide_spot(policy, job, held);
    return to_action(choose_capacity(allowed, to_progress(m, v)));
  };
}

result<spot_run> replay(const spot_job_model& m, std::span<const uint8_t> available,
                        const tick_policy& policy) {
  if (auto v = m.validate(); !v) return v.err();
  if (available.size() < static_cast<size_t>(m.deadline_ticks))
    return error{errc::invalid_argument,
                 "availability trace has " + std::to_string(available.size()) +
                     " ticks, the deadline needs " + std::to_string(m.deadline_ticks)};
  spot_run run;
  job_state s;
  const int64_t limit = m.deadline_ticks + m.restart_ticks + m.work_ticks + 1;
  for (int64_t t = 0; !s.finished(m) && t < limit; ++t) {
    tick_action a = tick_action::on_demand; // after the deadline: finish on on-demand
    if (t < m.deadline_ticks) {
      const bool av = available[static_cast<size_t>(t)] != 0;
      if (s.mode == run_mode::spot && !av) {
        ++run.preemptions;
        run.lost_work_ticks += preempt(m, s, av);
      }
      a = policy(m, tick_view{t, av, &s});
      if (a == tick_action::spot && !av) a = tick_action::wait;
    }
    run.cost_units += apply(m, s, a);
    if (a == tick_action::spot) ++run.spot_ticks;
    if (a == tick_action::on_demand) ++run.on_demand_ticks;
    if (s.finished(m)) run.finish_tick = t + 1;
  }
  run.met_deadline = s.finished(m) && run.finish_tick <= m.deadline_ticks;
  run.cost = micro_usd{run.cost_units / units_per_micro_usd};
  return run;
}

// State index: 0 finished; then per done in [0, work): none (1), on-demand
// (restart ticks left 0..r), spot (at risk 0..k-1 working, restart ticks
// left 1..r, checkpoint ticks left 1..c).
size_t optimal_plan::index(const job_state& s) const noexcept {
  const auto& m = model_;
  if (s.finished(m)) return 0;
  const auto w = static_cast<size_t>(m.work_ticks);
  const auto r = static_cast<size_t>(m.restart_ticks);
  const auto k = static_cast<size_t>(m.checkpoint_ticks);
  const auto c = static_cast<size_t>(m.checkpoint_cost_ticks);
  const auto done = static_cast<size_t>(s.done);
  switch (s.mode) {
  case run_mode::none:
    return 1 + done;
  case run_mode::on_demand:
    return 1 + w + done * (r + 1) + static_cast<size_t>(s.overhead);
  case run_mode::spot: {
    size_t sub = 0;
    if (s.overhead == 0)
      sub = static_cast<size_t>(s.at_risk);
    else if (!s.checkpointing)
      sub = k + static_cast<size_t>(s.overhead) - 1;
    else
      sub = k + r + static_cast<size_t>(s.overhead) - 1;
    return 1 + w + w * (r + 1) + done * (k + r + c) + sub;
  }
  }
  return 0;
}

result<optimal_plan> optimal_plan::solve(const spot_job_model& m,
                                         std::span<const uint8_t> available) {
  if (auto v = m.validate(); !v) return v.err();
  if (available.size() < static_cast<size_t>(m.deadline_ticks))
    return error{errc::invalid_argument,
                 "availability trace has " + std::to_string(available.size()) +
                     " ticks, the deadline needs " + std::to_string(m.deadline_ticks)};
  optimal_plan plan;
  plan.model_ = m;
  const int64_t w = m.work_ticks, r = m.restart_ticks, k = m.checkpoint_ticks,
                c = m.checkpoint_cost_ticks;
  const auto n = static_cast<size_t>(1 + w * (1 + (r + 1) + (k + r + c)));
  plan.states_ = n;
  const auto ticks = static_cast<size_t>(m.deadline_ticks);
  plan.choice_.assign(ticks * n, static_cast<uint8_t>(tick_action::wait));

  // Every state, in index order (unreachable ones included: they are
  // harmless and keep the loop simple).
  std::vector<job_state> states(n);
  states[0].done = w;
  for (int64_t d = 0; d < w; ++d) {
    job_state s;
    s.done = d;
    states[plan.index(s)] = s;
    s.mode = run_mode::on_demand;
    for (int64_t o = 0; o <= r; ++o) {
      s.overhead = o;
      states[plan.index(s)] = s;
    }
    s = job_state{run_mode::spot, d, 0, 0, false};
    for (int64_t a = 0; a < k; ++a) {
      s.at_risk = a;
      states[plan.index(s)] = s;
    }
    s.at_risk = 0;
    for (int64_t o = 1; o <= r; ++o) {
      s.overhead = o;
      states[plan.index(s)] = s;
    }
    s.at_risk = k;
    s.checkpointing = true;
    for (int64_t o = 1; o <= c; ++o) {
      s.overhead = o;
      states[plan.index(s)] = s;
    }
  }

  std::vector<int64_t> next(n, infinite), cur(n, infinite);
  next[0] = 0;
  // Ties go to progress (spot, then on-demand, then wait): of two plans
  // that cost the same, the one that finishes earlier.
  constexpr tick_action order[] = {tick_action::spot, tick_action::on_demand,
                                   tick_action::wait};
  for (size_t t = ticks; t-- > 0;) {
    const bool av = available[t] != 0;
    cur[0] = 0;
    uint8_t* choice = plan.choice_.data() + t * n;
    for (size_t i = 1; i < n; ++i) {
      const job_state& s0 = states[i];
      if (s0.at_risk > s0.done) { // unreachable
        cur[i] = infinite;
        continue;
      }
      job_state p = s0;
      preempt(m, p, av);
      int64_t best = infinite;
      tick_action best_a = tick_action::wait;
      for (tick_action a : order) {
        if (a == tick_action::spot && !av) continue;
        job_state q = p;
        const int64_t u = apply(m, q, a);
        const int64_t rest = next[plan.index(q)];
        if (rest == infinite) continue;
        if (u + rest < best) {
          best = u + rest;
          best_a = a;
        }
      }
      cur[i] = best;
      choice[i] = static_cast<uint8_t>(best_a);
    }
    std::swap(cur, next);
  }
  const int64_t total = next[plan.index(job_state{})];
  if (total == infinite)
    return error{errc::invalid_argument, "no schedule meets the deadline"};
  plan.cost_units_ = total;
  return plan;
}

tick_policy optimal_plan::policy() const {
  return [this](const spot_job_model&, const tick_view& v) {
    // The state after preemption is a state of its own in the programme
    // (preempting it again changes nothing), so its entry is its choice.
    const size_t t = static_cast<size_t>(v.tick);
    if (t >= static_cast<size_t>(model_.deadline_ticks)) return tick_action::on_demand;
    return static_cast<tick_action>(choice_[t * states_ + index(*v.state)]);
  };
}

micro_usd all_on_demand_cost(const spot_job_model& m) {
  return micro_usd{(m.restart_ticks + m.work_ticks) *
                   tick_cost_units(m, tick_action::on_demand) / units_per_micro_usd};
}

std::vector<uint8_t> availability_from_counts(std::span<const uint32_t> counts,
                                              uint32_t need) {
  std::vector<uint8_t> out(counts.size());
  for (size_t i = 0; i < counts.size(); ++i)
    out[i] = counts[i] >= need ? 1 : 0;
  return out;
}

} // namespace troupe::finops
