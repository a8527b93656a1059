#pragma once
/// Fragmentation-aware placement: the GPU fragmentation measure and the
/// Fragmentation Gradient Descent (FGD) scorer of "Beware of Fragmentation:
/// Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent"
/// (Weng et al., USENIX ATC'23), with the paper's Random and BestFit
/// baselines as scorers.
///
/// The definitions follow the paper's public simulator
/// (github hkust-adsl/kubernetes-scheduler-simulator): pkg/utils/frag.go
/// (GetNodePodFrag, GetGpuFragMilliByNodeResAndPodRes, NodeGpuShareFragAmount,
/// GetTypicalPods), pkg/simulator/plugin/fgd_score.go,
/// best_fit_score.go, random_score.go and open_gpu_share.go. docs/ARCHITECTURE.md
/// lists where this model differs from the simulator's.
///
/// Plain code over plain data: no actors, no I/O, no clock.

#include "troupe/placement/cluster_state.hpp"
#include "troupe/placement/placer.hpp"
#include "troupe/runtime/random.hpp"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace troupe::placement {

namespace detail {
struct fragmentation_cache;
}

/// One kind of task of the target workload (the simulator's "typical pod"):
/// what it asks for and how often it comes. GPU demand is spelled as in
/// `bundle`: `gpus` whole GPUs, or a `gpu_milli` share (1..999) of one GPU,
/// or neither (a CPU-only task).
struct workload_class {
  uint32_t gpus = 0;                   ///< whole GPUs on one node
  uint32_t gpu_milli = 0;              ///< 1..999: a share of one GPU
  std::vector<std::string> gpu_models; ///< allowed models; empty: any
  uint64_t cpu_milli = 0;
  double weight = 0; ///< popularity; a built mix sums to 1

  bool cpu_only() const noexcept { return gpus == 0 && gpu_milli == 0; }
};

/// The target workload M: task classes with their popularity.
struct workload_mix {
  std::vector<workload_class> classes;

  double total_weight() const noexcept;
  /// invalid_argument listing every bad class (negative or non-finite
  /// weight, both whole GPUs and a share, a share of 1000 or more).
  [[nodiscard]] result<void> validate() const;
};

/// How `typical_workload_mix` picks classes.
struct typical_mix_options {
  /// Keep the most frequent classes until they cover at least this share of
  /// the bundles, in (0, 1]. The paper's experiments use 0.95.
  double popularity = 0.95;
  /// Count CPU-only bundles as a class (the experiments do).
  bool include_cpu_only = true;
};

/// Builds the target workload from a list of bundles (e.g. every pod of a
/// trace) as the simulator builds its typical pods: bundles are grouped by
/// the tuple (cpu_milli, GPU milli per GPU, GPU count, allowed models in the
/// order given); each group counts its bundles; groups are sorted by count,
/// most first (ties: the larger tuple first, comparing CPU, then milli per
/// GPU, then count, then the models joined by '|'); groups are taken one at
/// a time until their cumulative count reaches `popularity` of all bundles;
/// each kept class's weight is its count over the kept count, so weights sum
/// to 1. MIG bundles are skipped (the paper has no MIG).
/// invalid_argument: popularity outside (0, 1], a bundle asking for whole
/// GPUs and a share or for a share of 1000 or more (names the bundle), or no
/// bundle that makes a class.
[[nodiscard]] result<workload_mix>
typical_workload_mix(std::span<const bundle> bundles,
                     const typical_mix_options& opt = {});

/// Free GPU of a node in milli-GPU: per non-MIG GPU, 0 when allocated
/// whole, else 1000 minus its shares. MIG GPUs are left out (see
/// `class_fragmentation`).
uint64_t node_free_gpu_milli(const node_spec& spec, const node_state& ns) noexcept;

