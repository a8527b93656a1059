/// Loader of the AWS spot availability and preemption traces of "Can't Be
/// Late" (NSDI'24, skypilot-org/spot-traces).
#include "csv.hpp"
#include "json_util.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/sim/trace.hpp"

#include <cmath>
#include <limits>

namespace troupe::sim {

using nlohmann::json;
using runtime::errc;

namespace {

/// Prices above this (USD per hour) are taken for a mistake.
constexpr double max_price_usd = 1'000'000;

/// "source:line:col" of a 1-based byte position in `text`.
std::string where(std::string_view source, std::string_view text, size_t byte) {
  std::string out(source);
  if (byte == 0) return out;
  size_t at = std::min(byte - 1, text.size());
  auto before = text.substr(0, at);
  size_t line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
  auto nl = before.rfind('\n');
  size_t col = nl == std::string_view::npos ? at + 1 : at - nl;
  return out + ":" + std::to_string(line) + ":" + std::to_string(col);
}

/// A non-negative JSON integer (not 1.0, not -1), or nullopt.
std::optional<uint64_t> json_count(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() == 0) return 0; // "-0"
  return std::nullopt;
}

} // namespace

result<spot_trace> parse_spot_trace(std::string_view text, std::string_view source) {
  auto fail = [&](const std::string& what) {
    return error{errc::invalid_argument, std::string(source) + ": " + what};
  };
  json doc;
  size_t byte = 0;
  std::string why;
  if (!json_util::parse_strict(text, doc, byte, why))
    return error{errc::invalid_argument,
                 where(source, text, byte) + ": invalid JSON" +
                     (byte ? " at byte " + std::to_string(byte) : std::string()) + ": " +
                     why};
  if (!doc.is_object())
    return fail(std::string("expected a JSON object {\"metadata\":{\"gap_seconds\":N},"
                            "\"data\":[...]}, got ") +
                doc.type_name());
  auto meta = doc.find("metadata");
  if (meta == doc.end())
    return fail("missing \"metadata\" (an object with \"gap_seconds\")");
  if (!meta->is_object())
    return fail(std::string("\"metadata\" must be an object, got ") + meta->type_name());
  auto gap = meta->find("gap_seconds");
  if (gap == meta->end()) return fail("missing \"metadata\".\"gap_seconds\"");
  auto g = json_count(*gap);
  const auto max_s = std::chrono::duration_cast<std::chrono::seconds>(max_trace_time);
  if (!g || *g == 0 || *g > static_cast<uint64_t>(max_s.count()))
    return fail("\"metadata\".\"gap_seconds\": expected a positive whole number of "
                "seconds (at most 100 years), got " +
                json_util::shown(*gap));
  auto data = doc.find("data");
  if (data == doc.end()) return fail("missing \"data\" (an array of counts)");
  if (!data->is_array())
    return fail(std::string("\"data\" must be an array of counts, got ") +
                data->type_name());
  if (data->empty()) return fail("\"data\" has no ticks");

  spot_trace out;
  out.source = std::string(source);
  out.tick = std::chrono::seconds(*g);
  out.counts.reserve(data->size());
  for (size_t i = 0; i < data->size(); ++i) {
    const auto& v = (*data)[i];
    auto c = json_count(v);
    if (!c || *c > std::numeric_limits<uint32_t>::max())
      return fail("data[" + std::to_string(i) +
                  "]: expected a non-negative whole count of instances, got " +
                  json_util::shown(v));
    out.counts.push_back(static_cast<uint32_t>(*c));
  }
  if (auto prices = doc.find("prices"); prices != doc.end()) {
    if (!prices->is_array())
      return fail(std::string("\"prices\" must be an array of numbers, got ") +
                  prices->type_name());
    if (prices->size() != data->size())
      return fail("\"prices\" has " + std::to_string(prices->size()) +
                  " entries, \"data\" " + std::to_string(data->size()) +
                  ": expected one price per tick");
    out.prices.reserve(prices->size());
    for (size_t i = 0; i < prices->size(); ++i) {
      const auto& v = (*prices)[i];
      double usd = v.is_number() ? v.get<double>() : -1;
      if (!v.is_number() || !std::isfinite(usd) || usd < 0 || usd > max_price_usd)
        return fail("prices[" + std::to_string(i) +
                    "]: expected a price in USD from 0 to 1000000, got " +
                    json_util::shown(v));
      out.prices.emplace_back(std::llround(usd * 1e6));
    }
  }
  return out;
}

result<spot_trace> load_spot_trace(const std::string& path) {
  auto text = csv::read_file(path);
  if (!text) return text.err();
  return parse_spot_trace(*text, path);
}

} // namespace troupe::sim
