#pragma once
/// The placement actor: a thin shell around the placement library that
/// holds the live cluster view and queue, persists pending requests and
/// allocations in the durable store (so a head restart loses nothing), and
/// answers "why pending". It runs detached (its own thread): store writes
/// are synchronous and must not block a scheduler thread.
///
/// Protocol (payloads are JSON strings from codec.hpp, so the same messages
/// can later cross the network and the HTTP API unchanged):
///   (submit_atom, std::string request_json) -> uint64_t request id
///       the id in the JSON is ignored; the actor assigns one. Errors name
///       the bad field.
///   (release_atom, uint64_t allocation_id) -> bool
///   (checkpoint_atom, uint64_t allocation_id, int64_t at_ns) -> bool
///   (why_atom, uint64_t request_id) -> std::string
///   (status_atom) -> std::string JSON {allocations, pending, allocated_gpu_milli, ...}
///   (subscribe_atom, caf::actor) -> bool: the subscriber then receives
///       (placed_atom, uint64_t request, uint64_t allocation, std::string
///       allocation_json, whose "node_names" lists each placed bundle's node
///       name in plan order) and (preempt_atom, std::string plan_json) when the head
///       needs victims evicted.
///   (node_up_atom, std::string node_spec_json) -> bool
///       a node joined (or came back): a new name is added to the topology
///       (rack 0; a rack "default" is made when there is none), a known one
///       becomes schedulable again (its spec replaced when it changed).
///       Node specs are persisted in order, so allocations (which name
///       nodes by index) survive a restart; after one, every node stays
///       unschedulable until it is up again.
///   (node_down_atom, std::string name) -> bool: unschedulable; its
///       allocations stay until their owners release them.
///   (release_bundle_atom, uint64_t allocation_id, uint32_t bundle) -> bool
///       frees one bundle (its replica's node was lost); see
///       cluster_state::release_bundle.
/// A scheduling pass runs after every submit, release and checkpoint, and
/// every `schedule_interval` (reservations start as time passes).
///
/// Metrics (on the node's registry): troupe_placement_pending_requests,
/// troupe_placement_allocated_gpu_milli, troupe_placement_total_gpu_milli,
/// troupe_placement_placed_total, troupe_placement_preemption_plans_total,
/// troupe_placement_pass_seconds, and troupe_placement_fragmentation_rate
/// when an expected mix is configured.

#include "troupe/placement/fragmentation.hpp"
#include "troupe/placement/queue.hpp"
#include "troupe/placement/topology.hpp"
#include "troupe/runtime/actor.hpp"

#include <caf/fwd.hpp>
#include <string>
#include <string_view>

namespace troupe::placement {

using submit_atom = caf::atom_constant<caf::atom("pl_submit")>;
using release_atom = caf::atom_constant<caf::atom("pl_free")>;
using checkpoint_atom = caf::atom_constant<caf::atom("pl_ckpt")>;
using why_atom = caf::atom_constant<caf::atom("pl_why")>;
using status_atom = caf::atom_constant<caf::atom("pl_status")>;
using subscribe_atom = caf::atom_constant<caf::atom("pl_sub")>;
using placed_atom = caf::atom_constant<caf::atom("pl_placed")>;
using preempt_atom = caf::atom_constant<caf::atom("pl_preempt")>;
using node_up_atom = caf::atom_constant<caf::atom("pl_nodeup")>;
using node_down_atom = caf::atom_constant<caf::atom("pl_nodedn")>;
using release_bundle_atom = caf::atom_constant<caf::atom("pl_freeb")>;

/// How the placement actor scores candidates.
enum class scorer_kind : uint8_t {
  best_fit,      ///< troupe's best fit (default)
  fgd,           ///< fragmentation gradient descent, exact gradient
  fgd_simulator, ///< FGD with the paper simulator's integer score
  troupe,        ///< troupe_scorer: the FGD gradient plus the capacity term
};

/// "best_fit" | "fgd" | "fgd_simulator" | "troupe".
const char* to_string(scorer_kind k) noexcept;
/// Parses the names `to_string` gives; invalid_argument listing them
/// otherwise (for the `placement.scorer` setting).
[[nodiscard]] result<scorer_kind> parse_scorer_kind(std::string_view s);

struct placement_actor_config {
  cluster_topology topology;
  queue_policy policy;
  std::string store_path; ///< empty: nothing persisted
  duration schedule_interval = std::chrono::seconds{1};
  scorer_kind scorer = scorer_kind::best_fit;
  /// The expected workload for FGD and troupe's scorer (both of its
  /// measures) and for the fragmentation metric
  /// (`troupe_placement_fragmentation_rate`); FGD or troupe without a mix
  /// falls back to best fit with a warning.
  workload_mix expected_mix;
};

/// Spawns the placement actor (detached) on `sys`. The topology and policy
/// must be valid (validate them at the boundary).
actor_ref spawn_placement_actor(caf::actor_system& sys, placement_actor_config cfg);

} // namespace troupe::placement
