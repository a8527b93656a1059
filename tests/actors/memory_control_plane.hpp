#pragma once
// An in-memory control_plane for the tests, the fuzz target and the
// benchmark of the HTTP API (http_api.hpp): not the job manager, only enough
// of the interface's contract to test the HTTP layer against: tenants
// isolated (another tenant's job is not_found), idempotency keys per tenant,
// newest-first pages with an opaque cursor, admin-only node actions, logs
// that tests append to. Thread-safe (one mutex).

#include "troupe/actors/control_plane.hpp"
#include "troupe/actors/errc.hpp"
#include "troupe/actors/job_spec.hpp"
#include "troupe/finops/ledger.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace troupe::actors::testing {

class memory_control_plane final : public control_plane {
public:
  memory_control_plane() {
    nodes_.push_back({"gpu-a", "up", false, false, 8});
    nodes_.push_back({"gpu-b", "up", false, false, 8});
  }

  result<std::string> nodes(const caller&) override {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& n : nodes_) {
      list.push_back({{"name", n.name},
                      {"state", n.state},
                      {"cordoned", n.cordoned},
                      {"draining", n.draining},
                      {"gpus", n.gpus}});
    }
    return nlohmann::json{{"nodes", list}}.dump();
  }

  result<void> act_on_node(const caller& who, std::string_view node,
                           node_action action) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!who.admin) return error{errc::forbidden, "node actions need an admin"};
    for (auto& n : nodes_) {
      if (n.name != node) continue;
      ++changes_;
      if (action == node_action::cordon) n.cordoned = true;
      if (action == node_action::uncordon) n.cordoned = n.draining = false;
      if (action == node_action::drain) n.cordoned = n.draining = true;
      return ok();
    }
    return error{errc::not_found, "no node \"" + std::string(node) + "\""};
  }

  result<std::string> submit(const caller& who, job_spec spec) override {
    std::lock_guard<std::mutex> lock(mu_);
    spec.labels.tenant = who.tenant;
    if (!spec.idempotency_key.empty()) {
      auto it = idempotency_.find({who.tenant, spec.idempotency_key});
      if (it != idempotency_.end()) return jobs_.at(it->second).doc;
    }
    if (spec.resources.gpus > 8) {
      return error{errc::invalid_argument, "job.resources.gpus: no node has " +
                                               std::to_string(spec.resources.gpus) +
                                               " GPUs"};
    }
    if (who.tenant == "broke")
      return error{errc::exhausted, "tenant broke: budget spent"};
    ++changes_;
    job j;
    j.seq = next_seq_++;
    char id[32];
    std::snprintf(id, sizeof id, "job-%06llu", static_cast<unsigned long long>(j.seq));
    j.id = id;
    j.tenant = who.tenant;
    j.spec = std::move(spec);
    if (!j.spec.idempotency_key.empty())
      idempotency_[{who.tenant, j.spec.idempotency_key}] = j.id;
    j.doc = document(j);
    auto doc = j.doc;
    jobs_.emplace(j.id, std::move(j));
    return doc;
  }

  result<std::string> list_jobs(const caller& who, const page_request& page) override {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t below = UINT64_MAX;
    if (!page.after.empty()) {
      auto it = jobs_.find(page.after);
      if (it == jobs_.end() || !visible(it->second, who))
        return error{errc::invalid_argument, "after: not a cursor of this list"};
      below = it->second.seq;
    }
    std::vector<const job*> mine;
    for (const auto& [id, j] : jobs_)
      if (visible(j, who) && j.seq < below) mine.push_back(&j);
    std::sort(mine.begin(), mine.end(), [](auto* a, auto* b) { return a->seq > b->seq; });
    std::string list;
    std::string next;
    for (std::size_t i = 0; i < mine.size() && i < page.limit; ++i) {
      list += (i ? "," : "") + mine[i]->doc;
      if (i + 1 == page.limit && i + 1 < mine.size()) next = mine[i]->id;
    }
    return R"({"jobs":[)" + list + R"(],"next":)" + nlohmann::json(next).dump() + "}";
  }

  result<std::string> get_job(const caller& who, std::string_view job_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto* j = find(who, job_id);
    if (!j) return not_found(job_id);
    return j->doc;
  }

  result<std::string> cancel_job(const caller& who, std::string_view job_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto* j = find(who, job_id);
    if (!j) return not_found(job_id);
    if (j->state == "running") {
      j->state = "cancelled";
      j->doc = document(*j);
      ++changes_;
    }
    return j->doc;
  }

  result<log_chunk> logs(const caller& who, std::string_view job_id, uint32_t replica,
                         log_stream stream, uint64_t offset,
                         uint32_t max_bytes) override {
    ++log_calls_;
    std::lock_guard<std::mutex> lock(mu_);
    auto* j = find(who, job_id);
    if (!j) return not_found(job_id);
    if (replica >= j->spec.replicas)
      return error{errc::not_found,
                   "job " + j->id + " has no replica " + std::to_string(replica)};
    const auto& l = logs_[{j->id, replica, stream}];
    log_chunk out;
    if (offset < l.text.size()) out.data = l.text.substr(offset, max_bytes);
    out.next_offset = offset + out.data.size();
    out.finished = l.finished && out.next_offset >= l.text.size();
    return out;
  }

  /// Costs from a real showback ledger (finops::ledger_state) that tests
  /// charge with charge(); the same report functions as the FinOps actor.
  result<std::string> costs(const caller& who, const cost_query& q) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!who.admin && !q.tenant.empty() && q.tenant != who.tenant)
      return error{errc::forbidden, "a tenant sees only its own costs"};
    last_cost_query_ = q;
    finops::report_grouping g{false, false, false, false, false};
    for (const auto& k : q.group) {
      g.period = g.period || k == "period";
      g.tenant = g.tenant || k == "tenant";
      g.team = g.team || k == "team";
      g.project = g.project || k == "project";
      g.env = g.env || k == "env";
    }
    auto at = [](std::optional<int64_t> ms, time_point none) {
      return ms ? time_point{std::chrono::milliseconds{*ms}} : none;
    };
    auto rows = finops::make_report(ledger_, g, at(q.from_ms, time_point::min()),
                                    at(q.to_ms, time_point::max()),
                                    who.admin ? q.tenant : who.tenant);
    if (q.csv)
      return nlohmann::json{{"format", "csv"}, {"csv", finops::render_csv(rows)}}.dump();
    return nlohmann::json{{"format", "json"},
                          {"rows", nlohmann::json::parse(finops::render_json(rows))}}
        .dump();
  }
  result<std::string> finops_audit(const caller& who, uint64_t after,
                                   uint32_t limit) override {
    if (!who.admin) return error{errc::forbidden, "the audit log needs an admin token"};
    std::lock_guard<std::mutex> lock(mu_);
    auto records = nlohmann::json::array();
    uint64_t next = after;
    for (uint64_t seq = after + 1; seq <= audit_.size() && records.size() < limit;
         ++seq) {
      records.push_back(nlohmann::json::parse(audit_[seq - 1]));
      next = seq;
    }
    return nlohmann::json{{"records", records}, {"next", next}}.dump();
  }
  result<std::string> mig_advice(const caller& who) override {
    if (!who.admin) return error{errc::forbidden, "MIG advice needs an admin token"};
    return std::string{R"({"pools":[]})"};
  }
  result<std::string> spot_notice(const caller& who, std::string_view node,
                                  int64_t deadline_ms) override {
    if (!who.admin) return error{errc::forbidden, "spot notices need an admin token"};
    std::lock_guard<std::mutex> lock(mu_);
    if (std::none_of(nodes_.begin(), nodes_.end(),
                     [&](auto& n) { return n.name == node; }))
      return error{errc::not_found, "no node \"" + std::string(node) + "\""};
    ++changes_;
    audit_.push_back(nlohmann::json{
        {"action", "spot_notice"}, {"node", node}, {"deadline_ms", deadline_ms}}
                         .dump());
    return nlohmann::json{
        {"node", node}, {"deadline_ms", deadline_ms}, {"steps", nlohmann::json::array()}}
        .dump();
  }

  std::string metrics_text() override {
    std::lock_guard<std::mutex> lock(mu_);
    return "# TYPE troupe_jobs gauge\ntroupe_jobs " + std::to_string(jobs_.size()) + "\n";
  }

  bool healthy() override { return healthy_.load(); }

  // Test controls.
  void charge(const finops::usage_entry& e) {
    std::lock_guard<std::mutex> lock(mu_);
    (void)ledger_.apply(e);
  }
  std::optional<cost_query> last_cost_query() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_cost_query_;
  }
  void set_healthy(bool up) { healthy_ = up; }
  void append_log(const std::string& job_id, uint32_t replica, log_stream stream,
                  std::string_view text, bool finish = false) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& l = logs_[{job_id, replica, stream}];
    l.text += text;
    l.finished = l.finished || finish;
  }
  /// Everything a request could change, as text: equal before and after a
  /// rejected request means the request lost nothing and changed nothing.
  std::string snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out = std::to_string(changes_) + ";";
    for (const auto& n : nodes_)
      out += n.name + (n.cordoned ? "+c" : "") + (n.draining ? "+d" : "") + ";";
    for (const auto& [id, j] : jobs_)
      out += id + "/" + j.tenant + "/" + j.state + ";";
    return out;
  }
  uint64_t log_calls() const { return log_calls_.load(); }
  std::string node_state(std::string_view name) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& n : nodes_)
      if (n.name == name)
        return n.draining ? "draining" : n.cordoned ? "cordoned" : "schedulable";
    return "";
  }

