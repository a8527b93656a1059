// The job manager's state machine (job_table) as plain code: placement,
// launches, restarts in place and elsewhere, fencing of stale replicas,
// cancel, time limits, idempotency, and its storage form.

#include "troupe/actors/errc.hpp"
#include "troupe/actors/job_table.hpp"

#include <doctest/doctest.h>

using namespace troupe::actors;
using namespace std::chrono_literals;
using kind = job_command::kind;

namespace {

job_spec spec(uint32_t replicas, restart_mode mode = restart_mode::never,
              uint32_t max_restarts = 0) {
  auto s = decode_job_spec(R"({"name":"train","command":["sleep","100"]})");
  REQUIRE(s.ok());
  s->replicas = replicas;
  s->resources.gpus = 2;
  s->restart.mode = mode;
  s->restart.max_restarts = max_restarts;
  s->restart.backoff.initial = 1s;
  return *s;
}

troupe::time_point at(int seconds) {
  return troupe::time_point{std::chrono::seconds{1'800'000'000 + seconds}};
}

std::vector<job_command> only(const std::vector<job_command>& cs, kind k) {
  std::vector<job_command> out;
  for (auto& c : cs)
    if (c.what == k) out.push_back(c);
  return out;
}

/// Submits a job of `n` replicas and places replica i on node "w<i>".
std::string running_job(job_table& t, uint32_t n, restart_mode mode = restart_mode::never,
                        uint32_t max_restarts = 0) {
  std::vector<job_command> out;
  auto s = t.submit(spec(n, mode, max_restarts), "acme", at(0), out);
  REQUIRE(s.ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].what == kind::place);
  CHECK_FALSE(out[0].replica.has_value());
  CHECK(out[0].request.bundles.size() == n);
  CHECK(out[0].request.tenant == "acme");
  t.on_request(s->id, std::nullopt, 7);
  out.clear();
  std::vector<placed_bundle> b;
  for (uint32_t i = 0; i < n; ++i)
    b.push_back({i, "w" + std::to_string(i), {2 * i, 2 * i + 1}});
  t.on_placed(7, 70, b, at(1), out);
  auto launches = only(out, kind::launch);
  REQUIRE(launches.size() == n);
  for (auto& l : launches) {
    CHECK(l.node == "w" + std::to_string(*l.replica));
    t.on_started(s->id, *l.replica, l.generation, 1000 + static_cast<int>(*l.replica),
                 at(2));
  }
  REQUIRE(t.find(s->id)->state == job_state::running);
  return s->id;
}

} // namespace

TEST_SUITE("job table") {
  TEST_CASE("a serving job scales down to its min_replicas: the rest stop and give "
            "their GPUs back, the job runs on") {
    job_table t;
    auto id = running_job(t, 3, restart_mode::on_failure, 3);
    std::vector<job_command> out;
    // No min_replicas: never scaled.
    auto refused = t.scale_down(id, 1, "idle", at(10), out);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.err().is(troupe::actors::errc::conflict));
    CHECK(out.empty());

    job_table t2;
    auto s = spec(3, restart_mode::on_failure, 3);
    s.min_replicas = 1;
    auto sub = t2.submit(s, "acme", at(0), out);
    REQUIRE(sub.ok());
    t2.on_request(sub->id, std::nullopt, 7);
    out.clear();
    t2.on_placed(7, 70, {{0, "w0", {0}}, {1, "w1", {0}}, {2, "w2", {0}}}, at(1), out);
    for (auto& l : only(out, kind::launch))
      t2.on_started(sub->id, *l.replica, l.generation, 100 + int(*l.replica), at(2));
    out.clear();
    auto below = t2.scale_down(sub->id, 0, "idle", at(10), out);
    REQUIRE_FALSE(below.ok());
    CHECK(below.err().message().find("below 1") != std::string::npos);
    auto n = t2.scale_down(sub->id, 1, "idle for 1h", at(10), out);
    REQUIRE(n.ok());
    CHECK(*n == 2);
    auto stops = only(out, kind::stop);
    REQUIRE(stops.size() == 2);
    CHECK(*stops[0].replica == 1);
    CHECK(*stops[1].replica == 2);
    auto rel = only(out, kind::release_bundle);
    REQUIRE(rel.size() == 2);
    CHECK(only(out, kind::place).empty()); // nothing placed again
    const auto* j = t2.find(sub->id);
    CHECK(j->state == job_state::running);
    CHECK(j->reason == "scaled down to 1: idle for 1h");
    CHECK(j->replicas[0].state == replica_state::running);
    CHECK(j->replicas[1].state == replica_state::cancelled);
    CHECK(j->replicas[2].state == replica_state::cancelled);
    // The stopped replicas' exits restart nothing.
    out.clear();
    t2.on_exited(sub->id, 1, j->replicas[1].generation, replica_exit::signaled(15),
                 at(11), out);
    CHECK(only(out, kind::place).empty());
    CHECK(only(out, kind::launch).empty());
    // Again: nothing left to stop.
    out.clear();
    auto again = t2.scale_down(sub->id, 1, "idle", at(12), out);
    REQUIRE(again.ok());
    CHECK(*again == 0);
    CHECK(out.empty());
  }

