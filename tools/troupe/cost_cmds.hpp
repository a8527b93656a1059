#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace troupe::tools {

/// cost, audit, mig-advice, spot-notice: the head's FinOps actor through the HTTP API.
void add_cost_commands(CLI::App& app, std::function<int()>& run);

} // namespace troupe::tools
