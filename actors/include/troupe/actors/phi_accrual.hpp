#pragma once
/// The phi-accrual failure detector (Hayashibara, Defago, Yared, Katayama:
/// "The phi accrual failure detector", SRDS 2004), in the form Akka and
/// Cassandra use: inter-arrival times of heartbeats are modelled as a normal
/// distribution and the detector reports how unlikely the current silence is.
///
/// Plain code: no clock, no I/O, no threads. Time enters as `time_point`
/// arguments (troupe/runtime/clock.hpp); one detector watches one node and is
/// owned by whoever owns that node's membership entry.
///
/// The formula. With the window of the last `max_samples` inter-arrival
/// times x_i (population mean m, population standard deviation s),
///
///     delta = now - last_heartbeat
///     mu    = m + acceptable_pause
///     sigma = max(s, min_std_dev)
///     y     = (delta - mu) / sigma
///     P_later(y) = 1 - Phi(y) ~= 1 / (1 + e^z),  z = y * (1.5976 + 0.070566 * y^2)
///     phi   = -log10(P_later(y)) = log10(1 + e^z)
///
/// where Phi is the standard normal CDF and the logistic form is the
/// approximation of Bowling et al. (2009) that Akka uses (error below 1.4e-4).
/// phi is computed as log10(1 + e^z) in a way that neither overflows nor
/// loses precision, so it is finite, continuous and strictly increasing in
/// the silence `delta`: phi = 1 means a 10% chance that a heartbeat is still
/// coming, phi = 8 one in 10^8. Whenever delta <= acceptable_pause + m the
/// value is at most log10(2) = 0.30103, so a pause shorter than the
/// acceptable pause never reaches any threshold >= 1.
///
/// The window. The first heartbeat starts the clock and seeds the window with
/// two samples, first_heartbeat_estimate * 3/4 and * 5/4 (mean the estimate,
/// deviation a quarter of it), as Akka does, so phi is meaningful from the
/// start; later inter-arrival times push the seeds out. An interval longer
/// than `max_interval` (when set) is not recorded, as Cassandra does: such a
/// gap is an outage, not a sample of the network's jitter, and keeping it
/// would slow detection for the next `max_samples` heartbeats. This also
/// bounds mean and deviation, which `time_to_phi_bound` uses.

#include "troupe/runtime/clock.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace troupe::actors {

/// Parameters of one phi-accrual detector.
struct phi_accrual_config {
  /// Inter-arrival samples kept (a ring; the oldest is dropped). At least 2.
  std::size_t max_samples = 200;
  /// Floor of sigma, so a perfectly regular history does not make phi jump
  /// to infinity at the first late heartbeat. Positive.
  duration min_std_dev = std::chrono::milliseconds{100};
  /// Added to the mean: a silence this much longer than usual is expected.
  duration acceptable_pause = std::chrono::seconds{1};
  /// Assumed inter-arrival time before any has been measured.
  duration first_heartbeat_estimate = std::chrono::milliseconds{500};
  /// Intervals longer than this are not recorded; zero records all.
  duration max_interval = duration::zero();
};

/// The normalised silence y at which phi reaches `phi` (y of the formula
/// above; the real root of 0.070566 y^3 + 1.5976 y = ln(10^phi - 1)). For
/// phi = 8, y = 5.226. `phi` must be positive.
[[nodiscard]] double phi_to_deviations(double phi);

/// Upper bound of the silence after which phi exceeds `threshold`, whatever
/// the history: with every recorded interval at most
/// M = max(max_interval, 5/4 * first_heartbeat_estimate), the mean is at most
/// M and the deviation at most M / 2, so phi > threshold once
/// delta > M + acceptable_pause + max(M / 2, min_std_dev) * phi_to_deviations(threshold)
/// (rounded up). Requires a non-zero `max_interval`.
[[nodiscard]] duration time_to_phi_bound(const phi_accrual_config& config,
                                         double threshold);

/// One node's detector: feed it heartbeat arrival times, ask it for phi.
class phi_accrual_detector {
public:
  /// Aborts on a config that cannot work (max_samples < 2, a non-positive
  /// min_std_dev or first_heartbeat_estimate, a negative pause): a bug.
  explicit phi_accrual_detector(phi_accrual_config config);

  /// Records a heartbeat that arrived at `now`. The first one starts the
  /// clock and seeds the window; later ones record the interval since the
  /// previous one (unless longer than max_interval). A `now` before the
  /// previous arrival counts as an interval of zero.
  void heartbeat(time_point now);

  /// Moves the last arrival to `now` without recording an interval: for
  /// indirect evidence that the node is alive (another member reached it).
  /// Starts the clock like a first heartbeat when there was none.
  void heard_of(time_point now);

  /// Suspicion level at `now`; 0 before the first heartbeat. Finite,
  /// non-negative, and non-decreasing in `now`.
  [[nodiscard]] double phi(time_point now) const;

  /// True while phi(now) < threshold.
  [[nodiscard]] bool is_available(time_point now, double threshold) const {
    return phi(now) < threshold;
  }

  /// The silence (time since the last arrival) at which phi reaches
  /// `threshold` with the current window: mu + sigma * phi_to_deviations(threshold).
  [[nodiscard]] duration silence_at_phi(double threshold) const;

  /// When the last heartbeat (or heard_of) arrived; empty before the first.
  [[nodiscard]] std::optional<time_point> last_arrival() const noexcept { return last_; }

  /// Samples in the window (2 seeds plus recorded intervals, at most max_samples).
  [[nodiscard]] std::size_t sample_count() const noexcept { return count_; }
  /// Population mean of the window, without the acceptable pause.
  [[nodiscard]] duration mean() const noexcept;
  /// Population standard deviation of the window, without the floor.
  [[nodiscard]] duration std_dev() const noexcept;

  [[nodiscard]] const phi_accrual_config& config() const noexcept { return config_; }

private:
  void add_sample(std::int64_t ns);
  void recompute();

  phi_accrual_config config_;
  std::vector<std::int64_t> ring_; ///< intervals in nanoseconds
  std::size_t next_ = 0;           ///< ring slot written next
  std::size_t count_ = 0;          ///< filled slots
  double mean_ns_ = 0.0;
  double std_ns_ = 0.0;
  std::optional<time_point> last_;
};

} // namespace troupe::actors
