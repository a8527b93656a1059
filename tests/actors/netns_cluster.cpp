// A 3-host cluster in network namespaces this test creates: a head and two
// workers, each a trouped process in its own namespace (`ip netns`), joined
// by veth links to a bridge in a fourth namespace, with UCX over TCP only
// (asserted: between namespaces of one machine UCX would otherwise pick
// shared memory, and cutting a link would cut nothing). It joins, runs a
// job, cuts a worker's link with `ip link set down` (suspect, then down
// within the detection bound; its replica runs elsewhere; healed, it
// rejoins as a new incarnation and stops the stale replica), stops a
// worker with SIGSTOP (suspect, then down within the bound), kills one with
// SIGKILL (down, replicas restarted elsewhere) and kills the head with
// SIGKILL (restarted, nothing lost, nothing duplicated).
//
// Namespaces and links carry the test's pid and are deleted by it whatever
// happens; those of earlier runs whose pid is gone (killed by a timeout)
// are deleted first, with the processes they left. Needs
// root and iproute2: elsewhere the test exits 77 (ctest: skipped).

#include "cluster_test_client.hpp"
#include "troupe/actors/membership.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sched.h>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace troupe::actors;
using namespace troupe::actors::testing;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// Runs a shell command; its exit status.
int sh(const std::string& cmd) {
  int st = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/// Output of a shell command.
std::string sh_out(const std::string& cmd) {
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
      out.append(buf, n);
    ::pclose(f);
  }
  return out;
}

/// Cleans up after earlier runs of this test that were killed (a ctest
/// timeout): the processes in namespaces tr<PID>... whose PID no longer
/// runs are killed and the namespaces deleted, and the nodes listed in
/// their cluster directories are stopped by pid (a node outlives its
/// namespace's name) and the directories removed.
void remove_stale_runs() {
  auto dead = [](long pid) {
    return pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
  };
  static const std::regex name{R"(^tr([0-9]+)(h|w[0-9]|br)$)"};
  std::istringstream in{sh_out("ip netns list 2>/dev/null")};
  std::string line;
  while (std::getline(in, line)) {
    auto ns = line.substr(0, line.find(' '));
    std::smatch m;
    if (!std::regex_match(ns, m, name) || !dead(std::stol(m[1]))) continue;
    std::istringstream pids{sh_out("ip netns pids " + ns + " 2>/dev/null")};
    for (pid_t p = 0; pids >> p;)
      if (p > 1) ::kill(p, SIGKILL);
    sh("ip netns del " + ns);
  }
  static const std::regex dir{R"(^troupe-netns-test-([0-9]+)$)"};
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path(), ec)) {
    auto base = e.path().filename().string();
    std::smatch m;
    if (!std::regex_match(base, m, dir) || !dead(std::stol(m[1]))) continue;
    (void)stop_local_cluster(e.path(), 1s);
    fs::remove_all(e.path(), ec);
  }
}

/// Hosts in network namespaces on one bridge: host i is namespace
/// tr<pid><tag> with interface eth0 at 10.X.Y.(i+1)/24; the bridge's port
/// for host i is p<i> in namespace tr<pid>br. The destructor deletes every
/// namespace (and so every link) it made.
struct netns_lab {
  std::string prefix;
  std::vector<std::string> hosts; ///< namespace names
  std::vector<std::string> addrs; ///< eth0 addresses
  std::string bridge_ns;
  bool ok = false;

