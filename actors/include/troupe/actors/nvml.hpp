#pragma once
/// NVIDIA Management Library (NVML) loaded at run time.
///
/// troupe never links against libnvidia-ml: `nvml_library::open` loads it
/// with dlopen, resolves the few functions it uses through its own
/// declarations of the documented NVML C ABI (there is no nvml.h on build
/// machines) and initialises NVML. A missing library, a missing symbol or a
/// failing NVML call is an `errc::unavailable` error naming the call and
/// NVML's own message, never a crash; so the same binary runs on GPU nodes
/// and on CPU-only machines, where the caller falls back to declared or
/// simulated GPUs (inventory.hpp).
///
/// The node agent reads the static description of each GPU once
/// (`device_info`); the FinOps actor samples telemetry (`sample`).
///
/// Thread safety: NVML itself is thread-safe, and every const member of
/// `nvml_library` only reads the resolved function table, so one open
/// library may be queried from several threads at once. Opening, moving and
/// destroying it must not race with queries on the same object.

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::actors {

/// The soname the driver installs; what `open_default` loads when nothing
/// else is named.
inline constexpr std::string_view nvml_default_library = "libnvidia-ml.so.1";

/// Environment variable naming the NVML library to load instead.
inline constexpr std::string_view nvml_library_env = "TROUPE_NVML_LIBRARY";

/// NVLink links NVML numbers per GPU (NVML_NVLINK_MAX_LINKS): 0..17.
inline constexpr uint32_t nvml_max_nvlinks = 18;

/// MIG state of a GPU.
enum class mig_mode : uint8_t {
  unsupported, ///< the GPU has no MIG (NVML_ERROR_NOT_SUPPORTED)
  disabled,
  enabled,
};

/// "unsupported", "disabled", "enabled".
[[nodiscard]] std::string_view to_string(mig_mode m) noexcept;

/// Static description of one GPU as NVML reports it.
struct nvml_device_info {
  uint32_t index = 0;
  std::string name; ///< e.g. "NVIDIA H100 80GB HBM3"
  std::string uuid; ///< e.g. "GPU-4f1c..."
  uint64_t memory_total_bytes = 0;
  /// Normalised PCI address "dddd:bb:dd.f" (lower-case hex, four-digit
  /// domain when it fits), as hwloc and `lspci -D` write it.
  std::string pci_bus_id;
  mig_mode mig = mig_mode::unsupported;
  bool mig_pending_change = false; ///< pending mode differs from the current one
  /// Normalised PCI addresses at the far end of each active NVLink (another
  /// GPU or an NVSwitch), one entry per active link in link order, so a
  /// peer reached over several links appears several times.
  std::vector<std::string> nvlink_remote_bus_ids;
  bool operator==(const nvml_device_info&) const = default;
};

/// One telemetry reading of one GPU. A quantity the GPU does not report
/// (NVML_ERROR_NOT_SUPPORTED, e.g. utilisation of a GPU in MIG mode) is
/// empty; any other failure makes the whole sample an error.
struct gpu_sample {
  uint32_t index = 0;
  std::optional<uint32_t> gpu_utilization_percent;    ///< 0..100 over NVML's last period
  std::optional<uint32_t> memory_utilization_percent; ///< memory controller busy, 0..100
  uint64_t memory_used_bytes = 0;
  uint64_t memory_total_bytes = 0;
  std::optional<uint32_t> power_milliwatts;
  bool operator==(const gpu_sample&) const = default;
};

/// An initialised NVML: the dlopen handle, the resolved functions and one
/// nvmlInit_v2 reference, released (nvmlShutdown, dlclose) by the
/// destructor. Move-only; a moved-from object may only be destroyed or
/// assigned to.
class nvml_library {
public:
  /// Loads `path` (a file path or a soname resolved by the dynamic loader),
  /// resolves every function and calls nvmlInit_v2. Fails with
  /// errc::unavailable saying which step failed: the dlopen error, the
  /// missing symbol, or the NVML error of nvmlInit_v2.
  [[nodiscard]] static result<nvml_library> open(const std::string& path);

  /// `open` of `TROUPE_NVML_LIBRARY` from `env` when set and not empty,
  /// otherwise of `nvml_default_library`.
  [[nodiscard]] static result<nvml_library> open_default(const env_map& env);

  nvml_library(nvml_library&&) noexcept;
  nvml_library& operator=(nvml_library&&) noexcept;
  nvml_library(const nvml_library&) = delete;
  nvml_library& operator=(const nvml_library&) = delete;
  ~nvml_library();

  /// The path or soname this was opened from.
  [[nodiscard]] const std::string& path() const noexcept;

  /// The driver version, e.g. "550.54.15".
  [[nodiscard]] result<std::string> driver_version() const;

  /// How many GPUs NVML sees.
  [[nodiscard]] result<uint32_t> device_count() const;

  /// Name, UUID, memory, PCI address, MIG mode and NVLink peers of GPU
  /// `index`. A GPU without MIG or NVLink reports mig_mode::unsupported or
  /// no links (NVML_ERROR_NOT_SUPPORTED is not a failure there); any other
  /// NVML failure is errc::unavailable naming the call and the GPU.
  [[nodiscard]] result<nvml_device_info> device_info(uint32_t index) const;

  /// `device_info` of every GPU, in index order.
  [[nodiscard]] result<std::vector<nvml_device_info>> devices() const;

  /// Utilisation, memory used and power of GPU `index` now.
  [[nodiscard]] result<gpu_sample> sample(uint32_t index) const;

  /// `sample` of every GPU, in index order.
  [[nodiscard]] result<std::vector<gpu_sample>> sample_all() const;

private:
  struct impl; ///< the resolved function table (nvml.cpp)
  explicit nvml_library(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

/// Normalises a PCI address as NVML or hwloc writes it ("00000000:18:00.0",
/// "0000:18:00.0", upper or lower case) to "dddd:bb:dd.f" in lower case; an
/// empty result when `text` is not a PCI address. Domains above 0xffff keep
/// all their digits.
[[nodiscard]] std::string normalize_pci_bus_id(std::string_view text);

/// The parts of a PCI address, for hwloc look-ups.
struct pci_address {
  uint32_t domain = 0;
  uint32_t bus = 0;
  uint32_t device = 0;
  uint32_t function = 0;
};

/// Parses a PCI address ("dddd:bb:dd.f", any domain width up to 8 hex
/// digits); empty when it is not one.
[[nodiscard]] std::optional<pci_address> parse_pci_bus_id(std::string_view text);

} // namespace troupe::actors
