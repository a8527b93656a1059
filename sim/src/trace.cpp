#include "troupe/sim/trace.hpp"

#include "troupe/runtime/errc.hpp"

#include <algorithm>
#include <cmath>

namespace troupe::sim {

using runtime::errc;

uint32_t trace_job::bundle_count() const noexcept {
  if (gpu_milli > 0 || gpus == 0 || gpus_per_bundle == 0) return 1;
  return (gpus + gpus_per_bundle - 1) / gpus_per_bundle;
}

result<void> scale_arrivals(trace& t, double factor) {
  if (!(factor > 0) || !std::isfinite(factor))
    return error{errc::invalid_argument, "arrival scale must be a positive number, got " +
                                             std::to_string(factor)};
  for (auto& j : t.jobs) {
    double ms = std::chrono::duration<double, std::milli>(j.submit).count() * factor;
    j.submit = std::chrono::milliseconds(std::llround(ms));
  }
  return ok();
}

placement::gang_request to_gang_request(const trace_job& j, placement::request_id id,
                                        time_point origin) {
  placement::gang_request req;
  req.id = id;
  req.tenant = j.tenant.empty() ? std::string("default") : j.tenant;
  req.priority = j.priority;
  req.preemptible = j.preemptible;
  req.spot_tolerant = j.spot_tolerant;
  req.runtime_estimate = j.run_time;
  req.submitted = origin + j.submit;
  req.placement_strategy = placement::strategy::pack;
  placement::bundle b;
  b.gpu_models = j.gpu_models;
  b.cpu_milli = j.cpu_milli;
  b.memory_mib = j.memory_mib;
  if (j.gpu_milli > 0) {
    b.gpu_milli = j.gpu_milli;
    req.bundles.push_back(std::move(b));
  } else if (j.gpus == 0) {
    req.bundles.push_back(std::move(b));
  } else {
    uint32_t per = j.gpus_per_bundle == 0 ? j.gpus : j.gpus_per_bundle;
    for (uint32_t left = j.gpus; left > 0;) {
      uint32_t n = std::min(per, left);
      placement::bundle part = b;
      part.gpus = n;
      req.bundles.push_back(std::move(part));
      left -= n;
    }
  }
  return req;
}

namespace {

/// GPU memory of models seen in the traces, when a node list does not say.
uint64_t default_gpu_memory_mib(std::string_view model) {
  struct known {
    std::string_view model;
    uint64_t mib;
  };
  static constexpr known table[] = {
      {"A10", 24576},         {"A100", 40960}, {"A100-80GB", 81920}, {"G2", 16384},
      {"G3", 32768},          {"H100", 81920}, {"H100-80GB", 81920}, {"H200", 144384},
      {"H200-141GB", 144384}, {"P100", 16384}, {"T4", 16384},        {"V100M16", 16384},
      {"V100M32", 32768},     {"V100", 16384}, {"V100-32GB", 32768},
  };
  for (const auto& k : table)
    if (k.model == model) return k.mib;
  return 16384;
}

} // namespace

result<placement::cluster_topology>
topology_from_nodes(const std::vector<trace_node>& nodes, uint32_t nodes_per_rack) {
  if (nodes_per_rack == 0)
    return error{errc::invalid_argument, "nodes_per_rack must be at least 1"};
  placement::cluster_topology topo;
  std::string problems;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    auto where = "node " + std::to_string(i) + " (" + n.name + "): ";
    if (n.name.empty()) problems += where + "empty name; ";
    if (n.gpus > placement::max_gpus_per_node)
      problems += where + std::to_string(n.gpus) + " GPUs is more than " +
                  std::to_string(placement::max_gpus_per_node) + "; ";
    if (n.gpus > 0 && n.gpu_model.empty()) problems += where + "GPUs without a model; ";
    auto rack = static_cast<uint32_t>(i / nodes_per_rack);
    if (rack >= topo.racks.size())
      topo.racks.push_back({"rack-" + std::to_string(rack), 0, 1.0});
    placement::node_spec spec;
    spec.name = n.name;
    spec.rack = rack;
    spec.cpu_milli = n.cpu_milli;
    spec.memory_mib = n.memory_mib;
    uint64_t mem =
        n.gpu_memory_mib ? n.gpu_memory_mib : default_gpu_memory_mib(n.gpu_model);
    for (uint32_t g = 0; g < std::min<uint32_t>(n.gpus, placement::max_gpus_per_node);
         ++g) {
      placement::gpu_spec gs;
      gs.model = n.gpu_model;
      gs.memory_mib = mem;
      gs.pcie_switch = g / 4;
      gs.numa_node = g / 4;
      gs.nic_rail = g;
      spec.gpus.push_back(std::move(gs));
    }
    topo.nodes.push_back(std::move(spec));
  }
  if (!problems.empty()) {
    problems.resize(problems.size() - 2);
    return error{errc::invalid_argument, "node list: " + problems};
  }
  if (auto v = topo.validate(); !v) return v.err();
  return topo;
}

} // namespace troupe::sim
