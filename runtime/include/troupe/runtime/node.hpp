#pragma once
/// The embedded runtime: `troupe::node`.
///
/// A program creates one node from a `node_config`, spawns actors and
/// supervisors on it, talks to them with `tell` / `request`, and stops it.
/// `stop()` drains: top-level actors are asked to stop in reverse spawn
/// order, each after the messages already in its mailbox, and supervisors
/// stop their children in reverse start order first.
///
/// Ownership: the node owns the CAF actor system, the metrics registry (and
/// its HTTP server), the tracer and the name registry. It must outlive every
/// use of refs it handed out; its destructor stops it.

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/supervisor.hpp"
#include "troupe/runtime/trace.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <spdlog/logger.h>
#include <string>
#include <string_view>
#include <vector>

namespace caf::scheduler {
class test_coordinator;
}

namespace troupe {

namespace metrics {
class registry;
class metrics_server;
} // namespace metrics

/// What every troupe actor on a node can reach. Owned by the node.
class node_services {
public:
  node_services(metrics::registry& reg, tracer& tr, const troupe::clock& clk,
                uint32_t latency_sample_every);

  metrics::registry& registry() noexcept { return registry_; }
  troupe::tracer& tracer() noexcept { return tracer_; }
  const troupe::clock& clock() const noexcept { return clock_; }
  uint32_t latency_sample_every() const noexcept { return sample_every_; }

  /// Instruments for actors of `kind` (created on first use).
  const actor_metrics& metrics_for(std::string_view kind);

  [[nodiscard]] result<void> register_name(std::string name, const actor_ref& ref);
  [[nodiscard]] result<actor_ref> lookup(std::string_view name) const;
  /// Removes `name` if it still maps to the actor with id `id`.
  void unregister(const std::string& name, uint64_t id);
  std::vector<std::string> names() const;

private:
  metrics::registry& registry_;
  troupe::tracer& tracer_;
  const troupe::clock& clock_;
  uint32_t sample_every_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<actor_metrics>, std::less<>>
      kinds_;                                           // guarded by mu_
  std::map<std::string, actor_ref, std::less<>> names_; // guarded by mu_
};

/// Deterministic scheduling for tests (scheduler.policy = "testing"):
/// nothing runs until the test says so, and time moves only when advanced.
class test_driver {
public:
  explicit test_driver(caf::scheduler::test_coordinator& sched) : sched_(sched) {}
  /// Runs every runnable actor until none is left; returns messages handled.
  size_t run();
  /// Runs one actor for one step; false when nothing was runnable.
  bool run_once();
  /// Moves the clock forward, firing due timeouts; returns how many fired.
  size_t advance_time(duration d);
  /// Runs, then advances time to each pending timeout and runs again, until
  /// nothing is pending or `limit` of simulated time has passed.
  void run_until_idle(duration limit = std::chrono::hours{1});
  caf::scheduler::test_coordinator& scheduler() noexcept { return sched_; }

private:
  caf::scheduler::test_coordinator& sched_;
};

/// The embedded troupe runtime.
class node {
public:
  /// Starts a node: actor system, logging, metrics (and their HTTP endpoint
  /// when enabled), tracing. Errors: invalid_argument for a bad config,
  /// unavailable when the metrics port cannot be bound, io_error for files.
  [[nodiscard]] static result<std::unique_ptr<node>> start(node_config cfg);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  // -- spawning ---------------------------------------------------------------

  /// Spawns a class-based actor `T` (derived from troupe::actor).
  template <class T, class... Ts> actor_ref spawn(Ts&&... xs) {
    return track(actor_ref{system_->spawn<T>(std::forward<Ts>(xs)...)});
  }
  /// Spawns a function-based actor; `kind` labels its metrics and spans.
  actor_ref spawn(std::string kind, function_actor::init_fn fn);
  /// Spawns a supervisor and its children.
  actor_ref spawn_supervisor(supervisor_spec spec);
  /// Makes the node own an actor spawned elsewhere (e.g. by a module's
  /// spawn function on `system()`): stop() drains it like a spawned one.
  /// Every long-lived actor must be owned by the node or a supervisor, or
  /// stop() waits for it forever.
  actor_ref adopt(actor_ref ref) { return track(std::move(ref)); }
  /// A supervisor spec with this node's [supervision] defaults.
  supervisor_spec make_supervisor_spec(std::string name, restart_strategy strategy) const;

  // -- messaging from outside actors -----------------------------------------

  /// Sends `xs...` to `to` (fire and forget).
  template <class... Ts> void tell(const actor_ref& to, Ts&&... xs) {
    tell_message(to, caf::make_message(std::forward<Ts>(xs)...));
  }
  void tell_message(const actor_ref& to, caf::message msg);

  /// Sends a request and waits for the answer of type R. Errors: timeout
  /// when no answer came in time, actor_failed when the receiver exited or
  /// answered with an error, invalid_argument when the answer is not an R.
  /// Not for use with the testing scheduler (use actors and test_driver).
  template <class R, class... Ts>
  result<R> request(const actor_ref& to, duration timeout, Ts&&... xs) {
    auto r = request_message(to, timeout, caf::make_message(std::forward<Ts>(xs)...));
    if (!r.ok()) return std::move(r).err();
    caf::message& msg = *r;
    if (msg.size() != 1 || !msg.match_element<R>(0))
      return error{runtime::errc::invalid_argument,
                   "unexpected answer type: " + caf::to_string(msg)};
    return msg.get_as<R>(0);
  }
  [[nodiscard]] result<caf::message> request_message(const actor_ref& to,
                                                     duration timeout, caf::message msg,
                                                     std::string tenant = {});

  // -- names ------------------------------------------------------------------

  [[nodiscard]] result<void> register_name(std::string name, const actor_ref& ref);
  [[nodiscard]] result<actor_ref> lookup(std::string_view name) const;

  // -- lifecycle --------------------------------------------------------------

  /// Drains and stops every top-level actor in reverse spawn order (each
  /// within the configured shutdown timeout, then killed), flushes traces
  /// and stops the metrics endpoint. Idempotent.
  void stop();
  /// Blocks until every top-level actor has exited.
  void await_all_actors_done();

  // -- services ---------------------------------------------------------------

  const node_config& config() const noexcept { return config_; }
  caf::actor_system& system() noexcept { return *system_; }
  metrics::registry& metrics() noexcept { return *registry_; }
  troupe::tracer& tracer() noexcept { return *tracer_; }
  const troupe::clock& clock() const noexcept { return *clock_; }
  node_services& services() noexcept { return *services_; }
  /// Port of the metrics endpoint; 0 when disabled.
  uint16_t metrics_port() const noexcept;
  /// The test driver when scheduler.policy is "testing", else null.
  test_driver* test() noexcept { return test_.get(); }
  /// Exit reasons of top-level actors that ended abnormally (for mains).
  std::vector<std::string> failures() const;

private:
  explicit node(node_config cfg);
  result<void> init();
  actor_ref track(actor_ref ref);

  node_config config_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<troupe::clock> clock_;
  std::unique_ptr<metrics::registry> registry_;
  std::unique_ptr<troupe::tracer> tracer_;
  std::unique_ptr<node_services> services_;
  std::unique_ptr<caf::actor_system_config> caf_config_;
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<metrics::metrics_server> metrics_server_;
  std::unique_ptr<test_driver> test_;
  bool stopped_ = false;

  struct shared_state;
  std::shared_ptr<shared_state> shared_; // top-level actors and failures
};

} // namespace troupe
