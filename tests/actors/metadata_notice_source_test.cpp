// Spot notices from cloud metadata services (metadata_notice_source.hpp),
// against fake AWS IMDSv2, GCE and Azure services on loopback (cpp-httplib
// servers on free ports): the requests carry each cloud's headers, AWS's
// session token is fetched, reused and renewed after a 401, notices appear
// and go away, and an unreachable, slow or oversized service is an error
// the next poll recovers from.

#include "loopback_http.hpp"
#include "troupe/actors/errc.hpp"
#include "troupe/actors/metadata_notice_source.hpp"

#include <atomic>
#include <doctest/doctest.h>
#include <httplib.h>
#include <mutex>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using namespace troupe::actors;
using troupe::time_point;
using troupe::actors::testing::loopback_http;

namespace {

time_point ms(int64_t v) {
  return time_point{std::chrono::milliseconds{v}};
}
constexpr int64_t t0 = 1'796'693'400'000; // 2026-12-08T01:30:00Z

/// A fake metadata service on a free loopback port.
struct fake_service {
  std::mutex mu; // guards the fields below
  int status = 404;
  std::string body;
  std::string token = "tok-1";
  int token_status = 200;
  bool check_token = false; ///< 401 unless the request has the current token
  std::chrono::milliseconds delay{0};
  int token_puts = 0;
  std::string last_token_seen;
  httplib::Headers last_headers;

  explicit fake_service(const std::string& path) {
    http.server.Put(
        "/latest/api/token", [this](const httplib::Request& q, httplib::Response& r) {
          std::lock_guard lock{mu};
          ++token_puts;
          if (q.get_header_value("X-aws-ec2-metadata-token-ttl-seconds").empty()) {
            r.status = 400;
            return;
          }
          r.status = token_status;
          if (token_status == 200) r.set_content(token, "text/plain");
        });
    http.server.Get(path, [this](const httplib::Request& q, httplib::Response& r) {
      std::chrono::milliseconds wait;
      {
        std::lock_guard lock{mu};
        wait = delay;
      }
      std::this_thread::sleep_for(wait);
      std::lock_guard lock{mu};
      last_headers = q.headers;
      last_token_seen = q.get_header_value("X-aws-ec2-metadata-token");
      if (check_token && last_token_seen != token) {
        r.status = 401;
        return;
      }
      r.status = status;
      r.set_content(body, "text/plain");
    });
    http.start();
  }
  std::string url() const { return http.url(); }
  loopback_http http; // last: stops before the fields its handlers use go
  void answer(int s, std::string b) {
    std::lock_guard lock{mu};
    status = s;
    body = std::move(b);
  }
};

metadata_notice_config config(troupe::finops::notice_cloud cloud, const std::string& url,
                              std::atomic<int64_t>& now) {
  metadata_notice_config c;
  c.cloud = cloud;
  c.endpoint = url;
  c.now = [&now] { return ms(now.load()); };
  return c;
}

} // namespace

