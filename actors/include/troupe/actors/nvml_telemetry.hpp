#pragma once
/// The FinOps telemetry source on machines with GPUs: NVML samples
/// (actors/nvml.hpp) as finops::gpu_sample, for the node agent to send to
/// the head. Machines without NVML use finops::simulated_source.
#include "troupe/actors/nvml.hpp"
#include "troupe/finops/telemetry.hpp"

#include <string>
#include <vector>

namespace troupe::actors {

class nvml_telemetry_source final : public finops::telemetry_source {
public:
  /// Reads the GPUs' UUIDs once (devices()). Errors: those of NVML.
  [[nodiscard]] static result<nvml_telemetry_source> open(nvml_library lib,
                                                          std::string node_name);

  /// One sample per GPU. A GPU whose utilisation or power NVML does not
  /// report (NVML_ERROR_NOT_SUPPORTED) reports 0 for it; memory used is
  /// rounded down to MiB; values beyond finops' ranges are clamped.
  [[nodiscard]] result<std::vector<finops::gpu_sample>> sample(time_point at) override;

private:
  nvml_telemetry_source(nvml_library lib, std::string node,
                        std::vector<std::string> uuids)
      : lib_(std::move(lib)), node_(std::move(node)), uuids_(std::move(uuids)) {}
  nvml_library lib_;
  std::string node_;
  std::vector<std::string> uuids_;
};

} // namespace troupe::actors