  TEST_CASE(
      "a job is placed as one gang, launched, and succeeds when every replica does") {
    job_table t;
    auto id = running_job(t, 3);
    const auto* j = t.find(id);
    CHECK(j->tenant == "acme");
    CHECK(j->spec.labels.tenant == "acme");
    for (auto& r : j->replicas) {
      CHECK(r.state == replica_state::running);
      CHECK(r.allocation == 70);
      CHECK(r.gpus.size() == 2);
    }
    std::vector<job_command> out;
    for (uint32_t i = 0; i < 3; ++i)
      t.on_exited(id, i, j->replicas[i].generation, replica_exit::exited(0), at(10), out);
    CHECK(t.find(id)->state == job_state::succeeded);
    auto rel = only(out, kind::release_bundle);
    CHECK(rel.size() == 3); // every bundle given back
    CHECK_FALSE(t.next_deadline().has_value());
  }

  TEST_CASE("on-failure restarts in place after its backoff, up to max_restarts") {
    job_table t;
    auto id = running_job(t, 1, restart_mode::on_failure, 1);
    std::vector<job_command> out;
    auto gen = t.find(id)->replicas[0].generation;
    t.on_exited(id, 0, gen, replica_exit::exited(3), at(5), out);
    auto& r = t.find(id)->replicas[0];
    CHECK(r.state == replica_state::backoff);
    CHECK(out.empty()); // waits; keeps its allocation
    REQUIRE(t.next_deadline().has_value());
    CHECK(*t.next_deadline() == at(6));
    t.tick(at(5), out);
    CHECK(out.empty());
    t.tick(at(6), out);
    auto l = only(out, kind::launch);
    REQUIRE(l.size() == 1);
    CHECK(l[0].node == "w0"); // same node, same allocation
    CHECK(l[0].allocation == 70);
    CHECK(l[0].generation > gen);
    // A late report of the old generation changes nothing.
    out.clear();
    t.on_exited(id, 0, gen, replica_exit::exited(1), at(7), out);
    CHECK(out.empty());
    t.on_started(id, 0, l[0].generation, 2000, at(7));
    t.on_exited(id, 0, l[0].generation, replica_exit::signaled(9), at(8), out);
    CHECK(t.find(id)->state == job_state::failed);
    CHECK(t.find(id)->reason.find("killed by SIGKILL") != std::string::npos);
    CHECK(only(out, kind::release_bundle).size() == 1);
  }