TEST_SUITE("actors.metadata_notice_source") {
  TEST_CASE("AWS IMDSv2: a session token, then the instance-action; 401 renews it") {
    fake_service svc{"/latest/meta-data/spot/instance-action"};
    std::atomic<int64_t> now{t0};
    metadata_notice_source src{config(troupe::finops::notice_cloud::aws, svc.url(), now)};
    auto n = src.poll();
    REQUIRE_MESSAGE(n.ok(), n.err().to_string());
    CHECK(*n == std::nullopt); // 404: no notice
    svc.answer(200, R"({"action": "terminate", "time": "2026-12-08T01:32:00Z"})");
    n = src.poll();
    REQUIRE(n.ok());
    CHECK(*n == ms(t0 + 120'000));
    {
      std::lock_guard lock{svc.mu};
      CHECK(svc.token_puts == 1); // reused
      CHECK(svc.last_token_seen == "tok-1");
    }
    // The token is revoked: the service answers 401 to the old one.
    {
      std::lock_guard lock{svc.mu};
      svc.token = "tok-2";
      svc.check_token = true;
    }
    n = src.poll();
    REQUIRE_MESSAGE(n.ok(), n.err().to_string());
    CHECK(*n == ms(t0 + 120'000));
    {
      std::lock_guard lock{svc.mu};
      CHECK(svc.token_puts == 2);
      CHECK(svc.last_token_seen == "tok-2");
    }
    // Renewed before it expires (half its 6 h TTL).
    now = t0 + 3 * 3600 * 1000 + 1;
    REQUIRE(src.poll().ok());
    std::lock_guard lock{svc.mu};
    CHECK(svc.token_puts == 3);
  }

  TEST_CASE("GCE: Metadata-Flavor header, TRUE is a notice 30 s out") {
    fake_service svc{"/computeMetadata/v1/instance/preempted"};
    std::atomic<int64_t> now{t0};
    metadata_notice_source src{config(troupe::finops::notice_cloud::gcp, svc.url(), now)};
    svc.answer(200, "FALSE");
    CHECK(*src.poll() == std::nullopt);
    {
      std::lock_guard lock{svc.mu};
      CHECK(svc.token_puts == 0);
      auto it = svc.last_headers.find("Metadata-Flavor");
      REQUIRE(it != svc.last_headers.end());
      CHECK(it->second == "Google");
    }
    svc.answer(200, "TRUE");
    now = t0 + 2000;
    CHECK(*src.poll() == ms(t0 + 30'000)); // 30 s from the last FALSE
    now = t0 + 4000;
    CHECK(*src.poll() == ms(t0 + 30'000));
  }

  TEST_CASE("Azure: Metadata header, the Preempt event naming this VM") {
    fake_service svc{"/metadata/scheduledevents"};
    std::atomic<int64_t> now{t0};
    auto c = config(troupe::finops::notice_cloud::azure, svc.url(), now);
    c.vm = "vm-7";
    metadata_notice_source src{c};
    svc.answer(200, R"({"DocumentIncarnation": 1, "Events": []})");
    CHECK(*src.poll() == std::nullopt);
    svc.answer(200, R"({"DocumentIncarnation": 2, "Events": [{"EventId": "e",
        "EventType": "Preempt", "ResourceType": "VirtualMachine", "Resources": ["vm-7"],
        "EventStatus": "Scheduled", "NotBefore": "Tue, 08 Dec 2026 01:30:30 GMT"}]})");
    CHECK(*src.poll() == ms(t0 + 30'000));
    std::lock_guard lock{svc.mu};
    auto it = svc.last_headers.find("Metadata");
    REQUIRE(it != svc.last_headers.end());
    CHECK(it->second == "true");
  }

  TEST_CASE("unreachable, slow, oversized and hostile services are errors; the next poll "
            "recovers") {
    std::atomic<int64_t> now{t0};
    // Nothing listens on the port a stopped server had.
    int dead_port = 0;
    {
      fake_service gone{"/x"};
      dead_port = gone.http.port;
    }
    metadata_notice_source dead{config(troupe::finops::notice_cloud::gcp,
                                       "http://127.0.0.1:" + std::to_string(dead_port),
                                       now)};
    auto n = dead.poll();
    REQUIRE_FALSE(n.ok());
    CHECK(n.err().is(errc::unavailable));
    CHECK(n.err().message().find("gcp metadata at http://127.0.0.1:") == 0);

    fake_service svc{"/computeMetadata/v1/instance/preempted"};
    auto c = config(troupe::finops::notice_cloud::gcp, svc.url(), now);
    c.read_timeout = 200ms;
    metadata_notice_source src{c};
    svc.answer(200, std::string(troupe::finops::max_metadata_body_bytes + 10, 'T'));
    n = src.poll();
    REQUIRE_FALSE(n.ok());
    CHECK(n.err().message().find("an answer over 65536 bytes") != std::string::npos);
    svc.answer(200, "MAYBE");
    n = src.poll();
    REQUIRE_FALSE(n.ok());
    CHECK(n.err().message().find("expected TRUE or FALSE") != std::string::npos);
    svc.answer(503, "");
    n = src.poll();
    REQUIRE_FALSE(n.ok());
    CHECK(n.err().message().find("answered HTTP 503") != std::string::npos);
    // A service that does not answer within the read timeout.
    svc.answer(200, "FALSE");
    {
      std::lock_guard lock{svc.mu};
      svc.delay = 600ms;
    }
    auto t = std::chrono::steady_clock::now();
    n = src.poll();
    REQUIRE_FALSE(n.ok());
    CHECK(n.err().is(errc::unavailable));
    CHECK(std::chrono::steady_clock::now() - t < 550ms);
    // Healthy again.
    {
      std::lock_guard lock{svc.mu};
      svc.delay = 0ms;
    }
    n = src.poll();
    REQUIRE_MESSAGE(n.ok(), n.err().to_string());
    CHECK(*n == std::nullopt);

    // An AWS service that refuses tokens.
    fake_service aws{"/latest/meta-data/spot/instance-action"};
    {
      std::lock_guard lock{aws.mu};
      aws.token_status = 403;
    }
    metadata_notice_source no_token{
        config(troupe::finops::notice_cloud::aws, aws.url(), now)};
    n = no_token.poll();
    REQUIRE_FALSE(n.ok());
    CHECK(n.err().message().find("no session token: HTTP 403") != std::string::npos);
  }
}
