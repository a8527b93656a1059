#include "troupe/finops/notice_source.hpp"

#include "troupe/finops/errc.hpp"

#include <charconv>
#include <ctime>
#include <fstream>
#include <string>

namespace troupe::finops {
namespace {

bool digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

int number(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

/// "YYYY-MM-DDTHH:MM:SS[.fff...]Z" as ms since the epoch.
std::optional<int64_t> rfc3339_utc_ms(std::string_view s) {
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':' || (s.back() != 'Z' && s.back() != 'z'))
    return std::nullopt;
  auto y = s.substr(0, 4), mo = s.substr(5, 2), d = s.substr(8, 2), h = s.substr(11, 2),
       mi = s.substr(14, 2), se = s.substr(17, 2);
  for (auto part : {y, mo, d, h, mi, se})
    if (!digits(part)) return std::nullopt;
  int64_t ms = 0;
  auto rest = s.substr(19, s.size() - 20); // between the seconds and the Z
  if (!rest.empty()) {
    if (rest[0] != '.' || rest.size() < 2 || rest.size() > 10 || !digits(rest.substr(1)))
      return std::nullopt;
    auto frac = std::string{rest.substr(1, 3)};
    frac.resize(3, '0');
    ms = number(frac);
  }
  std::tm tm{};
  tm.tm_year = number(y) - 1900;
  tm.tm_mon = number(mo) - 1;
  tm.tm_mday = number(d);
  tm.tm_hour = number(h);
  tm.tm_min = number(mi);
  tm.tm_sec = number(se);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 70)
    return std::nullopt;
  std::tm check = tm;
  auto t = ::timegm(&tm);
  // timegm normalises 31 February into March: refuse dates that moved.
  if (t < 0 || tm.tm_mday != check.tm_mday || tm.tm_mon != check.tm_mon)
    return std::nullopt;
  return int64_t{t} * 1000 + ms;
}

} // namespace

std::optional<time_point> parse_rfc3339_utc(std::string_view s) {
  auto ms = rfc3339_utc_ms(s);
  if (!ms) return std::nullopt;
  return time_point{std::chrono::milliseconds{*ms}};
}

result<std::optional<time_point>> parse_notice(std::string_view text,
                                               std::string_view origin) {
  if (text.size() > max_notice_file_bytes)
    return error{errc::invalid_argument, std::string{origin} + ": " +
                                             std::to_string(text.size()) +
                                             " bytes, over the limit of " +
                                             std::to_string(max_notice_file_bytes)};
  std::optional<time_point> out;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    while (!line.empty() &&
           (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
      line.remove_prefix(1);
    if (line.empty()) continue;
    auto where = std::string{origin} + ":" + std::to_string(line_no) + ": ";
    if (out)
      return error{errc::invalid_argument,
                   where + "a second deadline (one notice per file)"};
    std::optional<int64_t> ms;
    if (digits(line)) {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
      if (ec == std::errc{} && end == line.data() + line.size() && v < (int64_t{1} << 52))
        ms = v;
    } else {
      ms = rfc3339_utc_ms(line);
    }
    if (!ms)
      return error{errc::invalid_argument,
                   where +
                       "expected a deadline in ms since the Unix epoch or as "
                       "YYYY-MM-DDTHH:MM:SSZ, got \"" +
                       std::string{line.substr(0, 64)} + "\""};
    out = time_point{std::chrono::milliseconds{*ms}};
  }
  return out;
}

file_notice_source::file_notice_source(std::filesystem::path file)
    : file_(std::move(file)) {}

result<std::optional<time_point>> file_notice_source::poll() {
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(file_, ec);
  if (ec) {
    seen_.reset();
    last_ = std::optional<time_point>{};
    return last_; // missing: no notice
  }
  auto size = std::filesystem::file_size(file_, ec);
  if (ec) return last_;
  version v{mtime, size};
  if (seen_ && *seen_ == v) return last_;
  seen_ = v;
  const std::string origin = file_.string();
  if (size > max_notice_file_bytes) {
    last_ = error{errc::invalid_argument, origin + ": " + std::to_string(size) +
                                              " bytes, over the limit of " +
                                              std::to_string(max_notice_file_bytes)};
    return last_;
  }
  std::ifstream in(file_, std::ios::binary);
  if (!in) return last_;
  std::string text(static_cast<size_t>(size) + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  last_ = parse_notice(text, origin);
  return last_;
}

} // namespace troupe::finops
