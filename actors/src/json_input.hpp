#pragma once
// Helpers for JSON from outside (node reports, job specs): bounding it
// before nlohmann parses it, and saying what the sender wrote in errors.
// Private to actors/.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace troupe::actors::detail {

/// Deepest nesting of arrays and objects in `text`, counted outside strings,
/// stopping once `limit` is passed (so nlohmann never builds a deep tree).
inline std::size_t json_nesting_depth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

/// Longest text quoted back in an error message.
inline constexpr std::size_t max_quoted_bytes = 48;

/// `s` in quotes for an error message: at most max_quoted_bytes, control
/// characters, quotes and backslashes shown as '?'.
inline std::string quote_for_error(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == max_quoted_bytes) return out + "\"...";
    auto c = static_cast<unsigned char>(s[i]);
    out += c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? '?' : static_cast<char>(c);
  }
  return out + "\"";
}

/// What the sender wrote, for "got ...": short and printable.
inline std::string describe_json(const nlohmann::json& v) {
  using json = nlohmann::json;
  switch (v.type()) {
  case json::value_t::null:
    return "null";
  case json::value_t::boolean:
    return v.get<bool>() ? "true" : "false";
  case json::value_t::number_integer:
    return std::to_string(v.get<int64_t>());
  case json::value_t::number_unsigned:
    return std::to_string(v.get<uint64_t>());
  case json::value_t::number_float:
    return "a fractional number";
  case json::value_t::string:
    return quote_for_error(v.get_ref<const std::string&>());
  case json::value_t::array:
    return "an array of " + std::to_string(v.size()) + " items";
  case json::value_t::object:
    return "an object";
  default:
    return "something else";
  }
}

} // namespace troupe::actors::detail
