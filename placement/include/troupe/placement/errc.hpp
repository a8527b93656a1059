#pragma once
/// Error codes of the placement module (category "placement").

#include "troupe/runtime/result.hpp"

#include <system_error>

namespace troupe::placement {

enum class errc {
  ok = 0,
  invalid_argument, ///< malformed request or topology: fix the input
  not_found,        ///< unknown node, allocation or request
  unschedulable,    ///< can never fit this cluster as it is configured
  insufficient,     ///< does not fit now: wait, or preempt
  conflict,         ///< the state changed under the caller (e.g. double release)
};

const std::error_category& placement_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), placement_category()};
}

} // namespace troupe::placement

template <> struct std::is_error_code_enum<troupe::placement::errc> : std::true_type {};
