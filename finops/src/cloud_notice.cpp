#include "troupe/finops/cloud_notice.hpp"

#include "troupe/finops/errc.hpp"
#include "troupe/finops/notice_source.hpp"

#include <array>
#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>

namespace troupe::finops {
namespace {

using nlohmann::json;

error bad(notice_cloud c, const std::string& what) {
  return error{errc::invalid_argument, std::string{to_string(c)} + " metadata: " + what};
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' ||
                        s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

/// The first 64 bytes of `s`, for an error message.
std::string shown(std::string_view s) {
  return "\"" + std::string{s.substr(0, 64)} + (s.size() > 64 ? "...\"" : "\"");
}

std::optional<json> parse_object(std::string_view body) {
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

bool two_digits(std::string_view s, int& out) {
  if (s.size() != 2) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + 2, out);
  return ec == std::errc{} && end == s.data() + 2;
}

} // namespace

const char* to_string(notice_cloud c) noexcept {
  switch (c) {
  case notice_cloud::aws:
    return "aws";
  case notice_cloud::gcp:
    return "gcp";
  case notice_cloud::azure:
    return "azure";
  }
  return "?";
}

std::optional<notice_cloud> parse_notice_cloud(std::string_view s) noexcept {
  for (auto c : {notice_cloud::aws, notice_cloud::gcp, notice_cloud::azure})
    if (s == to_string(c)) return c;
  return std::nullopt;
}

std::string default_metadata_endpoint(notice_cloud c) {
  // GCE's metadata.google.internal is 169.254.169.254 too; the address
  // needs no DNS lookup (which no connect timeout bounds).
  (void)c;
  return "http://169.254.169.254";
}

metadata_request notice_request(notice_cloud c) {
  switch (c) {
  case notice_cloud::aws:
    return {"/latest/meta-data/spot/instance-action", {}};
  case notice_cloud::gcp:
    return {"/computeMetadata/v1/instance/preempted", {{"Metadata-Flavor", "Google"}}};
  case notice_cloud::azure:
    return {"/metadata/scheduledevents?api-version=2020-07-01", {{"Metadata", "true"}}};
  }
  return {};
}

std::optional<time_point> parse_rfc1123(std::string_view s) {
  // "Mon, 19 Sep 2016 18:29:47 GMT"
  static constexpr std::array<std::string_view, 7> days{"Sun", "Mon", "Tue", "Wed",
                                                        "Thu", "Fri", "Sat"};
  static constexpr std::array<std::string_view, 12> months{
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29 || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' ||
      s[16] != ' ' || s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT")
    return std::nullopt;
  bool day_ok = false;
  for (auto d : days)
    day_ok |= s.substr(0, 3) == d;
  int mon = -1;
  for (size_t i = 0; i < months.size(); ++i)
    if (s.substr(8, 3) == months[i]) mon = static_cast<int>(i);
  int mday = 0, year = 0, h = 0, mi = 0, se = 0;
  auto y = s.substr(12, 4);
  auto [end, ec] = std::from_chars(y.data(), y.data() + 4, year);
  if (!day_ok || mon < 0 || ec != std::errc{} || end != y.data() + 4 ||
      !two_digits(s.substr(5, 2), mday) || !two_digits(s.substr(17, 2), h) ||
      !two_digits(s.substr(20, 2), mi) || !two_digits(s.substr(23, 2), se))
    return std::nullopt;
  // Reuse the RFC 3339 reader's range and calendar checks.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", year, mon + 1, mday, h,
                mi, se);
  return parse_rfc3339_utc(buf);
}

result<time_point> parse_aws_instance_action(std::string_view body) {
  constexpr auto c = notice_cloud::aws;
  if (body.size() > max_metadata_body_bytes)
    return bad(c, "instance-action: " + std::to_string(body.size()) + " bytes, over " +
                      std::to_string(max_metadata_body_bytes));
  auto j = parse_object(body);
  if (!j) return bad(c, "instance-action: expected a JSON object, got " + shown(body));
  auto action = j->find("action");
  auto time = j->find("time");
  if (action == j->end() || !action->is_string())
    return bad(c, "instance-action: \"action\" missing or not a string");
  const auto& a = action->get_ref<const std::string&>();
  if (a != "terminate" && a != "stop" && a != "hibernate")
    return bad(c, "instance-action: action " + shown(a) +
                      ", expected terminate, stop or hibernate");
  if (time == j->end() || !time->is_string())
    return bad(c, "instance-action: \"time\" missing or not a string");
  auto t = parse_rfc3339_utc(time->get_ref<const std::string&>());
  if (!t)
    return bad(c, "instance-action: time " + shown(time->get_ref<const std::string&>()) +
                      ", expected YYYY-MM-DDTHH:MM:SSZ");
  return *t;
}

result<bool> parse_gcp_preempted(std::string_view body) {
  auto s = trim(body);
  if (s == "TRUE") return true;
  if (s == "FALSE") return false;
  return bad(notice_cloud::gcp, "preempted: expected TRUE or FALSE, got " + shown(s));
}

result<std::optional<time_point>>
parse_azure_scheduled_events(std::string_view body, std::string_view vm, time_point now,
                             std::map<std::string, time_point>& started) {
  constexpr auto c = notice_cloud::azure;
  if (body.size() > max_metadata_body_bytes)
    return bad(c, "scheduled events: " + std::to_string(body.size()) + " bytes, over " +
                      std::to_string(max_metadata_body_bytes));
  auto j = parse_object(body);
  if (!j) return bad(c, "scheduled events: expected a JSON object, got " + shown(body));
  auto events = j->find("Events");
  if (events == j->end() || !events->is_array())
    return bad(c, "scheduled events: \"Events\" missing or not an array");
  std::optional<time_point> best;
  std::map<std::string, time_point> seen; // this document's started events
  for (size_t i = 0; i < events->size(); ++i) {
    const auto& e = (*events)[i];
    const auto where = "scheduled events: Events[" + std::to_string(i) + "]";
    if (!e.is_object()) return bad(c, where + ": expected an object");
    auto type = e.find("EventType");
    if (type == e.end() || !type->is_string())
      return bad(c, where + ": \"EventType\" missing or not a string");
    if (type->get_ref<const std::string&>() != "Preempt") continue;
    if (!vm.empty()) {
      auto res = e.find("Resources");
      if (res == e.end() || !res->is_array())
        return bad(c, where + ": \"Resources\" missing or not an array");
      bool mine = false;
      for (auto& r : *res)
        mine |= r.is_string() && r.get_ref<const std::string&>() == vm;
      if (!mine) continue;
    }
    auto nb = e.find("NotBefore");
    if (nb == e.end() || !nb->is_string())
      return bad(c, where + ": \"NotBefore\" missing or not a string");
    const auto& text = nb->get_ref<const std::string&>();
    std::optional<time_point> t;
    if (text.empty()) {
      auto id = e.find("EventId");
      const std::string key = id != e.end() && id->is_string() ? id->get<std::string>()
                                                               : "#" + std::to_string(i);
      auto it = started.find(key);
      t = seen[key] = it == started.end() ? now : it->second;
    } else {
      t = parse_rfc1123(text);
    }
    if (!t)
      return bad(c, where + ": NotBefore " + shown(text) +
                        ", expected \"Mon, 19 Sep 2016 18:29:47 GMT\"");
    if (!best || *t < *best) best = t;
  }
  started = std::move(seen);
  return best;
}

cloud_notice_reader::cloud_notice_reader(notice_cloud cloud, std::string vm)
    : cloud_(cloud), vm_(std::move(vm)) {}

result<std::optional<time_point>>
cloud_notice_reader::on_response(int status, std::string_view body, time_point now) {
  switch (cloud_) {
  case notice_cloud::aws:
    if (status == 404) return std::optional<time_point>{};
    if (status != 200) break;
    {
      auto t = parse_aws_instance_action(body);
      if (!t) return std::move(t).err();
      return std::optional{*t};
    }
  case notice_cloud::gcp: {
    if (status != 200) break;
    auto p = parse_gcp_preempted(body);
    if (!p) return std::move(p).err();
    if (!*p) {
      gcp_deadline_.reset();
      gcp_last_false_ = now;
    } else if (!gcp_deadline_) {
      gcp_deadline_ = gcp_last_false_.value_or(now) + gcp_preemption_notice;
    }
    return gcp_deadline_;
  }
  case notice_cloud::azure:
    if (status != 200) break;
    return parse_azure_scheduled_events(body, vm_, now, azure_started_);
  }
  return bad(cloud_, std::string{notice_request(cloud_).path} + " answered HTTP " +
                         std::to_string(status));
}

} // namespace troupe::finops
