#pragma once
/// Launching, stopping, checkpointing and reaping supervised replica
/// processes on a node. Plain code, no actors: the node agent owns one
/// process_supervisor on one dedicated thread and drives it by calling
/// poll() with the current time (no clock or thread inside).
///
/// How a replica is started:
/// - posix_spawn, never fork (the agent runs threads); each replica leads
///   its own process group (POSIX_SPAWN_SETPGROUP), so a stop or a
///   checkpoint signal reaches every process it started;
/// - default signal dispositions and an empty signal mask (SETSIGDEF,
///   SETSIGMASK), stdin from /dev/null, stdout and stderr appended to the
///   replica's log files, every other descriptor of the agent closed
///   (addclosefrom_np), working directory through addchdir_np;
/// - the environment is exactly launch_spec::env plus CUDA_VISIBLE_DEVICES
///   (the assigned GPU indices or MIG UUIDs, comma separated; an empty
///   list hides every GPU) and TROUPE_CHECKPOINT_DONE;
/// - never orphaned: with launch_spec::exec_helper set, the command runs
///   under troupe-exec (tools/troupe-exec), which asks the kernel for a
///   signal when its parent dies (PR_SET_PDEATHSIG; posix_spawn cannot set
///   it in the child itself) and then SIGKILLs its whole process group. It
///   applies the rlimits and joins the cgroup before starting the command,
///   and exits the way the command did (same status, or the same signal).
///   PR_SET_PDEATHSIG fires when the *thread* that spawned the child ends:
///   call launch() from a thread that lives as long as the agent.
///   Without the helper the rlimits are applied with prlimit() right after
///   the spawn (the command may run a few instructions before they apply)
///   and nothing guards against the agent's death;
/// - resource limits: rlimits always (a list of setrlimit resources); where
///   /sys/fs/cgroup is a writable cgroup2 mount, create_replica_cgroup
///   makes a per-replica cgroup with memory.max and cpu.max (best effort:
///   the caller falls back to rlimits on unavailable).
///
/// A process that leaves its group (setsid, setpgid) escapes the group
/// signals; only a cgroup would hold it.
///
/// When a replica's leader ends, the rest of its group is SIGKILLed before
/// the leader is reaped (the zombie pins the group id, so the kill cannot
/// hit a recycled group). The destructor SIGKILLs and reaps every replica
/// still running.

#include "troupe/actors/restart_policy.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace troupe::actors {

/// One setrlimit resource (RLIMIT_NOFILE, RLIMIT_CORE, RLIMIT_AS, ...).
struct rlimit_setting {
  int resource = 0;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

/// What to start for one replica.
struct launch_spec {
  std::vector<std::string> argv; ///< argv[0] without '/' is looked up in the agent's PATH
  std::map<std::string, std::string, std::less<>> env; ///< the whole environment
  std::string working_dir;                             ///< empty: the agent's
  std::string stdout_path; ///< appended, created 0644; empty: /dev/null
  std::string stderr_path; ///< may equal stdout_path
  /// GPU indices or MIG UUIDs for CUDA_VISIBLE_DEVICES; nullopt leaves the
  /// variable as `env` has it, an empty list hides every GPU.
  std::optional<std::vector<std::string>> visible_devices;
  /// Exported as TROUPE_CHECKPOINT_DONE; empty: not exported.
  std::string checkpoint_done_path;
  std::vector<rlimit_setting> rlimits;
  std::string exec_helper; ///< path of troupe-exec; empty: spawn the command directly
  std::string cgroup_dir;  ///< from create_replica_cgroup; empty: none
};

/// What poll() saw.
struct process_event {
  enum class kind : uint8_t {
    exited,               ///< the replica ended; `exit` says how
    checkpoint_confirmed, ///< the done file appeared, or the replica exited
    checkpoint_timed_out, ///< no confirmation within the hook's timeout
    escalated,            ///< the stop grace ran out: the group got SIGKILL
  };
  kind what = kind::exited;
  pid_t pid = 0;
  replica_exit exit;
};

/// "0,1,3" or "MIG-...,MIG-..." for CUDA_VISIBLE_DEVICES.
std::string cuda_visible_devices(const std::vector<std::string>& devices);

/// True when `root` is a cgroup2 mount this process may write to.
bool cgroup2_writable(const std::string& root = "/sys/fs/cgroup");

/// Creates `parent`/`name` as a cgroup with memory.max (bytes; 0: no
/// limit) and cpu.max (milli-CPUs; 0: no limit) and returns its path.
/// unavailable when `parent` is not a writable cgroup2 directory or the
/// controllers are not enabled there; the caller then uses rlimits only.
[[nodiscard]] result<std::string> create_replica_cgroup(const std::string& parent,
                                                        const std::string& name,
                                                        uint64_t memory_max_bytes,
                                                        uint64_t cpu_max_milli);
/// Removes a replica's (empty) cgroup; best effort.
void remove_replica_cgroup(const std::string& path);

/// The supervised processes of one node. Not thread safe: one owner thread.
class process_supervisor {
public:
  process_supervisor() = default;
  process_supervisor(const process_supervisor&) = delete;
  process_supervisor& operator=(const process_supervisor&) = delete;
  /// SIGKILLs every process group still running and reaps its leader.
  ~process_supervisor();

  /// Starts a replica; returns its pid, which is also its process group id.
  /// invalid_argument for an empty argv, a command or working directory
  /// that does not exist or cannot be executed, a log file that cannot be
  /// opened; unavailable when the system refuses (no processes left).
  /// Under the helper, a command that cannot be started is a replica that
  /// exits with status 127 and says why in its stderr log (the helper
  /// itself started).
  [[nodiscard]] result<pid_t> launch(const launch_spec& spec);

  /// SIGTERM (and SIGCONT, should it be stopped) to the group; poll()
  /// sends SIGKILL once `grace` has passed since `now`. A zero grace kills
  /// at once. not_found for a pid this supervisor does not run.
  [[nodiscard]] result<void> stop(pid_t pid, duration grace, time_point now);

  /// Sends `signal` to the group after removing `done_path`; poll() reports
  /// checkpoint_confirmed when the file appears or the replica exits, and
  /// checkpoint_timed_out after `timeout`.
  [[nodiscard]] result<void> checkpoint(pid_t pid, int signal,
                                        const std::string& done_path, duration timeout,
                                        time_point now);

  /// Reaps replicas that ended (never blocks; only this supervisor's
  /// pids), escalates stops past their grace, watches checkpoints.
  std::vector<process_event> poll(time_point now);

  bool running(pid_t pid) const { return procs_.count(pid) != 0; }
  size_t size() const noexcept { return procs_.size(); }

private:
  struct entry {
    std::optional<time_point> kill_at;
    bool killed = false;
    std::optional<time_point> checkpoint_deadline;
    std::string checkpoint_done;
  };
  std::map<pid_t, entry> procs_;
};

} // namespace troupe::actors
