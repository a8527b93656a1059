// Simulator benchmarks (docs/PERFORMANCE.md): the event queue alone, and
// whole runs (events per second, wall time) on synthetic traces and the full
// Philly trace.
//
//   build-bench/bench/bench_sim                       # everything but the 1M-job run
//   build-bench/bench/bench_sim --benchmark_filter=million   # the 1M-job run
#include "troupe/placement/topology.hpp"
#include "troupe/runtime/random.hpp"
#include "troupe/sim/engine.hpp"
#include "troupe/sim/event_queue.hpp"
#include "troupe/sim/replay.hpp"
#include "troupe/sim/trace.hpp"

#include <benchmark/benchmark.h>
#include <filesystem>
#include <sys/resource.h>

namespace {

using namespace troupe;
using namespace troupe::sim;

/// The engine's core loop without policies: pop an event, push one later
/// event, with `range(0)` events pending (a steady-state heap).
void BM_event_queue(benchmark::State& state) {
  event_queue q;
  seeded_rng rng(1);
  auto pending = static_cast<uint64_t>(state.range(0));
  for (uint64_t i = 0; i < pending; ++i)
    q.push(time_point{} + std::chrono::microseconds(rng.below(1'000'000)),
           event_kind::sample, i);
  sim_clock clk;
  for (auto _ : state) {
    auto e = q.pop();
    clk.advance_to(e.at);
    q.push(e.at + std::chrono::microseconds(1 + rng.below(1'000'000)), e.kind, e.subject);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["events/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_event_queue)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

double max_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

/// A synthetic trace of `jobs` jobs on a 10,000-GPU cluster (25 racks x 50
/// nodes x 8 GPUs) at about 90% offered load, under `policy`.
void run_synthetic(benchmark::State& state, const char* policy) {
  synthetic_trace p;
  p.jobs = static_cast<uint64_t>(state.range(0));
  // Offered load about 0.9 of 10,000 GPUs: the default mix asks 3.75 GPUs
  // per job on average for 2.52 h on average (log-normal, median 30 min,
  // sigma 1.8, cut at a week): 950 jobs/h x 3.75 x 2.52 = 8,980 GPUs busy.
  p.arrivals_per_hour = 950;
  p.seed = 42;
  auto t = generate_trace(p);
  if (!t) {
    state.SkipWithError(t.err().message().c_str());
    return;
  }
  placement::generated_cluster g;
  g.racks = 25;
  g.nodes_per_rack = 50;
  g.gpus_per_node = 8;
  sim_config c;
  c.topology = placement::generate_cluster(g);
  c.policy = parse_policy(policy).value();
  c.sample_interval = std::chrono::hours(1);
  uint64_t events = 0;
  sim_summary last;
  for (auto _ : state) {
    auto r = simulate(*t, c);
    if (!r) {
      state.SkipWithError(r.err().message().c_str());
      return;
    }
    events += r->summary.events;
    last = r->summary;
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["jobs"] = static_cast<double>(last.jobs);
  state.counters["completed"] = static_cast<double>(last.completed);
  state.counters["util%"] = last.utilisation_pct;
  state.counters["maxrss_MiB"] = max_rss_mib();
}

void BM_synthetic_fifo(benchmark::State& s) {
  run_synthetic(s, "fifo");
}
void BM_synthetic_sjf(benchmark::State& s) {
  run_synthetic(s, "sjf");
}
void BM_synthetic_troupe(benchmark::State& s) {
  run_synthetic(s, "troupe");
}
BENCHMARK(BM_synthetic_fifo)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_synthetic_sjf)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_synthetic_troupe)->Arg(10'000)->Unit(benchmark::kMillisecond);
// The million-job run of issue 4 (about a minute): filter "million".
void BM_million_fifo(benchmark::State& s) {
  run_synthetic(s, "fifo");
}
BENCHMARK(BM_million_fifo)
    ->Name("BM_synthetic_million_fifo")
    ->Arg(1'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

/// The full Philly trace (82,247 jobs), per virtual cluster, under `policy`.
void run_philly(benchmark::State& state, const char* policy) {
  std::filesystem::path dir = TROUPE_TRACES_DIR;
  auto jobs = dir / "philly-pollux" / "philly.csv";
  auto vcs = dir / "philly-pollux" / "helios_philly_vc_nodes.csv";
  if (!std::filesystem::exists(jobs)) {
    state.SkipWithError("the Philly trace is not in ../shared/data/traces");
    return;
  }
  auto t = load_philly(jobs.string(), vcs.string());
  if (!t) {
    state.SkipWithError(t.err().message().c_str());
    return;
  }
  replay_options opt;
  opt.policies = {policy};
  opt.per_tenant = true;
  opt.base.sample_interval = std::chrono::hours(1);
  uint64_t events = 0;
  for (auto _ : state) {
    auto r = run_replay(*t, opt);
    if (!r) {
      state.SkipWithError(r.err().message().c_str());
      return;
    }
    events += r->events;
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["jobs"] = static_cast<double>(t->jobs.size());
}
void BM_philly_fifo(benchmark::State& s) {
  run_philly(s, "fifo");
}
void BM_philly_sjf(benchmark::State& s) {
  run_philly(s, "sjf");
}
void BM_philly_troupe(benchmark::State& s) {
  run_philly(s, "troupe");
}
BENCHMARK(BM_philly_fifo)->Iterations(1)->Unit(benchmark::kSecond);
BENCHMARK(BM_philly_sjf)->Iterations(1)->Unit(benchmark::kSecond);
BENCHMARK(BM_philly_troupe)->Iterations(1)->Unit(benchmark::kSecond);

} // namespace

BENCHMARK_MAIN();
