#pragma once
/// The scheduling queue: pending gangs in effective-priority order, tenant
/// quotas with borrowing, weighted fair share by decayed usage, priority
/// aging, EASY backfill and preemption plans. A plain class over plain data:
/// no actors, no I/O, no clock; every call that depends on time takes `now`.
/// The placement actor owns one queue, calls `schedule` when something
/// changes, starts what was placed, and evicts (checkpoint first) what a
/// preemption plan names.
///
/// Effective priority: `priority` plus aging, `aging_step` for every whole
/// `aging_interval` waited since `submitted`, at most `aging_cap`, plus the
/// small-job boost when `size_boost_levels` is set (queue_policy). Aging moves
/// in whole steps so that requests of one class submitted close together tie,
/// and the fair-share factor orders them.
///
/// Order: effective priority (higher first), then fair-share factor (higher
/// first), then submission time, then request id. Aging only orders the
/// queue: preemption compares the requests' own `priority`.
///
/// Fair share (Slurm's classic factor): tenant t with weight w_t has share
/// S_t = w_t / (sum of the weights of the known tenants) and normalised usage
/// U_t = u_t / (sum of all u), where u is GPU-seconds decayed with
/// `usage_half_life`; its factor is 2^(-U_t / S_t), in (0, 1], 1 while
/// nobody has usage. Known tenants: those with a weight, with usage or with
/// a pending request.

#include "troupe/placement/cluster_state.hpp"
#include "troupe/placement/placer.hpp"
#include "troupe/placement/preemption.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::placement {

/// How the queue orders, shares and protects.
struct queue_policy {
  duration aging_interval = std::chrono::minutes(10);
  int32_t aging_step = 1; ///< priority points per whole interval waited
  int32_t aging_cap = 10; ///< most points aging adds; 0 turns aging off
  /// Half-life of recorded usage; Slurm's default is 7 days.
  duration usage_half_life = std::chrono::hours(24 * 7);
  /// Fair-share weight per tenant; a tenant that is not listed weighs 1.
  std::map<std::string, double, std::less<>> weights;
  /// What preemption may evict, and the guaranteed tenant quotas (reclaim
  /// is how a quota is guaranteed, so the quotas live there).
  preemption_policy preemption;
  /// EASY backfill: requests behind a reserved head may start now when they
  /// do not delay it. false: nothing starts ahead of a reserved head.
  bool backfill = true;
  /// Small-job boost (shortest-job-first with aging, as multi-level
  /// queues do it): a request whose estimated GPU time (GPU-equivalents x
  /// runtime estimate) is at most `size_boost_base` x 2^k, for the smallest
  /// such k, gets `size_boost_levels` - k points of effective priority (0
  /// when k reaches the levels or the runtime is unknown). Aging lifts long
  /// jobs past fresh small ones, so nothing starves. 0 levels: off.
  uint32_t size_boost_levels = 0;
  duration size_boost_base = std::chrono::minutes(10);

  /// invalid_argument naming every bad field (non-positive interval or
  /// half-life, negative aging, non-positive weights or negative quotas).
  [[nodiscard]] result<void> validate() const;
};

/// A pending request as the queue orders it at some `now`.
struct queued_request {
  request_id id{0};
  std::string tenant;
  int32_t priority = 0;
  int64_t effective_priority = 0;
  double fair_share = 1;
  time_point submitted{};
};

/// A request the pass started.
struct placed_request {
  request_id request{0};
  allocation_id allocation{0};
  bool borrowed = false;   ///< runs on quota borrowed from other tenants
  bool backfilled = false; ///< started ahead of a reserved head
};

/// The head request's reservation.
struct reservation {
  request_id request{0};
  /// Earliest start by the running allocations' runtime estimates: `now`
  /// when a preemption plan makes room; nullopt when it must wait for
  /// allocations with unknown runtime.
  std::optional<time_point> start;
  placement_plan plan; ///< where it would go then
};

/// A request still waiting, and why.
struct pending_request {
  request_id request{0};
  int64_t effective_priority = 0;
  std::string why; ///< never empty
};

