// libFuzzer target: the head's HTTP API request path (http_api::handle,
// troupe/actors/http_api.hpp) against an in-memory control plane, for any
// method, path, query, Authorization and Content-Type headers and body. It
// must never crash, hang or throw; every answer has a status in [200, 599]
// and, from 400 on, a JSON {"error": {"code", "message"}} body; a rejected
// request changes nothing; and the tenant "acme" never sees a byte of the
// tenant "globex".
//
// Input: a request in a simplified HTTP/1.1 form,
//   <METHOD> <path>[?<name>=<value>&...]\n
//   Authorization: <value>\n      (any number, in order)
//   Content-Type: <value>\n
//   \n
//   <body>
// Tokens "tA" (tenant acme), "tG" (tenant globex) and "tR" (admin) are known.

#include "../actors/memory_control_plane.hpp"
#include "troupe/actors/api_tokens.hpp"
#include "troupe/actors/http_api.hpp"

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

using namespace troupe::actors;

namespace {

std::string_view next_line(std::string_view& in) {
  std::size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  return line;
}

api_request parse_input(std::string_view in) {
  api_request rq;
  std::string_view first = next_line(in);
  std::size_t sp = first.find(' ');
  rq.method = std::string(first.substr(0, sp));
  std::string_view target = sp == std::string_view::npos ? "" : first.substr(sp + 1);
  std::size_t qm = target.find('?');
  rq.path = std::string(target.substr(0, qm));
  if (qm != std::string_view::npos) {
    std::string_view qs = target.substr(qm + 1);
    while (!qs.empty()) {
      std::size_t amp = qs.find('&');
      std::string_view item = qs.substr(0, amp);
      qs = amp == std::string_view::npos ? std::string_view{} : qs.substr(amp + 1);
      std::size_t eq = item.find('=');
      rq.query.emplace_back(
          std::string(item.substr(0, eq)),
          eq == std::string_view::npos ? "" : std::string(item.substr(eq + 1)));
    }
  }
  while (!in.empty()) {
    std::string_view h = next_line(in);
    if (h.empty()) break;
    if (h.rfind("Authorization: ", 0) == 0) rq.authorization.emplace_back(h.substr(15));
    if (h.rfind("Content-Type: ", 0) == 0) rq.content_type = std::string(h.substr(14));
  }
  rq.body = std::string(in);
  return rq;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const api_tokens tokens = [] {
    api_tokens t;
    (void)t.add(digest_token("tA"), {"acme", false});
    (void)t.add(digest_token("tG"), {"globex", false});
    (void)t.add(digest_token("tR"), {"ops", true});
    return t;
  }();
  testing::memory_control_plane plane;
  // One job of each tenant: job-000001 (acme) and job-000002 (globex).
  const std::string secret = "globex-secret";
  auto acme =
      plane.submit({"acme", false}, *decode_job_spec(R"({"name":"a","command":["x"]})"));
  auto globex = plane.submit(
      {"globex", false}, *decode_job_spec(R"({"name":"globex-secret","command":["x"]})"));
  if (!acme.ok() || !globex.ok()) __builtin_trap();
  plane.append_log("job-000001", 0, log_stream::stdout_log, "acme log\n");
  plane.append_log("job-000002", 0, log_stream::stdout_log, secret + "\n", true);

  api_options options;
  options.max_body_bytes = 4096;
  options.log_chunk_bytes = 64;
  http_api api(plane, tokens, options);
  const std::string before = plane.snapshot();

  api_request rq = parse_input({reinterpret_cast<const char*>(data), size});
  api_response res = api.handle(rq);

  if (res.status < 200 || res.status > 599) __builtin_trap();
  if (res.status >= 400) {
    auto j = nlohmann::json::parse(res.body, nullptr, false);
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object())
      __builtin_trap();
    if (!j["error"].contains("code") || !j["error"]["code"].is_string()) __builtin_trap();
    if (!j["error"].contains("message") || !j["error"]["message"].is_string())
      __builtin_trap();
    if (plane.snapshot() != before) __builtin_trap(); // rejected: nothing changed
  } else if (res.content_type == "application/json") {
    if (!nlohmann::json::accept(res.body)) __builtin_trap();
  }
  // Only globex's and the admin's tokens may see globex's job.
  bool globex_or_admin = false;
  for (const auto& a : rq.authorization)
    if (a.find("tG") != std::string::npos || a.find("tR") != std::string::npos)
      globex_or_admin = true;
  const std::string_view input{reinterpret_cast<const char*>(data), size};
  if (!globex_or_admin && input.find(secret) == std::string_view::npos) {
    if (res.body.find(secret) != std::string::npos) __builtin_trap();
    if (res.follow && res.follow->first.data.find(secret) != std::string::npos)
      __builtin_trap();
  }
  return 0;
}
