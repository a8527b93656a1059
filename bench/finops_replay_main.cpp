// FinOps in the simulator's loop on the real traces (issue 7, "Measured
// outcome"): idle GPU-hours detected and reclaimed and the cost saved
// against the same replay without FinOps, over a sweep of the idle model;
// and spot nodes (replaying the real AWS spot traces) against an
// all-on-demand cluster, with the work lost to preemptions. Not a Google
// Benchmark: each row is one whole replay. docs/FINOPS-EXPERIMENT.md has
// the model, the command and the results.
//
//   bench_finops_replay [--traces DIR] [--trace philly|openb|both]
//                       [--stride N] [--arrival-scale X] [--seed N]
//
// --stride N keeps every Nth job of the trace (on the same cluster) for a
// quick look; the recorded figures use the whole trace (stride 1).

#include "troupe/finops/ledger.hpp"
#include "troupe/sim/engine.hpp"
#include "troupe/sim/finops_loop.hpp"
#include "troupe/sim/trace.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace troupe;
using namespace troupe::sim;
using namespace std::chrono_literals;
using finops::workload_class;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_finops_replay: %s\n", what.c_str());
  std::exit(2);
}

// Prices of the spot traces' instance, per GPU-hour (docs/FINOPS-EXPERIMENT.md):
// AWS list price of p3.2xlarge (1 V100) on-demand in us-east-1, and the
// `prices` field of the shipped preemption trace for its spot price.
constexpr micro_usd on_demand_price{3'060'000};
constexpr micro_usd spot_price{918'000};

double usd(micro_usd m) {
  return static_cast<double>(m.value()) / 1e6;
}
double gpu_h(int64_t gpu_ms) {
  return static_cast<double>(gpu_ms) / static_cast<double>(finops::gpu_ms_per_gpu_hour);
}

struct workload {
  std::string name;
  trace jobs;
  placement::cluster_topology topology;
  std::map<std::string, workload_class, std::less<>> class_by_qos;
  size_t dropped = 0; ///< jobs without a run time, left out
};

/// Keeps every `stride`-th job and scales the arrival rate by `scale`.
void thin_and_scale(workload& w, size_t stride, double scale) {
  if (stride > 1) {
    std::vector<trace_job> kept;
    for (size_t i = 0; i < w.jobs.jobs.size(); i += stride)
      kept.push_back(w.jobs.jobs[i]);
    w.jobs.jobs = std::move(kept);
  }
  if (scale != 1.0)
    if (auto s = scale_arrivals(w.jobs, scale); !s) die(s.err().to_string());
}

workload load_philly(const std::filesystem::path& dir, size_t stride, double scale) {
  workload w;
  w.name = "philly";
  auto t = sim::load_philly((dir / "philly-pollux/philly.csv").string(),
                            (dir / "philly-pollux/helios_philly_vc_nodes.csv").string());
  if (!t) die(t.err().to_string());
  w.jobs = std::move(*t);
  auto topo = topology_from_nodes(w.jobs.nodes);
  if (!topo) die(topo.err().to_string());
  w.topology = std::move(*topo);
  thin_and_scale(w, stride, scale);
  return w;
}

workload load_openb(const std::filesystem::path& dir, size_t stride, double scale) {
  workload w;
  w.name = "openb";
  auto nodes = load_alibaba_nodes(
      (dir / "alibaba-openb-2023/openb_node_list_gpu_node.csv").string());
  if (!nodes) die(nodes.err().to_string());
  auto t =
      load_alibaba_pods((dir / "alibaba-openb-2023/openb_pod_list_default.csv").string());
  if (!t) die(t.err().to_string());
  w.jobs = std::move(*t);
  // Pods still running when the trace was cut have no deletion time: they
  // would hold their GPUs forever (and faults need every job to end).
  const auto before = w.jobs.jobs.size();
  std::erase_if(w.jobs.jobs, [](const trace_job& j) { return j.run_time.count() == 0; });
  w.dropped = before - w.jobs.jobs.size();
  auto topo = topology_from_nodes(*nodes);
  if (!topo) die(topo.err().to_string());
  w.topology = std::move(*topo);
  thin_and_scale(w, stride, scale);
  // Alibaba's QoS classes: LS (latency sensitive) pods are online services.
  w.class_by_qos = {{"LS", workload_class::serving}};
  return w;
}

struct run_out {
  sim_result r;
  double wall_s = 0;
};

/// One replay: troupe's queue, best fit, checkpoints every 30 min of work
/// costing `ckpt_cost`, 5 min from a restart to work.
run_out run(const workload& w, const placement::cluster_topology& topo,
            const finops_loop_config& fc, const fault_model& faults, uint64_t seed,
            duration ckpt_cost = 60s) {
  sim_config c;
  c.topology = topo;
  auto p = parse_policy("troupe");
  if (!p) die(p.err().to_string());
  c.policy = *p;
  c.checkpoints.interval = 30min;
  c.checkpoints.cost = ckpt_cost;
  c.checkpoints.restart_delay = 300s;
  c.faults = faults;
  c.seed = seed;
  c.finops = fc;
  auto t0 = std::chrono::steady_clock::now();
  auto r = simulate(w.jobs, c);
  if (!r) die(w.name + ": " + r.err().to_string());
  run_out o;
  o.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  o.r = std::move(*r);
  const auto& f = *o.r.finops;
  // The invariants the tests check, re-checked on every real run.
  if (f.allocated_gpu_ms != f.ledger.gpu_ms) die(w.name + ": ledger conservation broken");
  if (f.reclaimed_gpu_ms > f.idle_gpu_ms) die(w.name + ": reclaimed more than idle");
  if (f.mode != finops_mode::on && f.reclaims != 0)
    die(w.name + ": reclaim with FinOps off");
  return o;
}

struct sweep_point {
  double probability;
  double share_min, share_max;
};

void idle_sweep(const workload& w, uint64_t seed) {
  const sweep_point points[] = {{0.2, 0.05, 0.20}, {0.2, 0.20, 0.50}, {0.5, 0.05, 0.20},
                                {0.5, 0.20, 0.50}, {0.8, 0.05, 0.20}, {0.8, 0.20, 0.50}};
  auto topo = w.topology;
  if (auto pr = price_nodes(topo, on_demand_price, 0.0, spot_price, seed); !pr)
    die(pr.err().to_string());
  std::printf(
      "\n%s: %zu jobs (%zu without a run time left out) on %zu GPUs, all on-demand "
      "at %.2f USD/GPU-h; idle model sweep (tail share 0.35), FinOps off, dry run, "
      "on\n",
      w.name.c_str(), w.jobs.jobs.size(), w.dropped, topo.total_gpus(),
      usd(on_demand_price));
  std::printf(
      "%-5s %-9s %-4s | %9s %9s %9s %9s | %6s %6s %5s | %12s %12s %6s | %8s %8s | "
      "%6s\n",
      "p", "share", "mode", "idle GPUh", "held GPUh", "detect", "reclaim", "notice",
      "reclm", "false", "ledger USD", "saved USD", "saved%", "JCT h", "wait p99",
      "wall s");
  for (const auto& pt : points) {
    finops_loop_config fc;
    idle_class_model m;
    m.idle_job_probability = pt.probability;
    m.idle_share_min = pt.share_min;
    m.idle_share_max = pt.share_max;
    fc.model = idle_model::uniform(m, seed);
    fc.class_by_qos = w.class_by_qos;
    micro_usd off_cost{0};
    for (auto mode : {finops_mode::off, finops_mode::dry_run, finops_mode::on}) {
      fc.mode = mode;
      auto o = run(w, topo, fc, fault_model{}, seed);
      const auto& f = *o.r.finops;
      if (mode == finops_mode::off) off_cost = f.ledger.cost;
      micro_usd saved{off_cost.value() - f.ledger.cost.value()};
      char share[32];
      std::snprintf(share, sizeof share, "%.2f-%.2f", pt.share_min, pt.share_max);
      std::printf(
          "%-5.2f %-9s %-4s | %9.0f %9.0f %9.0f %9.0f | %6lld %6lld %5lld | %12.2f "
          "%12.2f %6.2f | %8.2f %8.2f | %6.2f\n",
          pt.probability, share, mode == finops_mode::dry_run ? "dry" : to_string(mode),
          gpu_h(f.idle_gpu_ms), gpu_h(f.idle_held_gpu_ms), gpu_h(f.detected_gpu_ms),
          gpu_h(mode == finops_mode::dry_run ? f.dry_run_savings.gpu_ms
                                             : f.reclaimed_gpu_ms),
          static_cast<long long>(f.notices),
          static_cast<long long>(mode == finops_mode::dry_run ? f.dry_run_savings.reclaims
                                                              : f.reclaims),
          static_cast<long long>(f.reclaims_outside_phase), usd(f.ledger.cost),
          mode == finops_mode::dry_run ? usd(f.dry_run_savings.cost) : usd(saved),
          off_cost.value() > 0
              ? 100.0 *
                    static_cast<double>(mode == finops_mode::dry_run
                                            ? f.dry_run_savings.cost.value()
                                            : saved.value()) /
                    static_cast<double>(off_cost.value())
              : 0.0,
          o.r.summary.jct_mean_s / 3600, o.r.summary.queue_p99_s / 3600, o.wall_s);
      std::fflush(stdout);
    }
  }
}

void spot_comparison(const workload& w, const std::filesystem::path& dir, uint64_t seed) {
  fault_model spot_faults;
  for (const char* f : {"availability/aws-02-15-2023_us-east-1a_v100_1.json",
                        "availability/aws-02-15-2023_us-west-2b_v100_1.json",
                        "preemption/aws-04-22-2023_us-west-2b_v100_1.json"}) {
    auto tr = load_spot_trace((dir / "spot-traces" / f).string());
    if (!tr) die(tr.err().to_string());
    spot_faults.spot_traces.push_back(std::move(*tr));
  }
  spot_faults.spot_notice = 2min;
  std::printf(
      "\n%s: spot nodes replaying the 3 AWS spot traces (2 min notice) vs all "
      "on-demand; spot %.3f, on-demand %.2f USD/GPU-h; idle model p 0.5, share "
      "0.05-0.20; spot policy: training and eval, share cap 50%%, checkpoint <= 30 min\n",
      w.name.c_str(), usd(spot_price), usd(on_demand_price));
  std::printf("%-5s %-6s %-5s | %12s %12s %7s | %9s %8s | %9s %9s | %7s %7s | %8s %8s | "
              "%6s\n",
              "spot", "FinOps", "ckpt", "all-OD USD", "spot USD", "saved%", "spot GPUh",
              "spot GPU%", "lost OD", "lost spot", "reclm", "killed", "JCT OD",
              "JCT spot", "wall s");
  idle_class_model m;
  m.idle_job_probability = 0.5;
  m.idle_share_min = 0.05;
  m.idle_share_max = 0.20;
  for (double fraction : {0.25, 0.5}) {
    for (auto mode : {finops_mode::off, finops_mode::on}) {
      for (auto ckpt_cost : {60s, 300s}) {
        finops_loop_config fc;
        fc.mode = mode;
        fc.model = idle_model::uniform(m, seed);
        fc.class_by_qos = w.class_by_qos;
        fc.spot = finops::spot_policy{};
        auto od_topo = w.topology;
        if (auto pr = price_nodes(od_topo, on_demand_price, 0.0, spot_price, seed); !pr)
          die(pr.err().to_string());
        auto spot_topo = w.topology;
        if (auto pr = price_nodes(spot_topo, on_demand_price, fraction, spot_price, seed);
            !pr)
          die(pr.err().to_string());
        auto od = run(w, od_topo, fc, fault_model{}, seed, ckpt_cost);
        auto sp = run(w, spot_topo, fc, spot_faults, seed, ckpt_cost);
        const auto& fo = *od.r.finops;
        const auto& fs = *sp.r.finops;
        std::printf(
            "%-5.2f %-6s %-5lld | %12.2f %12.2f %7.2f | %9.0f %8.1f%% | %9.1f %9.1f | "
            "%7llu %7llu | %8.2f %8.2f | %6.2f\n",
            fraction, to_string(mode), static_cast<long long>(ckpt_cost.count()),
            usd(fo.ledger.cost), usd(fs.ledger.cost),
            100.0 * static_cast<double>(fo.ledger.cost.value() - fs.ledger.cost.value()) /
                static_cast<double>(fo.ledger.cost.value()),
            gpu_h(fs.spot_gpu_ms),
            fs.ledger.gpu_ms > 0 ? 100.0 * static_cast<double>(fs.spot_gpu_ms) /
                                       static_cast<double>(fs.ledger.gpu_ms)
                                 : 0.0,
            od.r.summary.lost_gpu_hours, sp.r.summary.lost_gpu_hours,
            static_cast<unsigned long long>(sp.r.summary.spot_reclaims),
            static_cast<unsigned long long>(sp.r.summary.failures),
            od.r.summary.jct_mean_s / 3600, sp.r.summary.jct_mean_s / 3600,
            od.wall_s + sp.wall_s);
        std::fflush(stdout);
      }
    }
  }
}

} // namespace

