#pragma once
/// Resource accounting over a cluster topology. It can never overcommit:
/// `commit` checks a whole placement plan against the current state and
/// applies all of it or none of it; `check_invariants` recomputes every
/// counter from the live allocations.

#include "troupe/placement/mig.hpp"
#include "troupe/placement/request.hpp"
#include "troupe/placement/topology.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe::placement {

/// Live usage of one GPU.
struct gpu_state {
  bool whole_taken = false;          ///< allocated as a whole GPU
  uint32_t used_milli = 0;           ///< sum of milli-GPU shares on it
  uint32_t shares = 0;               ///< number of milli-GPU shares on it
  std::optional<mig_gpu_layout> mig; ///< set for MIG GPUs

  /// Free for a whole-GPU bundle.
  bool free_whole() const noexcept { return !whole_taken && used_milli == 0 && !mig; }
};

/// Live usage of one node.
struct node_state {
  std::vector<gpu_state> gpus;
  uint64_t used_cpu_milli = 0;
  uint64_t used_memory_mib = 0;
  bool schedulable = true; ///< false: cordoned, draining or down
  /// Cached: GPUs in `whole` sharing mode that are entirely free (any
  /// model). Kept by apply/unapply; check_invariants verifies it.
  uint32_t free_whole = 0;
};

class cluster_state {
public:
  /// Aborts if the topology is invalid (validate it at the boundary first).
  explicit cluster_state(cluster_topology topology);

  const cluster_topology& topology() const noexcept { return *topo_; }
  size_t node_count() const noexcept { return nodes_.size(); }
  const node_spec& spec(node_id n) const { return topo_->nodes.at(n.value()); }
  const node_state& state(node_id n) const { return nodes_.at(n.value()); }

  uint64_t free_cpu_milli(node_id n) const;
  uint64_t free_memory_mib(node_id n) const;
  /// Whole GPUs free on `n` whose model `b` allows.
  uint32_t free_whole_gpus(node_id n, const bundle& b) const;
  uint32_t free_whole_gpus(node_id n) const;

  /// Whether node `n` may host bundle `b` of a request that is (or is not)
  /// spot tolerant, ignoring free capacity: schedulable, labels, spot,
  /// GPU models and sharing modes present.
  bool eligible(node_id n, const bundle& b, bool spot_tolerant) const;

  /// Checks `plan` for `req` against the current state and applies it, all
  /// or nothing. Errors: invalid_argument (the plan breaks a rule: names
  /// the bundle and why), insufficient (capacity taken). The state is
  /// unchanged on error.
  [[nodiscard]] result<allocation_id> commit(const gang_request& req, placement_plan plan,
                                             time_point now);
  /// Re-installs an allocation read back from the durable store, keeping its
  /// id (later ids continue after it). Same checks and errors as commit,
  /// except that a gang may lack bundles (release_bundle freed them).
  [[nodiscard]] result<void> restore(const allocation& a);
  /// Frees an allocation; not_found if unknown. Returns what was freed.
  [[nodiscard]] result<allocation> release(allocation_id id);
  /// Shrinks a running elastic allocation to its first `new_bundle_count`
  /// placed bundles (by bundle index), releasing the others, highest index
  /// first; the id stays. Returns the updated allocation (unchanged when it
  /// holds no more than `new_bundle_count` bundles). Errors: not_found;
  /// invalid_argument when `new_bundle_count` is below the request's
  /// required bundles or above its bundle count. The state is unchanged on
  /// error.
  [[nodiscard]] result<allocation> shrink(allocation_id id, uint32_t new_bundle_count);
  /// Frees one placed bundle of an allocation, whatever its index (its
  /// node was lost and its replica moves elsewhere); the allocation keeps
  /// the others, and is released when none is left. Returns the allocation
  /// as it is afterwards (no bundles when it was released). Errors:
  /// not_found (unknown allocation, or that bundle is not placed).
  [[nodiscard]] result<allocation> release_bundle(allocation_id id, uint32_t bundle);
  /// Grows a running allocation by `extra`, which places bundles of its
  /// request that are not placed yet, all or nothing, with commit's checks
  /// plus the strategy relative to the placed bundles (strict_pack: the
  /// gang's node; strict_spread: nodes the gang does not use). The id stays.
  /// Returns the updated allocation (plan sorted by bundle index). Errors:
  /// not_found; invalid_argument (empty plan, bundle out of range or already
  /// placed, broken rule); insufficient (capacity taken). The state is
  /// unchanged on error.
  [[nodiscard]] result<allocation> grow(allocation_id id, const placement_plan& extra);
  /// Records that allocation `id` checkpointed at `at` (work before it
  /// survives preemption). not_found if unknown; a time earlier than the
  /// recorded one is ignored.
  [[nodiscard]] result<void> update_checkpoint(allocation_id id, time_point at);
  /// A what-if copy for projections: the same usage and counters, but no
  /// allocation table (cheap to make with thousands of allocations). Free
  /// the capacity of this state's allocations in it with
  /// `release_copy_of`; `commit`, `release` of its own commits and the
  /// placer work on it as usual. `allocations()` lists only its own
  /// commits, so `check_invariants` does not hold for it.
  cluster_state without_allocations() const;
  /// In a state from `without_allocations`: frees the capacity `a` (an
  /// allocation of the state it was made from) holds.
  void release_copy_of(const allocation& a);
  /// Marks a node (un)schedulable; running allocations stay.
  void set_schedulable(node_id n, bool schedulable);

