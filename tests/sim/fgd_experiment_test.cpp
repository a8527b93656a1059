// The FGD arrival experiment (sim/fgd_experiment.hpp) on small clusters
// built here, and on a sub-sample of the real openb trace when
// shared/data/traces is there: determinism, sane curves, the order of the
// policies where it must hold, and bad input. The full experiment is the
// `long` test sim.fgd_paper_long.

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"
#include "troupe/sim/fgd_experiment.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <string>
#include <vector>

using namespace troupe;
using namespace troupe::sim;

namespace {

trace_node node(std::string name, uint32_t gpus, uint64_t cpu_milli, std::string model) {
  trace_node n;
  n.name = std::move(name);
  n.gpus = gpus;
  n.cpu_milli = cpu_milli;
  n.memory_mib = 512 * 1024;
  n.gpu_model = std::move(model);
  return n;
}

trace_job pod(uint32_t gpus, uint32_t milli, uint64_t cpu_milli) {
  trace_job j;
  j.name = "p";
  j.gpus = gpus;
  j.gpu_milli = milli;
  j.cpu_milli = cpu_milli;
  j.memory_mib = 4096;
  return j;
}

/// 24 nodes shaped like the openb trace's: 8-GPU nodes with 12 cores per
/// GPU, CPU-rich 2-GPU nodes, CPU-tight 4-GPU nodes.
placement::cluster_topology small_cluster() {
  std::vector<trace_node> nodes;
  for (int i = 0; i < 12; ++i)
    nodes.push_back(node("g" + std::to_string(i), 8, 96000, "G2"));
  for (int i = 0; i < 8; ++i)
    nodes.push_back(node("t" + std::to_string(i), 2, 104000, "T4"));
  for (int i = 0; i < 4; ++i)
    nodes.push_back(node("v" + std::to_string(i), 4, 32000, "V100M16"));
  auto t = topology_from_nodes(nodes);
  REQUIRE(t.ok());
  return *t;
}

/// 300 pods in openb-like proportions: CPU-only, shares, 1-8 GPUs.
trace small_trace() {
  trace t;
  seeded_rng rng{11};
  const uint32_t millis[] = {100, 250, 460, 500, 650, 810};
  for (int i = 0; i < 300; ++i) {
    auto r = rng.below(100);
    if (r < 13)
      t.jobs.push_back(pod(0, 0, 2000 * (1 + rng.below(10))));
    else if (r < 50)
      t.jobs.push_back(pod(0, millis[rng.below(6)], 1000 * (2 + rng.below(8))));
    else if (r < 95)
      t.jobs.push_back(pod(1, 0, 4000 * (1 + rng.below(4))));
    else
      t.jobs.push_back(pod(r < 98 ? 2 : 8, 0, 12000 * (r < 98 ? 2 : 8)));
  }
  return t;
}

void check_curves(const fgd_run& r) {
  INFO(r.policy << " seed " << r.seed);
  REQUIRE(!r.demand_pct.empty());
  REQUIRE(r.alloc_pct.size() == r.demand_pct.size());
  REQUIRE(r.frag_pct.size() == r.demand_pct.size());
  REQUIRE(r.frag_rate_pct.size() == r.demand_pct.size());
  CHECK(r.demand_pct.front() == 0);
  CHECK(r.alloc_pct.front() <= 0.5); // the records below 0.5% of demand
  for (size_t i = 0; i < r.demand_pct.size(); ++i) {
    if (i > 0) {
      CHECK(r.demand_pct[i] > r.demand_pct[i - 1]);
      CHECK(r.alloc_pct[i] >= r.alloc_pct[i - 1]); // nothing departs
    }
    CHECK(r.alloc_pct[i] <= 100.0);
    // Never more than arrived: records at x round from below x + 0.5, or
    // from x + 1 when x has none (the simulator's fallback).
    CHECK(r.alloc_pct[i] <= r.demand_pct[i] + 1.5);
    CHECK(r.frag_pct[i] >= 0);
    CHECK(r.frag_pct[i] <= 100.0 - r.alloc_pct[i] + 1e-9); // fragment is free GPU
    CHECK(r.frag_rate_pct[i] >= 0);
    CHECK(r.frag_rate_pct[i] <= 100.0 + 1e-9);
  }
  CHECK(r.arrivals > 0);
  CHECK(r.failed <= r.arrivals);
  CHECK(r.allocated_gpu_milli <= r.arrived_gpu_milli);
}

std::string traces_dir() {
#ifdef TROUPE_TRACES_DIR
  return TROUPE_TRACES_DIR;
#else
  return "";
#endif
}

} // namespace

