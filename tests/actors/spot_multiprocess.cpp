// The spot policy on a local cluster of trouped processes: a head (4
// simulated GPUs, on-demand) and one worker (4 GPUs, declared spot
// capacity), [finops] spot_max_share 0.4 and spot_checkpoint_interval 1m.
// The head's job manager asks the FinOps actor at submit whether a spot
// tolerant job may use spot:
// - a job within the tenant's share and with a short enough checkpoint
//   interval goes on the spot worker (the head is full), and is asked to
//   checkpoint every interval (its hook counts the SIGUSR1s it gets);
// - a job over the share cap, and one whose interval is too long, are
//   placed as not spot tolerant: they wait while only spot GPUs are free,
//   with the policy's reason in their documents, and the capped one runs on
//   the head once on-demand GPUs free up;
// - a spot notice too short for the running job's checkpoint, from the cloud
//   (a fake Azure Scheduled Events service on loopback that every node's
//   agent polls, with an event naming the worker's VM), loses only the work
//   since its last periodic checkpoint, and the job moves to the head.
// Every answer is in the FinOps audit log. Processes are cleaned up by pid
// whatever happens.

#include "cluster_test_client.hpp"
#include "loopback_http.hpp"
#include "troupe/actors/finops_actor.hpp"

#include <ctime>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <httplib.h>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace troupe::actors;
using namespace troupe::actors::testing;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// A job of one replica on `gpus` GPUs; `interval` set: it checkpoints (its
/// SIGUSR1 hook appends a line to TROUPE_CHECKPOINT_DONE's directory's
/// count file, then confirms).
json job_of(const std::string& name, uint32_t gpus, bool spot_tolerant,
            const std::string& interval = "") {
  json j{{"name", name},
         {"command", "trap 'echo x >> \"$TROUPE_CHECKPOINT_DONE.count\"; "
                     "touch \"$TROUPE_CHECKPOINT_DONE\"' USR1; "
                     "while true; do sleep 0.1; done"},
         {"class", "training"},
         {"spot_tolerant", spot_tolerant},
         {"resources", {{"gpus", gpus}}},
         {"restart", {{"policy", "on-failure"}, {"max_restarts", 3}}}};
  if (!interval.empty())
    j["checkpoint"] = {{"signal", "SIGUSR1"}, {"timeout", "30s"}, {"interval", interval}};
  return j;
}

/// A fake Azure metadata service on a free loopback port: its Scheduled
/// Events document is `events`.
struct fake_azure {
  std::mutex mu; // guards events
  std::string events = R"({"DocumentIncarnation": 1, "Events": []})";
  loopback_http http; // last: stops before the fields its handler uses go
  fake_azure() {
    http.server.Get("/metadata/scheduledevents",
                    [this](const httplib::Request& q, httplib::Response& r) {
                      if (q.get_header_value("Metadata") != "true") {
                        r.status = 400;
                        return;
                      }
                      std::lock_guard lock{mu};
                      r.set_content(events, "application/json");
                    });
    http.start();
  }
};

/// Lines in a file (0 when it does not exist).
int lines(const fs::path& p) {
  std::ifstream in{p};
  int n = 0;
  for (std::string l; std::getline(in, l);)
    ++n;
  return n;
}

} // namespace