/// The free GPU (milli-GPU) of a node that a task of class `c` cannot use:
/// - CPU-only class: all free GPU;
/// - the node cannot host the class (fewer usable GPUs than the class needs,
///   or less free CPU than it asks): all free GPU;
/// - else the free GPU of the GPUs it cannot use.
/// A GPU is usable by a share class when it is not MIG, its model is
/// allowed, it is not allocated whole, its free milli covers the share and
/// (time-sliced) it has a slice left; by a whole-GPU class when it is a
/// whole-sharing GPU of an allowed model with nothing on it. MIG GPUs are
/// outside the measure: neither free nor fragment. Node memory is not
/// considered (the paper's model has none). Allocation-free, O(gpus).
uint64_t class_fragmentation(const node_spec& spec, const node_state& ns,
                             const workload_class& c) noexcept;

/// The node's expected fragmentation F_n(M) = sum over classes of weight x
/// class_fragmentation, in milli-GPU. Allocation-free, O(gpus x classes).
double node_fragmentation(const node_spec& spec, const node_state& ns,
                          const workload_mix& mix) noexcept;

/// Sum of node_fragmentation over schedulable nodes (milli-GPU).
double cluster_fragmentation(const cluster_state& st, const workload_mix& mix);

/// Share of free GPU that is fragment: F_n(M) / (W x free), W the total
/// weight of the mix (1 for a built mix), as the simulator's
/// PreFilterFragGpuRatio; 0 when nothing is free.
double fragmentation_rate(const node_spec& spec, const node_state& ns,
                          const workload_mix& mix) noexcept;
/// The same over the schedulable nodes of a cluster.
double fragmentation_rate(const cluster_state& st, const workload_mix& mix);

/// How `fgd_scorer` turns the fragmentation gradient into a score.
enum class fgd_score : uint8_t {
  /// The increase itself (milli-GPU). The placer takes the strictly
  /// smallest; exact ties go to the first candidate in node order.
  gradient,
  /// The simulator's node score (fgd_score.go): -floor(100 x sigmoid(
  /// -increase / 1000)), an integer in [-100, 0]. One step is about 40
  /// milli-GPU of increase near zero and wider further out, so nearly equal
  /// increases tie, and a tie goes to the first node (the simulator takes the
  /// smallest node name). Same order as `gradient` up to that quantisation,
  /// which packs near-ties onto the first nodes.
  simulator,
};

/// FGD: the score of a candidate is the increase of the node's expected
/// fragmentation that the placement causes (the fragmentation gradient,
/// milli-GPU; negative when it removes fragment), or the simulator's
/// quantised form of it (`fgd_score`). The placer keeps the candidate with
/// the smallest increase. A candidate that does not apply (the checks of
/// `cluster_state::apply_to`) scores +infinity (never chosen). MIG bundles,
/// which the measure leaves out, are scored by `best_fit_scorer` instead.
///
/// Fast without changing a result: the scorer remembers each node's state
/// and, per distinct (node shape, state) (nodes in the same state share
/// one entry), F_n(M) and the per-class counts it derives from, and the
/// gradient of each kind of candidate asked about it (by changed GPU's
/// model and free milli, bundle CPU, share or GPU count). A decision then
/// costs one comparison of state per node, plus O(classes) for each
/// (state, candidate kind) not seen before; the gradients are the same
/// doubles as applying the candidate to a copy and subtracting the two
/// `node_fragmentation`s (tests/placement/fragmentation_test.cpp keeps that
/// computation as the reference and compares). Nodes are told apart by
/// `candidate.node`; a node's spec object must not change while the scorer
/// lives (a different spec object for the same node is noticed by
/// address). Holds a reference to `st`, which must outlive the scorer. Not
/// thread-safe: the caches are shared by all calls.
class fgd_scorer final : public scorer {
public:
  /// Aborts when `mix` is invalid (validate it at the boundary first).
  fgd_scorer(const cluster_state& st, workload_mix mix,
             fgd_score mode = fgd_score::gradient);
  ~fgd_scorer() override;
  fgd_scorer(const fgd_scorer&) = delete;
  fgd_scorer& operator=(const fgd_scorer&) = delete;

