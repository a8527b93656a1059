#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/node.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;

TEST_SUITE("clock") {
  TEST_CASE("a manual clock moves only when advanced and never goes back") {
    troupe::manual_clock c{troupe::time_point{1s}};
    CHECK(c.now() == troupe::time_point{1s});
    c.advance(250ms);
    CHECK(c.now() == troupe::time_point{1250ms});
    c.advance(-5s);
    CHECK(c.now() == troupe::time_point{1250ms});
    c.set(troupe::time_point{1s});
    CHECK(c.now() == troupe::time_point{1250ms});
    c.set(troupe::time_point{3s});
    CHECK(c.now() == troupe::time_point{3s});
  }

  TEST_CASE("under the testing scheduler the node's clock is the test clock") {
    auto cfg = troupe::default_config();
    cfg.scheduler.policy = troupe::scheduler_policy::testing;
    cfg.metrics.enabled = false;
    cfg.log.level = troupe::log_level::off;
    auto started = troupe::node::start(cfg);
    REQUIRE(started.ok());
    auto& n = **started;
    auto t0 = n.clock().now();
    n.test()->advance_time(5s);
    CHECK(n.clock().now() - t0 == 5s);
    // An actor sees the same clock, and a delayed message fires only when
    // the test moves time past it.
    troupe::time_point seen{};
    int fired = 0;
    n.spawn("timer", [&](troupe::actor& self) -> troupe::behavior {
      self.delayed_send(&self, 2s, 1);
      return {[&](int) {
        ++fired;
        seen = self.clock().now();
      }};
    });
    n.test()->run();
    CHECK(fired == 0);
    n.test()->advance_time(1999ms);
    n.test()->run();
    CHECK(fired == 0);
    n.test()->advance_time(1ms);
    n.test()->run();
    CHECK(fired == 1);
    CHECK(seen - t0 == 7s);
  }
}
