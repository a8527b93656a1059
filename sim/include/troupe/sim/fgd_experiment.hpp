#pragma once
/// The arrival experiment of "Beware of Fragmentation" (Weng et al., USENIX
/// ATC'23, Fig. 7 and 9), as the paper's simulator runs it
/// (github hkust-adsl/kubernetes-scheduler-simulator), on troupe's placer
/// and scorers: a cluster receives GPU pods one after another until the
/// GPUs they ask for reach `demand_ratio` times its capacity; nothing
/// departs; after each arrival the share of GPUs allocated and the
/// fragmented GPUs are recorded. docs/FGD-EXPERIMENT.md has the results.
///
/// Definitions, following the simulator (pkg/simulator/simulator.go,
/// analysis.go, pkg/utils/frag.go, experiments/analysis/merge_*_discrete.py):
/// - Capacity C: the cluster's GPUs in milli-GPU (a GPU is 1000).
/// - Arrivals (`arrival_model::simulator`, the simulator's `tuneUpPods`
///   after `SortClusterPods` with shuffling on): every pod of the trace once,
///   in a seeded random order, then pods drawn from the trace uniformly at
///   random with replacement, appended while the GPUs requested stay within
///   `demand_ratio` x C: a draw is kept when the total so far plus its GPU
///   milli per GPU (1000 for whole GPUs, its share for a share, 0 for a
///   CPU-only pod) is at most the target, and its total GPU milli is then
///   added; the first draw that is not kept ends the list. When the trace
///   alone asks for more than the target, seeded random pods are removed
///   until it does not (`tuneDownPods`). `arrival_model::with_replacement`
///   draws every arrival with replacement under the same rule.
/// - Node order: the simulator prefixes node names with a seeded random
///   permutation and breaks score ties by the smallest name; the experiment
///   permutes the nodes with the seed (`shuffle_nodes`), and troupe's placer
///   breaks ties by node order, so both break ties at random, fixed per
///   seed. The same seed gives every policy the same arrivals and order.
/// - Arrived demand after arrival i: the GPU milli requested by arrivals
///   1..i, placed or not, over C.
/// - Allocated: GPU milli held by placed pods (a whole GPU counts 1000, a
///   share its milli), over C.
/// - Fragmented GPUs: the cluster's expected fragmentation F(M) (the sum
///   over nodes of `node_fragmentation`) against the target workload M,
///   the typical pods of the whole trace (`typical_workload_mix`), in GPUs;
///   reported as a share of C. The fragmentation rate is F(M) over the free
///   GPU milli (`fragmentation_rate`).
/// - Figures at x% arrived demand (x = 0, 1, ..., 100 x demand_ratio): the
///   mean over the records (the state before any arrival, then one after
///   each arrival) whose arrived demand rounds (half to even) to x percent;
///   when none does, over those that round to x-1..x+1; no point when none
///   of those exists either. "At 100%" is the point x = 100, the paper's
///   headline figure. The simulator rounds each record to 2 decimals first;
///   the experiment does not.
///
/// Policies (the placer with one scorer each; every pod is a one-bundle
/// PACK gang):
/// - `random`: `random_scorer` (the simulator's RandomScore with random GPU
///   choice): a feasible node uniformly at random, then a GPU on it.
/// - `bestfit`: `paper_best_fit_scorer` with the simulator's integer score
///   (best_fit_score.go) and best-fit GPU choice.
/// - `fgd`: `fgd_scorer` with the simulator's integer score (fgd_score.go).
/// - `troupe`: troupe's own policy, `troupe_scorer` (fragmentation.hpp): the
///   FGD gradient against M plus a capacity term against the mix of every
///   class of the trace (`troupe_capacity_popularity`).
/// - `fgd_gradient`, `bestfit_exact`, `best_fit`: the exact FGD gradient,
///   the paper's BestFit without the integer rounding, and troupe's
///   default best fit, for comparison.
///
/// Plain code over plain data, deterministic: the same inputs give the same
/// result, byte for byte (draws from `troupe::seeded_rng`).

#include "troupe/placement/fragmentation.hpp"
#include "troupe/placement/topology.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/sim/report.hpp"
#include "troupe/sim/trace.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::sim {

/// How the arrival list is drawn from the trace (see the header comment).
enum class arrival_model : uint8_t {
  simulator,        ///< every trace pod once (shuffled), then draws with replacement
  with_replacement, ///< every arrival drawn with replacement
};

