#include "troupe/placement/topology.hpp"

#include "troupe/placement/errc.hpp"
#include "troupe/placement/mig.hpp"
#include "troupe/runtime/random.hpp"

#include <set>

namespace troupe::placement {
const char* to_string(capacity_type c) noexcept {
  switch (c) {
  case capacity_type::on_demand:
    return "on_demand";
  case capacity_type::reserved:
    return "reserved";
  case capacity_type::spot:
    return "spot";
  }
  return "?";
}

const char* to_string(gpu_sharing s) noexcept {
  switch (s) {
  case gpu_sharing::whole:
    return "whole";
  case gpu_sharing::mig:
    return "mig";
  case gpu_sharing::time_sliced:
    return "time_sliced";
  }
  return "?";
}

size_t cluster_topology::total_gpus() const noexcept {
  size_t n = 0;
  for (auto& node : nodes)
    n += node.gpus.size();
  return n;
}

result<node_id> cluster_topology::find_node(std::string_view name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == name) return node_id{static_cast<uint32_t>(i)};
  return error{errc::not_found, "no node named '" + std::string{name} + "'"};
}

result<void> cluster_topology::validate() const {
  std::string problems;
  auto problem = [&](const std::string& s) {
    if (!problems.empty()) problems += '\n';
    problems += s;
  };
  std::set<std::string, std::less<>> names;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    std::string where = "nodes[" + std::to_string(i) + "] '" + n.name + "'";
    if (n.name.empty()) problem(where + ": name is empty");
    if (!names.insert(n.name).second) problem(where + ": duplicate node name");
    if (n.rack >= racks.size())
      problem(where + ": rack " + std::to_string(n.rack) + " does not exist (have " +
              std::to_string(racks.size()) + ")");
    if (n.price_per_gpu_hour.value() < 0) problem(where + ": negative price");
    if (n.gpus.size() > max_gpus_per_node)
      problem(where + ": " + std::to_string(n.gpus.size()) + " GPUs; at most " +
              std::to_string(max_gpus_per_node) + " per node");
    for (size_t g = 0; g < n.gpus.size(); ++g) {
      const auto& gpu = n.gpus[g];
      std::string gw = where + ".gpus[" + std::to_string(g) + "]";
      if (gpu.model.empty()) problem(gw + ": model is empty");
      if (gpu.sharing == gpu_sharing::mig && mig_profiles_for(gpu.model) == nullptr)
        problem(gw + ": model " + gpu.model + " does not support MIG");
      if (gpu.sharing == gpu_sharing::time_sliced &&
          (gpu.time_slice_replicas == 0 || gpu.time_slice_replicas > 1000))
        problem(gw + ": time_slice_replicas must be in [1, 1000]");
    }
  }
  for (size_t r = 0; r < racks.size(); ++r)
    if (!(racks[r].uplink_oversubscription >= 1.0))
      problem("racks[" + std::to_string(r) + "]: uplink_oversubscription must be >= 1");
  if (!problems.empty()) return error{errc::invalid_argument, problems};
  return ok();
}

double nvlink_gbps(std::string_view m) noexcept {
  // Per-GPU NVLink bandwidth, one direction (NVIDIA data sheets: total
  // bidirectional NVLink bandwidth / 2).
  if (m.starts_with("H200") || m.starts_with("H100")) return 450.0;
  if (m.starts_with("A100")) return 300.0;
  if (m.starts_with("V100")) return 150.0;
  if (m.starts_with("B200") || m.starts_with("GB200")) return 900.0;
  return 0.0;
}

cluster_topology generate_cluster(const generated_cluster& p) {
  cluster_topology t;
  uint64_t rng = p.seed;
  for (uint32_t r = 0; r < p.racks; ++r)
    t.racks.push_back(rack_spec{"rack-" + std::to_string(r),
                                p.racks_per_spine == 0 ? 0 : r / p.racks_per_spine, 1.0});
  uint32_t per_domain =
      p.nvlink_domains_per_node == 0
          ? p.gpus_per_node
          : std::max<uint32_t>(1, p.gpus_per_node / p.nvlink_domains_per_node);
  for (uint32_t r = 0; r < p.racks; ++r) {
    for (uint32_t k = 0; k < p.nodes_per_rack; ++k) {
      node_spec n;
      n.name = "n" + std::to_string(r * p.nodes_per_rack + k);
      n.rack = r;
      n.cpu_milli = p.cpu_milli;
      n.memory_mib = p.memory_mib;
      for (uint32_t g = 0; g < p.gpus_per_node; ++g) {
        gpu_spec gpu;
        gpu.model = p.gpu_model;
        gpu.memory_mib = p.gpu_memory_mib;
        gpu.nvlink_domain = g / per_domain;
        gpu.pcie_switch = g / 2;
        gpu.numa_node = g < p.gpus_per_node / 2 ? 0 : 1;
        gpu.nic_rail = g;
        n.gpus.push_back(gpu);
      }
      double u = unit_double(rng);
      n.capacity = u < p.spot_fraction ? capacity_type::spot : capacity_type::on_demand;
      n.price_per_gpu_hour =
          n.capacity == capacity_type::spot ? p.spot_price : p.on_demand_price;
      n.node_labels["rack"] = t.racks[r].name;
      t.nodes.push_back(std::move(n));
    }
  }
  return t;
}

} // namespace troupe::placement
