// The supervisor actor: a thin shell around restart_planner.
//
// Children are linked (so they die if the supervisor is killed) and
// monitored (their down messages drive the planner). The supervisor traps
// exits. Restarts wait for the stopped siblings' down messages, then for the
// backoff delay (a delayed message, so the test scheduler controls it).

#include "node_system_config.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/supervisor.hpp"

#include <algorithm>
#include <set>

namespace troupe {
namespace {

using restart_atom = caf::atom_constant<caf::atom("tr_restart")>;
using kill_atom = caf::atom_constant<caf::atom("tr_kill")>;

enum class child_status { running, stopping, stopped, removed };

struct child_state {
  child_spec spec;
  caf::actor handle;
  child_status status = child_status::stopped;
  uint64_t generation = 0; // bumps on every start; guards stale timers
  bool exit_seen = false;  // its link's exit message already arrived
};

std::vector<restart_type> types_of(const supervisor_spec& spec) {
  std::vector<restart_type> out;
  for (auto& c : spec.children)
    out.push_back(c.restart);
  return out;
}

class supervisor_actor final : public actor {
public:
  supervisor_actor(caf::actor_config& cfg, supervisor_spec spec)
      : actor(cfg), spec_(std::move(spec)),
        planner_(spec_.strategy, spec_.intensity, spec_.backoff, types_of(spec_)),
        log_(logging::get("runtime")) {
    for (auto& c : spec_.children)
      children_.push_back(child_state{c, {}, child_status::stopped, 0});
  }

  const char* name() const override { return "supervisor"; }

  behavior make_behavior() override {
    if (auto* s = services()) {
      auto& reg = s->registry();
      metrics::labels l{{"supervisor", spec_.name}};
      restarts_ = &reg.get_counter("troupe_supervisor_restarts_total",
                                   "Restarts performed by a supervisor", l);
      escalations_ =
          &reg.get_counter("troupe_supervisor_escalations_total",
                           "Times a supervisor gave up and escalated to its parent", l);
      child_exits_ = &reg.get_counter("troupe_supervisor_child_exits_total",
                                      "Unexpected child exits seen by a supervisor", l);
    }
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
    set_exit_handler([this](caf::exit_msg& em) { on_exit_msg(em); });
    for (size_t i = 0; i < children_.size(); ++i) {
      if (!start_child(i)) break;
    }
    return {
        [this](restart_atom, uint64_t gen) {
          if (gen == restart_generation_) start_pending();
        },
        [this](kill_atom, uint64_t idx, uint64_t gen) {
          if (idx < children_.size() && children_[idx].status == child_status::stopping &&
              children_[idx].generation == gen) {
            log_->warn("supervisor {}: child {} did not stop in time, killing it",
                       spec_.name, children_[idx].spec.id);
            send_exit(children_[idx].handle, caf::exit_reason::kill);
          }
        },
        [this](which_atom) {
          std::vector<std::string> ids;
          for (auto& c : children_)
            if (c.status == child_status::running) ids.push_back(c.spec.id);
          return ids;
        },
        [this](child_atom, const std::string& id) -> caf::result<caf::actor> {
          for (auto& c : children_)
            if (c.spec.id == id && c.status == child_status::running) return c.handle;
          return caf::make_error(caf::sec::invalid_argument,
                                 "no running child '" + id + "'");
        },
    };
  }

protected:
  void on_drain() override {
    if (mode_ != mode::running) return;
    mode_ = mode::draining;
    exit_reason_ = caf::exit_reason::user_shutdown;
    ++restart_generation_; // cancel pending restarts
    pending_starts_.clear();
    stop_next_for_drain();
  }

private:
  enum class mode { running, draining, terminating };

  bool start_child(size_t i) {
    auto& c = children_[i];
    actor_ref ref;
    try {
      ref = c.spec.start(home_system());
    } catch (const std::exception& e) {
      escalate("child '" + c.spec.id + "' failed to start: " + e.what());
      return false;
    }
    if (!ref) {
      escalate("child '" + c.spec.id + "' failed to start: no actor");
      return false;
    }
    c.handle = ref.handle();
    c.exit_seen = false;
    c.status = child_status::running;
    ++c.generation;
    link_to(c.handle);
    monitor(c.handle);
    return true;
  }

  std::optional<size_t> index_of(const caf::actor_addr& addr) const {
    for (size_t i = 0; i < children_.size(); ++i)
      if (children_[i].handle && children_[i].handle.address() == addr) return i;
    return std::nullopt;
  }

  static exit_kind classify(const caf::error& reason) {
    if (reason == caf::exit_reason::normal || !reason) return exit_kind::normal;
    if (reason == caf::exit_reason::user_shutdown) return exit_kind::shutdown;
    return exit_kind::failure;
  }

  void stop_child(size_t i, bool drain) {
    auto& c = children_[i];
    c.status = child_status::stopping;
    if (drain)
      send(c.handle, drain_atom::value);
    else
      send_exit(c.handle, caf::exit_reason::user_shutdown);
    delayed_send(this, c.spec.shutdown_timeout, kill_atom::value,
                 static_cast<uint64_t>(i), c.generation);
  }

