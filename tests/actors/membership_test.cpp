// The membership table on simulated time: joining, up, leave, the three
// second signals that turn a suspect member down within detection_bound,
// recovery, incarnations, cordon and drain, hostile input, a seeded soak
// with jitter and pauses, and the [membership] config section.

#include "troupe/actors/membership.hpp"
#include "troupe/transport/wire.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <doctest/doctest.h>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using troupe::duration;
using troupe::time_point;
using namespace troupe::actors;

namespace {

time_point at(duration d) {
  return time_point{} + d;
}

std::uint64_t id_of(const std::string& name) {
  return troupe::transport::node_id_of(name);
}

std::vector<event_kind> kinds(const membership_events& evs) {
  std::vector<event_kind> out;
  for (const auto& e : evs)
    out.push_back(e.kind);
  return out;
}

/// A table with some nodes that heartbeat every heartbeat_interval on a
/// shared simulated clock, ticked every `tick_every`. Nodes in `silent`
/// send nothing. Records every event.
struct cluster {
  explicit cluster(membership_config c = {}, std::uint64_t local = 0)
      : table(c, local), config(c) {}

  membership_table table;
  membership_config config;
  duration now = 0ns;
  duration tick_every = 100ms;
  std::map<std::string, std::uint64_t> incarnation;
  std::map<std::string, duration> next_beat;
  std::map<std::string, duration> last_beat;
  std::vector<std::string> silent;
  std::vector<membership_event> events;
  std::vector<probe_request> probes;

  void join(const std::string& name, std::uint64_t inc = 1) {
    auto r = table.join(name, name + ":7000", inc, at(now));
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string{} : r.err().to_string()));
    events.insert(events.end(), r->begin(), r->end());
    incarnation[name] = inc;
    next_beat[name] = now;
  }

  bool is_silent(const std::string& name) const {
    return std::find(silent.begin(), silent.end(), name) != silent.end();
  }

  /// Runs until `until`, in steps of 10 ms.
  void run_until(duration until) {
    while (now < until) {
      now += 10ms;
      for (auto& [name, next] : next_beat) {
        if (is_silent(name) || now < next) continue;
        auto r = table.heartbeat(id_of(name), incarnation[name], at(now));
        if (r) {
          events.insert(events.end(), r->begin(), r->end());
          last_beat[name] = now;
        }
        next = now + config.heartbeat_interval;
      }
      if (now.count() % tick_every.count() == 0) tick();
    }
  }

  void run_for(duration d) { run_until(now + d); }

  /// Keeps the events of a call made directly on the table.
  void record(const membership_events& evs) {
    events.insert(events.end(), evs.begin(), evs.end());
  }

  tick_output tick() {
    auto out = table.tick(at(now));
    events.insert(events.end(), out.events.begin(), out.events.end());
    probes.insert(probes.end(), out.probes.begin(), out.probes.end());
    return out;
  }

  /// The first event of `kind` for `name`, or nullptr.
  const membership_event* first(event_kind kind, const std::string& name) const {
    for (const auto& e : events)
      if (e.kind == kind && e.name == name) return &e;
    return nullptr;
  }

  std::size_t count(event_kind kind) const {
    return static_cast<std::size_t>(std::count_if(
        events.begin(), events.end(), [kind](const auto& e) { return e.kind == kind; }));
  }

  member_state state(const std::string& name) const {
    const auto* m = table.find(name);
    REQUIRE(m != nullptr);
    return m->state;
  }
};

/// Four nodes a, b, c, d up and heartbeating for 30 s.
cluster four_nodes(membership_config c = {}) {
  cluster cl{c};
  for (const char* n : {"a", "b", "c", "d"})
    cl.join(n);
  cl.run_for(30s);
  return cl;
}

} // namespace

