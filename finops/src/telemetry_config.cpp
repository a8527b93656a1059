#include "troupe/finops/telemetry_config.hpp"

#include <optional>

namespace troupe::finops {

using namespace std::chrono_literals;

config_schema<telemetry_config> telemetry_config_schema() {
  using ts = telemetry_section;
  const telemetry_store_options d;
  config_schema<telemetry_config> s;
  s.section("telemetry", &telemetry_config::telemetry,
            "GPU telemetry: sampling, the store's retention tiers, the simulated source.")
      .duration("sample_interval", &ts::sample_interval, 10s, duration_range{100ms, 1h},
                "How often each GPU is sampled.")
      .duration("raw_retention", &ts::raw_retention, d.raw_retention,
                duration_range{1min, 24h * 31},
                "Raw samples are kept this long, then only their minute aggregates.")
      .duration("minute_retention", &ts::minute_retention, d.minute_retention,
                duration_range{1min, 24h * 366},
                "Minute aggregates are kept this long, then only hour aggregates.")
      .duration("hour_retention", &ts::hour_retention, d.hour_retention,
                duration_range{1min, 24h * 366 * 10},
                "Hour aggregates are kept this long.")
      .integer("busy_threshold_pct", &ts::busy_threshold_pct, d.busy_threshold_pct,
               {0, 100}, "A sample at or above this utilisation (percent) is busy time.")
      .integer("simulated_gpus", &ts::simulated_gpus, 0u, {0, 1024},
               "GPUs the simulated source reports where NVML is absent (0: none).")
      .string("simulated_file", &ts::simulated_file, "",
              "Hook file the simulated source re-reads when it changes: lines of "
              "'gpu_index utilisation_pct [memory_used_mib] [power_mw]'.");
  s.check([](const telemetry_config& c) -> std::optional<std::string> {
    if (auto v = to_store_options(c).validate(); !v) return v.err().message();
    return std::nullopt;
  });
  return s;
}

telemetry_store_options to_store_options(const telemetry_config& c) {
  telemetry_store_options o;
  o.raw_retention = c.telemetry.raw_retention;
  o.minute_retention = c.telemetry.minute_retention;
  o.hour_retention = c.telemetry.hour_retention;
  o.busy_threshold_pct = c.telemetry.busy_threshold_pct;
  return o;
}

} // namespace troupe::finops
