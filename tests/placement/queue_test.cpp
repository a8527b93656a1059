// The scheduling queue: priority order, aging, fair share, quotas with
// borrowing and reclaim, EASY backfill, preemption plans, explanations.

#include "troupe/placement/errc.hpp"
#include "troupe/placement/queue.hpp"
#include "troupe/runtime/random.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <doctest/doctest.h>
#include <map>
#include <set>

using namespace troupe::placement;
using namespace std::chrono_literals;
using troupe::duration;
using troupe::time_point;

namespace {

struct rng {
  uint64_t s;
  uint64_t next() { return troupe::splitmix64(s); }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
  bool chance(double p) { return troupe::unit_double(s) < p; }
};

const time_point t0{};

node_spec make_node(std::string name, uint32_t gpus) {
  node_spec n;
  n.name = std::move(name);
  n.cpu_milli = 64000;
  n.memory_mib = 512 * 1024;
  for (uint32_t g = 0; g < gpus; ++g)
    n.gpus.push_back(gpu_spec{});
  return n;
}

cluster_topology one_rack(std::vector<uint32_t> gpus_per_node) {
  cluster_topology t;
  t.racks.push_back({"rack-0", 0, 1.0});
  for (size_t i = 0; i < gpus_per_node.size(); ++i)
    t.nodes.push_back(make_node("n" + std::to_string(i), gpus_per_node[i]));
  return t;
}

gang_request job(uint64_t id, uint32_t gpus, int32_t priority, duration runtime,
                 time_point submitted, std::string tenant = "default") {
  gang_request r;
  r.id = request_id{id};
  r.tenant = std::move(tenant);
  r.priority = priority;
  r.runtime_estimate = runtime;
  r.submitted = submitted;
  bundle b;
  b.gpus = gpus;
  b.cpu_milli = 1000;
  r.bundles.push_back(b);
  return r;
}

std::vector<uint64_t> ids(const std::vector<queued_request>& v) {
  std::vector<uint64_t> out;
  for (auto& q : v)
    out.push_back(q.id.value());
  return out;
}

std::set<uint64_t> placed_ids(const schedule_result& r) {
  std::set<uint64_t> out;
  for (auto& p : r.placed)
    out.insert(p.request.value());
  return out;
}

const pending_request* pending_of(const schedule_result& r, uint64_t id) {
  for (auto& p : r.pending)
    if (p.request.value() == id) return &p;
  return nullptr;
}

const allocation* allocation_of(const cluster_state& st, uint64_t request) {
  for (auto& [id, a] : st.allocations())
    if (a.request.id.value() == request) return &a;
  return nullptr;
}

/// Releases every allocation whose runtime estimate has run out by `now`.
void finish_due(cluster_state& st, time_point now) {
  std::vector<allocation_id> due;
  for (auto& [id, a] : st.allocations())
    if (a.request.runtime_estimate.count() > 0 &&
        a.start + a.request.runtime_estimate <= now)
      due.push_back(id);
  for (auto id : due)
    REQUIRE(st.release(id).ok());
}

queue_policy no_aging() {
  queue_policy p;
  p.aging_cap = 0;
  return p;
}

} // namespace

