// The membership actor over the real fabric: a head and two workers in one
// process on loopback. Workers join (with their inventory) and come up and
// connect to each other; cordon and drain; a worker whose heartbeats and
// answers stop while its connection stays up is suspect, then down because
// the other worker's indirect probe fails, and comes back as a new
// incarnation; a worker whose transport goes away is down by the transport
// error.

#include "troupe/actors/inventory.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/actors/registry_actor.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <doctest/doctest.h>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace troupe::actors;
using troupe::transport::fabric;

namespace {

std::string unique_name(const char* base) {
  static std::atomic<int> n{0};
  return std::string{base} + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

membership_config fast_config() {
  membership_config c;
  c.heartbeat_interval = 100ms;
  c.acceptable_pause = 300ms;
  c.suspect_timeout = 3s; // so the probes decide (they answer within 500 ms)
  c.probe_timeout = 500ms;
  c.first_heartbeat_estimate = 100ms;
  c.min_std_dev = 20ms;
  return c;
}

/// One node with its fabric and membership actor.
struct member_node {
  std::unique_ptr<troupe::node> node;
  std::unique_ptr<fabric> fab;
  troupe::actor_ref membership;

  member_node(const std::string& name, const membership_actor_config& mc) {
    auto cfg = troupe::default_config();
    cfg.node.name = name;
    cfg.scheduler.threads = 2;
    cfg.metrics.enabled = false;
    cfg.log.level =
        std::getenv("TROUPE_TEST_LOG") ? troupe::log_level::info : troupe::log_level::off;
    auto n = troupe::node::start(cfg);
    REQUIRE(n.ok());
    node = std::move(*n);
    ::setenv("UCX_NET_DEVICES", "lo", 0);
    troupe::transport::transport_config tc;
    tc.listen = "127.0.0.1:0";
    tc.secret = "membership test secret, long enough";
    if (const char* tls = std::getenv("TROUPE_TEST_UCX_TLS")) tc.transports = tls;
    auto f = fabric::start(*node, tc);
    REQUIRE_MESSAGE(f.ok(), f.err().to_string());
    fab = std::move(*f);
    auto m = start_membership(*node, *fab, mc);
    REQUIRE_MESSAGE(m.ok(), m.err().to_string());
    membership = *m;
  }
  void stop() {
    if (!node) return;
    node->stop();
    fab.reset();
    // A handle to a detached actor keeps CAF waiting for its thread in the
    // actor system's destructor: drop it first.
    membership = troupe::actor_ref{};
    node.reset();
  }
  ~member_node() { stop(); }
};

/// Collects the head's membership events.
struct event_log {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<nlohmann::json> events; // guarded by mu

  /// Waits until an event of `kind` for `node` (after `from`) arrives.
  std::optional<nlohmann::json> wait(const std::string& kind, const std::string& node,
                                     std::chrono::milliseconds timeout, size_t from = 0) {
    std::unique_lock<std::mutex> g{mu};
    std::optional<nlohmann::json> found;
    cv.wait_for(g, timeout, [&] {
      for (size_t i = from; i < events.size(); ++i)
        if (events[i]["kind"] == kind && events[i]["node"] == node) {
          found = events[i];
          return true;
        }
      return false;
    });
    return found;
  }
  size_t size() {
    std::lock_guard<std::mutex> g{mu};
    return events.size();
  }
  size_t count(const std::string& kind, const std::string& node) {
    std::lock_guard<std::mutex> g{mu};
    size_t n = 0;
    for (const auto& e : events)
      n += e["kind"] == kind && e["node"] == node;
    return n;
  }
};

} // namespace

TEST_CASE("membership over the fabric: join, cordon, silent worker, lost worker") {
  membership_actor_config head_cfg;
  head_cfg.membership = fast_config();
  head_cfg.head = true;
  auto head_name = unique_name("head");
  member_node head{head_name, head_cfg};

  auto log = std::make_shared<event_log>();
  auto sub = head.node->spawn("subscriber", [log](troupe::actor&) -> troupe::behavior {
    return {[log](event_atom, const std::string& text) {
      std::lock_guard<std::mutex> g{log->mu};
      log->events.push_back(nlohmann::json::parse(text));
      log->cv.notify_all();
    }};
  });
  auto snapshot = head.node->request<std::string>(head.membership, 5s,
                                                  subscribe_atom::value, sub.handle());
  REQUIRE_MESSAGE(snapshot.ok(), snapshot.err().to_string());
  CHECK(nlohmann::json::parse(*snapshot).size() == 1); // the head itself

  membership_actor_config wc;
  wc.membership = fast_config();
  wc.head_name = head_name;
  wc.head_address = head.fab->listen_address();
  auto w1_name = unique_name("w1");
  auto w2_name = unique_name("w2");
  // w1 reports a simulated 8-GPU node; w2 reports nothing.
  resources_section sim;
  sim.discovery = gpu_discovery::simulated;
  sim.simulated_gpus = 8;
  sim.gpu_model = "H100-80GB";
  auto inv = discover_inventory(sim, w1_name, troupe::env_map{});
  REQUIRE_MESSAGE(inv.ok(), inv.err().to_string());
  auto wc1 = wc;
  wc1.inventory_json = encode_inventory(*inv);
  member_node w1{w1_name, wc1};
  member_node w2{w2_name, wc};

  REQUIRE(log->wait("up", w1_name, 10s));
  REQUIRE(log->wait("up", w2_name, 10s));
  auto members =
      head.node->request<std::string>(head.membership, 5s, members_atom::value);
  REQUIRE(members.ok());
  auto list = nlohmann::json::parse(*members);
  CHECK(list.size() == 3);
  for (const auto& m : list) {
    CHECK(m["state"] == "up");
    // The head learnt w1's resources from its join.
    if (m["node"] == w1_name) {
      REQUIRE(m.contains("inventory"));
      CHECK(m["inventory"]["gpus"].size() == 8);
    } else {
      CHECK_FALSE(m.contains("inventory"));
    }
  }

  // A join with a hostile inventory is refused with the decoder's reason.
  {
    caf::scoped_actor self{head.node->system()};
    self->send(head.membership.handle(), join_atom::value, std::string{"intruder"},
               std::string{"127.0.0.1:1"}, uint64_t{7},
               std::string{R"({"node":"intruder","gpus":[{"index":-1}]})"});
    bool refused = false;
    self->receive(
        [&](refused_atom, const std::string& why) {
          refused = true;
          MESSAGE("refused: " << why);
          CHECK(why.find("inventory") != std::string::npos);
        },
        [&](joined_atom, const std::string&) { FAIL("a bad inventory was accepted"); },
        caf::after(std::chrono::seconds{5}) >> [&] { FAIL("no answer"); });
    CHECK(refused);
  }

  // Bad input gets clear errors.
  auto wrong = head.node->request<bool>(head.membership, 5s, cordon_atom::value,
                                        std::string{"nobody"});
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.err().to_string().find("nobody") != std::string::npos);
  auto not_head = w1.node->request<bool>(w1.membership, 5s, cordon_atom::value, w2_name);
  REQUIRE_FALSE(not_head.ok());

