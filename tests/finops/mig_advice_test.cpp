#include "troupe/finops/errc.hpp"
#include "troupe/finops/mig_advice.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace troupe::finops;
using troupe::placement::make_layout;

namespace {

inference_job job(uint64_t id, uint64_t gib, uint32_t compute = 0) {
  return {allocation_id{id}, gib * 1024, compute};
}

} // namespace

TEST_SUITE("finops.mig_advice") {
  TEST_CASE("small inference jobs move onto MIG instances and free GPUs") {
    // Ten A100-80GB GPUs, one job each: seven use 8 GiB, two 18 GiB, one
    // 60 GiB (over half the GPU: keeps its GPU).
    std::vector<inference_job> jobs;
    for (uint64_t i = 0; i < 7; ++i)
      jobs.push_back(job(i, 8));
    jobs.push_back(job(7, 18));
    jobs.push_back(job(8, 18));
    jobs.push_back(job(9, 60));
    auto advice = advise_mig("A100-80GB", 80 * 1024, jobs);
    REQUIRE(advice.ok());
    CHECK(advice->gpus_before == 10);
    // 8 GiB + 10% -> 1g.10gb; 18 GiB + 10% -> 1g.20gb; 7 x 1g.10gb and
    // 2 x 1g.20gb need two GPUs (compute slices: 9 > 7).
    CHECK(advice->layout.size() == 2);
    CHECK(advice->whole_gpu == std::vector<allocation_id>{allocation_id{9}});
    CHECK(advice->gpus_after == 3);
    CHECK(advice->gpus_freed() == 7);
    CHECK(advice->summary.find("frees 7 of 10 GPUs") != std::string::npos);

    std::set<uint64_t> seen;
    std::map<std::string, int> profiles;
    for (const auto& gpu : advice->layout) {
      REQUIRE(gpu.instances.size() == gpu.jobs.size());
      auto layout = make_layout("A100-80GB", gpu.instances);
      CHECK(layout.ok()); // a layout NVIDIA allows
      for (size_t i = 0; i < gpu.jobs.size(); ++i) {
        CHECK(seen.insert(gpu.jobs[i].value()).second);
        ++profiles[gpu.instances[i].profile];
        const auto want = gpu.jobs[i].value() < 7 ? "1g.10gb" : "1g.20gb";
        CHECK(gpu.instances[i].profile == want);
      }
    }
    CHECK(seen.size() == 9);
    CHECK(profiles["1g.10gb"] == 7);
    CHECK(profiles["1g.20gb"] == 2);
  }

  TEST_CASE("compute needs and headroom pick larger profiles") {
    // 9 GiB without headroom fits 1g.10gb; with 20% it needs a 20 GB slice.
    auto tight =
        advise_mig("H100-80GB", 80 * 1024, {job(1, 9)}, {.headroom_permille = 0});
    REQUIRE(tight.ok());
    CHECK(tight->layout.at(0).instances.at(0).profile == "1g.10gb");
    auto roomy =
        advise_mig("H100-80GB", 80 * 1024, {job(1, 9)}, {.headroom_permille = 200});
    REQUIRE(roomy.ok());
    CHECK(roomy->layout.at(0).instances.at(0).profile == "1g.20gb");
    // Three compute slices asked: 3g.40gb.
    auto compute = advise_mig("H100-80GB", 80 * 1024, {job(1, 5, 3)});
    REQUIRE(compute.ok());
    CHECK(compute->layout.at(0).instances.at(0).profile == "3g.40gb");
    // Needing all seven compute slices is a whole GPU: nothing to gain.
    auto whole = advise_mig("H100-80GB", 80 * 1024, {job(1, 5, 7)});
    REQUIRE(whole.ok());
    CHECK(whole->layout.empty());
    CHECK(whole->gpus_freed() == 0);
  }

  TEST_CASE("GPUs without MIG and bad options are refused") {
    auto v100 = advise_mig("V100-32GB", 32 * 1024, {job(1, 4)});
    REQUIRE_FALSE(v100.ok());
    CHECK(v100.err().is(errc::invalid_argument));
    CHECK(v100.err().message().find("V100-32GB") != std::string::npos);
    CHECK_FALSE(advise_mig("A100-80GB", 0, {job(1, 4)}).ok());
    CHECK_FALSE(advise_mig("A100-80GB", 80 * 1024, {}, {.headroom_permille = -1}).ok());
    CHECK_FALSE(
        advise_mig("A100-80GB", 80 * 1024, {}, {.max_memory_share_permille = 1001}).ok());
    auto empty = advise_mig("A100-80GB", 80 * 1024, {});
    REQUIRE(empty.ok());
    CHECK(empty->gpus_before == 0);
    CHECK(empty->gpus_freed() == 0);
  }
}
