#pragma once
/// Error codes of the runtime module (category "runtime").

#include "troupe/runtime/result.hpp"

#include <system_error>

namespace troupe::runtime {

enum class errc {
  ok = 0,
  invalid_argument, ///< fix the input (bad config, bad spec, bad call)
  not_found,        ///< a named thing does not exist
  already_exists,   ///< a name or id is taken
  timeout,          ///< no answer in time: retry or give up
  overloaded,       ///< back off and retry later
  disconnected,     ///< the peer is gone: reconnect
  unavailable,      ///< the service cannot serve now: fall back
  io_error,         ///< file or storage failure
  corrupted,        ///< stored data failed an integrity check
  stopped,          ///< the runtime or actor is shutting down
  actor_failed,     ///< the target actor exited or raised an error
  internal,         ///< unexpected failure inside a dependency
};

const std::error_category& runtime_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), runtime_category()};
}

} // namespace troupe::runtime

template <> struct std::is_error_code_enum<troupe::runtime::errc> : std::true_type {};
