// The phi-accrual failure detector: hand-computed values of the formula,
// the window, the acceptable pause, monotonicity, and the history-free bound
// that membership's detection_bound rests on.

#include "troupe/actors/phi_accrual.hpp"

#include <chrono>
#include <cmath>
#include <doctest/doctest.h>
#include <random>

using namespace std::chrono_literals;
using troupe::duration;
using troupe::time_point;
using troupe::actors::phi_accrual_config;
using troupe::actors::phi_accrual_detector;
using troupe::actors::phi_to_deviations;
using troupe::actors::time_to_phi_bound;

namespace {

time_point at(duration d) {
  return time_point{} + d;
}

/// First-heartbeat estimate 1 s (seeds 0.75 s and 1.25 s: mean 1 s,
/// deviation 0.25 s), no acceptable pause, 100 ms floor.
phi_accrual_config hand_config() {
  phi_accrual_config c;
  c.max_samples = 100;
  c.min_std_dev = 100ms;
  c.acceptable_pause = 0ms;
  c.first_heartbeat_estimate = 1s;
  return c;
}

} // namespace

TEST_SUITE("phi_accrual") {

  TEST_CASE("phi is zero before the first heartbeat and log10(2) at the mean") {
    phi_accrual_detector d{hand_config()};
    CHECK(d.phi(at(10s)) == 0.0);
    CHECK(d.is_available(at(10s), 1.0));
    CHECK_FALSE(d.last_arrival().has_value());

    d.heartbeat(at(10s));
    CHECK(d.sample_count() == 2);
    CHECK(d.mean() == 1s);
    CHECK(d.std_dev() == 250ms);
    // y = 0: P_later = 1/2 exactly.
    CHECK(d.phi(at(11s)) == doctest::Approx(std::log10(2.0)).epsilon(1e-12));
  }

  TEST_CASE("phi matches hand-computed values of the logistic formula") {
    // y = (delta - 1 s) / 0.25 s; phi = log10(1 + e^z), z = y (1.5976 + 0.070566 y^2).
    phi_accrual_detector d{hand_config()};
    d.heartbeat(at(0s));
    struct row {
      duration delta;
      double phi;
    };
    const row rows[] = {
        {0ms, 7.963311608843341e-06},  // y = -4: z = -10.9064
        {500ms, 0.009998761629963094}, // y = -2: z = -4.32412
        {1250ms, 0.7995083208395597},  // y = 1:  z = 1.668166
        {1500ms, 1.6428278854871121},  // y = 2:  z = 3.76412 (1 - Phi(2) = 0.02275)
        {2000ms, 4.73669458270518},    // y = 4:  z = 10.9064
        {3000ms, 21.241600212221332},  // y = 8:  z = 48.9099
    };
    for (const auto& r : rows) {
      CAPTURE(r.delta.count());
      CHECK(d.phi(at(r.delta)) == doctest::Approx(r.phi).epsilon(1e-9));
    }
    CHECK(d.is_available(at(1250ms), 1.0));
    CHECK_FALSE(d.is_available(at(1500ms), 1.0));
  }

  TEST_CASE("phi rises monotonically with silence and never overflows") {
    phi_accrual_detector d{hand_config()};
    d.heartbeat(at(0s));
    double previous = -1;
    for (auto t = 0ms; t <= 600s; t += 7ms) {
      const double p = d.phi(at(t));
      REQUIRE(std::isfinite(p));
      REQUIRE(p >= previous);
      if (t > 500ms) REQUIRE(p > previous); // strictly once out of the far tail
      previous = p;
    }
    CHECK(previous > 1000); // ten minutes of silence is very suspicious
  }

  TEST_CASE("the window keeps max_samples intervals and the seeds age out") {
    auto c = hand_config();
    c.max_samples = 4;
    phi_accrual_detector d{c};
    d.heartbeat(at(0s)); // seeds 0.75 s, 1.25 s
    d.heartbeat(at(1s));
    d.heartbeat(at(2s)); // window 0.75, 1.25, 1, 1
    CHECK(d.sample_count() == 4);
    CHECK(d.mean() == 1s);
    CHECK(d.std_dev() == duration{176'776'695}); // sqrt(0.125 / 4) s
    d.heartbeat(at(3s));
    d.heartbeat(at(4s)); // seeds gone: 1, 1, 1, 1
    CHECK(d.sample_count() == 4);
    CHECK(d.mean() == 1s);
    CHECK(d.std_dev() == 0ns);
    // sigma is the 100 ms floor: y = (1.2 - 1) / 0.1 = 2.
    CHECK(d.phi(at(5200ms)) == doctest::Approx(1.6428278854871121).epsilon(1e-9));
    d.heartbeat(at(6s)); // 2 s interval: window 1, 1, 1, 2
    CHECK(d.mean() == 1250ms);
    CHECK(d.std_dev() == duration{433'012'702}); // sqrt(0.1875) s
  }

  TEST_CASE("the acceptable pause is added to the mean") {
    auto c = hand_config();
    c.acceptable_pause = 2s;
    phi_accrual_detector d{c};
    d.heartbeat(at(0s));
    // y = (3.25 - 1 - 2) / 0.25 = 1.
    CHECK(d.phi(at(3250ms)) == doctest::Approx(0.7995083208395597).epsilon(1e-9));
    CHECK(d.phi(at(3s)) == doctest::Approx(std::log10(2.0)).epsilon(1e-12));
  }

  TEST_CASE("a pause shorter than the acceptable pause stays far below any threshold") {
    phi_accrual_config c;
    c.max_samples = 200;
    c.min_std_dev = 100ms;
    c.acceptable_pause = 1s;
    c.first_heartbeat_estimate = 500ms;
    phi_accrual_detector d{c};
    std::mt19937_64 rng{42};
    std::uniform_int_distribution<int> jitter_ms{-20, 20};
    auto t = 0ms;
    for (int i = 0; i < 400; ++i) {
      d.heartbeat(at(t));
      t += 500ms + std::chrono::milliseconds{jitter_ms(rng)};
    }
    const auto last = *d.last_arrival();
    // A pause of up to 999 ms on top of the usual interval.
    for (auto pause = 0ms; pause < 1s; pause += 1ms) {
      const double p = d.phi(last + d.mean() + pause);
      REQUIRE(p <= std::log10(2.0) + 1e-12);
      REQUIRE(d.is_available(last + d.mean() + pause, 1.0));
    }
  }

  TEST_CASE("intervals longer than max_interval are not recorded") {
    auto c = hand_config();
    c.max_interval = 3s;
    phi_accrual_detector d{c};
    d.heartbeat(at(0s));
    d.heartbeat(at(1s));
    REQUIRE(d.sample_count() == 3);
    const auto mean = d.mean();
    const auto dev = d.std_dev();
    d.heartbeat(at(30s)); // an outage: the clock restarts, the window does not change
    CHECK(d.sample_count() == 3);
    CHECK(d.mean() == mean);
    CHECK(d.std_dev() == dev);
    CHECK(d.last_arrival() == at(30s));
    d.heartbeat(at(33s)); // exactly max_interval is recorded
    CHECK(d.sample_count() == 4);
  }

  TEST_CASE("heard_of restarts the silence without recording an interval") {
    phi_accrual_detector d{hand_config()};
    d.heartbeat(at(0s));
    CHECK(d.phi(at(5s)) > 20);
    d.heard_of(at(5s));
    CHECK(d.sample_count() == 2);
    CHECK(d.phi(at(6s)) == doctest::Approx(std::log10(2.0)).epsilon(1e-12));
    // Earlier times never move the last arrival back.
    d.heard_of(at(1s));
    d.heartbeat(at(2s)); // interval counted as zero
    CHECK(d.last_arrival() == at(5s));
    CHECK(d.sample_count() == 3);
  }

  TEST_CASE("phi_to_deviations inverts the formula") {
    // phi = 1 is the 90% quantile of the normal distribution (1.2816); the
    // logistic approximation is within its documented error.
    CHECK(phi_to_deviations(1.0) == doctest::Approx(1.2816).epsilon(1e-3));
    CHECK(phi_to_deviations(8.0) == doctest::Approx(5.225986644093564).epsilon(1e-12));
    phi_accrual_detector d{hand_config()};
    d.heartbeat(at(0s));
    for (double threshold : {1.0, 3.0, 8.0, 12.0, 30.0}) {
      CAPTURE(threshold);
      const auto silence = d.silence_at_phi(threshold);
      CHECK(d.phi(at(silence)) == doctest::Approx(threshold).epsilon(1e-6));
      CHECK(d.is_available(at(silence - 1ms), threshold));
      CHECK_FALSE(d.is_available(at(silence + 1ms), threshold));
    }
  }

  TEST_CASE("time_to_phi_bound holds for any history within max_interval") {
    phi_accrual_config c;
    c.max_samples = 50;
    c.min_std_dev = 100ms;
    c.acceptable_pause = 1s;
    c.first_heartbeat_estimate = 500ms;
    c.max_interval = 1500ms;
    const double threshold = 8.0;
    const auto bound = time_to_phi_bound(c, threshold);
    // cap 1.5 s, sigma at most 0.75 s: 1.5 + 1 + 0.75 * 5.225987 = 6.41949 s.
    CHECK(bound > 6419ms);
    CHECK(bound < 6421ms);

    std::mt19937_64 rng{7};
    for (int history = 0; history < 200; ++history) {
      phi_accrual_detector d{c};
      auto t = 0ns;
      d.heartbeat(at(t));
      const int shape = history % 4;
      std::uniform_int_distribution<std::int64_t> any{0, c.max_interval.count()};
      for (int i = 0; i < 60; ++i) {
        duration gap;
        if (shape == 0)
          gap = c.max_interval; // all at the cap: largest mean
        else if (shape == 1)
          gap = i % 2 ? c.max_interval : 0ns; // largest deviation
        else
          gap = duration{any(rng)};
        t += gap;
        d.heartbeat(at(t));
      }
      CAPTURE(history);
      REQUIRE(d.silence_at_phi(threshold) <= bound);
      REQUIRE_FALSE(d.is_available(at(t) + bound, threshold));
    }
  }

} // TEST_SUITE