  const std::map<allocation_id, allocation>& allocations() const noexcept {
    return allocs_;
  }
  const allocation* find(allocation_id id) const;

  /// GPU-equivalents held, in exact integer units: a whole GPU is
  /// `gpu_units_per_gpu`, a milli-GPU share 7 per milli, a MIG instance
  /// 1000 per compute slice (so 1/1000 and 1/7 of a GPU are both whole).
  static constexpr int64_t gpu_units_per_gpu = 7000;
  /// Units held per tenant by the live allocations (tenants holding none
  /// are absent). Kept by commit/release/shrink/grow; check_invariants
  /// verifies it.
  const std::map<std::string, int64_t, std::less<>>&
  gpu_units_by_tenant() const noexcept {
    return tenant_units_;
  }
  /// The most free whole GPUs on any node (schedulable or not): a gang
  /// whose largest whole-GPU bundle needs more cannot be placed now. O(1)
  /// in practice (a scan down a per-level node count).
  uint32_t max_free_whole() const noexcept;
  /// The latest start time of any allocation committed so far.
  time_point latest_start() const noexcept { return latest_start_; }

  uint64_t total_gpu_milli() const noexcept { return total_gpu_milli_; }
  uint64_t allocated_gpu_milli() const noexcept { return allocated_gpu_milli_; }
  uint32_t total_gpus() const noexcept {
    return static_cast<uint32_t>(total_gpu_milli_ / 1000);
  }

  /// Recomputes usage from the allocations and aborts with context if any
  /// counter differs or any capacity is exceeded. For tests and debug.
  void check_invariants() const;

  /// Applies a bundle placement to a node state copy (used by placers to
  /// simulate several bundles on one node). invalid_argument/insufficient
  /// when it does not fit.
  [[nodiscard]] result<void> apply_to(node_state& ns, const node_spec& spec,
                                      const bundle& b, const bundle_placement& p) const;

private:
  struct copy_without_allocations {};
  /// commit; `whole_gang` false skips the all-or-nothing rule (restore).
  [[nodiscard]] result<allocation_id> commit(const gang_request& req, placement_plan plan,
                                             time_point now, bool whole_gang);
  cluster_state(const cluster_state& o, copy_without_allocations);
  /// Checks eligibility and capacity of `bundles` (placements for `req`) on
  /// copies of the nodes they touch, collected in `scratch`.
  [[nodiscard]] result<void> stage(const gang_request& req,
                                   const std::vector<bundle_placement>& bundles,
                                   std::map<uint32_t, node_state>& scratch) const;
  void unapply(node_state& ns, const node_spec& sp, const bundle_placement& p) const;
  /// GPU units (see gpu_units_per_gpu) a placed bundle holds.
  int64_t gpu_units(const bundle_placement& p) const;
  /// Replaces node `n`'s state, keeping `nodes_by_free_whole_`.
  void set_node_state(uint32_t n, node_state ns);
  /// Unapplies a placed bundle from the live state, keeping the counts.
  void unapply_live(const bundle_placement& p);
  void add_units(const std::string& tenant, int64_t units);

  /// Static per-node facts for O(1) eligibility when a bundle allows any
  /// GPU model.
  struct node_summary {
    uint32_t whole_gpus = 0; ///< GPUs in whole mode
    bool shareable = false;  ///< any GPU in whole or time-sliced mode
    bool mig = false;        ///< any GPU in MIG mode
  };

  /// Shared by copies (the topology never changes): copying a state for a
  /// projection or a what-if does not copy every node spec.
  std::shared_ptr<const cluster_topology> topo_;
  std::vector<node_summary> summary_;
  std::vector<node_state> nodes_;
  std::map<allocation_id, allocation> allocs_;
  uint64_t next_id_ = 1;
  uint64_t total_gpu_milli_ = 0;
  uint64_t allocated_gpu_milli_ = 0;
  std::map<std::string, int64_t, std::less<>> tenant_units_;
  /// Nodes per number of free whole GPUs (index 0..max_gpus_per_node).
  std::vector<uint32_t> nodes_by_free_whole_;
  time_point latest_start_{};
};

/// Whether `model` is allowed by `b` (an empty list allows any).
bool model_allowed(const bundle& b, std::string_view model) noexcept;

} // namespace troupe::placement
