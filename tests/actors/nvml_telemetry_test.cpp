// The FinOps telemetry source over NVML, against the fake
// libnvidia-ml.so.1 the tests build (no GPU driver needed).

#include "fake_nvml_scenario.hpp"
#include "troupe/actors/nvml_telemetry.hpp"

#include <doctest/doctest.h>

using namespace troupe::actors;

TEST_CASE("NVML samples become FinOps samples, with UUIDs and the caller's time") {
  troupe::test::fake_nvml_scenario scenario{troupe::test::four_gpu_scenario()};
  auto lib = nvml_library::open(TROUPE_FAKE_NVML_LIBRARY);
  REQUIRE(lib.ok());
  auto src = nvml_telemetry_source::open(std::move(*lib), "gpu-node-1");
  REQUIRE_MESSAGE(src.ok(), src.err().to_string());
  auto at = troupe::time_point{std::chrono::seconds{1234}};
  auto samples = src->sample(at);
  REQUIRE_MESSAGE(samples.ok(), samples.err().to_string());
  REQUIRE(samples->size() == 4);
  for (uint32_t i = 0; i < 4; ++i) {
    const auto& s = (*samples)[i];
    CAPTURE(i);
    CHECK(s.node == "gpu-node-1");
    CHECK(s.gpu_index == i);
    CHECK(s.uuid == "GPU-0000000" + std::to_string(i) + "-fake");
    CHECK(s.at == at);
    CHECK(s.memory_used_mib == (uint64_t{i} + 1) * 1024);
    CHECK(s.power_mw == 100000u + 1000u * i);
    CHECK(s.allocation == troupe::finops::allocation_id{0});
    CHECK(troupe::finops::validate(s).ok());
    // MIG: NVML does not report utilisation (0 here); the others do.
    CHECK(s.utilisation_pct == (i == 2 ? 0u : 10u * (i + 1)));
  }
}