TEST_SUITE("scheduling queue") {
  TEST_CASE("requests are placed in priority order and the rest say why they wait") {
    cluster_state st{one_rack({8})};
    scheduling_queue q{no_aging()};
    REQUIRE(q.submit(job(1, 8, 0, 1h, t0)).ok());
    REQUIRE(q.submit(job(2, 8, 1, 1h, t0 + 1s)).ok());
    REQUIRE(q.submit(job(3, 8, 2, 1h, t0 + 2s)).ok());
    CHECK(ids(q.order(t0 + 1min)) == std::vector<uint64_t>{3, 2, 1});
    auto res = q.schedule(st, placer{}, t0 + 1min);
    CHECK(placed_ids(res) == std::set<uint64_t>{3});
    REQUIRE(res.reserved);
    CHECK(res.reserved->request.value() == 2);
    REQUIRE(res.reserved->start);
    CHECK(*res.reserved->start == t0 + 1min + 1h);
    REQUIRE(res.pending.size() == 2);
    CHECK(res.pending[0].request.value() == 2); // in queue order
    CHECK(res.pending[1].request.value() == 1);
    for (auto& p : res.pending)
      CHECK_FALSE(p.why.empty());
    CHECK(pending_of(res, 2)->why.find("reserved to start at now+3600s") !=
          std::string::npos);
    CHECK(q.pending().size() == 2);
    st.check_invariants();
  }

  TEST_CASE("submit and cancel validate their input") {
    scheduling_queue q;
    REQUIRE(q.submit(job(1, 1, 0, 1h, t0)).ok());
    auto dup = q.submit(job(1, 2, 0, 1h, t0));
    REQUIRE_FALSE(dup.ok());
    CHECK(dup.err().is(errc::conflict));
    gang_request empty;
    empty.id = request_id{2};
    auto bad = q.submit(empty);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().is(errc::invalid_argument));
    auto gone = q.cancel(request_id{1});
    REQUIRE(gone.ok());
    CHECK(gone->id.value() == 1);
    CHECK(q.pending().empty());
    auto missing = q.cancel(request_id{1});
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.err().is(errc::not_found));

    queue_policy p;
    p.aging_interval = 0s;
    p.weights["x"] = 0;
    p.preemption.quotas["y"] = {-1, 0};
    auto v = p.validate();
    REQUIRE_FALSE(v.ok());
    CHECK(v.err().message().find("aging_interval") != std::string::npos);
    CHECK(v.err().message().find("tenant \"x\"") != std::string::npos);
    CHECK(v.err().message().find("tenant \"y\"") != std::string::npos);
  }

  TEST_CASE(
      "aging lets a low-priority job run under a steady stream of higher-priority work") {
    // One 8-GPU node; every hour a priority-5 job that needs the whole node
    // for an hour arrives, exactly when the previous one ends.
    auto simulate = [](int32_t aging_cap) -> std::optional<int> {
      cluster_state st{one_rack({8})};
      queue_policy pol;
      pol.aging_interval = 30min;
      pol.aging_step = 1;
      pol.aging_cap = aging_cap;
      scheduling_queue q{pol};
      REQUIRE(q.submit(job(1, 8, 0, 1h, t0)).ok());
      for (int h = 0; h < 48; ++h) {
        auto now = t0 + std::chrono::hours(h);
        finish_due(st, now);
        REQUIRE(q.submit(job(100 + h, 8, 5, 1h, now)).ok());
        auto res = q.schedule(st, placer{}, now);
        CHECK(res.placed.size() == 1); // the node is never idle
        if (placed_ids(res).count(1)) return h;
        REQUIRE(pending_of(res, 1) != nullptr);
        CHECK_FALSE(pending_of(res, 1)->why.empty());
      }
      return std::nullopt;
    };
    CHECK_FALSE(simulate(0).has_value()); // without aging it waits forever
    auto h = simulate(10);
    REQUIRE(h.has_value());
    // Priority 0 + 1 per half hour passes 5 after 3 hours (6 > 5).
    CHECK(*h == 3);
    // A cap below the gap is not enough: aging must be able to close it.
    CHECK_FALSE(simulate(4).has_value());
  }

  TEST_CASE("aging adds whole steps up to the cap") {
    queue_policy pol;
    pol.aging_interval = 10min;
    pol.aging_step = 2;
    pol.aging_cap = 5;
    scheduling_queue q{pol};
    auto r = job(1, 1, 3, 1h, t0 + 1h);
    CHECK(q.effective_priority(r, t0) == 3); // before it was submitted
    CHECK(q.effective_priority(r, t0 + 1h + 9min) == 3);
    CHECK(q.effective_priority(r, t0 + 1h + 10min) == 5);
    CHECK(q.effective_priority(r, t0 + 1h + 25min) == 7);
    CHECK(q.effective_priority(r, t0 + 1h + 30min) == 8);
    CHECK(q.effective_priority(r, t0 + 100h) == 8);
  }

  TEST_CASE(
      "the small-job boost orders by estimated GPU time, and aging lifts long jobs") {
    queue_policy pol;
    pol.aging_interval = 1h;
    pol.aging_step = 1;
    pol.aging_cap = 16;
    pol.size_boost_levels = 4;
    pol.size_boost_base = 10min;
    scheduling_queue q{pol};
    // GPU time: 10 min -> 4 points, 20 -> 3, 40 -> 2, 80 -> 1, more -> 0.
    CHECK(q.effective_priority(job(1, 1, 0, 10min, t0), t0) == 4);
    CHECK(q.effective_priority(job(2, 2, 0, 10min, t0), t0) == 3);
    CHECK(q.effective_priority(job(3, 1, 0, 21min, t0), t0) == 2);
    CHECK(q.effective_priority(job(4, 8, 0, 10min, t0), t0) == 1);
    CHECK(q.effective_priority(job(5, 8, 0, 1h, t0), t0) == 0);
    CHECK(q.effective_priority(job(6, 1, 0, duration{0}, t0), t0) == 0); // unknown
    // Order: small first; a long job that waited 5 hours (5 points) passes a
    // fresh small one (4), not a small one that also waited (4 + 4).
    REQUIRE(q.submit(job(10, 8, 0, 10h, t0)).ok());
    REQUIRE(q.submit(job(11, 1, 0, 5min, t0 + 5h)).ok());
    REQUIRE(q.submit(job(12, 1, 0, 5min, t0 + 1h)).ok());
    CHECK(ids(q.order(t0 + 5h)) == std::vector<uint64_t>{12, 10, 11});
    CHECK(ids(q.order(t0 + 1h + 30min)) == std::vector<uint64_t>{12, 11, 10});
    pol.size_boost_levels = 63;
    CHECK_FALSE(pol.validate().ok());
  }

  TEST_CASE("fair share orders equal-priority tenants by decayed usage") {
    queue_policy pol = no_aging();
    pol.usage_half_life = 1h;
    scheduling_queue q{pol};
    q.record_usage("heavy", 8 * 3600.0, t0);
    q.record_usage("light", 1 * 3600.0, t0);
    // heavy submitted first, same priority: light goes first anyway.
    REQUIRE(q.submit(job(1, 8, 0, 1h, t0, "heavy")).ok());
    REQUIRE(q.submit(job(2, 8, 0, 1h, t0 + 1s, "light")).ok());
    auto now = t0 + 1min;
    CHECK(q.fair_share_factor("light", now) > q.fair_share_factor("heavy", now));
    CHECK(ids(q.order(now)) == std::vector<uint64_t>{2, 1});
    // Priority still comes first.
    REQUIRE(q.submit(job(3, 8, 1, 1h, t0 + 2s, "heavy")).ok());
    CHECK(ids(q.order(now)) == std::vector<uint64_t>{3, 2, 1});
    REQUIRE(q.cancel(request_id{3}).ok());
    cluster_state st{one_rack({8})};
    auto res = q.schedule(st, placer{}, now);
    CHECK(placed_ids(res) == std::set<uint64_t>{2});
    // Decay: one half-life halves the usage.
    CHECK(q.decayed_usage("heavy", t0 + 1h) == doctest::Approx(4 * 3600.0));
    CHECK(q.decayed_usage("heavy", t0 + 2h) == doctest::Approx(2 * 3600.0));
  }

  TEST_CASE("fair share weighs usage by the tenant's share") {
    queue_policy pol = no_aging();
    pol.weights["big"] = 3;
    pol.weights["small"] = 1;
    scheduling_queue q{pol};
    CHECK(q.fair_share_factor("big", t0) == doctest::Approx(1.0)); // nobody used anything
    q.record_usage("big", 3000, t0);
    q.record_usage("small", 1000, t0);
    // Usage in proportion to the weights: equal factors, 2^-1.
    CHECK(q.fair_share_factor("big", t0) == doctest::Approx(0.5));
    CHECK(q.fair_share_factor("small", t0) == doctest::Approx(0.5));
    q.record_usage("small", 1000, t0);
    CHECK(q.fair_share_factor("big", t0) > q.fair_share_factor("small", t0));
  }

  TEST_CASE("charging running allocations integrates usage with decay") {
    queue_policy pol;
    pol.usage_half_life = 1000h; // nearly no decay over an hour
    scheduling_queue q{pol};
    cluster_state st{one_rack({8})};
    REQUIRE(q.submit(job(1, 4, 0, 2h, t0, "t")).ok());
    REQUIRE(q.schedule(st, placer{}, t0).placed.size() == 1);
    q.charge(st, t0 + 30min);
    q.charge(st, t0 + 1h); // charged twice, counted once
    CHECK(q.decayed_usage("t", t0 + 1h) == doctest::Approx(4 * 3600.0).epsilon(1e-3));
    // With a short half-life: 4 GPUs for one hour with h = 1h is
    // 4 * 3600 / ln 2 * (1 - 1/2).
    queue_policy fast;
    fast.usage_half_life = 1h;
    scheduling_queue f{fast};
    f.charge(st, t0 + 1h);
    CHECK(f.decayed_usage("t", t0 + 1h) ==
          doctest::Approx(4 * 3600.0 / std::log(2.0) * 0.5));
  }

  TEST_CASE("a tenant borrows idle quota and the owner reclaims it by preemption") {
    cluster_state st{one_rack({8, 8})};
    queue_policy pol = no_aging();
    pol.preemption.quotas["a"] = {8, 8};
    pol.preemption.quotas["b"] = {8, 8};
    scheduling_queue q{pol};
    auto b1 = job(1, 8, 5, 10h, t0, "b");
    b1.preemptible = true;
    b1.last_checkpoint = t0 + 55min; // cheapest to evict, but within b's quota
    auto b2 = job(2, 8, 5, 10h, t0 + 1s, "b");
    b2.preemptible = true;
    REQUIRE(q.submit(b1).ok());
    REQUIRE(q.submit(b2).ok());
    auto res = q.schedule(st, placer{}, t0);
    REQUIRE(res.placed.size() == 2);
    CHECK_FALSE(res.placed[0].borrowed); // a is idle: b borrows its quota
    CHECK(res.placed[1].borrowed);
    CHECK_FALSE(allocation_of(st, 1)->request.borrowed);
    CHECK(allocation_of(st, 2)->request.borrowed);

    // a's demand returns, at lower priority than b's work.
    REQUIRE(q.submit(job(3, 8, 0, 1h, t0 + 1h, "a")).ok());
    res = q.schedule(st, placer{}, t0 + 1h);
    CHECK(res.placed.empty());
    REQUIRE(res.preemption);
    REQUIRE(res.preemption->victims.size() == 1);
    auto victim = res.preemption->victims.front();
    CHECK(victim.request.value() == 2); // the borrowed one, not the cheaper b1
    CHECK(victim.reclaim);
    REQUIRE(res.reserved);
    CHECK(res.reserved->request.value() == 3);
    CHECK(pending_of(res, 3)->why.find("preemption planned") != std::string::npos);
    CHECK(st.find(victim.allocation) != nullptr); // the queue does not evict

    // The caller evicts (after a checkpoint) and runs another pass.
    REQUIRE(st.release(victim.allocation).ok());
    res = q.schedule(st, placer{}, t0 + 1h + 1min);
    REQUIRE(placed_ids(res) == std::set<uint64_t>{3});
    CHECK_FALSE(res.placed.front().borrowed);
    CHECK(q.pending().empty());
    st.check_invariants();
  }

  TEST_CASE(
      "borrowing stops at the borrow limit and non-preemptible work never borrows") {
    cluster_state st{one_rack({8, 8})};
    queue_policy pol = no_aging();
    pol.preemption.quotas["a"] = {4, 2};
    scheduling_queue q{pol};
    auto too_much = job(1, 8, 0, 1h, t0, "a");
    too_much.preemptible = true;
    auto fine = job(2, 6, 0, 1h, t0 + 1s, "a");
    fine.preemptible = true;
    auto rigid = job(3, 1, 0, 1h, t0 + 2s, "a");    // not preemptible
    auto stranger = job(4, 2, 0, 1h, t0 + 3s, "c"); // no quota: everything is borrowed
    stranger.preemptible = true;
    for (auto& r : {too_much, fine, rigid, stranger})
      REQUIRE(q.submit(r).ok());
    auto res = q.schedule(st, placer{}, t0);
    CHECK(placed_ids(res) == std::set<uint64_t>{2, 4});
    for (auto& p : res.placed)
      CHECK(p.borrowed);
    REQUIRE(pending_of(res, 1));
    CHECK(pending_of(res, 1)->why.find("borrow limit") != std::string::npos);
    REQUIRE(pending_of(res, 3));
    CHECK(pending_of(res, 3)->why.find("non-preemptible") != std::string::npos);
    CHECK_FALSE(res.reserved); // requests blocked by quota do not hold reservations
  }

  TEST_CASE(
      "EASY backfill runs a short job in the hole and refuses a long or unknown one") {
    cluster_state st{one_rack({8})};
    // 6 of 8 GPUs busy until 2h.
    auto running = job(1, 6, 0, 2h, t0);
    {
      auto out = placer{}.place(st, running);
      REQUIRE(out.plan);
      REQUIRE(st.commit(running, *out.plan, t0).ok());
    }
    scheduling_queue q{no_aging()};
    REQUIRE(q.submit(job(10, 8, 5, 1h, t0)).ok());      // head: needs the whole node
    REQUIRE(q.submit(job(11, 2, 1, 3h, t0 + 1s)).ok()); // long: would run past 2h
    REQUIRE(q.submit(job(12, 2, 1, 0s, t0 + 2s)).ok()); // unknown runtime
    REQUIRE(q.submit(job(13, 2, 1, 1h, t0 + 3s)).ok()); // short: ends by 1h10m
    auto now = t0 + 10min;
    auto res = q.schedule(st, placer{}, now);
    REQUIRE(res.reserved);
    CHECK(res.reserved->request.value() == 10);
    REQUIRE(res.reserved->start);
    CHECK(*res.reserved->start == t0 + 2h);
    CHECK_FALSE(res.preemption); // nothing is preemptible
    REQUIRE(placed_ids(res) == std::set<uint64_t>{13});
    CHECK(res.placed.front().backfilled);
    REQUIRE(pending_of(res, 11));
    CHECK(pending_of(res, 11)->why.find("after request 10's reservation") !=
          std::string::npos);
    REQUIRE(pending_of(res, 12));
    CHECK(pending_of(res, 12)->why.find("runtime is unknown") != std::string::npos);

    // The head's reservation does not move, and it starts on time.
    finish_due(st, t0 + 1h + 10min);
    res = q.schedule(st, placer{}, t0 + 1h + 10min);
    REQUIRE(res.reserved);
    CHECK(*res.reserved->start == t0 + 2h);
    CHECK(res.placed
              .empty()); // the long job still may not start: 2 GPUs free, but ends late
    finish_due(st, t0 + 2h);
    res = q.schedule(st, placer{}, t0 + 2h);
    CHECK(placed_ids(res).count(10) == 1);
    st.check_invariants();
  }

  TEST_CASE("a long job backfills into capacity the reservation does not need") {
    cluster_state st{one_rack({8, 4})};
    auto running = job(1, 8, 0, 2h, t0);
    {
      auto out = placer{}.place(st, running);
      REQUIRE(out.plan);
      REQUIRE(st.commit(running, *out.plan, t0).ok());
      REQUIRE(out.plan->bundles.front().node.value() == 0);
    }
    scheduling_queue q{no_aging()};
    REQUIRE(q.submit(job(10, 8, 5, 1h, t0)).ok()); // head: only node 0 is big enough
    REQUIRE(q.submit(job(11, 4, 1, 10h, t0 + 1s)).ok()); // long, fits node 1
    REQUIRE(q.submit(job(12, 4, 1, 0s, t0 + 2s))
                .ok()); // unknown runtime: never ahead of a head
    auto res = q.schedule(st, placer{}, t0 + 1min);
    REQUIRE(res.reserved);
    CHECK(*res.reserved->start == t0 + 2h);
    CHECK(placed_ids(res) == std::set<uint64_t>{11});
    CHECK(res.placed.front().backfilled);
    CHECK(allocation_of(st, 11)->plan.bundles.front().node.value() == 1);
    finish_due(st, t0 + 2h);
    res = q.schedule(st, placer{}, t0 + 2h);
    CHECK(placed_ids(res).count(10) == 1); // not delayed by the 10h job
  }

  TEST_CASE("with backfill off nothing starts ahead of a reserved head") {
    cluster_state st{one_rack({8})};
    auto running = job(1, 6, 0, 2h, t0);
    auto out = placer{}.place(st, running);
    REQUIRE(st.commit(running, *out.plan, t0).ok());
    queue_policy pol = no_aging();
    pol.backfill = false;
    scheduling_queue q{pol};
    REQUIRE(q.submit(job(10, 8, 5, 1h, t0)).ok());
    REQUIRE(q.submit(job(11, 1, 1, 1min, t0)).ok());
    auto res = q.schedule(st, placer{}, t0 + 1min);
    CHECK(res.placed.empty());
    CHECK(pending_of(res, 11)->why.find("backfill is off") != std::string::npos);
  }

  TEST_CASE("the head gets a preemption plan, and work that does not need its GPUs still "
            "runs") {
    cluster_state st{one_rack({8, 2})};
    auto low = job(1, 8, 0, 10h, t0);
    low.preemptible = true;
    low.last_checkpoint = t0 + 30min;
    auto out = placer{}.place(st, low);
    REQUIRE(st.commit(low, *out.plan, t0).ok());
    scheduling_queue q{no_aging()};
    REQUIRE(q.submit(job(10, 8, 5, 1h, t0 + 1h)).ok());
    REQUIRE(q.submit(job(11, 2, 1, 5h, t0 + 1h)).ok()); // fits node 1, away from the head
    auto now = t0 + 1h;
    auto res = q.schedule(st, placer{}, now);
    REQUIRE(res.preemption);
    CHECK(res.preemption->incoming.value() == 10);
    REQUIRE(res.preemption->victims.size() == 1);
    CHECK(res.preemption->victims.front().request.value() == 1);
    CHECK(res.preemption->lost_gpu_seconds == doctest::Approx(8 * 1800.0));
    REQUIRE(res.reserved);
    CHECK(res.reserved->start == now);
    CHECK(placed_ids(res) == std::set<uint64_t>{11});
    CHECK(allocation_of(st, 1) != nullptr); // still running: the actor evicts
    REQUIRE(st.release(res.preemption->victims.front().allocation).ok());
    res = q.schedule(st, placer{}, now + 1min);
    CHECK(placed_ids(res) == std::set<uint64_t>{10});
    CHECK_FALSE(res.preemption);
  }

  TEST_CASE("property: every pending request explains itself, nothing overcommits, and "
            "backfill "
            "leaves the head's reserved capacity free") {
    size_t passes = 0, placed = 0, pending_seen = 0, reservations = 0, preemptions = 0,
           backfilled = 0;
    for (uint64_t seed = 1; seed <= 40; ++seed) {
      rng r{seed * 104729};
      generated_cluster g;
      g.racks = 1 + r.below(2);
      g.nodes_per_rack = 1 + r.below(3);
      g.gpus_per_node = 4 + 4 * r.below(2);
      g.spot_fraction = 0.25;
      g.seed = seed;
      cluster_state st{generate_cluster(g)};
      queue_policy pol;
      pol.aging_interval = 15min;
      pol.usage_half_life = 6h;
      if (r.chance(0.5)) {
        pol.preemption.quotas["a"] = {static_cast<double>(r.below(8)), 8};
        pol.preemption.quotas["b"] = {static_cast<double>(r.below(8)), 4};
      }
      pol.preemption.search_budget = 256;
      scheduling_queue q{pol};
      uint64_t next_id = 1;
      auto now = t0;
      // How long each job really runs: its estimate, or less, or (unknown
      // estimate) anything.
      std::map<uint64_t, duration> actual;
      for (int step = 0; step < 30; ++step) {
        now += std::chrono::minutes(5 + r.below(55));
        std::vector<allocation_id> done;
        for (auto& [id, a] : st.allocations())
          if (a.start + actual.at(a.request.id.value()) <= now) done.push_back(id);
        for (auto id : done)
          REQUIRE(st.release(id).ok());
        for (uint32_t k = r.below(4); k > 0; --k) {
          auto est = std::chrono::minutes(r.below(4) * 60);
          actual[next_id] = est.count() == 0 ? std::chrono::minutes(30 + r.below(150))
                            : r.chance(0.3)  ? est / 2
                                             : est;
          auto j =
              job(next_id++, 1 + r.below(g.gpus_per_node + 2),
                  static_cast<int32_t>(r.below(4)), est, now, r.chance(0.5) ? "a" : "b");
          j.preemptible = r.chance(0.6);
          j.spot_tolerant = r.chance(0.5);
          if (r.chance(0.3)) {
            j.bundles.push_back(j.bundles.front());
            j.placement_strategy = r.chance(0.5) ? strategy::spread : strategy::topology;
          }
          REQUIRE(q.submit(j).ok());
        }
        auto res = q.schedule(st, placer{}, now);
        ++passes;
        st.check_invariants();
        CHECK(res.pending.size() == q.pending().size());
        std::set<uint64_t> seen;
        for (auto& p : res.pending) {
          CHECK_FALSE(p.why.empty());
          CHECK(seen.insert(p.request.value()).second);
        }
        for (auto& p : res.placed) {
          CHECK(seen.insert(p.request.value()).second);
          const auto* a = st.find(p.allocation);
          REQUIRE(a != nullptr);
          CHECK(a->request.borrowed == p.borrowed);
          if (p.borrowed) CHECK(a->request.preemptible);
          if (p.backfilled) {
            CHECK(a->request.runtime_estimate.count() >
                  0); // never unknown ahead of a head
            ++backfilled;
          }
        }
        placed += res.placed.size();
        pending_seen += res.pending.size();
        if (res.reserved && !res.preemption) {
          // Backfill did not take what the head needs: with every allocation
          // that ends by the reservation released (all of them when it waits
          // for unknown runtimes), the head's reserved plan still commits.
          ++reservations;
          cluster_state then = st;
          std::vector<allocation_id> ending;
          for (auto& [id, a] : then.allocations()) {
            bool known = a.request.runtime_estimate.count() > 0;
            if (!res.reserved->start ||
                (known && a.start + a.request.runtime_estimate <= *res.reserved->start))
              ending.push_back(id);
          }
          for (auto id : ending)
            REQUIRE(then.release(id).ok());
          const auto& head = *std::find_if(
              q.pending().begin(), q.pending().end(),
              [&](const gang_request& x) { return x.id == res.reserved->request; });
          auto c = then.commit(head, res.reserved->plan, now);
          INFO("head " << head.id << ": " << (c.ok() ? "" : c.err().to_string()));
          CHECK(c.ok());
        }
        if (res.preemption) {
          ++preemptions;
          for (auto& v : res.preemption->victims) {
            const auto* a = st.find(v.allocation);
            REQUIRE(a != nullptr);
            CHECK(a->request.preemptible);
            // The caller evicts at once.
            REQUIRE(st.release(v.allocation).ok());
          }
        }
      }
    }
    MESSAGE("passes " << passes << ", placed " << placed << " (backfilled " << backfilled
                      << "), pending seen " << pending_seen << ", reservations "
                      << reservations << ", preemption plans " << preemptions);
    CHECK(placed > 200);
    CHECK(pending_seen > 200);
    CHECK(reservations > 50);
    CHECK(preemptions > 5);
    CHECK(backfilled > 5);
  }
}
