// The NVML loader against the fake libnvidia-ml.so.1 built by the tests:
// a 4-GPU node read back exactly, telemetry, and every way loading or a
// call can fail turned into errc::unavailable.

#include "fake_nvml_scenario.hpp"
#include "troupe/actors/errc.hpp"
#include "troupe/actors/nvml.hpp"

#include <atomic>
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <string>
#include <thread>
#include <vector>

using namespace troupe;
using namespace troupe::actors;
using troupe::test::fake_nvml_library;
using troupe::test::fake_nvml_scenario;
using troupe::test::four_gpu_scenario;
using troupe::test::h100_memory_bytes;

namespace {

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

/// nvmlInit_v2 references the fake holds now (its own counter).
int fake_init_count() {
  void* h = dlopen(fake_nvml_library.c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(h != nullptr);
  auto fn = reinterpret_cast<int (*)()>(dlsym(h, "troupe_fake_nvml_init_count"));
  REQUIRE(reinterpret_cast<void*>(fn) != nullptr);
  int n = fn();
  dlclose(h);
  return n;
}

} // namespace

TEST_SUITE("actors.nvml") {

  TEST_CASE("a four-GPU node with two NVLink pairs and one MIG GPU reads back exactly") {
    fake_nvml_scenario scenario{four_gpu_scenario()};
    auto lib = nvml_library::open(fake_nvml_library);
    REQUIRE_MESSAGE(lib.ok(), troupe::test::why(lib));
    CHECK(lib->path() == fake_nvml_library);

    auto version = lib->driver_version();
    REQUIRE(version.ok());
    CHECK(*version == "550.54.15");
    auto count = lib->device_count();
    REQUIRE(count.ok());
    CHECK(*count == 4);

    auto devices = lib->devices();
    REQUIRE_MESSAGE(devices.ok(), troupe::test::why(devices));
    REQUIRE(devices->size() == 4);
    const std::vector<std::string> buses = {"0000:18:00.0", "0000:2a:00.0",
                                            "0000:3b:00.0", "0000:5d:00.0"};
    const std::vector<std::vector<std::string>> peers = {
        {buses[1], buses[1]}, {buses[0], buses[0]}, {buses[3]}, {buses[2]}};
    for (uint32_t i = 0; i < 4; ++i) {
      const auto& d = (*devices)[i];
      CAPTURE(i);
      CHECK(d.index == i);
      CHECK(d.name == "NVIDIA H100 80GB HBM3");
      CHECK(d.uuid == "GPU-0000000" + std::to_string(i) + "-fake");
      CHECK(d.memory_total_bytes == h100_memory_bytes);
      CHECK(d.pci_bus_id == buses[i]);
      CHECK(d.nvlink_remote_bus_ids == peers[i]);
      CHECK(d.mig == (i == 2 ? mig_mode::enabled : mig_mode::disabled));
      CHECK_FALSE(d.mig_pending_change);
    }
    auto one = lib->device_info(3);
    REQUIRE(one.ok());
    CHECK(*one == (*devices)[3]);
  }

  TEST_CASE("telemetry samples report utilisation, memory used and power") {
    fake_nvml_scenario scenario{four_gpu_scenario()};
    auto lib = nvml_library::open(fake_nvml_library);
    REQUIRE(lib.ok());
    auto samples = lib->sample_all();
    REQUIRE_MESSAGE(samples.ok(), troupe::test::why(samples));
    REQUIRE(samples->size() == 4);
    for (uint32_t i = 0; i < 4; ++i) {
      const auto& s = (*samples)[i];
      CAPTURE(i);
      CHECK(s.index == i);
      CHECK(s.memory_used_bytes == (uint64_t{i} + 1) << 30);
      CHECK(s.memory_total_bytes == h100_memory_bytes);
      CHECK(s.power_milliwatts == 100000u + 1000u * i);
      if (i == 2) {
        // MIG mode: NVML says NOT_SUPPORTED, which is "not reported", not an error.
        CHECK_FALSE(s.gpu_utilization_percent.has_value());
        CHECK_FALSE(s.memory_utilization_percent.has_value());
      } else {
        CHECK(s.gpu_utilization_percent == 10u * (i + 1));
        CHECK(s.memory_utilization_percent == 5u * (i + 1));
      }
    }
    auto single = lib->sample(1);
    REQUIRE(single.ok());
    CHECK(*single == (*samples)[1]);
  }

  TEST_CASE("a GPU without MIG, NVLink or power readings reports them as absent") {
    nlohmann::json gpu = {{"name", "Tesla T4"},
                          {"uuid", "GPU-t4"},
                          {"memory_total", 15360ull << 20},
                          {"memory_used", 0},
                          {"pci_bus_id", "00000000:00:1E.0"},
                          {"utilization_gpu", 0}};
    fake_nvml_scenario scenario{{{"gpus", {gpu}}}};
    auto lib = nvml_library::open(fake_nvml_library);
    REQUIRE(lib.ok());
    auto d = lib->device_info(0);
    REQUIRE_MESSAGE(d.ok(), troupe::test::why(d));
    CHECK(d->mig == mig_mode::unsupported);
    CHECK(d->nvlink_remote_bus_ids.empty());
    CHECK(d->pci_bus_id == "0000:00:1e.0");
    auto s = lib->sample(0);
    REQUIRE(s.ok());
    CHECK_FALSE(s->power_milliwatts.has_value());
    CHECK(s->gpu_utilization_percent == 0u);
  }

  TEST_CASE("a missing library is an unavailable error, not a crash") {
    auto lib = nvml_library::open("/nonexistent/dir/libnvidia-ml.so.1");
    REQUIRE_FALSE(lib.ok());
    CHECK(lib.err().is(errc::unavailable));
    CHECK(
        contains(lib.err().message(), "cannot load /nonexistent/dir/libnvidia-ml.so.1"));

    auto empty = nvml_library::open("");
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.err().is(errc::unavailable));
  }

