#pragma once
/// Time sources. Policies and actors read time through `troupe::clock` so a
/// test or the simulator can drive it; nothing in a policy calls a wall clock.

#include <atomic>
#include <chrono>

namespace troupe {

using duration = std::chrono::nanoseconds;
using time_point = std::chrono::steady_clock::time_point;

/// A monotonic time source.
class clock {
public:
  virtual ~clock() = default;
  /// The current time of this clock (monotonic, never goes back).
  [[nodiscard]] virtual time_point now() const noexcept = 0;
};

/// The process's steady clock.
class steady_clock_source final : public clock {
public:
  time_point now() const noexcept override { return std::chrono::steady_clock::now(); }
};

/// A clock that moves only when told to: for tests and the simulator.
/// Thread-safe: `now` may be read while another thread advances it.
class manual_clock final : public clock {
public:
  explicit manual_clock(time_point start = time_point{})
      : ns_(start.time_since_epoch().count()) {}
  time_point now() const noexcept override {
    return time_point{duration{ns_.load(std::memory_order_acquire)}};
  }
  /// Moves time forward by `d` (negative values are a bug and ignored).
  void advance(duration d) noexcept {
    if (d.count() > 0) ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  /// Sets the time to `t` if it is later than the current time.
  void set(time_point t) noexcept {
    auto want = t.time_since_epoch().count();
    auto cur = ns_.load(std::memory_order_acquire);
    while (want > cur && !ns_.compare_exchange_weak(cur, want)) {
    }
  }

private:
  std::atomic<int64_t> ns_;
};

} // namespace troupe
