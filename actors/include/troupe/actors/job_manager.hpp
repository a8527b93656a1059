#pragma once
/// The job manager: the head's actor that owns every job. A thin shell over
/// job_table (job_table.hpp): it feeds the table the cluster's events and
/// carries out its commands.
///
/// - Placement: the placement actor (placement_actor.hpp) owns allocations;
///   the job manager submits one gang request per job (one request per
///   replica to re-place a lost one), hears placements as a subscriber, and
///   gives bundles back with release_bundle.
/// - Nodes: it subscribes to the membership actor. A node that is up is
///   added to placement with its inventory (to_node_spec) and its node agent
///   (node_agent.hpp) is attached: the agent's report of running processes
///   and recent exits is reconciled with the table (fencing). Down and left
///   nodes lose their replicas; cordoned or draining ones take no new work.
/// - Durability: every job the table changed is written (synchronously, one
///   batch, with the table's counters) to the RocksDB store before the
///   commands that came with the change are carried out. After a restart
///   the table is read back; placement requests that were never
///   acknowledged are made again, and nodes that do not come back within
///   `reconcile_grace` lose their replicas.
/// - Time: records keep wall-clock times (so they mean something after a
///   restart); backoffs and time limits are checked every `tick`.
///
/// It runs detached: store writes are synchronous and agent lookups on
/// other nodes block on the fabric.
///
/// Protocol (answers are JSON text: the document, or
/// {"error": {"code": "<actors::errc name>", "message": "..."}}):
///   (jm_submit_atom, std::string tenant, std::string spec_json)
///       -> {"job": doc, "created": bool}
///       a new job (not a repeated idempotency key) is first checked
///       against the tenant's budget by the FinOps actor (fo_budget_atom):
///       refused with exhausted and the budget's reason when the budget is
///       spent and the job's priority is below the block threshold;
///       admitted when the FinOps actor does not answer (logged). Then a
///       spot tolerant job is checked against the spot policy (fo_spot_atom:
///       its GPUs, checkpoint hook and interval, and what its tenant holds:
///       GPUs of replicas not ended, on spot those on spot nodes and those
///       unplaced that may go there, plus jobs whose answer is on its way).
///       A refusal, or no answer, places the job as not spot tolerant; the
///       answer is the job document's "spot".
///
/// Periodic checkpoints: a running replica of a job whose checkpoint hook
/// has an `interval` is asked to checkpoint (agent_checkpoint_atom) that
/// long after it started or last confirmed one (job_table::tick); the
/// confirmation is the replica's `last_checkpoint`.
///   (jm_list_atom, std::string tenant, bool admin, uint32 limit, std::string after)
///       -> {"jobs": [doc...], "next": cursor}   newest first
///   (jm_get_atom, std::string tenant, bool admin, std::string id) -> {"job": doc}
///   (jm_cancel_atom, std::string tenant, bool admin, std::string id) -> {"job": doc}
///   (jm_logs_atom, std::string tenant, bool admin, std::string id, uint32 replica,
///    uint8 stream, uint64 offset, uint32 max_bytes) -> the agent's chunk JSON
/// A tenant's request for another tenant's job answers not_found.
///
/// For the FinOps actor (finops_actor.hpp), which is trusted (no tenant):
///   (jm_allocs_atom, uint64 after) -> {"running": [launch...], "ended":
///       [launch + {"seq", "ended_ms"}], "next": seq}
///       a launch is one generation of a replica holding a process
///       (starting or running): {"job", "replica", "generation", "node",
///       "gpus", "started_ms", "tenant", "labels", "class", "priority",
///       "spot_tolerant", "checkpoint" (has a hook), "checkpoint_timeout_ms",
///       "price_micro_usd", "capacity", "gpu_model", "gpu_memory_mib",
///       "last_checkpoint_ms" (once it confirmed one)} (spot_tolerant: may
///       use spot; price,
///       capacity and the first GPU's model and memory, from its node's
///       inventory); ended launches since sequence `after` (the last 10,000
///       are kept, in memory). Times in ms since the Unix epoch.
///   (jm_reclaim_atom, std::string job, std::string action, std::string reason)
///       -> {"job", "action", "state": "checkpointing"|"evicted"|"scaled_down"}
///       action checkpoint_and_evict: replicas with a checkpoint hook are
///       asked to checkpoint (agent_checkpoint_atom); once each confirmed,
///       exited or timed out, the job ends as failed with `reason` and its
///       GPUs go back to placement. evict and release: that at once.
///       scale_to_min_replicas: the replicas past the spec's min_replicas
///       stop and give their GPUs back; the job runs on (conflict when it
///       has no min_replicas). not_found, conflict (ended).
///   (jm_vacate_atom, std::string node, std::string plan)
///       -> {"node", "checkpointing": n, "moving": bool}
///       plan {"deadline_ms", "reason", "checkpoint": [{"job", "replica",
///       "generation"}]}: the node takes no new work; the listed replicas
///       checkpoint (each within its hook's timeout and the deadline); then
///       every replica on the node is stopped and placed elsewhere (as
///       after a node loss: the restart policy decides).
#include "troupe/actors/job_spec.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <caf/fwd.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace troupe {
class node;
}
namespace troupe::transport {
class fabric;
}

namespace troupe::actors {

using jm_submit_atom = caf::atom_constant<caf::atom("jm_submit")>;
using jm_list_atom = caf::atom_constant<caf::atom("jm_list")>;
using jm_get_atom = caf::atom_constant<caf::atom("jm_get")>;
using jm_cancel_atom = caf::atom_constant<caf::atom("jm_cancel")>;
using jm_logs_atom = caf::atom_constant<caf::atom("jm_logs")>;
using jm_allocs_atom = caf::atom_constant<caf::atom("jm_allocs")>;
using jm_reclaim_atom = caf::atom_constant<caf::atom("jm_reclaim")>;
using jm_vacate_atom = caf::atom_constant<caf::atom("jm_vacate")>;

inline constexpr const char* job_manager_name = "troupe.jobs";

struct job_manager_config {
  std::string store_path; ///< RocksDB directory; empty: nothing persisted
  actor_ref placement;
  actor_ref membership;
  transport::fabric* fabric = nullptr; ///< to reach agents on other nodes
  std::string local_node;              ///< the head's own node name
  actor_ref local_agent;               ///< the head's own node agent (may be empty)
  duration stop_grace = std::chrono::seconds{10};
  duration tick = std::chrono::milliseconds{250};
  /// After a restart, nodes that have not reported within this long lose
  /// their replicas.
  duration reconcile_grace = std::chrono::seconds{30};
  job_spec_limits spec_limits;
  /// The FinOps actor (finops_actor.hpp) to ask whether a tenant's budget
  /// admits a new job (nullopt, or none configured: every job is admitted).
  std::function<std::optional<actor_ref>()> finops;
};

/// Spawns the job manager (detached, adopted by `n`, named
/// job_manager_name). `cfg.fabric` must outlive it. Errors:
/// invalid_argument (no placement or membership actor), io_error (the
/// store cannot be opened).
[[nodiscard]] result<actor_ref> start_job_manager(node& n, job_manager_config cfg);

} // namespace troupe::actors
