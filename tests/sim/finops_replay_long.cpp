// The whole Philly trace (82,229 jobs) with FinOps in the simulator's loop
// (issue 7): off, dry run and on at one point of the idle model, and spot
// nodes replaying the real AWS spot traces against all on-demand. The
// properties of tests/sim/finops_loop_test.cpp on the full trace; about
// 10 s at -O2. ctest label `long`.

#include "troupe/finops/ledger.hpp"
#include "troupe/sim/engine.hpp"
#include "troupe/sim/finops_loop.hpp"
#include "troupe/sim/trace.hpp"

#include <doctest/doctest.h>
#include <filesystem>

using namespace troupe;
using namespace troupe::sim;
using namespace std::chrono_literals;

namespace {

constexpr micro_usd od_price{3'060'000};
constexpr micro_usd spot_price{918'000};

std::filesystem::path traces_dir() {
  if (const char* env = std::getenv("TROUPE_TRACES_DIR"); env && *env) return env;
  return TROUPE_TRACES_DIR;
}

sim_config config(const placement::cluster_topology& topo, finops_mode mode) {
  sim_config c;
  c.topology = topo;
  c.policy = parse_policy("troupe").value();
  c.checkpoints.interval = 30min;
  c.checkpoints.cost = 60s;
  c.checkpoints.restart_delay = 300s;
  finops_loop_config f;
  f.mode = mode;
  idle_class_model m;
  m.idle_job_probability = 0.5;
  m.idle_share_min = 0.2;
  m.idle_share_max = 0.5;
  f.model = idle_model::uniform(m, 1);
  c.finops = f;
  return c;
}

void check_invariants(const sim_result& r) {
  REQUIRE(r.finops);
  const auto& f = *r.finops;
  CHECK(f.allocated_gpu_ms == f.ledger.gpu_ms);
  CHECK(f.ledger_entries_duplicate == 0);
  CHECK(f.idle_gpu_ms == f.idle_held_gpu_ms + f.reclaimed_gpu_ms);
  CHECK(f.reclaimed_gpu_ms <= f.detected_gpu_ms);
  CHECK(f.detected_gpu_ms <= f.idle_gpu_ms);
  CHECK(r.summary.completed + r.summary.never_fit == r.summary.jobs);
  if (f.mode != finops_mode::on) CHECK(f.reclaims == 0);
}

} // namespace

TEST_SUITE("sim.finops_replay_long") {

  TEST_CASE("the whole Philly trace: reclaim saves what it reclaims, spot saves money") {
    const auto dir = traces_dir();
    if (!std::filesystem::exists(dir / "philly-pollux/philly.csv")) {
      MESSAGE("no traces at ", dir.string(), ": skipped");
      return;
    }
    auto t = load_philly((dir / "philly-pollux/philly.csv").string(),
                         (dir / "philly-pollux/helios_philly_vc_nodes.csv").string())
                 .value();
    auto topo = topology_from_nodes(t.nodes).value();
    REQUIRE(price_nodes(topo, od_price, 0.0, spot_price, 1).ok());
    auto off = simulate(t, config(topo, finops_mode::off)).value();
    auto dry = simulate(t, config(topo, finops_mode::dry_run)).value();
    auto on = simulate(t, config(topo, finops_mode::on)).value();
    check_invariants(off);
    check_invariants(dry);
    check_invariants(on);
    CHECK(off.finops->ledger == dry.finops->ledger);
    CHECK(on.finops->reclaims > 0);
    CHECK(on.finops->reclaimed_gpu_ms <= off.finops->idle_gpu_ms);
    CHECK(on.finops->ledger.cost < off.finops->ledger.cost);
    const double saved = static_cast<double>(off.finops->ledger.cost.value() -
                                             on.finops->ledger.cost.value());
    const double would = static_cast<double>(dry.finops->dry_run_savings.cost.value());
    // The dry run's estimate and the real saving agree within 5%.
    CHECK(saved > 0.95 * would);
    CHECK(saved < 1.05 * would);

    // Spot: half the nodes replay the AWS traces; all on-demand beside it.
    fault_model spot;
    for (const char* f : {"availability/aws-02-15-2023_us-east-1a_v100_1.json",
                          "availability/aws-02-15-2023_us-west-2b_v100_1.json",
                          "preemption/aws-04-22-2023_us-west-2b_v100_1.json"})
      spot.spot_traces.push_back(
          load_spot_trace((dir / "spot-traces" / f).string()).value());
    auto spot_topo = topo;
    REQUIRE(price_nodes(spot_topo, od_price, 0.5, spot_price, 1).ok());
    auto od_c = config(topo, finops_mode::on);
    auto sp_c = config(spot_topo, finops_mode::on);
    od_c.finops->spot = sp_c.finops->spot = finops::spot_policy{};
    sp_c.faults = spot;
    auto od = simulate(t, od_c).value();
    auto sp = simulate(t, sp_c).value();
    check_invariants(od);
    check_invariants(sp);
    CHECK(sp.summary.spot_reclaims > 0);
    CHECK(sp.finops->spot_gpu_ms > 0);
    CHECK(sp.finops->ledger.cost < od.finops->ledger.cost);
  }

} // TEST_SUITE
