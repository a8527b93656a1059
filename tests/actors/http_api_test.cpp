// The head's HTTP API (http_api.hpp) over real HTTP on loopback, against an
// in-memory control plane: every route, a hostile-request table (each row
// with its status and error code, and the control plane unchanged after
// it), tenant isolation, pagination, idempotency, followed logs (to the
// end, a client that goes away, the cap on follows), TLS with a
// self-signed certificate made here, and handle() on its own.

#include "memory_control_plane.hpp"
#include "troupe/actors/api_tokens.hpp"
#include "troupe/actors/errc.hpp"
#include "troupe/actors/http_api.hpp"
#include "troupe/runtime/errc.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <doctest/doctest.h>
#include <filesystem>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace troupe;
using namespace troupe::actors;
using troupe::actors::testing::memory_control_plane;
using json = nlohmann::json;

namespace {

/// Three minted tokens: two tenants and an admin, in a token table.
struct token_set {
  std::string acme, globex, admin;
  api_tokens table;
  token_set() {
    std::string file;
    for (auto [who, out] : {std::pair{caller{"acme", false}, &acme},
                            std::pair{caller{"globex", false}, &globex},
                            std::pair{caller{"ops", true}, &admin}}) {
      auto m = mint_api_token(who.tenant, who.admin);
      REQUIRE(m.ok());
      *out = m->token;
      file += m->line + "\n";
    }
    auto parsed = api_tokens::parse(file, "test-tokens");
    REQUIRE(parsed.ok());
    table = std::move(*parsed);
  }
};

api_options test_options() {
  api_options o;
  o.port = 0;
  o.threads = 4;
  o.max_follows = 2;
  o.max_body_bytes = 64 * 1024;
  o.follow_poll = 10ms;
  o.follow_heartbeat = 100ms;
  o.max_follow_time = 20s;
  o.log_chunk_bytes = 16;
  return o;
}

httplib::Headers bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

const std::string spec_json = R"({"name": "train", "command": ["python", "train.py"],
                                   "replicas": 2})";

/// A server on a free loopback port with its control plane and tokens.
struct fixture {
  memory_control_plane plane;
  token_set tokens;
  std::unique_ptr<api_server> server;
  explicit fixture(api_options o = test_options()) {
    auto s = api_server::start(plane, tokens.table, std::move(o));
    REQUIRE_MESSAGE(s.ok(), s.err().to_string());
    server = std::move(*s);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server->port());
    c.set_read_timeout(10, 0);
    return c;
  }
  /// Submits spec_json (or `spec`) as `token`; returns the job id.
  std::string submit(const std::string& token, const std::string& spec = spec_json) {
    auto c = client();
    auto r = c.Post("/v1/jobs", bearer(token), spec, "application/json");
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == 201, r->body);
    return json::parse(r->body).at("id").get<std::string>();
  }
};

/// Sends raw bytes and returns whatever the server answers before closing.
std::string raw_exchange(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  // ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.find("\r\n\r\n") != std::string::npos) {
      // Enough once the declared body is in.
      auto cl = out.find("Content-Length: ");
      auto head_end = out.find("\r\n\r\n") + 4;
      if (cl != std::string::npos &&
          out.size() >= head_end + std::stoul(out.substr(cl + 16)))
        break;
    }
  }
  ::close(fd);
  return out;
}

