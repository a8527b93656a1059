// The embedded runtime with real scheduler threads: spawn, tell, request,
// names, stop.

#include <doctest/doctest.h>

#include <atomic>
#include <string>

#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"

using namespace std::chrono_literals;
using troupe::actor_ref;
using troupe::runtime::errc;

namespace {

using add_atom = caf::atom_constant<caf::atom("add")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using sleep_atom = caf::atom_constant<caf::atom("sleep")>;

std::unique_ptr<troupe::node> make_node() {
  auto cfg = troupe::default_config();
  cfg.scheduler.threads = 2;
  cfg.metrics.enabled = false;
  cfg.log.level = troupe::log_level::off;
  auto n = troupe::node::start(cfg);
  REQUIRE(n.ok());
  return std::move(*n);
}

/// A class-based actor: a counter.
class counter_actor final : public troupe::actor {
 public:
  counter_actor(caf::actor_config& cfg, int start) : troupe::actor(cfg), value_(start) {}
  const char* name() const override { return "counter"; }
  troupe::behavior make_behavior() override {
    return {
        [this](add_atom, int x) { value_ += x; },
        [this](get_atom) { return value_; },
    };
  }

 private:
  int value_;
};

}  // namespace

TEST_SUITE("node") {
  TEST_CASE("class-based and function-based actors answer requests") {
    auto n = make_node();
    auto c = n->spawn<counter_actor>(10);
    n->tell(c, add_atom::value, 5);
    auto v = n->request<int>(c, 5s, get_atom::value);
    REQUIRE(v.ok());
    CHECK(*v == 15);
    auto doubler = n->spawn("doubler", [](troupe::actor&) -> troupe::behavior {
      return {[](int x) { return 2 * x; }};
    });
    auto d = n->request<int>(doubler, 5s, 21);
    REQUIRE(d.ok());
    CHECK(*d == 42);
  }

  TEST_CASE("a request that gets no answer in time fails with timeout") {
    auto n = make_node();
    auto silent = n->spawn("silent", [](troupe::actor& self) -> troupe::behavior {
      return {[&self](int) -> caf::result<int> {
        // Never deliver: keep the promise in the actor.
        auto rp = self.make_response_promise<int>();
        static_cast<void>(rp);
        return caf::delegated<int>{};
      }};
    });
    auto r = n->request<int>(silent, 50ms, 1);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::timeout));
  }

  TEST_CASE("a request to an actor that has exited fails fast with actor_failed") {
    auto n = make_node();
    auto gone = n->spawn("gone", [](troupe::actor& self) -> troupe::behavior {
      return {[&self](int) { self.quit(); }};
    });
    n->tell(gone, 1);
    n->services();  // no-op; the actor quits asynchronously
    troupe::result<int> r = troupe::error{errc::internal, "unset"};
    for (int i = 0; i < 100; ++i) {
      r = n->request<int>(gone, 10s, get_atom::value);
      if (!r.ok() && r.err().is(errc::actor_failed)) break;
    }
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::actor_failed));
  }

  TEST_CASE("a wrong answer type is reported, not crashed on") {
    auto n = make_node();
    auto c = n->spawn<counter_actor>(1);
    auto r = n->request<std::string>(c, 5s, get_atom::value);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::invalid_argument));
  }

  TEST_CASE("names register, resolve, refuse duplicates and vanish with the actor") {
    auto n = make_node();
    auto c = n->spawn<counter_actor>(0);
    REQUIRE(n->register_name("counter", c).ok());
    auto again = n->register_name("counter", n->spawn<counter_actor>(0));
    REQUIRE_FALSE(again.ok());
    CHECK(again.err().is(errc::already_exists));
    auto found = n->lookup("counter");
    REQUIRE(found.ok());
    CHECK(*found == c);
    CHECK(n->lookup("nobody").err().is(errc::not_found));
    caf::anon_send_exit(c.handle(), caf::exit_reason::user_shutdown);
    bool gone = false;
    for (int i = 0; i < 500 && !gone; ++i) {
      gone = !n->lookup("counter").ok();
      if (!gone) std::this_thread::sleep_for(2ms);
    }
    CHECK(gone);
  }

  TEST_CASE("an actor registers itself and another finds it by name") {
    auto n = make_node();
    auto registrar = n->spawn("registrar", [](troupe::actor& self) -> troupe::behavior {
      auto r = self.register_as("echo");
      REQUIRE(r.ok());
      return {[](const std::string& s) { return s; }};
    });
    auto asker = n->spawn("asker", [](troupe::actor& self) -> troupe::behavior {
      return {[&self](get_atom) -> caf::result<std::string> {
        auto echo = self.lookup("echo");
        if (!echo.ok()) return caf::make_error(caf::sec::invalid_argument, "no echo");
        self.delegate(*echo, std::string{"hello"});
        return caf::delegated<std::string>{};
      }};
    });
    static_cast<void>(registrar);
    std::string got;
    for (int i = 0; i < 100 && got.empty(); ++i) {
      auto r = n->request<std::string>(asker, 5s, get_atom::value);
      if (r.ok()) got = *r;
    }
    CHECK(got == "hello");
  }

  TEST_CASE("stop drains messages already queued and stops actors in reverse order") {
    auto n = make_node();
    std::vector<std::string> order;
    std::mutex mu;
    std::atomic<int> handled{0};
    auto make = [&](std::string id) {
      return n->spawn(id, [&, id](troupe::actor& self) -> troupe::behavior {
        self.attach_functor([&, id] {
          std::lock_guard<std::mutex> g{mu};
          order.push_back(id);
        });
        return {[&](int) {
          std::this_thread::sleep_for(1ms);
          ++handled;
        }};
      });
    };
    auto first = make("first");
    auto second = make("second");
    for (int i = 0; i < 50; ++i) n->tell(first, i);
    n->stop();
    CHECK(handled == 50);
    CHECK(order == std::vector<std::string>{"second", "first"});
    static_cast<void>(second);
  }

  TEST_CASE("the runtime's metrics count handled messages per actor kind") {
    auto n = make_node();
    auto c = n->spawn<counter_actor>(0);
    for (int i = 0; i < 10; ++i) n->tell(c, add_atom::value, 1);
    auto v = n->request<int>(c, 5s, get_atom::value);
    REQUIRE(v.ok());
    CHECK(*v == 10);
    auto text = n->metrics().expose();
    CHECK(text.find("troupe_actor_messages_handled_total{kind=\"counter\"} 11") !=
          std::string::npos);
    CHECK(text.find("troupe_actor_handler_seconds_count{kind=\"counter\"} 11") !=
          std::string::npos);
    CHECK(text.find("troupe_actor_mailbox_depth{kind=\"counter\"}") != std::string::npos);
  }
}
