#pragma once
/// The FinOps actor: the head's actor that meters every replica's GPU time
/// into the durable showback ledger, turns GPU telemetry into idle actions,
/// and carries out reclaims and spot preemption notices through the job
/// manager. A thin shell over the finops policies (finops/): the idle
/// detector (idle.hpp), the ledger_store (ledger_store.hpp), the telemetry
/// store (telemetry_store.hpp) and the spot policy's notice plans
/// (spot.hpp). No policy decision is taken here.
///
/// What it owns: one RocksDB store (`store_path`) holding the ledger's and
/// the telemetry store's column families and the audit log
/// (`finops_audit`: one JSON record per action, key "a/" + 16 hex digits of
/// its sequence number, every record with its reason and, once known, the
/// outcome). It runs detached: ledger writes are synchronous (fsync).
///
/// Units:
/// - Ledger allocation = one launch of one replica, keyed by the job
///   manager's generation (unique across the job table, never reused). It is
///   charged from the launch's start to its end at the node's price per
///   GPU-hour, in GPU-milliseconds by ledger.hpp's rounding rule, each
///   (allocation, sequence) entry exactly once, across restarts of the head.
///   The used share of each piece is the mean utilisation of the launch's
///   GPUs in the samples received since the previous tick (0 without any).
/// - Idle unit = the job (its gang: one busy GPU keeps it alive), as
///   idle.hpp's allocation id: the job's number ("j-42" -> 42). Job class
///   training, serving, interactive, eval map to finops's classes; batch
///   jobs are treated as training.
///
/// Each tick (every `tick`, or on fo_tick_atom) it asks the job manager
/// for its launches (jm_allocs_atom), starts ledger allocations for new
/// launches and ends those that ended, tags the samples received since the
/// last tick with the launch holding each GPU, appends them to the
/// telemetry store, feeds them to the idle detector, meters every open
/// launch up to now, and acts on the detector's actions in order:
/// notify_owner and cancel_reclaim are logged and audited (there is no
/// owner channel yet); a reclaim is audited and, unless the policy is dry
/// run, sent to the job manager (jm_reclaim_atom), whose answer becomes the
/// record's outcome. Dry run audits "would reclaim" with the savings so far.
///
/// Restarts: the ledger and the audit log are durable; the idle
/// detector's state is not (after a restart of the head, idle runs start
/// over), nor are the samples of a tick not yet taken. A launch that ended
/// while the head was down is ended when the restarted actor first misses
/// it (the job manager's list of ended launches is in memory).
///
/// Protocol (answers are JSON text, or {"error": {"code", "message"}}):
///   (fo_samples_atom, std::string samples)        one way, from node agents:
///       encode_samples' array.
///   (fo_tick_atom, int64 now_ms) -> {"now_ms", "launches", "jobs_tracked",
///       "actions": [audit records of this tick], "ledger": totals}
///       one tick at wall time `now_ms` (ms since the Unix epoch; tests and
///       the simulator drive time with it).
///   (fo_report_atom, std::string query) -> report
///       query {"group": ["period","tenant","team","project","env"],
///       "from_ms", "to_ms", "tenant" (only its rows), "format": "json"|"csv"},
///       every field optional
///       (default period and tenant, all time, json). Answers {"format":
///       "json", "rows": [...], "total": {...}} (render_json's rows) or
///       {"format": "csv", "csv": "..."} (render_csv).
///   (fo_audit_atom, uint64 after, uint32 limit) -> {"records": [...],
///       "next": last sequence returned}   oldest first, seq > after.
///   (fo_budget_atom, std::string tenant, int32 priority, int64 now_ms)
///       -> {"tenant", "status": "ok"|"warn"|"exceeded", "admit", "reason",
///       "spent_micro_usd", "limit_micro_usd", "window_start_ms"}
///       whether new work of `priority` may start (the job manager asks at
///       submit): the tenant's spend in the budget window ([finops]
///       budgets, budget_period) against its budget; a tenant without one
///       is admitted. The first warn and exceeded of a window, and every
///       refusal (budget_block), are audited.
///   (fo_spot_atom, std::string query) -> {"allowed", "verdict", "reason",
///       "max_spot_share_permille", "max_checkpoint_interval_ms"}
///       may a job use spot (the job manager asks at submit for a spot
///       tolerant job)? query {"job", "tenant", "gpus" (all its replicas),
///       "spot_tolerant", "checkpoints", "checkpoint_interval_ms" (0
///       unknown), "held_spot", "held_total" (the tenant's GPUs now, spot
///       and all, as the job manager counts them), "now_ms"}; the spot
///       policy (finops::decide_spot: tolerant, checkpoints, interval within
///       [finops] spot_checkpoint_interval, the tenant's share within
///       spot_max_share counting the job). Every answer is audited
///       (spot_allowed, spot_refused).
///   (fo_mig_atom) -> {"pools": [{"gpu_model", "gpu_memory_mib", "gpus_before",
///       "gpus_after", "gpus_freed", "layout": [{"instances": [{"profile",
///       "start", "replica": "JOB/INDEX"}]}], "whole_gpu": [...], "summary"}]}
///       MIG advice (finops/mig_advice.hpp) per GPU model for the serving
///       replicas holding one whole GPU each, from the peak memory their GPU
///       reported since they started.
///   (fo_notice_atom, std::string notice) -> the plan
///       notice {"node", "deadline_ms", "received_ms" (default now)}: a
///       spot preemption notice for `node`. The spot policy plans each
///       launch on the node (checkpoint then reschedule, or lose the work
///       since its last confirmed checkpoint, or since it started, when it
///       cannot checkpoint in time); every step is
///       audited with its lost GPU-ms, and the job manager is asked to
///       vacate the node (jm_vacate_atom: checkpoint what can, then move
///       every replica elsewhere). Answers {"node", "steps": [...],
///       "lost_gpu_ms", "gpus_to_reschedule", "jobs": the job manager's
///       answer}.
#include "troupe/finops/config.hpp"
#include "troupe/finops/telemetry.hpp"
#include "troupe/finops/telemetry_config.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <caf/fwd.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace troupe {
class node;
}

