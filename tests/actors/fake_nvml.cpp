// A fake libnvidia-ml.so.1 for the tests: it exports the NVML C functions
// troupe's loader uses (actors/src/nvml.cpp) and serves a scenario read
// from the JSON file named by the environment variable TROUPE_FAKE_NVML at
// each first nvmlInit_v2 (init reference count 0 -> 1). No GPU driver is
// needed to build or run it.
//
// Scenario:
//   {
//     "driver_version": "550.54.15",
//     "fail": {"nvmlInit_v2": 9},          // function name -> NVML return code
//     "gpus": [{
//       "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-...",
//       "memory_total": 85899345920, "memory_used": 1073741824,
//       "pci_bus_id": "00000000:18:00.0",
//       "nvlink_peers": ["00000000:2A:00.0"], // remote PCI of active links 0..n-1;
//                                             // absent: NVLink not supported
//       "mig": "enabled",                     // enabled | disabled | unsupported
//       "mig_pending": "disabled",            // default: same as mig
//       "utilization_gpu": 37, "utilization_memory": 12, // absent: not supported
//       "power_mw": 312000,                               // absent: not supported
//       "fail": {"nvmlDeviceGetPowerUsage": 999}          // per-GPU failures
//     }]
//   }
// Without TROUPE_FAKE_NVML, nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED
// as on a machine without the driver. `troupe_fake_nvml_init_count` (not an
// NVML function) lets a test check that every init was shut down.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace {

using nvmlReturn_t = int;

constexpr nvmlReturn_t success = 0;
constexpr nvmlReturn_t uninitialized = 1;
constexpr nvmlReturn_t invalid_argument = 2;
constexpr nvmlReturn_t not_supported = 3;
constexpr nvmlReturn_t insufficient_size = 7;
constexpr nvmlReturn_t driver_not_loaded = 9;
constexpr nvmlReturn_t unknown = 999;
constexpr unsigned int max_links = 18;

struct pci_info { // nvmlPciInfo_t
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];
};

struct memory_info { // nvmlMemory_t
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct utilization { // nvmlUtilization_t
  unsigned int gpu;
  unsigned int memory;
};

struct fake_gpu {
  std::string name;
  std::string uuid;
  unsigned long long memory_total = 0;
  unsigned long long memory_used = 0;
  std::string pci_bus_id;
  std::optional<std::vector<std::string>> nvlink_peers;
  std::optional<unsigned int> mig;
  std::optional<unsigned int> mig_pending;
  std::optional<unsigned int> utilization_gpu;
  std::optional<unsigned int> utilization_memory;
  std::optional<unsigned int> power_mw;
  std::map<std::string, int> fail;
};

struct scenario {
  std::string driver_version = "999.99.99";
  std::map<std::string, int> fail;
  std::vector<fake_gpu> gpus;
};

std::mutex mu;
int init_count = 0; // guarded by mu
scenario current;   // guarded by mu

std::optional<unsigned int> mig_of(const nlohmann::json& j) {
  auto s = j.get<std::string>();
  if (s == "enabled") return 1u;
  if (s == "disabled") return 0u;
  return std::nullopt;
}

std::optional<scenario> load(const char* path) {
  try {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    auto j = nlohmann::json::parse(in);
    scenario s;
    s.driver_version = j.value("driver_version", s.driver_version);
    if (j.contains("fail")) s.fail = j["fail"].get<std::map<std::string, int>>();
    for (const auto& g : j.value("gpus", nlohmann::json::array())) {
      fake_gpu gpu;
      gpu.name = g.value("name", "NVIDIA Fake GPU");
      gpu.uuid = g.value("uuid", "GPU-00000000-0000-0000-0000-000000000000");
      gpu.memory_total = g.value("memory_total", 0ull);
      gpu.memory_used = g.value("memory_used", 0ull);
      gpu.pci_bus_id = g.value("pci_bus_id", "00000000:00:00.0");
      if (g.contains("nvlink_peers"))
        gpu.nvlink_peers = g["nvlink_peers"].get<std::vector<std::string>>();
      if (g.contains("mig")) gpu.mig = mig_of(g["mig"]);
      gpu.mig_pending = g.contains("mig_pending") ? mig_of(g["mig_pending"]) : gpu.mig;
      if (g.contains("utilization_gpu")) {
        gpu.utilization_gpu = g["utilization_gpu"].get<unsigned int>();
        gpu.utilization_memory = g.value("utilization_memory", 0u);
      }
      if (g.contains("power_mw")) gpu.power_mw = g["power_mw"].get<unsigned int>();
      if (g.contains("fail")) gpu.fail = g["fail"].get<std::map<std::string, int>>();
      s.gpus.push_back(std::move(gpu));
    }
    return s;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake NVML: bad scenario %s: %s\n", path, e.what());
    return std::nullopt;
  }
}

/// The configured failure of `fn` (globally or for `gpu`), or success.
nvmlReturn_t injected(const char* fn, const fake_gpu* gpu = nullptr) {
  if (auto it = current.fail.find(fn); it != current.fail.end()) return it->second;
  if (gpu != nullptr)
    if (auto it = gpu->fail.find(fn); it != gpu->fail.end()) return it->second;
  return success;
}

/// Checks init and the injected failure of `fn` for `dev`; fills `gpu`.
nvmlReturn_t enter(const char* fn, void* dev, fake_gpu*& gpu) {
  if (init_count == 0) return uninitialized;
  gpu = nullptr;
  for (auto& g : current.gpus)
    if (&g == dev) gpu = &g;
  if (gpu == nullptr) return invalid_argument;
  return injected(fn, gpu);
}

nvmlReturn_t copy_string(const std::string& s, char* out, unsigned int length) {
  if (out == nullptr) return invalid_argument;
  if (s.size() + 1 > length) return insufficient_size;
  std::memcpy(out, s.c_str(), s.size() + 1);
  return success;
}

void fill_pci(const std::string& bus_id, pci_info* out) {
  std::memset(out, 0, sizeof *out);
  std::snprintf(out->busId, sizeof out->busId, "%s", bus_id.c_str());
  std::snprintf(out->busIdLegacy, sizeof out->busIdLegacy, "%s", bus_id.c_str());
  unsigned int domain = 0, bus = 0, device = 0, function = 0;
  if (std::sscanf(bus_id.c_str(), "%x:%x:%x.%x", &domain, &bus, &device, &function) ==
      4) {
    out->domain = domain;
    out->bus = bus;
    out->device = device;
  }
  out->pciDeviceId = 0x233010de;
}

} // namespace