  TEST_CASE("a lost node's replicas are placed again alone; others keep running") {
    job_table t;
    auto id = running_job(t, 2, restart_mode::on_failure, 0);
    std::vector<job_command> out;
    t.on_node_down("w1", at(5), out);
    auto rel = only(out, kind::release_bundle);
    REQUIRE(rel.size() == 1);
    CHECK(rel[0].allocation == 70);
    CHECK(rel[0].bundle == 1);
    auto place = only(out, kind::place);
    REQUIRE(place.size() == 1);
    REQUIRE(place[0].replica.has_value());
    CHECK(*place[0].replica == 1);
    CHECK(place[0].request.bundles.size() == 1);
    const auto& r1 = t.find(id)->replicas[1];
    CHECK(r1.state == replica_state::pending);
    CHECK(r1.restarts == 0); // a node loss does not count
    CHECK(t.find(id)->replicas[0].state == replica_state::running);
    t.on_request(id, 1, 8);
    auto waiting = t.waiting();
    REQUIRE(waiting.count(8));
    CHECK(waiting[8].second == std::optional<uint32_t>{1});
    out.clear();
    t.on_placed(8, 80, {{0, "w2", {4, 5}}}, at(6), out);
    auto l = only(out, kind::launch);
    REQUIRE(l.size() == 1);
    CHECK(*l[0].replica == 1);
    CHECK(l[0].node == "w2");
    CHECK(t.find(id)->replicas[1].allocation == 80);
    CHECK(t.find(id)->replicas[1].bundle == 0);
  }

  TEST_CASE("with restart never, a lost node fails the job") {
    job_table t;
    auto id = running_job(t, 1);
    std::vector<job_command> out;
    t.on_node_down("w0", at(5), out);
    CHECK(t.find(id)->state == job_state::failed);
    CHECK(only(out, kind::place).empty());
    CHECK(only(out, kind::release_bundle).size() == 1);
  }

  TEST_CASE("reconcile: stale reports are stopped (fencing), missing replicas restart") {
    job_table t;
    auto id = running_job(t, 2, restart_mode::always, 0);
    auto g0 = t.find(id)->replicas[0].generation;
    // w0 was declared down: replica 0 moved to w5.
    std::vector<job_command> out;
    t.on_node_down("w0", at(5), out);
    t.on_request(id, 0, 9);
    out.clear();
    t.on_placed(9, 90, {{0, "w5", {0, 1}}}, at(6), out);
    auto g0b = only(out, kind::launch).at(0).generation;
    // w0 comes back and still runs the old replica 0, and a job nobody knows.
    out.clear();
    t.reconcile("w0", {{id, 0, g0, 1000}, {"j-999", 0, 3, 77}}, at(7), out);
    auto stops = only(out, kind::stop);
    REQUIRE(stops.size() == 2);
    CHECK(stops[0].node == "w0");
    CHECK(stops[0].generation == g0);
    CHECK(stops[1].job == "j-999");
    CHECK(t.find(id)->replicas[0].generation == g0b);
    // w1 restarted meanwhile and runs nothing: its replica starts again.
    out.clear();
    t.reconcile("w1", {}, at(8), out);
    auto l = only(out, kind::launch);
    REQUIRE(l.size() == 1);
    CHECK(l[0].node == "w1");
    CHECK(*l[0].replica == 1);
    // w5 reports the new generation while it is still starting: running.
    out.clear();
    t.reconcile("w5", {{id, 0, g0b, 4242}}, at(9), out);
    CHECK(out.empty());
    CHECK(t.find(id)->replicas[0].state == replica_state::running);
    CHECK(t.find(id)->replicas[0].pid == 4242);
  }

  TEST_CASE(
      "cancel stops and releases; a late placement of a cancelled job is released") {
    job_table t;
    auto id = running_job(t, 2);
    std::vector<job_command> out;
    REQUIRE(t.cancel(id, at(5), out).ok());
    CHECK(only(out, kind::stop).size() == 2);
    CHECK(only(out, kind::release_bundle).size() == 2);
    CHECK(t.find(id)->state == job_state::cancelled);
    out.clear();
    REQUIRE(t.cancel(id, at(6), out).ok()); // again: nothing
    CHECK(out.empty());
    CHECK_FALSE(t.cancel("j-404", at(6), out).ok());
    // A pending job cancelled before placement.
    auto s = t.submit(spec(2), "acme", at(7), out);
    REQUIRE(s.ok());
    t.on_request(s->id, std::nullopt, 11);
    out.clear();
    REQUIRE(t.cancel(s->id, at(8), out).ok());
    CHECK(out.empty());
    t.on_placed(11, 110, {{0, "w0", {0, 1}}, {1, "w1", {0, 1}}}, at(9), out);
    CHECK(only(out, kind::release_bundle).size() == 2);
    CHECK(only(out, kind::launch).empty());
  }

