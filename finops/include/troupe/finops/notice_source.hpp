#pragma once
/// Where a node learns that its spot capacity goes away: an adapter
/// interface, one implementation per cloud, that the node's agent polls and
/// whose notices it forwards to the head's FinOps actor (fo_notice_atom),
/// next to the notice API (POST /v1/nodes/{name}/spot-notice) and the tests'
/// fault hook.
///
/// `file_notice_source` is one: a file that the cloud's own agent (or a
/// script) or a test writes. Plain code, no actors; the file is read with
/// the caller's polling. The clouds' metadata endpoints (AWS, GCP, Azure)
/// are read by actors/metadata_notice_source.hpp, whose responses
/// cloud_notice.hpp interprets.
///
/// File format (outside input: bounded, every error naming file and line):
/// `#` starts a comment, blank lines are skipped; at most one other line,
/// the deadline, either as an integer of milliseconds since the Unix epoch
/// or as RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SSZ" (optionally with
/// fractional seconds, as AWS's instance-action "time" field is written).
/// An empty file (or one with only comments) means no notice.

#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <filesystem>
#include <optional>
#include <string_view>

namespace troupe::finops {

/// Bound of a notice file.
inline constexpr size_t max_notice_file_bytes = 4096;

class notice_source {
public:
  virtual ~notice_source() = default;
  /// The deadline of the notice in force now, or none. The same notice is
  /// reported on every poll until it changes; the caller forwards each
  /// deadline once. invalid_argument for a source that gives bad input.
  [[nodiscard]] virtual result<std::optional<time_point>> poll() = 0;
};

/// "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (RFC 3339 in UTC) as a time; nullopt
/// for anything else, impossible dates (31 February) included.
std::optional<time_point> parse_rfc3339_utc(std::string_view s);

/// Parses a notice file's text (format above); `origin` names it in errors.
[[nodiscard]] result<std::optional<time_point>> parse_notice(std::string_view text,
                                                             std::string_view origin);

/// Notices from a file, re-read whenever its modification time or size
/// changes. A missing file is no notice. A bad file is an error until it
/// changes again. Not thread-safe: one owner.
class file_notice_source final : public notice_source {
public:
  explicit file_notice_source(std::filesystem::path file);
  result<std::optional<time_point>> poll() override;

private:
  std::filesystem::path file_;
  struct version {
    std::filesystem::file_time_type mtime{};
    uintmax_t size = 0;
    bool operator==(const version&) const = default;
  };
  std::optional<version> seen_;
  result<std::optional<time_point>> last_ = std::optional<time_point>{};
};

} // namespace troupe::finops