  TEST_CASE("a library without the NVML symbols is an unavailable error naming them") {
    auto lib = nvml_library::open("libm.so.6");
    REQUIRE_FALSE(lib.ok());
    CHECK(lib.err().is(errc::unavailable));
    CHECK(contains(lib.err().message(), "nvmlInit_v2"));
    CHECK(contains(lib.err().message(), "nvmlDeviceGetPowerUsage"));
  }

  TEST_CASE("init failures are unavailable errors with NVML's message") {
    SUBCASE("the scenario makes nvmlInit_v2 fail") {
      fake_nvml_scenario scenario{{{"fail", {{"nvmlInit_v2", 18}}}, {"gpus", {}}}};
      auto lib = nvml_library::open(fake_nvml_library);
      REQUIRE_FALSE(lib.ok());
      CHECK(lib.err().is(errc::unavailable));
      CHECK(contains(lib.err().message(), "nvmlInit_v2"));
      CHECK(contains(lib.err().message(), "NVML error 18"));
    }
    SUBCASE("no driver: the fake without a scenario") {
      unsetenv("TROUPE_FAKE_NVML");
      auto lib = nvml_library::open(fake_nvml_library);
      REQUIRE_FALSE(lib.ok());
      CHECK(lib.err().is(errc::unavailable));
      CHECK(contains(lib.err().message(), "Driver Not Loaded"));
    }
    CHECK(fake_init_count() == 0);
  }

  TEST_CASE("a failing call is an unavailable error naming the call and the GPU") {
    auto s = four_gpu_scenario();
    s["gpus"][1]["fail"] = {{"nvmlDeviceGetMemoryInfo", 999}};
    s["gpus"][3]["fail"] = {{"nvmlDeviceGetPowerUsage", 15}};
    fake_nvml_scenario scenario{s};
    auto lib = nvml_library::open(fake_nvml_library);
    REQUIRE(lib.ok());

    CHECK(lib->device_info(0).ok());
    auto bad = lib->device_info(1);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().is(errc::unavailable));
    CHECK(
        contains(bad.err().message(), "nvmlDeviceGetMemoryInfo (GPU 1): Unknown Error"));
    CHECK_FALSE(lib->devices().ok());

