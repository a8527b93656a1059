#pragma once
/// Choosing which running allocations to evict so that a gang can start:
/// priority preemption (a gang may evict preemptible work of strictly lower
/// priority) and quota reclaim (a tenant asking for capacity within its
/// guaranteed quota may evict allocations other tenants run on borrowed
/// quota). Plain code over a const cluster_state: no actors, no I/O, no
/// clock (the caller passes `now`). The policy only plans; the caller (the
/// placement actor) checkpoints and evicts the victims, then schedules again.

#include "troupe/placement/cluster_state.hpp"
#include "troupe/placement/placer.hpp"

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::placement {

/// GPUs guaranteed to one tenant, in whole-GPU equivalents.
struct tenant_quota {
  /// Always available to the tenant: when its demand returns, capacity that
  /// other tenants borrowed is reclaimed by preemption.
  double guaranteed_gpus = 0;
  /// How far beyond `guaranteed_gpus` the tenant may borrow idle capacity.
  double borrow_limit_gpus = std::numeric_limits<double>::infinity();
};

/// Quotas by tenant name. A tenant that is not listed has a quota of 0 (all
/// it runs is borrowed) when the table is not empty; an empty table turns
/// quotas off.
using quota_table = std::map<std::string, tenant_quota, std::less<>>;

/// GPU-equivalents per tenant.
using tenant_gpus = std::map<std::string, double, std::less<>>;

/// What may be evicted, and how hard to search for the cheapest victims.
struct preemption_policy {
  bool enabled = true; ///< false: never plan evictions
  /// Guaranteed quotas; quota reclaim is off while this is empty.
  quota_table quotas;
  /// Quota reclaim may evict a borrowed allocation whatever its priority
  /// (the quota is a guarantee; a borrower accepts eviction by borrowing).
  /// false: reclaim, too, evicts only strictly lower priority.
  bool reclaim_ignores_priority = true;
  /// Victim sets the exact search enumerates before it falls back to
  /// greedy. With n candidates and 2^n - 1 <= budget it is always exact.
  uint32_t search_budget = 4096;
};

/// One allocation to evict.
struct preemption_victim {
  allocation_id allocation{0};
  request_id request{0};
  std::string tenant;
  int32_t priority = 0;
  double gpus = 0;             ///< whole-GPU equivalents it holds
  double lost_gpu_seconds = 0; ///< work since its last checkpoint
  bool reclaim = false;        ///< evicted to reclaim borrowed quota, not for priority
};

/// Which allocations to evict so that `incoming` fits, and where it goes.
struct preemption_plan {
  request_id incoming{0};
  std::vector<preemption_victim> victims; ///< ascending allocation id
  double lost_gpu_seconds = 0;            ///< sum over the victims
  /// Where `incoming` fits once the victims are released (checked by
  /// committing it on a copy of the state with the victims released).
  placement_plan placement;
  /// true: no cheaper victim set exists (lost work, then number of victims);
  /// false: the search ran out of budget and greedy chose (see select_victims).
  bool exact = true;
  uint32_t sets_examined = 0; ///< victim sets tried by the search
};

/// Whole-GPU equivalents `plan` holds on `st`'s nodes: whole GPUs count 1, a
/// milli-GPU share its fraction, a MIG instance its compute slices / 7.
double gpu_equivalent(const cluster_state& st, const placement_plan& plan);

/// Whole-GPU equivalents of the required bundles of `req` (MIG profiles by
/// compute slices / 7 of the first GPU model in `st` that has the profile).
double required_gpu_equivalent(const cluster_state& st, const gang_request& req);

/// GPU-equivalents each tenant holds in `st` (every live allocation).
tenant_gpus gpus_in_use(const cluster_state& st);

/// Work lost if `a` is evicted at `now`, in GPU-seconds: its GPU-equivalents
/// times the time since max(start, last checkpoint), never negative. The
/// checkpoint is read from the allocation's request as committed.
double lost_gpu_seconds(const cluster_state& st, const allocation& a, time_point now);

/// Whether `tenant`, holding `in_use`, may take `gpus` more within its
/// guaranteed quota (always true when quotas are off or `gpus` is 0).
bool within_quota(const quota_table& quotas, const tenant_gpus& in_use,
                  std::string_view tenant, double gpus);

/// Chooses allocations to evict so that `incoming` fits, minimising lost work
/// (GPU-seconds since each victim's last checkpoint), then the number of
/// victims. A victim is preemptible and either of strictly lower priority
/// than `incoming`, or (quota reclaim) marked borrowed, of another tenant that
/// is over its guaranteed quota, while `incoming`'s tenant asks within its
/// own quota. Non-preemptible work is never a victim. Reclaim never takes a
/// tenant further below its quota than the last victim needs: the victims of
/// one tenant minus the largest of them stay under its excess.
///
/// Returns a plan with no victims when `incoming` fits now, and nullopt when
/// preemption is off, the request is invalid or can never fit, or no allowed
/// victim set makes room.
///
/// Search: candidates (allowed victims with a bundle on a node that can host
/// part of the gang) sorted by lost work are enumerated best-first in order
/// of (lost work, count); a set is tried only if it frees enough GPU
/// capacity, by re-placing `incoming` with `p` on a copy of `st` with the set
/// released. The first set that fits is optimal among all sets for this
/// placer. After `policy.search_budget` sets it falls back to greedy (cheapest
/// lost work per GPU first until it fits, then drops victims that are not
/// needed): always a correct plan, no bound on how far from optimal.
/// Assumes that releasing more never makes the placer fail: if releasing
/// every candidate does not fit, it gives up without searching.
[[nodiscard]] std::optional<preemption_plan>
select_victims(const cluster_state& st, const placer& p, const gang_request& incoming,
               time_point now, const preemption_policy& policy);

} // namespace troupe::placement
