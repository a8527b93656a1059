// A local cluster of trouped processes on loopback (a head and three
// workers, simulated GPUs): every node joins with its resources; a worker
// killed with SIGKILL is down by the transport error; a worker stopped with
// SIGSTOP (its connection stays open) is suspect, then down because the
// other workers' probes fail; a worker sent SIGTERM leaves gracefully.
// Processes are cleaned up by pid whatever happens.

#include "cluster_test_client.hpp"

#include <csignal>
#include <doctest/doctest.h>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace troupe::actors;
using namespace troupe::actors::testing;
namespace fs = std::filesystem;

TEST_CASE("a local cluster of trouped processes: join, SIGKILL, SIGSTOP, SIGTERM") {
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  if (const char* tls = std::getenv("TROUPE_TEST_UCX_TLS")) ::setenv("UCX_TLS", tls, 1);
  local_cluster_options o;
  o.dir =
      fs::temp_directory_path() / ("troupe-cluster-test-" + std::to_string(::getpid()));
  o.trouped = TROUPE_TROUPED;
  o.workers = 3;
  o.gpus_per_node = 8;
  o.name_prefix = "t" + std::to_string(::getpid());
  o.extra_toml = "[membership]\nheartbeat_interval = \"200ms\"\n"
                 "acceptable_pause = \"600ms\"\nsuspect_timeout = \"5s\"\n"
                 "probe_timeout = \"500ms\"\nfirst_heartbeat_estimate = \"200ms\"\n";
  cluster_guard guard{o.dir, {}};
  auto c = start_local_cluster(o);
  REQUIRE_MESSAGE(c.ok(), c.err().to_string());
  REQUIRE(c->nodes.size() == 4);

  cluster_test_client cl{*c, "cluster-test-client", false};
  for (const auto& n : c->nodes) {
    auto [m, took] = cl.wait_state(n.name, "up", 20s);
    REQUIRE_MESSAGE(took.count() >= 0, n.name << " never came up");
    CHECK(m["inventory"]["gpus"].size() == 8);
  }
  const auto& w1 = c->nodes[1];
  const auto& w2 = c->nodes[2];
  const auto& w3 = c->nodes[3];

  // SIGKILL: the head's connection to it breaks.
  ::kill(w1.pid, SIGKILL);
  auto [killed, kill_ms] = cl.wait_state(w1.name, "down", 15s);
  REQUIRE_MESSAGE(kill_ms.count() >= 0, "a killed worker was never declared down");
  CHECK(killed["reason"] == "transport_error");
  MESSAGE("SIGKILL -> down: " << kill_ms.count() << " ms");

  // SIGSTOP: the connection stays open; suspect, then the other worker's
  // probe fails (well before the 5 s suspect timeout).
  std::this_thread::sleep_for(1s); // the mesh between w2 and w3
  ::kill(w2.pid, SIGSTOP);
  guard.stopped.push_back(w2.pid);
  auto [stopped, stop_ms] = cl.wait_state(w2.name, "down", 20s);
  REQUIRE_MESSAGE(stop_ms.count() >= 0, "a stopped worker was never declared down");
  CHECK((stopped["reason"] == "probes_failed" || stopped["reason"] == "suspect_timeout"));
  MESSAGE("SIGSTOP -> down: " << stop_ms.count() << " ms, " << stopped["reason"]);
  for (const auto& m : cl.members())
    if (m["node"] == w3.name) CHECK(m["state"] == "up"); // nobody else went down

  // SIGTERM: a graceful leave.
  ::kill(w3.pid, SIGTERM);
  auto [left, leave_ms] = cl.wait_state(w3.name, "left", 15s);
  CHECK_MESSAGE(leave_ms.count() >= 0, "a worker sent SIGTERM did not leave");
}
