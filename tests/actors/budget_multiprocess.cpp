// Budgets and showback end to end on a local cluster of trouped processes (a
// head and one worker on loopback, two simulated GPUs each at $3.60 per
// GPU-hour: one micro-USD per GPU-ms), through the head's HTTP API and the
// `troupe` CLI: running work is charged by the head's FinOps actor; once
// the tenant's budget ([finops] budgets) is spent, a new low-priority job is
// refused (429 exhausted, nothing created, the refusal audited) while one
// at the priority threshold is admitted and a repeated idempotency key
// still answers its first job; `troupe cost` shows the spend as a table and
// as CSV; serving replicas that use 5 GB of their whole GPUs get MIG advice
// (API and `troupe mig-advice`). Processes are cleaned up by pid whatever happens.

#include "cluster_test_client.hpp"

#include <cstdio>
#include <doctest/doctest.h>
#include <fstream>
#include <httplib.h>

using namespace std::chrono_literals;
using namespace troupe::actors;
using namespace troupe::actors::testing;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// Output and exit status of a shell command.
std::pair<std::string, int> run(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return {"", -1};
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.append(buf, n);
  int st = ::pclose(f);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

struct api {
  httplib::Client http;
  httplib::Headers auth;
  api(const local_cluster& c)
      : http(c.api_url), auth{{"Authorization", "Bearer " + c.admin_token}} {
    http.set_read_timeout(20);
  }
  std::pair<int, json> get(const std::string& path) {
    auto r = http.Get(path, auth);
    REQUIRE(r);
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::pair<int, json> submit(const json& spec) {
    auto r = http.Post("/v1/jobs", auth, spec.dump(), "application/json");
    REQUIRE(r);
    return {r->status, json::parse(r->body, nullptr, false)};
  }
};

json job_spec_of(const std::string& name, int priority, const std::string& key) {
  return {{"name", name},         {"command", "exec sleep 600"},
          {"replicas", 1},        {"resources", {{"gpus", 1}}},
          {"priority", priority}, {"idempotency_key", key}};
}

} // namespace

TEST_CASE("a spent budget blocks new low-priority work; costs through the API and the "
          "CLI") {
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  local_cluster_options o;
  o.dir =
      fs::temp_directory_path() / ("troupe-budget-test-" + std::to_string(::getpid()));
  o.trouped = TROUPE_TROUPED;
  o.exec_helper = TROUPE_EXEC_HELPER;
  o.workers = 1;
  o.gpus_per_node = 2;
  o.price_per_gpu_hour = "3.60"; // 1 micro-USD per GPU-ms
  o.name_prefix = "b" + std::to_string(::getpid());
  // The local cluster's API token is an admin of tenant "admin".
  // Every GPU reports 5 GB of memory in use (the simulated source's hook).
  fs::create_directories(o.dir);
  const auto hook = o.dir / "gpu-telemetry";
  std::ofstream{hook} << "0 30 5000\n1 30 5000\n";
  o.extra_toml = "[finops]\nbudgets = [\"admin=0.003000\"]\n"
                 "spot_notice_file = \"" +
                 (o.dir / "{node}.spot-notice").string() +
                 "\"\n"
                 "budget_block_below_priority = 5\nbudget_period = \"24h\"\n\n"
                 "[telemetry]\nsample_interval = \"250ms\"\nsimulated_file = \"" +
                 hook.string() + "\"\n";
  cluster_guard guard{o.dir, {}};
  auto c = start_local_cluster(o);
  if (!c.ok()) FAIL(c.err().to_string());
  api a{*c};

  // Work that spends: one replica on one GPU, 1 micro-USD per ms.
  auto [st, first] = a.submit(job_spec_of("spender", 0, "spend-1"));
  REQUIRE_MESSAGE(st == 201, first.dump());
  const auto first_id = first["id"].get<std::string>();

  // The ledger charges it: wait until the spend passes the 3,000 budget.
  json costs;
  auto t0 = std::chrono::steady_clock::now();
  int64_t spent = 0;
  while (std::chrono::steady_clock::now() - t0 < 60s) {
    auto [cs, doc] = a.get("/v1/costs?group=tenant");
    REQUIRE_MESSAGE(cs == 200, doc.dump());
    costs = doc;
    spent = doc["total"].value("cost_micro_usd", int64_t{0});
    if (spent > 3'000) break;
    std::this_thread::sleep_for(200ms);
  }
  REQUIRE_MESSAGE(spent > 3'000, "never charged: " << costs.dump());
  REQUIRE(costs["rows"].size() == 1);
  CHECK(costs["rows"][0]["tenant"] == "admin");
  // Whole GPU-ms at one micro-USD each: cost and GPU-ms agree exactly.
  CHECK(costs["rows"][0]["cost_micro_usd"] == costs["rows"][0]["gpu_ms"]);

  auto count_jobs = [&] {
    auto [ls, list] = a.get("/v1/jobs?limit=100");
    REQUIRE(ls == 200);
    return list["jobs"].size();
  };
  const auto jobs_before = count_jobs();

  // Over budget: low priority refused, nothing created; the threshold admitted.
  auto [low_st, low] = a.submit(job_spec_of("low", 0, "low-1"));
  CHECK(low_st == 429);
  CHECK(low["error"]["code"] == "exhausted");
  CHECK(low["error"]["message"].get<std::string>().find("budget exceeded") !=
        std::string::npos);
  CHECK(count_jobs() == jobs_before);
  auto [again_st, again] = a.submit(job_spec_of("spender", 0, "spend-1"));
  CHECK(again_st < 300); // the first job, not a refusal
  CHECK(again["id"] == first_id);
  CHECK(count_jobs() == jobs_before);
  auto [high_st, high] = a.submit(job_spec_of("urgent", 5, "urgent-1"));
  CHECK_MESSAGE(high_st == 201, high.dump());
  CHECK(count_jobs() == jobs_before + 1);

  // The audit log says why.
  auto [au_st, audit] = a.get("/v1/finops/audit?limit=1000");
  REQUIRE(au_st == 200);
  std::vector<std::string> budget_actions;
  for (auto& r : audit["records"])
    if (r.value("kind", "") == "budget") budget_actions.push_back(r["action"]);
  CHECK(std::find(budget_actions.begin(), budget_actions.end(), "budget_exceeded") !=
        budget_actions.end());
  CHECK(std::count(budget_actions.begin(), budget_actions.end(), "budget_block") == 1);

  // MIG advice: two serving replicas holding a whole H100 each but using
  // 5 GB fit 1g.10gb slices of one GPU.
  auto serving = job_spec_of("serve", 10, "serve-1");
  serving["class"] = "serving";
  serving["replicas"] = 2;
  auto [sv_st, sv] = a.submit(serving);
  REQUIRE_MESSAGE(sv_st == 201, sv.dump());
  json pools;
  for (auto t = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - t < 60s; std::this_thread::sleep_for(250ms)) {
    auto [ms, advice] = a.get("/v1/finops/mig-advice");
    REQUIRE(ms == 200);
    pools = advice["pools"];
    if (!pools.empty() && pools[0].value("gpus_before", 0) == 2) break;
  }
  REQUIRE_MESSAGE(pools.size() == 1, pools.dump());
  CHECK(pools[0]["gpu_model"] == "H100-80GB");
  CHECK(pools[0]["gpus_before"] == 2);
  CHECK(pools[0]["gpus_freed"] == 1);

  // The CLI: a table with the tenant and a total, and CSV.
  const std::string troupe = (fs::path{TROUPE_TROUPED}.parent_path() / "troupe").string();
  auto [table, table_rc] =
      run(troupe + " cost --dir " + o.dir.string() + " --group tenant");
  CHECK(table_rc == 0);
  CHECK_MESSAGE(table.find("admin") != std::string::npos, table);
  CHECK_MESSAGE(table.find("TOTAL") != std::string::npos, table);
  auto [csv, csv_rc] =
      run(troupe + " cost --dir " + o.dir.string() + " --group tenant,team --csv");
  CHECK(csv_rc == 0);
  CHECK_MESSAGE(csv.rfind("period_start_ms,tenant,team,", 0) == 0, csv);
  auto [mig, mig_rc] = run(troupe + " mig-advice --dir " + o.dir.string());
  CHECK(mig_rc == 0);
  CHECK_MESSAGE(mig.find("H100-80GB") != std::string::npos, mig);
  CHECK_MESSAGE(mig.find("1g.10gb") != std::string::npos, mig);
  // A cloud's spot notice through the worker's notice file (the adapter
  // interface): its agent tells the head, whose FinOps actor plans and
  // audits it for that node.
  const auto& worker = c->nodes[1].name;
  std::ofstream{o.dir / (worker + ".spot-notice")} << "# written by the cloud agent\n"
                                                   << now_ms() + 120'000 << "\n";
  bool noticed = false;
  for (auto t = std::chrono::steady_clock::now();
       !noticed && std::chrono::steady_clock::now() - t < 30s;
       std::this_thread::sleep_for(250ms)) {
    auto [ns, records] = a.get("/v1/finops/audit?limit=1000");
    REQUIRE(ns == 200);
    for (auto& r : records["records"])
      noticed =
          noticed || (r.value("kind", "") == "spot" && r.value("node", "") == worker);
  }
  CHECK_MESSAGE(noticed, "the worker's notice file never reached the head's audit log");

  auto [bad, bad_rc] = run(troupe + " cost --dir " + o.dir.string() + " --group colour");
  CHECK(bad_rc != 0);
  CHECK_MESSAGE(bad.find("invalid_argument") != std::string::npos, bad);
}
