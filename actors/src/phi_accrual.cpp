#include "troupe/actors/phi_accrual.hpp"

#include "troupe/runtime/result.hpp"

#include <algorithm>
#include <cmath>

namespace troupe::actors {
namespace {

constexpr double a1 = 1.5976;   // logistic approximation of the normal tail
constexpr double a3 = 0.070566; // (Bowling et al. 2009), as in Akka

/// z of the formula: the logistic exponent for y standard deviations.
double exponent(double y) {
  return y * (a1 + a3 * y * y);
}

/// log10(1 + e^z) without overflow for large z or loss for very negative z.
double log10_one_plus_exp(double z) {
  constexpr double ln10 = 2.302585092994045684;
  if (z > 0) return (z + std::log1p(std::exp(-z))) / ln10;
  return std::log1p(std::exp(z)) / ln10;
}

} // namespace

double phi_to_deviations(double phi) {
  TROUPE_ASSERT(phi > 0 && std::isfinite(phi), "phi must be positive and finite");
  // Solve log10(1 + e^z(y)) = phi: z = ln(10^phi - 1), computed stably as
  // phi*ln10 + ln(1 - 10^-phi); then the cubic z(y) = target, which is
  // strictly increasing, by bisection (64 halvings reach double precision).
  const double target = phi * std::log(10.0) + std::log1p(-std::pow(10.0, -phi));
  double lo = -1.0;
  double hi = 1.0;
  while (exponent(lo) > target)
    lo *= 2;
  while (exponent(hi) < target)
    hi *= 2;
  for (int i = 0; i < 200 && lo < hi; ++i) {
    const double mid = lo + (hi - lo) / 2;
    if (mid == lo || mid == hi) break;
    if (exponent(mid) < target)
      lo = mid;
    else
      hi = mid;
  }
  return hi;
}

duration time_to_phi_bound(const phi_accrual_config& config, double threshold) {
  TROUPE_ASSERT(config.max_interval > duration::zero(),
                "time_to_phi_bound needs a max_interval");
  TROUPE_ASSERT(threshold >= 1.0, "thresholds below 1 are not meaningful");
  const double est = static_cast<double>(config.first_heartbeat_estimate.count());
  const double cap =
      std::max(static_cast<double>(config.max_interval.count()), est * 1.25);
  const double sigma = std::max(cap / 2, static_cast<double>(config.min_std_dev.count()));
  const double ns = cap + static_cast<double>(config.acceptable_pause.count()) +
                    sigma * phi_to_deviations(threshold);
  // Round up, plus a microsecond for the floating-point error of phi itself.
  return duration{static_cast<std::int64_t>(std::ceil(ns)) + 1000};
}

phi_accrual_detector::phi_accrual_detector(phi_accrual_config config) : config_(config) {
  TROUPE_ASSERT(config_.max_samples >= 2, "phi_accrual: max_samples must be at least 2");
  TROUPE_ASSERT(config_.min_std_dev > duration::zero(),
                "phi_accrual: min_std_dev must be positive");
  TROUPE_ASSERT(config_.first_heartbeat_estimate > duration::zero(),
                "phi_accrual: first_heartbeat_estimate must be positive");
  TROUPE_ASSERT(config_.acceptable_pause >= duration::zero(),
                "phi_accrual: acceptable_pause must not be negative");
  TROUPE_ASSERT(config_.max_interval >= duration::zero(),
                "phi_accrual: max_interval must not be negative");
  ring_.assign(config_.max_samples, 0);
}

void phi_accrual_detector::heartbeat(time_point now) {
  if (!last_) {
    const auto est = config_.first_heartbeat_estimate.count();
    const auto dev = est / 4;
    add_sample(est - dev);
    add_sample(est + dev);
    recompute();
    last_ = now;
    return;
  }
  const auto interval = std::max<std::int64_t>(0, (now - *last_).count());
  const bool outage =
      config_.max_interval > duration::zero() && interval > config_.max_interval.count();
  if (!outage) {
    add_sample(interval);
    recompute();
  }
  last_ = std::max(*last_, now);
}

void phi_accrual_detector::heard_of(time_point now) {
  if (!last_) {
    heartbeat(now);
    return;
  }
  last_ = std::max(*last_, now);
}

void phi_accrual_detector::add_sample(std::int64_t ns) {
  ring_[next_] = ns;
  next_ = (next_ + 1) % ring_.size();
  count_ = std::min(count_ + 1, ring_.size());
}

void phi_accrual_detector::recompute() {
  // Exact recomputation over the window (at most max_samples values, once
  // per heartbeat): no drift from running sums.
  double sum = 0;
  for (std::size_t i = 0; i < count_; ++i)
    sum += static_cast<double>(ring_[i]);
  mean_ns_ = sum / static_cast<double>(count_);
  double sq = 0;
  for (std::size_t i = 0; i < count_; ++i) {
    const double d = static_cast<double>(ring_[i]) - mean_ns_;
    sq += d * d;
  }
  std_ns_ = std::sqrt(sq / static_cast<double>(count_));
}

double phi_accrual_detector::phi(time_point now) const {
  if (!last_) return 0.0;
  const double delta = static_cast<double>((now - *last_).count());
  const double mu = mean_ns_ + static_cast<double>(config_.acceptable_pause.count());
  const double sigma =
      std::max(std_ns_, static_cast<double>(config_.min_std_dev.count()));
  return log10_one_plus_exp(exponent((delta - mu) / sigma));
}

duration phi_accrual_detector::silence_at_phi(double threshold) const {
  const double mu = mean_ns_ + static_cast<double>(config_.acceptable_pause.count());
  const double sigma =
      std::max(std_ns_, static_cast<double>(config_.min_std_dev.count()));
  return duration{
      static_cast<std::int64_t>(std::ceil(mu + sigma * phi_to_deviations(threshold)))};
}

duration phi_accrual_detector::mean() const noexcept {
  return duration{static_cast<std::int64_t>(std::llround(mean_ns_))};
}

duration phi_accrual_detector::std_dev() const noexcept {
  return duration{static_cast<std::int64_t>(std::llround(std_ns_))};
}

} // namespace troupe::actors
