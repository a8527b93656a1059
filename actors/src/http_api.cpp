#include "troupe/actors/http_api.hpp"

#include "json_input.hpp"
#include "troupe/actors/errc.hpp"
#include "troupe/runtime/errc.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <exception>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <string_view>

namespace troupe::actors {
namespace {

using json = nlohmann::json;
using detail::quote_for_error;

constexpr std::string_view json_type = "application/json";
constexpr std::string_view ndjson_type = "application/x-ndjson";
constexpr std::size_t max_token_bytes = 512;
constexpr std::size_t max_id_bytes = 128;
constexpr std::size_t max_cursor_bytes = 256;
constexpr std::size_t max_query_params = 16;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

api_response fail(int status, std::string_view code, std::string_view message) {
  api_response r;
  r.status = status;
  r.body = error_body(code, message);
  return r;
}

api_response fail(const error& e) {
  auto [status, code] = http_status_of(e);
  return fail(status, code, e.message());
}

api_response ok_json(std::string body, int status = 200) {
  api_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

/// 401 with the challenge of RFC 6750.
api_response unauthorized(std::string_view message, bool token_given) {
  api_response r = fail(401, "unauthorized", message);
  r.headers.emplace_back("WWW-Authenticate",
                         token_given ? R"(Bearer realm="troupe", error="invalid_token")"
                                     : R"(Bearer realm="troupe")");
  return r;
}

bool ascii_iequal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) {
             return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
           };
           return lower(x) == lower(y);
         });
}

bool is_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/// Job ids and node names in paths: [A-Za-z0-9][A-Za-z0-9._:-]*, at most
/// max_id_bytes (so no "..", no slash, no control character).
bool valid_id(std::string_view s) noexcept {
  if (s.empty() || s.size() > max_id_bytes || !is_alnum(s.front())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
  });
}

/// RFC 6750 b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "="s.
bool valid_token_syntax(std::string_view t) noexcept {
  if (t.empty() || t.size() > max_token_bytes) return false;
  std::size_t i = 0;
  while (i < t.size() && (is_alnum(t[i]) || t[i] == '-' || t[i] == '.' || t[i] == '_' ||
                          t[i] == '~' || t[i] == '+' || t[i] == '/'))
    ++i;
  if (i == 0) return false;
  while (i < t.size() && t[i] == '=')
    ++i;
  return i == t.size();
}

/// A decimal integer in [lo, hi], digits only (no sign, no spaces).
template <class T> std::optional<T> parse_uint(std::string_view s, T lo, T hi) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v < lo || v > hi)
    return std::nullopt;
  return v;
}

enum class route_id {
  health,
  metrics,
  nodes,
  node_action,
  jobs,
  job,
  job_cancel,
  job_logs,
  costs,
  finops_audit,
  mig_advice,
  spot_notice
};

struct route {
  route_id id;
  std::string_view methods; ///< "GET", "GET, POST", for Allow
  std::vector<std::string_view> segments;
};

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j + 1;
    if (out.size() > 8) break; // no route is this deep
  }
  return out;
}

