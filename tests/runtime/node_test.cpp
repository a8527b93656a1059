// The embedded runtime with real scheduler threads: spawn, tell, request,
// names, stop.

#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <cstdlib>
#include <doctest/doctest.h>
#include <fstream>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

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
  cfg.metrics.latency_sample_every = 1; // time every message: exact counts below
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

struct exit_journal {
  std::mutex mu;
  std::vector<std::string> order; // guarded by mu
  int handled = 0;                // guarded by mu
};

/// Handles ints slowly and notes its exit.
class journaling_actor final : public troupe::actor {
public:
  journaling_actor(caf::actor_config& cfg, std::string id, exit_journal* j)
      : troupe::actor(cfg), id_(std::move(id)), j_(j) {}
  troupe::behavior make_behavior() override {
    return {[this](int) {
      std::this_thread::sleep_for(1ms);
      std::lock_guard<std::mutex> g{j_->mu};
      ++j_->handled;
    }};
  }
  void on_exit() override {
    std::lock_guard<std::mutex> g{j_->mu};
    j_->order.push_back(id_);
  }

private:
  std::string id_;
  exit_journal* j_;
};

} // namespace

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
    n->services(); // no-op; the actor quits asynchronously
    troupe::result<int> r = troupe::error{errc::internal, "unset"};
    for (int i = 0; i < 100; ++i) {
      r = n->request<int>(gone, 10s, get_atom::value);
      if (!r.ok() && r.err().is(errc::actor_failed)) break;
    }
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::actor_failed));
  }

  TEST_CASE("a value answering a one-way message, and a message nothing handles, end "
            "no one; a request nothing handles still fails") {
    auto n = make_node();
    // The echo answers every string, also one-way ones: its value goes back
    // to the sender as a one-way message.
    auto echo = n->spawn("echo", [](troupe::actor&) -> troupe::behavior {
      return {[](const std::string& s) { return s; }, [](get_atom) { return 7; }};
    });
    // The teller tells the echo a string and has no handler for the answer.
    auto teller = n->spawn("teller", [echo](troupe::actor& self) -> troupe::behavior {
      return {[&self, echo](add_atom, int) { self.tell(echo, std::string{"hi"}); },
              [](get_atom) { return 8; }};
    });
    for (int i = 0; i < 3; ++i)
      n->tell(teller, add_atom::value, i);
    n->tell(echo, 3.5); // one-way, nothing handles a double: dropped
    std::this_thread::sleep_for(200ms);
    auto e = n->request<int>(echo, 5s, get_atom::value);
    REQUIRE_MESSAGE(e.ok(), e.err().to_string());
    CHECK(*e == 7);
    auto t = n->request<int>(teller, 5s, get_atom::value);
    REQUIRE_MESSAGE(t.ok(), t.err().to_string());
    CHECK(*t == 8);
    // A request nothing handles gets an error, and the actor lives on.
    auto bad = n->request<int>(teller, 5s, 2.5);
    CHECK_FALSE(bad.ok());
    CHECK(n->request<int>(teller, 5s, get_atom::value).ok());
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
    // Assertions stay on the test thread: doctest is not thread-safe.
    std::atomic<bool> registered{false};
    auto registrar = n->spawn("registrar", [&](troupe::actor& self) -> troupe::behavior {
      registered = self.register_as("echo").ok();
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
    CHECK(registered);
  }

  TEST_CASE("stop drains messages already queued and stops actors in reverse order") {
    // The journal is written in on_exit, which runs before the actor's down
    // message goes out, so it is complete when stop() returns.
    exit_journal journal;
    auto n = make_node();
    auto first = n->spawn<journaling_actor>(std::string{"first"}, &journal);
    auto second = n->spawn<journaling_actor>(std::string{"second"}, &journal);
    for (int i = 0; i < 50; ++i)
      n->tell(first, i);
    n->stop();
    std::lock_guard<std::mutex> g{journal.mu};
    CHECK(journal.handled == 50);
    CHECK(journal.order == std::vector<std::string>{"second", "first"});
    static_cast<void>(second);
  }

  TEST_CASE("the runtime's metrics count handled messages per actor kind") {
    auto n = make_node();
    auto c = n->spawn<counter_actor>(0);
    for (int i = 0; i < 10; ++i)
      n->tell(c, add_atom::value, 1);
    auto v = n->request<int>(c, 5s, get_atom::value);
    REQUIRE(v.ok());
    CHECK(*v == 10);
    // The counters move right after a handler returns, which may be just
    // after the answer reached us: wait (bounded) for the last one.
    std::string text;
    for (int i = 0; i < 1000; ++i) {
      text = n->metrics().expose();
      if (text.find("troupe_actor_handler_seconds_count{kind=\"counter\"} 11") !=
          std::string::npos)
        break;
      std::this_thread::sleep_for(1ms);
    }
    CHECK(text.find("troupe_actor_messages_handled_total{kind=\"counter\"} 11") !=
          std::string::npos);
    CHECK(text.find("troupe_actor_handler_seconds_count{kind=\"counter\"} 11") !=
          std::string::npos);
    CHECK(text.find("troupe_actor_mailbox_depth{kind=\"counter\"}") != std::string::npos);
  }
}

TEST_SUITE("node metrics endpoint") {
  TEST_CASE("the node serves its own metrics over HTTP and promtool accepts them") {
    auto cfg = troupe::default_config();
    cfg.scheduler.threads = 2;
    cfg.metrics.enabled = true;
    cfg.metrics.bind = "127.0.0.1";
    cfg.metrics.port = 0;
    cfg.log.level = troupe::log_level::off;
    auto started = troupe::node::start(cfg);
    REQUIRE(started.ok());
    auto& n = **started;
    REQUIRE(n.metrics_port() != 0);
    auto spec = n.make_supervisor_spec("scrape", troupe::restart_strategy::one_for_one);
    spec.children.push_back(
        troupe::worker_fn("echo", troupe::restart_type::permanent,
                          [](troupe::actor& self) -> troupe::behavior {
                            if (!self.register_as("echo").ok()) self.quit();
                            return {[](int x) { return x; }};
                          }));
    n.spawn_supervisor(spec);
    troupe::result<troupe::actor_ref> echo = troupe::error{errc::not_found, ""};
    for (int i = 0; i < 1000 && !echo.ok(); ++i) {
      echo = n.lookup("echo");
      if (!echo.ok()) std::this_thread::sleep_for(1ms);
    }
    REQUIRE(echo.ok());
    for (int i = 0; i < 20; ++i)
      REQUIRE(n.request<int>(*echo, 5s, i).ok());
    // Counters move just after a handler returns: wait (bounded) for the last.
    for (int i = 0; i < 1000; ++i) {
      if (n.metrics().expose().find(
              "troupe_actor_messages_handled_total{kind=\"echo\"} 20") !=
          std::string::npos)
        break;
      std::this_thread::sleep_for(1ms);
    }

    // Scrape over HTTP with a plain socket.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(n.metrics_port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string req =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    REQUIRE(::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
    std::string resp;
    char buf[4096];
    for (ssize_t k; (k = ::read(fd, buf, sizeof buf)) > 0;)
      resp.append(buf, static_cast<size_t>(k));
    ::close(fd);
    CHECK(resp.rfind("HTTP/1.1 200", 0) == 0);
    auto body = resp.substr(resp.find("\r\n\r\n") + 4);
    CHECK(body.find("troupe_actor_messages_handled_total{kind=\"echo\"} 20") !=
          std::string::npos);
    CHECK(body.find("troupe_supervisor_restarts_total{supervisor=\"scrape\"} 0") !=
          std::string::npos);

    // promtool must accept the runtime's own exposition; a missing promtool
    // fails the test.
    auto path = "/tmp/troupe-node-metrics-" + std::to_string(::getpid()) + ".prom";
    {
      std::ofstream out{path};
      out << body;
    }
    int rc = std::system(
        ("promtool check metrics < " + path + " > " + path + ".out 2>&1").c_str());
    std::ifstream lint{path + ".out"};
    std::string lint_text((std::istreambuf_iterator<char>(lint)),
                          std::istreambuf_iterator<char>());
    INFO("promtool: " << lint_text);
    CHECK(WIFEXITED(rc));
    CHECK(WEXITSTATUS(rc) == 0);
    std::remove(path.c_str());
    std::remove((path + ".out").c_str());
  }
}
