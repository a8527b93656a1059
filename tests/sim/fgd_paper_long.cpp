// The FGD experiment of issue 4 on the full Alibaba openb trace (1,213
// nodes, 6,212 GPUs, 8,152 pods): 10 evaluation seeds (42-51, the paper's
// seeds; troupe's policy was tuned on seeds 1-10), the four policies.
// Checks the paper's published means (Weng et al., ATC'23, Fig. 9a; the
// simulator's expected_results: Random 86.3, BestFit 92.9, FGD 95.2% of
// GPUs allocated at 100% arrived demand, mean of 10 seeds) within a point,
// and that troupe's policy beats FGD: a higher mean and more allocated on
// at least 8 of the 10 paired seeds. `long` label: about a minute at -O2.
// docs/FGD-EXPERIMENT.md has the figures.

#include "troupe/sim/fgd_experiment.hpp"

#include <chrono>
#include <cmath>
#include <doctest/doctest.h>
#include <filesystem>
#include <string>

using namespace troupe;
using namespace troupe::sim;

namespace {

std::string format_table(const summary_table& t) {
  std::string s = t.title + "\n";
  for (const auto& c : t.columns)
    s += c + " | ";
  s += "\n";
  for (const auto& r : t.rows) {
    for (const auto& c : r)
      s += c + " | ";
    s += "\n";
  }
  return s;
}

double mean_of(const fgd_experiment_result& r, const std::string& policy) {
  double sum = 0;
  for (auto seed : r.config.seeds)
    sum += r.find(policy, seed)->alloc_at_100;
  return sum / static_cast<double>(r.config.seeds.size());
}

} // namespace

TEST_SUITE("fgd experiment, full trace") {
  TEST_CASE("the paper's baselines reproduce within a point and troupe beats FGD on "
            "the evaluation seeds") {
    const std::string dir = std::string{TROUPE_TRACES_DIR} + "/alibaba-openb-2023";
    if (!std::filesystem::exists(dir)) {
      MESSAGE("skipped: no trace data at " << dir);
      return;
    }
    auto nodes = load_alibaba_nodes(dir + "/openb_node_list_gpu_node.csv");
    REQUIRE(nodes.ok());
    auto pods = load_alibaba_pods(dir + "/openb_pod_list_default.csv");
    REQUIRE(pods.ok());
    auto topo = topology_from_nodes(*nodes);
    REQUIRE(topo.ok());
    REQUIRE(topo->total_gpus() == 6212);
    REQUIRE(pods->jobs.size() == 8152);

    fgd_experiment_config cfg; // seeds 42-51; random, bestfit, fgd, troupe
    auto t0 = std::chrono::steady_clock::now();
    auto r = run_fgd_experiment(*topo, *pods, cfg);
    auto seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(r.ok());
    MESSAGE(format_table(r->table()) << format_table(r->seed_table()) << seconds
                                     << " s for " << r->runs.size() << " runs");

    CHECK(r->config.seeds.size() == 10);
    CHECK(std::abs(mean_of(*r, "random") - 86.3) < 1.0);
    CHECK(std::abs(mean_of(*r, "bestfit") - 92.9) < 1.0);
    CHECK(std::abs(mean_of(*r, "fgd") - 95.2) < 1.0);
    // The paper's order, and troupe's claim.
    CHECK(mean_of(*r, "random") < mean_of(*r, "bestfit"));
    CHECK(mean_of(*r, "bestfit") < mean_of(*r, "fgd"));
    CHECK(mean_of(*r, "troupe") > mean_of(*r, "fgd"));
    int wins = 0;
    for (auto seed : cfg.seeds)
      wins += r->find("troupe", seed)->alloc_at_100 > r->find("fgd", seed)->alloc_at_100;
    CHECK(wins >= 8);
    // Fragmented GPUs at 100% demand (% of GPUs), paper's means: Random
    // 13.5, BestFit 7.1, FGD 4.7; within a point as well.
    double frag_fgd = 0, frag_random = 0;
    for (auto seed : cfg.seeds) {
      frag_fgd += r->find("fgd", seed)->frag_at_100 / 10;
      frag_random += r->find("random", seed)->frag_at_100 / 10;
    }
    CHECK(std::abs(frag_fgd - 4.7) < 1.0);
    CHECK(std::abs(frag_random - 13.5) < 1.0);
  }
}
