// Supervision: the restart policy as plain code, then the supervisor actor
// under CAF's deterministic test scheduler (nothing runs and no time passes
// unless the test says so).

#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/supervisor.hpp"

#include <doctest/doctest.h>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::exit_kind;
using troupe::restart_decision;
using troupe::restart_planner;
using troupe::restart_strategy;
using troupe::restart_type;

namespace {

using action = restart_decision::action;
constexpr auto P = restart_type::permanent;
constexpr auto T = restart_type::transient;
constexpr auto X = restart_type::temporary;

restart_planner planner(restart_strategy s, std::vector<restart_type> types,
                        uint32_t max_restarts = 3, troupe::duration period = 5s) {
  troupe::backoff_policy b;
  b.initial = 10ms;
  b.max = 1s;
  b.jitter = 0;
  return restart_planner{s, {max_restarts, period}, b, std::move(types)};
}

troupe::time_point at(int ms) {
  return troupe::time_point{std::chrono::milliseconds{ms}};
}

} // namespace

TEST_SUITE("supervision policy") {
  TEST_CASE("one_for_one restarts only the failed child") {
    auto p = planner(restart_strategy::one_for_one, {P, P, P});
    auto d = p.on_exit(1, exit_kind::failure, at(0));
    CHECK(d.what == action::restart);
    CHECK(d.stop.empty());
    CHECK(d.start == std::vector<size_t>{1});
  }

  TEST_CASE("one_for_all stops the siblings in reverse order and restarts all in order") {
    auto p = planner(restart_strategy::one_for_all, {P, P, P, P});
    auto d = p.on_exit(1, exit_kind::failure, at(0));
    CHECK(d.what == action::restart);
    CHECK(d.stop == std::vector<size_t>{3, 2, 0});
    CHECK(d.start == std::vector<size_t>{0, 1, 2, 3});
  }

  TEST_CASE("rest_for_one restarts the failed child and the ones started after it") {
    auto p = planner(restart_strategy::rest_for_one, {P, P, P, P});
    auto d = p.on_exit(1, exit_kind::failure, at(0));
    CHECK(d.stop == std::vector<size_t>{3, 2});
    CHECK(d.start == std::vector<size_t>{1, 2, 3});
  }

  TEST_CASE("a permanent child restarts even after a normal exit") {
    auto p = planner(restart_strategy::one_for_one, {P});
    CHECK(p.on_exit(0, exit_kind::normal, at(0)).what == action::restart);
    CHECK(p.on_exit(0, exit_kind::shutdown, at(1)).what == action::restart);
  }

  TEST_CASE("a transient child restarts only after an abnormal exit") {
    auto p = planner(restart_strategy::one_for_one, {T, T});
    CHECK(p.on_exit(0, exit_kind::failure, at(0)).what == action::restart);
    auto d = p.on_exit(0, exit_kind::normal, at(1));
    CHECK(d.what == action::none);
    CHECK(d.remove == std::vector<size_t>{0});
    CHECK_FALSE(p.alive(0));
    auto s = p.on_exit(1, exit_kind::shutdown, at(2));
    CHECK(s.what == action::none);
    CHECK_FALSE(p.alive(1));
  }

  TEST_CASE("a temporary child is never restarted and is removed") {
    auto p = planner(restart_strategy::one_for_one, {X, P});
    auto d = p.on_exit(0, exit_kind::failure, at(0));
    CHECK(d.what == action::none);
    CHECK_FALSE(p.alive(0));
    CHECK(p.alive(1));
    CHECK(p.total_restarts() == 0);
  }

  TEST_CASE("temporary siblings stopped by one_for_all are removed, not restarted") {
    auto p = planner(restart_strategy::one_for_all, {P, X, P});
    auto d = p.on_exit(2, exit_kind::failure, at(0));
    CHECK(d.what == action::restart);
    CHECK(d.stop == std::vector<size_t>{1, 0});
    CHECK(d.start == std::vector<size_t>{0, 2});
    CHECK(d.remove == std::vector<size_t>{1});
    // A removed child is not stopped or started again by later decisions.
    auto e = p.on_exit(0, exit_kind::failure, at(1));
    CHECK(e.stop == std::vector<size_t>{2});
    CHECK(e.start == std::vector<size_t>{0, 2});
  }

  TEST_CASE("exceeding the restart intensity escalates instead of restarting") {
    auto p = planner(restart_strategy::one_for_one, {P}, 3, 5s);
    for (int i = 0; i < 3; ++i)
      CHECK(p.on_exit(0, exit_kind::failure, at(i * 100)).what == action::restart);
    auto d = p.on_exit(0, exit_kind::failure, at(400));
    CHECK(d.what == action::escalate);
    CHECK(d.reason.find("restart intensity exceeded") != std::string::npos);
  }

  TEST_CASE("restarts spread wider than the period never escalate") {
    auto p = planner(restart_strategy::one_for_one, {P}, 3, 5s);
    for (int i = 0; i < 50; ++i)
      REQUIRE(p.on_exit(0, exit_kind::failure, at(i * 2000)).what == action::restart);
    CHECK(p.restarts_in_window(at(49 * 2000)) == 3);
    CHECK(p.total_restarts() == 50);
  }

  TEST_CASE("a zero intensity escalates on the first failure") {
    auto p = planner(restart_strategy::one_for_one, {P}, 0, 5s);
    CHECK(p.on_exit(0, exit_kind::failure, at(0)).what == action::escalate);
  }

  TEST_CASE("backoff grows exponentially up to the cap") {
    troupe::backoff_policy b;
    b.initial = 10ms;
    b.max = 100ms;
    b.multiplier = 2.0;
    b.jitter = 0.0;
    uint64_t rng = 1;
    CHECK(b.delay(1, rng) == 10ms);
    CHECK(b.delay(2, rng) == 20ms);
    CHECK(b.delay(3, rng) == 40ms);
    CHECK(b.delay(4, rng) == 80ms);
    CHECK(b.delay(5, rng) == 100ms);
    CHECK(b.delay(60, rng) == 100ms);
  }

  TEST_CASE("backoff jitter stays in bounds and is reproducible from the seed") {
    troupe::backoff_policy b;
    b.initial = 100ms;
    b.max = 10s;
    b.jitter = 0.25;
    auto draw = [&](uint64_t seed) {
      std::vector<troupe::duration> out;
      uint64_t rng = seed;
      for (int i = 0; i < 200; ++i)
        out.push_back(b.delay(1, rng));
      return out;
    };
    auto a = draw(7), a2 = draw(7), c = draw(8);
    CHECK(a == a2);
    CHECK(a != c);
    bool below = false, above = false;
    for (auto d : a) {
      CHECK(d >= 75ms);
      CHECK(d < 125ms);
      below |= d < 100ms;
      above |= d > 100ms;
    }
    CHECK(below);
    CHECK(above);
  }
}

