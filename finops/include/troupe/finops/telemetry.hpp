#pragma once
/// GPU telemetry: per-GPU samples, their aggregation per allocation and per
/// tenant, and the source that produces them.
///
/// The aggregation functions are plain code over plain data (no I/O, no
/// clock): the caller passes the samples and the window. Each is one pass
/// over the samples, O(samples) with hash maps keyed by allocation or tenant.
///
/// Sources: `telemetry_source` is the interface the FinOps actor polls.
/// Two implementations are meant:
/// - NVML (libnvidia-ml.so.1 through dlopen). That adapter will live in
///   `actors/` next to `actors::nvml_library` (`sample_all`), because finops
///   sits below actors and must not depend on it; it converts
///   `actors::gpu_sample` into `finops::gpu_sample`.
/// - `simulated_source` (here): GPUs that report what the workload tells them
///   through a hook, for machines without GPUs, the simulator and tests.
///
/// Busy and idle time: each sample stands for one sampling interval of its
/// GPU (`aggregation_rule::sample_interval`); a sample at or above the busy
/// threshold counts that interval as busy GPU-milliseconds, one under it as
/// idle. Missing samples count as neither. With integer percentages and
/// integer sums every aggregate is exact, and two summaries merge exactly
/// (the telemetry store's minute and hour tiers are merges of raw samples).

#include "troupe/finops/types.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe::finops {

/// Largest memory a sample may report, in MiB (16 TiB).
inline constexpr uint64_t max_sample_memory_mib = uint64_t{1} << 24;
/// Largest power a sample may report, in milliwatts (10 kW).
inline constexpr uint32_t max_sample_power_mw = 10'000'000;

/// One telemetry reading of one GPU.
struct gpu_sample {
  std::string node;             ///< node name
  uint32_t gpu_index = 0;       ///< index of the GPU on its node (NVML's order)
  std::string uuid;             ///< "GPU-..." when known, else empty
  time_point at{};              ///< when it was taken (the caller's clock)
  uint32_t utilisation_pct = 0; ///< 0..100: share of the last period a kernel ran
  uint64_t memory_used_mib = 0; ///< 0..max_sample_memory_mib
  uint32_t power_mw = 0;        ///< 0..max_sample_power_mw
  /// The allocation holding the GPU when the sample was taken; 0 when none.
  /// Sources leave it 0; the caller tags samples from placement's state.
  allocation_id allocation{0};

  friend bool operator==(const gpu_sample&, const gpu_sample&) = default;
};

/// invalid_argument naming the field when a sample is out of range (empty
/// node, node name over 255 bytes, utilisation over 100, memory or power over
/// their maxima, a time before the clock's epoch).
[[nodiscard]] result<void> validate(const gpu_sample& s);

/// Integer sums over a set of samples; merging two summaries is exact.
struct sample_summary {
  uint64_t samples = 0;
  uint64_t utilisation_sum = 0; ///< sum of utilisation_pct
  uint32_t utilisation_max = 0;
  uint64_t busy_samples = 0; ///< samples at or above the busy threshold
  uint64_t memory_sum_mib = 0;
  uint64_t memory_max_mib = 0;
  uint64_t power_sum_mw = 0;
  uint32_t power_max_mw = 0;

  /// Adds one sample; it is busy when its utilisation >= `busy_threshold_pct`.
  void add(const gpu_sample& s, uint32_t busy_threshold_pct) noexcept;
  /// Adds every sample counted in `o`.
  void merge(const sample_summary& o) noexcept;
  /// Mean utilisation in percent (0 when empty).
  [[nodiscard]] double mean_utilisation_pct() const noexcept;
  [[nodiscard]] uint64_t idle_samples() const noexcept { return samples - busy_samples; }
  /// Busy GPU-ms: busy samples times the sampling interval (whole ms).
  [[nodiscard]] int64_t busy_gpu_ms(duration sample_interval) const noexcept;
  /// Idle GPU-ms: idle samples times the sampling interval (whole ms).
  [[nodiscard]] int64_t idle_gpu_ms(duration sample_interval) const noexcept;

  friend bool operator==(const sample_summary&, const sample_summary&) = default;
};

/// A half-open time range [begin, end).
struct time_window {
  time_point begin{};
  time_point end{};
  [[nodiscard]] bool contains(time_point t) const noexcept {
    return t >= begin && t < end;
  }
};

/// How samples are aggregated.
struct aggregation_rule {
  time_window window{};                                ///< samples outside it are skipped
  uint32_t busy_threshold_pct = 5;                     ///< at or above: busy
  duration sample_interval = std::chrono::seconds{10}; ///< time one sample stands for
};

/// Summaries per allocation of the samples inside the window. Samples with
/// allocation 0 (unallocated GPUs) are skipped. O(samples).
[[nodiscard]] std::unordered_map<allocation_id, sample_summary>
aggregate_by_allocation(std::span<const gpu_sample> samples,
                        const aggregation_rule& rule);

