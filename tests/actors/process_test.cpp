// Supervised processes for real: /bin/sh commands launched with
// posix_spawn, exit codes and signals reaped, environment, working
// directory and log files applied, stop escalating from SIGTERM to SIGKILL
// over the whole process group, checkpoint signal and confirmation, and
// the troupe-exec helper (limits, exit forwarding, no orphan when the
// parent is SIGKILLed). Stop and checkpoint deadlines run on a time the
// test passes in; real waits only bound how long a process may take.

#include "troupe/actors/errc.hpp"
#include "troupe/actors/process.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace troupe::actors;
using troupe::time_point;

namespace {

namespace fs = std::filesystem;

/// A fresh directory, removed with everything in it at scope exit.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl =
        (fs::temp_directory_path() / "troupe-process-test-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

/// Pids a test learned about (grandchildren...), SIGKILLed at scope exit.
struct pid_guard {
  std::vector<pid_t> pids;
  ~pid_guard() {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGKILL);
  }
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// True while `pid` exists and is not a zombie.
bool alive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (stat.empty() || close == std::string::npos || close + 2 >= stat.size())
    return false;
  char state = stat[close + 2];
  return state != 'Z' && state != 'X';
}

/// Waits (really) up to `limit` for `pred`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

pid_t read_pid(const std::string& path) {
  pid_t p = 0;
  REQUIRE(eventually([&] { return !slurp(path).empty() && slurp(path).back() == '\n'; }));
  std::istringstream(slurp(path)) >> p;
  return p;
}

/// Polls (at `now`, or the real time) until `pid` exited; every event seen.
std::vector<process_event> poll_until_exit(process_supervisor& sup, pid_t pid,
                                           std::optional<time_point> now = std::nullopt) {
  std::vector<process_event> seen;
  bool done = eventually([&] {
    for (auto& e : sup.poll(now.value_or(std::chrono::steady_clock::now()))) {
      seen.push_back(e);
      if (e.what == process_event::kind::exited && e.pid == pid) return true;
    }
    return false;
  });
  REQUIRE_MESSAGE(done, "pid " << pid << " did not exit in time");
  return seen;
}

replica_exit exit_of(const std::vector<process_event>& events, pid_t pid) {
  for (const auto& e : events)
    if (e.what == process_event::kind::exited && e.pid == pid) return e.exit;
  FAIL("no exit event");
  return {};
}

bool has(const std::vector<process_event>& events, process_event::kind k) {
  for (const auto& e : events)
    if (e.what == k) return true;
  return false;
}

launch_spec sh(const std::string& script, const temp_dir& dir) {
  launch_spec s;
  s.argv = {"/bin/sh", "-c", script};
  s.env = {{"PATH", "/usr/bin:/bin"}, {"DIR", dir.path.string()}};
  s.stdout_path = dir / "out.log";
  s.stderr_path = dir / "err.log";
  return s;
}

launch_spec with_helper(launch_spec s) {
  s.exec_helper = TROUPE_EXEC_HELPER;
  return s;
}

} // namespace