// -- the supervisor actor ---------------------------------------------------------

namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using finish_atom = caf::atom_constant<caf::atom("finish")>;
using work_atom = caf::atom_constant<caf::atom("work")>;

/// What the test workers did, in order. The test scheduler runs everything
/// on the test's thread, so plain containers are safe here.
struct journal {
  std::vector<std::string> events;
  std::map<std::string, caf::actor> live;
  std::map<std::string, int> starts;
};

class test_worker final : public troupe::actor {
public:
  test_worker(caf::actor_config& cfg, std::string id, journal* j, bool crash_on_start)
      : troupe::actor(cfg), id_(std::move(id)), j_(j), crash_on_start_(crash_on_start) {}

  const char* name() const override { return "test_worker"; }

  troupe::behavior make_behavior() override {
    j_->events.push_back("start:" + id_);
    j_->live[id_] = caf::actor_cast<caf::actor>(this);
    ++j_->starts[id_];
    if (crash_on_start_) send(this, crash_atom::value);
    return {
        [this](crash_atom) { quit(caf::make_error(caf::sec::runtime_error, "crash")); },
        [this](finish_atom) { quit(); },
        [this](work_atom) { ++work_; },
    };
  }

  void on_exit() override {
    j_->events.push_back("stop:" + id_ + (work_ > 0 ? "/" + std::to_string(work_) : ""));
  }

private:
  std::string id_;
  journal* j_;
  bool crash_on_start_;
  int work_ = 0;
};

