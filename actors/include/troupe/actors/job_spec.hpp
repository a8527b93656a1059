#pragma once
/// The job a user submits: a command run as N supervised replicas, as plain
/// data, with its JSON decoder (outside input: bounded, checked field by
/// field, every error naming the field path) and encoder.
///
/// The JSON form (every key but `name` and `command` optional):
///
///   {"name": "train-llm",                       // [A-Za-z0-9._-], 1..63 bytes
///    "command": ["python", "train.py"],          // argv, exec'd directly, or
///    "command": "python train.py | tee out",     // a string run by /bin/sh -c
///    "replicas": 4,                              // [1, 10000], default 1
///    "min_replicas": 1,                          // [1, replicas]: what a
///                                                // reclaim may scale down to
///    "env": {"NCCL_DEBUG": "INFO"},              // names [A-Za-z_][A-Za-z0-9_]*
///    "working_dir": "/data/run1",                // absolute path
///    "resources": {"gpus": 8, "gpu_model": "H100", "cpu_milli": 32000,
///                  "memory_mib": 256000},        // per replica
///    "class": "training",                        //
///    training|serving|interactive|eval|batch "priority": 10, // [-1000000, 1000000]
///    "preemptible": true, "spot_tolerant": false,
///    "labels": {"tenant": "acme", "team": "ml", "project": "llm", "env": "prod",
///               "custom": {"owner": "ada"}},
///    "time_limit": "2h30m",                      // or an integer of seconds
///    "checkpoint": {"signal": "SIGUSR1", "timeout": "5m", "interval": "20m"},
///    "restart": {"policy": "on-failure", "max_restarts": 3,
///                "backoff": {"initial": "1s", "max": "5m", "multiplier": 2}},
///    "idempotency_key": "c0ffee-42"}
///
/// Durations are strings of integer components with units d, h, m, s, ms in
/// that order, each at most once ("1d2h", "90s", "500ms"), or a JSON integer
/// of seconds.
///
/// Defaults: 1 replica, class batch, priority 0, restart never; on-failure
/// allows 3 restarts unless max_restarts says otherwise (max_restarts with
/// never is an error); backoff 1s, times 2, at most 5m, reset after 10m of
/// running; checkpoint signal SIGUSR1, timeout 1m. Bounds: job_spec_limits
/// (document size and depth, arguments, environment), labels and keys of at
/// most 128 bytes without control characters. An argv is exec'd with a PATH
/// lookup; a string is one script for /bin/sh -c (pipes, redirections).
///
/// Checkpoint hook: the node agent sends the signal to the replica's process
/// group, with the environment variable TROUPE_CHECKPOINT_DONE naming a file
/// that does not exist yet. The replica confirms by creating that file (e.g.
/// `touch "$TROUPE_CHECKPOINT_DONE"`) or by exiting; no confirmation within
/// the timeout counts as a failed checkpoint (process.hpp). With an
/// `interval` ([1s, 7d]) the job manager asks each running replica to
/// checkpoint that long after it started or last confirmed a checkpoint
/// (never while one is outstanding); without one it asks only before a
/// reclaim or a spot preemption. The interval is what the spot policy checks
/// (finops::spot_policy::max_checkpoint_interval) and what bounds the work a
/// preemption can lose.
///
/// The tenant label is what the user wrote; the job manager replaces it with
/// the tenant of the caller's token.

#include "troupe/actors/restart_policy.hpp"
#include "troupe/placement/request.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::actors {

/// What kind of work a job is (drives placement and idle policies later).
enum class job_class : uint8_t { training, serving, interactive, eval, batch };
const char* to_string(job_class c) noexcept;
/// Parses "training" | "serving" | "interactive" | "eval" | "batch".
std::optional<job_class> parse_job_class(std::string_view s) noexcept;

/// How the agent asks a replica to checkpoint (see the file comment).
struct checkpoint_hook {
  int signal = SIGUSR1;
  duration timeout = std::chrono::minutes{1};
  duration interval{0}; ///< periodic checkpoints; 0: only when asked
  friend bool operator==(const checkpoint_hook&, const checkpoint_hook&) = default;
};

