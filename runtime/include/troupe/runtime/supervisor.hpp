#pragma once
/// OTP-style supervision.
///
/// `restart_planner` is the policy: plain code, no actors, no clock of its
/// own. Given "child i exited like this at time t" it decides which children
/// to stop and start again, after what backoff delay, or that the restart
/// intensity is exceeded and the supervisor must escalate to its parent.
/// `spawn_supervisor` runs that policy inside a thin actor shell.

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/clock.hpp"

#include <caf/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace troupe {

/// Which children restart when one fails (Erlang/OTP semantics).
enum class restart_strategy {
  one_for_one,  ///< only the failed child
  one_for_all,  ///< every child: the others are stopped, then all start again
  rest_for_one, ///< the failed child and every child started after it
};

/// When a child is restarted.
enum class restart_type {
  permanent, ///< always, whatever the exit reason
  transient, ///< only after an abnormal exit
  temporary, ///< never; the child is removed when it exits
};

/// How a child ended.
enum class exit_kind {
  normal,   ///< finished its work (exit_reason::normal)
  shutdown, ///< asked to stop (user_shutdown)
  failure,  ///< anything else: error, exception, kill
};

const char* to_string(restart_strategy s) noexcept;
const char* to_string(restart_type t) noexcept;

/// Max restarts within a sliding period before the supervisor gives up.
struct restart_intensity {
  uint32_t max_restarts = 3;
  duration period = std::chrono::seconds{5};
};

/// Exponential, capped restart delay with seeded jitter.
struct backoff_policy {
  duration initial = std::chrono::milliseconds{10};
  duration max = std::chrono::seconds{5};
  double multiplier = 2.0;
  double jitter = 0.2; ///< delay is scaled by a factor drawn from [1-j, 1+j)
  uint64_t seed = 0;

  /// Delay before restart number `attempt` (1-based) within the window.
  /// Advances `rng_state`; the same seed gives the same delays.
  duration delay(uint32_t attempt, uint64_t& rng_state) const noexcept;
};

/// What a supervisor does about one child exit.
struct restart_decision {
  enum class action { none, restart, escalate };
  action what = action::none;
  std::vector<size_t> stop;   ///< siblings to stop, in stop (reverse start) order
  std::vector<size_t> start;  ///< children to start again, in start order
  std::vector<size_t> remove; ///< children gone for good
  duration delay{};           ///< backoff before starting
  std::string reason;         ///< why (for logs and escalation errors)
};

/// The supervision policy for one supervisor. Plain data in, decision out.
class restart_planner {
public:
  restart_planner(restart_strategy strategy, restart_intensity intensity,
                  backoff_policy backoff, std::vector<restart_type> children);

  /// Child `child` exited as `kind` at `now`: what to do.
  restart_decision on_exit(size_t child, exit_kind kind, time_point now);

  /// Whether `child` is still part of the supervisor (not removed).
  bool alive(size_t child) const noexcept { return !removed_.at(child); }
  size_t size() const noexcept { return types_.size(); }
  /// Restarts counted in the current intensity window ending at `now`.
  size_t restarts_in_window(time_point now) const;
  uint64_t total_restarts() const noexcept { return total_restarts_; }

private:
  void expire(time_point now);

  restart_strategy strategy_;
  restart_intensity intensity_;
  backoff_policy backoff_;
  std::vector<restart_type> types_;
  std::vector<bool> removed_;
  std::deque<time_point> window_;
  uint64_t total_restarts_ = 0;
  uint64_t rng_;
};

/// How to start one child. `start` spawns it on the given system and returns
/// its ref; it runs inside the supervisor.
struct child_spec {
  std::string id;
  std::function<actor_ref(caf::actor_system&)> start;
  restart_type restart = restart_type::permanent;
  /// How long a drain stop may take before the child is killed.
  duration shutdown_timeout = std::chrono::seconds{5};
};

/// A supervisor: strategy, limits and children in start order.
struct supervisor_spec {
  std::string name = "supervisor";
  restart_strategy strategy = restart_strategy::one_for_one;
  restart_intensity intensity;
  backoff_policy backoff;
  std::vector<child_spec> children;
};

/// A child that is a class-based troupe actor `T` built from `args...`.
template <class T, class... Ts>
child_spec worker(std::string id, restart_type restart, Ts... args) {
  return child_spec{
      std::move(id),
      [args...](caf::actor_system& sys) { return actor_ref{sys.spawn<T>(args...)}; },
      restart};
}

/// A child that is a function-based troupe actor.
child_spec worker_fn(std::string id, restart_type restart, function_actor::init_fn fn);

/// A child that is itself a supervisor (supervision trees).
child_spec supervisor_child(std::string id, supervisor_spec spec,
                            restart_type restart = restart_type::permanent);

/// Spawns a supervisor running `spec` on `sys`.
actor_ref spawn_supervisor(caf::actor_system& sys, supervisor_spec spec);

/// Messages a supervisor answers (for tools and tests).
/// `(which_atom)` -> std::vector<std::string>: ids of running children.
/// `(child_atom, std::string id)` -> caf::actor of that child, or an error.
using which_atom = caf::atom_constant<caf::atom("tr_which")>;
using child_atom = caf::atom_constant<caf::atom("tr_child")>;

} // namespace troupe
