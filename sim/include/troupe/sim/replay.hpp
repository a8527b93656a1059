#pragma once
/// Trace replays as `troupe cluster-sim replay` runs them: several policies
/// on the same trace and cluster, side by side, optionally per tenant (per
/// virtual cluster for Philly), with one table, one JSON summary, one CSV of
/// the time series and SVG charts.

#include "troupe/sim/engine.hpp"
#include "troupe/sim/report.hpp"
#include "troupe/sim/trace.hpp"

#include <optional>
#include <string>
#include <vector>

namespace troupe::sim {

struct replay_options {
  std::vector<std::string> policies = {"fifo", "sjf", "troupe"};
  /// Run each tenant's jobs on its own nodes: the trace nodes named
  /// "<tenant>-..." (the Philly loader's naming). Tenants without nodes are
  /// skipped with a warning.
  bool per_tenant = false;
  /// Everything else (topology, checkpoints, faults, sampling, seed,
  /// FinOps). With `per_tenant`, the topology is built per tenant from the
  /// trace's nodes.
  sim_config base;
  /// Prices put on every topology a run uses (`price_nodes`): all nodes
  /// on-demand at `on_demand`, a seeded `spot_fraction` of them spot at
  /// `spot`. Unset: the topology's own prices.
  struct node_pricing {
    micro_usd on_demand{0};
    micro_usd spot{0};
    double spot_fraction = 0;
  };
  std::optional<node_pricing> pricing;
};

/// What a replay produced, ready to print or write.
struct report_bundle {
  summary_table table;
  /// The FinOps outcome of each run, when `base.finops` was set.
  std::optional<summary_table> finops_table;
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
