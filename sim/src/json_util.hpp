#pragma once
/// nlohmann::json at the boundary of sim/'s loaders (private to sim/): its
/// exceptions become troupe errors here and nowhere else.

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

namespace troupe::sim::json_util {

/// The text of a nlohmann exception without its "[json.exception.x.y]" tag
/// and "parse error at line L, column C: " prefix (the caller says where).
inline std::string what_of(const nlohmann::json::exception& e) {
  std::string_view s = e.what();
  if (s.starts_with("[json.exception.")) {
    auto close = s.find("] ");
    if (close != std::string_view::npos) s.remove_prefix(close + 2);
  }
  if (s.starts_with("parse error")) {
    auto colon = s.find(": ");
    if (colon != std::string_view::npos) s.remove_prefix(colon + 2);
  }
  return std::string(s);
}

/// A short rendering of a JSON value for an error message.
inline std::string shown(const nlohmann::json& v) {
  constexpr size_t max_shown = 40;
  auto s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max_shown) s = s.substr(0, max_shown) + "...";
  return s;
}

/// Parses one JSON document; a key repeated in the top-level object is an
/// error (nlohmann would keep the last silently). On failure returns false
/// and sets `byte` (1-based position, 0 when unknown) and `why`.
inline bool parse_strict(std::string_view text, nlohmann::json& out, size_t& byte,
                         std::string& why) {
  std::set<std::string, std::less<>> keys;
  std::string duplicate;
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& v) {
    if (ev == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        v.is_string()) {
      const auto& k = v.get_ref<const std::string&>();
      if (!keys.insert(k).second) duplicate = k;
    }
    return true;
  };
  try {
    out = nlohmann::json::parse(text.begin(), text.end(), cb);
  } catch (const nlohmann::json::parse_error& e) {
    byte = e.byte;
    why = what_of(e);
    return false;
  } catch (const nlohmann::json::exception& e) {
    byte = 0;
    why = what_of(e);
    return false;
  }
  if (!duplicate.empty()) {
    byte = 0;
    why = "key \"" + duplicate + "\" appears twice";
    return false;
  }
  return true;
}

} // namespace troupe::sim::json_util