  void on_down(caf::down_msg& dm) {
    auto idx = index_of(dm.source);
    if (!idx) return;
    auto& c = children_[*idx];
    bool expected = c.status == child_status::stopping;
    // The link delivers an exit message for an abnormal exit; it may come
    // after this down message and must then still be known as a child's.
    if (!c.exit_seen && dm.reason && dm.reason != caf::exit_reason::normal)
      former_children_.insert(dm.source);
    unlink_from(c.handle);
    c.handle = nullptr;
    c.status = child_status::stopped;
    if (expected || mode_ != mode::running) {
      after_expected_stop();
      return;
    }
    auto kind = classify(dm.reason);
    if (kind == exit_kind::failure && child_exits_ != nullptr) child_exits_->inc();
    auto d = planner_.on_exit(*idx, kind, clock().now());
    for (auto r : d.remove) {
      if (children_[r].status == child_status::running) stop_child(r, false);
      if (r == *idx) children_[r].status = child_status::removed;
    }
    switch (d.what) {
    case restart_decision::action::none:
      log_->debug("supervisor {}: child {} exited ({}), not restarted", spec_.name,
                  c.spec.id, caf::to_string(dm.reason));
      break;
    case restart_decision::action::escalate:
      escalate("child '" + c.spec.id + "' exited (" + caf::to_string(dm.reason) + "); " +
               d.reason);
      break;
    case restart_decision::action::restart: {
      if (restarts_ != nullptr) restarts_->inc();
      log_->info("supervisor {}: child {} exited ({}); {} in {} ms", spec_.name,
                 c.spec.id, caf::to_string(dm.reason), d.reason,
                 std::chrono::duration_cast<std::chrono::milliseconds>(d.delay).count());
      for (auto s : d.stop)
        if (children_[s].status == child_status::running) stop_child(s, false);
      for (auto s : d.start)
        pending_starts_.insert(s);
      pending_delay_ = d.delay;
      maybe_schedule_restart();
      break;
    }
    }
  }

  bool any_stopping() const {
    return std::any_of(children_.begin(), children_.end(),
                       [](auto& c) { return c.status == child_status::stopping; });
  }

  void after_expected_stop() {
    for (auto& c : children_)
      if (c.status == child_status::stopped &&
          planner_.alive(&c - children_.data()) == false)
        c.status = child_status::removed;
    switch (mode_) {
    case mode::running:
      maybe_schedule_restart();
      break;
    case mode::draining:
      stop_next_for_drain();
      break;
    case mode::terminating:
      if (!any_stopping()) quit(exit_reason_);
      break;
    }
  }

  void maybe_schedule_restart() {
    if (pending_starts_.empty() || any_stopping()) return;
    ++restart_generation_;
    if (pending_delay_.count() <= 0)
      start_pending();
    else
      delayed_send(this, pending_delay_, restart_atom::value, restart_generation_);
  }

  void start_pending() {
    if (mode_ != mode::running || any_stopping()) return;
    auto starts = std::move(pending_starts_);
    pending_starts_.clear();
    for (auto i : starts) {
      if (!planner_.alive(i) || children_[i].status == child_status::running) continue;
      if (!start_child(i)) return;
    }
  }

  void stop_next_for_drain() {
    if (any_stopping()) return;
    for (size_t i = children_.size(); i-- > 0;) {
      if (children_[i].status == child_status::running) {
        stop_child(i, true);
        return;
      }
    }
    quit(exit_reason_);
  }

  void escalate(std::string why) {
    if (mode_ == mode::terminating) return;
    if (escalations_ != nullptr) escalations_->inc();
    log_->error("supervisor {}: giving up and escalating: {}", spec_.name, why);
    terminate_with(caf::make_error(caf::sec::runtime_error,
                                   "supervisor " + spec_.name + " escalated: " + why));
  }

  void terminate_with(caf::error reason) {
    mode_ = mode::terminating;
    exit_reason_ = std::move(reason);
    ++restart_generation_;
    pending_starts_.clear();
    for (size_t i = children_.size(); i-- > 0;)
      if (children_[i].status == child_status::running) stop_child(i, false);
    if (!any_stopping()) quit(exit_reason_);
  }

  void on_exit_msg(caf::exit_msg& em) {
    if (auto idx = index_of(em.source)) { // a child: its down message does the work
      children_[*idx].exit_seen = true;
      return;
    }
    if (former_children_.erase(em.source) > 0) return;
    if (em.reason == caf::exit_reason::normal) return;
    // A linked parent (or anyone else) failed: stop the children, then exit.
    terminate_with(em.reason);
  }

  supervisor_spec spec_;
  restart_planner planner_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<child_state> children_;
  std::set<size_t> pending_starts_;
  std::set<caf::actor_addr> former_children_; // exited, their exit message still due
  duration pending_delay_{};
  uint64_t restart_generation_ = 0;
  mode mode_ = mode::running;
  caf::error exit_reason_;
  metrics::counter* restarts_ = nullptr;
  metrics::counter* escalations_ = nullptr;
  metrics::counter* child_exits_ = nullptr;
};

} // namespace

child_spec worker_fn(std::string id, restart_type restart, function_actor::init_fn fn) {
  std::string kind = id;
  return child_spec{std::move(id),
                    [fn = std::move(fn), kind](caf::actor_system& sys) {
                      return actor_ref{sys.spawn<function_actor>(fn, kind)};
                    },
                    restart};
}

child_spec supervisor_child(std::string id, supervisor_spec spec, restart_type restart) {
  return child_spec{std::move(id),
                    [spec = std::move(spec)](caf::actor_system& sys) {
                      return spawn_supervisor(sys, spec);
                    },
                    restart, std::chrono::hours{1}};
}

actor_ref spawn_supervisor(caf::actor_system& sys, supervisor_spec spec) {
  return actor_ref{sys.spawn<supervisor_actor>(std::move(spec))};
}

} // namespace troupe
