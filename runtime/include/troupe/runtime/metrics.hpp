#pragma once
/// Runtime metrics: counters, gauges and histograms, and their Prometheus text
/// exposition (format 0.0.4).
///
/// A `registry` is owned by the runtime object (there is no global registry).
/// Registration (`get_counter`, ...) takes a mutex and is meant for start-up or
/// the first use of a series; callers keep the returned reference. Observing
/// (`inc`, `set`, `add`, `observe`) is lock-free and allocation-free, with
/// relaxed atomics, so the actor layer may call it for every message.
///
/// Metric and label names are program constants: an invalid name, a name
/// reused with another type, help text or bucket layout is a bug and aborts
/// via TROUPE_ASSERT. Label values may come from anywhere; bytes that are not
/// valid UTF-8 are replaced with U+FFFD when the series is registered.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::metrics {

/// Label pairs (name, value) of one series, exposed in the order given.
using labels = std::vector<std::pair<std::string, std::string>>;

// Counters and gauges sit on their own cache line so that hot metrics updated
// from different scheduler threads do not false-share. 64 rather than
// std::hardware_destructive_interference_size, whose value GCC warns may
// change between compiler versions (it would change our ABI).
inline constexpr std::size_t cache_line_size = 64;

/// A monotonically increasing integer, e.g. messages delivered.
class alignas(cache_line_size) counter {
public:
  counter() = default;
  counter(const counter&) = delete;
  counter& operator=(const counter&) = delete;

  /// Adds n (relaxed atomic; wraps around after 2^64).
  void inc(uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }

  uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> value_{0};
};

/// A value that goes up and down, e.g. mailbox depth or live actors.
class alignas(cache_line_size) gauge {
public:
  gauge() = default;
  gauge(const gauge&) = delete;
  gauge& operator=(const gauge&) = delete;

  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }

  /// Adds d (may be negative); concurrent adds are never lost.
  void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }

  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  static_assert(std::atomic<double>::is_always_lock_free);
  std::atomic<double> value_{0.0};
};

/// Counts observations into buckets with fixed upper bounds (`le`, inclusive)
/// plus an implicit +Inf bucket, and keeps their sum.
///
/// Each observation is two relaxed atomic adds (its bucket and the sum). The
/// count is derived from the buckets, so a scrape always sees
/// `_count == _bucket{le="+Inf"}`; the sum may lag the buckets by the
/// observations in flight.
class histogram {
public:
  /// `upper_bounds` must be strictly ascending and free of NaN (a bug
  /// otherwise); a trailing +Inf is dropped since that bucket is implicit.
  explicit histogram(std::vector<double> upper_bounds);
  histogram(const histogram&) = delete;
  histogram& operator=(const histogram&) = delete;
  ~histogram();

  /// Records v. NaN lands in the +Inf bucket (and makes the sum NaN).
  void observe(double v) noexcept;

  /// The finite upper bounds, ascending (without the implicit +Inf).
  std::span<const double> upper_bounds() const noexcept { return bounds_; }

  /// Cumulative counts: element i counts observations <= upper_bounds()[i];
  /// the last element (one past the bounds) is the +Inf bucket, the total.
  std::vector<uint64_t> cumulative_counts() const;

  /// Total number of observations.
  uint64_t count() const noexcept;

  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

  /// `count` bounds start, start*factor, start*factor^2, ... Each bound is
  /// rounded to 15 significant digits so `le` labels read as typed
  /// (1e-05, not 1.0000000000000001e-05). Needs start > 0, factor > 1 and
  /// count >= 1 (a bug otherwise).
  static std::vector<double> exponential_buckets(double start, double factor, int count);

  /// Latency bounds in seconds from 1us to 10s, in 1-2.5-5 steps per decade.
  static std::vector<double> default_latency_buckets();

private:
  std::vector<double> bounds_;
  /// bounds_.size() + 1 non-cumulative bucket counts; the last is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0.0};
};

/// The metrics of one runtime: creates series on first use and renders them
/// in the Prometheus text format.
///
/// Every returned reference stays valid, at the same address, for the
/// registry's lifetime; series are never removed. All member functions are
/// thread-safe.
class registry {
public:
  registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;
  ~registry();

  /// The counter `name{l}`, created on first call. `name` must match
  /// [a-zA-Z_:][a-zA-Z0-9_:]* and end with "_total"; label names must match
  /// [a-zA-Z_][a-zA-Z0-9_]*, not start with "__" and not repeat. Violations,
  /// and a name already registered as another type or with other help text,
  /// abort. Labels identify a series regardless of their order.
  counter& get_counter(std::string_view name, std::string_view help, labels l = {});

  /// The gauge `name{l}`, created on first call; same rules as get_counter
  /// except the "_total" suffix.
  gauge& get_gauge(std::string_view name, std::string_view help, labels l = {});

  /// The histogram `name{l}`, created on first call with `upper_bounds` (see
  /// histogram's constructor). Every series of one name must use the same
  /// bounds, and "le" is reserved as a label name; violations abort.
  histogram& get_histogram(std::string_view name, std::string_view help,
                           std::vector<double> upper_bounds, labels l = {});

  /// Registers the gauge `name{l}` whose value is `fn()`, evaluated at each
  /// expose() on the scraping thread, without the registry lock held. `fn`
  /// must be thread-safe, must not throw and must outlive the registry's
  /// scrapes. Registering the same name and labels twice aborts.
  void register_callback_gauge(std::string_view name, std::string_view help, labels l,
                               std::function<double()> fn);

  /// All metrics in the Prometheus text exposition format 0.0.4: one
  /// HELP/TYPE block per name, names sorted, series in registration order.
  std::string expose() const;

private:
  struct family;
  struct series;
  enum class metric_type { counter, gauge, histogram };

  /// Returns the series `name{l}`, creating it (and its family) when absent.
  /// `bounds` is set for histograms only; a non-null `callback` registers a
  /// callback gauge, which must not exist yet.
  series& find_or_add(metric_type type, std::string_view name, std::string_view help,
                      labels l, std::vector<double>* bounds,
                      std::function<double()>* callback);

  mutable std::mutex mu_;
  /// Keyed (and so sorted) by metric name; families are never removed.
  std::map<std::string, std::unique_ptr<family>, std::less<>> families_; // guarded by mu_
};

} // namespace troupe::metrics
