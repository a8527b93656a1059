#pragma once
// `troupe cluster-sim`: argument parsing for the cluster simulator. Thin: all
// logic lives in troupe::sim.

#include <CLI/CLI.hpp>
#include <functional>

namespace troupe::tools {

/// Adds the `cluster-sim` subcommand to `app`; returns the subcommand and
/// sets `run` to the function to call when it was parsed (exit code).
CLI::App* add_cluster_sim(CLI::App& app, std::function<int()>& run);

} // namespace troupe::tools