/// What one scheduling pass did.
struct schedule_result {
  std::vector<placed_request> placed; ///< in the order they were placed
  std::optional<reservation> reserved;
  /// Set when the head can start only by evicting: the caller checkpoints
  /// and evicts the victims, then runs another pass (the head stays queued).
  std::optional<preemption_plan> preemption;
  std::vector<pending_request> pending; ///< every request still queued, in queue order
};

/// How a pass runs.
struct schedule_options {
  /// Explain every request still waiting (`schedule_result::pending`). The
  /// simulator turns this off: the pass then places exactly the same
  /// requests, but leaves `pending` empty and skips placement attempts that
  /// cannot succeed (less free GPU capacity than the request needs, or the
  /// same shape already failed to fit in this pass).
  bool explain = true;
};

class scheduling_queue {
public:
  /// Aborts if `policy` is invalid (validate it at the boundary first).
  explicit scheduling_queue(queue_policy policy = {});

  const queue_policy& policy() const noexcept { return policy_; }

  /// Queues `req`; its `submitted` is when it started waiting (aging counts
  /// from there). invalid_argument if it is malformed, conflict if its id
  /// is already queued.
  [[nodiscard]] result<void> submit(gang_request req);
  /// Removes a pending request and returns it; not_found if it is not queued.
  [[nodiscard]] result<gang_request> cancel(request_id id);
  /// The pending requests in submission order.
  const std::vector<gang_request>& pending() const noexcept { return queue_; }
  /// The pending requests in the order a pass at `now` would consider them.
  std::vector<queued_request> order(time_point now) const;

  /// `req.priority` plus aging at `now`.
  int64_t effective_priority(const gang_request& req, time_point now) const;

  /// Adds `gpu_seconds` of usage to `tenant`, as of time `at`.
  void record_usage(std::string_view tenant, double gpu_seconds, time_point at);
  /// Charges every live allocation of `st` for the time it ran since the
  /// previous charge (or its start), integrating the decay. `schedule` calls
  /// it first; call it also before releasing allocations, or their last
  /// stretch goes uncounted.
  void charge(const cluster_state& st, time_point now);
  /// Decayed GPU-seconds of `tenant` at `now`.
  double decayed_usage(std::string_view tenant, time_point now) const;
  /// The fair-share factor of `tenant` at `now` (see the top of this file).
  double fair_share_factor(std::string_view tenant, time_point now) const;

  /// One pass at `now`: walks the requests in queue order, commits in `st`
  /// each that fits and is allowed by its tenant's quota (marking it
  /// borrowed when it exceeds the guaranteed quota; a non-preemptible
  /// request never borrows). The first request that does not fit is the
  /// head: if preemption is on and `select_victims` finds victims, the
  /// result carries that plan and the head is reserved at `now`; otherwise
  /// it gets a reservation at the earliest time it fits when running
  /// allocations end by their estimates (a copy of `st` releases them in
  /// end order; unknown runtimes last). Later requests start now only if
  /// they do not delay the head: with a known runtime they end by the
  /// reservation time, or their placement also fits the projected state at
  /// that time with the head placed. Requests with unknown runtime never
  /// start ahead of a reserved head. Placed requests leave the queue.
  schedule_result schedule(cluster_state& st, const placer& p, time_point now,
                           const schedule_options& opt = {});

private:
  struct usage {
    double value = 0; ///< decayed GPU-seconds as of `as_of`
    time_point as_of{};
  };

  double decay(duration d) const;
  double weight(std::string_view tenant) const;
  /// Fair-share factors of every known tenant at `now`.
  std::map<std::string, double, std::less<>> factors(time_point now) const;
  /// The queue order at `now` as (index into queue_, effective priority):
  /// what `order` returns, without copying tenant names.
  std::vector<std::pair<uint32_t, int64_t>> order_indices(time_point now) const;

  queue_policy policy_;
  std::vector<gang_request> queue_; ///< submission order
  std::map<std::string, usage, std::less<>> usage_;
  std::optional<time_point> last_charge_;
};

} // namespace troupe::placement
