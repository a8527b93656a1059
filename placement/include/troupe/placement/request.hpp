#pragma once
/// What a workload asks for: a gang of bundles placed all or nothing.

#include "troupe/placement/topology.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/strong_id.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe::placement {

using request_id = strong_id<uint64_t, struct request_id_tag>;
using allocation_id = strong_id<uint64_t, struct allocation_id_tag>;

/// How the bundles of a gang spread over nodes (Ray placement group
/// semantics, plus TOPOLOGY).
enum class strategy : uint8_t {
  pack,          ///< as few nodes as possible (best effort)
  spread,        ///< as many distinct nodes as possible (best effort)
  strict_pack,   ///< all bundles on one node, or not at all
  strict_spread, ///< every bundle on a different node, or not at all
  topology,      ///< minimise expected communication cost of the gang
};

const char* to_string(strategy s) noexcept;
/// Parses "pack" | "spread" | "strict_pack" | "strict_spread" | "topology".
std::optional<strategy> parse_strategy(std::string_view s) noexcept;

/// One bundle: exactly one of whole GPUs, a milli-GPU share of one GPU, a
/// MIG profile, or none (CPU/memory only); plus CPU, memory, constraints.
struct bundle {
  uint32_t gpus = 0;                   ///< whole GPUs, all on one node
  uint32_t gpu_milli = 0;              ///< 1..999: a share of one GPU
  std::string mig_profile;             ///< e.g. "1g.10gb": one MIG instance
  std::vector<std::string> gpu_models; ///< allowed models; empty: any
  uint64_t cpu_milli = 0;
  uint64_t memory_mib = 0;
  labels node_selector; ///< node labels that must match exactly

  bool wants_gpu() const noexcept {
    return gpus > 0 || gpu_milli > 0 || !mig_profile.empty();
  }
  friend bool operator==(const bundle&, const bundle&) = default;
  /// GPUs this bundle counts as (whole GPUs; a share counts its fraction).
  double gpu_equivalent() const noexcept;
};

/// A gang request.
struct gang_request {
  request_id id{0};
  std::string tenant = "default";
  labels cost_labels;          ///< team, project, environment... for the ledger
  std::vector<bundle> bundles; ///< in order; the first `min_bundles` are required
  uint32_t min_bundles = 0;    ///< elastic minimum; 0 means all bundles
  strategy placement_strategy = strategy::pack;
  /// All whole GPUs of the gang in one NVLink island, or not at all (e.g.
  /// tensor parallelism that cannot cross PCIe).
  bool require_nvlink_domain = false;
  int32_t priority = 0; ///< higher runs first and may preempt lower
  bool preemptible = false;
  bool spot_tolerant = false; ///< may run on spot capacity
  /// Lowest price first: the gang goes on the cheapest nodes it fits on
  /// (price_per_gpu_hour tiers, each try adding the next dearer tier; nodes
  /// without a price count as free), the strategy deciding within them.
  /// The job manager sets it for work that may use spot (finops choose_pool).
  bool cheapest_first = false;
  duration runtime_estimate{0}; ///< 0: unknown
  time_point submitted{};
  time_point last_checkpoint{}; ///< work before this survives preemption
  /// Set by the scheduling queue (queue.hpp) when the gang runs on quota
  /// borrowed from other tenants: such an allocation is what quota reclaim
  /// evicts (preemption.hpp). Callers leave it false.
  bool borrowed = false;

  uint32_t required_bundles() const noexcept {
    return min_bundles == 0 || min_bundles > bundles.size()
               ? static_cast<uint32_t>(bundles.size())
               : min_bundles;
  }
  /// Whole-GPU equivalents of all bundles.
  double gpu_equivalent() const noexcept;
  /// invalid_argument describing every problem (empty gang, a bundle asking
  /// for two kinds of GPU, milli outside 1..999, ...).
  [[nodiscard]] result<void> validate() const;
};

/// Where one bundle went.
struct bundle_placement {
  uint32_t bundle = 0; ///< index into gang_request::bundles
  node_id node{0};
  std::vector<uint32_t> gpus;         ///< whole GPUs (node-local indices)
  std::optional<uint32_t> shared_gpu; ///< the GPU holding a milli share or MIG instance
  uint32_t gpu_milli = 0;
  std::string mig_profile;
  uint32_t mig_start = 0;
  uint64_t cpu_milli = 0;
  uint64_t memory_mib = 0;
};

/// Where a gang (or the placed part of an elastic gang) goes.
struct placement_plan {
  std::vector<bundle_placement> bundles;
  double score = 0; ///< lower is better; strategy-specific
};

/// A committed placement.
struct allocation {
  allocation_id id{0};
  gang_request request;
  placement_plan plan;
  time_point start{};
};

} // namespace troupe::placement