std::optional<route> match(std::string_view path) {
  constexpr std::string_view prefix = "/v1/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  auto s = split_path(path.substr(prefix.size()));
  if (std::any_of(s.begin(), s.end(), [](std::string_view x) { return x.empty(); }))
    return std::nullopt; // "//", a trailing slash
  const auto is =
      [&](std::size_t n,
          std::initializer_list<std::pair<std::size_t, std::string_view>> fixed) {
        if (s.size() != n) return false;
        return std::all_of(fixed.begin(), fixed.end(),
                           [&](auto f) { return s[f.first] == f.second; });
      };
  if (is(1, {{0, "health"}})) return route{route_id::health, "GET", s};
  if (is(1, {{0, "metrics"}})) return route{route_id::metrics, "GET", s};
  if (is(1, {{0, "nodes"}})) return route{route_id::nodes, "GET", s};
  if (s.size() == 3 && s[0] == "nodes" &&
      (s[2] == "cordon" || s[2] == "uncordon" || s[2] == "drain"))
    return route{route_id::node_action, "POST", s};
  if (is(3, {{0, "nodes"}, {2, "spot-notice"}}))
    return route{route_id::spot_notice, "POST", s};
  if (is(1, {{0, "costs"}})) return route{route_id::costs, "GET", s};
  if (is(2, {{0, "finops"}, {1, "audit"}}))
    return route{route_id::finops_audit, "GET", s};
  if (is(2, {{0, "finops"}, {1, "mig-advice"}}))
    return route{route_id::mig_advice, "GET", s};
  if (is(1, {{0, "jobs"}})) return route{route_id::jobs, "GET, POST", s};
  if (is(2, {{0, "jobs"}})) return route{route_id::job, "GET, DELETE", s};
  if (is(3, {{0, "jobs"}, {2, "cancel"}})) return route{route_id::job_cancel, "POST", s};
  if (is(5, {{0, "jobs"}, {2, "replicas"}, {4, "logs"}}))
    return route{route_id::job_logs, "GET", s};
  return std::nullopt;
}

bool method_allowed(const route& r, std::string_view method) {
  if (method == "HEAD") method = "GET";
  std::string_view m = r.methods;
  while (!m.empty()) {
    std::size_t comma = m.find(", ");
    if (m.substr(0, comma) == method) return true;
    if (comma == std::string_view::npos) break;
    m.remove_prefix(comma + 2);
  }
  return false;
}

/// The query parameters of a route: each at most once, none unknown.
struct query_values {
  std::vector<std::pair<std::string_view, std::string_view>> items;
  std::optional<std::string_view> get(std::string_view name) const {
    for (const auto& [k, v] : items)
      if (k == name) return v;
    return std::nullopt;
  }
};

result<query_values> check_query(const api_request& rq,
                                 std::initializer_list<std::string_view> allowed) {
  query_values out;
  if (rq.query.size() > max_query_params) {
    return error{errc::invalid_argument, "too many query parameters"};
  }
  for (const auto& [k, v] : rq.query) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string expected;
      for (auto a : allowed)
        expected += (expected.empty() ? "" : ", ") + std::string(a);
      return error{errc::invalid_argument,
                   "unknown query parameter " + quote_for_error(k) +
                       (expected.empty() ? " (this route takes none)"
                                         : " (expected " + expected + ")")};
    }
    if (out.get(k)) {
      return error{errc::invalid_argument,
                   "query parameter " + quote_for_error(k) + " given more than once"};
    }
    out.items.emplace_back(k, v);
  }
  return out;
}

error bad_param(std::string_view name, std::string_view expected, std::string_view got) {
  return error{errc::invalid_argument, "query parameter \"" + std::string(name) +
                                           "\": expected " + std::string(expected) +
                                           ", got " + quote_for_error(got)};
}

