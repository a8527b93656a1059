#include "troupe/actors/head_control_plane.hpp"

#include "troupe/actors/errc.hpp"
#include "troupe/actors/finops_actor.hpp"
#include "troupe/actors/job_manager.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"

#include <nlohmann/json.hpp>

namespace troupe::actors {
namespace {

using json = nlohmann::json;

/// The job manager's answer: the document, or its {"error": ...} as an error.
result<json> decode_answer(const result<std::string>& r) {
  if (!r.ok()) return r.err();
  json j = json::parse(*r, nullptr, false);
  if (j.is_discarded())
    return error{errc::unavailable, "unreadable answer from the job manager"};
  if (j.contains("error")) {
    auto code = j["error"].value("code", std::string{});
    auto msg = j["error"].value("message", std::string{});
    for (auto e :
         {errc::invalid_argument, errc::not_found, errc::conflict, errc::unavailable,
          errc::unauthorized, errc::forbidden, errc::exhausted})
      if (code == actors_category().message(static_cast<int>(e))) return error{e, msg};
    return error{errc::unavailable, code + ": " + msg};
  }
  return j;
}

} // namespace

head_control_plane::head_control_plane(node& host, actor_ref jobs, actor_ref membership,
                                       std::chrono::nanoseconds timeout)
    : host_(host), jobs_(std::move(jobs)), membership_(std::move(membership)),
      timeout_(timeout) {}

result<std::string> head_control_plane::nodes(const caller&) {
  auto r = host_.request<std::string>(membership_, timeout_, members_atom::value);
  if (!r.ok()) return r.err();
  json list = json::parse(*r, nullptr, false);
  if (list.is_discarded()) return error{errc::unavailable, "unreadable member list"};
  return json{{"nodes", std::move(list)}}.dump();
}

result<void> head_control_plane::act_on_node(const caller& who,
                                             std::string_view node_name,
                                             node_action action) {
  if (!who.admin) return error{errc::forbidden, "only an admin may act on nodes"};
  std::string name{node_name};
  result<bool> r = false;
  switch (action) {
  case node_action::cordon:
    r = host_.request<bool>(membership_, timeout_, cordon_atom::value, name);
    break;
  case node_action::uncordon:
    r = host_.request<bool>(membership_, timeout_, uncordon_atom::value, name);
    break;
  case node_action::drain:
    r = host_.request<bool>(membership_, timeout_, drain_atom::value, name);
    break;
  }
  if (!r.ok())
    return error{errc::not_found, "no node " + name + ": " + r.err().message()};
  if (!*r) return error{errc::not_found, "no node " + name};
  return ok();
}

result<std::string> head_control_plane::submit(const caller& who, job_spec spec) {
  auto a = decode_answer(host_.request<std::string>(
      jobs_, timeout_, jm_submit_atom::value, who.tenant, encode_job_spec(spec)));
  if (!a.ok()) return a.err();
  return (*a)["job"].dump();
}

result<std::string> head_control_plane::list_jobs(const caller& who,
                                                  const page_request& page) {
  auto a = decode_answer(host_.request<std::string>(jobs_, timeout_, jm_list_atom::value,
                                                    who.tenant, who.admin, page.limit,
                                                    page.after));
  if (!a.ok()) return a.err();
  return a->dump();
}

result<std::string> head_control_plane::get_job(const caller& who, std::string_view id) {
  auto a = decode_answer(host_.request<std::string>(
      jobs_, timeout_, jm_get_atom::value, who.tenant, who.admin, std::string{id}));
  if (!a.ok()) return a.err();
  return (*a)["job"].dump();
}

result<std::string> head_control_plane::cancel_job(const caller& who,
                                                   std::string_view id) {
  auto a = decode_answer(host_.request<std::string>(
      jobs_, timeout_, jm_cancel_atom::value, who.tenant, who.admin, std::string{id}));
  if (!a.ok()) return a.err();
  return (*a)["job"].dump();
}

result<log_chunk> head_control_plane::logs(const caller& who, std::string_view id,
                                           uint32_t replica, log_stream stream,
                                           uint64_t offset, uint32_t max_bytes) {
  auto a = decode_answer(host_.request<std::string>(
      jobs_, timeout_, jm_logs_atom::value, who.tenant, who.admin, std::string{id},
      replica, static_cast<uint8_t>(stream == log_stream::stderr_log ? 1 : 0), offset,
      max_bytes));
  if (!a.ok()) return a.err();
  log_chunk c;
  c.data = a->value("data", std::string{});
  c.next_offset = a->value("next", offset);
  c.finished = a->value("finished", false);
  return c;
}

result<actor_ref> head_control_plane::finops() {
  auto r = host_.lookup(finops_actor_name);
  if (!r.ok())
    return error{errc::unavailable, "FinOps is not running on this head ([finops] in "
                                    "its config)"};
  return r;
}

result<std::string> head_control_plane::costs(const caller& who, const cost_query& q) {
  if (!who.admin && !q.tenant.empty() && q.tenant != who.tenant)
    return error{errc::forbidden, "a tenant sees only its own costs"};
  auto fo = finops();
  if (!fo.ok()) return fo.err();
  json query{{"group", q.group}, {"format", q.csv ? "csv" : "json"}};
  if (q.from_ms) query["from_ms"] = *q.from_ms;
  if (q.to_ms) query["to_ms"] = *q.to_ms;
  std::string tenant = who.admin ? q.tenant : who.tenant;
  if (!tenant.empty()) query["tenant"] = tenant;
  auto a = decode_answer(
      host_.request<std::string>(*fo, timeout_, fo_report_atom::value, query.dump()));
  if (!a.ok()) return a.err();
  return a->dump();
}

result<std::string> head_control_plane::finops_audit(const caller& who, uint64_t after,
                                                     uint32_t limit) {
  if (!who.admin) return error{errc::forbidden, "the audit log needs an admin token"};
  auto fo = finops();
  if (!fo.ok()) return fo.err();
  auto a = decode_answer(
      host_.request<std::string>(*fo, timeout_, fo_audit_atom::value, after, limit));
  if (!a.ok()) return a.err();
  return a->dump();
}

result<std::string> head_control_plane::mig_advice(const caller& who) {
  if (!who.admin) return error{errc::forbidden, "MIG advice needs an admin token"};
  auto fo = finops();
  if (!fo.ok()) return fo.err();
  auto a = decode_answer(host_.request<std::string>(*fo, timeout_, fo_mig_atom::value));
  if (!a.ok()) return a.err();
  return a->dump();
}

result<std::string> head_control_plane::spot_notice(const caller& who,
                                                    std::string_view node_name,
                                                    int64_t deadline_ms) {
  if (!who.admin) return error{errc::forbidden, "spot notices need an admin token"};
  auto members = nodes(who);
  if (!members.ok()) return members.err();
  auto list = json::parse(*members);
  bool known = false;
  for (const auto& m : list["nodes"])
    known = known || m.value("node", std::string{}) == node_name;
  if (!known) return error{errc::not_found, "no node " + std::string{node_name}};
  auto fo = finops();
  if (!fo.ok()) return fo.err();
  json notice{{"node", node_name}, {"deadline_ms", deadline_ms}};
  auto a = decode_answer(
      host_.request<std::string>(*fo, timeout_, fo_notice_atom::value, notice.dump()));
  if (!a.ok()) return a.err();
  return a->dump();
}

std::string head_control_plane::metrics_text() {
  return host_.services().registry().expose();
}

bool head_control_plane::healthy() {
  return static_cast<bool>(jobs_) && static_cast<bool>(membership_);
}

} // namespace troupe::actors