TEST_SUITE("process") {

  TEST_CASE("exit codes and signals are reported") {
    temp_dir dir;
    process_supervisor sup;
    for (bool helper : {false, true}) {
      CAPTURE(helper);
      auto spec = [&](const std::string& s) {
        return helper ? with_helper(sh(s, dir)) : sh(s, dir);
      };
      auto a = sup.launch(spec("exit 7"));
      REQUIRE(a.ok());
      CHECK(exit_of(poll_until_exit(sup, *a), *a) == replica_exit::exited(7));
      auto b = sup.launch(spec("kill -SEGV $$"));
      REQUIRE(b.ok());
      CHECK(exit_of(poll_until_exit(sup, *b), *b) == replica_exit::signaled(SIGSEGV));
      auto c = sup.launch(spec("exit 0"));
      REQUIRE(c.ok());
      CHECK(exit_of(poll_until_exit(sup, *c), *c).succeeded());
    }
    CHECK(sup.size() == 0);
  }

  TEST_CASE("environment, working directory and log files are applied") {
    temp_dir dir;
    fs::create_directory(dir.path / "work");
    process_supervisor sup;
    setenv("TROUPE_PROCESS_TEST_LEAK", "leaked", 1);
    for (bool helper : {false, true}) {
      auto spec =
          sh("echo \"$FOO|$(pwd)|$CUDA_VISIBLE_DEVICES|${TROUPE_PROCESS_TEST_LEAK-unset}|"
             "$TROUPE_CHECKPOINT_DONE\"; echo oops >&2",
             dir);
      if (helper) spec = with_helper(spec);
      spec.env["FOO"] = "bar baz";
      spec.working_dir = dir / "work";
      spec.visible_devices = std::vector<std::string>{"0", "3"};
      spec.checkpoint_done_path = dir / "ckpt";
      auto pid = sup.launch(spec);
      REQUIRE(pid.ok());
      CHECK(exit_of(poll_until_exit(sup, *pid), *pid).succeeded());
    }
    unsetenv("TROUPE_PROCESS_TEST_LEAK");
    // Both runs appended to the same files.
    const std::string line =
        "bar baz|" + (dir / "work") + "|0,3|unset|" + (dir / "ckpt") + "\n";
    CHECK(slurp(dir / "out.log") == line + line);
    CHECK(slurp(dir / "err.log") == "oops\noops\n");
  }

  TEST_CASE("MIG UUIDs and an empty device list set CUDA_VISIBLE_DEVICES") {
    CHECK(cuda_visible_devices({"MIG-a1", "MIG-b2"}) == "MIG-a1,MIG-b2");
    temp_dir dir;
    process_supervisor sup;
    auto spec = sh("echo \"[${CUDA_VISIBLE_DEVICES-unset}]\"", dir);
    spec.visible_devices = std::vector<std::string>{};
    auto pid = sup.launch(spec);
    REQUIRE(pid.ok());
    poll_until_exit(sup, *pid);
    CHECK(slurp(dir / "out.log") == "[]\n");
  }

  TEST_CASE("bad commands and directories are refused") {
    temp_dir dir;
    process_supervisor sup;
    launch_spec empty;
    CHECK(sup.launch(empty).err().is(errc::invalid_argument));
    auto missing = sh("true", dir);
    missing.argv = {dir / "no-such-binary"};
    auto r = sup.launch(missing);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::invalid_argument));
    CHECK(r.err().message().find("no-such-binary") != std::string::npos);
    auto bad_dir = sh("true", dir);
    bad_dir.working_dir = dir / "nope";
    auto d = sup.launch(bad_dir);
    REQUIRE_FALSE(d.ok());
    CHECK(d.err().message().find("working directory") != std::string::npos);
    auto bad_log = sh("true", dir);
    bad_log.stdout_path = dir / "no-dir/out.log";
    auto l = sup.launch(bad_log);
    REQUIRE_FALSE(l.ok());
    CHECK(l.err().is(errc::invalid_argument));
    CHECK(l.err().message().find("no-dir/out.log") != std::string::npos);
    CHECK(sup.size() == 0);
    CHECK(sup.stop(999999, 1s, time_point{}).err().is(errc::not_found));
  }

  TEST_CASE("stop ends a process with SIGTERM and no escalation") {
    temp_dir dir;
    process_supervisor sup;
    auto pid = sup.launch(sh("echo ready > \"$DIR/ready\"; exec sleep 30", dir));
    REQUIRE(pid.ok());
    REQUIRE(eventually([&] { return fs::exists(dir / "ready"); }));
    const time_point t0{};
    REQUIRE(sup.stop(*pid, 10s, t0).ok());
    auto events = poll_until_exit(sup, *pid, t0 + 1s);
    CHECK(exit_of(events, *pid) == replica_exit::signaled(SIGTERM));
    CHECK_FALSE(has(events, process_event::kind::escalated));
  }

  TEST_CASE("stop escalates to SIGKILL for a group that traps TERM, grandchildren too") {
    temp_dir dir;
    pid_guard guard;
    process_supervisor sup;
    for (bool helper : {false, true}) {
      CAPTURE(helper);
      fs::remove(dir / "ready");
      fs::remove(dir / "grandchild");
      // The replica ignores TERM; so do a child and that child's child.
      auto spec =
          sh("trap '' TERM; sh -c 'sleep 30 & echo $! > \"$DIR/grandchild\"; wait' & "
             "echo ready > \"$DIR/ready\"; while :; do sleep 0.05; done",
             dir);
      if (helper) spec = with_helper(spec);
      auto pid = sup.launch(spec);
      REQUIRE(pid.ok());
      REQUIRE(eventually([&] { return fs::exists(dir / "ready"); }));
      pid_t grandchild = read_pid(dir / "grandchild");
      guard.pids.push_back(grandchild);
      CHECK(alive(grandchild));

      const time_point t0{};
      REQUIRE(sup.stop(*pid, 200ms, t0).ok());
      // Within the grace nothing escalates and TERM is ignored.
      std::this_thread::sleep_for(50ms);
      CHECK_FALSE(has(sup.poll(t0 + 100ms), process_event::kind::escalated));
      CHECK(alive(*pid));
      CHECK(alive(grandchild));
      auto events = poll_until_exit(sup, *pid, t0 + 250ms);
      CHECK(has(events, process_event::kind::escalated));
      CHECK(exit_of(events, *pid) == replica_exit::signaled(SIGKILL));
      CHECK(eventually([&] { return !alive(grandchild); }));
    }
  }

  TEST_CASE("what a replica leaves behind in its group is killed when it exits") {
    temp_dir dir;
    pid_guard guard;
    process_supervisor sup;
    auto pid = sup.launch(sh("sleep 30 & echo $! > \"$DIR/child\"; exit 0", dir));
    REQUIRE(pid.ok());
    auto events = poll_until_exit(sup, *pid);
    CHECK(exit_of(events, *pid).succeeded());
    pid_t child = read_pid(dir / "child");
    guard.pids.push_back(child);
    CHECK(eventually([&] { return !alive(child); }));
  }

  TEST_CASE("checkpoint delivers the signal and sees the confirmation file") {
    temp_dir dir;
    process_supervisor sup;
    for (bool helper : {false, true}) {
      CAPTURE(helper);
      fs::remove(dir / "ready");
      auto spec = sh(
          "trap 'touch \"$TROUPE_CHECKPOINT_DONE\"' USR1; echo ready > \"$DIR/ready\"; "
          "while :; do sleep 0.05; done",
          dir);
      if (helper) spec = with_helper(spec);
      spec.checkpoint_done_path = dir / "done";
      // A stale confirmation from an earlier checkpoint must not count.
      std::ofstream(dir / "done") << "old";
      auto pid = sup.launch(spec);
      REQUIRE(pid.ok());
      REQUIRE(eventually([&] { return fs::exists(dir / "ready"); }));
      const time_point t0{};
      REQUIRE(sup.checkpoint(*pid, SIGUSR1, dir / "done", 10s, t0).ok());
      bool confirmed = eventually([&] {
        return has(sup.poll(t0 + 1s), process_event::kind::checkpoint_confirmed);
      });
      CHECK(confirmed);
      CHECK(sup.running(*pid));
      REQUIRE(sup.stop(*pid, 0s, t0).ok());
      CHECK(exit_of(poll_until_exit(sup, *pid, t0), *pid) ==
            replica_exit::signaled(SIGKILL));
    }
  }

  TEST_CASE("a checkpoint with no confirmation times out; an exit confirms") {
    temp_dir dir;
    process_supervisor sup;
    auto spec = sh(
        "trap '' USR1; echo ready > \"$DIR/ready\"; while :; do sleep 0.05; done", dir);
    auto pid = sup.launch(spec);
    REQUIRE(pid.ok());
    REQUIRE(eventually([&] { return fs::exists(dir / "ready"); }));
    const time_point t0{};
    REQUIRE(sup.checkpoint(*pid, SIGUSR1, dir / "done", 100ms, t0).ok());
    CHECK_FALSE(has(sup.poll(t0 + 50ms), process_event::kind::checkpoint_timed_out));
    CHECK(has(sup.poll(t0 + 150ms), process_event::kind::checkpoint_timed_out));
    REQUIRE(sup.stop(*pid, 0s, t0).ok());
    poll_until_exit(sup, *pid, t0);

    // A replica that exits on the signal has confirmed.
    fs::remove(dir / "ready");
    auto quitter = sup.launch(sh(
        "trap 'exit 0' USR1; echo ready > \"$DIR/ready\"; while :; do sleep 0.05; done",
        dir));
    REQUIRE(quitter.ok());
    REQUIRE(eventually([&] { return fs::exists(dir / "ready"); }));
    REQUIRE(sup.checkpoint(*quitter, SIGUSR1, dir / "done2", 10s, t0).ok());
    auto events = poll_until_exit(sup, *quitter, t0);
    CHECK(has(events, process_event::kind::checkpoint_confirmed));
    CHECK(exit_of(events, *quitter).succeeded());
  }

  TEST_CASE("rlimits apply through the helper and through prlimit") {
    temp_dir dir;
    process_supervisor sup;
    for (bool helper : {false, true}) {
      CAPTURE(helper);
      fs::remove(dir / "out.log");
      fs::remove(dir / "go");
      // Without the helper the limit lands just after the spawn: wait for
      // the test's go-ahead before reading it.
      auto spec = sh("while [ ! -e \"$DIR/go\" ]; do sleep 0.01; done; ulimit -n", dir);
      if (helper) spec = with_helper(spec);
      spec.rlimits = {{RLIMIT_NOFILE, 77, 77}};
      auto pid = sup.launch(spec);
      REQUIRE(pid.ok());
      std::ofstream(dir / "go") << "go";
      CHECK(exit_of(poll_until_exit(sup, *pid), *pid).succeeded());
      CHECK(slurp(dir / "out.log") == "77\n");
    }
  }

  TEST_CASE("the helper refuses bad usage and a parent that is not its own") {
    temp_dir dir;
    process_supervisor sup;
    auto usage = sh("true", dir);
    usage.argv = {TROUPE_EXEC_HELPER, "--bogus", "1", "--", "true"};
    auto u = sup.launch(usage);
    REQUIRE(u.ok());
    CHECK(exit_of(poll_until_exit(sup, *u), *u) == replica_exit::exited(125));
    auto orphan = sh("true", dir);
    orphan.argv = {TROUPE_EXEC_HELPER, "--parent", "1",       "--",
                   "/bin/sh",          "-c",       "echo ran"};
    auto o = sup.launch(orphan);
    REQUIRE(o.ok());
    CHECK(exit_of(poll_until_exit(sup, *o), *o) == replica_exit::exited(127));
    CHECK(slurp(dir / "out.log").empty());
    CHECK(slurp(dir / "err.log").find("parent 1 is gone") != std::string::npos);
  }

  TEST_CASE("a replica under the helper dies when its parent is SIGKILLed") {
    temp_dir dir;
    pid_guard guard;
    process_supervisor sup;
    // A small parent (a shell) starts the replica through troupe-exec, as the
    // agent would, and waits; the test then SIGKILLs that parent.
    auto spec =
        sh("\"$HELPER\" --parent $$ -- /bin/sh -c "
           "'echo $$ > \"$DIR/replica\"; sleep 30 & echo $! > \"$DIR/child\"; wait' & "
           "echo $! > \"$DIR/helper\"; wait",
           dir);
    spec.env["HELPER"] = TROUPE_EXEC_HELPER;
    auto parent = sup.launch(spec);
    REQUIRE(parent.ok());
    pid_t helper = read_pid(dir / "helper");
    pid_t replica = read_pid(dir / "replica");
    pid_t child = read_pid(dir / "child");
    guard.pids = {helper, replica, child};
    REQUIRE(alive(helper));
    REQUIRE(alive(replica));
    REQUIRE(alive(child));
    CHECK(getpgid(helper) == helper); // its own group, not the parent's

    REQUIRE(::kill(*parent, SIGKILL) == 0);
    CHECK(exit_of(poll_until_exit(sup, *parent), *parent) ==
          replica_exit::signaled(SIGKILL));
    CHECK(eventually([&] { return !alive(replica) && !alive(child) && !alive(helper); },
                     3000ms));
  }

  TEST_CASE("the destructor kills and reaps what is still running") {
    temp_dir dir;
    pid_t pid = 0;
    {
      process_supervisor sup;
      auto r = sup.launch(sh("exec sleep 30", dir));
      REQUIRE(r.ok());
      pid = *r;
      CHECK(alive(pid));
    }
    CHECK_FALSE(alive(pid));
    CHECK(::kill(pid, 0) != 0); // reaped, not a zombie
  }

  TEST_CASE("cgroup v2 detection matches the mount, and creation falls back") {
    bool writable = cgroup2_writable();
    temp_dir dir;
    auto r = create_replica_cgroup(dir.path.string(), "replica-0", 1 << 30, 500);
    REQUIRE_FALSE(r.ok()); // a plain directory is no cgroup
    CHECK(r.err().is(errc::unavailable));
    MESSAGE("/sys/fs/cgroup is " << std::string{writable ? "" : "not "}
                                 << "a writable cgroup2 mount");
  }

} // TEST_SUITE
