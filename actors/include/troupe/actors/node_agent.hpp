#pragma once
/// The node agent: runs on every node (the head too), registered as
/// "troupe.agent", and starts, stops and reaps the replica processes the
/// head's job manager asks for, through a process_supervisor (process.hpp)
/// owned by its own thread (detached actor: posix_spawn with
/// PR_SET_PDEATHSIG through troupe-exec needs a thread that lives as long
/// as the agent).
///
/// Protocol (JSON strings for structured payloads, so they cross nodes):
///   (agent_attach_atom, caf::actor manager) -> std::string report JSON
///       the job manager that receives events from now on; the report is
///       {"node": name, "running": [{"job","replica","generation","pid"}],
///        "exited": [{"job","replica","generation","how","code"}]}: the
///       processes running and the recent exits (the last 1,000, which a
///       manager that restarted may have missed; applying one twice is
///       harmless because generations fence them).
///   (agent_launch_atom, std::string launch JSON)            one way
///       {"job","replica","generation","argv":[...],"env":{...},
///        "working_dir","gpus":[...],"grace_ms"}; answered with the events
///       started or launch_failed.
///   (agent_stop_atom, std::string job, uint32 replica, uint64 generation)
///       one way: SIGTERM, SIGKILL after the grace; the exit event follows.
///   (agent_log_atom, std::string job, uint32 replica, uint8 stream (0 out,
///    1 err), uint64 offset, uint32 max_bytes) -> std::string chunk JSON
///       {"data": the bytes as a JSON string (invalid UTF-8 replaced by
///        U+FFFD), "next": offset after them, "finished": the replica is not
///        running here and the chunk reaches the end of the file}
///   (agent_checkpoint_atom, std::string job, uint32 replica, uint64
///    generation, int32 signal, uint64 timeout_ms)              one way
///       sends `signal` to the replica (process_supervisor::checkpoint,
///       TROUPE_CHECKPOINT_DONE is the file it creates when done); answered
///       with checkpoint_confirmed (the file appeared or the replica
///       exited) or checkpoint_timed_out (also at once when the replica
///       does not run here with that generation).
/// Events to the manager: (agent_event_atom, std::string event JSON) with
///   {"kind": "started"|"launch_failed"|"exited"|"checkpoint_confirmed"|
///    "checkpoint_timed_out", "node", "job", "replica", "generation",
///    "pid"|"why"|"how"+"code"}.
///
/// Telemetry: with a `telemetry` source, every `telemetry_interval` the
/// agent samples its GPUs (stamped with the wall clock) and sends them to
/// `telemetry_sink` (the head's FinOps actor) as (fo_samples_atom,
/// encode_samples(...)) (finops_actor.hpp). A failed sample is logged and
/// skipped; samples taken while no sink can be found are dropped.
///
/// Logs: <jobs_dir>/<job>/replica-<i>.out and .err, appended across
/// restarts of the replica. Job ids and replica numbers are checked before
/// they become paths.
#include "troupe/finops/notice_source.hpp"
#include "troupe/finops/telemetry.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <caf/fwd.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace troupe {
class node;
}

namespace troupe::actors {

using agent_attach_atom = caf::atom_constant<caf::atom("ag_attach")>;
using agent_launch_atom = caf::atom_constant<caf::atom("ag_launch")>;
using agent_stop_atom = caf::atom_constant<caf::atom("ag_stop")>;
using agent_log_atom = caf::atom_constant<caf::atom("ag_log")>;
using agent_event_atom = caf::atom_constant<caf::atom("ag_event")>;
using agent_checkpoint_atom = caf::atom_constant<caf::atom("ag_ckpt")>;

inline constexpr const char* agent_actor_name = "troupe.agent";

struct node_agent_config {
  std::string node_name;
  /// Where replica logs go (created).
  std::string jobs_dir;
  /// troupe-exec's path (never orphaned); empty: spawn directly.
  std::string exec_helper;
  /// How often processes are reaped.
  duration poll_interval = std::chrono::milliseconds{100};
  /// GPU telemetry (NVML or simulated); null: no sampling. Owned by the
  /// agent's thread once started.
  std::unique_ptr<finops::telemetry_source> telemetry;
  duration telemetry_interval = std::chrono::seconds{10};
  /// Finds the head's FinOps actor; called on the agent's thread when a
  /// sample is ready and no sink is known (again every 30 samples, so a
  /// restarted head is found). May block briefly (a fabric lookup).
  std::function<std::optional<actor_ref>()> telemetry_sink;
  /// Spot preemption notices for this node (notice_source.hpp); null: none.
  /// Polled every telemetry_interval; each new deadline goes to the
  /// telemetry sink as (fo_notice_atom, {"node", "deadline_ms"}).
  std::unique_ptr<finops::notice_source> notices;
};

/// Whether `id` may name a job directory: [A-Za-z0-9._-], 1..64 bytes, not
/// "." or "..".
bool valid_job_id(std::string_view id) noexcept;

/// Spawns the node agent (detached, adopted by `n`, named
/// agent_actor_name). Errors: invalid_argument (no jobs_dir or it cannot be
/// created), already_exists.
[[nodiscard]] result<actor_ref> start_node_agent(node& n, node_agent_config cfg);

} // namespace troupe::actors
