#pragma once
/// What a cloud's instance metadata service says about a spot (preemptible)
/// VM going away, as plain code: which request to make and how to read each
/// response into a notice deadline. The HTTP itself is the caller's
/// (actors/metadata_notice_source.hpp); this part has no I/O and no clock
/// (the caller passes when it polled).
///
/// - AWS EC2 (IMDSv2): GET /latest/meta-data/spot/instance-action with a
///   session token (PUT /latest/api/token first). 404: no notice. 200:
///   {"action": "terminate"|"stop"|"hibernate", "time": RFC 3339 UTC}: the
///   instance goes at `time` (two minutes after the notice).
/// - Google Compute Engine: GET /computeMetadata/v1/instance/preempted with
///   "Metadata-Flavor: Google". "FALSE": none; "TRUE": preempted, and the VM
///   stops 30 s after the notice (gcp_preemption_notice): the deadline is
///   30 s after the last poll that saw FALSE (the flag may have turned at
///   any time since; the first poll's time when none did), kept while it
///   stays TRUE.
/// - Azure (Scheduled Events): GET /metadata/scheduledevents?api-version=
///   2020-07-01 with "Metadata: true". 200: {"DocumentIncarnation": n,
///   "Events": [{"EventId", "EventType": "Preempt"|"Reboot"|..., "Resources":
///   [VM names], "EventStatus", "NotBefore": RFC 1123 ("Mon, 19 Sep 2016
///   18:29:47 GMT") or "" (started)}]}: the earliest Preempt event naming
///   this VM (any VM when no name is given); its NotBefore is the deadline
///   ("": the event has started; the time its EventId was first seen, so
///   the notice stays the same from poll to poll).
///
/// Responses are outside input: bounded (max_metadata_body_bytes), every
/// error says what was wrong; any other HTTP status is an error.

#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::finops {

enum class notice_cloud : uint8_t { aws, gcp, azure };
const char* to_string(notice_cloud c) noexcept;
/// "aws" | "gcp" | "azure".
std::optional<notice_cloud> parse_notice_cloud(std::string_view s) noexcept;

/// The metadata service's address when the config names none.
std::string default_metadata_endpoint(notice_cloud c);

/// GCE stops a preempted VM this long after the notice.
inline constexpr duration gcp_preemption_notice = std::chrono::seconds{30};
/// Bound of a metadata response.
inline constexpr size_t max_metadata_body_bytes = 64 * 1024;

/// The GET that reads the notice: path and headers (AWS's token header is
/// the caller's to add; see aws_token_*).
struct metadata_request {
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
};
metadata_request notice_request(notice_cloud c);

/// AWS IMDSv2's session token: PUT this path with the TTL header.
inline constexpr const char* aws_token_path = "/latest/api/token";
inline constexpr const char* aws_token_ttl_header =
    "X-aws-ec2-metadata-token-ttl-seconds";
inline constexpr const char* aws_token_header = "X-aws-ec2-metadata-token";
inline constexpr int aws_token_ttl_seconds = 21600;

/// AWS's instance-action document -> its time (action must be terminate,
/// stop or hibernate).
[[nodiscard]] result<time_point> parse_aws_instance_action(std::string_view body);
/// GCE's preempted flag ("TRUE" or "FALSE", surrounding whitespace allowed).
[[nodiscard]] result<bool> parse_gcp_preempted(std::string_view body);
/// Azure's Scheduled Events document -> the earliest Preempt event naming
/// `vm` (any when empty); nullopt when none. An empty NotBefore stands for
/// the time the event's EventId was first seen: `started` keeps those
/// (first seen at `now` when new; events gone from the document are
/// dropped from it).
[[nodiscard]] result<std::optional<time_point>>
parse_azure_scheduled_events(std::string_view body, std::string_view vm, time_point now,
                             std::map<std::string, time_point>& started);
/// "Mon, 19 Sep 2016 18:29:47 GMT" (RFC 1123, the HTTP date) as a time.
std::optional<time_point> parse_rfc1123(std::string_view s);

/// Reads one cloud's responses, poll after poll, into the notice in force
/// (notice_source::poll's meaning). Not thread-safe: one owner.
class cloud_notice_reader {
public:
  explicit cloud_notice_reader(notice_cloud cloud, std::string vm = {});
  notice_cloud cloud() const noexcept { return cloud_; }
  /// The response to notice_request(cloud()) received at `now`.
  [[nodiscard]] result<std::optional<time_point>>
  on_response(int status, std::string_view body, time_point now);

private:
  notice_cloud cloud_;
  std::string vm_;
  std::optional<time_point> gcp_deadline_; ///< while GCE says TRUE
  std::optional<time_point> gcp_last_false_;
  std::map<std::string, time_point> azure_started_; ///< EventId -> first seen
};

} // namespace troupe::finops
