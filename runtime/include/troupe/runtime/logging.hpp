#pragma once
/// Logging: one named spdlog logger per module ("runtime", "placement", ...),
/// sharing one sink and one level set from the node config. Lines handled
/// inside a traced message carry `trace=<id>` (pattern flag `%*`).

#include "troupe/runtime/result.hpp"

#include <memory>
#include <spdlog/logger.h>
#include <string>
#include <string_view>

namespace troupe::logging {

/// Where and how much to log.
struct settings {
  std::string level = "info"; ///< trace|debug|info|warn|error|off
  std::string file;           ///< empty: stderr
  std::string pattern;        ///< empty: default pattern with trace ids
};

/// The default pattern: time, level, module, trace id (when any), message.
inline constexpr const char* default_pattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %*%v";

/// Applies `s` to every module logger, existing and future. invalid_argument
/// for an unknown level; io_error when the file cannot be opened.
[[nodiscard]] result<void> configure(const settings& s);

/// Flushes every module logger (node::stop calls it).
void flush();

/// The logger of `module` (created on first use with the current settings).
std::shared_ptr<spdlog::logger> get(std::string_view module);

} // namespace troupe::logging
