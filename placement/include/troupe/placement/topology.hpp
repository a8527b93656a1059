#pragma once
/// The cluster as placement sees it: racks (optionally grouped under spine
/// switches) of nodes; per node its GPUs with model, memory, NVLink/NVSwitch
/// island, PCIe switch, NUMA node and NIC rail; CPUs, memory, labels,
/// capacity type and price. Plain data: built from config, from node agents'
/// reports, or generated for tests and the simulator.

#include "troupe/runtime/result.hpp"
#include "troupe/runtime/strong_id.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::placement {

/// Index of a node in `cluster_topology::nodes`.
using node_id = strong_id<uint32_t, struct node_id_tag>;

/// How a node is bought.
enum class capacity_type : uint8_t { on_demand, reserved, spot };

/// How a GPU is shared.
enum class gpu_sharing : uint8_t {
  whole,       ///< whole-GPU requests, or milli-GPU shares of its 1000 milli
  mig,         ///< partitioned into MIG instances (mig.hpp)
  time_sliced, ///< only milli-GPU shares; `time_slice_replicas` at most
};

const char* to_string(capacity_type c) noexcept;
const char* to_string(gpu_sharing s) noexcept;

/// One GPU of a node.
struct gpu_spec {
  std::string model = "H100-80GB"; ///< e.g. A100-80GB, H100-80GB, H200-141GB, V100-32GB
  uint64_t memory_mib = 81920;
  uint32_t nvlink_domain =
      0; ///< GPUs of a node with the same value share an NVLink island
  uint32_t pcie_switch = 0;
  uint32_t numa_node = 0;
  uint32_t nic_rail = 0; ///< the NIC (rail) this GPU uses to leave the node
  gpu_sharing sharing = gpu_sharing::whole;
  uint32_t time_slice_replicas = 1; ///< time_sliced: how many shares it may hold
};

using labels = std::map<std::string, std::string, std::less<>>;

/// Most GPUs one node may have (placement keeps per-node scratch arrays).
inline constexpr size_t max_gpus_per_node = 256;

/// One machine.
struct node_spec {
  std::string name;
  uint32_t rack = 0; ///< index into cluster_topology::racks
  std::vector<gpu_spec> gpus;
  uint64_t cpu_milli = 0; ///< CPU capacity in milli-cores
  uint64_t memory_mib = 0;
  labels node_labels;
  capacity_type capacity = capacity_type::on_demand;
  micro_usd price_per_gpu_hour{0};
  double nic_gbps = 400.0; ///< per rail, node to leaf switch
};

/// One rack (leaf switch) and the spine it hangs off.
struct rack_spec {
  std::string name;
  uint32_t spine = 0;
  double uplink_oversubscription = 1.0; ///< >1: cross-rack traffic is slower
};

/// The whole cluster.
struct cluster_topology {
  std::vector<rack_spec> racks;
  std::vector<node_spec> nodes;

  size_t total_gpus() const noexcept;
  /// The node named `name`, or not_found.
  [[nodiscard]] result<node_id> find_node(std::string_view name) const;
  /// Checks references and values (rack indices, MIG models, replicas...);
  /// invalid_argument listing every problem.
  [[nodiscard]] result<void> validate() const;
};

/// Peak NVLink bandwidth per GPU (GB/s, one direction) for a model; 0 when
/// the model has no NVLink. Used by TOPOLOGY ranking.
double nvlink_gbps(std::string_view gpu_model) noexcept;
/// PCIe bandwidth per GPU (GB/s) assumed between GPUs of one node that do
/// not share an NVLink island.
inline constexpr double pcie_gbps = 32.0;

/// Parameters of a generated cluster.
struct generated_cluster {
  uint32_t racks = 4;
  uint32_t nodes_per_rack = 8;
  uint32_t gpus_per_node = 8;
  uint32_t nvlink_domains_per_node = 1; ///< e.g. 2 for two 4-GPU islands
  std::string gpu_model = "H100-80GB";
  uint64_t gpu_memory_mib = 81920;
  uint64_t cpu_milli = 96000;
  uint64_t memory_mib = 1024 * 1024;
  uint32_t racks_per_spine = 4;
  double spot_fraction = 0.0;           ///< share of nodes that are spot (seeded choice)
  micro_usd on_demand_price{2'500'000}; ///< per GPU-hour
  micro_usd spot_price{1'000'000};
  uint64_t seed = 1;
};

/// A regular cluster for tests, benchmarks and the simulator.
cluster_topology generate_cluster(const generated_cluster& p);

} // namespace troupe::placement
