#pragma once
// Scenarios for the fake libnvidia-ml.so.1 (fake_nvml.cpp): written to a
// temporary file named by TROUPE_FAKE_NVML for the next nvmlInit_v2.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

namespace troupe::test {

/// The error of `r` as text, or "" when it holds a value (doctest builds
/// messages even for passing checks when asked to show successes).
template <class Result> std::string why(const Result& r) {
  return r.ok() ? std::string{} : r.err().to_string();
}

/// The fake NVML library's path (set by tests/CMakeLists.txt).
inline const std::string fake_nvml_library = TROUPE_FAKE_NVML_LIBRARY;

/// Writes `scenario` to a per-process temporary file and points
/// TROUPE_FAKE_NVML at it; the file is removed with the object.
class fake_nvml_scenario {
public:
  explicit fake_nvml_scenario(const nlohmann::json& scenario) {
    path_ = std::filesystem::temp_directory_path() /
            ("troupe-fake-nvml-" + std::to_string(getpid()) + "-" +
             std::to_string(counter()++) + ".json");
    std::ofstream(path_) << scenario.dump(2);
    setenv("TROUPE_FAKE_NVML", path_.c_str(), 1);
  }
  fake_nvml_scenario(const fake_nvml_scenario&) = delete;
  fake_nvml_scenario& operator=(const fake_nvml_scenario&) = delete;
  ~fake_nvml_scenario() {
    unsetenv("TROUPE_FAKE_NVML");
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }

private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path path_;
};

/// 81559 MiB, what NVML reports for an H100 SXM 80GB.
inline constexpr unsigned long long h100_memory_bytes = 81559ull << 20;

/// Four H100s as two NVLink pairs (0-1 over two links, 2-3 over one), GPU 2
/// in MIG mode; bus ids as NVML writes them (eight-digit domain, upper case).
inline nlohmann::json four_gpu_scenario() {
  using nlohmann::json;
  auto gpu = [](int i, const char* bus, json peers, const char* mig) {
    return json{{"name", "NVIDIA H100 80GB HBM3"},
                {"uuid", "GPU-0000000" + std::to_string(i) + "-fake"},
                {"memory_total", h100_memory_bytes},
                {"memory_used", (unsigned long long)(i + 1) << 30},
                {"pci_bus_id", bus},
                {"nvlink_peers", std::move(peers)},
                {"mig", mig},
                {"utilization_gpu", 10 * (i + 1)},
                {"utilization_memory", 5 * (i + 1)},
                {"power_mw", 100000 + 1000 * i}};
  };
  json gpus = json::array();
  gpus.push_back(
      gpu(0, "00000000:18:00.0", {"00000000:2A:00.0", "00000000:2A:00.0"}, "disabled"));
  gpus.push_back(
      gpu(1, "00000000:2A:00.0", {"00000000:18:00.0", "00000000:18:00.0"}, "disabled"));
  gpus.push_back(gpu(2, "00000000:3B:00.0", {"00000000:5D:00.0"}, "enabled"));
  gpus.push_back(gpu(3, "00000000:5D:00.0", {"00000000:3B:00.0"}, "disabled"));
  // In MIG mode NVML reports no whole-GPU utilisation.
  gpus[2].erase("utilization_gpu");
  gpus[2].erase("utilization_memory");
  return json{{"driver_version", "550.54.15"}, {"gpus", gpus}};
}

} // namespace troupe::test
