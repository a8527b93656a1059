#pragma once
/// Error codes of the finops module (category "finops").

#include "troupe/runtime/result.hpp"

#include <system_error>

namespace troupe::finops {

enum class errc {
  ok = 0,
  invalid_argument, ///< malformed sample, entry, policy or config: fix the input
  not_found,        ///< unknown allocation or tenant
  conflict,         ///< the call does not fit the state (e.g. tracking an id twice)
  corrupted,        ///< serialised ledger state failed to decode or check
};

const std::error_category& finops_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), finops_category()};
}

} // namespace troupe::finops

template <> struct std::is_error_code_enum<troupe::finops::errc> : std::true_type {};
