#include "troupe/actors/nvml.hpp"

#include "troupe/actors/errc.hpp"

#include <array>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <utility>

namespace troupe::actors {

// -- our declarations of the NVML C ABI ---------------------------------------
//
// From NVIDIA's documented NVML API (docs.nvidia.com/deploy/nvml-api): only
// what this file calls. Layouts are those of the versioned functions named
// below (nvmlDeviceGetPciInfo_v3 and nvmlDeviceGetNvLinkRemotePciInfo_v2
// share nvmlPciInfo_t).
namespace nvml_abi {

using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
using nvmlEnableState_t = int; // NVML_FEATURE_DISABLED = 0, NVML_FEATURE_ENABLED = 1

constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_INVALID_ARGUMENT = 2;
constexpr nvmlReturn_t NVML_ERROR_NOT_SUPPORTED = 3;
constexpr nvmlEnableState_t NVML_FEATURE_ENABLED = 1;

constexpr size_t NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE = 32;
constexpr size_t NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE = 16;
constexpr size_t NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96;
constexpr size_t NVML_DEVICE_UUID_V2_BUFFER_SIZE = 96;
constexpr size_t NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE = 80;

struct nvmlPciInfo_t {
  char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
};
static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};

} // namespace nvml_abi

using namespace nvml_abi;

struct nvml_library::impl {
  std::string path;
  void* handle = nullptr;
  bool initialised = false;

  nvmlReturn_t (*init_v2)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*system_get_driver_version)(char*, unsigned int) = nullptr;
  nvmlReturn_t (*device_get_count_v2)(unsigned int*) = nullptr;
  nvmlReturn_t (*device_get_handle_by_index_v2)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*device_get_name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*device_get_uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*device_get_memory_info)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*device_get_pci_info_v3)(nvmlDevice_t, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*device_get_mig_mode)(nvmlDevice_t, unsigned int*,
                                      unsigned int*) = nullptr;
  nvmlReturn_t (*device_get_nvlink_state)(nvmlDevice_t, unsigned int,
                                          nvmlEnableState_t*) = nullptr;
  nvmlReturn_t (*device_get_nvlink_remote_pci_info_v2)(nvmlDevice_t, unsigned int,
                                                       nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*device_get_utilization_rates)(nvmlDevice_t,
                                               nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*device_get_power_usage)(nvmlDevice_t, unsigned int*) = nullptr;

  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  ~impl() {
    if (initialised) shutdown();
    if (handle != nullptr) dlclose(handle);
  }

  /// "nvmlDeviceGetMemoryInfo (GPU 2): Unknown Error (NVML error 999)".
  error fail(std::string_view call, std::string_view what, nvmlReturn_t rc) const {
    const char* text = error_string != nullptr ? error_string(rc) : nullptr;
    std::string msg{call};
    if (!what.empty()) msg += " (" + std::string{what} + ")";
    msg += ": ";
    msg += text != nullptr ? text : "unknown error";
    msg += " (NVML error " + std::to_string(rc) + ", " + path + ")";
    return error{errc::unavailable, std::move(msg)};
  }

  result<nvmlDevice_t> device(uint32_t index) const {
    nvmlDevice_t dev = nullptr;
    if (auto rc = device_get_handle_by_index_v2(index, &dev); rc != NVML_SUCCESS)
      return fail("nvmlDeviceGetHandleByIndex_v2", "GPU " + std::to_string(index), rc);
    return dev;
  }
};

namespace {

/// A NUL-terminated string from a fixed NVML buffer (never reads past it).
template <size_t N> std::string from_buffer(const std::array<char, N>& buf) {
  return std::string{buf.data(), strnlen(buf.data(), N)};
}

template <size_t N> std::string from_buffer(const char (&buf)[N]) {
  return std::string{buf, strnlen(buf, N)};
}

/// The address of a PCI info: busId normalised, or built from the fields
/// when busId is not one (function 0 assumed: NVML has no function field).
std::string bus_id_of(const nvmlPciInfo_t& pci) {
  auto id = normalize_pci_bus_id(from_buffer(pci.busId));
  if (!id.empty()) return id;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.0", pci.domain, pci.bus, pci.device);
  return buf;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Reads 1..max_digits hex digits from `text` at `pos`.
std::optional<uint32_t> read_hex(std::string_view text, size_t& pos, size_t max_digits) {
  uint32_t v = 0;
  size_t n = 0;
  while (pos < text.size() && n < max_digits + 1) {
    int d = hex_digit(text[pos]);
    if (d < 0) break;
    v = v * 16 + static_cast<uint32_t>(d);
    ++pos;
    ++n;
  }
  if (n == 0 || n > max_digits) return std::nullopt;
  return v;
}

} // namespace

std::string_view to_string(mig_mode m) noexcept {
  switch (m) {
  case mig_mode::unsupported:
    return "unsupported";
  case mig_mode::disabled:
    return "disabled";
  case mig_mode::enabled:
    return "enabled";
  }
  return "unsupported";
}

std::optional<pci_address> parse_pci_bus_id(std::string_view text) {
  pci_address a;
  size_t pos = 0;
  auto domain = read_hex(text, pos, 8);
  if (!domain || pos >= text.size() || text[pos++] != ':') return std::nullopt;
  auto bus = read_hex(text, pos, 2);
  if (!bus || pos >= text.size() || text[pos++] != ':') return std::nullopt;
  auto device = read_hex(text, pos, 2);
  if (!device || pos >= text.size() || text[pos++] != '.') return std::nullopt;
  auto function = read_hex(text, pos, 1);
  if (!function || pos != text.size() || *device > 0x1f || *function > 7)
    return std::nullopt;
  a.domain = *domain;
  a.bus = *bus;
  a.device = *device;
  a.function = *function;
  return a;
}

std::string normalize_pci_bus_id(std::string_view text) {
  auto a = parse_pci_bus_id(text);
  if (!a) return {};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", a->domain, a->bus, a->device,
                a->function);
  return buf;
}

