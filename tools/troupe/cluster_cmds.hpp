#pragma once
// `troupe up`, `troupe down`, `troupe nodes`: a local cluster of trouped
// processes and its members. Thin: troupe::actors does the work.

#include <CLI/CLI.hpp>
#include <functional>

namespace troupe::tools {

/// Adds `up`, `down` and `nodes` to `app`; `run` is set to the one parsed.
void add_cluster_commands(CLI::App& app, std::function<int()>& run);

} // namespace troupe::tools
