// Supervised replica processes: posix_spawn, process groups, stop with
// escalation, checkpoint signals, non-blocking reaping (process.hpp).

#include "troupe/actors/process.hpp"

#include "troupe/actors/errc.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <linux/magic.h>
#include <memory>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

namespace troupe::actors {
namespace {

std::string errno_text(int e) {
  return std::string{std::strerror(e)};
}

/// posix_spawn_file_actions_t and posix_spawnattr_t, destroyed on scope exit.
struct spawn_actions {
  posix_spawn_file_actions_t fa;
  spawn_actions() { posix_spawn_file_actions_init(&fa); }
  ~spawn_actions() { posix_spawn_file_actions_destroy(&fa); }
  spawn_actions(const spawn_actions&) = delete;
  spawn_actions& operator=(const spawn_actions&) = delete;
};
struct spawn_attrs {
  posix_spawnattr_t attr;
  spawn_attrs() { posix_spawnattr_init(&attr); }
  ~spawn_attrs() { posix_spawnattr_destroy(&attr); }
  spawn_attrs(const spawn_attrs&) = delete;
  spawn_attrs& operator=(const spawn_attrs&) = delete;
};

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) return false;
  f << text;
  f.flush();
  return static_cast<bool>(f);
}

/// Exit of a child from its wait status.
replica_exit from_status(int status) {
  if (WIFSIGNALED(status)) return replica_exit::signaled(WTERMSIG(status));
  return replica_exit::exited(WEXITSTATUS(status));
}

} // namespace

std::string cuda_visible_devices(const std::vector<std::string>& devices) {
  std::string out;
  for (const auto& d : devices)
    out += (out.empty() ? "" : ",") + d;
  return out;
}

bool cgroup2_writable(const std::string& root) {
  struct statfs fs {};
  if (statfs(root.c_str(), &fs) != 0) return false;
  if (fs.f_type != CGROUP2_SUPER_MAGIC) return false;
  return access(root.c_str(), W_OK) == 0;
}

result<std::string> create_replica_cgroup(const std::string& parent,
                                          const std::string& name,
                                          uint64_t memory_max_bytes,
                                          uint64_t cpu_max_milli) {
  if (!cgroup2_writable(parent))
    return error{errc::unavailable, parent + ": not a writable cgroup2 directory"};
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return error{errc::invalid_argument,
                 "cgroup name " + name + ": expected one path component"};
  const std::string path = parent + "/" + name;
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return error{errc::unavailable, path + ": " + errno_text(errno)};
  if (memory_max_bytes > 0 &&
      !write_file(path + "/memory.max", std::to_string(memory_max_bytes) + "\n")) {
    remove_replica_cgroup(path);
    return error{errc::unavailable,
                 path + "/memory.max: cannot write (memory controller not enabled?)"};
  }
  if (cpu_max_milli > 0) {
    // cpu.max is "<quota> <period>" in microseconds: quota = milli * period / 1000.
    constexpr uint64_t period_us = 100000;
    if (!write_file(path + "/cpu.max", std::to_string(cpu_max_milli * period_us / 1000) +
                                           " " + std::to_string(period_us) + "\n")) {
      remove_replica_cgroup(path);
      return error{errc::unavailable,
                   path + "/cpu.max: cannot write (cpu controller not enabled?)"};
    }
  }
  return path;
}

void remove_replica_cgroup(const std::string& path) {
  (void)rmdir(path.c_str());
}

