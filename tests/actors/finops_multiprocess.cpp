// FinOps on a local cluster of trouped processes (a head and two workers on
// loopback, two simulated GPUs each): the node agents sample their GPUs
// (the simulated source's hook file says 80%) and ship the samples to the
// head's FinOps actor, whose ledger charges the running replicas with the
// used share; a spot preemption notice for the worker of a replica makes
// that replica checkpoint (its hook touches TROUPE_CHECKPOINT_DONE) and
// move to the free node, and the notice is in the audit log; once the GPUs
// go idle (the hook file says 0%) the job is notified, then reclaimed: its
// replicas checkpoint and it ends. Processes are cleaned up by pid whatever
// happens.

#include "cluster_test_client.hpp"
#include "troupe/actors/finops_actor.hpp"
#include "troupe/actors/job_manager.hpp"
#include "troupe/actors/local_cluster.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace troupe::actors;
using namespace troupe::actors::testing;
namespace fs = std::filesystem;
using json = nlohmann::json;

TEST_CASE("finops on a local cluster: telemetry reaches the head's ledger, a spot "
          "notice checkpoints a worker's replica and moves it, an idle job is "
          "reclaimed") {
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  ::setenv("UCX_TLS", "tcp", 1);
  local_cluster_options o;
  o.dir =
      fs::temp_directory_path() / ("troupe-finops-test-" + std::to_string(::getpid()));
  fs::create_directories(o.dir);
  auto hook = o.dir / "gpu-utilisation";
  std::ofstream{hook} << "0 80\n1 80\n";
  o.trouped = TROUPE_TROUPED;
  o.workers = 2;
  o.gpus_per_node = 2;
  o.name_prefix = "f" + std::to_string(::getpid());
  o.extra_toml = "[membership]\nheartbeat_interval = \"200ms\"\n"
                 "acceptable_pause = \"600ms\"\nsuspect_timeout = \"4s\"\n"
                 "probe_timeout = \"500ms\"\nfirst_heartbeat_estimate = \"200ms\"\n"
                 "[telemetry]\nsample_interval = \"300ms\"\nsimulated_file = \"" +
                 hook.string() +
                 "\"\n"
                 "[finops]\ndry_run = false\n"
                 "[finops.training]\nwindow = \"1s\"\nwarm_up = \"0s\"\ngrace = \"1s\"\n";
  o.exec_helper = TROUPE_EXEC_HELPER;
  cluster_guard guard{o.dir, {}};
  auto c = start_local_cluster(o);
  REQUIRE_MESSAGE(c.ok(), c.err().to_string());

  troupe::transport::transport_config tc;
  tc.secret = c->secret;
  auto base = troupe::default_config();
  base.log.level = troupe::log_level::off;
  std::unique_ptr<cluster_client> cl;
  for (int attempt = 0; attempt < 50 && !cl; ++attempt) {
    auto r = cluster_client::connect("finops-test-client-" + std::to_string(::getpid()) +
                                         "-" + std::to_string(attempt),
                                     tc, c->head().name, c->head().address, base);
    if (r.ok() && (*r)->jobs)
      cl = std::move(*r);
    else
      std::this_thread::sleep_for(200ms);
  }
  REQUIRE_MESSAGE(cl, "cannot reach the head's job manager");
  auto fo = cl->fabric->lookup(c->head().name, finops_actor_name, 5s);
  REQUIRE_MESSAGE(fo.ok(), fo.err().to_string());
  auto call = [&](const troupe::actor_ref& to, auto... xs) {
    auto r = cl->host->request<std::string>(to, 10s, xs...);
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
    return json::parse(*r);
  };
  for (const auto& n : c->nodes) {
    bool up = false;
    for (int i = 0; i < 200 && !up; ++i) {
      auto r = cl->host->request<std::string>(cl->membership, 5s, members_atom::value);
      REQUIRE(r.ok());
      for (auto& m : json::parse(*r))
        up |= m["node"] == n.name && m["state"] == "up";
      if (!up) std::this_thread::sleep_for(100ms);
    }
    REQUIRE_MESSAGE(up, n.name << " never came up");
  }

  // Two replicas of two GPUs each: two of the three nodes, one left free.
  // SIGUSR1 makes a replica confirm a checkpoint.
  auto spec = json{{"name", "spot-train"},
                   {"command", "trap 'touch \"$TROUPE_CHECKPOINT_DONE\"' USR1; "
                               "while true; do sleep 0.1; done"},
                   {"replicas", 2},
                   {"class", "training"},
                   {"spot_tolerant", true},
                   {"resources", {{"gpus", 2}}},
                   {"checkpoint", {{"signal", "SIGUSR1"}, {"timeout", "5s"}}},
                   {"restart", {{"policy", "on-failure"}, {"max_restarts", 3}}}};
  auto sub = call(cl->jobs, jm_submit_atom::value, std::string{"acme"}, spec.dump());
  REQUIRE_MESSAGE(sub.contains("job"), sub.dump());
  auto id = sub["job"]["id"].get<std::string>();
  auto job = [&] {
    return call(cl->jobs, jm_get_atom::value, std::string{}, true, id)["job"];
  };
  json j;
  for (int i = 0; i < 300; ++i) {
    j = job();
    if (all_running(j)) break;
    std::this_thread::sleep_for(100ms);
  }
  REQUIRE_MESSAGE(all_running(j), j.dump());

  // The FinOps actor follows both launches and charges them, with the used
  // share the agents' samples report.
  json report;
  for (int i = 0; i < 100; ++i) {
    auto t = call(*fo, fo_tick_atom::value, now_ms());
    report = call(*fo, fo_report_atom::value, std::string{R"({"group": ["tenant"]})"});
    if (t.value("launches", 0) == 2 && report["total"]["used_gpu_ms"].get<int64_t>() > 0)
      break;
    std::this_thread::sleep_for(200ms);
  }
  REQUIRE_MESSAGE(report["rows"].size() == 1, report.dump());
  CHECK(report["rows"][0]["tenant"] == "acme");
  CHECK(report["total"]["gpu_ms"].get<int64_t>() > 0);
  CHECK(report["total"]["used_gpu_ms"].get<int64_t>() > 0);

  // A spot notice for the worker of a replica (not the head).
  int moved = -1;
  std::string victim;
  for (int r = 0; r < 2; ++r)
    if (j["replicas"][r]["node"] != c->head().name) {
      moved = r;
      victim = j["replicas"][r]["node"].get<std::string>();
    }
  REQUIRE(moved >= 0);
  auto stays = j["replicas"][1 - moved]["node"];
  json notice = {{"node", victim}, {"deadline_ms", now_ms() + 30'000}};
  auto plan = call(*fo, fo_notice_atom::value, notice.dump());
  REQUIRE_MESSAGE(plan["steps"].size() == 1, plan.dump());
  CHECK(plan["steps"][0]["action"] == "checkpoint_then_reschedule");
  CHECK(plan["lost_gpu_ms"] == 0);
  CHECK(plan["jobs"]["checkpointing"] == 1);

  // It checkpoints on its node, then runs elsewhere.
  for (int i = 0; i < 300; ++i) {
    j = job();
    if (all_running(j) && j["replicas"][moved]["node"] != victim) break;
    std::this_thread::sleep_for(100ms);
  }
  CHECK_MESSAGE(all_running(j), j.dump());
  CHECK(j["replicas"][moved]["node"] != victim);
  CHECK(j["replicas"][1 - moved]["node"] == stays); // only the victim's replica moved
  auto done = o.dir / (victim + ".data") / "jobs" / id /
              ("replica-" + std::to_string(moved) + ".checkpointed");
  CHECK_MESSAGE(fs::exists(done), done.string());
  auto audit = call(*fo, fo_audit_atom::value, uint64_t{0}, uint32_t{100});
  bool spot = false;
  for (auto& r : audit["records"])
    spot |= r["kind"] == "spot" && r["node"] == victim;
  CHECK_MESSAGE(spot, audit.dump());

  // The GPUs go idle: after the window the owner is notified, after the
  // grace the job is reclaimed: each replica checkpoints, then the job ends
  // and its GPUs go back to placement.
  std::ofstream{hook} << "0 0\n1 0\n";
  for (int i = 0; i < 300; ++i) {
    j = job();
    if (j["state"] != "running") break;
    std::this_thread::sleep_for(100ms);
  }
  CHECK_MESSAGE(j["state"] == "failed", j.dump());
  CHECK_MESSAGE(j["reason"].get<std::string>().find("reclaimed") != std::string::npos,
                j.dump());
  for (int r = 0; r < 2; ++r) {
    auto f = o.dir / (j["replicas"][r]["node"].get<std::string>() + ".data") / "jobs" /
             id / ("replica-" + std::to_string(r) + ".checkpointed");
    CHECK_MESSAGE(fs::exists(f), f.string());
  }
  std::vector<std::string> idle;
  for (int i = 0; i < 50; ++i) {
    idle.clear();
    audit = call(*fo, fo_audit_atom::value, uint64_t{0}, uint32_t{100});
    for (auto& r : audit["records"])
      if (r["kind"] == "idle")
        idle.push_back(r["action"].get<std::string>() + ":" +
                       r["outcome"].get<std::string>());
    if (!idle.empty() && idle.back() != "checkpoint_and_evict:requested") break;
    std::this_thread::sleep_for(100ms);
  }
  const std::vector<std::string> want{"notify_owner:owner notified (log)",
                                      "checkpoint_and_evict:checkpointing"};
  CHECK_MESSAGE(idle == want, audit.dump());
}
