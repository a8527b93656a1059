#pragma once
/// The first main job: a small supervised actor tree doing visible work.
///
/// A root supervisor runs an aggregator and a worker pool (itself a
/// supervisor) of N workers, one per (possibly simulated) GPU. The driver
/// splits a Monte Carlo estimate of pi into shards, sends each to a worker by
/// name and feeds the answers to the aggregator. One worker is made to crash
/// on a chosen shard: its supervisor restarts it, the driver retries the
/// shard, and the result is the same as without the crash (shards are
/// seeded, so the estimate is deterministic).

#include "troupe/runtime/node.hpp"
#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <iosfwd>
#include <string>

namespace troupe::workloads {

struct demo_options {
  uint32_t workers = 4; ///< worker actors (simulated GPUs when none)
  uint32_t shards = 64; ///< work items
  uint64_t samples_per_shard = 200000;
  uint64_t seed = 42;
  int64_t crash_shard = 5; ///< shard whose first attempt crashes its worker; -1: none
  bool print_metrics = true;
};

struct demo_report {
  double pi_estimate = 0;
  uint64_t samples = 0;
  uint64_t shards_done = 0;
  uint64_t retries = 0;
  uint64_t restarts = 0; ///< restarts performed by the worker pool's supervisor
};

/// Runs the demo job on `n`, printing progress to `out`.
[[nodiscard]] result<demo_report> run_demo(node& n, const demo_options& opt,
                                           std::ostream& out);

/// The estimate for `opt` computed in one thread without actors (to check
/// the distributed answer against).
double reference_estimate(const demo_options& opt);

} // namespace troupe::workloads