TEST_SUITE("fgd experiment") {
  TEST_CASE("the same seed gives the same result, another seed other arrivals") {
    const auto topo = small_cluster();
    const auto pods = small_trace();
    fgd_experiment_config cfg;
    cfg.seeds = {3, 4};
    uint64_t last_done = 0, last_total = 0;
    auto a = run_fgd_experiment(topo, pods, cfg, [&](uint64_t done, uint64_t total) {
      CHECK(done >= last_done);
      last_done = done;
      last_total = total;
    });
    REQUIRE(a.ok());
    CHECK(last_done == last_total);
    CHECK(last_total > 0);
    auto b = run_fgd_experiment(topo, pods, cfg);
    REQUIRE(b.ok());
    REQUIRE(a->runs.size() == 4 * 2);
    CHECK(a->runs == b->runs);
    CHECK(a->table().rows == b->table().rows);
    // Same arrivals for every policy on a seed; other arrivals on another.
    for (const auto& p : cfg.policies) {
      CHECK(a->find(p, 3)->arrivals == a->find("fgd", 3)->arrivals);
      CHECK(a->find(p, 3)->arrived_gpu_milli == a->find("fgd", 3)->arrived_gpu_milli);
    }
    CHECK(a->find("fgd", 3)->alloc_pct != a->find("fgd", 4)->alloc_pct);
    // Every arrival set asks for at most 1.3x the GPUs, and the next draw
    // would have passed it.
    const auto cap = a->total_gpu_milli;
    CHECK(a->find("fgd", 3)->arrived_gpu_milli <= cap * 13 / 10);
    CHECK(a->find("fgd", 3)->arrived_gpu_milli > cap * 13 / 10 - 8000);
  }

  TEST_CASE("allocation never decreases, never passes the arrived demand or 100%") {
    fgd_experiment_config cfg;
    cfg.seeds = {1, 2, 3};
    cfg.policies = fgd_policy_names();
    auto r = run_fgd_experiment(small_cluster(), small_trace(), cfg);
    REQUIRE(r.ok());
    CHECK(r->runs.size() == cfg.policies.size() * 3);
    for (const auto& run : r->runs) {
      check_curves(run);
      CHECK(run.demand_pct.back() == 130);
      CHECK(run.alloc_at_100 > 50);
      CHECK(run.failed > 0); // 1.3x demand cannot all fit
    }
    // With arrivals drawn only with replacement the curves are as sane.
    cfg.arrivals = arrival_model::with_replacement;
    cfg.policies = {"random", "troupe"};
    auto w = run_fgd_experiment(small_cluster(), small_trace(), cfg);
    REQUIRE(w.ok());
    for (const auto& run : w->runs)
      check_curves(run);
  }

  TEST_CASE("packing policies beat random where shares would strand whole nodes") {
    // 64 nodes of 4 GPUs; half-GPU shares and 4-GPU pods.
    // Random spreads the shares over the nodes, so the 4-GPU pods soon find
    // no empty node; the other policies keep shares together.
    std::vector<trace_node> nodes;
    for (int i = 0; i < 64; ++i)
      nodes.push_back(node("n" + std::to_string(i), 4, 128000, "A10"));
    auto topo = topology_from_nodes(nodes);
    REQUIRE(topo.ok());
    trace pods;
    for (int i = 0; i < 140; ++i)
      pods.jobs.push_back(pod(0, 500, 1000));
    for (int i = 0; i < 40; ++i)
      pods.jobs.push_back(pod(4, 0, 4000));
    fgd_experiment_config cfg;
    cfg.seeds = {1, 2, 3, 4, 5};
    auto r = run_fgd_experiment(*topo, pods, cfg);
    REQUIRE(r.ok());
    for (auto seed : cfg.seeds) {
      double random = r->find("random", seed)->alloc_at_100;
      INFO("seed " << seed << " random " << random);
      CHECK(random > 30);
      CHECK(r->find("bestfit", seed)->alloc_at_100 > random + 20);
      CHECK(r->find("fgd", seed)->alloc_at_100 > random + 20);
      CHECK(r->find("troupe", seed)->alloc_at_100 > random + 20);
      CHECK(r->find("fgd", seed)->frag_at_100 < r->find("random", seed)->frag_at_100);
    }
  }

  TEST_CASE("an unknown policy and other bad input are errors that say what is wrong") {
    const auto topo = small_cluster();
    const auto pods = small_trace();
    fgd_experiment_config cfg;
    cfg.policies = {"fgd", "fdg"};
    auto r = run_fgd_experiment(topo, pods, cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code() == runtime::errc::invalid_argument);
    const auto& m = r.err().message();
    CHECK(m.find("\"fdg\"") != std::string::npos);
    for (const auto& name : fgd_policy_names())
      CHECK(m.find(name) != std::string::npos);
    cfg = {};
    cfg.seeds.clear();
    CHECK(run_fgd_experiment(topo, pods, cfg).err().message().find("no seed") !=
          std::string::npos);
    cfg = {};
    cfg.demand_ratio = 0;
    CHECK(run_fgd_experiment(topo, pods, cfg).err().message().find("demand_ratio") !=
          std::string::npos);
    cfg = {};
    CHECK(run_fgd_experiment(topo, trace{}, cfg).err().message().find("no pod") !=
          std::string::npos);
    auto gang = pods;
    gang.jobs[5].gpus = 16;
    gang.jobs[5].gpu_milli = 0;
    gang.jobs[5].gpus_per_bundle = 8;
    CHECK(run_fgd_experiment(topo, gang, cfg).err().message().find("pod 5") !=
          std::string::npos);
    placement::cluster_topology no_gpus;
    no_gpus.racks.push_back({"r", 0, 1.0});
    no_gpus.nodes.push_back({});
    no_gpus.nodes.back().name = "cpu";
    no_gpus.nodes.back().cpu_milli = 1000;
    CHECK(run_fgd_experiment(no_gpus, pods, cfg).err().message().find("no GPU") !=
          std::string::npos);
  }

  TEST_CASE("the summary table has a row per policy and the charts a line per policy") {
    fgd_experiment_config cfg;
    cfg.seeds = {5, 6};
    auto r = run_fgd_experiment(small_cluster(), small_trace(), cfg);
    REQUIRE(r.ok());
    auto t = r->table();
    REQUIRE(t.rows.size() == cfg.policies.size());
    for (const auto& row : t.rows)
      CHECK(row.size() == t.columns.size());
    CHECK(t.rows[2][0] == "fgd");
    CHECK(t.rows[2].back() == "-");
    CHECK(t.rows[3].back().find("/2") != std::string::npos);
    auto s = r->seed_table();
    CHECK(s.rows.size() == 2);
    CHECK(s.columns.size() == 1 + cfg.policies.size());
    auto charts = r->charts();
    REQUIRE(charts.size() == 2);
    for (const auto& c : charts) {
      REQUIRE(c.lines.size() == cfg.policies.size());
      for (const auto& l : c.lines) {
        REQUIRE(l.x.size() == l.y.size());
        CHECK(l.x.front() == 0);
        CHECK(l.x.back() == 130);
        for (size_t i = 1; i < l.x.size(); ++i)
          CHECK(l.x[i] > l.x[i - 1]);
      }
    }
    // The mean line is the mean of the seeds' curves (where both have x).
    auto at = [](const std::vector<double>& xs, const std::vector<double>& ys, double x) {
      for (size_t i = 0; i < xs.size(); ++i)
        if (xs[i] == x) return ys[i];
      return -1.0;
    };
    const auto* a = r->find("fgd", 5);
    const auto* b = r->find("fgd", 6);
    const auto& line = charts[0].lines[2];
    double fa = at(a->demand_pct, a->alloc_pct, 100),
           fb = at(b->demand_pct, b->alloc_pct, 100);
    REQUIRE(fa > 0);
    REQUIRE(fb > 0);
    CHECK(at(line.x, line.y, 100) == doctest::Approx((fa + fb) / 2));
    CHECK(fa == a->alloc_at_100);
  }

  TEST_CASE("on a sub-sample of the openb trace the curves are sane and FGD beats "
            "random") {
    const auto dir = traces_dir() + "/alibaba-openb-2023";
    if (traces_dir().empty() || !std::filesystem::exists(dir)) {
      MESSAGE("skipped: no trace data at " << dir);
      return;
    }
    auto nodes = load_alibaba_nodes(dir + "/openb_node_list_gpu_node.csv");
    REQUIRE(nodes.ok());
    auto pods = load_alibaba_pods(dir + "/openb_pod_list_default.csv");
    REQUIRE(pods.ok());
    std::vector<trace_node> every_eighth;
    for (size_t i = 0; i < nodes->size(); i += 8)
      every_eighth.push_back((*nodes)[i]);
    auto topo = topology_from_nodes(every_eighth);
    REQUIRE(topo.ok());
    // Pods to match: every eighth pod, so that the trace alone asks for
    // about as much as the sub-cluster holds.
    trace sample;
    for (size_t i = 0; i < pods->jobs.size(); i += 8)
      sample.jobs.push_back(pods->jobs[i]);
    fgd_experiment_config cfg;
    cfg.seeds = {1};
    auto r = run_fgd_experiment(*topo, sample, cfg);
    REQUIRE(r.ok());
    MESSAGE(r->nodes << " nodes: random " << r->find("random", 1)->alloc_at_100
                     << "%, bestfit " << r->find("bestfit", 1)->alloc_at_100 << "%, fgd "
                     << r->find("fgd", 1)->alloc_at_100 << "%, troupe "
                     << r->find("troupe", 1)->alloc_at_100 << "%");
    for (const auto& run : r->runs)
      check_curves(run);
    CHECK(r->find("fgd", 1)->alloc_at_100 > r->find("random", 1)->alloc_at_100);
    CHECK(r->find("troupe", 1)->alloc_at_100 > r->find("random", 1)->alloc_at_100);
  }
}

TEST_CASE("seed lists and arrival models parse, and bad text is named") {
  CHECK(troupe::sim::parse_seed_list("42-45").value() ==
        std::vector<uint64_t>{42, 43, 44, 45});
  CHECK(troupe::sim::parse_seed_list("1,7,3-4").value() ==
        std::vector<uint64_t>{1, 7, 3, 4});
  for (const char* bad : {"", "x", "5-", "-5", "9-2", "1,,2", "1-200000", "3 "}) {
    CAPTURE(bad);
    auto r = troupe::sim::parse_seed_list(bad);
    REQUIRE(!r.ok());
    CHECK(r.err().message().find("expected a list like 42-51") != std::string::npos);
  }
  CHECK(troupe::sim::parse_arrival_model("simulator").value() ==
        troupe::sim::arrival_model::simulator);
  CHECK(troupe::sim::parse_arrival_model("with_replacement").value() ==
        troupe::sim::arrival_model::with_replacement);
  CHECK_FALSE(troupe::sim::parse_arrival_model("with-replacement").ok());
}