  // Cordon and drain.
  REQUIRE(
      head.node->request<bool>(head.membership, 5s, cordon_atom::value, w2_name).ok());
  REQUIRE(log->wait("cordoned", w2_name, 5s));
  REQUIRE(head.node->request<bool>(head.membership, 5s, drain_atom::value, w2_name).ok());
  REQUIRE(log->wait("draining", w2_name, 5s));

  // The workers connect to each other (the mesh the probes use).
  auto connected = [](member_node& from, const std::string& to) {
    for (int i = 0; i < 100; ++i) {
      for (const auto& p : from.fab->peers())
        if (p.up && p.node_name == to) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  };
  REQUIRE(connected(w1, w2_name));
  REQUIRE(connected(w2, w1_name));
  std::this_thread::sleep_for(
      500ms); // a few ticks: each finds the other's membership actor

  // w1 stops its heartbeats and answers no pings while its connection stays
  // up (as a SIGSTOPped process would): suspect, then down because w2's
  // indirect probe fails; once it speaks again the head makes it join as a
  // new incarnation.
  size_t mark = log->size();
  auto first_inc = log->wait("up", w1_name, 1s)->at("incarnation").get<uint64_t>();
  w1.node->tell(w1.membership, pause_atom::value, int64_t{3000});
  auto suspect = log->wait("suspect", w1_name, 5s, mark);
  REQUIRE(suspect);
  CHECK(suspect->at("phi").get<double>() > fast_config().phi_threshold);
  auto down = log->wait("down", w1_name, 5s, mark);
  REQUIRE(down);
  CHECK(down->at("reason") == "probes_failed");
  auto back = log->wait("rejoined", w1_name, 10s, mark);
  REQUIRE(back);
  CHECK(back->at("incarnation").get<uint64_t>() > first_inc);
  REQUIRE(log->wait("up", w1_name, 5s, mark + 1));
  CHECK(log->count("down", w2_name) == 0); // the other worker never flickered

  // w2's node and transport go away: down by the transport error.
  mark = log->size();
  auto t0 = std::chrono::steady_clock::now();
  w2.stop();
  auto lost = log->wait("down", w2_name, 10s, mark);
  REQUIRE(lost);
  CHECK(lost->at("reason") == "transport_error");
  MESSAGE("transport loss to down: "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - t0)
                 .count()
          << " ms (detection bound "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
                 detection_bound(fast_config()))
                 .count()
          << " ms)");
  CHECK(log->count("down", w1_name) == 1);
}

