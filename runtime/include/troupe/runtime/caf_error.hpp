#pragma once
/// troupe errors inside CAF: a `runtime::errc` travels in a `caf::error`
/// of category "troupe" (code = the errc, context = the message), so an
/// actor can answer a request with `disconnected` or `overloaded` and the
/// requester (local or on another node) gets that code back.

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/result.hpp"

#include <caf/all.hpp>
#include <string>
#include <string_view>

namespace troupe {

/// The CAF error category of runtime::errc codes.
inline constexpr caf::atom_value caf_error_category = caf::atom("troupe");

/// A caf::error carrying `e` and `message`.
[[nodiscard]] caf::error to_caf_error(runtime::errc e, std::string message);

/// A troupe error from a CAF error: troupe-category errors keep their code;
/// CAF's request timeout becomes timeout, a vanished receiver actor_failed,
/// anything else actor_failed with CAF's rendering. `what` prefixes the
/// message ("request", ...).
[[nodiscard]] error from_caf_error(const caf::error& e, std::string_view what);

} // namespace troupe
