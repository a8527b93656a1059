#pragma once
/// Finding where a gang goes: candidates per node, a pluggable scorer, the
/// five strategies, elastic sizing, and an explanation when nothing fits.
/// Plain code over a const cluster_state: no actors, no I/O, no clock.

#include "troupe/placement/cluster_state.hpp"

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace troupe::placement {

/// Scores one candidate placement of one bundle on one node, given the
/// node's state before it (lower is better). The placer keeps the best.
class scorer {
public:
  virtual ~scorer() = default;
  virtual double score(const node_spec& spec, const node_state& before, const bundle& b,
                       const bundle_placement& candidate) const = 0;
  /// Scores every candidate of bundle `b` on one node at once: `out[i]` is
  /// the score of `candidates[i]` (the spans have the same size), all on the
  /// node whose spec and state are `spec` and `before`. The placer calls
  /// this once for each node it considers. The default calls `score` for
  /// each candidate in order; a scorer overrides it to share the work of a
  /// node between its candidates, giving the same scores as `score` would.
  virtual void score_node(const node_spec& spec, const node_state& before,
                          const bundle& b, std::span<const bundle_placement> candidates,
                          std::span<double> out) const;
  /// True when the scorer accepts, for whole-GPU gangs that fit on one node,
  /// the first node that fits in order of fewest free whole GPUs (then node
  /// index) instead of scoring every node: best fit's order, found in
  /// O(nodes) instead of simulating the gang on every node.
  virtual bool prefers_tightest_node() const noexcept { return false; }
};

/// Best fit: leave as little free GPU capacity as possible on the chosen
/// node and GPU, so large free blocks stay whole.
class best_fit_scorer final : public scorer {
public:
  double score(const node_spec& spec, const node_state& before, const bundle& b,
               const bundle_placement& candidate) const override;
  bool prefers_tightest_node() const noexcept override { return true; }
};

/// The result of a placement attempt.
struct placement_outcome {
  std::optional<placement_plan> plan; ///< set when the gang fits now
  uint32_t bundles_placed = 0;        ///< elastic: how many bundles the plan holds
  bool never_fits = false;            ///< true: not even an empty cluster could host it
  std::string explanation;            ///< why not, when no plan
  double allreduce_gbps = 0; ///< estimated ring all-reduce bottleneck of the plan
};

/// Whole-GPU candidates for `b` on one node, given its state `ns`
/// (best island first); used by placers and scorers.
std::vector<bundle_placement> candidates_on_node(const cluster_state& st, node_id n,
                                                 const node_state& ns, const bundle& b,
                                                 uint32_t bundle_index);
/// The same candidates written over the first elements of `out`, reusing
/// them (no allocation once `out` has grown to the node's candidate count
/// and its whole-GPU lists to the bundle's size); returns how many. `out`
/// grows when it is too short and is never shrunk: elements past the count
/// are left as they were.
size_t candidates_on_node(const cluster_state& st, node_id n, const node_state& ns,
                          const bundle& b, uint32_t bundle_index,
                          std::vector<bundle_placement>& out);

/// Estimated ring all-reduce bottleneck bandwidth (GB/s) across the GPUs of
/// a plan: NVLink inside one island, PCIe inside one node, the NIC rail
/// between nodes, divided by the uplink oversubscription across racks.
double estimate_allreduce_gbps(const cluster_state& st, const placement_plan& plan);

class placer {
public:
  /// `s` scores candidates; null means best fit. Not owned; must outlive.
  explicit placer(const scorer* s = nullptr) : scorer_(s) {}

  /// Where `req` fits in `st` now, or why it does not.
  placement_outcome place(const cluster_state& st, const gang_request& req) const;

  /// The plan `place` returns for `req` (bundles sorted by index), or
  /// nullopt where it returns none, without the explanation and the
  /// bandwidth estimate: for callers that only need the decision, such as
  /// the simulator, for which explaining every rejection would cost more
  /// than deciding.
  std::optional<placement_plan> find_plan(const cluster_state& st,
                                          const gang_request& req) const;

  /// Where the bundles of running allocation `a` that are not placed yet,
  /// up to bundle index `target_bundles` (clamped to the request), fit in
  /// `st` now: as many of them as fit, lowest index first, at least one;
  /// else no plan and an explanation. The plan holds only the new bundles
  /// (for cluster_state::grow); `bundles_placed` counts them and
  /// `allreduce_gbps` estimates the grown gang. The strategy holds relative
  /// to the placed bundles: pack and topology stay near them, spread
  /// avoids their nodes, strict_pack (and an NVLink-domain gang) uses their
  /// node (island), strict_spread only nodes they do not use.
  placement_outcome place_growth(const cluster_state& st, const allocation& a,
                                 uint32_t target_bundles) const;

private:
  std::optional<placement_plan> place_elastic(const cluster_state& st,
                                              const gang_request& req,
                                              uint32_t& bundles_placed) const;
  /// `max_price`: only nodes at most this dear per GPU-hour.
  std::optional<placement_plan>
  place_exact(const cluster_state& st, const gang_request& req,
              std::optional<troupe::micro_usd> max_price = std::nullopt) const;
  const scorer& active() const;
  const scorer* scorer_;
};

/// Whether two requests ask the placer for the same thing (bundles,
/// strategy, spot tolerance, NVLink rule, elastic minimum): when one does
/// not fit a state, neither does the other.
bool same_shape(const gang_request& a, const gang_request& b) noexcept;

/// True when `req` certainly cannot be placed in `st` now, from counters
/// alone: its required bundles need more GPU than is free (unschedulable
/// nodes counted, so this is an upper bound), or one of them needs more
/// whole GPUs than any node has free. False says nothing. O(bundles).
bool capacity_rules_out(const cluster_state& st, const gang_request& req);

/// Why `req` does not fit `st` now (or ever): one or more sentences with
/// the numbers, e.g. "needs 8 GPUs in one NVLink domain; largest free
/// domain has 6 (node n17)".
std::string explain_pending(const cluster_state& st, const gang_request& req,
                            bool* never_fits);

} // namespace troupe::placement
