// The [resources] config section of the node agent.

#include "troupe/actors/inventory.hpp"
#include "troupe/placement/mig.hpp"
#include "troupe/placement/topology_config.hpp"

#include <string>

namespace troupe::actors {

/// Longest gpu_model accepted (placement's model names are short).
constexpr size_t max_gpu_model_bytes = 64;
/// Largest declared or simulated GPU memory: 16 TiB.
constexpr int64_t max_gpu_memory_mib = int64_t{1} << 24;

config_schema<resources_settings> resources_schema() {
  using rs = resources_section;
  config_schema<resources_settings> s;
  s.section("resources", &resources_settings::resources,
            "Resource discovery of the node agent: NVML GPUs when present, else GPUs "
            "declared or simulated here.")
      .one_of("discovery", &rs::discovery, gpu_discovery::automatic,
              {{"auto", gpu_discovery::automatic},
               {"nvml", gpu_discovery::nvml},
               {"declared", gpu_discovery::declared},
               {"simulated", gpu_discovery::simulated},
               {"none", gpu_discovery::none}},
              "Where GPUs come from: auto (NVML if it sees GPUs, else declared_gpus, "
              "else simulated_gpus), nvml (fail without it), declared, simulated or "
              "none.")
      .string("nvml_library", &rs::nvml_library, "",
              "NVML library to load; empty: TROUPE_NVML_LIBRARY, else "
              "libnvidia-ml.so.1.")
      .integer("declared_gpus", &rs::declared_gpus, 0,
               int_range{0, int64_t{max_configured_gpus}},
               "Real GPUs of this node that NVML cannot see, described by gpu_model, "
               "gpu_memory_mib, nvlink_domain_size and gpu_mig.")
      .integer("simulated_gpus", &rs::simulated_gpus, 0,
               int_range{0, int64_t{max_configured_gpus}},
               "Simulated GPUs, so a CPU-only machine can host a GPU node (8 for a "
               "simulated DGX).")
      .string("gpu_model", &rs::gpu_model, "H100-80GB",
              "Model of declared or simulated GPUs, as placement names models "
              "(A100-80GB, H100-80GB, H200-141GB, ...).")
      .integer("gpu_memory_mib", &rs::gpu_memory_mib, uint64_t{81920},
               int_range{1, max_gpu_memory_mib},
               "Memory of each declared or simulated GPU in MiB.")
      .integer("nvlink_domain_size", &rs::nvlink_domain_size, 8,
               int_range{0, int64_t{max_configured_gpus}},
               "Declared or simulated GPUs per NVLink island (consecutive indices); 0 "
               "or 1: no NVLink.")
      .boolean("gpu_mig", &rs::gpu_mig, false,
               "Declared or simulated GPUs are in MIG mode (the model needs MIG "
               "profiles).")
      .one_of("capacity", &rs::capacity, placement::capacity_type::on_demand,
              {{"on_demand", placement::capacity_type::on_demand},
               {"reserved", placement::capacity_type::reserved},
               {"spot", placement::capacity_type::spot}},
              "The node's capacity type: on_demand, reserved or spot (spot nodes may "
              "be preempted; only spot-tolerant work goes there).")
      .string("price_per_gpu_hour_usd", &rs::price_per_gpu_hour, "",
              "Price of one of this node's GPUs for an hour in USD (\"2.50\"), "
              "charged by the showback ledger; empty: 0.");
  s.check([](const resources_settings& c) -> std::optional<std::string> {
    const rs& r = c.resources;
    if (r.discovery == gpu_discovery::declared && r.declared_gpus == 0)
      return "resources: discovery = \"declared\" needs declared_gpus >= 1";
    if (r.discovery == gpu_discovery::simulated && r.simulated_gpus == 0)
      return "resources: discovery = \"simulated\" needs simulated_gpus >= 1";
    if (r.declared_gpus > 0 && r.simulated_gpus > 0)
      return "resources: declared_gpus (" + std::to_string(r.declared_gpus) +
             ") and simulated_gpus (" + std::to_string(r.simulated_gpus) +
             ") are both set; set one";
    if (r.gpu_model.empty() || r.gpu_model.size() > max_gpu_model_bytes)
      return "resources: gpu_model must be 1 to " + std::to_string(max_gpu_model_bytes) +
             " bytes";
    for (char ch : r.gpu_model)
      if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
        return "resources: gpu_model contains a control character";
    if (r.gpu_mig && placement::mig_profiles_for(r.gpu_model) == nullptr)
      return "resources: gpu_mig needs a MIG-capable gpu_model (A100-40GB, A100-80GB, "
             "H100-80GB, H100-94GB, H200-141GB), got \"" +
             r.gpu_model + "\"";
    if (!r.price_per_gpu_hour.empty())
      if (auto p = placement::parse_price(r.price_per_gpu_hour); !p)
        return "resources.price_per_gpu_hour_usd: " + p.err().message();
    return std::nullopt;
  });
  return s;
}

} // namespace troupe::actors