  TEST_CASE("idempotency keys are per tenant; time limits fail the job") {
    job_table t;
    std::vector<job_command> out;
    auto sp = spec(1);
    sp.idempotency_key = "k1";
    auto a = t.submit(sp, "acme", at(0), out);
    auto b = t.submit(sp, "acme", at(1), out);
    auto c = t.submit(sp, "other", at(1), out);
    REQUIRE((a.ok() && b.ok() && c.ok()));
    CHECK(a->created);
    CHECK_FALSE(b->created);
    CHECK(b->id == a->id);
    CHECK(c->id != a->id);
    CHECK(only(out, kind::place).size() == 2);

    job_table t2;
    auto limited = spec(1);
    limited.time_limit = 30s;
    out.clear();
    auto s = t2.submit(limited, "acme", at(0), out);
    REQUIRE(s.ok());
    CHECK(out[0].request.runtime_estimate == 30s);
    t2.on_request(s->id, std::nullopt, 1);
    t2.on_placed(1, 10, {{0, "w0", {}}}, at(1), out);
    auto gen = t2.find(s->id)->replicas[0].generation;
    t2.on_started(s->id, 0, gen, 5, at(2));
    REQUIRE(t2.next_deadline().has_value());
    CHECK(*t2.next_deadline() == at(32));
    out.clear();
    t2.tick(at(31), out);
    CHECK(out.empty());
    t2.tick(at(32), out);
    CHECK(only(out, kind::stop).size() == 1);
    CHECK(t2.find(s->id)->state == job_state::failed);
    CHECK(t2.find(s->id)->reason == "time limit of 30s reached");
  }

  TEST_CASE("jobs round-trip through their storage form; the counters survive") {
    job_table t;
    auto id = running_job(t, 2, restart_mode::on_failure, 2);
    std::vector<job_command> out;
    t.on_exited(id, 1, t.find(id)->replicas[1].generation, replica_exit::signaled(11),
                at(4), out);
    auto text = encode_job(*t.find(id));
    auto back = decode_job(text);
    REQUIRE_MESSAGE(back.ok(), (back.ok() ? "" : back.err().to_string()));
    CHECK(encode_job(*back) == text);
    CHECK(back->replicas[1].last_exit == replica_exit::signaled(11));
    CHECK(back->replicas[1].state == replica_state::backoff);
    job_table restored;
    REQUIRE(restored.restore_meta(t.meta_json()).ok());
    REQUIRE(restored.restore_job(*back).ok());
    auto next = restored.submit(spec(1), "acme", at(9), out);
    REQUIRE(next.ok());
    CHECK(next->id == "j-2");
    auto doc = job_json(*restored.find(id));
    CHECK(doc.find("\"state\":\"running\"") != std::string::npos);
    CHECK(doc.find("killed by SIGSEGV") != std::string::npos);
    for (const char* bad : {"", "{}", R"({"id":"j-1"})", "[1,2]"}) {
      CAPTURE(bad);
      CHECK_FALSE(decode_job(bad).ok());
    }
    CHECK_FALSE(restored.restore_meta("{").ok());
  }