TEST_SUITE("membership") {

  TEST_CASE("a joining node is up after its first heartbeat") {
    membership_table t{membership_config{}};
    auto j = t.join("worker-1", "10.0.0.1:7000", 3, at(1s));
    REQUIRE(j.ok());
    REQUIRE(j->size() == 1);
    const auto& ev = j->front();
    CHECK(ev.kind == event_kind::joined);
    CHECK(ev.name == "worker-1");
    CHECK(ev.node == id_of("worker-1"));
    CHECK(ev.address == "10.0.0.1:7000");
    CHECK(ev.incarnation == 3);
    CHECK(ev.at == at(1s));
    CHECK(t.find("worker-1")->state == member_state::joining);
    CHECK(t.find(id_of("worker-1"))->name == "worker-1");
    CHECK(t.find("worker-2") == nullptr);

    // A retried join changes nothing.
    auto again = t.join("worker-1", "10.0.0.1:7000", 3, at(1100ms));
    REQUIRE(again.ok());
    CHECK(again->empty());

    auto hb = t.heartbeat(id_of("worker-1"), 3, at(1500ms));
    REQUIRE(hb.ok());
    CHECK(kinds(*hb) == std::vector{event_kind::up});
    CHECK(t.find("worker-1")->state == member_state::up);
    CHECK(t.find("worker-1")->since == at(1500ms));
    auto hb2 = t.heartbeat(id_of("worker-1"), 3, at(2s));
    REQUIRE(hb2.ok());
    CHECK(hb2->empty());
    CHECK(t.count(member_state::up) == 1);
  }

  TEST_CASE("the local node is up at once and never suspected") {
    membership_table t{membership_config{}, id_of("head")};
    auto j = t.join("head", "127.0.0.1:7000", 1, at(0s));
    REQUIRE(j.ok());
    CHECK(kinds(*j) == std::vector{event_kind::joined, event_kind::up});
    auto out = t.tick(at(1h));
    CHECK(out.events.empty());
    CHECK(t.find("head")->state == member_state::up);
    CHECK(t.phi(id_of("head"), at(1h)) == 0.0);
  }

  TEST_CASE("a graceful leave makes the member left, and it stays out") {
    cluster cl = four_nodes();
    auto r = cl.table.leave(id_of("b"), 1, at(cl.now));
    REQUIRE(r.ok());
    CHECK(kinds(*r) == std::vector{event_kind::left});
    CHECK(cl.state("b") == member_state::left);
    auto twice = cl.table.leave(id_of("b"), 1, at(cl.now));
    REQUIRE(twice.ok());
    CHECK(twice->empty());
    // Its late heartbeats are stale and a left node is never suspected.
    auto hb = cl.table.heartbeat(id_of("b"), 1, at(cl.now));
    REQUIRE_FALSE(hb.ok());
    CHECK(hb.err().is(errc::conflict));
    cl.silent = {"b"};
    cl.run_for(60s);
    CHECK(cl.state("b") == member_state::left);
    CHECK(cl.count(event_kind::suspect) == 0);
    CHECK(cl.count(event_kind::down) == 0);
  }

  TEST_CASE("a silent node is suspect, then down when every prober fails to reach it") {
    cluster cl = four_nodes();
    const auto last = cl.last_beat["d"];
    cl.silent = {"d"};
    cl.probes.clear();
    // Run until d is suspect.
    while (cl.state("d") != member_state::suspect && cl.now < last + 60s)
      cl.run_for(10ms);
    REQUIRE(cl.state("d") == member_state::suspect);
    const auto* sus = cl.first(event_kind::suspect, "d");
    REQUIRE(sus != nullptr);
    CHECK(sus->phi >= 8.0);
    // With regular heartbeats: 0.5 + 1 + 0.1 * 5.226 = 2.02 s, plus a tick.
    CHECK(sus->at >= at(last + 2020ms));
    CHECK(sus->at <= at(last + 2130ms));
    CHECK(cl.state("a") == member_state::up);

    REQUIRE(cl.probes.size() == 1);
    const auto req = cl.probes.front();
    CHECK(req.target == id_of("d"));
    CHECK(req.incarnation == 1);
    CHECK(req.deadline == sus->at + cl.config.probe_timeout);
    std::vector<std::uint64_t> others{id_of("a"), id_of("b"), id_of("c")};
    std::sort(others.begin(), others.end());
    CHECK(req.probers == others); // k = 3, exactly the three others

    // Two failures are not enough; a repeated answer counts once.
    for (std::size_t i = 0; i < 2; ++i) {
      auto r = cl.table.probe_result(req.probers[i], id_of("d"), 1, false, at(cl.now));
      REQUIRE(r.ok());
      CHECK(r->empty());
    }
    auto dup = cl.table.probe_result(req.probers[0], id_of("d"), 1, false, at(cl.now));
    REQUIRE(dup.ok());
    CHECK(dup->empty());
    CHECK(cl.state("d") == member_state::suspect);
    cl.run_for(500ms);
    auto r = cl.table.probe_result(req.probers[2], id_of("d"), 1, false, at(cl.now));
    REQUIRE(r.ok());
    REQUIRE(kinds(*r) == std::vector{event_kind::down});
    CHECK(r->front().reason == down_reason::probes_failed);
    CHECK(cl.table.find("d")->reason == down_reason::probes_failed);
    CHECK(cl.now <= last + detection_bound(cl.config));
    cl.record(*r);
    // Nobody else was touched.
    cl.run_for(30s);
    CHECK(cl.count(event_kind::down) == 1);
    CHECK(cl.table.count(member_state::up) == 3);
  }

  TEST_CASE(
      "a transport error seen before the suspicion makes the suspect down at once") {
    cluster cl = four_nodes();
    const auto last = cl.last_beat["d"];
    cl.silent = {"d"};
    cl.run_for(100ms);
    // SIGKILL: the connection fails right away; alone it is not enough.
    auto r = cl.table.transport_error(id_of("d"), 1, at(cl.now));
    REQUIRE(r.ok());
    CHECK(r->empty());
    CHECK(cl.state("d") == member_state::up);
    cl.probes.clear();
    while (cl.state("d") == member_state::up && cl.now < last + 60s)
      cl.run_for(10ms);
    const auto* sus = cl.first(event_kind::suspect, "d");
    const auto* down = cl.first(event_kind::down, "d");
    REQUIRE(sus != nullptr);
    REQUIRE(down != nullptr);
    CHECK(down->at == sus->at); // the same tick
    CHECK(down->reason == down_reason::transport_error);
    CHECK(cl.probes.empty()); // nothing left to probe
    CHECK(down->at - at(last) < 2200ms);
  }

  TEST_CASE("a transport error during the suspicion makes the suspect down at once") {
    cluster cl = four_nodes();
    cl.silent = {"d"};
    while (cl.state("d") != member_state::suspect)
      cl.run_for(10ms);
    cl.run_for(300ms);
    auto r = cl.table.transport_error(id_of("d"), 1, at(cl.now));
    REQUIRE(r.ok());
    REQUIRE(kinds(*r) == std::vector{event_kind::down});
    CHECK(r->front().reason == down_reason::transport_error);
    // Later errors on the ended generation are ignored.
    auto again = cl.table.transport_error(id_of("d"), 1, at(cl.now));
    REQUIRE(again.ok());
    CHECK(again->empty());
  }

  TEST_CASE("a heartbeat after a transport error clears it") {
    cluster cl = four_nodes();
    REQUIRE(cl.table.transport_error(id_of("d"), 1, at(cl.now)).ok());
    cl.run_for(2s); // d reconnected and heartbeats
    cl.silent = {"d"};
    while (cl.state("d") == member_state::up)
      cl.run_for(10ms);
    CHECK(cl.state("d") == member_state::suspect); // not down: the error was forgiven
  }

  TEST_CASE(
      "with nobody to probe through, the suspect timeout decides within the bound") {
    // The table's own node a and one other: nobody to probe through.
    cluster cl{membership_config{}, id_of("a")};
    cl.join("a");
    cl.join("b");
    cl.run_for(30s);
    const auto last = cl.last_beat["b"];
    cl.silent = {"b"};
    cl.run_for(60s);
    const auto* sus = cl.first(event_kind::suspect, "b");
    const auto* down = cl.first(event_kind::down, "b");
    REQUIRE(sus != nullptr);
    REQUIRE(down != nullptr);
    CHECK(cl.probes.empty());
    CHECK(down->reason == down_reason::suspect_timeout);
    CHECK(down->at - sus->at >= cl.config.suspect_timeout);
    CHECK(down->at - sus->at < cl.config.suspect_timeout + cl.tick_every);
    CHECK(down->at - at(last) <= detection_bound(cl.config));
  }

  TEST_CASE("probers that never answer leave the decision to the suspect timeout") {
    cluster cl = four_nodes();
    cl.silent = {"d"};
    cl.run_for(20s);
    const auto* down = cl.first(event_kind::down, "d");
    REQUIRE(down != nullptr);
    CHECK(down->reason == down_reason::suspect_timeout);
    CHECK(cl.probes.size() == 1); // one probe round per suspicion
  }

  TEST_CASE(
      "detection_bound holds for the worst heartbeat history with ticks every interval") {
    membership_config c;
    c.indirect_probes = 0;
    // Defaults: cap 1.5 s, sigma <= 0.75 s: 6.41949 s to suspect, + 5 s + 2 * 0.5 s.
    CHECK(suspect_bound(c) > 6419ms);
    CHECK(suspect_bound(c) < 6421ms);
    CHECK(detection_bound(c) == suspect_bound(c) + 6s);

    for (int shape = 0; shape < 2; ++shape) {
      CAPTURE(shape);
      membership_table t{c};
      REQUIRE(t.join("n", "n:1", 1, at(0s)).ok());
      // Intervals alternating 0 and 1.5 s (largest deviation) or all 1.5 s
      // (largest mean) for 400 heartbeats.
      auto now = 0ns;
      for (int i = 0; i < 400; ++i) {
        now += (shape == 1 || i % 2) ? c.heartbeat_interval + c.acceptable_pause : 0ns;
        REQUIRE(t.heartbeat(id_of("n"), 1, at(now)).ok());
        (void)t.tick(at(now));
      }
      const auto last = now;
      // Ticks every heartbeat_interval, starting at an awkward phase.
      now += 499ms;
      std::optional<time_point> down_at;
      for (; now < last + 60s && !down_at; now += c.heartbeat_interval) {
        for (const auto& e : t.tick(at(now)).events)
          if (e.kind == event_kind::down) down_at = e.at;
      }
      REQUIRE(down_at.has_value());
      CHECK(*down_at - at(last) <= detection_bound(c));
      // The bound is not loose by more than the tick slack for the widest history.
      if (shape == 0) CHECK(*down_at - at(last) > detection_bound(c) - 2s);
    }
  }

  TEST_CASE("a table that was itself stalled downs nobody on its first tick back") {
    // The owning actor did not run for 30 s: its first tick finds everybody
    // silent, but the suspect timeout starts at that tick, so the heartbeats
    // queued meanwhile arrive in time.
    cluster cl = four_nodes();
    const auto resume = cl.now + 30s;
    auto out = cl.table.tick(at(resume));
    CHECK(out.events.size() == 4);
    for (const auto& e : out.events)
      CHECK(e.kind == event_kind::suspect);
    CHECK(out.probes.empty()); // nobody up to probe through
    for (const char* n : {"a", "b", "c", "d"}) {
      auto hb = cl.table.heartbeat(id_of(n), 1, at(resume + 10ms));
      REQUIRE(hb.ok());
      CHECK(kinds(*hb) == std::vector{event_kind::recovered});
    }
    CHECK(cl.table.count(member_state::up) == 4);
  }

  TEST_CASE(
      "a late heartbeat clears the suspicion, and so does a prober that reached it") {
    cluster cl = four_nodes();
    cl.silent = {"d"};
    while (cl.state("d") != member_state::suspect)
      cl.run_for(10ms);
    REQUIRE(cl.probes.size() == 1);
    const auto req = cl.probes.front();
    cl.run_for(1s);
    auto hb = cl.table.heartbeat(id_of("d"), 1, at(cl.now));
    REQUIRE(hb.ok());
    CHECK(kinds(*hb) == std::vector{event_kind::recovered});
    CHECK(cl.state("d") == member_state::up);
    cl.record(*hb);
    // The answers of that probe round are late now.
    auto late = cl.table.probe_result(req.probers[0], id_of("d"), 1, false, at(cl.now));
    REQUIRE_FALSE(late.ok());
    CHECK(late.err().is(errc::conflict));

    // Suspect again; this time a prober reaches it.
    cl.probes.clear();
    while (cl.state("d") != member_state::suspect)
      cl.run_for(10ms);
    REQUIRE(cl.probes.size() == 1);
    const auto req2 = cl.probes.front();
    auto ok = cl.table.probe_result(req2.probers[1], id_of("d"), 1, true, at(cl.now));
    REQUIRE(ok.ok());
    CHECK(kinds(*ok) == std::vector{event_kind::recovered});
    cl.record(*ok);
    CHECK(cl.state("d") == member_state::up);
    CHECK(cl.table.phi(id_of("d"), at(cl.now)) < 1.0);
    // d resumes; nothing is ever down.
    cl.silent.clear();
    cl.run_for(60s);
    CHECK(cl.count(event_kind::down) == 0);
    CHECK(cl.count(event_kind::recovered) == 2);
  }

  TEST_CASE("stale incarnations are ignored") {
    cluster cl;
    cl.join("a", 5);
    cl.run_for(5s);
    const auto a = id_of("a");
    auto hb = cl.table.heartbeat(a, 4, at(cl.now));
    REQUIRE_FALSE(hb.ok());
    CHECK(hb.err().is(errc::conflict));
    CHECK(hb.err().message().find("stale") != std::string::npos);
    auto leave = cl.table.leave(a, 4, at(cl.now));
    REQUIRE_FALSE(leave.ok());
    CHECK(leave.err().is(errc::conflict));
    auto te = cl.table.transport_error(a, 4, at(cl.now));
    REQUIRE_FALSE(te.ok());
    CHECK(te.err().is(errc::conflict));
    auto join = cl.table.join("a", "a:7000", 4, at(cl.now));
    REQUIRE_FALSE(join.ok());
    CHECK(join.err().is(errc::conflict));
    // The stale transport error did not mark the live generation.
    cl.silent = {"a"};
    while (cl.state("a") == member_state::up)
      cl.run_for(10ms);
    CHECK(cl.state("a") == member_state::suspect);
    CHECK(cl.table.find("a")->incarnation == 5);
  }

  TEST_CASE("a node once down comes back only as a new incarnation") {
    cluster cl = four_nodes();
    cl.silent = {"d"};
    while (cl.state("d") == member_state::up)
      cl.run_for(10ms);
    auto te = cl.table.transport_error(id_of("d"), 1, at(cl.now));
    REQUIRE(te.ok());
    cl.record(*te);
    REQUIRE(cl.state("d") == member_state::down);

    // The old generation cannot come back.
    auto hb = cl.table.heartbeat(id_of("d"), 1, at(cl.now));
    REQUIRE_FALSE(hb.ok());
    CHECK(hb.err().is(errc::conflict));
    auto same = cl.table.join("d", "d:7000", 1, at(cl.now));
    REQUIRE_FALSE(same.ok());
    CHECK(same.err().is(errc::conflict));
    // Heartbeats of a generation that has not joined are refused too.
    auto early = cl.table.heartbeat(id_of("d"), 2, at(cl.now));
    REQUIRE_FALSE(early.ok());
    CHECK(early.err().is(errc::not_found));

    // A restarted d (incarnation 2, new port) rejoins.
    auto rj = cl.table.join("d", "d:7001", 2, at(cl.now));
    REQUIRE(rj.ok());
    CHECK(kinds(*rj) == std::vector{event_kind::rejoined});
    CHECK(rj->front().incarnation == 2);
    CHECK(cl.state("d") == member_state::joining);
    CHECK(cl.table.find("d")->address == "d:7001");
    CHECK(cl.table.find("d")->reason == down_reason::none);
    cl.incarnation["d"] = 2;
    cl.silent.clear();
    cl.run_for(30s);
    CHECK(cl.state("d") == member_state::up);
    CHECK(cl.count(event_kind::down) == 1);
  }

  TEST_CASE("a higher incarnation joining while the old one is live supersedes it") {
    cluster cl = four_nodes();
    auto rj = cl.table.join("c", "c:7002", 9, at(cl.now));
    REQUIRE(rj.ok());
    REQUIRE(kinds(*rj) == std::vector{event_kind::down, event_kind::rejoined});
    CHECK(rj->at(0).incarnation == 1);
    CHECK(rj->at(0).reason == down_reason::superseded);
    CHECK(rj->at(1).incarnation == 9);
    // Messages of generation 1 are stale now.
    auto hb = cl.table.heartbeat(id_of("c"), 1, at(cl.now));
    REQUIRE_FALSE(hb.ok());
    CHECK(hb.err().is(errc::conflict));
  }

  TEST_CASE("cordon and drain set flags, emit events once, and survive a rejoin") {
    cluster cl = four_nodes();
    const auto b = id_of("b");
    auto c1 = cl.table.cordon(b, at(cl.now));
    REQUIRE(c1.ok());
    CHECK(kinds(*c1) == std::vector{event_kind::cordoned});
    CHECK(cl.table.find("b")->cordoned);
    CHECK_FALSE(cl.table.find("b")->draining);
    auto c2 = cl.table.cordon(b, at(cl.now));
    REQUIRE(c2.ok());
    CHECK(c2->empty());

    auto d1 = cl.table.drain(b, at(cl.now));
    REQUIRE(d1.ok());
    CHECK(kinds(*d1) == std::vector{event_kind::draining});
    CHECK(cl.table.find("b")->draining);
    auto u = cl.table.uncordon(b, at(cl.now));
    REQUIRE(u.ok());
    CHECK(kinds(*u) == std::vector{event_kind::uncordoned});
    CHECK_FALSE(cl.table.find("b")->cordoned);
    CHECK_FALSE(cl.table.find("b")->draining);
    auto u2 = cl.table.uncordon(b, at(cl.now));
    REQUIRE(u2.ok());
    CHECK(u2->empty());

    // Drain of an uncordoned node cordons it too.
    auto d2 = cl.table.drain(id_of("c"), at(cl.now));
    REQUIRE(d2.ok());
    CHECK(kinds(*d2) == std::vector{event_kind::cordoned, event_kind::draining});
    // The flags belong to the machine: a new incarnation keeps them.
    REQUIRE(cl.table.join("c", "c:7000", 2, at(cl.now)).ok());
    cl.incarnation["c"] = 2;
    CHECK(cl.table.find("c")->cordoned);
    CHECK(cl.table.find("c")->draining);
    // Flags are not part of the failure detection.
    cl.run_for(30s);
    CHECK(cl.count(event_kind::suspect) == 0);
    // An ended generation cannot be cordoned.
    REQUIRE(cl.table.leave(id_of("a"), 1, at(cl.now)).ok());
    auto dead = cl.table.cordon(id_of("a"), at(cl.now));
    REQUIRE_FALSE(dead.ok());
    CHECK(dead.err().is(errc::conflict));
  }

  TEST_CASE("probers are chosen round-robin, and fewer than k when fewer are up") {
    membership_config c;
    c.indirect_probes = 2;
    cluster cl{c};
    for (const char* n : {"n1", "n2", "n3", "n4", "n5", "n6"})
      cl.join(n);
    cl.run_for(30s);
    cl.silent = {"n5", "n6"};
    cl.run_for(3s);
    REQUIRE(cl.probes.size() == 2);
    // Up members sorted by id, taken two at a time from a moving cursor: the
    // two rounds ask disjoint pairs.
    for (const auto& p : cl.probes) {
      CHECK(p.probers.size() == 2);
      CHECK(std::find(p.probers.begin(), p.probers.end(), p.target) == p.probers.end());
      for (auto id : p.probers)
        CHECK(cl.table.find(id)->state == member_state::up);
    }
    std::vector<std::uint64_t> all = cl.probes[0].probers;
    all.insert(all.end(), cl.probes[1].probers.begin(), cl.probes[1].probers.end());
    std::sort(all.begin(), all.end());
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());

    // Fewer up members than k: the one available prober decides alone.
    membership_config c3;
    cluster small{c3};
    small.join("x");
    small.join("y");
    small.run_for(30s);
    small.silent = {"y"};
    small.run_for(3s);
    REQUIRE(small.probes.size() == 1);
    REQUIRE(small.probes[0].probers == std::vector{id_of("x")});
    auto r = small.table.probe_result(id_of("x"), id_of("y"), 1, false, at(small.now));
    REQUIRE(r.ok());
    REQUIRE(kinds(*r) == std::vector{event_kind::down});
    CHECK(r->front().reason == down_reason::probes_failed);
  }

  TEST_CASE("the same inputs give the same outputs") {
    auto run = [] {
      membership_config c;
      c.indirect_probes = 2;
      cluster cl{c};
      for (const char* n : {"p", "q", "r", "s", "t"})
        cl.join(n);
      cl.run_for(20s);
      cl.silent = {"r", "t"};
      cl.run_for(20s);
      return std::make_pair(cl.events, cl.probes);
    };
    const auto first = run();
    const auto second = run();
    CHECK(first.first == second.first);
    CHECK(first.second == second.second);
    CHECK(first.second.size() == 2);
  }

  TEST_CASE("hostile input gets clear errors and changes nothing") {
    cluster cl = four_nodes();
    cl.join("e", 5);
    const auto before = cl.table.members();
    const auto now = at(cl.now);
    const auto a = id_of("a");
    const auto nobody = id_of("nobody");
    struct row {
      const char* what;
      troupe::result<membership_events> got;
      errc code;
      const char* says;
    };
    const std::string long_name(300, 'x');
    row rows[] = {
        {"heartbeat of an unknown node", cl.table.heartbeat(nobody, 1, now),
         errc::not_found, "not a member"},
        {"empty name", cl.table.join("", "h:1", 1, now), errc::invalid_argument,
         "node name is empty"},
        {"name with a space", cl.table.join("a b", "h:1", 1, now), errc::invalid_argument,
         "space"},
        {"name with a control byte", cl.table.join("a\nb", "h:1", 1, now),
         errc::invalid_argument, "\\x0a"},
        {"name too long", cl.table.join(long_name, "h:1", 1, now), errc::invalid_argument,
         "300 bytes"},
        {"empty address", cl.table.join("e", "", 1, now), errc::invalid_argument,
         "address is empty"},
        {"incarnation zero", cl.table.join("e", "e:1", 0, now), errc::invalid_argument,
         "incarnation 0"},
        {"duplicate name from another address", cl.table.join("a", "evil:7000", 1, now),
         errc::conflict, "name is taken"},
        {"retried join", cl.table.join("a", "a:7000", 1, now), errc::ok, ""},
        {"older incarnation joining", cl.table.join("e", "e:7000", 4, now),
         errc::conflict, "stale"},
        {"leave of an older incarnation", cl.table.leave(id_of("e"), 4, now),
         errc::conflict, "stale"},
        {"heartbeat of an older incarnation", cl.table.heartbeat(a, 0, now),
         errc::conflict, "stale"},
        {"leave of an unknown node", cl.table.leave(nobody, 1, now), errc::not_found,
         "not a member"},
        {"transport error of an unknown node", cl.table.transport_error(nobody, 1, now),
         errc::not_found, "not a member"},
        {"cordon of an unknown node", cl.table.cordon(nobody, now), errc::not_found,
         "not a member"},
        {"drain of an unknown node", cl.table.drain(nobody, now), errc::not_found,
         "not a member"},
        {"probe result from an unknown prober",
         cl.table.probe_result(nobody, a, 1, false, now), errc::not_found,
         "not a member"},
        {"probe result for a member that is not suspect",
         cl.table.probe_result(id_of("b"), a, 1, false, now), errc::conflict,
         "not suspect"},
        {"probe result for another incarnation",
         cl.table.probe_result(id_of("b"), a, 7, false, now), errc::conflict,
         "not suspect"},
    };
    for (auto& r : rows) {
      CAPTURE(r.what);
      if (r.code == errc::ok) {
        // A retried join of the same generation is fine.
        REQUIRE(r.got.ok());
        CHECK(r.got->empty());
        continue;
      }
      REQUIRE_FALSE(r.got.ok());
      CHECK(r.got.err().is(r.code));
      CAPTURE(r.got.err().message());
      CHECK(r.got.err().message().find(r.says) != std::string::npos);
    }
    CHECK(cl.table.members() == before);

    // A prober that was not asked in this suspicion is refused.
    membership_config c;
    c.indirect_probes = 1;
    cluster three{c};
    for (const char* n : {"a", "b", "c"})
      three.join(n);
    three.run_for(20s);
    three.silent = {"c"};
    three.run_for(3s);
    REQUIRE(three.probes.size() == 1);
    const auto asked = three.probes[0].probers.at(0);
    const auto other = asked == id_of("a") ? id_of("b") : id_of("a");
    auto r = three.table.probe_result(other, id_of("c"), 1, false, at(three.now));
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::conflict));
    CHECK(r.err().message().find("was not asked") != std::string::npos);
    CHECK(three.state("c") == member_state::suspect);
  }

  TEST_CASE("seeded soak: jitter and pauses shorter than the acceptable pause never lead "
            "to down") {
    // Eight nodes for 20 simulated minutes (12,000 ticks): heartbeats every
    // 500 ms with -50..+150 ms of scheduling jitter, 0..20 ms of network
    // delay, and now and then a pause of up to 999 ms (the acceptable pause is
    // 1 s). Node h is SIGSTOPped for good at minute 15 and must be down within
    // detection_bound; nobody else may ever be suspect, let alone down.
    const membership_config c;
    for (std::uint64_t seed : {1u, 2u, 3u}) {
      CAPTURE(seed);
      std::mt19937_64 rng{seed};
      std::uniform_int_distribution<int> jitter{-50, 150};
      std::uniform_int_distribution<int> delay{0, 20};
      std::uniform_int_distribution<int> pause{1, 999};
      std::bernoulli_distribution pauses{0.02};
      membership_table t{c};
      const std::vector<std::string> names{"a", "b", "c", "d", "e", "f", "g", "h"};
      std::map<std::string, duration> next_send;
      std::multimap<duration, std::string> in_flight; // arrival time -> node
      for (const auto& n : names) {
        REQUIRE(t.join(n, n + ":1", 1, at(0s)).ok());
        next_send[n] = std::chrono::milliseconds{delay(rng)};
      }
      const auto stop = 15min;
      const auto end = 20min;
      std::map<std::string, duration> last_arrival;
      std::vector<membership_event> events;
      std::size_t ticks = 0;
      for (auto now = 0ms; now <= end; now += 10ms) {
        for (auto& [n, next] : next_send) {
          if (now < next || (n == "h" && now >= stop)) continue;
          in_flight.emplace(now + std::chrono::milliseconds{delay(rng)}, n);
          auto gap = c.heartbeat_interval + std::chrono::milliseconds{jitter(rng)};
          if (pauses(rng)) gap += std::chrono::milliseconds{pause(rng)};
          next = now + gap;
        }
        while (!in_flight.empty() && in_flight.begin()->first <= now) {
          const auto n = in_flight.begin()->second;
          in_flight.erase(in_flight.begin());
          auto r = t.heartbeat(id_of(n), 1, at(now));
          REQUIRE(r.ok());
          events.insert(events.end(), r->begin(), r->end());
          last_arrival[n] = now;
        }
        if (now.count() % 100 == 0) {
          auto out = t.tick(at(now));
          ++ticks;
          events.insert(events.end(), out.events.begin(), out.events.end());
          // Healthy probers reach every live target; none reach h.
          for (const auto& p : out.probes)
            for (auto prober : p.probers) {
              const bool reached = p.target != id_of("h");
              auto r = t.probe_result(prober, p.target, p.incarnation, reached, at(now));
              if (!r) continue; // decided by an earlier answer
              events.insert(events.end(), r->begin(), r->end());
            }
        }
      }
      CHECK(ticks >= 12'000);
      std::size_t downs = 0;
      for (const auto& e : events) {
        if (e.kind == event_kind::suspect || e.kind == event_kind::down) {
          CAPTURE(e.name);
          CHECK(e.name == "h");
        }
        if (e.kind == event_kind::down) {
          ++downs;
          CHECK(e.reason == down_reason::probes_failed);
          CHECK(e.at - at(last_arrival["h"]) <= detection_bound(c));
        }
      }
      CHECK(downs == 1);
      CHECK(t.count(member_state::up) == 7);
    }
  }

  TEST_CASE("the [membership] section loads, validates and round-trips") {
    const auto schema = membership_schema();
    const auto defaults = schema.defaults();
    CHECK(defaults.membership == membership_config{});

    auto loaded = schema.load_string(R"(
[membership]
heartbeat_interval = "250ms"
phi_threshold = 10.0
acceptable_pause = "2s"
suspect_timeout = "8s"
indirect_probes = 2
probe_timeout = "750ms"
max_samples = 500
min_std_dev = "50ms"
first_heartbeat_estimate = "300ms"
)",
                                     "node.toml", {});
    REQUIRE_MESSAGE(loaded.ok(),
                    (loaded.ok() ? std::string{} : loaded.err().to_string()));
    const auto& m = loaded->membership;
    CHECK(m.heartbeat_interval == 250ms);
    CHECK(m.phi_threshold == 10.0);
    CHECK(m.acceptable_pause == 2s);
    CHECK(m.suspect_timeout == 8s);
    CHECK(m.indirect_probes == 2);
    CHECK(m.probe_timeout == 750ms);
    CHECK(m.max_samples == 500);
    CHECK(m.min_std_dev == 50ms);
    CHECK(m.first_heartbeat_estimate == 300ms);
    auto back = schema.load_string(schema.to_toml(*loaded), "rendered.toml", {});
    REQUIRE(back.ok());
    CHECK(*back == *loaded);

    auto env =
        schema.load_string("", "node.toml", {{"TROUPE_MEMBERSHIP_PHI_THRESHOLD", "12"}});
    REQUIRE(env.ok());
    CHECK(env->membership.phi_threshold == 12.0);

    // Next to the node's own schema, from one file.
    troupe::node_config node = troupe::default_config();
    membership_settings mine = schema.defaults();
    const auto node_schema = troupe::node_config_schema();
    troupe::config_binder binder;
    binder.bind(node_schema, node).bind(schema, mine);
    auto both =
        binder.load_string("[node]\nname = \"w1\"\n[membership]\nsuspect_timeout = "
                           "\"3s\"\n",
                           "node.toml", {});
    REQUIRE(both.ok());
    CHECK(node.node.name == "w1");
    CHECK(mine.membership.suspect_timeout == 3s);

    struct bad {
      const char* toml;
      const char* says;
    };
    const bad rows[] = {
        {"[membership]\nphi_threshold = 0.5\n", "membership.phi_threshold"},
        {"[membership]\nheartbeat_interval = \"1ms\"\n", "membership.heartbeat_interval"},
        {"[membership]\nmax_samples = 1\n", "membership.max_samples"},
        {"[membership]\nindirect_probes = -1\n", "membership.indirect_probes"},
        {"[membership]\nmin_std_dev = \"0s\"\n", "membership.min_std_dev"},
        {"[membership]\nsuspect_timeout = \"soon\"\n", "membership.suspect_timeout"},
        {"[membership]\nprobe_timeout = \"6s\"\n",
         "must be shorter than membership.suspect_timeout"},
        {"[membership]\nphi_treshold = 8.0\n", "phi_treshold"},
    };
    for (const auto& r : rows) {
      CAPTURE(r.toml);
      auto got = schema.load_string(r.toml, "node.toml", {});
      REQUIRE_FALSE(got.ok());
      CHECK(got.err().is(troupe::runtime::errc::invalid_argument));
      CAPTURE(got.err().message());
      CHECK(got.err().message().find(r.says) != std::string::npos);
    }
  }

} // TEST_SUITE
