// Cloud spot notices (cloud_notice.hpp): AWS instance-action, GCE preempted
// and Azure Scheduled Events responses read into deadlines, poll after
// poll, and a table of hostile responses refused with what was wrong.

#include "troupe/finops/cloud_notice.hpp"
#include "troupe/finops/errc.hpp"

#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace troupe::finops;
using troupe::time_point;

namespace {

time_point ms(int64_t v) {
  return time_point{std::chrono::milliseconds{v}};
}

// 2026-12-08T01:30:00Z
constexpr int64_t t0 = 1'796'693'400'000;

} // namespace

TEST_SUITE("finops.cloud_notice") {
  TEST_CASE("clouds by name, their endpoints and requests") {
    CHECK(parse_notice_cloud("aws") == notice_cloud::aws);
    CHECK(parse_notice_cloud("gcp") == notice_cloud::gcp);
    CHECK(parse_notice_cloud("azure") == notice_cloud::azure);
    CHECK_FALSE(parse_notice_cloud("AWS"));
    CHECK_FALSE(parse_notice_cloud(""));
    CHECK(default_metadata_endpoint(notice_cloud::aws) == "http://169.254.169.254");
    // GCE's metadata.google.internal, without a DNS lookup.
    CHECK(default_metadata_endpoint(notice_cloud::gcp) == "http://169.254.169.254");
    CHECK(notice_request(notice_cloud::aws).path ==
          "/latest/meta-data/spot/instance-action");
    auto g = notice_request(notice_cloud::gcp);
    REQUIRE(g.headers.size() == 1);
    CHECK(g.headers[0] ==
          std::pair<std::string, std::string>{"Metadata-Flavor", "Google"});
    CHECK(notice_request(notice_cloud::azure).headers[0].first == "Metadata");
  }

  TEST_CASE("AWS: 404 is no notice, an instance-action is the deadline") {
    cloud_notice_reader r{notice_cloud::aws};
    CHECK(*r.on_response(404, "<html>Not Found</html>", ms(t0)) == std::nullopt);
    auto n = r.on_response(
        200, R"({"action": "terminate", "time": "2026-12-08T01:32:00Z"})", ms(t0));
    REQUIRE(n.ok());
    CHECK(*n == ms(t0 + 120'000));
    CHECK(*r.on_response(200, R"({"action":"stop","time":"2026-12-08T01:32:00.5Z"})",
                         ms(t0)) == ms(t0 + 120'500));
    CHECK(*r.on_response(404, "", ms(t0)) == std::nullopt); // withdrawn
  }

  TEST_CASE("GCE: the deadline is 30 s after the last FALSE, kept while TRUE") {
    cloud_notice_reader r{notice_cloud::gcp};
    CHECK(*r.on_response(200, "FALSE", ms(t0)) == std::nullopt);
    // It may have turned right after the FALSE: count from there.
    CHECK(*r.on_response(200, "TRUE\n", ms(t0 + 1000)) == ms(t0 + 30'000));
    CHECK(*r.on_response(200, " TRUE ", ms(t0 + 5000)) == ms(t0 + 30'000));
    CHECK(*r.on_response(200, "FALSE", ms(t0 + 6000)) == std::nullopt);
    CHECK(*r.on_response(200, "TRUE", ms(t0 + 9000)) == ms(t0 + 36'000)); // a new one
    cloud_notice_reader first{notice_cloud::gcp}; // TRUE at the first poll
    CHECK(*first.on_response(200, "TRUE", ms(t0 + 2000)) == ms(t0 + 32'000));
  }

  TEST_CASE("Azure: the earliest Preempt event naming this VM") {
    const std::string doc = R"({"DocumentIncarnation": 3, "Events": [
      {"EventId": "a", "EventType": "Reboot", "ResourceType": "VirtualMachine",
       "Resources": ["vm-1"], "EventStatus": "Scheduled",
       "NotBefore": "Tue, 08 Dec 2026 01:30:10 GMT"},
      {"EventId": "b", "EventType": "Preempt", "ResourceType": "VirtualMachine",
       "Resources": ["vm-2"], "EventStatus": "Scheduled",
       "NotBefore": "Tue, 08 Dec 2026 01:30:20 GMT"},
      {"EventId": "c", "EventType": "Preempt", "ResourceType": "VirtualMachine",
       "Resources": ["vm-1", "vm-3"], "EventStatus": "Scheduled",
       "NotBefore": "Tue, 08 Dec 2026 01:30:30 GMT"}]})";
    cloud_notice_reader mine{notice_cloud::azure, "vm-1"};
    CHECK(*mine.on_response(200, doc, ms(t0)) == ms(t0 + 30'000));
    cloud_notice_reader any{notice_cloud::azure};
    CHECK(*any.on_response(200, doc, ms(t0)) == ms(t0 + 20'000));
    cloud_notice_reader other{notice_cloud::azure, "vm-9"};
    CHECK(*other.on_response(200, doc, ms(t0)) == std::nullopt);
    // No events; an event already started (empty NotBefore) goes now.
    CHECK(*any.on_response(200, R"({"DocumentIncarnation": 4, "Events": []})", ms(t0)) ==
          std::nullopt);
    const std::string started = R"({"Events": [{"EventId": "s", "EventType": "Preempt",
                                   "Resources": [], "NotBefore": ""}]})";
    CHECK(*any.on_response(200, started, ms(t0 + 7)) == ms(t0 + 7));
    // The same event on the next polls: the same deadline (told once).
    CHECK(*any.on_response(200, started, ms(t0 + 900)) == ms(t0 + 7));
    CHECK(*any.on_response(200, started, ms(t0 + 1900)) == ms(t0 + 7));
    // Gone, then back: a new one.
    CHECK(*any.on_response(200, R"({"Events": []})", ms(t0 + 2000)) == std::nullopt);
    CHECK(*any.on_response(200, started, ms(t0 + 3000)) == ms(t0 + 3000));
  }

  TEST_CASE("RFC 1123 dates") {
    CHECK(parse_rfc1123("Tue, 08 Dec 2026 01:30:00 GMT") == ms(t0));
    for (const char* bad :
         {"", "Tue, 08 Dec 2026 01:30:00 UTC", "Tue, 8 Dec 2026 01:30:00 GMT",
          "Xyz, 08 Dec 2026 01:30:00 GMT", "Tue, 08 Dek 2026 01:30:00 GMT",
          "Tue, 31 Feb 2026 01:30:00 GMT", "Tue, 08 Dec 2026 25:30:00 GMT",
          "Tue, 08 Dec 20x6 01:30:00 GMT", "Tue, 08 Dec 2026 01:30:00 GMT "}) {
      CAPTURE(bad);
      CHECK_FALSE(parse_rfc1123(bad));
    }
  }

  TEST_CASE("hostile metadata responses are refused, saying what was wrong") {
    struct row {
      notice_cloud cloud;
      int status;
      std::string body;
      std::string expected; // a prefix of the message
    };
    const std::string big(max_metadata_body_bytes + 1, ' ');
    const std::vector<row> rows{
        {notice_cloud::aws, 500, "",
         "aws metadata: /latest/meta-data/spot/instance-action "
         "answered HTTP 500"},
        {notice_cloud::aws, 401, "",
         "aws metadata: /latest/meta-data/spot/instance-action "
         "answered HTTP 401"},
        {notice_cloud::aws, 200, "",
         "aws metadata: instance-action: expected a JSON object"},
        {notice_cloud::aws, 200, "[1]",
         "aws metadata: instance-action: expected a JSON object"},
        {notice_cloud::aws, 200, R"({"time": "2026-12-08T01:32:00Z"})",
         "aws metadata: instance-action: \"action\" missing"},
        {notice_cloud::aws, 200,
         R"({"action": "explode", "time": "2026-12-08T01:32:00Z"})",
         "aws metadata: instance-action: action \"explode\", expected terminate"},
        {notice_cloud::aws, 200, R"({"action": "terminate"})",
         "aws metadata: instance-action: \"time\" missing"},
        {notice_cloud::aws, 200, R"({"action": "terminate", "time": 1796693520})",
         "aws metadata: instance-action: \"time\" missing or not a string"},
        {notice_cloud::aws, 200, R"({"action": "terminate", "time": "tomorrow"})",
         "aws metadata: instance-action: time \"tomorrow\", expected "
         "YYYY-MM-DDTHH:MM:SSZ"},
        {notice_cloud::aws, 200,
         R"({"action": "terminate", "time": "2026-02-31T00:00:00Z"})",
         "aws metadata: instance-action: time"},
        {notice_cloud::aws, 200, big,
         "aws metadata: instance-action: 65537 bytes, over 65536"},
        {notice_cloud::gcp, 200, "yes",
         "gcp metadata: preempted: expected TRUE or FALSE, got "
         "\"yes\""},
        {notice_cloud::gcp, 200, "true",
         "gcp metadata: preempted: expected TRUE or FALSE"},
        {notice_cloud::gcp, 200, "", "gcp metadata: preempted: expected TRUE or FALSE"},
        {notice_cloud::gcp, 403, "FALSE",
         "gcp metadata: /computeMetadata/v1/instance/"
         "preempted answered HTTP 403"},
        {notice_cloud::azure, 200, "{}",
         "azure metadata: scheduled events: \"Events\" missing"},
        {notice_cloud::azure, 200, R"({"Events": {}})",
         "azure metadata: scheduled events: \"Events\" missing or not an array"},
        {notice_cloud::azure, 200, R"({"Events": [7]})",
         "azure metadata: scheduled events: Events[0]: expected an object"},
        {notice_cloud::azure, 200, R"({"Events": [{"NotBefore": ""}]})",
         "azure metadata: scheduled events: Events[0]: \"EventType\" missing"},
        {notice_cloud::azure, 200,
         R"({"Events": [{"EventType": "Preempt", "Resources": []}]})",
         "azure metadata: scheduled events: Events[0]: \"NotBefore\" missing"},
        {notice_cloud::azure, 200,
         R"({"Events": [{"EventType": "Preempt", "Resources": [], "NotBefore": "soon"}]})",
         "azure metadata: scheduled events: Events[0]: NotBefore \"soon\", expected"},
        {notice_cloud::azure, 200, big, "azure metadata: scheduled events: 65537 bytes"},
        {notice_cloud::azure, 404, "", "azure metadata: /metadata/scheduledevents"},
    };
    for (const auto& r : rows) {
      CAPTURE(to_string(r.cloud));
      CAPTURE(r.body.substr(0, 80));
      cloud_notice_reader reader{r.cloud};
      auto n = reader.on_response(r.status, r.body, ms(t0));
      REQUIRE_FALSE(n.ok());
      CHECK(n.err().is(errc::invalid_argument));
      CHECK_MESSAGE(n.err().message().rfind(r.expected, 0) == 0, n.err().message());
    }
    // An Azure VM filter needs each Preempt event's resources.
    cloud_notice_reader mine{notice_cloud::azure, "vm-1"};
    auto n = mine.on_response(
        200, R"({"Events": [{"EventType": "Preempt", "NotBefore": ""}]})", ms(t0));
    REQUIRE_FALSE(n.ok());
    CHECK(n.err().message().find("\"Resources\" missing") != std::string::npos);
  }
}