  explicit netns_lab(const std::vector<std::string>& tags)
      : prefix("tr" + std::to_string(::getpid())), bridge_ns(prefix + "br") {
    remove_stale_runs();
    auto pid = static_cast<unsigned>(::getpid());
    auto subnet = "10." + std::to_string(64 + (pid >> 8) % 128) + "." +
                  std::to_string(pid & 255) + ".";
    if (sh("ip netns add " + bridge_ns) != 0) return;
    bool good = sh("ip -n " + bridge_ns + " link add br0 type bridge") == 0 &&
                sh("ip -n " + bridge_ns + " link set br0 up") == 0 &&
                sh("ip -n " + bridge_ns + " link set lo up") == 0;
    for (size_t i = 0; good && i < tags.size(); ++i) {
      auto ns = prefix + tags[i];
      auto port = "p" + std::to_string(i);
      auto addr = subnet + std::to_string(i + 1);
      hosts.push_back(ns);
      addrs.push_back(addr);
      // Both ends are made inside the bridge's namespace, then one moves.
      good = sh("ip netns add " + ns) == 0 &&
             sh("ip -n " + bridge_ns + " link add " + port + " type veth peer name h" +
                std::to_string(i)) == 0 &&
             sh("ip -n " + bridge_ns + " link set h" + std::to_string(i) + " netns " +
                ns) == 0 &&
             sh("ip -n " + ns + " link set h" + std::to_string(i) + " name eth0") == 0 &&
             sh("ip -n " + ns + " addr add " + addr + "/24 dev eth0") == 0 &&
             sh("ip -n " + ns + " link set eth0 up") == 0 &&
             sh("ip -n " + ns + " link set lo up") == 0 &&
             sh("ip -n " + bridge_ns + " link set " + port + " master br0") == 0 &&
             sh("ip -n " + bridge_ns + " link set " + port + " up") == 0;
    }
    ok = good;
  }
  ~netns_lab() {
    for (const auto& ns : hosts)
      sh("ip netns del " + ns);
    sh("ip netns del " + bridge_ns);
  }
  /// Cuts (or heals) host i's cable: its bridge port goes down (up).
  bool set_link(size_t i, bool up) {
    return sh("ip -n " + bridge_ns + " link set p" + std::to_string(i) +
              (up ? " up" : " down")) == 0;
  }
  /// Moves the calling thread (and every thread it creates later) into
  /// host i's namespace.
  bool enter(size_t i) {
    int fd = ::open(("/run/netns/" + hosts[i]).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool entered = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    return entered;
  }
};

/// Every lane of `m`'s connection is TCP over eth0.
bool tcp_only(const json& m) {
  if (!m.contains("transports") || m["transports"].empty()) return false;
  for (const auto& t : m["transports"])
    if (t.get<std::string>().rfind("tcp/", 0) != 0) return false;
  return true;
}

} // namespace