int main(int argc, char** argv) {
  std::string traces = TROUPE_TRACES_DIR;
  if (const char* env = std::getenv("TROUPE_TRACES_DIR"); env && *env) traces = env;
  std::string which = "both";
  size_t stride = 1;
  double scale = 1.0;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--traces")
      traces = value();
    else if (a == "--trace")
      which = value();
    else if (a == "--stride")
      stride = std::stoul(value());
    else if (a == "--arrival-scale")
      scale = std::stod(value());
    else if (a == "--seed")
      seed = std::stoull(value());
    else
      die("unknown argument " + std::string(a));
  }
  if (which != "philly" && which != "openb" && which != "both")
    die("--trace: expected philly, openb or both, got " + which);
  if (stride < 1) die("--stride: expected >= 1");
  const std::filesystem::path dir{traces};
  if (!std::filesystem::exists(dir)) die("no traces at " + traces + " (--traces DIR)");
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<workload> loads;
  if (which != "openb") loads.push_back(load_philly(dir, stride, scale));
  if (which != "philly") loads.push_back(load_openb(dir, stride, scale));
  for (const auto& w : loads) {
    idle_sweep(w, seed);
    spot_comparison(w, dir, seed);
  }
  std::printf(
      "\ntotal wall %.1f s\n",
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}