std::string error_code_of(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("error")) return "<no error object: " + body + ">";
  return j["error"].value("code", "<no code>");
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files.
struct self_signed {
  std::filesystem::path dir, cert, key;
  self_signed() {
    dir = std::filesystem::temp_directory_path() /
          ("troupe-api-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    cert = dir / "cert.pem";
    key = dir / "key.pem";
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    REQUIRE(pkey != nullptr);
    X509* x = X509_new();
    REQUIRE(x != nullptr);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                              std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      REQUIRE(ext != nullptr);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    REQUIRE(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE* f = std::fopen(cert.c_str(), "w");
    REQUIRE(f != nullptr);
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(key.c_str(), "w");
    REQUIRE(f != nullptr);
    PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
  }
  ~self_signed() { std::filesystem::remove_all(dir); }
};

} // namespace

TEST_SUITE("http_api") {
  TEST_CASE("health needs no token and says 503 when the control plane is down") {
    fixture f;
    auto c = f.client();
    auto r = c.Get("/v1/health");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(json::parse(r->body)["status"] == "ok");
    CHECK(r->get_header_value("Content-Type") == "application/json");
    f.plane.set_healthy(false);
    r = c.Get("/v1/health");
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(error_code_of(r->body) == "unavailable");
  }

  TEST_CASE("jobs: submit, get, list in pages, cancel, idempotency, tenants apart") {
    fixture f;
    auto c = f.client();
    auto r =
        c.Post("/v1/jobs", bearer(f.tokens.acme),
               R"({"name": "a", "command": "echo hi", "labels": {"tenant": "globex"}})",
               "application/json; charset=utf-8");
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == 201, r->body);
    auto job = json::parse(r->body);
    const std::string id = job["id"];
    CHECK(r->get_header_value("Location") == "/v1/jobs/" + id);
    CHECK(job["tenant"] == "acme"); // the token's tenant, not the label
    CHECK(job["state"] == "running");

    r = c.Get("/v1/jobs/" + id, bearer(f.tokens.acme));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(json::parse(r->body)["id"] == id);

    // The same idempotency key twice: one job.
    const std::string keyed =
        R"({"name": "k", "command": ["true"], "idempotency_key": "c0ffee-42"})";
    auto first = f.submit(f.tokens.acme, keyed);
    auto second = f.submit(f.tokens.acme, keyed);
    CHECK(first == second);
    // Another tenant's same key is another job.
    CHECK(f.submit(f.tokens.globex, keyed) != first);

    for (int i = 0; i < 5; ++i)
      f.submit(f.tokens.acme);
    // acme has 7 jobs; pages of 3, newest first, never another tenant's.
    std::vector<std::string> seen;
    std::string after;
    for (int page = 0; page < 10; ++page) {
      std::string path = "/v1/jobs?limit=3" + (after.empty() ? "" : "&after=" + after);
      r = c.Get(path, bearer(f.tokens.acme));
      REQUIRE(r);
      REQUIRE_MESSAGE(r->status == 200, r->body);
      auto doc = json::parse(r->body);
      CHECK(doc["jobs"].size() <= 3);
      for (const auto& j : doc["jobs"]) {
        CHECK(j["tenant"] == "acme");
        seen.push_back(j["id"]);
      }
      after = doc["next"];
      if (after.empty()) break;
    }
    CHECK(seen.size() == 7);
    CHECK(std::is_sorted(seen.rbegin(), seen.rend()));
    // The admin sees all 8.
    r = c.Get("/v1/jobs?limit=1000", bearer(f.tokens.admin));
    REQUIRE(r);
    CHECK(json::parse(r->body)["jobs"].size() == 8);

    r = c.Post("/v1/jobs/" + id + "/cancel", bearer(f.tokens.acme), "",
               "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(json::parse(r->body)["state"] == "cancelled");
    // Cancelling again is no error; DELETE is the same.
    r = c.Delete("/v1/jobs/" + id, bearer(f.tokens.acme));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(json::parse(r->body)["state"] == "cancelled");
  }

  TEST_CASE("control plane errors map to statuses with JSON bodies") {
    fixture f;
    auto c = f.client();
    // invalid_argument from the control plane: 400 with its message.
    auto r = c.Post("/v1/jobs", bearer(f.tokens.acme),
                    R"({"name": "big", "command": ["x"], "resources": {"gpus": 64}})",
                    "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(error_code_of(r->body) == "invalid_argument");
    CHECK(json::parse(r->body)["error"]["message"].get<std::string>().find(
              "no node has 64") != std::string::npos);

    CHECK(http_status_of(error{errc::exhausted, "x"}) ==
          std::pair{429, std::string("exhausted")});
    CHECK(http_status_of(error{errc::conflict, "x"}).first == 409);
    CHECK(http_status_of(error{errc::unavailable, "x"}).first == 503);
    CHECK(http_status_of(error{errc::unauthorized, "x"}).first == 401);
    CHECK(http_status_of(error{errc::forbidden, "x"}).first == 403);
    CHECK(http_status_of(error{runtime::errc::timeout, "x"}) ==
          std::pair{504, std::string("timeout")});
    CHECK(http_status_of(error{runtime::errc::overloaded, "x"}).first == 429);
    CHECK(http_status_of(error{runtime::errc::internal, "x"}).first == 500);
    CHECK(http_status_of(error{std::make_error_code(std::errc::io_error), "x"}).first ==
          500);
  }

  TEST_CASE("nodes: anyone lists, admins act") {
    fixture f;
    auto c = f.client();
    auto r = c.Get("/v1/nodes", bearer(f.tokens.globex));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(json::parse(r->body)["nodes"].size() == 2);
    r = c.Post("/v1/nodes/gpu-a/drain", bearer(f.tokens.admin), "", "application/json");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(json::parse(r->body) == json{{"node", "gpu-a"}, {"action", "drain"}});
    CHECK(f.plane.node_state("gpu-a") == "draining");
    r = c.Post("/v1/nodes/gpu-a/uncordon", bearer(f.tokens.admin), "",
               "application/json");
    REQUIRE(r);
    CHECK(f.plane.node_state("gpu-a") == "schedulable");
    r = c.Post("/v1/nodes/gpu-z/cordon", bearer(f.tokens.admin), "", "application/json");
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(error_code_of(r->body) == "not_found");
  }

  TEST_CASE("costs: a tenant's own rows, an admin's any, as JSON or CSV; audit log "
            "and spot notices for admins") {
    fixture f;
    auto charge = [&](uint64_t alloc, const char* tenant, const char* team,
                      int64_t gpu_ms) {
      finops::usage_entry e;
      e.allocation = finops::allocation_id{alloc};
      e.tenant = tenant;
      e.cost_labels = {{"team", team}};
      e.span = {time_point{1h}, time_point{1h + 10min}};
      e.gpu_ms = gpu_ms;
      e.used_gpu_ms = gpu_ms / 2;
      e.price_per_gpu_hour = micro_usd{3'600'000}; // $3.60/GPU-h: 1 micro-USD per GPU-ms
      f.plane.charge(e);
    };
    charge(1, "acme", "vision", 1'000);
    charge(2, "acme", "speech", 2'000);
    charge(3, "globex", "vision", 4'000);
    auto c = f.client();
    auto rows_of = [&](const std::string& token, const std::string& path) {
      auto r = c.Get(path, bearer(token));
      REQUIRE(r);
      REQUIRE_MESSAGE(r->status == 200, r->body);
      return json::parse(r->body)["rows"];
    };
    auto mine = rows_of(f.tokens.acme, "/v1/costs?group=tenant");
    REQUIRE(mine.size() == 1);
    CHECK(mine[0]["tenant"] == "acme");
    CHECK(mine[0]["gpu_ms"] == 3'000);
    CHECK(mine[0]["cost_micro_usd"] == 3'000);
    // Grouped by team only, a tenant still sees only its own GPU-ms.
    auto by_team = rows_of(f.tokens.acme, "/v1/costs?group=team");
    int64_t sum = 0;
    for (auto& r : by_team)
      sum += r["gpu_ms"].get<int64_t>();
    CHECK(sum == 3'000);
    auto all = rows_of(f.tokens.admin, "/v1/costs?group=tenant,team");
    CHECK(all.size() == 3);
    auto one = rows_of(f.tokens.admin, "/v1/costs?group=tenant&tenant=globex");
    REQUIRE(one.size() == 1);
    CHECK(one[0]["gpu_ms"] == 4'000);
    CHECK(rows_of(f.tokens.acme, "/v1/costs?tenant=acme").size() == 1);
    // The window is on period starts, [from, to): the plane's periods are
    // days, so every charge above is in the period starting at 0.
    CHECK(rows_of(f.tokens.admin, "/v1/costs?from_ms=3600000&to_ms=7200000").empty());
    auto q = f.plane.last_cost_query();
    REQUIRE(q);
    CHECK(q->from_ms == 3'600'000);
    CHECK(q->to_ms == 7'200'000);
    CHECK(rows_of(f.tokens.admin, "/v1/costs?from_ms=0&to_ms=1").size() == 2);
    auto csv = c.Get("/v1/costs?group=tenant&format=csv", bearer(f.tokens.globex));
    REQUIRE(csv);
    CHECK(csv->status == 200);
    CHECK(csv->get_header_value("Content-Type") == "text/csv; charset=utf-8");
    CHECK(csv->body.starts_with("period_start_ms,tenant,"));
    CHECK(csv->body.find("globex") != std::string::npos);
    CHECK(csv->body.find("acme") == std::string::npos);

    // A spot notice (admins), then the audit log shows it.
    auto before = std::chrono::system_clock::now();
    auto n = c.Post("/v1/nodes/gpu-b/spot-notice?deadline_s=120", bearer(f.tokens.admin),
                    "", "application/json");
    REQUIRE(n);
    REQUIRE_MESSAGE(n->status == 200, n->body);
    auto plan = json::parse(n->body);
    CHECK(plan["node"] == "gpu-b");
    auto deadline = std::chrono::system_clock::time_point{
        std::chrono::milliseconds{plan["deadline_ms"].get<int64_t>()}};
    CHECK(deadline >= before + 119s);
    CHECK(deadline <= std::chrono::system_clock::now() + 121s);
    auto a = c.Get("/v1/finops/audit?limit=10", bearer(f.tokens.admin));
    REQUIRE(a);
    REQUIRE(a->status == 200);
    auto audit = json::parse(a->body);
    REQUIRE(audit["records"].size() == 1);
    CHECK(audit["records"][0]["node"] == "gpu-b");
    CHECK(audit["next"] == 1);
    a = c.Get("/v1/finops/audit?after=1", bearer(f.tokens.admin));
    REQUIRE(a);
    CHECK(json::parse(a->body)["records"].empty());
    auto mig = c.Get("/v1/finops/mig-advice", bearer(f.tokens.admin));
    REQUIRE(mig);
    CHECK(mig->status == 200);
    CHECK(json::parse(mig->body).contains("pools"));
  }

  TEST_CASE("metrics need an admin token by default, and can be open") {
    {
      fixture f;
      auto c = f.client();
      auto r = c.Get("/v1/metrics", bearer(f.tokens.admin));
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) ==
            0);
      CHECK(r->body.find("troupe_jobs 0") != std::string::npos);
      r = c.Get("/v1/metrics", bearer(f.tokens.acme));
      REQUIRE(r);
      CHECK(r->status == 403);
      r = c.Get("/v1/metrics");
      REQUIRE(r);
      CHECK(r->status == 401);
    }
    auto o = test_options();
    o.metrics = metrics_access::open;
    fixture f(o);
    auto c = f.client();
    auto r = c.Get("/v1/metrics");
    REQUIRE(r);
    CHECK(r->status == 200);
  }

  TEST_CASE("hostile requests get their status and error code and change nothing") {
    fixture f;
    const std::string acme_job = f.submit(f.tokens.acme);
    const std::string globex_job = f.submit(f.tokens.globex);
    f.plane.append_log(globex_job, 0, log_stream::stdout_log, "secret of globex\n");
    const std::string& A = f.tokens.acme;

    struct row {
      const char* what;
      std::string method;
      std::string path;
      httplib::Headers headers;
      std::string body;
      std::string content_type;
      int status;
      std::string code;
    };
    const std::string ok_spec = R"({"name": "x", "command": ["true"]})";
    const std::vector<row> rows = {
        // Authentication.
        {"no token", "GET", "/v1/jobs", {}, "", "", 401, "unauthorized"},
        {"no token, submit",
         "POST",
         "/v1/jobs",
         {},
         ok_spec,
         "application/json",
         401,
         "unauthorized"},
        {"wrong token", "GET", "/v1/jobs", bearer("trp_not-a-real-token"), "", "", 401,
         "unauthorized"},
        {"token of another scheme",
         "GET",
         "/v1/jobs",
         {{"Authorization", "Basic " + A}},
         "",
         "",
         401,
         "unauthorized"},
        {"Bearer without token",
         "GET",
         "/v1/jobs",
         {{"Authorization", "Bearer"}},
         "",
         "",
         401,
         "unauthorized"},
        {"Bearer and spaces",
         "GET",
         "/v1/jobs",
         {{"Authorization", "Bearer    "}},
         "",
         "",
         401,
         "unauthorized"},
        {"two tokens in one header",
         "GET",
         "/v1/jobs",
         {{"Authorization", "Bearer " + A + " " + A}},
         "",
         "",
         401,
         "unauthorized"},
        {"token with a quote",
         "GET",
         "/v1/jobs",
         {{"Authorization", "Bearer \"" + A + "\""}},
         "",
         "",
         401,
         "unauthorized"},
        {"two Authorization headers",
         "GET",
         "/v1/jobs",
         {{"Authorization", "Bearer " + A}, {"Authorization", "Bearer " + A}},
         "",
         "",
         401,
         "unauthorized"},
        {"token too long", "GET", "/v1/jobs", bearer(std::string(4096, 'a')), "", "", 401,
         "unauthorized"},
        {"token as a query parameter",
         "GET",
         "/v1/jobs?access_token=" + A,
         {},
         "",
         "",
         401,
         "unauthorized"},
        // Bodies.
        {"bad JSON", "POST", "/v1/jobs", bearer(A), "{", "application/json", 400,
         "invalid_argument"},
        {"JSON array", "POST", "/v1/jobs", bearer(A), "[]", "application/json", 400,
         "invalid_argument"},
        {"empty body", "POST", "/v1/jobs", bearer(A), "", "application/json", 400,
         "invalid_argument"},
        {"no command", "POST", "/v1/jobs", bearer(A), R"({"name": "x"})",
         "application/json", 400, "invalid_argument"},
        {"unknown field", "POST", "/v1/jobs", bearer(A),
         R"({"name": "x", "command": ["true"], "replcas": 2})", "application/json", 400,
         "invalid_argument"},
        {"form body", "POST", "/v1/jobs", bearer(A), "name=x&command=true",
         "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
        {"text body", "POST", "/v1/jobs", bearer(A), ok_spec, "text/plain", 415,
         "unsupported_media_type"},
        {"oversized body", "POST", "/v1/jobs", bearer(A), std::string(100 * 1024, ' '),
         "application/json", 413, "payload_too_large"},
        {"oversized body without a token",
         "POST",
         "/v1/jobs",
         {},
         std::string(100 * 1024, 'x'),
         "application/json",
         413,
         "payload_too_large"},
        // Methods and paths.
        {"PUT on jobs", "PUT", "/v1/jobs", bearer(A), ok_spec, "application/json", 405,
         "method_not_allowed"},
        {"DELETE on nodes", "DELETE", "/v1/nodes", bearer(A), "", "", 405,
         "method_not_allowed"},
        {"GET on cancel", "GET", "/v1/jobs/" + acme_job + "/cancel", bearer(A), "", "",
         405, "method_not_allowed"},
        {"POST on health",
         "POST",
         "/v1/health",
         {},
         "{}",
         "application/json",
         405,
         "method_not_allowed"},
        {"OPTIONS", "OPTIONS", "/v1/jobs", bearer(A), "", "", 405, "method_not_allowed"},
        {"unknown path", "GET", "/v1/secrets", bearer(A), "", "", 404, "not_found"},
        {"other version", "GET", "/v2/jobs", bearer(A), "", "", 404, "not_found"},
        {"root", "GET", "/", bearer(A), "", "", 404, "not_found"},
        {"trailing slash", "GET", "/v1/jobs/", bearer(A), "", "", 404, "not_found"},
        {"double slash", "GET", "/v1//jobs", bearer(A), "", "", 404, "not_found"},
        {"unknown node action", "POST", "/v1/nodes/gpu-a/reboot", bearer(f.tokens.admin),
         "", "", 404, "not_found"},
        // Query parameters.
        {"limit 0", "GET", "/v1/jobs?limit=0", bearer(A), "", "", 400,
         "invalid_argument"},
        {"limit 1001", "GET", "/v1/jobs?limit=1001", bearer(A), "", "", 400,
         "invalid_argument"},
        {"limit negative", "GET", "/v1/jobs?limit=-1", bearer(A), "", "", 400,
         "invalid_argument"},
        {"limit word", "GET", "/v1/jobs?limit=ten", bearer(A), "", "", 400,
         "invalid_argument"},
        {"limit with a sign", "GET", "/v1/jobs?limit=%2B5", bearer(A), "", "", 400,
         "invalid_argument"},
        {"limit huge", "GET", "/v1/jobs?limit=99999999999999999999999", bearer(A), "", "",
         400, "invalid_argument"},
        {"limit twice", "GET", "/v1/jobs?limit=1&limit=2", bearer(A), "", "", 400,
         "invalid_argument"},
        {"unknown parameter", "GET", "/v1/jobs?limt=5", bearer(A), "", "", 400,
         "invalid_argument"},
        {"cursor with control chars", "GET", "/v1/jobs?after=%01%02", bearer(A), "", "",
         400, "invalid_argument"},
        {"cursor of another tenant", "GET", "/v1/jobs?after=" + globex_job, bearer(A), "",
         "", 400, "invalid_argument"},
        {"bad escape", "GET", "/v1/jobs?limit=%zz", bearer(A), "", "", 400,
         "invalid_argument"},
        {"parameter on a job", "GET", "/v1/jobs/" + acme_job + "?verbose=1", bearer(A),
         "", "", 400, "invalid_argument"},
        {"stream stdin", "GET", "/v1/jobs/" + acme_job + "/replicas/0/logs?stream=stdin",
         bearer(A), "", "", 400, "invalid_argument"},
        {"offset negative", "GET", "/v1/jobs/" + acme_job + "/replicas/0/logs?offset=-1",
         bearer(A), "", "", 400, "invalid_argument"},
        {"offset float", "GET", "/v1/jobs/" + acme_job + "/replicas/0/logs?offset=1e3",
         bearer(A), "", "", 400, "invalid_argument"},
        {"follow yes", "GET", "/v1/jobs/" + acme_job + "/replicas/0/logs?follow=yes",
         bearer(A), "", "", 400, "invalid_argument"},
        {"replica word", "GET", "/v1/jobs/" + acme_job + "/replicas/first/logs",
         bearer(A), "", "", 400, "invalid_argument"},
        {"replica negative", "GET", "/v1/jobs/" + acme_job + "/replicas/-1/logs",
         bearer(A), "", "", 400, "invalid_argument"},
        {"replica out of range", "GET", "/v1/jobs/" + acme_job + "/replicas/7/logs",
         bearer(A), "", "", 404, "not_found"},
        // Ids.
        {"traversal id", "GET", "/v1/jobs/..%2F..%2Fetc%2Fpasswd", bearer(A), "", "", 404,
         "not_found"},
        {"dot-dot id", "GET", "/v1/jobs/%2E%2E", bearer(A), "", "", 404, "not_found"},
        {"dot id", "POST", "/v1/jobs/./cancel", bearer(A), "", "", 404, "not_found"},
        {"NUL in id", "GET", "/v1/jobs/" + acme_job + "%00", bearer(A), "", "", 404,
         "not_found"},
        {"newline in id", "GET", "/v1/jobs/x%0Ay", bearer(A), "", "", 404, "not_found"},
        {"very long id", "GET", "/v1/jobs/" + std::string(2000, 'j'), bearer(A), "", "",
         404, "not_found"},
        {"unknown job", "GET", "/v1/jobs/job-999999", bearer(A), "", "", 404,
         "not_found"},
        {"traversal node", "POST", "/v1/nodes/..%2Fgpu-a/cordon", bearer(f.tokens.admin),
         "", "", 404, "not_found"},
        {"bad node name", "POST", "/v1/nodes/-gpu/cordon", bearer(f.tokens.admin), "", "",
         400, "invalid_argument"},
        // Tenancy and roles.
        {"another tenant's job", "GET", "/v1/jobs/" + globex_job, bearer(A), "", "", 404,
         "not_found"},
        {"cancel another tenant's job", "POST", "/v1/jobs/" + globex_job + "/cancel",
         bearer(A), "", "", 404, "not_found"},
        {"delete another tenant's job", "DELETE", "/v1/jobs/" + globex_job, bearer(A), "",
         "", 404, "not_found"},
        {"another tenant's logs", "GET", "/v1/jobs/" + globex_job + "/replicas/0/logs",
         bearer(A), "", "", 404, "not_found"},
        {"follow another tenant's logs", "GET",
         "/v1/jobs/" + globex_job + "/replicas/0/logs?follow=1", bearer(A), "", "", 404,
         "not_found"},
        {"tenant cordons", "POST", "/v1/nodes/gpu-a/cordon", bearer(A), "", "", 403,
         "forbidden"},
        {"tenant drains", "POST", "/v1/nodes/gpu-b/drain", bearer(A), "", "", 403,
         "forbidden"},
        // Costs, the audit log and spot notices.
        {"costs without a token", "GET", "/v1/costs", {}, "", "", 401, "unauthorized"},
        {"another tenant's costs", "GET", "/v1/costs?tenant=globex", bearer(A), "", "",
         403, "forbidden"},
        {"unknown group key", "GET", "/v1/costs?group=period,colour", bearer(A), "", "",
         400, "invalid_argument"},
        {"empty group key", "GET", "/v1/costs?group=period,", bearer(A), "", "", 400,
         "invalid_argument"},
        {"group key twice", "GET", "/v1/costs?group=team,team", bearer(A), "", "", 400,
         "invalid_argument"},
        {"negative from", "GET", "/v1/costs?from_ms=-5", bearer(A), "", "", 400,
         "invalid_argument"},
        {"from not a number", "GET", "/v1/costs?from_ms=yesterday", bearer(A), "", "",
         400, "invalid_argument"},
        {"from after to", "GET", "/v1/costs?from_ms=7200000&to_ms=3600000", bearer(A), "",
         "", 400, "invalid_argument"},
        {"huge to", "GET", "/v1/costs?to_ms=99999999999999999999", bearer(A), "", "", 400,
         "invalid_argument"},
        {"format xml", "GET", "/v1/costs?format=xml", bearer(A), "", "", 400,
         "invalid_argument"},
        {"bad tenant name", "GET", "/v1/costs?tenant=%2E%2E", bearer(f.tokens.admin), "",
         "", 400, "invalid_argument"},
        {"unknown costs parameter", "GET", "/v1/costs?currency=eur", bearer(A), "", "",
         400, "invalid_argument"},
        {"post costs", "POST", "/v1/costs", bearer(A), "", "application/json", 405,
         "method_not_allowed"},
        {"tenant reads the audit log", "GET", "/v1/finops/audit", bearer(A), "", "", 403,
         "forbidden"},
        {"tenant asks for MIG advice", "GET", "/v1/finops/mig-advice", bearer(A), "", "",
         403, "forbidden"},
        {"MIG advice with a parameter", "GET", "/v1/finops/mig-advice?pool=x",
         bearer(f.tokens.admin), "", "", 400, "invalid_argument"},
        {"MIG advice by POST", "POST", "/v1/finops/mig-advice", bearer(f.tokens.admin),
         "", "application/json", 405, "method_not_allowed"},
        {"audit limit 0", "GET", "/v1/finops/audit?limit=0", bearer(f.tokens.admin), "",
         "", 400, "invalid_argument"},
        {"audit after not a number", "GET", "/v1/finops/audit?after=x",
         bearer(f.tokens.admin), "", "", 400, "invalid_argument"},
        {"tenant sends a spot notice", "POST",
         "/v1/nodes/gpu-a/spot-notice?deadline_s=30", bearer(A), "", "", 403,
         "forbidden"},
        {"spot notice without deadline", "POST", "/v1/nodes/gpu-a/spot-notice",
         bearer(f.tokens.admin), "", "", 400, "invalid_argument"},
        {"spot notice, deadline a day and more", "POST",
         "/v1/nodes/gpu-a/spot-notice?deadline_s=86401", bearer(f.tokens.admin), "", "",
         400, "invalid_argument"},
        {"spot notice, negative deadline", "POST",
         "/v1/nodes/gpu-a/spot-notice?deadline_s=-1", bearer(f.tokens.admin), "", "", 400,
         "invalid_argument"},
        {"spot notice for an unknown node", "POST",
         "/v1/nodes/gpu-z/spot-notice?deadline_s=30", bearer(f.tokens.admin), "", "", 404,
         "not_found"},
        {"spot notice by GET", "GET", "/v1/nodes/gpu-a/spot-notice?deadline_s=30",
         bearer(f.tokens.admin), "", "", 405, "method_not_allowed"},
    };

    auto c = f.client();
    c.set_keep_alive(true); // rejected requests must leave the connection usable
    const std::string before = f.plane.snapshot();
    for (const auto& r : rows) {
      CAPTURE(r.what);
      httplib::Result res{nullptr, httplib::Error::Unknown};
      if (r.method == "GET")
        res = c.Get(r.path, r.headers);
      else if (r.method == "POST")
        res = c.Post(r.path, r.headers, r.body, r.content_type);
      else if (r.method == "PUT")
        res = c.Put(r.path, r.headers, r.body, r.content_type);
      else if (r.method == "DELETE")
        res = c.Delete(r.path, r.headers);
      else if (r.method == "OPTIONS")
        res = c.Options(r.path, r.headers);
      REQUIRE_MESSAGE(res, httplib::to_string(res.error()));
      CHECK(res->status == r.status);
      CHECK(error_code_of(res->body) == r.code);
      CHECK(res->get_header_value("Content-Type") == "application/json");
      if (r.status == 401) {
        CHECK(res->get_header_value("WWW-Authenticate")
                  .rfind("Bearer realm=\"troupe\"", 0) == 0);
      }
      if (r.status == 405) CHECK_FALSE(res->get_header_value("Allow").empty());
      CHECK(res->body.find("globex") == std::string::npos); // nothing leaks
      CHECK(f.plane.snapshot() == before);
    }
    // The connection and the server still serve after all that.
    auto fine = c.Get("/v1/jobs/" + acme_job, bearer(A));
    REQUIRE(fine);
    CHECK(fine->status == 200);
    CHECK(f.plane.snapshot() == before);
  }

  TEST_CASE("malformed HTTP gets a JSON 400 and changes nothing") {
    fixture f;
    const std::string before = f.plane.snapshot();
    for (std::string request :
         {std::string("GARBAGE\r\n\r\n"),
          std::string("FOO /v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n"),
          std::string("GET /v1/jobs HTTP/9.9\r\nHost: x\r\n\r\n")}) {
      CAPTURE(request);
      std::string answer = raw_exchange(f.server->port(), request);
      CAPTURE(answer);
      CHECK(answer.rfind("HTTP/1.1 400", 0) == 0);
      CHECK(answer.find(R"("code":"invalid_argument")") != std::string::npos);
    }
    // Bodies over the limit (64 KiB here), with a length and chunked.
    const std::string big(200 * 1024, ' ');
    std::string chunked;
    for (int i = 0; i < 200; ++i)
      chunked += "400\r\n" + std::string(1024, ' ') + "\r\n";
    chunked += "0\r\n\r\n";
    for (std::string request :
         {"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Content-Length: " +
              std::to_string(big.size()) + "\r\n\r\n" + big,
          "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: chunked\r\n\r\n" +
              chunked}) {
      std::string answer = raw_exchange(f.server->port(), request);
      CAPTURE(answer.substr(0, 200));
      CHECK(answer.rfind("HTTP/1.1 413", 0) == 0);
      CHECK(answer.find(R"("code":"payload_too_large")") != std::string::npos);
    }
    // A POST with neither a length nor a chunked body is answered at once.
    std::string answer = raw_exchange(
        f.server->port(), "POST /v1/jobs/x/cancel HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(answer.rfind("HTTP/1.1 401", 0) == 0);
    CHECK(f.plane.snapshot() == before);
  }

  TEST_CASE("logs: a chunk at an offset, and a followed log to its end") {
    fixture f;
    const std::string id = f.submit(f.tokens.acme);
    f.plane.append_log(id, 1, log_stream::stderr_log, "warming up\n");
    auto c = f.client();
    auto r = c.Get("/v1/jobs/" + id + "/replicas/1/logs?stream=stderr&offset=3",
                   bearer(f.tokens.acme));
    REQUIRE(r);
    REQUIRE(r->status == 200);
    auto chunk = json::parse(r->body);
    CHECK(chunk["data"] == "ming up\n");
    CHECK(chunk["offset"] == 3);
    CHECK(chunk["next_offset"] == 11);
    CHECK(chunk["finished"] == false);

    // Follow stdout of replica 1 while a writer adds lines, then ends it.
    std::string expected;
    std::thread writer([&] {
      for (int i = 0; i < 20; ++i) {
        std::string line =
            "step " + std::to_string(i) + " loss 0." + std::to_string(99 - i) + "\n";
        expected += line;
        f.plane.append_log(id, 1, log_stream::stdout_log, line);
        std::this_thread::sleep_for(5ms);
      }
      f.plane.append_log(id, 1, log_stream::stdout_log, "", true);
    });
    std::string stream;
    auto fc = f.client();
    r = fc.Get("/v1/jobs/" + id + "/replicas/1/logs?follow=1", bearer(f.tokens.acme),
               [&](const char* data, size_t n) {
                 stream.append(data, n);
                 return true;
               });
    writer.join();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == "application/x-ndjson");
    // Every line a chunk continuing where the last ended; the data in order.
    std::string data;
    uint64_t at = 0;
    bool finished = false;
    size_t lines = 0;
    for (size_t pos = 0; pos < stream.size();) {
      size_t nl = stream.find('\n', pos);
      REQUIRE(nl != std::string::npos);
      auto line = json::parse(stream.substr(pos, nl - pos));
      pos = nl + 1;
      ++lines;
      CHECK_FALSE(finished); // nothing after the finished chunk
      CHECK(line["offset"] == at);
      data += line["data"].get<std::string>();
      at = line["next_offset"];
      finished = line["finished"];
    }
    CHECK(finished);
    CHECK(data == expected);
    CHECK(lines >= 2);
    // The server lets go of the follow once the response is done (just
    // after the client has the last byte).
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (f.server->api().active_follows() > 0 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    CHECK(f.server->api().active_follows() == 0);

    // Following a log that already ended: it streams to the end at once.
    r = c.Get("/v1/jobs/" + id + "/replicas/1/logs?follow=true&offset=5",
              bearer(f.tokens.acme));
    REQUIRE(r);
    CHECK(r->status == 200);
    data.clear();
    json line;
    for (size_t pos = 0; pos < r->body.size();) {
      size_t nl = r->body.find('\n', pos);
      REQUIRE(nl != std::string::npos);
      line = json::parse(r->body.substr(pos, nl - pos));
      data += line["data"].get<std::string>();
      pos = nl + 1;
    }
    CHECK(line["finished"] == true);
    CHECK(data == expected.substr(5));
  }

  TEST_CASE("a follow ends when its client goes away, and follows are capped") {
    fixture f;
    const std::string id = f.submit(f.tokens.acme);
    f.plane.append_log(id, 0, log_stream::stdout_log, "first\n");
    {
      auto c = f.client();
      int got = 0;
      auto r =
          c.Get("/v1/jobs/" + id + "/replicas/0/logs?follow=1", bearer(f.tokens.acme),
                [&](const char*, size_t) { return ++got < 1; });
      CHECK(got == 1);
      CHECK_FALSE(r); // the client cancelled
    }
    // The server notices at its next heartbeat write and frees the thread.
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (f.server->api().active_follows() > 0 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    CHECK(f.server->api().active_follows() == 0);
    const uint64_t calls = f.plane.log_calls();
    std::this_thread::sleep_for(100ms);
    CHECK(f.plane.log_calls() == calls); // no more polling for it

    // Two follows at once fill the cap (max_follows 2): a third gets 429.
    std::atomic<int> done{0};
    std::vector<std::thread> followers;
    for (int i = 0; i < 2; ++i) {
      followers.emplace_back([&] {
        auto c = f.client();
        auto r = c.Get("/v1/jobs/" + id + "/replicas/0/logs?follow=1",
                       bearer(f.tokens.acme), [](const char*, size_t) { return true; });
        if (r && r->status == 200) ++done;
      });
    }
    deadline = std::chrono::steady_clock::now() + 15s;
    while (f.server->api().active_follows() < 2 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    REQUIRE(f.server->api().active_follows() == 2);
    auto c = f.client();
    auto r = c.Get("/v1/jobs/" + id + "/replicas/0/logs?follow=1", bearer(f.tokens.acme));
    REQUIRE(r);
    CHECK(r->status == 429);
    CHECK(error_code_of(r->body) == "exhausted");
    // Other requests still get a thread.
    r = c.Get("/v1/health");
    REQUIRE(r);
    CHECK(r->status == 200);
    f.plane.append_log(id, 0, log_stream::stdout_log, "bye\n", true);
    for (auto& t : followers)
      t.join();
    CHECK(done == 2);
  }

  TEST_CASE("stop ends follows in progress") {
    fixture f;
    const std::string id = f.submit(f.tokens.acme);
    std::thread follower([&] {
      auto c = f.client();
      (void)c.Get("/v1/jobs/" + id + "/replicas/0/logs?follow=1", bearer(f.tokens.acme),
                  [](const char*, size_t) { return true; });
    });
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (f.server->api().active_follows() < 1 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    REQUIRE(f.server->api().active_follows() == 1);
    auto t0 = std::chrono::steady_clock::now();
    f.server->stop(); // max_follow_time is 20 s: stop must not wait for it
    follower.join();
    CHECK(std::chrono::steady_clock::now() - t0 < 15s);
  }

  TEST_CASE("HTTPS with a self-signed certificate") {
    self_signed tls;
    auto o = test_options();
    o.tls_cert_file = tls.cert.string();
    o.tls_key_file = tls.key.string();
    fixture f(o);
    CHECK(f.server->tls());
    httplib::SSLClient c("127.0.0.1", f.server->port());
    c.set_ca_cert_path(tls.cert.c_str());
    c.enable_server_certificate_verification(true);
    auto r = c.Get("/v1/health");
    REQUIRE_MESSAGE(r, httplib::to_string(r.error()));
    CHECK(r->status == 200);
    r = c.Post("/v1/jobs", bearer(f.tokens.acme), spec_json, "application/json");
    REQUIRE(r);
    CHECK(r->status == 201);
    r = c.Get("/v1/jobs", bearer(f.tokens.globex));
    REQUIRE(r);
    CHECK(json::parse(r->body)["jobs"].empty());

    // Plain HTTP to the TLS port gets no HTTP answer.
    auto plain = f.client();
    plain.set_read_timeout(2, 0);
    auto p = plain.Get("/v1/health");
    CHECK((!p || p->status != 200));

    // A certificate that is not there: start fails and says so.
    auto bad = test_options();
    bad.tls_cert_file = (tls.dir / "missing.pem").string();
    bad.tls_key_file = tls.key.string();
    memory_control_plane plane;
    api_tokens tokens;
    auto s = api_server::start(plane, tokens, bad);
    REQUIRE_FALSE(s.ok());
    CHECK(s.err().message().find("missing.pem") != std::string::npos);
  }

  TEST_CASE("options are checked") {
    memory_control_plane plane;
    api_tokens tokens;
    auto o = test_options();
    o.threads = 2;
    o.max_follows = 2;
    auto s = api_server::start(plane, tokens, o);
    REQUIRE_FALSE(s.ok());
    CHECK(s.err().message().find("max_follows") != std::string::npos);
    o = test_options();
    o.tls_cert_file = "/x.pem";
    CHECK_FALSE(validate(o).ok());
    o = test_options();
    o.bind_address = "no.such.host.invalid";
    s = api_server::start(plane, tokens, o);
    REQUIRE_FALSE(s.ok());
    CHECK(s.err().is(runtime::errc::unavailable));
  }

  TEST_CASE("handle() alone: follow requests and odd methods, without sockets") {
    memory_control_plane plane;
    token_set tokens;
    http_api api(plane, tokens.table, test_options());
    api_request rq;
    rq.method = "POST";
    rq.path = "/v1/jobs";
    rq.authorization = {"Bearer " + tokens.acme};
    rq.body = spec_json;
    auto res = api.handle(rq);
    REQUIRE(res.status == 201);
    const std::string id = json::parse(res.body)["id"];
    plane.append_log(id, 0, log_stream::stdout_log, "0123456789abcdefXYZ");

    rq = {};
    rq.method = "GET";
    rq.path = "/v1/jobs/" + id + "/replicas/0/logs";
    rq.query = {{"follow", "1"}};
    rq.authorization = {"bearer " + tokens.acme}; // the scheme is case-insensitive
    res = api.handle(rq);
    REQUIRE(res.status == 200);
    REQUIRE(res.follow);
    CHECK(res.follow->first.data == "0123456789abcdef"); // log_chunk_bytes 16
    CHECK(res.follow->who == caller{"acme", false});
    CHECK(res.content_type == "application/x-ndjson");

    rq.method = "HEAD";
    rq.query = {};
    res = api.handle(rq);
    CHECK(res.status == 200);
    rq.method = "BREW";
    res = api.handle(rq);
    CHECK(res.status == 405);

    // Bytes that are not UTF-8 in a log come out as U+FFFD, offsets exact.
    log_chunk chunk{"ok\xff\xfe", 9, false};
    auto line = json::parse(log_chunk_json(chunk, 5));
    CHECK(line["data"] == "ok\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(line["next_offset"] == 9);
  }
}