TEST_CASE("a head alone starts and stops") {
  membership_actor_config head_cfg;
  head_cfg.membership = fast_config();
  head_cfg.head = true;
  member_node head{unique_name("head"), head_cfg};
  auto members =
      head.node->request<std::string>(head.membership, 5s, members_atom::value);
  REQUIRE(members.ok());
  head.stop();
}

TEST_CASE("cluster registry: register on one worker, look up from another, entries go "
          "with their node") {
  using get_atom = caf::atom_constant<caf::atom("get")>;
  membership_actor_config head_cfg;
  head_cfg.membership = fast_config();
  head_cfg.head = true;
  auto head_name = unique_name("rhead");
  member_node head{head_name, head_cfg};
  auto reg = start_registry(*head.node, *head.fab);
  REQUIRE_MESSAGE(reg.ok(), reg.err().to_string());

  membership_actor_config wc;
  wc.membership = fast_config();
  wc.head_name = head_name;
  wc.head_address = head.fab->listen_address();
  auto w1_name = unique_name("rw1");
  auto w2_name = unique_name("rw2");
  member_node w1{w1_name, wc};
  member_node w2{w2_name, wc};

  // An actor on w1 registered cluster-wide (retried until w1 has joined).
  auto svc = w1.node->spawn("svc", [](troupe::actor&) -> troupe::behavior {
    return {[](get_atom) { return std::string{"from w1"}; }};
  });
  troupe::result<void> put = troupe::error{troupe::runtime::errc::timeout, "not tried"};
  for (int i = 0; i < 100 && !put.ok(); ++i) {
    put = register_cluster_name(*w1.node, *w1.fab, head_name, "svc", svc, 2s);
    if (!put.ok()) std::this_thread::sleep_for(100ms);
  }
  REQUIRE_MESSAGE(put.ok(), put.err().to_string());
  // Registering the name again for another actor is refused.
  auto other = w2.node->spawn("other", [](troupe::actor&) -> troupe::behavior {
    return {[](get_atom) { return std::string{"from w2"}; }};
  });
  std::optional<troupe::error> taken;
  for (int i = 0; i < 100; ++i) {
    auto r = register_cluster_name(*w2.node, *w2.fab, head_name, "svc", other, 2s);
    if (!r.ok() && r.err().is(troupe::runtime::errc::already_exists)) {
      taken = r.err();
      break;
    }
    std::this_thread::sleep_for(100ms); // w2 may not be connected yet
  }
  REQUIRE(taken);
  CHECK(taken->message().find("taken") != std::string::npos);

  // Looked up from w2 (through the head), then called directly (mesh).
  std::optional<troupe::actor_ref> found;
  for (int i = 0; i < 100 && !found; ++i) {
    auto r = lookup_cluster_name(*w2.node, *w2.fab, head_name, "svc", 2s);
    if (r.ok()) {
      auto answer = w2.node->request<std::string>(*r, 2s, get_atom::value);
      if (answer.ok()) {
        CHECK(*answer == "from w1");
        found = *r;
      }
    }
    if (!found) std::this_thread::sleep_for(100ms); // the mesh may still be forming
  }
  REQUIRE(found);
  auto missing = lookup_cluster_name(*w2.node, *w2.fab, head_name, "nobody", 2s);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.err().is(troupe::runtime::errc::not_found));

  // A watcher on w2; w1 goes away: the entry goes and the watcher is told.
  auto gone = std::make_shared<std::promise<std::string>>();
  auto watcher = w2.node->spawn("watcher", [gone](troupe::actor&) -> troupe::behavior {
    return {[gone](reg_gone_atom, const std::string& name, const std::string& why) {
      gone->set_value(name + " " + why);
    }};
  });
  auto reg_ref = w2.fab->lookup(head_name, registry_actor_name, 2s);
  REQUIRE(reg_ref.ok());
  REQUIRE(w2.node
              ->request<bool>(*reg_ref, 2s, reg_watch_atom::value, std::string{"svc"},
                              watcher.handle())
              .ok());
  auto fut = gone->get_future();
  svc = troupe::actor_ref{};
  w1.stop();
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  auto told = fut.get();
  MESSAGE("watcher told: " << told);
  CHECK(told.rfind("svc ", 0) == 0);
  auto after = lookup_cluster_name(*w2.node, *w2.fab, head_name, "svc", 2s);
  REQUIRE_FALSE(after.ok());
  CHECK(after.err().is(troupe::runtime::errc::not_found));
}
