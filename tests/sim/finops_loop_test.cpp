// FinOps in the simulator's loop (sim/finops_loop.hpp): the idle model,
// the detector's reclaims carried out by the engine, the ledger's
// conservation, spot decided by the spot policy, and a sub-sampled replay
// of the Philly trace.

#include "troupe/finops/ledger.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/sim/engine.hpp"
#include "troupe/sim/finops_loop.hpp"
#include "troupe/sim/trace.hpp"

#include <doctest/doctest.h>
#include <filesystem>

using namespace troupe;
using namespace troupe::sim;
using namespace std::chrono_literals;
namespace pl = troupe::placement;
using finops::workload_class;

namespace {

constexpr micro_usd od_price{3'060'000};
constexpr micro_usd spot_price{918'000};

pl::cluster_topology cluster(uint32_t racks, uint32_t nodes, uint32_t gpus,
                             double spot_fraction = 0.0) {
  pl::generated_cluster g;
  g.racks = racks;
  g.nodes_per_rack = nodes;
  g.gpus_per_node = gpus;
  auto topo = pl::generate_cluster(g);
  REQUIRE(price_nodes(topo, od_price, spot_fraction, spot_price, 7).ok());
  return topo;
}

trace_job job(std::string name, duration submit, duration run, uint32_t gpus) {
  trace_job j;
  j.name = std::move(name);
  j.submit = submit;
  j.run_time = run;
  j.gpus = gpus;
  j.gpus_per_bundle = 8;
  return j;
}

idle_class_model idle_class(double p, double lo, double hi, double tail) {
  idle_class_model m;
  m.idle_job_probability = p;
  m.idle_share_min = lo;
  m.idle_share_max = hi;
  m.tail_probability = tail;
  return m;
}

sim_config config(pl::cluster_topology topo, finops_mode mode, const idle_model& m) {
  sim_config c;
  c.topology = std::move(topo);
  c.policy = parse_policy("troupe").value();
  finops_loop_config f;
  f.mode = mode;
  f.model = m;
  c.finops = f;
  return c;
}

/// A light synthetic trace: 400 jobs of at most 32 GPUs and 12 h.
trace light_trace(uint64_t seed) {
  synthetic_trace p;
  p.jobs = 400;
  p.arrivals_per_hour = 10;
  p.max_run_time = 12h;
  p.seed = seed;
  return generate_trace(p).value();
}

/// The invariants every run must keep.
void check_invariants(const sim_result& r) {
  REQUIRE(r.finops);
  const auto& f = *r.finops;
  CHECK(f.allocated_gpu_ms == f.ledger.gpu_ms); // conservation, exactly
  CHECK(f.ledger_entries_duplicate == 0);
  CHECK(f.ledger.cost.value() == f.spot_cost.value() + f.on_demand_cost.value());
  CHECK(f.idle_gpu_ms == f.idle_held_gpu_ms + f.reclaimed_gpu_ms);
  CHECK(f.reclaimed_gpu_ms <= f.detected_gpu_ms);
  CHECK(f.detected_gpu_ms <= f.idle_gpu_ms);
  CHECK(f.reclaims_outside_phase <= f.reclaims);
  CHECK(f.reclaims <= f.notices); // every reclaim follows a notice
  CHECK(f.tail_completions + f.pause_returns <= f.reclaims);
  if (f.mode != finops_mode::on) {
    CHECK(f.reclaims == 0);
    CHECK(f.reclaimed_gpu_ms == 0);
    CHECK(f.tail_completions == 0);
    CHECK(f.pause_returns == 0);
  }
  if (f.mode == finops_mode::off) CHECK(f.notices == 0);
}

bool all_started_at_submit(const sim_result& r) {
  for (const auto& j : r.jobs)
    if (!j.first_start || *j.first_start != j.submit) return false;
  return true;
}

/// The same schedule: every summary figure but the event count (telemetry
/// ticks are events), and every job's start and end.
bool same_schedule(sim_result a, sim_result b) {
  a.summary.events = b.summary.events = 0;
  a.finops.reset();
  b.finops.reset();
  if (results_json({a}) != results_json({b})) return false;
  if (a.jobs.size() != b.jobs.size()) return false;
  for (size_t i = 0; i < a.jobs.size(); ++i)
    if (a.jobs[i].first_start != b.jobs[i].first_start || a.jobs[i].end != b.jobs[i].end)
      return false;
  return true;
}

std::filesystem::path traces_dir() {
  if (const char* env = std::getenv("TROUPE_TRACES_DIR"); env && *env) return env;
#ifdef TROUPE_TRACES_DIR
  return TROUPE_TRACES_DIR;
#else
  return {};
#endif
}

} // namespace

TEST_SUITE("sim.finops_loop") {

  TEST_CASE("the idle model: seeded, per job, inside the run, tails end with it") {
    auto m = idle_model::uniform(idle_class(0.5, 0.1, 0.4, 0.35), 42);
    int with = 0, tails = 0;
    for (uint64_t i = 0; i < 2000; ++i) {
      const duration run =
          std::chrono::milliseconds{1000 + 7919 * static_cast<int64_t>(i)};
      auto p = draw_idle_phase(m, workload_class::training, run, i);
      CHECK(p == draw_idle_phase(m, workload_class::training, run, i));
      if (p.empty()) continue;
      ++with;
      CHECK(p.begin >= 0ms);
      CHECK(p.end <= run);
      double share = std::chrono::duration<double>(p.end - p.begin) /
                     std::chrono::duration<double>(run);
      CHECK(share >= 0.1 - 1e-3);
      CHECK(share <= 0.4 + 1e-3);
      if (p.end == run) ++tails;
    }
    // 2000 draws at 0.5 and 0.35: far inside 5 sigma.
    CHECK(with > 850);
    CHECK(with < 1150);
    CHECK(tails > with * 0.25);
    CHECK(tails < with * 0.45);
    // Probability 0 and 1, and a job that never ends.
    auto none = idle_model::uniform(idle_class(0.0, 0.1, 0.4, 0.5), 1);
    auto all = idle_model::uniform(idle_class(1.0, 0.1, 0.4, 0.5), 1);
    for (uint64_t i = 0; i < 100; ++i) {
      CHECK(draw_idle_phase(none, workload_class::eval, 1h, i).empty());
      CHECK_FALSE(draw_idle_phase(all, workload_class::eval, 1h, i).empty());
      CHECK(draw_idle_phase(all, workload_class::eval, 0ms, i).empty());
    }
    // Per class.
    idle_model per;
    per.of(workload_class::serving) = idle_class(1.0, 0.5, 0.5, 1.0);
    CHECK(draw_idle_phase(per, workload_class::training, 1h, 3).empty());
    auto s = draw_idle_phase(per, workload_class::serving, 1h, 3);
    CHECK(s.begin == 30min);
    CHECK(s.end == 1h);
  }

  TEST_CASE("bad idle models, FinOps configs and prices are refused with what is wrong") {
    auto m = idle_model::uniform(idle_class(1.5, 0.4, 0.1, -1), 1);
    auto v = m.validate();
    REQUIRE_FALSE(v.ok());
    CHECK(v.err().code() == runtime::errc::invalid_argument);
    CHECK(v.err().message().find("idle_job_probability") != std::string::npos);
    CHECK(v.err().message().find("idle_share_min is above idle_share_max") !=
          std::string::npos);
    CHECK(v.err().message().find("tail_probability") != std::string::npos);
    finops_loop_config f;
    f.telemetry_interval = 45min; // longer than the 30 min window
    auto fv = f.validate();
    REQUIRE_FALSE(fv.ok());
    CHECK(fv.err().message().find("telemetry_interval") != std::string::npos);
    sim_config c;
    c.topology = cluster(1, 1, 8);
    c.finops = f;
    CHECK_FALSE(simulate(trace{}, c).ok());
    auto topo = cluster(1, 4, 8);
    CHECK_FALSE(price_nodes(topo, od_price, 1.5, spot_price, 1).ok());
    CHECK_FALSE(price_nodes(topo, micro_usd{-1}, 0.5, spot_price, 1).ok());
  }

  TEST_CASE("price_nodes makes round(fraction x nodes) spot nodes, seeded") {
    auto a = cluster(2, 10, 8, 0.35);
    auto b = cluster(2, 10, 8, 0.35);
    int spot = 0;
    for (size_t i = 0; i < a.nodes.size(); ++i) {
      CHECK(a.nodes[i].capacity == b.nodes[i].capacity);
      if (a.nodes[i].capacity == pl::capacity_type::spot) {
        ++spot;
        CHECK(a.nodes[i].price_per_gpu_hour == spot_price);
      } else {
        CHECK(a.nodes[i].price_per_gpu_hour == od_price);
      }
    }
    CHECK(spot == 7);
  }

  TEST_CASE("an idle end phase is reclaimed after window and grace, as the rule says") {
    // One 1-GPU job of 4 h whose second half is idle. Ticks every 5 min from
    // its start: idle samples from 2:00, notice at 2:30 (30 min window),
    // reclaim at 3:00 (30 min grace): the job completes then, 1 GPU-hour
    // reclaimed.
    trace t;
    t.jobs.push_back(job("a", 0ms, 4h, 1));
    auto m = idle_model::uniform(idle_class(1.0, 0.5, 0.5, 1.0), 1);
    auto off = simulate(t, config(cluster(1, 1, 8), finops_mode::off, m)).value();
    auto on = simulate(t, config(cluster(1, 1, 8), finops_mode::on, m)).value();
    check_invariants(off);
    check_invariants(on);
    const int64_t hour = finops::gpu_ms_per_gpu_hour;
    CHECK(off.finops->ledger.gpu_ms == 4 * hour);
    CHECK(off.finops->ledger.idle_gpu_ms() == 2 * hour);
    CHECK(off.finops->idle_held_gpu_ms == 2 * hour);
    CHECK(off.finops->ledger.cost == finops::cost_of(4 * hour, od_price));
    REQUIRE(on.jobs[0].end);
    CHECK(*on.jobs[0].end == time_point{} + 3h);
    CHECK(on.finops->notices == 1);
    CHECK(on.finops->reclaims == 1);
    CHECK(on.finops->tail_completions == 1);
    CHECK(on.finops->reclaimed_gpu_ms == hour);
    CHECK(on.finops->idle_held_gpu_ms == hour);
    CHECK(on.finops->ledger.gpu_ms == 3 * hour);
    CHECK(on.finops->ledger.cost == finops::cost_of(3 * hour, od_price));
    CHECK(on.finops->reclaimed_cost == finops::cost_of(hour, od_price));
  }

  TEST_CASE("an idle phase shorter than window plus grace is noticed, then cancelled") {
    // 45 min idle at the end of a 3 h job: notice after 30 min, the job ends
    // before the grace does. A 20 min pause is never even noticed.
    trace t;
    t.jobs.push_back(job("a", 0ms, 3h, 2));
    auto m = idle_model::uniform(idle_class(1.0, 0.25, 0.25, 1.0), 1);
    auto on = simulate(t, config(cluster(1, 1, 8), finops_mode::on, m)).value();
    check_invariants(on);
    CHECK(on.finops->notices == 1);
    CHECK(on.finops->reclaims == 0);
    CHECK(on.finops->reclaimed_gpu_ms == 0);
    CHECK(*on.jobs[0].end == time_point{} + 3h);
    CHECK(on.finops->detected_gpu_ms == on.finops->idle_gpu_ms);
    t.jobs[0].run_time = 2h;
    auto m2 = idle_model::uniform(idle_class(1.0, 1.0 / 6, 1.0 / 6, 1.0), 1);
    auto short_idle = simulate(t, config(cluster(1, 1, 8), finops_mode::on, m2)).value();
    check_invariants(short_idle);
    CHECK(short_idle.finops->notices == 0);
    CHECK(short_idle.finops->detected_gpu_ms == 0);
    CHECK(short_idle.finops->idle_gpu_ms > 0);
  }

  TEST_CASE(
      "a reclaimed pause comes back when it would have ended and finishes on time") {
    // A 4 h job with a 2 h pause (position drawn by the model), restart delay
    // 0 and no contention: reclaimed at the second tick-aligned hour of the
    // pause, back when the pause ends, done when it would have been.
    trace t;
    t.jobs.push_back(job("a", 0ms, 4h, 8));
    auto m = idle_model::uniform(idle_class(1.0, 0.5, 0.5, 0.0), 9);
    const auto phase = draw_idle_phase(m, workload_class::training, 4h, 0);
    REQUIRE_FALSE(phase.empty());
    REQUIRE(phase.end < 4h);
    auto off = simulate(t, config(cluster(1, 1, 8), finops_mode::off, m)).value();
    auto on = simulate(t, config(cluster(1, 1, 8), finops_mode::on, m)).value();
    check_invariants(on);
    CHECK(*on.jobs[0].end == *off.jobs[0].end);
    CHECK(on.jobs[0].starts == 2);
    CHECK(on.finops->pause_returns == 1);
    CHECK(on.finops->reclaims == 1);
    // First idle sample: the first 5 min tick at or after the phase's start
    // (and after the 10 min warm-up); notice 30 min later, reclaim 30 after.
    duration first = ((phase.begin + 5min - 1ns) / 5min) * 5min;
    first = std::max<duration>(first, 10min);
    const duration reclaim = first + 1h;
    REQUIRE(reclaim < phase.end);
    const auto ms = [](duration d) {
      return std::chrono::floor<std::chrono::milliseconds>(d).count();
    };
    CHECK(on.finops->reclaimed_gpu_ms == 8 * (ms(phase.end) - ms(reclaim)));
    CHECK(off.finops->ledger.gpu_ms - on.finops->ledger.gpu_ms ==
          on.finops->reclaimed_gpu_ms);
  }

  TEST_CASE(
      "FinOps off is the plain replay; dry run changes nothing but reports savings") {
    auto t = light_trace(3);
    auto m = idle_model::uniform(idle_class(0.5, 0.2, 0.5, 0.35), 5);
    auto topo = cluster(4, 16, 8);
    sim_config plain;
    plain.topology = topo;
    plain.policy = parse_policy("troupe").value();
    auto base = simulate(t, plain).value();
    auto off = simulate(t, config(topo, finops_mode::off, m)).value();
    auto dry = simulate(t, config(topo, finops_mode::dry_run, m)).value();
    CHECK_FALSE(base.finops);
    check_invariants(off);
    check_invariants(dry);
    auto plain_off = off;
    plain_off.finops.reset(); // the JSON has a "finops" object with FinOps on
    CHECK(results_json({base}) == results_json({plain_off}));
    CHECK(results_json({off}).find("\"finops\"") != std::string::npos);
    CHECK(same_schedule(base, dry));
    CHECK(off.finops->ledger == dry.finops->ledger);
    CHECK(off.finops->ledger.idle_gpu_ms() == off.finops->idle_held_gpu_ms);
    CHECK(dry.finops->notices > 0);
    CHECK(dry.finops->dry_run_savings.reclaims > 0);
    CHECK(dry.finops->dry_run_savings.gpu_ms > 0);
    CHECK(dry.finops->dry_run_savings.gpu_ms <= off.finops->idle_gpu_ms);
  }

  TEST_CASE("on a light trace, reclaim saves exactly the reclaimed GPU time") {
    // End phases only and no contention: every job starts on arrival in both
    // runs, so the GPU-ms FinOps saves are exactly those it reclaimed, and
    // the money within one micro-dollar per ledger account (each floors once).
    auto t = light_trace(11);
    auto m = idle_model::uniform(idle_class(0.6, 0.2, 0.6, 1.0), 2);
    auto topo = cluster(8, 16, 8);
    auto off = simulate(t, config(topo, finops_mode::off, m)).value();
    auto on = simulate(t, config(topo, finops_mode::on, m)).value();
    REQUIRE(all_started_at_submit(off));
    REQUIRE(all_started_at_submit(on));
    check_invariants(off);
    check_invariants(on);
    const auto& a = *off.finops;
    const auto& b = *on.finops;
    CHECK(b.reclaims > 0);
    CHECK(b.tail_completions == b.reclaims);
    CHECK(b.reclaimed_gpu_ms > 0);
    CHECK(b.reclaimed_gpu_ms <= a.idle_gpu_ms);
    CHECK(a.idle_gpu_ms == b.idle_gpu_ms); // the same phases, held or reclaimed
    CHECK(a.ledger.gpu_ms - b.ledger.gpu_ms == b.reclaimed_gpu_ms);
    CHECK(b.ledger.cost < a.ledger.cost);
    const int64_t accounts = static_cast<int64_t>(t.jobs.size());
    const int64_t diff =
        a.ledger.cost.value() - b.ledger.cost.value() - b.reclaimed_cost.value();
    CHECK(diff <= accounts);
    CHECK(diff >= -accounts);
    CHECK(on.summary.completed == off.summary.completed);
  }

  TEST_CASE(
      "a replay with FinOps is deterministic for a seed and moves with the idle seed") {
    auto t = light_trace(4);
    auto topo = cluster(2, 8, 8); // contended: queueing, preemption, pauses
    auto m = idle_model::uniform(idle_class(0.5, 0.2, 0.5, 0.35), 8);
    auto c = config(topo, finops_mode::on, m);
    c.checkpoints.interval = 30min;
    c.checkpoints.cost = 60s;
    c.checkpoints.restart_delay = 300s;
    auto a = simulate(t, c).value();
    auto b = simulate(t, c).value();
    check_invariants(a);
    CHECK(results_json({a}) == results_json({b}));
    const auto& fa = *a.finops;
    const auto& fb = *b.finops;
    CHECK(fa.ledger == fb.ledger);
    CHECK(fa.reclaimed_gpu_ms == fb.reclaimed_gpu_ms);
    CHECK(fa.notices == fb.notices);
    CHECK(fa.pause_returns == fb.pause_returns);
    CHECK(fa.reclaims > 0);
    CHECK(a.summary.completed == a.summary.jobs - a.summary.never_fit);
    c.finops->model.seed = 9;
    auto d = simulate(t, c).value();
    check_invariants(d);
    CHECK_FALSE(d.finops->ledger == fa.ledger);
  }

  TEST_CASE("spot with nothing lost costs no more than all on-demand; the cap holds") {
    // No reclaims and no FinOps reclaim: the same GPU time whatever the
    // schedule, part of it at the spot price.
    auto t = light_trace(6);
    auto m = idle_model::uniform(idle_class(0.3, 0.1, 0.3, 0.35), 3);
    auto od = config(cluster(2, 16, 8, 0.0), finops_mode::off, m);
    auto sp = config(cluster(2, 16, 8, 0.5), finops_mode::off, m);
    for (auto* c : {&od, &sp}) {
      c->checkpoints.interval = 30min;
      c->finops->spot = finops::spot_policy{};
    }
    auto a = simulate(t, od).value();
    auto b = simulate(t, sp).value();
    check_invariants(a);
    check_invariants(b);
    CHECK(b.summary.spot_reclaims == 0);
    CHECK(b.summary.lost_gpu_hours == 0);
    CHECK(b.finops->spot_tolerant_jobs > 0);
    CHECK(b.finops->spot_gpu_ms > 0);
    CHECK(a.finops->spot_gpu_ms == 0);
    CHECK(b.finops->ledger.gpu_ms == a.finops->ledger.gpu_ms);
    CHECK(b.finops->ledger.cost <= a.finops->ledger.cost);
    // A cap of 0 keeps everything off spot.
    sp.finops->spot->max_spot_share_permille = 0;
    auto z = simulate(t, sp).value();
    check_invariants(z);
    CHECK(z.finops->spot_tolerant_jobs == 0);
    CHECK(z.finops->spot_gpu_ms == 0);
    // Without checkpoints no job may go on spot.
    sp.finops->spot->max_spot_share_permille = 1000;
    sp.checkpoints.interval = 0ms;
    auto n = simulate(t, sp).value();
    CHECK(n.finops->spot_tolerant_jobs == 0);
  }

  TEST_CASE("spot reclaims lose work and keep the ledger exact") {
    auto t = light_trace(8);
    auto m = idle_model::uniform(idle_class(0.3, 0.1, 0.3, 0.35), 3);
    auto c = config(cluster(2, 16, 8, 0.5), finops_mode::on, m);
    c.checkpoints.interval = 30min;
    c.checkpoints.cost = 5min; // longer than the notice: work is lost
    c.checkpoints.restart_delay = 300s;
    c.faults.spot_reclaims_per_hour = 0.5;
    c.faults.spot_notice = 2min;
    c.finops->spot = finops::spot_policy{};
    auto r = simulate(t, c).value();
    check_invariants(r);
    CHECK(r.summary.spot_reclaims > 0);
    CHECK(r.summary.lost_gpu_hours > 0);
    CHECK(r.summary.completed == r.summary.jobs - r.summary.never_fit);
  }

  TEST_CASE("Philly, every 10th job: FinOps reclaims idle time and saves money") {
    const auto dir = traces_dir() / "philly-pollux";
    if (!std::filesystem::exists(dir / "philly.csv")) {
      MESSAGE("no Philly trace at ", dir.string(), ": skipped");
      return;
    }
    auto full = load_philly((dir / "philly.csv").string(),
                            (dir / "helios_philly_vc_nodes.csv").string())
                    .value();
    trace t;
    t.source = full.source;
    for (size_t i = 0; i < full.jobs.size(); i += 10)
      t.jobs.push_back(full.jobs[i]);
    auto topo = topology_from_nodes(full.nodes).value();
    REQUIRE(price_nodes(topo, od_price, 0.0, spot_price, 1).ok());
    auto m = idle_model::uniform(idle_class(0.5, 0.2, 0.5, 0.35), 1);
    auto off_c = config(topo, finops_mode::off, m);
    auto on_c = config(topo, finops_mode::on, m);
    for (auto* c : {&off_c, &on_c}) {
      c->checkpoints.interval = 30min;
      c->checkpoints.cost = 60s;
      c->checkpoints.restart_delay = 300s;
    }
    auto off = simulate(t, off_c).value();
    auto on = simulate(t, on_c).value();
    check_invariants(off);
    check_invariants(on);
    CHECK(on.finops->reclaims > 0);
    CHECK(on.finops->reclaimed_gpu_ms > 0);
    CHECK(on.finops->reclaimed_gpu_ms <= off.finops->idle_gpu_ms);
    CHECK(on.finops->ledger.cost < off.finops->ledger.cost);
    CHECK(on.summary.completed == off.summary.completed);
    MESSAGE("Philly 1/10: ", t.jobs.size(), " jobs, idle ",
            off.finops->idle_gpu_ms / finops::gpu_ms_per_gpu_hour, " GPU-h, reclaimed ",
            on.finops->reclaimed_gpu_ms / finops::gpu_ms_per_gpu_hour, " GPU-h");
  }

} // TEST_SUITE
