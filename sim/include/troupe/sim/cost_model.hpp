#pragma once
/// The checkpoint/restart cost model: plain data and pure functions over
/// simulated durations. The simulator uses it for every preemption, node
/// failure and spot reclaim; the FinOps policies use the same model to price
/// an eviction and to choose the checkpoint interval spot work must keep.
///
/// A run of a job is a sequence of segments, one per start. A segment starts
/// from the work its last completed checkpoint saved (`saved`), spends
/// `restart_delay` (restarts only) before doing work, then alternates
/// `interval` of work and `cost` of checkpointing (work pauses while a
/// checkpoint is written; the checkpoint counts once it is complete). No
/// checkpoint is taken at completion. An eviction without warning loses the
/// work since the last completed checkpoint; with a notice at least as long
/// as `cost`, the job checkpoints and loses nothing.

#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <chrono>

namespace troupe::sim {

struct checkpoint_model {
  /// Work between checkpoints; 0: the job never checkpoints (an eviction
  /// loses everything it did since it started).
  duration interval{0};
  /// Wall time one checkpoint takes, during which no work is done.
  duration cost{0};
  /// Wall time from a restart until work resumes (reschedule, load the
  /// checkpoint, warm up). A first start has no delay.
  duration restart_delay{0};

  /// invalid_argument for negative values, or a cost without an interval.
  [[nodiscard]] result<void> validate() const;
};

/// Where a segment stands after some wall time.
struct segment_state {
  duration done{0};           ///< total work done (includes the segment's start)
  duration saved{0};          ///< work covered by the last completed checkpoint
  bool checkpointing = false; ///< inside a checkpoint's `cost` right now
};

/// The state `wall` after a segment started from `saved` work (a restart
/// when `restart`). Work never exceeds `total` (the job's full work).
segment_state segment_after(const checkpoint_model& m, duration saved, duration total,
                            duration wall, bool restart) noexcept;

/// Wall time a segment starting from `saved` needs to finish `total` work:
/// the restart delay, the remaining work and every checkpoint on the way.
duration segment_wall_time(const checkpoint_model& m, duration saved, duration total,
                           bool restart) noexcept;

/// What an eviction `wall` into a segment costs.
struct eviction {
  duration saved{0}; ///< work kept: where the next segment starts
  duration lost{0};  ///< work done that is lost
  /// Wall time after the eviction request until the GPUs are free: 0 for a
  /// kill; the checkpoint's cost (or the rest of one in progress) when the
  /// notice allows it; the notice itself when it does not.
  duration release_after{0};
};

/// Evicting a segment `wall` into it: killed at once when `notice` is 0;
/// else the job checkpoints now if a checkpoint fits in the notice (a
/// checkpoint in progress is finished instead), or runs until the notice
/// ends and is killed then.
eviction evict_segment(const checkpoint_model& m, duration saved, duration total,
                       duration wall, bool restart, duration notice) noexcept;

} // namespace troupe::sim
