#include "troupe/finops/spot_eval.hpp"
#include "troupe/sim/trace.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::duration;
using troupe::micro_usd;
using troupe::placement::capacity_type;
using namespace troupe::finops;

namespace {

constexpr int64_t units_per_micro_usd = 3'600'000;

/// A model with a 1 h tick and round prices: 1 USD/h on-demand, 0.25 on spot.
spot_job_model tiny(int64_t work, int64_t deadline, int64_t restart, int64_t interval,
                    int64_t checkpoint_cost = 0) {
  spot_job_model m;
  m.tick = 1h;
  m.work_ticks = work;
  m.deadline_ticks = deadline;
  m.restart_ticks = restart;
  m.checkpoint_ticks = interval;
  m.checkpoint_cost_ticks = checkpoint_cost;
  m.on_demand_price_per_gpu_hour = micro_usd{1'000'000};
  m.spot_price_per_gpu_hour = micro_usd{250'000};
  return m;
}

std::vector<uint8_t> trace_of(const std::string& bits) {
  std::vector<uint8_t> v;
  for (char c : bits)
    v.push_back(c == '1' ? 1 : 0);
  return v;
}

spot_policy open_policy() {
  spot_policy p;
  p.max_spot_share_permille = 1000;
  p.max_checkpoint_interval = 24h; // the tiny models checkpoint every few 1 h ticks
  return p;
}

tick_policy troupe_open() {
  return troupe_policy(open_policy(), tenant_gpus{});
}

spot_run run(const spot_job_model& m, const std::vector<uint8_t>& av,
             const tick_policy& p) {
  auto r = replay(m, av, p);
  REQUIRE_MESSAGE(r, r.err().to_string());
  return *r;
}

/// The cheapest cost over every sequence of actions (3^deadline at most).
int64_t brute_force(const spot_job_model& m, const std::vector<uint8_t>& av, int64_t t,
                    job_state s) {
  if (s.finished(m)) return 0;
  if (t >= m.deadline_ticks) return -1;
  const bool a_ok = av[static_cast<size_t>(t)] != 0;
  preempt(m, s, a_ok);
  int64_t best = -1;
  for (tick_action a : {tick_action::wait, tick_action::spot, tick_action::on_demand}) {
    if (a == tick_action::spot && !a_ok) continue;
    job_state q = s;
    const int64_t u = apply(m, q, a);
    const int64_t rest = brute_force(m, av, t + 1, q);
    if (rest < 0) continue;
    if (best < 0 || u + rest < best) best = u + rest;
  }
  return best;
}

int64_t spot_units(const spot_job_model& m) {
  return tick_cost_units(m, tick_action::spot);
}
int64_t od_units(const spot_job_model& m) {
  return tick_cost_units(m, tick_action::on_demand);
}

} // namespace

TEST_CASE("to_model rounds toward the job's harm and validates") {
  spot_job_spec spec;
  spec.work = 48h;
  spec.deadline = 52h;
  spec.restart_overhead = 12min;
  spec.checkpoint_interval = 30min;
  auto m = to_model(spec, 195s);
  REQUIRE(m);
  CHECK(m->work_ticks == 887);     // 172800 / 195 = 886.15, up
  CHECK(m->deadline_ticks == 960); // 187200 / 195 = 960
  CHECK(m->restart_ticks == 4);    // 720 / 195 = 3.7, up
  CHECK(m->checkpoint_ticks == 9); // 1800 / 195 = 9.2, down
  spec.deadline = 48h;             // no room for the restart
  CHECK_FALSE(to_model(spec, 195s));
  CHECK_FALSE(to_model(spec, 0s));
}

TEST_CASE("always available: every policy pays spot for restart + work") {
  const auto m = tiny(6, 12, 1, 2);
  const auto av = trace_of("111111111111");
  const int64_t expect = 7 * spot_units(m);
  auto opt = optimal_plan::solve(m, av);
  REQUIRE(opt);
  CHECK(opt->cost_units() == expect);
  for (const auto& p : {greedy_policy(), troupe_open(), opt->policy()}) {
    const auto r = run(m, av, p);
    CHECK(r.cost_units == expect);
    CHECK(r.cost == micro_usd{expect / units_per_micro_usd});
    CHECK(r.met_deadline);
    CHECK(r.finish_tick == 7);
    CHECK(r.lost_work_ticks == 0);
    CHECK(r.spot_ticks == 7);
    CHECK(r.on_demand_ticks == 0);
  }
}

TEST_CASE("never available: every policy pays on-demand for restart + work") {
  const auto m = tiny(6, 12, 2, 3);
  const auto av = trace_of("000000000000");
  const int64_t expect = 8 * od_units(m);
  CHECK(all_on_demand_cost(m) == micro_usd{expect / units_per_micro_usd});
  auto opt = optimal_plan::solve(m, av);
  REQUIRE(opt);
  CHECK(opt->cost_units() == expect);
  for (const auto& p : {greedy_policy(), troupe_open(), opt->policy()}) {
    const auto r = run(m, av, p);
    CHECK(r.cost_units == expect);
    CHECK(r.met_deadline);
    CHECK(r.on_demand_ticks == 8);
  }
  // Greedy waits for spot until the safety net fires, at the last moment.
  const auto g = run(m, av, greedy_policy());
  CHECK(g.finish_tick == 12);
}

TEST_CASE("troupe's share cap keeps a tenant's lone job off spot") {
  const auto m = tiny(6, 12, 1, 2);
  const auto av = trace_of("111111111111");
  auto capped = spot_policy{}; // 50% cap
  capped.max_checkpoint_interval = 24h;
  const auto r = run(m, av, troupe_policy(capped, tenant_gpus{}));
  CHECK(r.spot_ticks == 0);
  CHECK(r.cost_units == 7 * od_units(m));
  // The default 30 min interval refuses the 2 h one of this model.
  CHECK(run(m, av, troupe_open()).spot_ticks == 7);
  CHECK(run(m, av, troupe_policy(spot_policy{}, tenant_gpus{0, 3})).spot_ticks == 0);
  // With 3 GPUs on on-demand already, 1 of 4 on spot is within the cap.
  const auto r2 = run(m, av, troupe_policy(capped, tenant_gpus{0, 3}));
  CHECK(r2.cost_units == 7 * spot_units(m));
}

TEST_CASE("a preemption loses the work since the last checkpoint") {
  // k = 3, no restart: ticks 0-2 save 3, tick 3 does 1 more, tick 4 preempts.
  const auto m = tiny(5, 12, 0, 3);
  const auto av = trace_of("111101111111");
  const auto g = run(m, av, greedy_policy());
  CHECK(g.preemptions == 1);
  CHECK(g.lost_work_ticks == 1);
  CHECK(g.spot_ticks == 6); // 4 before, 2 after (redo 1, then the last)
  CHECK(g.finish_tick == 7);
  CHECK(g.met_deadline);

  // A checkpoint in progress protects nothing: with a 1-tick checkpoint the
  // preemption at tick 3 (mid-checkpoint) loses all 3 ticks.
  const auto mc = tiny(5, 14, 0, 3, 1);
  const auto avc = trace_of("11101111111111");
  const auto gc = run(mc, avc, greedy_policy());
  CHECK(gc.lost_work_ticks == 3);
  CHECK(gc.preemptions == 1);
}

TEST_CASE("greedy burns its slack waiting and then pays on-demand to the end") {
  // Spot comes back at tick 3, when greedy's slack is gone: it commits to
  // on-demand. The optimum waits for it and runs all on spot.
  const auto m = tiny(6, 10, 1, 2);
  const auto av = trace_of("0001111111");
  auto opt = optimal_plan::solve(m, av);
  REQUIRE(opt);
  CHECK(opt->cost_units() == brute_force(m, av, 0, job_state{}));
  CHECK(opt->cost_units() == 7 * spot_units(m));
  const auto g = run(m, av, greedy_policy());
  CHECK(g.met_deadline);
  CHECK(g.cost_units == 7 * od_units(m));
  CHECK(g.cost_units > opt->cost_units());

  // Spot goes away in the middle: greedy idles through the outage and is
  // then forced onto on-demand for the rest although spot returns; troupe
  // falls behind its uniform progress, bridges the outage on on-demand,
  // and goes back to spot.
  const auto m2 = tiny(8, 16, 1, 2);
  const auto av2 = trace_of("1110000000111111");
  auto opt2 = optimal_plan::solve(m2, av2);
  REQUIRE(opt2);
  CHECK(opt2->cost_units() == brute_force(m2, av2, 0, job_state{}));
  const auto g2 = run(m2, av2, greedy_policy());
  const auto t2 = run(m2, av2, troupe_open());
  CHECK(g2.met_deadline);
  CHECK(t2.met_deadline);
  CHECK(opt2->cost_units() <= t2.cost_units);
  CHECK(g2.cost_units == 3 * spot_units(m2) + 7 * od_units(m2));
  CHECK(t2.cost_units == 6 * spot_units(m2) + 5 * od_units(m2));
  MESSAGE("greedy ", g2.cost_units / units_per_micro_usd, " troupe ",
          t2.cost_units / units_per_micro_usd, " optimum ",
          opt2->cost_units() / units_per_micro_usd, " (micro-USD)");
}

TEST_CASE("the programme equals brute force on random tiny traces") {
  std::mt19937_64 rng(7);
  int checked = 0;
  for (int i = 0; i < 300; ++i) {
    const int64_t work = 1 + static_cast<int64_t>(rng() % 4);
    const int64_t restart = static_cast<int64_t>(rng() % 3);
    const int64_t interval = 1 + static_cast<int64_t>(rng() % 3);
    const int64_t cost = static_cast<int64_t>(rng() % 2);
    const int64_t deadline =
        std::min<int64_t>(9, work + restart + static_cast<int64_t>(rng() % 5));
    if (deadline < work + restart) continue;
    const auto m = tiny(work, deadline, restart, interval, cost);
    std::vector<uint8_t> av(static_cast<size_t>(deadline));
    for (auto& a : av)
      a = (rng() % 3) != 0 ? 1 : 0;
    auto opt = optimal_plan::solve(m, av);
    REQUIRE(opt);
    const int64_t bf = brute_force(m, av, 0, job_state{});
    CHECK(opt->cost_units() == bf);
    // Replaying the plan gives what the programme said, within the deadline.
    const auto r = run(m, av, opt->policy());
    CHECK(r.cost_units == opt->cost_units());
    CHECK(r.met_deadline);
    // Neither online policy beats it, and both meet the deadline.
    for (const auto& p : {greedy_policy(), troupe_open()}) {
      const auto o = run(m, av, p);
      CHECK(o.met_deadline);
      CHECK(o.cost_units >= bf);
    }
    ++checked;
  }
  CHECK(checked > 200);
}

TEST_CASE("choose_capacity: uniform progress, hysteresis and the safety net") {
  spot_decision yes;
  deadline_progress p;
  p.deadline = 100h;
  p.work_total = 50h;
  p.restart_overhead = 1h;
  p.step = 1h;
  p.elapsed = 10h;
  p.work_done = 5h; // exactly on schedule (5 of 50 at 10 of 100)
  p.spot_available = true;
  CHECK(choose_capacity(yes, p) == capacity_choice::spot);
  p.spot_available = false;
  CHECK(choose_capacity(yes, p) == capacity_choice::wait);
  p.work_done = 4h; // behind
  CHECK(choose_capacity(yes, p) == capacity_choice::on_demand);
  // On on-demand it stays while spot is away, however far ahead.
  p.running = capacity_type::on_demand;
  p.work_done = 9h;
  CHECK(choose_capacity(yes, p) == capacity_choice::on_demand);
  // Spot back: leave on-demand only if still on schedule after the restart.
  p.spot_available = true;
  p.work_done = 5h; // expected at 11h is 5.5h
  CHECK(choose_capacity(yes, p) == capacity_choice::on_demand);
  p.work_done = 5h + 30min;
  CHECK(choose_capacity(yes, p) == capacity_choice::spot);
  // The safety net: 48 h left to do, 1 h restart, 1 h step, 50 h left.
  p.running.reset();
  p.elapsed = 50h;
  p.work_done = 2h;
  CHECK_FALSE(deadline_forces_on_demand(p));
  p.work_at_risk = 1min; // a preemption would put it past the deadline
  CHECK(deadline_forces_on_demand(p));
  CHECK(choose_capacity(yes, p) == capacity_choice::on_demand);
  // Not allowed on spot: on-demand; done: wait.
  spot_decision no;
  no.verdict = spot_verdict::not_tolerant;
  p.work_at_risk = 0h;
  p.elapsed = 10h;
  p.work_done = 5h;
  CHECK(choose_capacity(no, p) == capacity_choice::on_demand);
  p.work_done = 50h;
  CHECK(choose_capacity(yes, p) == capacity_choice::wait);
}

TEST_CASE("real spot traces: the optimum is never beaten and deadlines hold") {
  const std::filesystem::path dir =
      std::filesystem::path{TROUPE_TRACES_DIR} / "spot-traces";
  if (!std::filesystem::exists(dir)) {
    MESSAGE("skipped: no real spot traces at ", dir.string());
    return;
  }
  int segments = 0;
  for (const auto& sub : {"availability", "preemption"}) {
    for (const auto& f : std::filesystem::directory_iterator(dir / sub)) {
      auto t = troupe::sim::load_spot_trace(f.path().string());
      REQUIRE_MESSAGE(t, t.err().to_string());
      const auto av = availability_from_counts(t->counts);
      // A 12 h job at 195 s ticks, 3 h at 32 s ticks (the programme grows
      // with ticks squared); tight and loose deadlines as in the paper.
      const duration work = t->tick >= 60s ? duration{12h} : duration{3h};
      for (int slack :
           {52, 70}) { // deadline = work x slack / 48, as 52 h / 70 h for 48 h
        spot_job_spec spec;
        spec.work = work;
        spec.deadline = work * slack / 48;
        spec.restart_overhead = 12min;
        auto m = to_model(spec, t->tick);
        REQUIRE(m);
        const size_t span = static_cast<size_t>(m->deadline_ticks);
        for (int j = 0; j < 4; ++j) {
          const size_t off = (av.size() - span) * static_cast<size_t>(j) / 4;
          const std::span<const uint8_t> seg{av.data() + off, span};
          auto opt = optimal_plan::solve(*m, seg);
          REQUIRE(opt);
          auto o = replay(*m, seg, opt->policy());
          auto g = replay(*m, seg, greedy_policy());
          auto tr = replay(*m, seg, troupe_open());
          REQUIRE((o && g && tr));
          INFO(f.path().filename().string(), " offset ", off, " slack ", slack);
          CHECK(o->cost_units == opt->cost_units());
          CHECK(o->met_deadline);
          CHECK(tr->met_deadline);
          CHECK(g->met_deadline);
          CHECK(opt->cost_units() <= tr->cost_units);
          CHECK(opt->cost_units() <= g->cost_units);
          ++segments;
        }
      }
    }
  }
  CHECK(segments == 24);
}