TEST_CASE("spot admission on a local cluster: the share cap and the checkpoint interval "
          "keep jobs off spot, periodic checkpoints bound a preemption's loss") {
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  local_cluster_options o;
  o.dir = fs::temp_directory_path() / ("troupe-spot-test-" + std::to_string(::getpid()));
  fs::create_directories(o.dir);
  o.trouped = TROUPE_TROUPED;
  o.exec_helper = TROUPE_EXEC_HELPER;
  o.workers = 1;
  o.gpus_per_node = 4;
  o.price_per_gpu_hour = "3.60";
  o.spot_workers = 1;
  o.spot_price_per_gpu_hour = "1.20";
  o.name_prefix = "s" + std::to_string(::getpid());
  o.api = false;
  // Every node polls the fake Azure metadata service; only the worker's VM
  // gets an event.
  fake_azure azure;
  o.extra_toml = "[finops]\nspot_max_share = 0.4\nspot_checkpoint_interval = \"1m\"\n"
                 "spot_notice_cloud = \"azure\"\nspot_notice_vm = \"{node}\"\n"
                 "spot_notice_endpoint = \"http://127.0.0.1:" +
                 std::to_string(azure.http.port) +
                 "\"\n"
                 "[telemetry]\nsample_interval = \"250ms\"\n";
  cluster_guard guard{o.dir, {}};
  auto c = start_local_cluster(o);
  if (!c.ok()) FAIL(c.err().to_string());
  const auto head = c->head().name;
  const auto worker = c->nodes[1].name;

  cluster_test_client cl{*c, "spot-test-client"};
  for (const auto& n : c->nodes)
    REQUIRE_MESSAGE(cl.wait_state(n.name, "up", 30s).second.count() >= 0,
                    n.name << " never came up");
  auto fo = cl.c->fabric->lookup(head, finops_actor_name, 5s);
  if (!fo.ok()) FAIL(fo.err().to_string());
  auto finops = [&](auto... xs) {
    auto r = cl.c->host->request<std::string>(*fo, 10s, xs...);
    if (!r.ok()) FAIL(r.err().to_string());
    return json::parse(*r);
  };
  auto submit = [&](const json& spec) {
    auto r = cl.call(jm_submit_atom::value, std::string{"acme"}, spec.dump());
    if (!r.contains("job")) FAIL(r.dump());
    return r["job"];
  };
  auto on = [](const json& j) { return j["replicas"][0]["node"].get<std::string>(); };

  // 4 on-demand GPUs of acme's fill the head.
  auto od = submit(job_of("on-demand", 4, false));
  CHECK_FALSE(od.contains("spot")); // not spot tolerant: nothing asked
  auto odj = cl.wait_job(od["id"].get<std::string>(), all_running, 30s,
                         "the on-demand job runs");
  CHECK(on(odj) == head);

  // 2 of 6 GPUs on spot (33%, cap 40%), checkpoints every 2 s: allowed.
  auto ok = submit(job_of("spot-ok", 2, true, "2s"));
  REQUIRE(ok.contains("spot"));
  CHECK(ok["spot"]["allowed"] == true);
  CHECK(ok["spot"]["verdict"] == "allowed");
  const auto ok_id = ok["id"].get<std::string>();
  auto okj = cl.wait_job(ok_id, all_running, 30s, "the spot job runs");
  CHECK(on(okj) == worker);

  // 4 of 8 would be 50%: over the cap. Placed as not spot tolerant, it waits
  // though 2 spot GPUs are free.
  auto capped = submit(job_of("capped", 2, true, "2s"));
  REQUIRE(capped.contains("spot"));
  CHECK(capped["spot"]["allowed"] == false);
  CHECK(capped["spot"]["verdict"] == "share_cap_exceeded");
  CHECK_MESSAGE(capped["spot"]["reason"].get<std::string>().find("4 of 8 GPUs on spot") !=
                    std::string::npos,
                capped.dump());
  const auto capped_id = capped["id"].get<std::string>();
  // An interval longer than the policy's minute: refused too.
  auto slow = submit(job_of("slow", 1, true, "2h"));
  REQUIRE(slow.contains("spot"));
  CHECK(slow["spot"]["verdict"] == "interval_too_long");

  // The spot job is asked to checkpoint every 2 s and confirms each time.
  const auto count =
      o.dir / (worker + ".data") / "jobs" / ok_id / "replica-0.checkpointed.count";
  okj = cl.wait_job(
      ok_id,
      [&](const json& j) {
        return lines(count) >= 2 &&
               !j["replicas"][0]["last_checkpoint"].get<std::string>().empty();
      },
      30s, "two periodic checkpoints");
  CHECK(lines(count) >= 2);
  // Neither refused job went to the free spot GPUs.
  for (const auto& id : {capped_id, slow["id"].get<std::string>()}) {
    auto j = cl.job(id);
    CHECK_MESSAGE(j["state"] == "pending", j.dump());
    CHECK_MESSAGE(j["replicas"][0]["node"] == "", j.dump());
  }
  cl.call(jm_cancel_atom::value, std::string{}, true, slow["id"].get<std::string>());
  // On-demand GPUs free up: the capped job runs there.
  cl.call(jm_cancel_atom::value, std::string{}, true, od["id"].get<std::string>());
  auto cj = cl.wait_job(capped_id, all_running, 30s, "the capped job runs on the head");
  CHECK(on(cj) == head);

  // A notice shorter than the checkpoint's 30 s timeout: the spot job loses
  // the work since its last periodic checkpoint, not since it started.
  auto t = finops(fo_tick_atom::value, now_ms());
  REQUIRE_MESSAGE(t.value("launches", 0) == 2, t.dump());
  int64_t start_ms = 0;
  auto launches = cl.call(jm_allocs_atom::value, uint64_t{0});
  for (auto& l : launches["running"])
    if (l["job"] == ok_id) start_ms = l["started_ms"].get<int64_t>();
  REQUIRE_MESSAGE(start_ms > 0, launches.dump());
  // The notice comes from the cloud: an Azure Scheduled Events document
  // naming the worker's VM, which its node agent polls.
  const auto deadline = (now_ms() + 4000) / 1000 * 1000;
  {
    std::time_t secs = deadline / 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char when[64];
    std::strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    std::lock_guard lock{azure.mu};
    azure.events = json{{"DocumentIncarnation", 2},
                        {"Events",
                         {{{"EventId", "e-1"},
                           {"EventType", "Preempt"},
                           {"ResourceType", "VirtualMachine"},
                           {"Resources", {worker}},
                           {"EventStatus", "Scheduled"},
                           {"NotBefore", when}}}}}
                       .dump();
  }
  json step;
  for (auto t0 = std::chrono::steady_clock::now();
       step.is_null() && std::chrono::steady_clock::now() - t0 < 20s;
       std::this_thread::sleep_for(100ms)) {
    auto audit = finops(fo_audit_atom::value, uint64_t{0}, uint32_t{1000});
    for (auto& r : audit["records"])
      if (r["kind"] == "spot" && r.value("node", "") == worker) step = r;
  }
  REQUIRE_MESSAGE(!step.is_null(), "the cloud's notice never reached the head");
  CHECK(step["deadline_ms"] == deadline);
  CHECK(step["job"] == ok_id);
  CHECK(step["action"] == "lose_work");
  const auto since = step["since_ms"].get<int64_t>();
  CHECK(step["lost_gpu_ms"] == 2 * (deadline - since));
  // The loss counts from a checkpoint at least one interval after the start.
  CHECK_MESSAGE(since >= start_ms + 2000, step.dump());
  // It moves to the head's free GPUs.
  okj = cl.wait_job(
      ok_id, [&](const json& j) { return all_running(j) && on(j) == head; }, 30s,
      "the spot job moves to the head");

  // Every spot answer is audited.
  auto audit = finops(fo_audit_atom::value, uint64_t{0}, uint32_t{1000});
  std::vector<std::string> answers;
  for (auto& r : audit["records"])
    if (r["kind"] == "spot" && r.contains("verdict"))
      answers.push_back(r["job"].get<std::string>() + ":" +
                        r["action"].get<std::string>());
  CHECK(answers == std::vector<std::string>{"spot-ok:spot_allowed", "capped:spot_refused",
                                            "slow:spot_refused"});
}