/// Summaries per tenant: each sample's allocation is looked up in
/// `tenant_of`; samples of allocation 0 or of an allocation missing from the
/// map go to the tenant named `unattributed` (so no GPU time is lost).
/// O(samples).
[[nodiscard]] std::unordered_map<std::string, sample_summary>
aggregate_by_tenant(std::span<const gpu_sample> samples, const aggregation_rule& rule,
                    const std::unordered_map<allocation_id, std::string>& tenant_of,
                    std::string_view unattributed = "");

/// Where samples come from. Implementations: `simulated_source` (below) and
/// the NVML adapter in actors/ (to come). Not thread-safe: one owner polls it.
class telemetry_source {
public:
  virtual ~telemetry_source() = default;
  /// One sample per GPU, stamped `at` (allocation left 0). Errors:
  /// unavailable when the GPUs cannot be read, invalid_argument when a hook
  /// gives bad input (the message says where).
  [[nodiscard]] virtual result<std::vector<gpu_sample>> sample(time_point at) = 0;
};

/// One line of the simulated source's hook file.
struct utilisation_hook_line {
  uint32_t gpu_index = 0;
  uint32_t utilisation_pct = 0;
  std::optional<uint64_t> memory_used_mib;
  std::optional<uint32_t> power_mw;
  friend bool operator==(const utilisation_hook_line&,
                         const utilisation_hook_line&) = default;
};

/// Bounds of the hook file.
inline constexpr size_t max_hook_file_bytes = 1 << 20;
inline constexpr size_t max_hook_line_bytes = 256;

/// Parses the hook file's text (format at `simulated_source`). `origin`
/// names the file in errors; `gpu_count` bounds the indices. On any bad line
/// the whole text is refused with invalid_argument "origin:line: what".
[[nodiscard]] result<std::vector<utilisation_hook_line>>
parse_utilisation_hook(std::string_view text, std::string_view origin,
                       uint32_t gpu_count);

/// GPUs whose readings the workload sets, for nodes without NVML.
///
/// Two hooks set a GPU's utilisation (and optionally memory and power); the
/// last one to speak wins:
/// - the API: `set_utilisation(gpu, pct)`, `set_memory`, `set_power`;
/// - a hook file (`hook_file`, from `[telemetry] simulated_file`), re-read at
///   the next `sample` whenever its modification time or size changes. Text,
///   one GPU per line, fields separated by spaces or tabs:
///   ```
///   # gpu_index utilisation_pct [memory_used_mib] [power_mw]
///   0 85 40000 350000
///   1 0
///   ```
///   `#` starts a comment; blank lines are skipped. Integers only, decimal,
///   no sign. gpu_index < GPU count, utilisation 0..100, memory and power
///   up to `max_sample_memory_mib` and `max_sample_power_mw`; a GPU at most
///   once; at most `max_hook_line_bytes` per line and `max_hook_file_bytes`
///   in all. Omitted memory or power leave the GPU's value as it was. GPUs
///   the file does not name keep their values. A missing file is not an
///   error (the workload may write it later). A bad file is refused whole:
///   the values stay as they were and `sample` returns invalid_argument
///   naming file and line until the file changes again.
///
/// Not thread-safe: one owner.
class simulated_source final : public telemetry_source {
public:
  /// `gpu_count` GPUs on `node`, all idle with no memory used and no power.
  /// Their uuids read "SIM-<node>-<index>". `hook_file` empty: no file hook.
  simulated_source(std::string node, uint32_t gpu_count,
                   std::filesystem::path hook_file = {});

  /// Sets a GPU's utilisation; invalid_argument for an unknown GPU or a
  /// value over 100.
  [[nodiscard]] result<void> set_utilisation(uint32_t gpu, uint32_t pct);
  /// Sets a GPU's memory in use; invalid_argument as above.
  [[nodiscard]] result<void> set_memory(uint32_t gpu, uint64_t mib);
  /// Sets a GPU's power draw; invalid_argument as above.
  [[nodiscard]] result<void> set_power(uint32_t gpu, uint32_t mw);

  /// Re-reads the hook file when it changed: true when new values were
  /// applied, false when nothing changed (or no file is set or present).
  /// Errors as for `sample`.
  [[nodiscard]] result<bool> reload();

  [[nodiscard]] result<std::vector<gpu_sample>> sample(time_point at) override;

  [[nodiscard]] uint32_t gpu_count() const noexcept {
    return static_cast<uint32_t>(gpus_.size());
  }

private:
  struct reading {
    uint32_t utilisation_pct = 0;
    uint64_t memory_used_mib = 0;
    uint32_t power_mw = 0;
  };
  struct file_version {
    std::filesystem::file_time_type mtime{};
    uintmax_t size = 0;
    bool operator==(const file_version&) const = default;
  };

  std::string node_;
  std::filesystem::path hook_file_;
  std::vector<reading> gpus_;
  std::optional<file_version> seen_; ///< the file version last read
  std::optional<error> file_error_;  ///< why that version was refused
};

} // namespace troupe::finops
