#include "troupe/actors/nvml_telemetry.hpp"

#include <algorithm>

namespace troupe::actors {

result<nvml_telemetry_source> nvml_telemetry_source::open(nvml_library lib,
                                                          std::string node_name) {
  auto devices = lib.devices();
  if (!devices) return std::move(devices).err();
  std::vector<std::string> uuids;
  uuids.reserve(devices->size());
  for (const auto& d : *devices)
    uuids.push_back(d.uuid);
  return nvml_telemetry_source{std::move(lib), std::move(node_name), std::move(uuids)};
}

result<std::vector<finops::gpu_sample>> nvml_telemetry_source::sample(time_point at) {
  auto raw = lib_.sample_all();
  if (!raw) return std::move(raw).err();
  std::vector<finops::gpu_sample> out;
  out.reserve(raw->size());
  for (const auto& s : *raw) {
    finops::gpu_sample g;
    g.node = node_;
    g.gpu_index = s.index;
    g.uuid = s.index < uuids_.size() ? uuids_[s.index] : std::string{};
    g.at = at;
    g.utilisation_pct = std::min<uint32_t>(s.gpu_utilization_percent.value_or(0), 100);
    g.memory_used_mib =
        std::min<uint64_t>(s.memory_used_bytes >> 20, finops::max_sample_memory_mib);
    g.power_mw =
        std::min<uint32_t>(s.power_milliwatts.value_or(0), finops::max_sample_power_mw);
    out.push_back(std::move(g));
  }
  return out;
}

} // namespace troupe::actors