  TEST_CASE("after a restart, placements never acknowledged are asked for again") {
    job_table t;
    std::vector<job_command> out;
    auto limited = spec(2);
    limited.time_limit = 30s;
    auto never_acked = t.submit(limited, "acme", at(0), out); // no on_request
    REQUIRE(never_acked.ok());
    auto lost = running_job(t, 2, restart_mode::on_failure, 0);
    t.on_node_down("w1", at(5), out); // replica 1 waits, its request unanswered
    auto acked = t.submit(spec(1), "acme", at(6), out);
    REQUIRE(acked.ok());
    t.on_request(acked->id, std::nullopt, 42);
    out.clear();
    t.place_unacknowledged(out);
    REQUIRE(out.size() == 2);
    CHECK(out[0].job == never_acked->id);
    CHECK_FALSE(out[0].replica.has_value());
    CHECK(out[0].request.bundles.size() == 2);
    CHECK(out[0].request.runtime_estimate == 30s);
    CHECK(out[1].job == lost);
    REQUIRE(out[1].replica.has_value());
    CHECK(*out[1].replica == 1);
    CHECK(out[1].request.bundles.size() == 1);
  }

  TEST_CASE("a checkpoint interval asks each running replica to checkpoint that long "
            "after it started or last checkpointed, one ask at a time") {
    job_table t;
    std::vector<job_command> out;
    auto sp = spec(2, restart_mode::on_failure, 3);
    sp.checkpoint = checkpoint_hook{SIGUSR1, 20s, 60s};
    auto s = t.submit(sp, "acme", at(0), out);
    REQUIRE(s.ok());
    t.on_request(s->id, std::nullopt, 7);
    out.clear();
    t.on_placed(7, 70, {{0, "w0", {0, 1}}, {1, "w1", {2, 3}}}, at(1), out);
    auto launches = only(out, kind::launch);
    REQUIRE(launches.size() == 2);
    const auto g0 = launches[0].generation, g1 = launches[1].generation;
    t.on_started(s->id, 0, g0, 100, at(2));
    // Replica 1 is still starting: only running replicas are asked.
    REQUIRE(t.next_deadline().has_value());
    CHECK(*t.next_deadline() == at(61)); // started at 1 + 60 s
    out.clear();
    t.tick(at(60), out);
    CHECK(only(out, kind::checkpoint).empty());
    t.tick(at(61), out);
    auto asks = only(out, kind::checkpoint);
    REQUIRE(asks.size() == 1);
    CHECK(asks[0].job == s->id);
    CHECK(*asks[0].replica == 0);
    CHECK(asks[0].generation == g0);
    CHECK(asks[0].node == "w0");
    // Outstanding: not asked again; a stale confirmation changes nothing.
    out.clear();
    t.tick(at(70), out);
    CHECK(only(out, kind::checkpoint).empty());
    t.on_checkpoint(s->id, 0, g0 + 100, true, at(71));
    CHECK(t.find(s->id)->replicas[0].last_checkpoint == troupe::time_point{});
    t.on_checkpoint(s->id, 0, g0, true, at(75));
    CHECK(t.find(s->id)->replicas[0].last_checkpoint == at(75));
    CHECK(*t.next_deadline() == at(135));
    t.tick(at(134), out);
    CHECK(only(out, kind::checkpoint).empty());
    t.tick(at(135), out);
    REQUIRE(only(out, kind::checkpoint).size() == 1);
    // No answer within the timeout and the grace: a failure, and the next
    // ask an interval later (not at once: a hook that never confirms is not
    // signalled every tick).
    out.clear();
    const auto grace = static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(
                                            job_table::checkpoint_answer_grace)
                                            .count());
    t.tick(at(135 + 20 + grace - 1), out);
    t.tick(at(135 + 20 + grace), out);
    CHECK(only(out, kind::checkpoint).empty());
    CHECK(t.find(s->id)->replicas[0].checkpoint_failed == at(135 + 20 + grace));
    CHECK(*t.next_deadline() == at(135 + 20 + grace + 60));
    t.tick(at(135 + 20 + grace + 60), out);
    CHECK(only(out, kind::checkpoint).size() == 1);
    // A timed-out answer is a failure too.
    out.clear();
    const int asked = 135 + 20 + grace + 60;
    t.on_checkpoint(s->id, 0, g0, false, at(asked + 5));
    CHECK(t.find(s->id)->replicas[0].last_checkpoint == at(75));
    t.tick(at(asked + 6), out);
    CHECK(only(out, kind::checkpoint).empty());
    t.tick(at(asked + 65), out);
    CHECK(only(out, kind::checkpoint).size() == 1);
    // The last checkpoint is stored, and shown in the document.
    auto back = decode_job(encode_job(*t.find(s->id)));
    REQUIRE(back.ok());
    CHECK(back->replicas[0].last_checkpoint == at(75));
    CHECK(back->replicas[0].checkpoint_asked == at(asked + 65));
    CHECK(back->replicas[0].checkpoint_failed == at(asked + 5));
    CHECK(back->spec.checkpoint->interval == 60s);
    CHECK(job_json(*t.find(s->id))
              .find("\"last_checkpoint\":\"2027-01-15T08:01:15.000Z\"") !=
          std::string::npos);
    // A restart is a new launch: its count starts again.
    out.clear();
    t.on_exited(s->id, 0, g0, replica_exit::exited(1), at(400), out);
    t.tick(at(402), out);
    const auto& r0 = t.find(s->id)->replicas[0];
    CHECK(r0.generation != g0);
    CHECK(r0.last_checkpoint == troupe::time_point{});
    CHECK(r0.checkpoint_asked == troupe::time_point{});
    CHECK(r0.checkpoint_failed == troupe::time_point{});
    (void)g1;
  }

  TEST_CASE("a job refused spot by the policy is placed off spot, with the reason "
            "in its document; allowed spot work asks for the cheapest nodes first") {
    job_table t;
    std::vector<job_command> out;
    auto sp = spec(2, restart_mode::on_failure, 3);
    sp.spot_tolerant = true;
    auto allowed = t.submit(sp, "acme", at(0), out,
                            spot_admission{true, "allowed", "within the share"});
    REQUIRE(allowed.ok());
    REQUIRE(out.size() == 1);
    CHECK(out[0].request.spot_tolerant);
    CHECK(out[0].request.cheapest_first); // spot work: the cheapest nodes first
    out.clear();
    auto refused = t.submit(sp, "acme", at(1), out,
                            spot_admission{false, "share_cap_exceeded", "over the cap"});
    REQUIRE(refused.ok());
    REQUIRE(out.size() == 1);
    CHECK_FALSE(out[0].request.spot_tolerant);
    CHECK_FALSE(out[0].request.cheapest_first);
    CHECK(t.find(refused->id)->spec.spot_tolerant); // what the user asked is kept
    CHECK_FALSE(may_use_spot(*t.find(refused->id)));
    out.clear();
    auto unasked = t.submit(sp, "acme", at(2), out);
    REQUIRE(unasked.ok());
    CHECK(out[0].request.spot_tolerant);
    auto doc = job_json(*t.find(refused->id));
    CHECK(
        doc.find(
            R"("spot":{"allowed":false,"reason":"over the cap","verdict":"share_cap_exceeded"})") !=
        std::string::npos);
    CHECK(job_json(*t.find(unasked->id)).find("\"spot\"") == std::string::npos);
    // Stored and read back; a replica placed again after a node loss stays off spot.
    auto back = decode_job(encode_job(*t.find(refused->id)));
    REQUIRE(back.ok());
    REQUIRE(back->spot.has_value());
    CHECK(*back->spot == spot_admission{false, "share_cap_exceeded", "over the cap"});
    job_table restored;
    REQUIRE(restored.restore_job(*back).ok());
    t.on_request(refused->id, std::nullopt, 9);
    out.clear();
    t.on_placed(9, 90, {{0, "w0", {0, 1}}, {1, "w1", {2, 3}}}, at(3), out);
    for (auto& l : only(out, kind::launch))
      t.on_started(refused->id, *l.replica, l.generation, 10, at(4));
    out.clear();
    t.on_node_down("w1", at(5), out);
    auto again = only(out, kind::place);
    REQUIRE(again.size() == 1);
    CHECK_FALSE(again[0].request.spot_tolerant);
  }
}