/// What one replica needs.
struct replica_resources {
  uint32_t gpus = 0;     ///< whole GPUs, [0, 1024]
  std::string gpu_model; ///< empty: any model
  uint64_t cpu_milli = 0;
  uint64_t memory_mib = 0;
  friend bool operator==(const replica_resources&, const replica_resources&) = default;
};

/// Cost and ownership labels; `custom` holds free labels.
struct job_labels {
  std::string tenant;
  std::string team;
  std::string project;
  std::string env;
  std::map<std::string, std::string, std::less<>> custom;
  friend bool operator==(const job_labels&, const job_labels&) = default;
};

struct job_spec {
  std::string name;
  /// argv when `shell` is false; otherwise one element, a script for /bin/sh -c.
  std::vector<std::string> command;
  bool shell = false;
  uint32_t replicas = 1;
  /// The fewest replicas the job may be scaled down to (FinOps reclaims a
  /// serving job this way); none: it is never scaled down.
  std::optional<uint32_t> min_replicas;
  std::map<std::string, std::string, std::less<>> env;
  std::string working_dir; ///< empty: the agent's choice (its job directory)
  replica_resources resources;
  job_class kind = job_class::batch;
  int32_t priority = 0;
  bool preemptible = false;
  bool spot_tolerant = false;
  job_labels labels;
  duration time_limit{0}; ///< 0: none
  std::optional<checkpoint_hook> checkpoint;
  restart_policy restart;
  std::string idempotency_key; ///< empty: none

  /// The argv to execute: `command`, or {"/bin/sh", "-c", script}.
  std::vector<std::string> argv() const;
  friend bool operator==(const job_spec&, const job_spec&) = default;
};

/// Bounds on what decode_job_spec accepts.
struct job_spec_limits {
  size_t max_bytes = 1 << 20; ///< the whole document
  size_t max_depth = 8;       ///< nesting of arrays and objects
  size_t max_args = 1024;
  size_t max_arg_bytes = 64 * 1024;
  size_t max_env = 512;
  size_t max_env_value_bytes = 32 * 1024;
  size_t max_labels = 64;
  uint32_t max_replicas = 10000;
};

/// Decodes a job spec from JSON text. invalid_argument naming the field path
/// ("job.replicas: expected an integer in [1, 10000], got 0") for anything
/// malformed, out of bounds or unknown (with a did-you-mean where close).
[[nodiscard]] result<job_spec> decode_job_spec(std::string_view json_text,
                                               const job_spec_limits& limits = {});

/// Encodes a spec as JSON text that decode_job_spec reads back to an equal
/// spec (for a spec that decoded, or one built within the same bounds;
/// invalid UTF-8 in a spec built in code becomes U+FFFD).
std::string encode_job_spec(const job_spec& spec);

/// Parses "2h30m", "90s", "500ms", "1d"; nullopt if malformed or past ~290 years.
std::optional<duration> parse_duration(std::string_view s) noexcept;
/// The canonical form parse_duration reads back: "2h30m", "0s", "1s500ms";
/// sub-millisecond parts are dropped.
std::string format_duration(duration d);

/// "SIGUSR1" (or "USR1") -> its number, for the signals a checkpoint hook may
/// use: SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM, SIGCONT, SIGWINCH,
/// SIGPWR.
std::optional<int> parse_signal_name(std::string_view s) noexcept;
/// "SIGUSR1", "SIGKILL", "SIGSEGV"; "SIG<number>" for a number with no name.
std::string signal_name(int signal);

/// One replica's bundle for the placement engine (a replica that asks for
/// no GPU, CPU or memory asks for 100 milli-CPUs).
placement::bundle to_placement_bundle(const job_spec& spec);

/// A gang request for the placement engine: one bundle per replica (all or
/// nothing), or, with `replica` set, a gang of that one replica (to re-place
/// a replica whose node was lost). Labels become cost labels; the id and the
/// submit time are the caller's.
placement::gang_request
to_placement_request(const job_spec& spec,
                     std::optional<uint32_t> replica = std::nullopt);

} // namespace troupe::actors