struct fgd_experiment_config {
  /// Arrivals stop when the GPUs requested would pass this multiple of the
  /// cluster's GPUs; > 0. The paper uses 1.3.
  double demand_ratio = 1.3;
  /// Policies to run, by name (`fgd_policy_names`).
  std::vector<std::string> policies{"random", "bestfit", "fgd", "troupe"};
  /// One run per policy and seed; the paper's seeds are 42-51.
  std::vector<uint64_t> seeds{42, 43, 44, 45, 46, 47, 48, 49, 50, 51};
  /// How the target workload is built from the trace (the paper: 95%
  /// popularity, CPU-only pods included).
  placement::typical_mix_options mix;
  arrival_model arrivals = arrival_model::simulator;
  /// troupe's policy: the popularity threshold of the capacity mix M' (1:
  /// every class of the trace) and the weight of its term
  /// (`troupe_scorer`).
  double troupe_capacity_popularity = 1.0;
  double troupe_capacity_weight = placement::troupe_scorer::default_capacity_weight;
  /// Permute the nodes with the seed (the simulator's random node names).
  bool shuffle_nodes = true;
};

/// One policy on one seed.
struct fgd_run {
  std::string policy;
  uint64_t seed = 0;
  uint64_t arrivals = 0;            ///< pods that arrived
  uint64_t failed = 0;              ///< pods that found no room
  uint64_t arrived_gpu_milli = 0;   ///< GPU milli requested by all arrivals
  uint64_t allocated_gpu_milli = 0; ///< GPU milli allocated at the end
  /// The figures at x = 100 (0 when the curve has no point there: a small
  /// cluster whose pods jump over 99-101%).
  double alloc_at_100 = 0;     ///< % of GPUs allocated at 100% arrived demand
  double frag_at_100 = 0;      ///< fragmented GPUs there, % of the cluster's GPUs
  double frag_gpus_at_100 = 0; ///< the same in GPUs
  double frag_rate_at_100 = 0; ///< fragmented share of the free GPUs there, %
  /// The curves over arrived demand: x in percent of capacity (0, 1, ...,
  /// with gaps where no record falls), and at each x the allocated GPUs,
  /// the fragmented GPUs (both % of the cluster's GPUs) and the
  /// fragmentation rate (% of free GPUs).
  std::vector<double> demand_pct;
  std::vector<double> alloc_pct;
  std::vector<double> frag_pct;
  std::vector<double> frag_rate_pct;

  friend bool operator==(const fgd_run&, const fgd_run&) = default;
};

/// The runs of an experiment and their summaries.
struct fgd_experiment_result {
  fgd_experiment_config config;
  uint64_t total_gpu_milli = 0; ///< the capacity C
  size_t nodes = 0;
  size_t mix_classes = 0; ///< classes of the target workload
  /// Policy-major: the runs of config.policies[0] for every seed in
  /// config.seeds order, then the next policy's.
  std::vector<fgd_run> runs;

  /// The run of `policy` on `seed`; null when there is none.
  const fgd_run* find(const std::string& policy, uint64_t seed) const;

  /// One row per policy: mean, sample standard deviation, min and max of
  /// the allocation at 100% arrived demand over the seeds; mean fragmented
  /// GPUs (% of GPUs) and fragmentation rate there; mean failed pods; and
  /// the seeds on which the policy allocated more than `fgd` did (paired:
  /// same seed, same arrivals), "-" for fgd itself or when fgd did not run.
  summary_table table() const;

  /// Per-seed allocation at 100% arrived demand: one row per seed, one
  /// column per policy.
  summary_table seed_table() const;

  /// Charts over arrived GPU demand (% of capacity), one line per policy,
  /// the mean over seeds at each x: "fgd_allocation" (GPUs allocated, %)
  /// and "fgd_fragmentation" (fragmented GPUs, % of the cluster's GPUs).
  std::vector<chart> charts() const;
};

/// Parses a seed list: "42-51", "1,2,7" or a mix ("1-3,9"), in order.
/// invalid_argument naming the text otherwise.
[[nodiscard]] result<std::vector<uint64_t>> parse_seed_list(std::string_view text);

/// Parses "simulator" or "with_replacement"; invalid_argument otherwise.
[[nodiscard]] result<arrival_model> parse_arrival_model(std::string_view text);

/// The policy names `run_fgd_experiment` knows, in a fixed order.
std::vector<std::string> fgd_policy_names();

/// Runs every policy of `cfg` on every seed over `topology` with arrivals
/// drawn from the jobs of `pods` (one bundle each, e.g. the Alibaba openb
/// pod list). `progress`, when set, is called with (arrivals done, arrivals
/// in all runs) now and then, and at the end. invalid_argument: an unknown
/// policy (the message lists the known names), no policy, no seed, a
/// demand ratio that is not a positive number, a topology without GPUs or
/// that does not validate, no pods, a pod of several bundles, or a
/// target workload that cannot be built (typical_workload_mix).
[[nodiscard]] result<fgd_experiment_result>
run_fgd_experiment(const placement::cluster_topology& topology, const trace& pods,
                   const fgd_experiment_config& cfg,
                   std::function<void(uint64_t done, uint64_t total)> progress = {});

} // namespace troupe::sim
