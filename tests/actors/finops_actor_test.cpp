// The FinOps actor in one process, against a scripted job manager: idle
// reclaim in order (notify, then reclaim after the grace) through the job
// manager, dry run, each launch's GPU-ms charged exactly once (repeated
// ticks, an ended launch reported again, a restart on the same store), the
// audit log, reports, the spot notice API, and the samples' wire format.

#include "troupe/actors/finops_actor.hpp"
#include "troupe/actors/job_manager.hpp"
#include "troupe/finops/config.hpp"
#include "troupe/finops/telemetry_config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/node.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace troupe::actors;
using json = nlohmann::json;

namespace {

class temp_dir {
public:
  temp_dir() {
    std::string pattern = "/tmp/troupe-finops-actor-test-XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

/// What the scripted job manager reports and was asked.
struct fake_jobs_state {
  std::mutex mu; // guards everything below
  json running = json::array();
  json ended = json::array();
  std::vector<std::tuple<std::string, std::string, std::string>> reclaims;
  std::vector<std::pair<std::string, json>> vacates;
};

caf::behavior fake_jobs(caf::event_based_actor* self,
                        std::shared_ptr<fake_jobs_state> st) {
  return {
      [st](jm_allocs_atom, uint64_t after) {
        std::lock_guard lock{st->mu};
        json ended = json::array();
        uint64_t next = after;
        for (auto& e : st->ended)
          if (e.at("seq").get<uint64_t>() > after) {
            ended.push_back(e);
            next = e.at("seq").get<uint64_t>();
          }
        return json{{"running", st->running}, {"ended", ended}, {"next", next}}.dump();
      },
      [st](jm_reclaim_atom, const std::string& job, const std::string& action,
           const std::string& reason) {
        std::lock_guard lock{st->mu};
        st->reclaims.emplace_back(job, action, reason);
        return json{{"job", job}, {"action", action}, {"state", "evicted"}}.dump();
      },
      [st](jm_vacate_atom, const std::string& node, const std::string& plan) {
        std::lock_guard lock{st->mu};
        st->vacates.emplace_back(node, json::parse(plan));
        return json{{"node", node}, {"checkpointing", 1}, {"moving", false}}.dump();
      },
      [self](troupe::drain_atom) { self->quit(); },
  };
}

json launch(const std::string& job, uint32_t replica, uint64_t generation,
            const std::string& node, std::vector<uint32_t> gpus, int64_t started_ms,
            const std::string& cls = "training", bool checkpoint = false) {
  return {{"job", job},
          {"replica", replica},
          {"generation", generation},
          {"node", node},
          {"gpus", gpus},
          {"started_ms", started_ms},
          {"tenant", "acme"},
          {"labels", {{"team", "vision"}}},
          {"class", cls},
          {"priority", 0},
          {"spot_tolerant", true},
          {"checkpoint", checkpoint},
          {"checkpoint_timeout_ms", checkpoint ? 5000 : 0},
          {"price_micro_usd", 3'600'000}, // 1 micro-USD per GPU-ms
          {"capacity", "spot"}};
}

/// `l` as the job manager reports it once ended.
json ended(json l, uint64_t seq, int64_t ended_ms) {
  l["seq"] = seq;
  l["ended_ms"] = ended_ms;
  return l;
}

/// Ms since the Unix epoch, rounded to a whole second (the tests' time base).
int64_t base_ms() {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return now / 1000 * 1000;
}

troupe::finops::finops_config fast_policy(bool dry_run) {
  auto c = troupe::finops::finops_config_schema().defaults();
  c.finops.dry_run = dry_run;
  c.training.utilisation_threshold = 0.05;
  c.training.window = 2s;
  c.training.warm_up = 0s;
  c.training.grace = 2s;
  return c;
}

/// A node with the scripted job manager and a FinOps actor on `dir`.
struct harness {
  std::unique_ptr<troupe::node> node;
  std::shared_ptr<fake_jobs_state> jobs = std::make_shared<fake_jobs_state>();
  troupe::actor_ref finops;

  harness(const std::string& dir, troupe::finops::finops_config policy) {
    auto cfg = troupe::default_config();
    cfg.node.name = "finops-test-" + std::to_string(::getpid());
    cfg.scheduler.threads = 2;
    cfg.metrics.enabled = false;
    cfg.log.level =
        std::getenv("TROUPE_TEST_LOG") ? troupe::log_level::info : troupe::log_level::off;
    auto n = troupe::node::start(cfg);
    REQUIRE(n.ok());
    node = std::move(*n);
    auto jm = node->adopt(troupe::actor_ref{node->system().spawn(fake_jobs, jobs)});
    finops_actor_config fc;
    fc.store_path = dir + "/finops";
    fc.jobs = jm;
    fc.finops = policy;
    fc.telemetry = troupe::finops::telemetry_config_schema().defaults();
    fc.tick = troupe::duration{0}; // the test drives time
    auto f = start_finops_actor(*node, std::move(fc));
    REQUIRE_MESSAGE(f.ok(), f.err().to_string());
    finops = *f;
  }
  ~harness() {
    finops = troupe::actor_ref{};
    if (node) node->stop();
  }

  json tick(int64_t now_ms) {
    auto r = node->request<std::string>(finops, 10s, fo_tick_atom::value, now_ms);
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
    return json::parse(*r);
  }
  json ask(auto atom, auto... xs) {
    auto r = node->request<std::string>(finops, 10s, atom, xs...);
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
    return json::parse(*r);
  }
  void samples(const std::string& node_name, std::vector<uint32_t> gpus, int64_t at_ms,
               uint32_t util) {
    std::vector<troupe::finops::gpu_sample> s;
    for (auto g : gpus) {
      troupe::finops::gpu_sample x;
      x.node = node_name;
      x.gpu_index = g;
      x.at = troupe::time_point{std::chrono::milliseconds{at_ms}};
      x.utilisation_pct = util;
      s.push_back(x);
    }
    node->tell(finops, fo_samples_atom::value, encode_samples(s));
  }
  json audit() {
    return ask(fo_audit_atom::value, uint64_t{0}, uint32_t{1000})["records"];
  }
  json total() {
    return ask(fo_report_atom::value, std::string{R"({"group": []})"})["total"];
  }
};

/// The audit records' actions, in order.
std::vector<std::string> actions(const json& records) {
  std::vector<std::string> out;
  for (auto& r : records)
    out.push_back(r.at("action").get<std::string>());
  return out;
}

} // namespace

TEST_SUITE("actors.finops_actor") {

  TEST_CASE("an idle training job is notified, then reclaimed through the job manager "
            "after the grace, each step audited with its reason") {
    temp_dir dir;
    harness h{dir.path(), fast_policy(false)};
    auto b = base_ms();
    {
      std::lock_guard lock{h.jobs->mu};
      h.jobs->running.push_back(launch("j-1", 0, 1, "w1", {0, 1}, b));
    }
    h.tick(b); // learns the launch
    for (int s = 1; s <= 3; ++s) {
      h.samples("w1", {0, 1}, b + s * 1000, 1);
      auto t = h.tick(b + s * 1000);
      CHECK(t["jobs_tracked"] == 1);
    }
    // Idle from b+1s to b+3s spans the 2 s window: the owner is told.
    CHECK(actions(h.audit()) == std::vector<std::string>{"notify_owner"});
    {
      std::lock_guard lock{h.jobs->mu};
      CHECK(h.jobs->reclaims.empty());
    }
    h.samples("w1", {0, 1}, b + 4000, 2);
    h.tick(b + 4000);
    CHECK(actions(h.audit()).size() == 1); // still within the grace
    h.samples("w1", {0, 1}, b + 5000, 0);
    auto t = h.tick(b + 5000);
    REQUIRE(t["actions"].size() == 1);
    CHECK(t["actions"][0]["action"] == "checkpoint_and_evict");
    CHECK(t["actions"][0]["job"] == "j-1");
    CHECK(t["actions"][0]["gpus"] == 2);
    CHECK_FALSE(t["actions"][0]["reason"].get<std::string>().empty());
    // The reclaim went to the job manager; its answer becomes the outcome.
    for (int i = 0; i < 100; ++i) {
      auto rec = h.audit();
      if (rec.size() == 2 && rec[1]["outcome"] != "requested") break;
      std::this_thread::sleep_for(20ms);
    }
    auto rec = h.audit();
    CHECK(actions(rec) ==
          std::vector<std::string>{"notify_owner", "checkpoint_and_evict"});
    CHECK(rec[1]["outcome"] == "evicted");
    CHECK(rec[0]["seq"] == 1);
    CHECK(rec[1]["seq"] == 2);
    std::lock_guard lock{h.jobs->mu};
    REQUIRE(h.jobs->reclaims.size() == 1);
    CHECK(std::get<0>(h.jobs->reclaims[0]) == "j-1");
    CHECK(std::get<1>(h.jobs->reclaims[0]) == "checkpoint_and_evict");
  }

  TEST_CASE("a busy sample after the notice cancels the reclaim") {
    temp_dir dir;
    harness h{dir.path(), fast_policy(false)};
    auto b = base_ms();
    {
      std::lock_guard lock{h.jobs->mu};
      h.jobs->running.push_back(launch("j-2", 0, 5, "w1", {3}, b));
    }
    h.tick(b);
    for (int s = 1; s <= 3; ++s) {
      h.samples("w1", {3}, b + s * 1000, 0);
      h.tick(b + s * 1000);
    }
    h.samples("w1", {3}, b + 4000, 90);
    h.tick(b + 4000);
    h.samples("w1", {3}, b + 5000, 90);
    h.tick(b + 6000);
    CHECK(actions(h.audit()) ==
          std::vector<std::string>{"notify_owner", "cancel_reclaim"});
    std::lock_guard lock{h.jobs->mu};
    CHECK(h.jobs->reclaims.empty());
  }

  TEST_CASE("dry run audits what it would reclaim and asks the job manager nothing") {
    temp_dir dir;
    harness h{dir.path(), fast_policy(true)};
    auto b = base_ms();
    {
      std::lock_guard lock{h.jobs->mu};
      h.jobs->running.push_back(launch("j-1", 0, 1, "w1", {0}, b));
    }
    h.tick(b);
    for (int s = 1; s <= 6; ++s) {
      h.samples("w1", {0}, b + s * 1000, 0);
      h.tick(b + s * 1000);
    }
    auto rec = h.audit();
    REQUIRE(actions(rec) ==
            std::vector<std::string>{"notify_owner", "checkpoint_and_evict"});
    CHECK(rec[1]["dry_run"] == true);
    CHECK(rec[1]["outcome"].get<std::string>().find("dry run") == 0);
    CHECK(rec[1]["savings"]["reclaims"] == 1);
    std::this_thread::sleep_for(100ms);
    std::lock_guard lock{h.jobs->mu};
    CHECK(h.jobs->reclaims.empty());
  }

  TEST_CASE("each launch's GPU-ms is charged exactly once, across repeated ticks, a "
            "repeated end and a restart on the same store") {
    temp_dir dir;
    auto b = base_ms();
    auto check_total = [](const json& t) {
      CHECK(t["gpu_ms"] == 2 * 3000 + 1 * 2000);
      CHECK(t["cost_micro_usd"] == 2 * 3000 + 1 * 2000); // 1 micro-USD per GPU-ms
    };
    {
      harness h{dir.path(), fast_policy(true)};
      {
        std::lock_guard lock{h.jobs->mu};
        h.jobs->running.push_back(launch("j-7", 0, 7, "w1", {0, 1}, b));
        h.jobs->running.push_back(launch("j-8", 0, 8, "w2", {0}, b + 1000));
      }
      h.tick(b + 1000);
      h.tick(b + 1000);
      h.samples("w1", {0, 1}, b + 2000, 50);
      h.tick(b + 2500);
      {
        std::lock_guard lock{h.jobs->mu};
        h.jobs->running = json::array({h.jobs->running[1]});
        h.jobs->ended.push_back(ended(launch("j-7", 0, 7, "w1", {0, 1}, b), 1, b + 3000));
      }
      h.tick(b + 3000);
      h.tick(b + 3000);
      auto rep = h.ask(fo_report_atom::value, std::string{R"({"group": ["tenant"]})"});
      REQUIRE(rep["rows"].size() == 1);
      CHECK(rep["rows"][0]["tenant"] == "acme");
      CHECK(rep["total"]["gpu_ms"] == 2 * 3000 + 1 * 2000);
      // Half of j-7's piece to b+2.5s was used (50% utilisation).
      CHECK(rep["total"]["used_gpu_ms"] == 1500 * 2 * 50 / 100);
      auto csv = h.ask(fo_report_atom::value, std::string{R"({"format": "csv"})"});
      CHECK(csv["csv"].get<std::string>().rfind("period_start_ms,tenant", 0) == 0);
      // j-8 still runs; the next head meters it on.
      check_total(h.total());
    }
    {
      harness h{dir.path(), fast_policy(true)};
      check_total(h.total()); // the ledger survived the restart
      {
        std::lock_guard lock{h.jobs->mu};
        h.jobs->running.push_back(launch("j-8", 0, 8, "w2", {0}, b + 1000));
        h.jobs->ended.push_back(ended(launch("j-7", 0, 7, "w1", {0, 1}, b), 1,
                                      b + 3000)); // told again: no change
      }
      h.tick(b + 3000);
      check_total(h.total());
      h.tick(b + 4000);
      auto t = h.total();
      CHECK(t["gpu_ms"] == 2 * 3000 + 1 * 3000);
    }
  }

  TEST_CASE("a launch that began and ended between two ticks is charged in full") {
    temp_dir dir;
    harness h{dir.path(), fast_policy(true)};
    auto b = base_ms();
    h.tick(b);
    {
      std::lock_guard lock{h.jobs->mu};
      h.jobs->ended.push_back(
          ended(launch("j-9", 1, 21, "w3", {0, 1, 2}, b + 100), 1, b + 700));
    }
    h.tick(b + 1000);
    h.tick(b + 2000);
    CHECK(h.total()["gpu_ms"] == 3 * 600);
  }

  TEST_CASE("a spot notice plans every launch on the node, records the loss and asks the "
            "job manager to vacate the node") {
    temp_dir dir;
    harness h{dir.path(), fast_policy(false)};
    auto b = base_ms();
    {
      std::lock_guard lock{h.jobs->mu};
      h.jobs->running.push_back(launch("j-3", 0, 11, "w2", {0, 1}, b, "training", true));
      h.jobs->running.push_back(launch("j-4", 0, 12, "w2", {2}, b, "training", false));
      h.jobs->running.push_back(launch("j-5", 0, 13, "w1", {0}, b, "training", true));
    }
    h.tick(b);
    json notice = {
        {"node", "w2"}, {"received_ms", b + 60'000}, {"deadline_ms", b + 90'000}};
    auto plan = h.ask(fo_notice_atom::value, notice.dump());
    REQUIRE(plan["steps"].size() == 2);
    CHECK(plan["steps"][0]["job"] == "j-3");
    CHECK(plan["steps"][0]["action"] == "checkpoint_then_reschedule");
    CHECK(plan["steps"][1]["job"] == "j-4");
    CHECK(plan["steps"][1]["action"] == "lose_work");
    // j-4 cannot checkpoint: it loses everything since it started, on 1 GPU.
    CHECK(plan["steps"][1]["lost_gpu_ms"] == 90'000);
    CHECK(plan["lost_gpu_ms"] == 90'000);
    CHECK(plan["gpus_to_reschedule"] == 3);
    CHECK(plan["jobs"]["checkpointing"] == 1);
    auto rec = h.audit();
    REQUIRE(rec.size() == 2);
    CHECK(rec[0]["kind"] == "spot");
    CHECK(rec[1]["lost_gpu_ms"] == 90'000);
    std::lock_guard lock{h.jobs->mu};
    REQUIRE(h.jobs->vacates.size() == 1);
    CHECK(h.jobs->vacates[0].first == "w2");
    auto& ckpt = h.jobs->vacates[0].second["checkpoint"];
    REQUIRE(ckpt.size() == 1);
    CHECK(ckpt[0]["job"] == "j-3");
    CHECK(ckpt[0]["generation"] == 11);
    CHECK(h.jobs->vacates[0].second["deadline_ms"] == b + 90'000);
  }

  TEST_CASE("a launch that cannot checkpoint in time loses only the work since its last "
            "confirmed checkpoint") {
    temp_dir dir;
    harness h{dir.path(), fast_policy(false)};
    auto b = base_ms();
    {
      std::lock_guard lock{h.jobs->mu};
      auto l = launch("j-6", 0, 21, "w3", {0, 1}, b, "training", false);
      l["last_checkpoint_ms"] = b + 50'000; // a periodic checkpoint
      h.jobs->running.push_back(l);
    }
    h.tick(b);
    json notice = {
        {"node", "w3"}, {"received_ms", b + 60'000}, {"deadline_ms", b + 80'000}};
    auto plan = h.ask(fo_notice_atom::value, notice.dump());
    REQUIRE(plan["steps"].size() == 1);
    CHECK(plan["steps"][0]["action"] == "lose_work");
    // 30 s since the checkpoint, on 2 GPUs.
    CHECK(plan["lost_gpu_ms"] == 60'000);
  }

  TEST_CASE("spot admission: within the tenant's share and checkpoint interval, or "
            "refused with the policy's reason; every answer audited") {
    temp_dir dir;
    auto policy = fast_policy(true);
    policy.finops.spot_max_share = 0.5;
    policy.finops.spot_checkpoint_interval = 10min;
    harness h{dir.path(), policy};
    auto ask = [&](uint64_t gpus, uint64_t held_spot, uint64_t held_total,
                   bool checkpoints, int64_t interval_ms) {
      json q{{"job", "train"},
             {"tenant", "acme"},
             {"gpus", gpus},
             {"spot_tolerant", true},
             {"checkpoints", checkpoints},
             {"checkpoint_interval_ms", interval_ms},
             {"held_spot", held_spot},
             {"held_total", held_total},
             {"now_ms", 1000}};
      return h.ask(fo_spot_atom::value, q.dump());
    };
    auto d = ask(2, 0, 2, true, 300'000); // 2 of 4 on spot: at the cap
    CHECK(d["allowed"] == true);
    CHECK(d["verdict"] == "allowed");
    CHECK(d["max_spot_share_permille"] == 500);
    CHECK(d["max_checkpoint_interval_ms"] == 600'000);
    d = ask(2, 2, 4, true, 300'000); // 4 of 6: over
    CHECK(d["allowed"] == false);
    CHECK(d["verdict"] == "share_cap_exceeded");
    CHECK(d["reason"].get<std::string>().find("4 of 6 GPUs on spot") !=
          std::string::npos);
    d = ask(1, 0, 0, true, 3'600'000);
    CHECK(d["verdict"] == "interval_too_long");
    d = ask(1, 0, 0, true, 0);
    CHECK(d["verdict"] == "interval_too_long");
    CHECK(d["reason"].get<std::string>().find("unknown") != std::string::npos);
    d = ask(1, 0, 0, false, 0);
    CHECK(d["verdict"] == "no_checkpointing");
    auto rec = h.audit();
    CHECK(actions(rec) == std::vector<std::string>{"spot_allowed", "spot_refused",
                                                   "spot_refused", "spot_refused",
                                                   "spot_refused"});
    CHECK(rec[1]["kind"] == "spot");
    CHECK(rec[1]["owner"] == "acme");
    CHECK(rec[1]["job"] == "train");
    CHECK(rec[1]["held_spot_gpus"] == 2);
    CHECK(rec[1]["held_gpus"] == 4);
    CHECK(rec[1]["at_ms"] == 1000);
    CHECK(rec[1]["verdict"] == "share_cap_exceeded");
    // Pages of the audit log: after a sequence, at most `limit`.
    auto page = h.ask(fo_audit_atom::value, rec[1]["seq"].get<uint64_t>(), uint32_t{2});
    REQUIRE(page["records"].size() == 2);
    CHECK(page["records"][0]["seq"] == rec[2]["seq"]);
    CHECK(page["next"] == rec[3]["seq"]);
    auto last = h.ask(fo_audit_atom::value, page["next"].get<uint64_t>(), uint32_t{10});
    REQUIRE(last["records"].size() == 1);
    CHECK(last["records"][0]["seq"] == rec[4]["seq"]);
    CHECK(h.ask(fo_audit_atom::value, UINT64_MAX, uint32_t{10})["records"].empty());
  }

  TEST_CASE("budgets: ok, warn, then exceeded blocks low-priority work; each audited "
            "once per window, every refusal audited") {
    temp_dir dir;
    auto policy = fast_policy(true);
    // acme may spend 10,000 micro-USD (10,000 GPU-ms at this price) per day.
    policy.finops.budgets = {"acme=0.010000"};
    policy.finops.budget_period = 24h;
    policy.finops.budget_warn_fraction = 0.5;
    policy.finops.budget_block_below_priority = 10;
    harness h{dir.path(), policy};
    auto b = base_ms() / 86'400'000 * 86'400'000 + 3'600'000; // 01:00 UTC today
    auto ask = [&](const char* tenant, int32_t priority, int64_t at) {
      return h.ask(fo_budget_atom::value, std::string{tenant}, priority, at);
    };
    auto d = ask("acme", 0, b);
    CHECK(d["status"] == "ok");
    CHECK(d["admit"] == true);
    CHECK(d["limit_micro_usd"] == 10'000);
    CHECK(ask("globex", 0, b)["reason"] == "no budget set");
    {
      std::lock_guard lock{h.jobs->mu};
      h.jobs->running.push_back(launch("j-1", 0, 1, "w1", {0, 1}, b)); // 2 GPUs
    }
    h.tick(b);
    h.tick(b + 3000); // 6,000 GPU-ms: past half the budget
    d = ask("acme", 0, b + 3000);
    CHECK(d["status"] == "warn");
    CHECK(d["admit"] == true);
    CHECK(d["spent_micro_usd"] == 6'000);
    ask("acme", 0, b + 3000); // told once
    h.tick(b + 6000);         // 12,000 GPU-ms: exceeded
    d = ask("acme", 0, b + 6000);
    CHECK(d["status"] == "exceeded");
    CHECK(d["admit"] == false);
    CHECK(d["reason"].get<std::string>().find("blocked") != std::string::npos);
    auto high = ask("acme", 10, b + 6000); // at the threshold: still admitted
    CHECK(high["status"] == "exceeded");
    CHECK(high["admit"] == true);
    ask("acme", 1, b + 6000);
    auto acts = actions(h.audit());
    CHECK(acts == std::vector<std::string>{"budget_warn", "budget_exceeded",
                                           "budget_block", "budget_block"});
    for (auto& r : h.audit()) {
      CHECK(r["kind"] == "budget");
      CHECK(r["tenant"] == "acme");
      CHECK_FALSE(r["reason"].get<std::string>().empty());
    }
    // The next day is a new window (and nothing was spent in it yet).
    auto tomorrow = (b / 86'400'000 + 1) * 86'400'000 + 1000;
    {
      std::lock_guard lock{h.jobs->mu};
      h.jobs->running.clear();
      h.jobs->ended.push_back(ended(launch("j-1", 0, 1, "w1", {0, 1}, b), 1, b + 6000));
    }
    h.tick(b + 6000);
    d = ask("acme", 0, tomorrow);
    CHECK(d["status"] == "ok");
    CHECK(d["spent_micro_usd"] == 0);
  }

  TEST_CASE("MIG advice packs small serving replicas onto MIG slices by their peak "
            "memory and keeps big ones whole") {
    temp_dir dir;
    harness h{dir.path(), fast_policy(true)};
    auto b = base_ms();
    {
      std::lock_guard lock{h.jobs->mu};
      for (uint32_t i = 0; i < 4; ++i) {
        auto l =
            launch("j-" + std::to_string(10 + i), 0, 10 + i, "w1", {i}, b, "serving");
        l["gpu_model"] = "H100-80GB";
        l["gpu_memory_mib"] = 81920;
        h.jobs->running.push_back(l);
      }
      // A training launch and a serving one on two GPUs are not advised on.
      h.jobs->running.push_back(launch("j-20", 0, 20, "w2", {0}, b, "training"));
      auto two = launch("j-21", 0, 21, "w2", {1, 2}, b, "serving");
      two["gpu_model"] = "H100-80GB";
      two["gpu_memory_mib"] = 81920;
      h.jobs->running.push_back(two);
    }
    h.tick(b); // the launches are known: samples get tagged from now on
    CHECK(h.ask(fo_mig_atom::value)["pools"].empty()); // no memory seen yet
    std::vector<troupe::finops::gpu_sample> s;
    auto sample = [&](const char* node, uint32_t gpu, uint64_t mib) {
      troupe::finops::gpu_sample x;
      x.node = node;
      x.gpu_index = gpu;
      x.at = troupe::time_point{std::chrono::milliseconds{b + 500}};
      x.utilisation_pct = 30;
      x.memory_used_mib = mib;
      s.push_back(x);
    };
    sample("w1", 0, 6'000);
    sample("w1", 1, 8'000);
    sample("w1", 1, 4'000); // the peak counts, not the last
    sample("w1", 2, 7'000);
    sample("w1", 3, 60'000); // more than half the GPU: keeps it whole
    sample("w2", 0, 1'000);
    sample("w2", 1, 1'000);
    h.node->tell(h.finops, fo_samples_atom::value, encode_samples(s));
    h.tick(b + 1000);
    auto pools = h.ask(fo_mig_atom::value)["pools"];
    REQUIRE(pools.size() == 1);
    auto& p = pools[0];
    CHECK(p["gpu_model"] == "H100-80GB");
    CHECK(p["gpus_before"] == 4);
    CHECK(p["whole_gpu"] == json::array({"j-13/0"}));
    // Three replicas under 10 GB (with 10% headroom) share one MIG GPU.
    CHECK(p["gpus_after"] == 2);
    CHECK(p["gpus_freed"] == 2);
    REQUIRE(p["layout"].size() == 1);
    std::set<std::string> placed;
    for (auto& i : p["layout"][0]["instances"]) {
      CHECK(i["profile"] == "1g.10gb");
      placed.insert(i["replica"].get<std::string>());
    }
    CHECK(placed == std::set<std::string>{"j-10/0", "j-11/0", "j-12/0"});
    CHECK_FALSE(p["summary"].get<std::string>().empty());
  }

  TEST_CASE("a malformed budget in the config keeps the actor from starting") {
    temp_dir dir;
    auto policy = fast_policy(true);
    policy.finops.budgets = {"acme=lots"};
    auto n = troupe::node::start(troupe::default_config());
    REQUIRE(n.ok());
    finops_actor_config fc;
    fc.store_path = dir.path() + "/finops";
    fc.jobs = (*n)->adopt(troupe::actor_ref{
        (*n)->system().spawn(fake_jobs, std::make_shared<fake_jobs_state>())});
    fc.finops = policy;
    auto f = start_finops_actor(**n, std::move(fc));
    REQUIRE_FALSE(f.ok());
    CHECK(f.err().message().find("finops.budgets[0]") != std::string::npos);
    (*n)->stop();
  }

  TEST_CASE("bad queries, notices and samples get clear errors") {
    temp_dir dir;
    harness h{dir.path(), fast_policy(true)};
    auto e = h.ask(fo_report_atom::value, std::string{R"({"group": ["planet"]})"});
    CHECK(e["error"]["code"] == "invalid_argument");
    e = h.ask(fo_report_atom::value, std::string{R"({"format": "xml"})"});
    CHECK(e["error"]["code"] == "invalid_argument");
    e = h.ask(fo_notice_atom::value, std::string{R"({"node": "w1"})"});
    CHECK(e["error"]["code"] == "invalid_argument");
    e = h.ask(fo_notice_atom::value, std::string{"not json"});
    CHECK(e["error"]["code"] == "invalid_argument");
    for (const char* bad :
         {"not json", "[]", "{}", R"({"gpus": -1})", R"({"gpus": 1.5})",
          R"({"gpus": "2"})", R"({"gpus": 1, "held_spot": 3, "held_total": 2})",
          R"({"gpus": 1, "checkpoint_interval_ms": -5})", R"({"gpus": 1, "tenant": 7})",
          R"({"gpus": 1, "spot_tolerant": "yes"})", R"({"gpus": 99999999999})"}) {
      e = h.ask(fo_spot_atom::value, std::string{bad});
      CHECK_MESSAGE(e["error"]["code"] == "invalid_argument", bad);
      CHECK_MESSAGE(e["error"]["message"].get<std::string>().find("spot query") == 0,
                    bad);
    }
    CHECK(h.audit().empty()); // nothing decided, nothing audited
    for (const char* bad :
         {"{}", "[{\"node\": \"w1\"}]",
          "[{\"node\": \"w1\", \"gpu\": 0, \"at_ms\": 1, \"util\": 101}]",
          "[{\"node\": \"\", \"gpu\": 0, \"at_ms\": 1, \"util\": 1}]",
          "[{\"node\": \"w1\", \"gpu\": -1, \"at_ms\": 1, \"util\": 1}]"}) {
      auto s = decode_samples(bad);
      CHECK_MESSAGE(!s.ok(), std::string{bad});
      if (!s.ok()) CHECK(s.err().code() == troupe::runtime::errc::invalid_argument);
    }
    // Refused samples are dropped; the actor keeps serving.
    h.node->tell(h.finops, fo_samples_atom::value, std::string{"[1, 2]"});
    CHECK(h.tick(base_ms())["launches"] == 0);
    std::vector<troupe::finops::gpu_sample> one(1);
    one[0].node = "w1";
    one[0].gpu_index = 3;
    one[0].uuid = "GPU-x";
    one[0].at = troupe::time_point{std::chrono::milliseconds{1234}};
    one[0].utilisation_pct = 42;
    one[0].memory_used_mib = 100;
    one[0].power_mw = 2000;
    auto back = decode_samples(encode_samples(one));
    REQUIRE(back.ok());
    CHECK(*back == one);
  }

} // TEST_SUITE