    auto power = lib->sample(3);
    REQUIRE_FALSE(power.ok());
    CHECK(contains(power.err().message(), "nvmlDeviceGetPowerUsage (GPU 3)"));
    CHECK(contains(power.err().message(), "NVML error 15"));
    CHECK_FALSE(lib->sample_all().ok());

    auto out_of_range = lib->device_info(7);
    REQUIRE_FALSE(out_of_range.ok());
    CHECK(
        contains(out_of_range.err().message(), "nvmlDeviceGetHandleByIndex_v2 (GPU 7)"));
  }

  TEST_CASE("a failing global call (device count) is an error too") {
    fake_nvml_scenario scenario{
        {{"fail", {{"nvmlDeviceGetCount_v2", 999}}}, {"gpus", {}}}};
    auto lib = nvml_library::open(fake_nvml_library);
    REQUIRE(lib.ok());
    auto n = lib->device_count();
    REQUIRE_FALSE(n.ok());
    CHECK(contains(n.err().message(), "nvmlDeviceGetCount_v2"));
    CHECK_FALSE(lib->devices().ok());
  }

  TEST_CASE("every open is shut down by the destructor, moves included") {
    fake_nvml_scenario scenario{four_gpu_scenario()};
    CHECK(fake_init_count() == 0);
    {
      auto a = nvml_library::open(fake_nvml_library);
      REQUIRE(a.ok());
      CHECK(fake_init_count() == 1);
      {
        auto b = nvml_library::open(fake_nvml_library);
        REQUIRE(b.ok());
        CHECK(fake_init_count() == 2);
        nvml_library moved = std::move(*b);
        CHECK(fake_init_count() == 2);
        CHECK(moved.device_count().value() == 4);
      }
      CHECK(fake_init_count() == 1);
    }
    CHECK(fake_init_count() == 0);
  }

  TEST_CASE("open_default takes TROUPE_NVML_LIBRARY from the environment map") {
    fake_nvml_scenario scenario{four_gpu_scenario()};
    auto lib = nvml_library::open_default(
        env_map{{std::string{nvml_library_env}, fake_nvml_library}});
    REQUIRE(lib.ok());
    CHECK(lib->path() == fake_nvml_library);

    // Without it: the driver's soname. This process has the fake loaded under
    // that very soname (its SONAME is libnvidia-ml.so.1, and glibc keeps it
    // loaded), so the loader may hand the fake back: only check that the
    // default name was the one tried.
    auto by_soname = nvml_library::open_default(env_map{});
    if (by_soname.ok())
      CHECK(by_soname->path() == nvml_default_library);
    else
      CHECK(contains(by_soname.err().message(), nvml_default_library));
  }

  TEST_CASE("one open library answers several threads at once") {
    fake_nvml_scenario scenario{four_gpu_scenario()};
    auto lib = nvml_library::open(fake_nvml_library);
    REQUIRE(lib.ok());
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < 200; ++i) {
          auto s = lib->sample_all();
          if (!s.ok() || s->size() != 4) ++failures;
        }
      });
    for (auto& t : threads)
      t.join();
    CHECK(failures.load() == 0);
  }

  TEST_CASE("PCI addresses are normalised the way hwloc writes them") {
    CHECK(normalize_pci_bus_id("00000000:3B:00.0") == "0000:3b:00.0");
    CHECK(normalize_pci_bus_id("0000:3b:00.0") == "0000:3b:00.0");
    CHECK(normalize_pci_bus_id("0:3:1.7") == "0000:03:01.7");
    CHECK(normalize_pci_bus_id("00010000:01:00.0") == "10000:01:00.0");
    for (const char* bad : {"", "3b:00.0", "0000:3b:00", "0000:3b:00.8", "0000:3b:20.0",
                            "000000000:3b:00.0", "0000:3bb:00.0", "0000:3b:00.0 ",
                            "zz:00:00.0", "0000:3b:00.0.0"}) {
      CAPTURE(bad);
      CHECK(normalize_pci_bus_id(bad).empty());
    }
    auto a = parse_pci_bus_id("0001:ff:1f.7");
    REQUIRE(a.has_value());
    CHECK(a->domain == 1);
    CHECK(a->bus == 0xff);
    CHECK(a->device == 0x1f);
    CHECK(a->function == 7);
  }

} // TEST_SUITE
