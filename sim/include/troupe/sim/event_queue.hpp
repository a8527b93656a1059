#pragma once
/// The simulator's clock and event queue. Simulated time only moves when the
/// engine pops the next event; policies read it through `troupe::clock`, so
/// the code the live actors run sees simulated time here. Events at the same
/// time come out in the order they were pushed, so a run is deterministic.

#include "troupe/runtime/clock.hpp"

#include <cstdint>
#include <vector>

namespace troupe::sim {

/// Simulated time, moved only by the engine. Single-threaded.
class sim_clock final : public troupe::clock {
public:
  explicit sim_clock(time_point start = time_point{}) : now_(start) {}
  time_point now() const noexcept override { return now_; }
  /// Moves to `t`; a time before now is a bug (the queue never goes back).
  void advance_to(time_point t) noexcept {
    if (t > now_) now_ = t;
  }

private:
  time_point now_;
};

/// What an event does; the engine dispatches on it.
enum class event_kind : uint8_t {
  arrival,       ///< a job arrives (subject: job index)
  finish,        ///< a running job completes (subject: job, tag: its run epoch)
  evict,         ///< a job leaves its GPUs after checkpointing for a notice
  node_fail,     ///< a node fails (subject: node)
  node_repair,   ///< a failed node comes back (subject: node)
  spot_notice,   ///< a spot node will be reclaimed after the notice period
  spot_reclaim,  ///< a spot node is taken away (subject: node)
  spot_return,   ///< a reclaimed spot node is available again (subject: node)
  sample,        ///< record the time series
  telemetry,     ///< FinOps: utilisation samples to the idle detector
  finops_return, ///< FinOps: a reclaimed pause is over (subject: job, tag: epoch)
};

/// One scheduled event: 32 bytes, ordered by (time, push order).
struct event {
  time_point at{};
  uint64_t seq = 0;
  uint64_t subject = 0; ///< job or node index, by kind
  uint32_t tag = 0;     ///< e.g. the job's run epoch: a stale finish is ignored
  event_kind kind = event_kind::sample;
};

/// A binary min-heap of events on a flat vector: O(log n) push and pop, no
/// allocation per event once grown.
class event_queue {
public:
  void push(time_point at, event_kind kind, uint64_t subject = 0, uint32_t tag = 0);
  bool empty() const noexcept { return heap_.empty(); }
  size_t size() const noexcept { return heap_.size(); }
  /// The earliest event; the queue must not be empty.
  const event& top() const noexcept { return heap_.front(); }
  /// Removes and returns the earliest event; the queue must not be empty.
  event pop();
  /// Events pushed since construction.
  uint64_t pushed() const noexcept { return seq_; }
  void reserve(size_t n) { heap_.reserve(n); }

private:
  static bool later(const event& a, const event& b) noexcept {
    return a.at != b.at ? a.at > b.at : a.seq > b.seq;
  }
  std::vector<event> heap_;
  uint64_t seq_ = 0;
};

} // namespace troupe::sim