process_supervisor::~process_supervisor() {
  for (const auto& [pid, e] : procs_) {
    (void)::kill(-pid, SIGKILL);
    (void)::kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

result<pid_t> process_supervisor::launch(const launch_spec& spec) {
  if (spec.argv.empty() || spec.argv.front().empty())
    return error{errc::invalid_argument, "launch: empty command"};

  // The command line: the command itself, or troupe-exec in front of it.
  std::vector<std::string> args;
  const bool helper = !spec.exec_helper.empty();
  if (helper) {
    args = {spec.exec_helper, "--parent", std::to_string(getpid())};
    for (const auto& r : spec.rlimits) {
      args.push_back("--rlimit");
      args.push_back(std::to_string(r.resource) + "=" + std::to_string(r.soft) + ":" +
                     std::to_string(r.hard));
    }
    if (!spec.cgroup_dir.empty()) {
      args.push_back("--cgroup");
      args.push_back(spec.cgroup_dir);
    }
    args.push_back("--");
  }
  args.insert(args.end(), spec.argv.begin(), spec.argv.end());

  auto env_map = spec.env;
  if (spec.visible_devices)
    env_map["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices(*spec.visible_devices);
  if (!spec.checkpoint_done_path.empty())
    env_map["TROUPE_CHECKPOINT_DONE"] = spec.checkpoint_done_path;
  std::vector<std::string> env;
  env.reserve(env_map.size());
  for (const auto& [k, v] : env_map)
    env.push_back(k + "=" + v);

  spawn_actions actions;
  auto* fa = &actions.fa;
  int rc = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
  const auto out = spec.stdout_path.empty() ? std::string{"/dev/null"} : spec.stdout_path;
  const auto err = spec.stderr_path.empty() ? std::string{"/dev/null"} : spec.stderr_path;
  if (rc == 0)
    rc = posix_spawn_file_actions_addopen(fa, 1, out.c_str(),
                                          O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (rc == 0)
    rc = posix_spawn_file_actions_addopen(fa, 2, err.c_str(),
                                          O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(fa, 3);
  if (rc == 0 && !spec.working_dir.empty())
    rc = posix_spawn_file_actions_addchdir_np(fa, spec.working_dir.c_str());
  if (rc != 0) return error{errc::unavailable, "launch: file actions: " + errno_text(rc)};

  spawn_attrs attrs;
  auto* at = &attrs.attr;
  sigset_t all;
  sigset_t none;
  sigfillset(&all);
  sigemptyset(&none);
  rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
  if (rc == 0) rc = posix_spawnattr_setpgroup(at, 0);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(at, &all);
  if (rc == 0) rc = posix_spawnattr_setsigmask(at, &none);
  if (rc != 0) return error{errc::unavailable, "launch: attributes: " + errno_text(rc)};

  auto argv = c_strings(args);
  auto envp = c_strings(env);
  pid_t pid = 0;
  const bool search = args.front().find('/') == std::string::npos;
  rc = search ? posix_spawnp(&pid, argv[0], fa, at, argv.data(), envp.data())
              : posix_spawn(&pid, argv[0], fa, at, argv.data(), envp.data());
  if (rc != 0) {
    std::string what = "launch " + args.front() + ": " + errno_text(rc);
    // posix_spawn reports a failed chdir or log open with the same errno as
    // a missing command: name every path it may have been.
    if (!spec.working_dir.empty()) what += " (working directory " + spec.working_dir;
    what += std::string{spec.working_dir.empty() ? " (" : ", "} + "logs " + out +
            " and " + err + ")";
    if (rc == EAGAIN || rc == ENOMEM) return error{errc::unavailable, what};
    return error{errc::invalid_argument, what};
  }
  procs_.emplace(pid, entry{});

  if (!helper) {
    // No helper to set them before the command starts: apply them now.
    for (const auto& r : spec.rlimits) {
      struct rlimit lim {
        static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)
      };
      (void)prlimit(pid, static_cast<__rlimit_resource>(r.resource), &lim, nullptr);
    }
    if (!spec.cgroup_dir.empty())
      (void)write_file(spec.cgroup_dir + "/cgroup.procs", std::to_string(pid) + "\n");
  }
  return pid;
}

result<void> process_supervisor::stop(pid_t pid, duration grace, time_point now) {
  auto it = procs_.find(pid);
  if (it == procs_.end())
    return error{errc::not_found, "stop: no replica with pid " + std::to_string(pid)};
  if (grace <= duration{0}) {
    (void)::kill(-pid, SIGKILL);
    it->second.killed = true;
    return ok();
  }
  (void)::kill(-pid, SIGTERM);
  (void)::kill(-pid, SIGCONT);
  auto deadline = now + grace;
  if (!it->second.kill_at || deadline < *it->second.kill_at)
    it->second.kill_at = deadline;
  return ok();
}

result<void> process_supervisor::checkpoint(pid_t pid, int signal,
                                            const std::string& done_path,
                                            duration timeout, time_point now) {
  auto it = procs_.find(pid);
  if (it == procs_.end())
    return error{errc::not_found,
                 "checkpoint: no replica with pid " + std::to_string(pid)};
  if (done_path.empty())
    return error{errc::invalid_argument, "checkpoint: empty confirmation path"};
  if (unlink(done_path.c_str()) != 0 && errno != ENOENT)
    return error{errc::invalid_argument,
                 "checkpoint: " + done_path + ": " + errno_text(errno)};
  if (::kill(-pid, signal) != 0)
    return error{errc::invalid_argument, "checkpoint: signal " + std::to_string(signal) +
                                             ": " + errno_text(errno)};
  it->second.checkpoint_deadline = now + timeout;
  it->second.checkpoint_done = done_path;
  return ok();
}

std::vector<process_event> process_supervisor::poll(time_point now) {
  std::vector<process_event> events;
  for (auto it = procs_.begin(); it != procs_.end();) {
    const pid_t pid = it->first;
    auto& e = it->second;
    // Has the leader ended? Look without reaping: the zombie keeps the pid
    // and the group id, so the group kill below cannot hit a recycled one.
    siginfo_t info{};
    int rc = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    const bool ended = rc == 0 && info.si_pid == pid;
    if (e.checkpoint_deadline) {
      struct stat st {};
      if (ended || stat(e.checkpoint_done.c_str(), &st) == 0) {
        events.push_back({process_event::kind::checkpoint_confirmed, pid, {}});
        e.checkpoint_deadline.reset();
      } else if (now >= *e.checkpoint_deadline) {
        events.push_back({process_event::kind::checkpoint_timed_out, pid, {}});
        e.checkpoint_deadline.reset();
      }
    }
    if (ended) {
      (void)::kill(-pid, SIGKILL); // whatever the leader left behind in its group
      int status = 0;
      pid_t got = 0;
      while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
      }
      events.push_back({process_event::kind::exited, pid,
                        got == pid ? from_status(status) : replica_exit::node_lost()});
      it = procs_.erase(it);
      continue;
    }
    if (rc != 0 &&
        errno == ECHILD) { // not our child (cannot happen unless reaped elsewhere)
      events.push_back({process_event::kind::exited, pid, replica_exit::node_lost()});
      it = procs_.erase(it);
      continue;
    }
    if (e.kill_at && !e.killed && now >= *e.kill_at) {
      (void)::kill(-pid, SIGKILL);
      e.killed = true;
      events.push_back({process_event::kind::escalated, pid, {}});
    }
    ++it;
  }
  return events;
}

} // namespace troupe::actors
