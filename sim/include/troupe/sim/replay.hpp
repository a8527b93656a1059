#pragma once
/// Trace replays as `troupe cluster-sim replay` runs them: several policies
/// on the same trace and cluster, side by side, optionally per tenant (per
/// virtual cluster for Philly), with one table, one JSON summary, one CSV of
/// the time series and SVG charts.

#include "troupe/sim/engine.hpp"
#include "troupe/sim/report.hpp"
#include "troupe/sim/trace.hpp"

#include <string>
#include <vector>

namespace troupe::sim {

struct replay_options {
  std::vector<std::string> policies = {"fifo", "sjf", "troupe"};
  /// Run each tenant's jobs on its own nodes: the trace nodes named
  /// "<tenant>-..." (the Philly loader's naming). Tenants without nodes are
  /// skipped with a warning.
  bool per_tenant = false;
  /// Everything else (topology, checkpoints, faults, sampling, seed). With
  /// `per_tenant`, the topology is built per tenant from the trace's nodes.
  sim_config base;
};

/// What a replay produced, ready to print or write.
struct report_bundle {
  summary_table table;
  std::vector<chart> charts;
  std::string json;
  std::vector<std::string> warnings;
  uint64_t events = 0; ///< engine events over all runs (for events/s)
};

/// Runs every policy (and tenant) in `opt`; `progress` sees the jobs done
/// over all runs. invalid_argument for an unknown policy (before anything
/// runs), a bad config, or no runnable tenant.
[[nodiscard]] result<report_bundle> run_replay(const trace& t, const replay_options& opt,
                                               const progress_fn& progress = {});

/// Writes `summary.txt`, `summary.json`, `series.csv` and one SVG per chart
/// (`<chart id>.svg`) into `dir` (created if missing). io_error naming the
/// file that failed.
[[nodiscard]] result<void> write_report(const std::string& dir, const report_bundle& r);

} // namespace troupe::sim
