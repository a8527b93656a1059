#include "troupe/runtime/supervisor.hpp"

#include "troupe/runtime/random.hpp"

#include <algorithm>
#include <cmath>

namespace troupe {
const char* to_string(restart_strategy s) noexcept {
  switch (s) {
  case restart_strategy::one_for_one:
    return "one_for_one";
  case restart_strategy::one_for_all:
    return "one_for_all";
  case restart_strategy::rest_for_one:
    return "rest_for_one";
  }
  return "?";
}

const char* to_string(restart_type t) noexcept {
  switch (t) {
  case restart_type::permanent:
    return "permanent";
  case restart_type::transient:
    return "transient";
  case restart_type::temporary:
    return "temporary";
  }
  return "?";
}

duration backoff_policy::delay(uint32_t attempt, uint64_t& rng_state) const noexcept {
  if (attempt == 0) attempt = 1;
  double base = static_cast<double>(initial.count()) *
                std::pow(std::max(multiplier, 1.0), static_cast<double>(attempt - 1));
  double cap = static_cast<double>(max.count());
  base = std::min(base, cap);
  double u = unit_double(rng_state); // [0,1)
  double j = std::clamp(jitter, 0.0, 1.0);
  double d = std::min(base * (1.0 + j * (2.0 * u - 1.0)), cap);
  return duration{static_cast<int64_t>(std::max(d, 0.0))};
}

restart_planner::restart_planner(restart_strategy strategy, restart_intensity intensity,
                                 backoff_policy backoff,
                                 std::vector<restart_type> children)
    : strategy_(strategy), intensity_(intensity), backoff_(backoff),
      types_(std::move(children)), removed_(types_.size(), false), rng_(backoff.seed) {}

void restart_planner::expire(time_point now) {
  while (!window_.empty() && now - window_.front() > intensity_.period)
    window_.pop_front();
}

size_t restart_planner::restarts_in_window(time_point now) const {
  return static_cast<size_t>(
      std::count_if(window_.begin(), window_.end(),
                    [&](time_point t) { return now - t <= intensity_.period; }));
}

restart_decision restart_planner::on_exit(size_t child, exit_kind kind, time_point now) {
  TROUPE_ASSERT(child < types_.size(), "restart_planner: child index out of range");
  restart_decision d;
  if (removed_[child]) return d;
  auto type = types_[child];
  bool restart = type == restart_type::permanent ||
                 (type == restart_type::transient && kind == exit_kind::failure);
  if (!restart) {
    removed_[child] = true;
    d.remove.push_back(child);
    d.reason = std::string{to_string(type)} + " child exited and is not restarted";
    return d;
  }
  expire(now);
  window_.push_back(now);
  if (window_.size() > intensity_.max_restarts) {
    d.what = restart_decision::action::escalate;
    d.reason = "restart intensity exceeded: " + std::to_string(window_.size()) +
               " restarts within " +
               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  intensity_.period)
                                  .count()) +
               " ms (max " + std::to_string(intensity_.max_restarts) + ")";
    return d;
  }
  ++total_restarts_;
  d.what = restart_decision::action::restart;
  auto affected = [&](size_t i) {
    switch (strategy_) {
    case restart_strategy::one_for_one:
      return i == child;
    case restart_strategy::one_for_all:
      return true;
    case restart_strategy::rest_for_one:
      return i >= child;
    }
    return false;
  };
  for (size_t i = types_.size(); i-- > 0;) {
    if (i == child || removed_[i] || !affected(i)) continue;
    d.stop.push_back(i);
  }
  for (size_t i = 0; i < types_.size(); ++i) {
    if (removed_[i] || !affected(i)) continue;
    if (i != child && types_[i] == restart_type::temporary) {
      // OTP: a temporary sibling stopped by the strategy is not restarted.
      removed_[i] = true;
      d.remove.push_back(i);
      continue;
    }
    d.start.push_back(i);
  }
  d.delay = backoff_.delay(static_cast<uint32_t>(window_.size()), rng_);
  d.reason =
      std::string{to_string(strategy_)} + " restart of child " + std::to_string(child);
  return d;
}

} // namespace troupe
