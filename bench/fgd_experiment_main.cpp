// The FGD arrival experiment (sim/fgd_experiment.hpp) on the Alibaba openb
// trace, with wall time per policy and seed. Not a Google Benchmark: one
// figure is one long run. docs/FGD-EXPERIMENT.md lists the commands.
//
//   bench_fgd_experiment [--traces DIR] [--seeds 42-51|1,2,3]
//       [--policies random,bestfit,fgd,troupe] [--ratio 1.3]
//       [--arrivals simulator|with_replacement] [--no-shuffle-nodes]

#include "troupe/sim/fgd_experiment.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace troupe;

void print_table(const sim::summary_table& t) {
  std::printf("%s\n", sim::render_table(t).c_str());
}

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    auto c = s.find(',');
    out.emplace_back(s.substr(0, c));
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return out;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_fgd_experiment: %s\n", what.c_str());
  std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
  std::string traces = TROUPE_TRACES_DIR;
  sim::fgd_experiment_config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--traces")
      traces = value();
    else if (a == "--seeds") {
      auto seeds = sim::parse_seed_list(value());
      if (!seeds) die("--seeds: " + seeds.err().message());
      cfg.seeds = *seeds;
    } else if (a == "--policies")
      cfg.policies = split(value());
    else if (a == "--ratio")
      cfg.demand_ratio = std::stod(value());
    else if (a == "--arrivals") {
      auto am = sim::parse_arrival_model(value());
      if (!am) die(am.err().message());
      cfg.arrivals = *am;
    } else if (a == "--no-shuffle-nodes")
      cfg.shuffle_nodes = false;
    else
      die("unknown argument " + std::string(a));
  }
  auto nodes = sim::load_alibaba_nodes(
      traces + "/alibaba-openb-2023/openb_node_list_gpu_node.csv");
  if (!nodes) die(nodes.err().to_string());
  auto pods =
      sim::load_alibaba_pods(traces + "/alibaba-openb-2023/openb_pod_list_default.csv");
  if (!pods) die(pods.err().to_string());
  auto topo = sim::topology_from_nodes(*nodes);
  if (!topo) die(topo.err().to_string());

  // One call per policy and seed, timed; then the results merged as one.
  sim::fgd_experiment_result all;
  std::vector<std::vector<double>> seconds(cfg.policies.size());
  for (size_t p = 0; p < cfg.policies.size(); ++p)
    for (auto seed : cfg.seeds) {
      auto one = cfg;
      one.policies = {cfg.policies[p]};
      one.seeds = {seed};
      auto t0 = std::chrono::steady_clock::now();
      auto r = sim::run_fgd_experiment(*topo, *pods, one);
      auto t1 = std::chrono::steady_clock::now();
      if (!r) die(r.err().to_string());
      seconds[p].push_back(std::chrono::duration<double>(t1 - t0).count());
      if (all.runs.empty())
        all = *r;
      else
        all.runs.push_back(r->runs.front());
      std::fprintf(stderr, "%s seed %llu: %.2f%% at 100%%, %.2f s\n",
                   cfg.policies[p].c_str(), static_cast<unsigned long long>(seed),
                   r->runs.front().alloc_at_100, seconds[p].back());
    }
  all.config = cfg;
  std::printf("%zu nodes, %llu GPUs, %zu pods in the trace, %zu classes in the target "
              "workload, demand ratio %.2f, arrivals %s\n\n",
              all.nodes, static_cast<unsigned long long>(all.total_gpu_milli / 1000),
              pods->jobs.size(), all.mix_classes, cfg.demand_ratio,
              cfg.arrivals == sim::arrival_model::simulator ? "simulator"
                                                            : "with_replacement");
  print_table(all.table());
  print_table(all.seed_table());
  sim::summary_table times;
  times.title = "wall time per run (s, includes building the cluster and the arrivals)";
  times.columns = {"seed"};
  for (const auto& p : cfg.policies)
    times.columns.push_back(p);
  for (size_t s = 0; s < cfg.seeds.size(); ++s) {
    std::vector<std::string> row{std::to_string(cfg.seeds[s])};
    for (size_t p = 0; p < cfg.policies.size(); ++p) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f", seconds[p][s]);
      row.push_back(buf);
    }
    times.rows.push_back(std::move(row));
  }
  print_table(times);
  return 0;
}
