#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace troupe::tools {

/// submit, jobs, job, cancel, logs, token.
void add_job_commands(CLI::App& app, std::function<int()>& run);

} // namespace troupe::tools