// -- nvml_library -------------------------------------------------------------

nvml_library::nvml_library(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
nvml_library::nvml_library(nvml_library&&) noexcept = default;
nvml_library& nvml_library::operator=(nvml_library&&) noexcept = default;
nvml_library::~nvml_library() = default;

result<nvml_library> nvml_library::open(const std::string& path) {
  if (path.empty()) return error{errc::unavailable, "NVML: empty library path"};
  auto p = std::make_unique<impl>();
  p->path = path;
  dlerror();
  p->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (p->handle == nullptr) {
    const char* why = dlerror();
    return error{errc::unavailable, "NVML: cannot load " + path + ": " +
                                        (why != nullptr ? why : "unknown dlopen error")};
  }
  std::string missing;
  auto resolve = [&](auto& fn, const char* symbol) {
    void* sym = dlsym(p->handle, symbol);
    if (sym == nullptr) {
      if (!missing.empty()) missing += ", ";
      missing += symbol;
      return;
    }
    // POSIX guarantees that a data pointer from dlsym converts to a function
    // pointer; the cast is the documented way to use it.
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(sym);
  };
  resolve(p->init_v2, "nvmlInit_v2");
  resolve(p->shutdown, "nvmlShutdown");
  resolve(p->error_string, "nvmlErrorString");
  resolve(p->system_get_driver_version, "nvmlSystemGetDriverVersion");
  resolve(p->device_get_count_v2, "nvmlDeviceGetCount_v2");
  resolve(p->device_get_handle_by_index_v2, "nvmlDeviceGetHandleByIndex_v2");
  resolve(p->device_get_name, "nvmlDeviceGetName");
  resolve(p->device_get_uuid, "nvmlDeviceGetUUID");
  resolve(p->device_get_memory_info, "nvmlDeviceGetMemoryInfo");
  resolve(p->device_get_pci_info_v3, "nvmlDeviceGetPciInfo_v3");
  resolve(p->device_get_mig_mode, "nvmlDeviceGetMigMode");
  resolve(p->device_get_nvlink_state, "nvmlDeviceGetNvLinkState");
  resolve(p->device_get_nvlink_remote_pci_info_v2, "nvmlDeviceGetNvLinkRemotePciInfo_v2");
  resolve(p->device_get_utilization_rates, "nvmlDeviceGetUtilizationRates");
  resolve(p->device_get_power_usage, "nvmlDeviceGetPowerUsage");
  if (!missing.empty())
    return error{errc::unavailable,
                 "NVML: " + path + " lacks the symbols " + missing +
                     " (not an NVML "
                     "library, or a driver older than troupe supports)"};
  if (auto rc = p->init_v2(); rc != NVML_SUCCESS) return p->fail("nvmlInit_v2", "", rc);
  p->initialised = true;
  return nvml_library{std::move(p)};
}

result<nvml_library> nvml_library::open_default(const env_map& env) {
  auto it = env.find(nvml_library_env);
  if (it != env.end() && !it->second.empty()) return open(it->second);
  return open(std::string{nvml_default_library});
}

const std::string& nvml_library::path() const noexcept {
  return impl_->path;
}

result<std::string> nvml_library::driver_version() const {
  std::array<char, NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE> buf{};
  if (auto rc = impl_->system_get_driver_version(buf.data(), buf.size());
      rc != NVML_SUCCESS)
    return impl_->fail("nvmlSystemGetDriverVersion", "", rc);
  return from_buffer(buf);
}

result<uint32_t> nvml_library::device_count() const {
  unsigned int n = 0;
  if (auto rc = impl_->device_get_count_v2(&n); rc != NVML_SUCCESS)
    return impl_->fail("nvmlDeviceGetCount_v2", "", rc);
  return static_cast<uint32_t>(n);
}

result<nvml_device_info> nvml_library::device_info(uint32_t index) const {
  const impl& f = *impl_;
  auto dev = f.device(index);
  if (!dev) return std::move(dev).err();
  const std::string gpu = "GPU " + std::to_string(index);
  nvml_device_info info;
  info.index = index;

  std::array<char, NVML_DEVICE_NAME_V2_BUFFER_SIZE> name{};
  if (auto rc = f.device_get_name(*dev, name.data(), name.size()); rc != NVML_SUCCESS)
    return f.fail("nvmlDeviceGetName", gpu, rc);
  info.name = from_buffer(name);

  std::array<char, NVML_DEVICE_UUID_V2_BUFFER_SIZE> uuid{};
  if (auto rc = f.device_get_uuid(*dev, uuid.data(), uuid.size()); rc != NVML_SUCCESS)
    return f.fail("nvmlDeviceGetUUID", gpu, rc);
  info.uuid = from_buffer(uuid);

  nvmlMemory_t mem{};
  if (auto rc = f.device_get_memory_info(*dev, &mem); rc != NVML_SUCCESS)
    return f.fail("nvmlDeviceGetMemoryInfo", gpu, rc);
  info.memory_total_bytes = mem.total;

  nvmlPciInfo_t pci{};
  if (auto rc = f.device_get_pci_info_v3(*dev, &pci); rc != NVML_SUCCESS)
    return f.fail("nvmlDeviceGetPciInfo_v3", gpu, rc);
  info.pci_bus_id = bus_id_of(pci);

  unsigned int current = 0;
  unsigned int pending = 0;
  if (auto rc = f.device_get_mig_mode(*dev, &current, &pending); rc == NVML_SUCCESS) {
    info.mig = current != 0 ? mig_mode::enabled : mig_mode::disabled;
    info.mig_pending_change = pending != current;
  } else if (rc != NVML_ERROR_NOT_SUPPORTED) {
    return f.fail("nvmlDeviceGetMigMode", gpu, rc);
  }

  for (unsigned int link = 0; link < nvml_max_nvlinks; ++link) {
    nvmlEnableState_t active = 0;
    auto rc = f.device_get_nvlink_state(*dev, link, &active);
    // GPUs without NVLink say NOT_SUPPORTED; a link number past the GPU's
    // last link is INVALID_ARGUMENT. Both just mean "no such link".
    if (rc == NVML_ERROR_NOT_SUPPORTED || rc == NVML_ERROR_INVALID_ARGUMENT) continue;
    if (rc != NVML_SUCCESS)
      return f.fail("nvmlDeviceGetNvLinkState", gpu + " link " + std::to_string(link),
                    rc);
    if (active != NVML_FEATURE_ENABLED) continue;
    nvmlPciInfo_t remote{};
    rc = f.device_get_nvlink_remote_pci_info_v2(*dev, link, &remote);
    if (rc != NVML_SUCCESS)
      return f.fail("nvmlDeviceGetNvLinkRemotePciInfo_v2",
                    gpu + " link " + std::to_string(link), rc);
    info.nvlink_remote_bus_ids.push_back(bus_id_of(remote));
  }
  return info;
}

result<std::vector<nvml_device_info>> nvml_library::devices() const {
  auto n = device_count();
  if (!n) return std::move(n).err();
  std::vector<nvml_device_info> out;
  out.reserve(*n);
  for (uint32_t i = 0; i < *n; ++i) {
    auto info = device_info(i);
    if (!info) return std::move(info).err();
    out.push_back(std::move(*info));
  }
  return out;
}

result<gpu_sample> nvml_library::sample(uint32_t index) const {
  const impl& f = *impl_;
  auto dev = f.device(index);
  if (!dev) return std::move(dev).err();
  const std::string gpu = "GPU " + std::to_string(index);
  gpu_sample s;
  s.index = index;

  nvmlUtilization_t util{};
  if (auto rc = f.device_get_utilization_rates(*dev, &util); rc == NVML_SUCCESS) {
    s.gpu_utilization_percent = util.gpu;
    s.memory_utilization_percent = util.memory;
  } else if (rc != NVML_ERROR_NOT_SUPPORTED) {
    return f.fail("nvmlDeviceGetUtilizationRates", gpu, rc);
  }

  nvmlMemory_t mem{};
  if (auto rc = f.device_get_memory_info(*dev, &mem); rc != NVML_SUCCESS)
    return f.fail("nvmlDeviceGetMemoryInfo", gpu, rc);
  s.memory_used_bytes = mem.used;
  s.memory_total_bytes = mem.total;

  unsigned int mw = 0;
  if (auto rc = f.device_get_power_usage(*dev, &mw); rc == NVML_SUCCESS)
    s.power_milliwatts = mw;
  else if (rc != NVML_ERROR_NOT_SUPPORTED)
    return f.fail("nvmlDeviceGetPowerUsage", gpu, rc);
  return s;
}

result<std::vector<gpu_sample>> nvml_library::sample_all() const {
  auto n = device_count();
  if (!n) return std::move(n).err();
  std::vector<gpu_sample> out;
  out.reserve(*n);
  for (uint32_t i = 0; i < *n; ++i) {
    auto s = sample(i);
    if (!s) return std::move(s).err();
    out.push_back(*s);
  }
  return out;
}

} // namespace troupe::actors
