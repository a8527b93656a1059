// The restart decision: plain code over the policy and the replica's end.

#include "troupe/actors/restart_policy.hpp"

#include "troupe/actors/job_spec.hpp"

#include <algorithm>

namespace troupe::actors {

const char* to_string(restart_mode m) noexcept {
  switch (m) {
  case restart_mode::never:
    return "never";
  case restart_mode::on_failure:
    return "on-failure";
  case restart_mode::always:
    return "always";
  }
  return "never";
}

std::optional<restart_mode> parse_restart_mode(std::string_view s) noexcept {
  for (auto m : {restart_mode::never, restart_mode::on_failure, restart_mode::always})
    if (s == to_string(m)) return m;
  return std::nullopt;
}

const char* to_string(replica_exit::kind k) noexcept {
  switch (k) {
  case replica_exit::kind::exited:
    return "exited";
  case replica_exit::kind::signaled:
    return "signaled";
  case replica_exit::kind::node_lost:
    return "node_lost";
  }
  return "node_lost";
}

replica_exit make_replica_exit(std::string_view kind, int code) noexcept {
  if (kind == "exited") return replica_exit::exited(code);
  if (kind == "signaled") return replica_exit::signaled(code);
  return replica_exit::node_lost();
}

std::string replica_exit::to_string() const {
  switch (how) {
  case kind::exited:
    return "exited with status " + std::to_string(code);
  case kind::signaled:
    return "killed by " + signal_name(code);
  case kind::node_lost:
    return "node lost";
  }
  return "ended";
}

duration backoff_delay(const backoff_policy& b, uint32_t k) {
  duration d = b.initial;
  for (uint32_t i = 0; i < k && d < b.max; ++i) {
    if (d > b.max / std::max<uint32_t>(b.multiplier, 1)) return b.max;
    d *= std::max<uint32_t>(b.multiplier, 1);
  }
  return std::min(d, b.max);
}

restart_decision decide_restart(const restart_policy& policy, const replica_exit& exit,
                                uint32_t restarts_so_far, duration ran_for) {
  restart_decision d;
  const std::string what = exit.to_string();
  if (policy.mode == restart_mode::never) {
    d.reason = what + "; restart policy never";
    return d;
  }
  if (exit.how == replica_exit::kind::node_lost) {
    d.action = restart_action::restart_now;
    d.counts = false;
    d.reason = what + "; restarting elsewhere (does not count against max_restarts)";
    return d;
  }
  if (policy.mode == restart_mode::on_failure && exit.succeeded()) {
    d.reason = what + "; succeeded, restart policy on-failure";
    return d;
  }
  const bool limited = policy.mode == restart_mode::on_failure || policy.max_restarts > 0;
  if (limited && restarts_so_far >= policy.max_restarts) {
    d.reason = what + "; gave up after " + std::to_string(restarts_so_far) + " of " +
               std::to_string(policy.max_restarts) + " restarts";
    return d;
  }
  const bool healthy_run = ran_for >= policy.backoff.reset_after;
  d.delay = backoff_delay(policy.backoff, healthy_run ? 0 : restarts_so_far);
  d.action = d.delay > duration{0} ? restart_action::restart_after_backoff
                                   : restart_action::restart_now;
  d.reason = what + "; restart " + std::to_string(restarts_so_far + 1) +
             (limited ? " of " + std::to_string(policy.max_restarts) : std::string{}) +
             (d.delay > duration{0} ? " after " + format_duration(d.delay) : " now");
  return d;
}

} // namespace troupe::actors