  double score(const node_spec& spec, const node_state& before, const bundle& b,
               const bundle_placement& candidate) const override;
  void score_node(const node_spec& spec, const node_state& before, const bundle& b,
                  std::span<const bundle_placement> candidates,
                  std::span<double> out) const override;

  /// The increase of F_n(M) if `candidate` were applied (milli-GPU);
  /// +infinity when it does not apply. Not defined for MIG bundles.
  double gradient(const node_spec& spec, const node_state& before, const bundle& b,
                  const bundle_placement& candidate) const;

  const workload_mix& mix() const noexcept { return mix_; }
  fgd_score mode() const noexcept { return mode_; }

private:
  const cluster_state& st_;
  workload_mix mix_;
  fgd_score mode_;
  best_fit_scorer mig_fallback_;
  std::unique_ptr<detail::fragmentation_cache> cache_; ///< mutable through const calls
};

/// How many more tasks of class `c` node `n` could take, one after another,
/// from what is free now: as many as its GPUs hold (a whole-GPU task of k
/// GPUs takes k entirely free whole-sharing GPUs of an allowed model; a
/// share of m milli fits floor(free / m) times on each allowed non-MIG GPU
/// not taken whole, at most the slices left on a time-sliced one) and its
/// free CPU holds (free CPU / the class's CPU), whichever is fewer. 0 for
/// a CPU-only class. Allocation-free, O(gpus).
uint64_t class_capacity(const node_spec& spec, const node_state& ns,
                        const workload_class& c) noexcept;

/// The node's capacity for the workload, H_n(M) = sum over classes that
/// ask for GPUs of weight x GPU milli per task x class_capacity: the GPU
/// work the node could still take if tasks of one class kept coming,
/// expected over the mix (milli-GPU). Where F_n(M) sees only the next task,
/// H_n(M) sees that the CPU of a node runs out after a few tasks, stranding
/// the GPUs after them. Allocation-free, O(gpus x classes).
double node_capacity(const node_spec& spec, const node_state& ns,
                     const workload_mix& mix) noexcept;

/// troupe's fragmentation-aware scorer: the FGD gradient plus
/// `capacity_weight` times the capacity the candidate costs its node,
///   score = [F_n(M) after - before] + capacity_weight x [H_n(M') before - after],
/// lower is better, where M is the target workload of the fragmentation
/// measure and M' that of `node_capacity` (for the openb trace, the paper's
/// 95% typical mix and the full mix with every class: large tasks are rare
/// but ask for many GPUs). The capacity term breaks the ties and near-ties
/// of the gradient (a CPU-only task is zero-gradient on most nodes; it
/// goes where its CPU strands the fewest future GPUs) and keeps room for
/// multi-GPU tasks, which the 95% mix leaves out. docs/FGD-EXPERIMENT.md
/// has the measurements (tuned on seeds 1-10, evaluated on 42-51).
/// Same caches, speed and candidate checks as `fgd_scorer`; MIG bundles go
/// to `best_fit_scorer`. Holds a reference to `st`, which must outlive the
/// scorer. Not thread-safe.
class troupe_scorer final : public scorer {
public:
  /// The default capacity weight (chosen on the tuning seeds).
  static constexpr double default_capacity_weight = 0.125;

  /// Aborts when a mix is invalid or the weight is negative or not finite.
  troupe_scorer(const cluster_state& st, workload_mix mix, workload_mix capacity_mix,
                double capacity_weight = default_capacity_weight);
  /// The same mix for both measures.
  troupe_scorer(const cluster_state& st, workload_mix mix);
  ~troupe_scorer() override;
  troupe_scorer(const troupe_scorer&) = delete;
  troupe_scorer& operator=(const troupe_scorer&) = delete;