namespace troupe::actors {

using fo_samples_atom = caf::atom_constant<caf::atom("fo_samples")>;
using fo_tick_atom = caf::atom_constant<caf::atom("fo_tick")>;
using fo_report_atom = caf::atom_constant<caf::atom("fo_report")>;
using fo_audit_atom = caf::atom_constant<caf::atom("fo_audit")>;
using fo_notice_atom = caf::atom_constant<caf::atom("fo_notice")>;
using fo_budget_atom = caf::atom_constant<caf::atom("fo_budget")>;
using fo_mig_atom = caf::atom_constant<caf::atom("fo_mig")>;
using fo_spot_atom = caf::atom_constant<caf::atom("fo_spot")>;

inline constexpr const char* finops_actor_name = "troupe.finops";

struct finops_actor_config {
  /// RocksDB directory of the ledger, telemetry and audit log (required).
  std::string store_path;
  /// The job manager (job_manager.hpp).
  actor_ref jobs;
  /// [finops]: idle policy, dry run, spot policy, ledger period.
  finops::finops_config finops;
  /// [telemetry]: retention tiers and the busy threshold.
  finops::telemetry_config telemetry;
  /// How often it ticks by itself; 0: only on fo_tick_atom.
  duration tick = std::chrono::seconds{10};
  /// Price of a GPU-hour on nodes whose inventory names none.
  micro_usd default_price_per_gpu_hour{0};
};

/// Spawns the FinOps actor (detached, adopted by `n`, named
/// finops_actor_name). Errors: invalid_argument (no store path, no job
/// manager, a policy that does not validate), the store's and the
/// ledger's errors when opening them (io_error, corrupted).
[[nodiscard]] result<actor_ref> start_finops_actor(node& n, finops_actor_config cfg);

/// Telemetry samples on the wire (node agent -> FinOps actor): a JSON array
/// of {"node", "gpu", "uuid", "at_ms" (ms since the Unix epoch), "util",
/// "mem_mib", "power_mw"}.
std::string encode_samples(const std::vector<finops::gpu_sample>& samples);
/// Reads encode_samples' text; invalid_argument saying which sample and
/// field is wrong (finops::validate's checks included).
[[nodiscard]] result<std::vector<finops::gpu_sample>>
decode_samples(std::string_view text);

/// Wall-clock time (system_clock since the Unix epoch) as troupe's
/// time_point, the time the FinOps records and samples carry.
time_point finops_wall_now();

} // namespace troupe::actors