std::unique_ptr<troupe::node> test_node() {
  auto cfg = troupe::default_config();
  cfg.scheduler.policy = troupe::scheduler_policy::testing;
  cfg.metrics.enabled = false;
  cfg.log.level = troupe::log_level::off;
  auto n = troupe::node::start(cfg);
  REQUIRE(n.ok());
  return std::move(*n);
}

troupe::supervisor_spec spec(restart_strategy s, journal& j,
                             std::vector<std::pair<std::string, restart_type>> kids,
                             uint32_t max_restarts = 3) {
  troupe::supervisor_spec sp;
  sp.name = "sup";
  sp.strategy = s;
  sp.intensity = {max_restarts, 5s};
  sp.backoff.initial = 10ms;
  sp.backoff.max = 1s;
  sp.backoff.jitter = 0;
  for (auto& [id, type] : kids)
    sp.children.push_back(troupe::worker<test_worker>(id, type, id, &j, false));
  return sp;
}

std::vector<std::string> events_since(const journal& j, size_t from) {
  return {j.events.begin() + static_cast<std::ptrdiff_t>(from), j.events.end()};
}

using strings = std::vector<std::string>;

} // namespace

TEST_SUITE("supervisor actor") {
  TEST_CASE("children start in order and one_for_one restarts only the crashed one") {
    journal j; // declared first: it must outlive the node's actors
    auto n = test_node();
    n->spawn_supervisor(
        spec(restart_strategy::one_for_one, j, {{"a", P}, {"b", P}, {"c", P}}));
    n->test()->run();
    CHECK(j.events == strings{"start:a", "start:b", "start:c"});
    auto a = j.live["a"], c = j.live["c"];
    caf::anon_send(j.live["b"], crash_atom::value);
    n->test()->run_until_idle(1s);
    CHECK(events_since(j, 3) == strings{"stop:b", "start:b"});
    CHECK(j.live["a"] == a);
    CHECK(j.live["c"] == c);
  }

  TEST_CASE("one_for_all stops every sibling and restarts all in start order") {
    journal j; // declared first: it must outlive the node's actors
    auto n = test_node();
    n->spawn_supervisor(
        spec(restart_strategy::one_for_all, j, {{"a", P}, {"b", P}, {"c", P}}));
    n->test()->run();
    caf::anon_send(j.live["b"], crash_atom::value);
    n->test()->run_until_idle(1s);
    CHECK(events_since(j, 3) ==
          strings{"stop:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"});
  }

  TEST_CASE("rest_for_one restarts the crashed child and those started after it") {
    journal j; // declared first: it must outlive the node's actors
    auto n = test_node();
    n->spawn_supervisor(
        spec(restart_strategy::rest_for_one, j, {{"a", P}, {"b", P}, {"c", P}}));
    n->test()->run();
    auto a = j.live["a"];
    caf::anon_send(j.live["b"], crash_atom::value);
    n->test()->run_until_idle(1s);
    CHECK(events_since(j, 3) == strings{"stop:b", "stop:c", "start:b", "start:c"});
    CHECK(j.live["a"] == a);
  }

  TEST_CASE("restart types: permanent after normal exit, transient after crash only, "
            "temporary never") {
    journal j; // declared first: it must outlive the node's actors
    auto n = test_node();
    n->spawn_supervisor(spec(restart_strategy::one_for_one, j,
                             {{"perm", P}, {"trans", T}, {"temp", X}}, 10));
    n->test()->run();
    caf::anon_send(j.live["perm"], finish_atom::value);
    n->test()->run_until_idle(1s);
    CHECK(j.starts["perm"] == 2);
    caf::anon_send(j.live["trans"], crash_atom::value);
    n->test()->run_until_idle(1s);
    CHECK(j.starts["trans"] == 2);
    caf::anon_send(j.live["trans"], finish_atom::value);
    n->test()->run_until_idle(1s);
    CHECK(j.starts["trans"] == 2);
    caf::anon_send(j.live["temp"], crash_atom::value);
    n->test()->run_until_idle(1s);
    CHECK(j.starts["temp"] == 1);
  }

  TEST_CASE("a restart waits for the backoff delay on the node's clock") {
    journal j; // declared first: it must outlive the node's actors
    auto n = test_node();
    auto sp = spec(restart_strategy::one_for_one, j, {{"a", P}});
    sp.backoff.initial = 100ms;
    n->spawn_supervisor(sp);
    n->test()->run();
    caf::anon_send(j.live["a"], crash_atom::value);
    n->test()->run();
    CHECK(j.starts["a"] == 1);
    n->test()->advance_time(99ms);
    n->test()->run();
    CHECK(j.starts["a"] == 1);
    n->test()->advance_time(1ms);
    n->test()->run();
    CHECK(j.starts["a"] == 2);
  }

  TEST_CASE("a crash storm escalates up the tree and ends, never loops forever") {
    journal j; // declared first: it must outlive the node's actors
    auto n = test_node();
    troupe::supervisor_spec inner;
    inner.name = "inner";
    inner.intensity = {3, 5s};
    inner.backoff.initial = 10ms;
    inner.backoff.jitter = 0;
    inner.children.push_back(
        troupe::worker<test_worker>("storm", P, std::string{"storm"}, &j, true));
    troupe::supervisor_spec root;
    root.name = "root";
    root.intensity = {1, 5s};
    root.backoff.initial = 10ms;
    root.backoff.jitter = 0;
    root.children.push_back(troupe::supervisor_child("inner", inner));
    root.children.push_back(
        troupe::worker<test_worker>("bystander", P, std::string{"bystander"}, &j, false));
    auto r = n->spawn_supervisor(root);
    n->test()->run_until_idle(1min);
    // inner: 1 start + 3 restarts, then escalates; root restarts inner once
    // (its limit is 1), inner storms again and escalates, root gives up.
    CHECK(j.starts["storm"] == 8);
    CHECK(j.starts["bystander"] == 1);
    CHECK(j.events.back() == "stop:bystander");
    auto failures = n->failures();
    REQUIRE(failures.size() == 1);
    CHECK(failures[0].find("supervisor root escalated") != std::string::npos);
    auto text = n->metrics().expose();
    CHECK(text.find("troupe_supervisor_escalations_total{supervisor=\"inner\"} 2") !=
          std::string::npos);
    CHECK(text.find("troupe_supervisor_escalations_total{supervisor=\"root\"} 1") !=
          std::string::npos);
    CHECK(text.find("troupe_supervisor_restarts_total{supervisor=\"root\"} 1") !=
          std::string::npos);
  }

  TEST_CASE(
      "stopping the node drains mailboxes and stops children in reverse start order") {
    journal j; // declared first: it must outlive the node's actors
    auto n = test_node();
    n->spawn_supervisor(
        spec(restart_strategy::one_for_one, j, {{"a", P}, {"b", P}, {"c", P}}));
    n->test()->run();
    for (int i = 0; i < 3; ++i)
      caf::anon_send(j.live["a"], work_atom::value);
    n->stop();
    CHECK(events_since(j, 3) == strings{"stop:c", "stop:b", "stop:a/3"});
  }

  TEST_CASE("a nested supervisor restarts independently of its parent's other children") {
    journal j; // declared first: it must outlive the node's actors
    auto n = test_node();
    auto inner = spec(restart_strategy::one_for_all, j, {{"x", P}, {"y", P}});
    inner.name = "inner";
    troupe::supervisor_spec root;
    root.name = "root";
    root.strategy = restart_strategy::one_for_one;
    root.children.push_back(
        troupe::worker<test_worker>("a", P, std::string{"a"}, &j, false));
    root.children.push_back(troupe::supervisor_child("inner", inner));
    n->spawn_supervisor(root);
    n->test()->run();
    CHECK(j.events == strings{"start:a", "start:x", "start:y"});
    caf::anon_send(j.live["y"], crash_atom::value);
    n->test()->run_until_idle(1s);
    CHECK(events_since(j, 3) == strings{"stop:y", "stop:x", "start:x", "start:y"});
    CHECK(j.starts["a"] == 1);
  }
}