TEST_CASE("a 3-host cluster in network namespaces: join, job, link cut and heal, "
          "SIGSTOP, SIGKILL of a worker and of the head") {
  if (::geteuid() != 0 || sh("ip netns list") != 0) {
    MESSAGE("needs root and iproute2 (ip netns): skipped");
    std::exit(77);
  }
  netns_lab lab{{"h", "w1", "w2"}};
  if (!lab.ok) {
    MESSAGE("cannot create network namespaces and veth links here: skipped");
    std::exit(77);
  }
  // UCX over TCP on the namespaces' eth0 only (the test asserts it below).
  ::setenv("UCX_TLS", "tcp", 1);
  ::setenv("UCX_NET_DEVICES", "eth0", 1);
  // The test's own client node lives in the head's namespace.
  REQUIRE_MESSAGE(lab.enter(0), "setns: " << std::strerror(errno));

  membership_config mc;
  mc.heartbeat_interval = 200ms;
  mc.acceptable_pause = 600ms;
  mc.suspect_timeout = 4s;
  mc.probe_timeout = 500ms;
  mc.first_heartbeat_estimate = 200ms;
  auto bound = std::chrono::duration_cast<std::chrono::milliseconds>(detection_bound(mc));

  local_cluster_options o;
  o.dir = fs::temp_directory_path() / ("troupe-netns-test-" + std::to_string(::getpid()));
  o.trouped = TROUPE_TROUPED;
  o.exec_helper = TROUPE_EXEC_HELPER;
  o.workers = 2;
  o.gpus_per_node = 2;
  o.api = false;
  o.name_prefix = "n" + std::to_string(::getpid());
  o.extra_toml = "[membership]\nheartbeat_interval = \"200ms\"\n"
                 "acceptable_pause = \"600ms\"\nsuspect_timeout = \"4s\"\n"
                 "probe_timeout = \"500ms\"\nfirst_heartbeat_estimate = \"200ms\"\n";
  for (size_t i = 0; i < lab.hosts.size(); ++i)
    o.hosts.push_back({lab.addrs[i], {"ip", "netns", "exec", lab.hosts[i]}});
  cluster_guard guard{o.dir, {}};
  auto c = start_local_cluster(o);
  if (!c.ok()) FAIL(c.err().to_string());
  REQUIRE(c->nodes.size() == 3);
  for (size_t i = 0; i < 3; ++i)
    CHECK(c->nodes[i].address.rfind(lab.addrs[i] + ":", 0) == 0);

  cluster_test_client cl{*c, "netns-test-client"};
  std::map<std::string, uint64_t> incarnation;
  for (const auto& n : c->nodes) {
    auto [m, took] = cl.wait_state(n.name, "up", 20s);
    REQUIRE_MESSAGE(took.count() >= 0, n.name << " never came up");
    CHECK(m["inventory"]["gpus"].size() == 2);
    incarnation[n.name] = m["incarnation"].get<uint64_t>();
  }
  // The head's connections to the workers are TCP over the veth links.
  for (size_t i = 1; i < 3; ++i) {
    auto [m, took] = cl.wait_member(c->nodes[i].name, tcp_only, 10s);
    CHECK_MESSAGE(took.count() >= 0, c->nodes[i].name << ": lanes are not TCP only: "
                                                      << cl.member(c->nodes[i].name));
  }

  // A job of two replicas with two GPUs each: two of the three hosts.
  auto spec = json{{"name", "netns"},
                   {"command", "echo replica=$TROUPE_REPLICA; exec sleep 600"},
                   {"replicas", 2},
                   {"resources", {{"gpus", 2}}},
                   {"restart", {{"policy", "on-failure"}, {"max_restarts", 2}}},
                   {"idempotency_key", "netns-1"}};
  auto sub = cl.call(jm_submit_atom::value, std::string{"acme"}, spec.dump());
  REQUIRE_MESSAGE(sub.contains("job"), sub.dump());
  auto id = sub["job"]["id"].get<std::string>();
  auto j = cl.wait_job(id, all_running, 30s, "two running replicas");
  REQUIRE(all_running(j));

  // The replica on a worker (there is at least one: two replicas, one head).
  auto replica_on = [&](const json& d, const std::string& node) {
    for (const auto& r : d["replicas"])
      if (r["node"] == node) return r["index"].get<int>();
    return -1;
  };
  size_t cut = 0;
  for (size_t i = 1; i < 3 && cut == 0; ++i)
    if (replica_on(j, c->nodes[i].name) >= 0) cut = i;
  REQUIRE(cut != 0);
  const auto& wcut = c->nodes[cut];
  int cut_replica = replica_on(j, wcut.name);
  int stale_pid = j["replicas"][cut_replica]["pid"].get<int>();

  // Cut the link: suspect, then down within the bound; the replica moves.
  auto t_cut = std::chrono::steady_clock::now();
  REQUIRE(lab.set_link(cut, false));
  auto [sus, sus_ms] = cl.wait_member(
      wcut.name,
      [](const json& m) { return m["state"] == "suspect" || m["state"] == "down"; },
      std::chrono::duration_cast<std::chrono::seconds>(bound) + 5s);
  REQUIRE_MESSAGE(sus_ms.count() >= 0, "a cut-off worker was never suspected");
  auto [down, down_ms] = cl.wait_state(wcut.name, "down", 30s);
  REQUIRE_MESSAGE(down_ms.count() >= 0, "a cut-off worker was never declared down");
  auto cut_to_down = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t_cut);
  MESSAGE("link cut -> down: " << cut_to_down.count() << " ms (" << down["reason"]
                               << "), bound " << bound.count() << " ms");
  CHECK(cut_to_down <= bound + 1s); // + the client's polling and request time
  CHECK((down["reason"] == "probes_failed" || down["reason"] == "suspect_timeout" ||
         down["reason"] == "transport_error"));
  for (size_t i = 0; i < 3; ++i)
    if (i != cut) CHECK(cl.member(c->nodes[i].name)["state"] == "up");
  j = cl.wait_job(
      id,
      [&](const json& d) {
        return all_running(d) && d["replicas"][cut_replica]["node"] != wcut.name;
      },
      30s, "the cut-off worker's replica running elsewhere");
  CHECK(alive(stale_pid)); // its host is only unreachable

  // Heal: the worker rejoins as a new incarnation and stops its stale replica.
  REQUIRE(lab.set_link(cut, true));
  auto [back, back_ms] = cl.wait_member(
      wcut.name,
      [&](const json& m) {
        return m["state"] == "up" &&
               m["incarnation"].get<uint64_t>() > incarnation[wcut.name];
      },
      40s);
  REQUIRE_MESSAGE(back_ms.count() >= 0,
                  "the healed worker did not rejoin: " << cl.member(wcut.name));
  MESSAGE("heal -> up again: " << back_ms.count() << " ms, incarnation "
                               << incarnation[wcut.name] << " -> "
                               << back["incarnation"]);
  incarnation[wcut.name] = back["incarnation"].get<uint64_t>();
  for (int i = 0; i < 200 && alive(stale_pid); ++i)
    std::this_thread::sleep_for(100ms);
  CHECK_MESSAGE(!alive(stale_pid), "the stale replica outlived its node's rejoin");
  j = cl.job(id);
  CHECK(all_running(j));

  // SIGSTOP a worker with a replica: its connection stays open; suspect,
  // then down within the bound; its replica moves. SIGCONT: it rejoins.
  size_t stop = 0;
  for (size_t i = 1; i < 3 && stop == 0; ++i)
    if (replica_on(j, c->nodes[i].name) >= 0) stop = i;
  if (stop == 0) stop = cut == 1 ? 2 : 1; // both replicas elsewhere: any worker
  const auto& wstop = c->nodes[stop];
  int stop_replica = replica_on(j, wstop.name);
  auto t_stop = std::chrono::steady_clock::now();
  ::kill(wstop.pid, SIGSTOP);
  guard.stopped.push_back(wstop.pid);
  auto [stopped, stop_ms] = cl.wait_state(wstop.name, "down", 30s);
  REQUIRE_MESSAGE(stop_ms.count() >= 0, "a stopped worker was never declared down");
  auto stop_to_down = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t_stop);
  MESSAGE("SIGSTOP -> down: " << stop_to_down.count() << " ms (" << stopped["reason"]
                              << ")");
  CHECK(stop_to_down <= bound + 1s);
  if (stop_replica >= 0)
    j = cl.wait_job(
        id,
        [&](const json& d) {
          return all_running(d) && d["replicas"][stop_replica]["node"] != wstop.name;
        },
        30s, "the stopped worker's replica running elsewhere");
  ::kill(wstop.pid, SIGCONT);
  auto [woke, woke_ms] = cl.wait_member(
      wstop.name,
      [&](const json& m) {
        return m["state"] == "up" &&
               m["incarnation"].get<uint64_t>() > incarnation[wstop.name];
      },
      40s);
  CHECK_MESSAGE(woke_ms.count() >= 0, "the woken worker did not rejoin");

  // SIGKILL a worker that runs a replica: down by the transport error, the
  // replica restarted elsewhere (the two other hosts have room for both).
  j = cl.wait_job(id, all_running, 30s, "all running before the kill");
  size_t kill_i = 0;
  for (size_t i = 1; i < 3 && kill_i == 0; ++i)
    if (replica_on(j, c->nodes[i].name) >= 0) kill_i = i;
  if (kill_i != 0) {
    const auto& wkill = c->nodes[kill_i];
    int kill_replica = replica_on(j, wkill.name);
    ::kill(wkill.pid, SIGKILL);
    auto [killed, kill_ms] = cl.wait_state(wkill.name, "down", 20s);
    REQUIRE_MESSAGE(kill_ms.count() >= 0, "a killed worker was never declared down");
    MESSAGE("SIGKILL -> down: " << kill_ms.count() << " ms (" << killed["reason"] << ")");
    j = cl.wait_job(
        id,
        [&](const json& d) {
          return all_running(d) && d["replicas"][kill_replica]["node"] != wkill.name;
        },
        30s, "the killed worker's replica running elsewhere");
  } else {
    FAIL_CHECK("no replica on a worker to kill: " << j.dump());
  }

  // SIGKILL the head and start it again in its namespace: the job is still
  // there, the workers' replicas are the same processes.
  std::map<int, int> pids_before;
  for (auto& r : j["replicas"])
    if (r["node"] != c->head().name)
      pids_before[r["index"].get<int>()] = r["pid"].get<int>();
  ::kill(c->head().pid, SIGKILL);
  std::this_thread::sleep_for(300ms);
  auto r = respawn_local_node(*c, c->head().name, o.trouped, 30s);
  if (!r.ok()) FAIL(r.err().to_string());
  cl.connect();
  j = cl.wait_job(id, all_running, 40s, "all running after the head restart");
  for (auto& rep : j["replicas"]) {
    int i = rep["index"].get<int>();
    if (!pids_before.contains(i)) continue;
    CHECK(rep["pid"] == pids_before[i]); // nothing duplicated
    CHECK(alive(pids_before[i]));
  }
  auto listed = cl.call(jm_list_atom::value, std::string{"acme"}, false, uint32_t{10},
                        std::string{});
  CHECK(listed["jobs"].size() == 1); // nothing lost, nothing added
  cl.call(jm_cancel_atom::value, std::string{"acme"}, false, id);
}
