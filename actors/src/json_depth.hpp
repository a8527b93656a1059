#pragma once
// Bounding JSON from outside before nlohmann parses it (private to actors/).

#include <algorithm>
#include <cstddef>
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

} // namespace troupe::actors::detail
