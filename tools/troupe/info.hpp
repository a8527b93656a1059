#pragma once
// `troupe info`: what this machine's transport can do and what UCX chose
// for each peer. Thin: the fabric (troupe::transport) does the work.

#include <CLI/CLI.hpp>
#include <functional>

namespace troupe::tools {

/// Adds the `info` subcommand to `app`; returns it and sets `run`.
CLI::App* add_info(CLI::App& app, std::function<int()>& run);

} // namespace troupe::tools