  double score(const node_spec& spec, const node_state& before, const bundle& b,
               const bundle_placement& candidate) const override;
  void score_node(const node_spec& spec, const node_state& before, const bundle& b,
                  std::span<const bundle_placement> candidates,
                  std::span<double> out) const override;

  /// The two terms for `candidate`: the increase of F_n(M) and the decrease
  /// of H_n(M'); both +infinity when it does not apply. Not defined for MIG
  /// bundles.
  std::pair<double, double> effect(const node_spec& spec, const node_state& before,
                                   const bundle& b,
                                   const bundle_placement& candidate) const;

  const workload_mix& mix() const noexcept { return mix_; }
  const workload_mix& capacity_mix() const noexcept { return capacity_mix_; }
  double capacity_weight() const noexcept { return capacity_weight_; }

private:
  const cluster_state& st_;
  workload_mix mix_;
  workload_mix capacity_mix_;
  double capacity_weight_;
  best_fit_scorer mig_fallback_;
  std::unique_ptr<detail::fragmentation_cache> cache_;
};

/// The paper's Random baseline: every node that has a candidate is equally
/// likely, then every candidate on it (a GPU for a share). Each candidate
/// draws 1 - (1 - u)^k, u uniform in [0, 1) and k the node's candidate
/// count, so the minimum over a node's candidates is uniform whatever k is.
/// Seeded (`troupe::seeded_rng`) and deterministic for a given sequence of
/// calls. `score` counts the node's candidates (holds a reference to `st`
/// for that, which must outlive the scorer); `score_node` takes the count
/// it is given. Not thread-safe: the generator is shared by all calls.
class random_scorer final : public scorer {
public:
  random_scorer(const cluster_state& st, uint64_t seed);

  double score(const node_spec& spec, const node_state& before, const bundle& b,
               const bundle_placement& candidate) const override;
  void score_node(const node_spec& spec, const node_state& before, const bundle& b,
                  std::span<const bundle_placement> candidates,
                  std::span<double> out) const override;

private:
  double draw(size_t candidates) const;
  const cluster_state& st_;
  mutable seeded_rng rng_;
};

/// How `paper_best_fit_scorer` turns its fit into a score.
enum class best_fit_score : uint8_t {
  /// The fit itself: the placer takes the strictly smallest.
  exact,
  /// The simulator's node score (best_fit_score.go): trunc(100 x (1 -
  /// fit)), higher better, negated here; nodes whose fits differ by less
  /// than 0.01 may tie, and a tie goes to the first node (the simulator
  /// takes the smallest node name; its NormalizeScore keeps the order and
  /// the set of best nodes).
  simulator,
};

/// The simulator's BestFit (best_fit_score.go) with its GPU choice
/// (allocateGpuIdBasedOnBestFit): a node's fit is 0.5 (free CPU - request)
/// / max_cpu + 0.5 (free GPU - request) / max_gpu, lower is better, with the
/// simulator's normalisers 128 cores and 8 GPUs by default, scored as
/// `best_fit_score` says; within a node a share goes to the GPU with the
/// least free milli that fits (first GPU among equals). Unlike
/// `best_fit_scorer` it weighs free CPU as well as free GPU and does not
/// look at NVLink islands. MIG bundles are scored by `best_fit_scorer`.
class paper_best_fit_scorer final : public scorer {
public:
  explicit paper_best_fit_scorer(uint64_t max_cpu_milli = 128000,
                                 uint64_t max_gpu_milli = 8000,
                                 best_fit_score mode = best_fit_score::exact);

  double score(const node_spec& spec, const node_state& before, const bundle& b,
               const bundle_placement& candidate) const override;

private:
  double max_cpu_;
  double max_gpu_;
  double cpu_norm_;
  double gpu_norm_;
  double gpu_tie_; ///< weight of the GPU choice; below one step of the node score
  best_fit_score mode_;
  best_fit_scorer mig_fallback_;
};

} // namespace troupe::placement
