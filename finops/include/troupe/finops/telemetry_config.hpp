#pragma once
/// The `[telemetry]` configuration: sampling interval, the telemetry
/// store's retention tiers and the simulated source's hook file, declared
/// through the runtime's schema binder (`TROUPE_TELEMETRY_*` overrides).
/// Kept apart from `[finops]` so nodes that only sample GPUs need not carry
/// the FinOps policy settings.
///
/// ```toml
/// [telemetry]
/// sample_interval = "10s"
/// raw_retention = "6h"
/// minute_retention = "336h"   # 14 days (durations have no day unit)
/// hour_retention = "4320h"    # 180 days
/// busy_threshold_pct = 5
/// simulated_gpus = 8
/// simulated_file = "/run/troupe/gpu-utilisation"
/// ```

#include "troupe/finops/telemetry_store.hpp"
#include "troupe/runtime/config.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace troupe::finops {

/// [telemetry].
struct telemetry_section {
  std::chrono::nanoseconds sample_interval{0};
  std::chrono::nanoseconds raw_retention{0};
  std::chrono::nanoseconds minute_retention{0};
  std::chrono::nanoseconds hour_retention{0};
  uint32_t busy_threshold_pct = 5;
  /// GPUs the simulated source reports when NVML is absent (0: none).
  uint32_t simulated_gpus = 0;
  /// The simulated source's hook file (telemetry.hpp); empty: API only.
  std::string simulated_file;
  bool operator==(const telemetry_section&) const = default;
};

/// The whole telemetry configuration.
struct telemetry_config {
  telemetry_section telemetry;
  bool operator==(const telemetry_config&) const = default;
};

/// The schema of [telemetry], with a check that the retentions are ordered
/// (raw <= minute <= hour). Built on each call; bind it next to other
/// modules' schemas with a config_binder.
[[nodiscard]] config_schema<telemetry_config> telemetry_config_schema();

/// The store options the config describes.
[[nodiscard]] telemetry_store_options to_store_options(const telemetry_config& c);

} // namespace troupe::finops