private:
  finops::ledger_state ledger_{std::chrono::hours{24}};
  std::optional<cost_query> last_cost_query_;
  std::vector<std::string> audit_; ///< audit records, sequence = index + 1
  struct node {
    std::string name;
    std::string state;
    bool cordoned;
    bool draining;
    uint32_t gpus;
  };
  struct job {
    std::string id;
    std::string tenant;
    std::string state = "running";
    uint64_t seq = 0;
    job_spec spec;
    std::string doc; ///< the job document, kept current
  };
  struct log_text {
    std::string text;
    bool finished = false;
  };

  static bool visible(const job& j, const caller& who) {
    return who.admin || j.tenant == who.tenant;
  }
  job* find(const caller& who, std::string_view id) {
    auto it = jobs_.find(std::string(id));
    if (it == jobs_.end() || !visible(it->second, who)) return nullptr;
    return &it->second;
  }
  static error not_found(std::string_view id) {
    return error{errc::not_found, "no job \"" + std::string(id) + "\""};
  }
  static std::string document(const job& j) {
    nlohmann::json replicas = nlohmann::json::array();
    for (uint32_t i = 0; i < j.spec.replicas && i < 16; ++i)
      replicas.push_back({{"index", i}, {"state", j.state}});
    return nlohmann::json{
        {"id", j.id},           {"name", j.spec.name},
        {"tenant", j.tenant},   {"state", j.state},
        {"replicas", replicas}, {"spec", nlohmann::json::parse(encode_job_spec(j.spec))}}
        .dump();
  }

  std::mutex mu_;
  std::vector<node> nodes_;
  std::map<std::string, job> jobs_;
  std::map<std::pair<std::string, std::string>, std::string> idempotency_;
  std::map<std::tuple<std::string, uint32_t, log_stream>, log_text> logs_;
  uint64_t next_seq_ = 1;
  uint64_t changes_ = 0;
  std::atomic<bool> healthy_{true};
  std::atomic<uint64_t> log_calls_{0};
};

} // namespace troupe::actors::testing
