// Jobs on a local cluster of trouped processes (a head and three workers on
// loopback, simulated GPUs): a 3-replica job runs one replica per worker
// with its GPUs in CUDA_VISIBLE_DEVICES and its output in per-replica logs;
// a worker killed with SIGKILL has its replica restarted elsewhere; cancel
// stops everything; the head killed with SIGKILL and restarted loses no job,
// duplicates no replica, and a worker that comes back after being declared
// down stops the replica that was moved away from it (fencing). Processes
// are cleaned up by pid whatever happens.

#include "cluster_test_client.hpp"

#include <csignal>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace troupe::actors;
using namespace troupe::actors::testing;
namespace fs = std::filesystem;
using json = nlohmann::json;

TEST_CASE("jobs on a local cluster: placement, logs, restart elsewhere, cancel, head "
          "restart and fencing") {
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  ::setenv("UCX_TLS", "tcp", 1); // fast, predictable connection loss
  local_cluster_options o;
  o.dir = fs::temp_directory_path() / ("troupe-jobs-test-" + std::to_string(::getpid()));
  o.trouped = TROUPE_TROUPED;
  o.workers = 3;
  o.gpus_per_node = 2;
  o.name_prefix = "j" + std::to_string(::getpid());
  o.extra_toml = "[membership]\nheartbeat_interval = \"200ms\"\n"
                 "acceptable_pause = \"600ms\"\nsuspect_timeout = \"4s\"\n"
                 "probe_timeout = \"500ms\"\nfirst_heartbeat_estimate = \"200ms\"\n";
  o.exec_helper = TROUPE_EXEC_HELPER;
  cluster_guard guard{o.dir, {}};
  auto c = start_local_cluster(o);
  REQUIRE_MESSAGE(c.ok(), c.err().to_string());
  cluster_test_client cl{*c, "jobs-test-client"};
  for (const auto& n : c->nodes) {
    bool up = false;
    for (int i = 0; i < 200 && !up; ++i) {
      for (auto& m : cl.members())
        up |= m["node"] == n.name && m["state"] == "up";
      if (!up) std::this_thread::sleep_for(100ms);
    }
    REQUIRE_MESSAGE(up, n.name << " never came up");
  }

  // A job of three replicas, two GPUs each: one per node with GPUs left.
  auto spec = json{{"name", "echo-gpus"},
                   {"command", "echo replica=$TROUPE_REPLICA gpus=$CUDA_VISIBLE_DEVICES; "
                               "exec sleep 600"},
                   {"replicas", 3},
                   {"resources", {{"gpus", 2}}},
                   {"restart", {{"policy", "on-failure"}, {"max_restarts", 2}}},
                   {"idempotency_key", "first"}};
  auto sub = cl.call(jm_submit_atom::value, std::string{"acme"}, spec.dump());
  REQUIRE_MESSAGE(sub.contains("job"), sub.dump());
  CHECK(sub["created"] == true);
  auto id = sub["job"]["id"].get<std::string>();
  auto again = cl.call(jm_submit_atom::value, std::string{"acme"}, spec.dump());
  CHECK(again["created"] == false);
  CHECK(again["job"]["id"] == id);
  auto j = cl.wait_job(id, all_running, 30s, "three running replicas");
  std::set<std::string> nodes;
  for (auto& r : j["replicas"]) {
    nodes.insert(r["node"].get<std::string>());
    CHECK(r["gpus"].size() == 2);
    CHECK(alive(r["pid"].get<int>()));
  }
  CHECK(nodes.size() == 3); // 2 GPUs per node: one replica each
  // Another tenant sees nothing of it.
  auto other = cl.call(jm_get_atom::value, std::string{"mallory"}, false, id);
  CHECK(other["error"]["code"] == "not_found");
  auto listed = cl.call(jm_list_atom::value, std::string{"mallory"}, false, uint32_t{10},
                        std::string{});
  CHECK(listed["jobs"].empty());

  // Logs: what replica 0 printed, with its GPUs.
  std::string out;
  for (int i = 0; i < 50 && out.empty(); ++i) {
    auto chunk = cl.call(jm_logs_atom::value, std::string{"acme"}, false, id, uint32_t{0},
                         uint8_t{0}, uint64_t{0}, uint32_t{4096});
    REQUIRE_MESSAGE(chunk.contains("data"), chunk.dump());
    out = chunk["data"].get<std::string>();
    CHECK(chunk["finished"] == false);
    if (out.empty()) std::this_thread::sleep_for(100ms);
  }
  CHECK(out.rfind("replica=0 gpus=", 0) == 0);

  // SIGKILL the worker of replica 1: it is placed again on the one node
  // with free GPUs (the head's), without counting as a restart.
  auto victim = j["replicas"][1]["node"].get<std::string>();
  int victim_replica_pid = j["replicas"][1]["pid"].get<int>();
  const local_node* vnode = nullptr;
  for (auto& n : c->nodes)
    if (n.name == victim) vnode = &n;
  REQUIRE(vnode != nullptr);
  ::kill(vnode->pid, SIGKILL);
  j = cl.wait_job(
      id,
      [&](const json& d) { return all_running(d) && d["replicas"][1]["node"] != victim; },
      30s, "replica 1 running elsewhere");
  CHECK(j["replicas"][1]["restarts"] == 0);
  // Its old process died with its node (troupe-exec's parent-death signal).
  for (int i = 0; i < 50 && alive(victim_replica_pid); ++i)
    std::this_thread::sleep_for(100ms);
  CHECK_FALSE(alive(victim_replica_pid));

  // The head is killed and restarted: the job is still there, running,
  // with the same processes (no duplicates).
  std::map<int, int> pids_before;
  for (auto& r : j["replicas"])
    pids_before[r["index"].get<int>()] = r["pid"].get<int>();
  ::kill(c->head().pid, SIGKILL);
  std::this_thread::sleep_for(300ms);
  // The head's replica died with it; the workers' replicas keep running.
  {
    auto r = respawn_local_node(*c, c->head().name, o.trouped, 30s);
    if (!r.ok())
      std::system(("ss -tlnpa | grep " + c->head().address.substr(10)).c_str());
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
  }
  cl.connect();
  j = cl.wait_job(id, all_running, 40s, "all running after the head restart");
  int on_workers = 0;
  for (auto& r : j["replicas"]) {
    int i = r["index"].get<int>();
    if (r["node"] == c->head().name) continue; // died with the head, started again
    ++on_workers;
    CHECK(r["pid"] == pids_before[i]); // the same process: nothing duplicated
    CHECK(alive(pids_before[i]));
  }
  CHECK(on_workers >= 2);

  // The killed worker comes back as a new incarnation: it runs nothing.
  REQUIRE(respawn_local_node(*c, victim, o.trouped, 30s).ok());

  // Fencing: a worker stopped with SIGSTOP (its replica keeps running) is
  // declared down and its replica moves; when it wakes up it rejoins and
  // is told to stop the replica it still runs.
  std::string sleeper;
  int sleeper_replica = -1, stale_pid = 0;
  for (auto& r : j["replicas"])
    if (r["node"] != c->head().name && r["node"] != victim) {
      sleeper = r["node"].get<std::string>();
      sleeper_replica = r["index"].get<int>();
      stale_pid = r["pid"].get<int>();
    }
  REQUIRE(sleeper_replica >= 0);
  pid_t sleeper_pid = 0;
  for (auto& n : c->nodes)
    if (n.name == sleeper) sleeper_pid = n.pid;
  ::kill(sleeper_pid, SIGSTOP);
  j = cl.wait_job(
      id,
      [&](const json& d) {
        auto& r = d["replicas"][sleeper_replica];
        return r["state"] == "running" && r["node"] != sleeper;
      },
      40s, "the stopped worker's replica running elsewhere");
  CHECK(alive(stale_pid)); // still there: its node is only stopped
  ::kill(sleeper_pid, SIGCONT);
  for (int i = 0; i < 200 && alive(stale_pid); ++i)
    std::this_thread::sleep_for(100ms);
  CHECK_MESSAGE(!alive(stale_pid),
                "the stale replica was not stopped after its node came back");
  j = cl.job(id);
  CHECK(all_running(j));

  // Cancel: every replica stopped, the job cancelled.
  auto cancelled = cl.call(jm_cancel_atom::value, std::string{"acme"}, false, id);
  CHECK(cancelled["job"]["state"] == "cancelled");
  j = cl.job(id);
  for (int i = 0; i < 100; ++i) {
    bool any = false;
    for (auto& r : j["replicas"])
      any |= alive(r["pid"].get<int>());
    if (!any) break;
    std::this_thread::sleep_for(100ms);
  }
  for (auto& r : j["replicas"]) {
    CHECK(r["state"] == "cancelled");
    CHECK_FALSE(alive(r["pid"].get<int>()));
  }

  // A job that ends by itself succeeds; one whose command fails, fails.
  auto ok = cl.call(jm_submit_atom::value, std::string{"acme"},
                    json{{"name", "ok"}, {"command", {"true"}}}.dump());
  auto bad = cl.call(jm_submit_atom::value, std::string{"acme"},
                     json{{"name", "bad"}, {"command", "exit 3"}}.dump());
  auto okid = ok["job"]["id"].get<std::string>();
  auto badid = bad["job"]["id"].get<std::string>();
  cl.wait_job(
      okid, [](const json& d) { return d["state"] == "succeeded"; }, 30s,
      "the job to succeed");
  auto b = cl.wait_job(
      badid, [](const json& d) { return d["state"] == "failed"; }, 30s,
      "the job to fail");
  CHECK(b["reason"].get<std::string>().find("exited with status 3") != std::string::npos);
  auto all = cl.call(jm_list_atom::value, std::string{"acme"}, false, uint32_t{2},
                     std::string{});
  REQUIRE(all["jobs"].size() == 2);
  CHECK(all["jobs"][0]["id"] == badid); // newest first
  CHECK(all["next"] == okid);
  auto page2 = cl.call(jm_list_atom::value, std::string{"acme"}, false, uint32_t{2},
                       all["next"].get<std::string>());
  REQUIRE(page2["jobs"].size() == 1);
  CHECK(page2["jobs"][0]["id"] == id);
  // A job that no node could ever host is refused at submit, naming the field.
  auto never =
      cl.call(jm_submit_atom::value, std::string{"acme"},
              json{{"name", "huge"}, {"command", {"true"}}, {"resources", {{"gpus", 64}}}}
                  .dump());
  REQUIRE(never.contains("error"));
  CHECK(never["error"]["code"] == "invalid_argument");
  CHECK(never["error"]["message"].get<std::string>().find(
            "the largest node of the cluster has 2") != std::string::npos);
  // A job that does not fit now (every GPU taken) waits, and says why.
  auto hog = cl.call(jm_submit_atom::value, std::string{"acme"},
                     json{{"name", "hog"},
                          {"command", {"sleep", "600"}},
                          {"replicas", 4},
                          {"resources", {{"gpus", 2}}}}
                         .dump());
  auto hogid = hog["job"]["id"].get<std::string>();
  cl.wait_job(hogid, all_running, 30s, "the hog running");
  auto big = cl.call(
      jm_submit_atom::value, std::string{"acme"},
      json{{"name", "big"}, {"command", {"true"}}, {"resources", {{"gpus", 2}}}}.dump());
  auto bigid = big["job"]["id"].get<std::string>();
  auto bigdoc = cl.wait_job(
      bigid, [](const json& d) { return d.contains("why_pending"); }, 20s,
      "a reason to wait");
  CHECK(bigdoc["state"] == "pending");
  CHECK(bigdoc["why_pending"].get<std::string>().rfind("pending: ", 0) == 0);
  cl.call(jm_cancel_atom::value, std::string{"acme"}, false, bigid);
  cl.call(jm_cancel_atom::value, std::string{"acme"}, false, hogid);
  // Hostile specs are refused with the field named, and nothing is added.
  auto hostile = cl.call(jm_submit_atom::value, std::string{"acme"},
                         std::string{R"({"name":"x","command":[],"replicas":0})"});
  REQUIRE(hostile.contains("error"));
  CHECK(hostile["error"]["code"] == "invalid_argument");
  auto after = cl.call(jm_list_atom::value, std::string{"acme"}, false, uint32_t{100},
                       std::string{});
  CHECK(after["jobs"].size() == 5);
}
