// The restart decision: never, on-failure with max_restarts, always,
// node loss, exponential backoff with its cap and its reset after a long
// healthy run.

#include "troupe/actors/restart_policy.hpp"

#include <chrono>
#include <csignal>
#include <doctest/doctest.h>

using namespace std::chrono_literals;
using namespace troupe::actors;
using troupe::duration;

namespace {

restart_policy policy(restart_mode m, uint32_t max = 0) {
  restart_policy p;
  p.mode = m;
  p.max_restarts = max;
  p.backoff = {1s, 30s, 2, 10min};
  return p;
}

} // namespace

TEST_SUITE("restart_policy") {

  TEST_CASE("never gives up on every end, node loss too") {
    auto p = policy(restart_mode::never);
    for (auto e : {replica_exit::exited(0), replica_exit::exited(1),
                   replica_exit::signaled(SIGKILL), replica_exit::node_lost()}) {
      auto d = decide_restart(p, e, 0, 1s);
      CHECK(d.action == restart_action::give_up);
      CHECK(d.reason.find("restart policy never") != std::string::npos);
    }
  }

  TEST_CASE("on-failure restarts failures, not successes, up to max_restarts") {
    auto p = policy(restart_mode::on_failure, 2);
    auto ok = decide_restart(p, replica_exit::exited(0), 0, 1s);
    CHECK(ok.action == restart_action::give_up);
    CHECK(ok.reason == "exited with status 0; succeeded, restart policy on-failure");

    auto first = decide_restart(p, replica_exit::exited(3), 0, 1s);
    CHECK(first.action == restart_action::restart_after_backoff);
    CHECK(first.delay == 1s);
    CHECK(first.counts);
    CHECK(first.reason == "exited with status 3; restart 1 of 2 after 1s");

    auto second = decide_restart(p, replica_exit::signaled(SIGSEGV), 1, 1s);
    CHECK(second.action == restart_action::restart_after_backoff);
    CHECK(second.delay == 2s);
    CHECK(second.reason == "killed by SIGSEGV; restart 2 of 2 after 2s");

    auto third = decide_restart(p, replica_exit::exited(3), 2, 1s);
    CHECK(third.action == restart_action::give_up);
    CHECK(third.reason == "exited with status 3; gave up after 2 of 2 restarts");
  }

  TEST_CASE("on-failure with max_restarts 0 never restarts a failure") {
    auto d = decide_restart(policy(restart_mode::on_failure, 0), replica_exit::exited(1),
                            0, 1s);
    CHECK(d.action == restart_action::give_up);
  }

  TEST_CASE("always restarts successes too; 0 means no limit") {
    auto p = policy(restart_mode::always, 0);
    auto d = decide_restart(p, replica_exit::exited(0), 1000, 1s);
    CHECK(d.action == restart_action::restart_after_backoff);
    CHECK(d.delay == 30s); // capped
    auto limited = policy(restart_mode::always, 1);
    CHECK(decide_restart(limited, replica_exit::exited(0), 1, 1s).action ==
          restart_action::give_up);
  }

  TEST_CASE("node loss restarts at once and does not count") {
    for (auto m : {restart_mode::on_failure, restart_mode::always}) {
      auto d = decide_restart(policy(m, 1), replica_exit::node_lost(), 5, 1s);
      CHECK(d.action == restart_action::restart_now);
      CHECK_FALSE(d.counts);
      CHECK(d.delay == duration{0});
    }
  }

  TEST_CASE("backoff doubles up to its cap and resets after a long healthy run") {
    backoff_policy b{1s, 30s, 2, 10min};
    CHECK(backoff_delay(b, 0) == 1s);
    CHECK(backoff_delay(b, 1) == 2s);
    CHECK(backoff_delay(b, 4) == 16s);
    CHECK(backoff_delay(b, 5) == 30s);
    CHECK(backoff_delay(b, 4000000000u) == 30s); // no overflow
    auto p = policy(restart_mode::always);
    CHECK(decide_restart(p, replica_exit::exited(1), 4, 9min).delay == 16s);
    CHECK(decide_restart(p, replica_exit::exited(1), 4, 10min).delay == 1s);
  }

  TEST_CASE("a zero initial backoff restarts now") {
    auto p = policy(restart_mode::always);
    p.backoff.initial = duration{0};
    auto d = decide_restart(p, replica_exit::exited(1), 3, 1s);
    CHECK(d.action == restart_action::restart_now);
    CHECK(d.reason == "exited with status 1; restart 4 now");
  }

  TEST_CASE("a multiplier of 1 keeps the delay constant") {
    backoff_policy b{3s, 1min, 1, 10min};
    CHECK(backoff_delay(b, 0) == 3s);
    CHECK(backoff_delay(b, 50) == 3s);
  }

} // TEST_SUITE