/// The media type of a Content-Type header, lowercased, without parameters.
std::string media_type(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t'))
    t.remove_suffix(1);
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t'))
    t.remove_prefix(1);
  std::string out(t);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

/// A node name in a path that valid_id refuses.
error bad_node_name(std::string_view node) {
  return error{
      errc::invalid_argument,
      "node name: expected [A-Za-z0-9][A-Za-z0-9._:-]*, at most 128 bytes, got " +
          quote_for_error(node)};
}

/// GET /v1/costs' parameters: group (comma-separated period, tenant, team,
/// project, env; at least one), from_ms and to_ms (ms since the Unix epoch,
/// from before to), tenant (a tenant name), format (json or csv).
result<cost_query> parse_cost_query(const query_values& q) {
  cost_query out;
  if (auto g = q.get("group")) {
    out.group.clear();
    std::string_view rest = *g;
    while (true) {
      auto comma = rest.find(',');
      auto key = rest.substr(0, comma);
      if (key != "period" && key != "tenant" && key != "team" && key != "project" &&
          key != "env")
        return bad_param("group",
                         "a comma-separated list of period, tenant, team, "
                         "project, env",
                         *g);
      if (std::find(out.group.begin(), out.group.end(), key) != out.group.end())
        return bad_param("group", "each key at most once", *g);
      out.group.emplace_back(key);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  constexpr int64_t max_ms = int64_t{1} << 52; // year ~144,000: far past any ledger
  for (auto [name, field] : {std::pair{"from_ms", &out.from_ms}, {"to_ms", &out.to_ms}}) {
    if (auto v = q.get(name)) {
      auto n = parse_uint<uint64_t>(*v, 0, max_ms);
      if (!n) return bad_param(name, "ms since the Unix epoch (an integer >= 0)", *v);
      *field = static_cast<int64_t>(*n);
    }
  }
  if (out.from_ms && out.to_ms && *out.from_ms >= *out.to_ms)
    return error{errc::invalid_argument,
                 "query parameters from_ms and to_ms: from_ms must be before to_ms"};
  if (auto t = q.get("tenant")) {
    if (!valid_id(*t)) return bad_param("tenant", "a tenant name", *t);
    out.tenant = std::string{*t};
  }
  if (auto f = q.get("format")) {
    if (*f != "json" && *f != "csv") return bad_param("format", "json or csv", *f);
    out.csv = *f == "csv";
  }
  return out;
}

const char* action_name(node_action a) {
  switch (a) {
  case node_action::cordon:
    return "cordon";
  case node_action::uncordon:
    return "uncordon";
  case node_action::drain:
    return "drain";
  }
  return "?";
}

/// Percent-decodes a query component ('+' is a space); nullopt for a bad escape.
std::optional<std::string> decode_component(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex(s[i + 1]);
      int lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

} // namespace

std::pair<int, std::string> http_status_of(const error& e) {
  const std::error_code& c = e.code();
  if (c.category() == actors_category()) {
    switch (static_cast<errc>(c.value())) {
    case errc::invalid_argument:
      return {400, "invalid_argument"};
    case errc::unauthorized:
      return {401, "unauthorized"};
    case errc::forbidden:
      return {403, "forbidden"};
    case errc::not_found:
      return {404, "not_found"};
    case errc::conflict:
      return {409, "conflict"};
    case errc::exhausted:
      return {429, "exhausted"};
    case errc::unavailable:
      return {503, "unavailable"};
    case errc::ok:
      break;
    }
  } else if (c.category() == runtime::runtime_category()) {
    switch (static_cast<runtime::errc>(c.value())) {
    case runtime::errc::invalid_argument:
      return {400, "invalid_argument"};
    case runtime::errc::not_found:
      return {404, "not_found"};
    case runtime::errc::already_exists:
      return {409, "conflict"};
    case runtime::errc::timeout:
      return {504, "timeout"};
    case runtime::errc::overloaded:
      return {429, "overloaded"};
    case runtime::errc::disconnected:
    case runtime::errc::unavailable:
    case runtime::errc::stopped:
      return {503, "unavailable"};
    default:
      break;
    }
  }
  return {500, "internal"};
}

std::string error_body(std::string_view code, std::string_view message) {
  json j = {{"error", {{"code", code}, {"message", message}}}};
  return dump(j);
}

std::string log_chunk_json(const log_chunk& chunk, uint64_t offset) {
  json j = {{"data", chunk.data},
            {"offset", offset},
            {"next_offset", chunk.next_offset},
            {"finished", chunk.finished}};
  return dump(j);
}

result<void> validate(const api_options& o) {
  const auto bad = [](const std::string& what) {
    return error{errc::invalid_argument, "api: " + what};
  };
  if (o.threads < 2) return bad("threads: expected at least 2");
  if (o.max_follows < 0 || o.max_follows >= o.threads)
    return bad("max_follows: expected in [0, threads - 1] (a follow holds a thread)");
  if (o.max_body_bytes == 0) return bad("max_body_bytes: expected at least 1");
  if (o.read_timeout.count() <= 0 || o.write_timeout.count() <= 0)
    return bad("read_timeout and write_timeout: expected at least 1s");
  if (o.follow_poll.count() <= 0 || o.follow_heartbeat.count() <= 0 ||
      o.max_follow_time.count() <= 0)
    return bad("follow_poll, follow_heartbeat and max_follow_time: expected > 0");
  if (o.log_chunk_bytes == 0) return bad("log_chunk_bytes: expected at least 1");
  if (o.tls_cert_file.empty() != o.tls_key_file.empty())
    return bad("tls: give both a certificate and a key file, or neither");
  return ok();
}

http_api::http_api(control_plane& plane, const api_tokens& tokens, api_options options)
    : plane_(plane), tokens_(tokens), options_(std::move(options)) {}

http_api::~http_api() {
  shutdown();
}

void http_api::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

api_response http_api::handle(const api_request& rq) {
  try {
    auto r = match(rq.path);
    if (!r) {
      return fail(404, "not_found", "no route " + quote_for_error(rq.path));
    }
    if (!method_allowed(*r, rq.method)) {
      api_response res =
          fail(405, "method_not_allowed",
               quote_for_error(rq.method) +
                   " is not allowed here (allowed: " + std::string(r->methods) + ")");
      res.headers.emplace_back("Allow", std::string(r->methods));
      return res;
    }
    const auto& seg = r->segments;

    if (r->id == route_id::health) {
      if (auto q = check_query(rq, {}); !q) return fail(q.err());
      if (!plane_.healthy()) return fail(503, "unavailable", "the control plane is down");
      return ok_json(R"({"status":"ok"})");
    }

    // Authentication: exactly one "Authorization: Bearer <token>".
    std::optional<caller> who;
    const bool needs_token =
        r->id != route_id::metrics || options_.metrics != metrics_access::open;
    if (needs_token) {
      if (rq.authorization.empty()) return unauthorized("missing bearer token", false);
      if (rq.authorization.size() > 1)
        return unauthorized("more than one Authorization header", false);
      std::string_view h = rq.authorization.front();
      std::size_t sp = h.find(' ');
      if (sp == std::string_view::npos || !ascii_iequal(h.substr(0, sp), "Bearer")) {
        return unauthorized("expected \"Authorization: Bearer <token>\"", false);
      }
      std::string_view token = h.substr(sp + 1);
      while (!token.empty() && token.front() == ' ')
        token.remove_prefix(1);
      if (!valid_token_syntax(token)) return unauthorized("malformed bearer token", true);
      who = tokens_.authenticate(token);
      if (!who) return unauthorized("invalid bearer token", true);
    }

    switch (r->id) {
    case route_id::health:
      break; // answered above
    case route_id::metrics: {
      if (auto q = check_query(rq, {}); !q) return fail(q.err());
      if (options_.metrics == metrics_access::admin && !who->admin)
        return fail(403, "forbidden", "metrics need an admin token");
      api_response res = ok_json(plane_.metrics_text());
      res.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return res;
    }
    case route_id::nodes: {
      if (auto q = check_query(rq, {}); !q) return fail(q.err());
      auto nodes = plane_.nodes(*who);
      if (!nodes) return fail(nodes.err());
      return ok_json(std::move(*nodes));
    }
    case route_id::node_action: {
      if (!who->admin) return fail(403, "forbidden", "node actions need an admin token");
      std::string_view node = seg[1];
      if (!valid_id(node)) return fail(bad_node_name(node));
      if (auto q = check_query(rq, {}); !q) return fail(q.err());
      node_action action = seg[2] == "cordon"     ? node_action::cordon
                           : seg[2] == "uncordon" ? node_action::uncordon
                                                  : node_action::drain;
      if (auto done = plane_.act_on_node(*who, node, action); !done)
        return fail(done.err());
      return ok_json(dump(json{{"node", node}, {"action", action_name(action)}}));
    }
    case route_id::spot_notice: {
      if (!who->admin) return fail(403, "forbidden", "spot notices need an admin token");
      std::string_view node = seg[1];
      if (!valid_id(node)) return fail(bad_node_name(node));
      auto q = check_query(rq, {"deadline_s"});
      if (!q) return fail(q.err());
      auto d = q->get("deadline_s");
      if (!d)
        return fail(400, "invalid_argument",
                    "query parameter \"deadline_s\" is required: seconds until the "
                    "node's capacity goes away");
      auto secs = parse_uint<uint32_t>(*d, 0, 86'400);
      if (!secs) return fail(bad_param("deadline_s", "seconds in [0, 86400]", *d));
      auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
      auto plan = plane_.spot_notice(*who, node, now_ms + int64_t{*secs} * 1000);
      if (!plan) return fail(plan.err());
      return ok_json(std::move(*plan));
    }
    case route_id::costs: {
      auto q = check_query(rq, {"group", "from_ms", "to_ms", "tenant", "format"});
      if (!q) return fail(q.err());
      auto cq = parse_cost_query(*q);
      if (!cq) return fail(cq.err());
      auto report = plane_.costs(*who, *cq);
      if (!report) return fail(report.err());
      if (!cq->csv) return ok_json(std::move(*report));
      json doc = json::parse(*report, nullptr, false);
      if (!doc.is_object() || !doc.contains("csv") || !doc["csv"].is_string())
        return fail(500, "internal", "unreadable CSV report");
      api_response res = ok_json(doc["csv"].get<std::string>());
      res.content_type = "text/csv; charset=utf-8";
      return res;
    }
    case route_id::mig_advice: {
      if (!who->admin) return fail(403, "forbidden", "MIG advice needs an admin token");
      if (auto q = check_query(rq, {}); !q) return fail(q.err());
      auto advice = plane_.mig_advice(*who);
      if (!advice) return fail(advice.err());
      return ok_json(std::move(*advice));
    }
    case route_id::finops_audit: {
      if (!who->admin)
        return fail(403, "forbidden", "the audit log needs an admin token");
      auto q = check_query(rq, {"after", "limit"});
      if (!q) return fail(q.err());
      uint64_t after = 0;
      uint32_t limit = 100;
      if (auto a = q->get("after")) {
        auto n = parse_uint<uint64_t>(*a, 0, uint64_t{1} << 62);
        if (!n)
          return fail(bad_param("after", "a sequence number (an integer >= 0)", *a));
        after = *n;
      }
      if (auto l = q->get("limit")) {
        auto n = parse_uint<uint32_t>(*l, 1, 1000);
        if (!n) return fail(bad_param("limit", "an integer in [1, 1000]", *l));
        limit = *n;
      }
      auto records = plane_.finops_audit(*who, after, limit);
      if (!records) return fail(records.err());
      return ok_json(std::move(*records));
    }
    case route_id::jobs: {
      if (rq.method == "POST") {
        if (auto q = check_query(rq, {}); !q) return fail(q.err());
        if (std::string m = media_type(rq.content_type); !m.empty() && m != json_type) {
          return fail(415, "unsupported_media_type",
                      "expected Content-Type: application/json, got " +
                          quote_for_error(rq.content_type));
        }
        if (rq.body.size() > options_.max_body_bytes) {
          return fail(413, "payload_too_large",
                      "a job spec is at most " + std::to_string(options_.max_body_bytes) +
                          " bytes");
        }
        job_spec_limits limits;
        limits.max_bytes = std::min(limits.max_bytes, options_.max_body_bytes);
        auto spec = decode_job_spec(rq.body, limits);
        if (!spec) return fail(spec.err());
        auto job = plane_.submit(*who, std::move(*spec));
        if (!job) return fail(job.err());
        api_response res = ok_json(std::move(*job), 201);
        json doc = json::parse(res.body, nullptr, false);
        if (doc.is_object() && doc.contains("id") && doc["id"].is_string() &&
            valid_id(doc["id"].get_ref<const std::string&>())) {
          res.headers.emplace_back("Location",
                                   "/v1/jobs/" + doc["id"].get<std::string>());
        }
        return res;
      }
      auto q = check_query(rq, {"limit", "after"});
      if (!q) return fail(q.err());
      page_request page;
      if (auto limit = q->get("limit")) {
        auto n = parse_uint<uint32_t>(*limit, 1, 1000);
        if (!n) return fail(bad_param("limit", "an integer in [1, 1000]", *limit));
        page.limit = *n;
      }
      if (auto after = q->get("after")) {
        bool printable = std::all_of(after->begin(), after->end(), [](char c) {
          return static_cast<unsigned char>(c) > 0x20 &&
                 static_cast<unsigned char>(c) < 0x7f;
        });
        if (after->size() > max_cursor_bytes || !printable)
          return fail(
              bad_param("after", "a cursor from a previous page's \"next\"", *after));
        page.after = std::string(*after);
      }
      auto jobs = plane_.list_jobs(*who, page);
      if (!jobs) return fail(jobs.err());
      return ok_json(std::move(*jobs));
    }
    case route_id::job:
    case route_id::job_cancel:
    case route_id::job_logs: {
      std::string_view id = seg[1];
      if (!valid_id(id)) return fail(404, "not_found", "no job " + quote_for_error(id));
      // A job route never says forbidden: that would tell the job exists.
      const auto job_fail = [&](const error& e) {
        if (e.is(errc::forbidden))
          return fail(404, "not_found", "no job " + quote_for_error(id));
        return fail(e);
      };
      if (r->id != route_id::job_logs) {
        if (auto q = check_query(rq, {}); !q) return fail(q.err());
        auto doc = rq.method == "GET" || rq.method == "HEAD"
                       ? plane_.get_job(*who, id)
                       : plane_.cancel_job(*who, id);
        if (!doc) return job_fail(doc.err());
        return ok_json(std::move(*doc));
      }
      auto replica = parse_uint<uint32_t>(seg[3], 0, 1u << 20);
      if (!replica)
        return fail(400, "invalid_argument",
                    "replica: expected a replica index (0, 1, ...), got " +
                        quote_for_error(seg[3]));
      auto q = check_query(rq, {"stream", "offset", "follow"});
      if (!q) return fail(q.err());
      log_stream stream = log_stream::stdout_log;
      if (auto s = q->get("stream")) {
        if (*s == "stdout")
          stream = log_stream::stdout_log;
        else if (*s == "stderr")
          stream = log_stream::stderr_log;
        else
          return fail(bad_param("stream", "stdout or stderr", *s));
      }
      uint64_t offset = 0;
      if (auto o = q->get("offset")) {
        auto n = parse_uint<uint64_t>(*o, 0, uint64_t{1} << 62);
        if (!n) return fail(bad_param("offset", "a byte offset (an integer >= 0)", *o));
        offset = *n;
      }
      bool follow = false;
      if (auto f = q->get("follow")) {
        if (*f == "1" || *f == "true")
          follow = true;
        else if (*f != "0" && *f != "false")
          return fail(bad_param("follow", "1, true, 0 or false", *f));
      }
      auto chunk =
          plane_.logs(*who, id, *replica, stream, offset, options_.log_chunk_bytes);
      if (!chunk) return job_fail(chunk.err());
      std::string line = log_chunk_json(*chunk, offset);
      if (!follow) return ok_json(std::move(line));
      api_response res;
      res.content_type = std::string(ndjson_type);
      if (chunk->finished) {
        res.body = std::move(line) + "\n";
        return res;
      }
      res.follow =
          log_follow{*who, std::string(id), *replica, stream, offset, std::move(*chunk)};
      res.headers.emplace_back("X-Troupe-Offset", std::to_string(offset));
      return res;
    }
    }
    return fail(500, "internal", "unrouted request");
  } catch (const std::exception& e) {
    return fail(500, "internal", std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(500, "internal", "internal error");
  }
}

template <class Write> bool http_api::stream_follow(const log_follow& f, Write&& write) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + options_.max_follow_time;
  auto last_write = clock::now();
  uint64_t offset = f.first.next_offset;
  // The first chunk was read by handle(); send it even when empty so the
  // client sees the stream start.
  if (!write(log_chunk_json(f.first, f.offset) + "\n")) return false;
  // A full chunk means more is waiting: read on without pausing.
  bool backlog = f.first.data.size() >= options_.log_chunk_bytes;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      const auto wake = backlog ? clock::now()
                                : std::min(deadline, clock::now() + options_.follow_poll);
      cv_.wait_until(lock, wake, [&] { return stopping_; });
      if (stopping_) return true;
    }
    if (clock::now() >= deadline) return true;
    auto chunk = plane_.logs(f.who, f.job_id, f.replica, f.stream, offset,
                             options_.log_chunk_bytes);
    if (!chunk) {
      // The stream has started (status 200): the error is its last line.
      const error& e = chunk.err();
      std::string code = e.is(errc::forbidden) ? "not_found" : http_status_of(e).second;
      return write(error_body(code, e.message()) + "\n");
    }
    backlog = chunk->data.size() >= options_.log_chunk_bytes;
    const bool news = !chunk->data.empty() || chunk->finished;
    if (news || clock::now() - last_write >= options_.follow_heartbeat) {
      uint64_t at = offset;
      offset = chunk->next_offset;
      if (!write(log_chunk_json(*chunk, at) + "\n")) return false;
      last_write = clock::now();
    }
    if (chunk->finished) return true;
  }
}

void http_api::install_routes(httplib::Server& srv) {
  srv.set_payload_max_length(options_.max_body_bytes);
  srv.set_read_timeout(options_.read_timeout);
  srv.set_write_timeout(options_.write_timeout);
  // httplib closes a keep-alive connection after 5 requests by default.
  srv.set_keep_alive_max_count(1000);
  // Small JSON answers: no Nagle delay (40 ms with delayed ACKs).
  srv.set_tcp_nodelay(true);

  // Every request comes here; `body` is read already (or was too large).
  const auto serve = [this](const httplib::Request& req, httplib::Response& res,
                            std::string body, bool too_large) {
    api_request rq;
    rq.method = req.method;
    rq.path = req.path;
    // The query from the raw target (httplib's params also take form bodies).
    std::string_view target = req.target;
    if (std::size_t qm = target.find('?'); qm != std::string_view::npos) {
      std::string_view qs = target.substr(qm + 1);
      while (!qs.empty()) {
        std::size_t amp = qs.find('&');
        std::string_view item = qs.substr(0, amp);
        qs = amp == std::string_view::npos ? std::string_view{} : qs.substr(amp + 1);
        if (item.empty()) continue;
        std::size_t eq = item.find('=');
        auto k = decode_component(item.substr(0, eq));
        auto v = decode_component(eq == std::string_view::npos ? std::string_view{}
                                                               : item.substr(eq + 1));
        if (!k || !v) {
          res.status = 400;
          res.set_content(
              error_body("invalid_argument", "malformed %-escape in the query"),
              std::string(json_type));
          return;
        }
        rq.query.emplace_back(std::move(*k), std::move(*v));
      }
    }
    for (std::size_t i = 0, n = req.get_header_value_count("Authorization"); i < n; ++i)
      rq.authorization.push_back(req.get_header_value("Authorization", i));
    rq.content_type = req.get_header_value("Content-Type");
    rq.body = std::move(body);
    if (too_large) {
      res.status = 413;
      res.set_content(error_body("payload_too_large",
                                 "request body over " +
                                     std::to_string(options_.max_body_bytes) + " bytes"),
                      std::string(json_type));
      return;
    }

    api_response out = handle(rq);
    res.status = out.status;
    for (auto& [k, v] : out.headers)
      res.set_header(k, v);
    res.set_header("Cache-Control", "no-store");
    if (!out.follow) {
      res.set_content(out.body, out.content_type);
      return;
    }
    // A follow holds this worker thread: bound how many run at once.
    if (follows_.fetch_add(1) >= options_.max_follows) {
      follows_.fetch_sub(1);
      res.status = 429;
      res.set_content(
          error_body("exhausted", "too many log follows at once; retry later"),
          std::string(json_type));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        follows_.fetch_sub(1);
        res.status = 503;
        res.set_content(error_body("unavailable", "the API is shutting down"),
                        std::string(json_type));
        return;
      }
    }
    auto follow = std::make_shared<log_follow>(std::move(*out.follow));
    res.set_chunked_content_provider(
        std::string(ndjson_type),
        [this, follow](size_t, httplib::DataSink& sink) {
          bool alive = stream_follow(*follow, [&](const std::string& line) {
            return sink.write(line.data(), line.size());
          });
          if (!alive) return false; // the client went away: drop the connection
          sink.done();
          return true;
        },
        [this](bool) { follows_.fetch_sub(1); });
  };
  const auto without_body = [serve](const httplib::Request& req, httplib::Response& res) {
    serve(req, res, {}, false);
  };
  // Bodies are read here, not by httplib: its 0.11 bounds a body with a
  // Content-Length but not a chunked one. Past the limit the rest is
  // drained without being kept (so the connection stays usable), and past
  // drain_factor times the limit reading stops.
  constexpr std::size_t drain_factor = 8;
  const std::size_t max = options_.max_body_bytes;
  const auto with_body = [serve, max](const httplib::Request& req, httplib::Response& res,
                                      const httplib::ContentReader& reader) {
    std::string body;
    bool too_large = false;
    std::size_t drained = 0;
    // Without a length or chunks a request has no body (RFC 9112 6.3);
    // httplib 0.11 would wait for the connection to end.
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      serve(req, res, {}, false);
      return;
    }
    bool read = reader([&](const char* data, size_t n) {
      if (!too_large && n <= max - body.size()) {
        body.append(data, n);
        return true;
      }
      too_large = true;
      std::string().swap(body);
      drained += n;
      return drained <= drain_factor * max;
    });
    // httplib refuses a Content-Length over the limit itself (status 413).
    if (!read && res.status == 413) too_large = true;
    if (!read && !too_large) {
      res.status = 400; // a broken chunked encoding, a read timeout
      res.set_content(error_body("invalid_argument", "cannot read the request body"),
                      std::string(json_type));
      return;
    }
    serve(req, res, std::move(body), too_large);
  };
  const std::string any = R"([\s\S]*)";
  srv.Get(any, without_body);
  srv.Options(any, without_body);
  srv.Post(any, with_body);
  srv.Put(any, with_body);
  srv.Patch(any, with_body);
  srv.Delete(any, with_body);

  // httplib's own errors (413 for a body over the limit, 400 for a request
  // it cannot parse) get the same JSON shape; ours already have a body.
  srv.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty() || res.is_chunked_content_provider_)
          return httplib::Server::HandlerResponse::Unhandled;
        std::string code = res.status == 413   ? "payload_too_large"
                           : res.status == 404 ? "not_found"
                           : res.status < 500  ? "invalid_argument"
                                               : "internal";
        std::string message = res.status == 413   ? "request body too large"
                              : res.status == 404 ? "no such route"
                                                  : "malformed HTTP request";
        res.set_content(error_body(code, message), std::string(json_type));
        return httplib::Server::HandlerResponse::Handled;
      }));
  srv.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content(error_body("internal", "internal error"), std::string(json_type));
      });
}

result<std::unique_ptr<api_server>>
api_server::start(control_plane& plane, const api_tokens& tokens, api_options options) {
  if (auto valid = validate(options); !valid) return valid.err();
  std::unique_ptr<api_server> out(new api_server());
  out->api_ = std::make_unique<http_api>(plane, tokens, options);
  http_api* api = out->api_.get();
  const auto routes = [api](httplib::Server& srv) { api->install_routes(srv); };
  auto started =
      options.tls_cert_file.empty()
          ? http::server::start(options.bind_address, options.port, routes,
                                options.threads)
          : http::server::start_tls(options.bind_address, options.port,
                                    {options.tls_cert_file, options.tls_key_file}, routes,
                                    options.threads);
  if (!started) return std::move(started).err();
  out->server_ = std::move(*started);
  out->tls_ = !options.tls_cert_file.empty();
  return out;
}

api_server::~api_server() {
  stop();
}

void api_server::stop() {
  if (api_) api_->shutdown();
  if (server_) server_->stop();
}

} // namespace troupe::actors
