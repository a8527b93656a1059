#pragma once
/// Error codes of the cluster actors module (category "actors").

#include "troupe/runtime/result.hpp"

#include <system_error>

namespace troupe::actors {

enum class errc {
  ok = 0,
  invalid_argument, ///< malformed spec, config or request: fix the input
  not_found,        ///< unknown node, job, replica or name
  conflict,     ///< the state changed under the caller (stale incarnation, name taken)
  unavailable,  ///< the facility is not there (no NVML, no cgroup v2, head down)
  unauthorized, ///< missing or wrong credentials
  forbidden,    ///< the caller is known but may not do this (admin only)
  exhausted,    ///< a budget or quota blocks the request for now
};

const std::error_category& actors_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), actors_category()};
}

} // namespace troupe::actors

template <> struct std::is_error_code_enum<troupe::actors::errc> : std::true_type {};