#define FAKE_NVML_API extern "C" __attribute__((visibility("default")))

FAKE_NVML_API int troupe_fake_nvml_init_count() {
  std::lock_guard lock{mu};
  return init_count;
}

FAKE_NVML_API const char* nvmlErrorString(nvmlReturn_t rc) {
  switch (rc) {
  case success:
    return "Success";
  case uninitialized:
    return "Uninitialized";
  case invalid_argument:
    return "Invalid Argument";
  case not_supported:
    return "Not Supported";
  case insufficient_size:
    return "Insufficient Size";
  case driver_not_loaded:
    return "Driver Not Loaded";
  case unknown:
    return "Unknown Error";
  default:
    return "Fake NVML Error";
  }
}

FAKE_NVML_API nvmlReturn_t nvmlInit_v2() {
  std::lock_guard lock{mu};
  if (init_count == 0) {
    const char* path = std::getenv("TROUPE_FAKE_NVML");
    if (path == nullptr || *path == '\0') return driver_not_loaded;
    auto s = load(path);
    if (!s) return unknown;
    current = std::move(*s);
  }
  if (auto rc = injected("nvmlInit_v2"); rc != success) return rc;
  ++init_count;
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlShutdown() {
  std::lock_guard lock{mu};
  if (init_count == 0) return uninitialized;
  --init_count;
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlSystemGetDriverVersion(char* version,
                                                      unsigned int length) {
  std::lock_guard lock{mu};
  if (init_count == 0) return uninitialized;
  if (auto rc = injected("nvmlSystemGetDriverVersion"); rc != success) return rc;
  return copy_string(current.driver_version, version, length);
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  std::lock_guard lock{mu};
  if (init_count == 0) return uninitialized;
  if (auto rc = injected("nvmlDeviceGetCount_v2"); rc != success) return rc;
  if (count == nullptr) return invalid_argument;
  *count = static_cast<unsigned int>(current.gpus.size());
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index,
                                                         void** device) {
  std::lock_guard lock{mu};
  if (init_count == 0) return uninitialized;
  if (auto rc = injected("nvmlDeviceGetHandleByIndex_v2"); rc != success) return rc;
  if (device == nullptr || index >= current.gpus.size()) return invalid_argument;
  *device = &current.gpus[index];
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetName(void* device, char* name,
                                             unsigned int length) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetName", device, gpu); rc != success) return rc;
  return copy_string(gpu->name, name, length);
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetUUID(void* device, char* uuid,
                                             unsigned int length) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetUUID", device, gpu); rc != success) return rc;
  return copy_string(gpu->uuid, uuid, length);
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetMemoryInfo(void* device, memory_info* memory) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetMemoryInfo", device, gpu); rc != success) return rc;
  if (memory == nullptr) return invalid_argument;
  memory->total = gpu->memory_total;
  memory->used = gpu->memory_used;
  memory->free = gpu->memory_total - gpu->memory_used;
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetPciInfo_v3(void* device, pci_info* pci) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetPciInfo_v3", device, gpu); rc != success) return rc;
  if (pci == nullptr) return invalid_argument;
  fill_pci(gpu->pci_bus_id, pci);
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetMigMode(void* device, unsigned int* current_mode,
                                                unsigned int* pending_mode) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetMigMode", device, gpu); rc != success) return rc;
  if (!gpu->mig) return not_supported;
  *current_mode = *gpu->mig;
  *pending_mode = gpu->mig_pending.value_or(*gpu->mig);
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetNvLinkState(void* device, unsigned int link,
                                                    int* is_active) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetNvLinkState", device, gpu); rc != success) return rc;
  if (!gpu->nvlink_peers) return not_supported;
  if (link >= max_links || is_active == nullptr) return invalid_argument;
  *is_active = link < gpu->nvlink_peers->size() ? 1 : 0;
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(void* device,
                                                               unsigned int link,
                                                               pci_info* pci) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetNvLinkRemotePciInfo_v2", device, gpu); rc != success)
    return rc;
  if (!gpu->nvlink_peers) return not_supported;
  if (link >= gpu->nvlink_peers->size() || pci == nullptr) return invalid_argument;
  fill_pci((*gpu->nvlink_peers)[link], pci);
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetUtilizationRates(void* device,
                                                         utilization* util) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetUtilizationRates", device, gpu); rc != success)
    return rc;
  if (!gpu->utilization_gpu) return not_supported;
  util->gpu = *gpu->utilization_gpu;
  util->memory = gpu->utilization_memory.value_or(0);
  return success;
}

FAKE_NVML_API nvmlReturn_t nvmlDeviceGetPowerUsage(void* device, unsigned int* power) {
  std::lock_guard lock{mu};
  fake_gpu* gpu = nullptr;
  if (auto rc = enter("nvmlDeviceGetPowerUsage", device, gpu); rc != success) return rc;
  if (!gpu->power_mw) return not_supported;
  *power = *gpu->power_mw;
  return success;
}
