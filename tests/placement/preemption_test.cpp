// Preemption: who may be evicted, that the incoming gang fits afterwards,
// and that the lost work is minimal (checked against brute force over every
// subset of the allowed victims on small random clusters).

#include "troupe/placement/preemption.hpp"
#include "troupe/runtime/random.hpp"

#include <chrono>
#include <cmath>
#include <doctest/doctest.h>
#include <set>

using namespace troupe::placement;
using namespace std::chrono_literals;
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

gang_request job(uint64_t id, uint32_t gpus, int32_t priority, bool preemptible,
                 std::string tenant = "default") {
  gang_request r;
  r.id = request_id{id};
  r.tenant = std::move(tenant);
  r.priority = priority;
  r.preemptible = preemptible;
  bundle b;
  b.gpus = gpus;
  b.cpu_milli = 1000;
  r.bundles.push_back(b);
  return r;
}

/// A gang of one bundle per entry of `gpus`.
gang_request gang_of(uint64_t id, std::vector<uint32_t> gpus, int32_t priority,
                     std::string tenant) {
  auto r = job(id, gpus.front(), priority, false, std::move(tenant));
  for (size_t i = 1; i < gpus.size(); ++i) {
    r.bundles.push_back(r.bundles.front());
    r.bundles.back().gpus = gpus[i];
  }
  return r;
}

/// Places and commits `r` as started at `start`; its allocation id.
allocation_id run(cluster_state& st, const gang_request& r, time_point start) {
  placer p;
  auto out = p.place(st, r);
  REQUIRE(out.plan);
  auto id = st.commit(r, *out.plan, start);
  REQUIRE(id.ok());
  return *id;
}

std::set<uint64_t> victim_ids(const preemption_plan& plan) {
  std::set<uint64_t> s;
  for (auto& v : plan.victims)
    s.insert(v.allocation.value());
  return s;
}

/// The incoming gang fits on a copy of `st` with the victims released.
bool fits_after(const cluster_state& st, const gang_request& in,
                const preemption_plan& plan) {
  cluster_state copy = st;
  for (auto& v : plan.victims)
    if (!copy.release(v.allocation).ok()) return false;
  auto ok = copy.commit(in, plan.placement, t0).ok();
  copy.check_invariants();
  return ok;
}

// -- an independent statement of the rules, for brute force ---------------------

double gpus_of(const placement_plan& p) {
  double g = 0;
  for (auto& b : p.bundles)
    g += static_cast<double>(b.gpus.size()) + b.gpu_milli / 1000.0;
  return g;
}

double lost_of(const allocation& a, time_point now) {
  auto since = std::max(a.start, a.request.last_checkpoint);
  double s = std::chrono::duration<double>(now - since).count();
  return s > 0 ? gpus_of(a.plan) * s : 0.0;
}

struct rules {
  const cluster_state& st;
  const gang_request& in;
  const quota_table& quotas;
  std::map<std::string, double> held;
  bool reclaim_allowed = false;

  rules(const cluster_state& s, const gang_request& i, const quota_table& q)
      : st(s), in(i), quotas(q) {
    for (auto& [id, a] : st.allocations())
      held[a.request.tenant] += gpus_of(a.plan);
    double need = 0;
    for (uint32_t k = 0; k < in.required_bundles(); ++k)
      need += in.bundles[k].gpus + in.bundles[k].gpu_milli / 1000.0;
    reclaim_allowed =
        !quotas.empty() && held[in.tenant] + need <= quota(in.tenant) + 1e-9;
  }
  double quota(const std::string& t) const {
    auto it = quotas.find(t);
    return it == quotas.end() ? 0.0 : it->second.guaranteed_gpus;
  }
  bool lower(const allocation& a) const { return a.request.priority < in.priority; }
  bool reclaimable(const allocation& a) const {
    return !lower(a) && reclaim_allowed && a.request.borrowed &&
           a.request.tenant != in.tenant &&
           held.at(a.request.tenant) > quota(a.request.tenant) + 1e-9;
  }
  bool allowed(const allocation& a) const {
    return a.request.preemptible && (lower(a) || reclaimable(a));
  }
  /// Per tenant: reclaim victims minus the largest stay under the excess.
  bool set_ok(const std::vector<const allocation*>& set) const {
    std::map<std::string, std::pair<double, double>> t;
    for (auto* a : set) {
      if (!reclaimable(*a)) continue;
      auto& [sum, mx] = t[a->request.tenant];
      sum += gpus_of(a->plan);
      mx = std::max(mx, gpus_of(a->plan));
    }
    for (auto& [name, sm] : t)
      if (sm.first - sm.second >= held.at(name) - quota(name) - 1e-9) return false;
    return true;
  }
};

struct brute_result {
  bool found = false;
  double cost = 0;
  size_t count = 0;
};

/// The cheapest (lost work, then count) subset of allowed victims after whose
/// release the placer fits the gang.
brute_result brute_force(const cluster_state& st, const gang_request& in,
                         const quota_table& q, time_point now) {
  rules r{st, in, q};
  std::vector<const allocation*> allowed;
  for (auto& [id, a] : st.allocations())
    if (r.allowed(a)) allowed.push_back(&a);
  placer p;
  std::vector<std::pair<double, size_t>> feasible;
  for (uint32_t mask = 0; mask < (1u << allowed.size()); ++mask) {
    std::vector<const allocation*> set;
    double cost = 0;
    for (size_t i = 0; i < allowed.size(); ++i)
      if (mask & (1u << i)) {
        set.push_back(allowed[i]);
        cost += lost_of(*allowed[i], now);
      }
    if (!r.set_ok(set)) continue;
    cluster_state copy = st;
    for (auto* a : set)
      REQUIRE(copy.release(a->id).ok());
    if (p.place(copy, in).plan) feasible.push_back({cost, set.size()});
  }
  brute_result b;
  if (feasible.empty()) return b;
  b.found = true;
  b.cost = feasible.front().first;
  for (auto& [c, n] : feasible)
    b.cost = std::min(b.cost, c);
  b.count = SIZE_MAX;
  for (auto& [c, n] : feasible)
    if (c <= b.cost + 1e-6 * std::max(1.0, b.cost)) b.count = std::min(b.count, n);
  return b;
}

cluster_topology random_cluster(rng& r) {
  cluster_topology t;
  uint32_t nracks = 1 + r.below(2);
  for (uint32_t k = 0; k < nracks; ++k)
    t.racks.push_back({"rack" + std::to_string(k), 0, 1.0});
  uint32_t nodes = 1 + r.below(3);
  for (uint32_t i = 0; i < nodes; ++i) {
    auto n = make_node("n" + std::to_string(i), 3 + r.below(6));
    n.rack = r.below(nracks);
    n.cpu_milli = 8000 + 1000 * r.below(8);
    for (uint32_t g = 0; g < n.gpus.size(); ++g)
      n.gpus[g].nvlink_domain = g % (1 + r.below(2));
    if (r.chance(0.15)) n.capacity = capacity_type::spot;
    t.nodes.push_back(std::move(n));
  }
  return t;
}

const char* tenants[] = {"a", "b", "c"};

gang_request random_gang(rng& r, uint64_t id) {
  gang_request q;
  q.id = request_id{id};
  q.tenant = tenants[r.below(3)];
  q.priority = static_cast<int32_t>(r.below(4));
  q.preemptible = r.chance(0.75);
  q.spot_tolerant = r.chance(0.5);
  const strategy strategies[] = {strategy::pack, strategy::spread, strategy::strict_pack,
                                 strategy::strict_spread, strategy::topology};
  q.placement_strategy = strategies[r.below(5)];
  uint32_t n = 1 + r.below(2);
  for (uint32_t i = 0; i < n; ++i) {
    bundle b;
    if (r.chance(0.8))
      b.gpus = 1 + r.below(3);
    else
      b.gpu_milli = 250 * (1 + r.below(3));
    b.cpu_milli = 500 * r.below(4);
    q.bundles.push_back(b);
  }
  if (n > 1 && r.chance(0.3)) q.min_bundles = 1;
  return q;
}

/// Running work: small gangs, mostly preemptible, so that many are candidates.
gang_request random_running(rng& r, uint64_t id) {
  auto q = random_gang(r, id);
  q.preemptible = r.chance(0.85);
  q.bundles.resize(r.chance(0.8) ? 1 : 2);
  for (auto& b : q.bundles)
    if (b.gpus > 0) b.gpus = 1 + r.below(2);
  return q;
}

} // namespace

TEST_SUITE("preemption") {
  TEST_CASE("a higher-priority gang evicts the lower-priority allocation that loses "
            "least work") {
    cluster_state st{one_rack({8})};
    auto old_ckpt = job(1, 4, 0, true); // checkpointed at the start: 2h lost at now
    auto fresh = job(2, 4, 0, true);    // checkpointed 10 minutes ago
    fresh.last_checkpoint = t0 + 110min;
    auto a1 = run(st, old_ckpt, t0);
    auto a2 = run(st, fresh, t0);
    auto in = job(3, 4, 5, false);
    auto now = t0 + 2h;
    auto plan = select_victims(st, placer{}, in, now, {});
    REQUIRE(plan);
    CHECK(plan->exact);
    CHECK(victim_ids(*plan) == std::set<uint64_t>{a2.value()});
    CHECK(plan->lost_gpu_seconds == doctest::Approx(4 * 600.0));
    CHECK(plan->victims.front().lost_gpu_seconds == doctest::Approx(4 * 600.0));
    CHECK_FALSE(plan->victims.front().reclaim);
    CHECK(fits_after(st, in, *plan));
    CHECK(st.find(a1) != nullptr); // planning evicts nothing
    CHECK(st.find(a2) != nullptr);
  }

  TEST_CASE("with equal lost work the plan hits fewer jobs") {
    cluster_state st{one_rack({8})};
    // Two 2-GPU jobs running 1h, or one 4-GPU job running 1h: same lost work.
    run(st, job(1, 2, 0, true), t0 + 1h);
    run(st, job(2, 2, 0, true), t0 + 1h);
    auto big = run(st, job(3, 4, 0, true), t0 + 1h);
    auto plan = select_victims(st, placer{}, job(4, 4, 1, false), t0 + 2h, {});
    REQUIRE(plan);
    CHECK(victim_ids(*plan) == std::set<uint64_t>{big.value()});
  }

  TEST_CASE("non-preemptible and equal or higher priority work is never evicted") {
    cluster_state st{one_rack({8})};
    run(st, job(1, 4, 0, false), t0); // lower priority, but not preemptible
    run(st, job(2, 4, 3, true), t0);  // preemptible, same priority as the incoming gang
    auto none = select_victims(st, placer{}, job(3, 4, 3, false), t0 + 1h, {});
    CHECK_FALSE(none);
    preemption_policy off;
    off.enabled = false;
    CHECK_FALSE(select_victims(st, placer{}, job(4, 4, 9, false), t0 + 1h, off));
    // A gang larger than the cluster can never fit, whatever is evicted.
    CHECK_FALSE(select_victims(st, placer{}, job(5, 16, 9, false), t0 + 1h, {}));
  }

  TEST_CASE("a gang that fits now gets a plan without victims") {
    cluster_state st{one_rack({8})};
    run(st, job(1, 4, 0, true), t0);
    auto plan = select_victims(st, placer{}, job(2, 4, 9, false), t0 + 1h, {});
    REQUIRE(plan);
    CHECK(plan->victims.empty());
    CHECK(fits_after(st, job(2, 4, 9, false), *plan));
  }

  TEST_CASE("quota reclaim evicts borrowed allocations only, whatever their priority") {
    cluster_state st{one_rack({8, 8})};
    preemption_policy pol;
    pol.quotas["a"] = {8, 8};
    pol.quotas["b"] = {8, 8};
    auto own = job(1, 8, 5, true, "b"); // within b's quota
    own.last_checkpoint = t0 + 55min;   // cheapest to evict, but not borrowed
    auto lent = job(2, 8, 5, true, "b");
    lent.borrowed = true;
    auto a_own = run(st, own, t0);
    auto a_lent = run(st, lent, t0);
    auto in = job(3, 8, 0, false, "a"); // lower priority than both, within a's quota
    auto plan = select_victims(st, placer{}, in, t0 + 1h, pol);
    REQUIRE(plan);
    CHECK(victim_ids(*plan) == std::set<uint64_t>{a_lent.value()});
    CHECK(plan->victims.front().reclaim);
    CHECK(fits_after(st, in, *plan));
    (void)a_own;
    // Beyond its quota a tenant cannot reclaim.
    CHECK_FALSE(select_victims(st, placer{}, gang_of(4, {8, 1}, 0, "a"), t0 + 1h, pol));
    // With reclaim limited to lower priority, the priority-5 borrower stays.
    pol.reclaim_ignores_priority = false;
    CHECK_FALSE(select_victims(st, placer{}, in, t0 + 1h, pol));
  }

  TEST_CASE(
      "reclaim takes a tenant no further below its quota than the last victim needs") {
    cluster_state st{one_rack({4, 4, 4})};
    preemption_policy pol;
    pol.quotas["a"] = {8, 8};
    pol.quotas["b"] = {6, 8};
    // b holds 12 of its 6: three borrowed 4-GPU jobs (marked borrowed as the
    // queue would mark whatever ran beyond the quota). Excess 6.
    for (uint64_t i = 1; i <= 3; ++i) {
      auto r = job(i, 4, 0, true, "b");
      r.borrowed = true;
      run(st, r, t0);
    }
    // a needs 8: two victims; 4 (first) < 6 excess, so allowed.
    auto plan = select_victims(st, placer{}, gang_of(10, {4, 4}, 0, "a"), t0 + 1h, pol);
    REQUIRE(plan);
    CHECK(plan->victims.size() == 2);
    // With an excess of only 4 (quota 8), taking two would push b 4 below
    // its quota before the second eviction: not allowed.
    pol.quotas["b"] = {8, 8};
    CHECK_FALSE(select_victims(st, placer{}, gang_of(11, {4, 4}, 0, "a"), t0 + 1h, pol));
  }

  TEST_CASE(
      "the greedy fallback still returns a plan that fits when the budget runs out") {
    cluster_state st{one_rack({8, 8})};
    for (uint64_t i = 1; i <= 8; ++i)
      run(st, job(i, 2, 0, true), t0 + std::chrono::minutes(i));
    auto in = job(20, 8, 1, false);
    in.placement_strategy = strategy::strict_pack;
    preemption_policy tiny;
    tiny.search_budget = 3;
    auto plan = select_victims(st, placer{}, in, t0 + 2h, tiny);
    REQUIRE(plan);
    CHECK_FALSE(plan->exact);
    CHECK(fits_after(st, in, *plan));
    auto best = select_victims(st, placer{}, in, t0 + 2h, {});
    REQUIRE(best);
    CHECK(best->exact);
    CHECK(best->lost_gpu_seconds <= plan->lost_gpu_seconds + 1e-6);
    auto b = brute_force(st, in, {}, t0 + 2h);
    REQUIRE(b.found);
    CHECK(best->lost_gpu_seconds == doctest::Approx(b.cost));
    CHECK(best->victims.size() == b.count);
  }

  TEST_CASE("property: victims are allowed, the gang fits after eviction, lost work is "
            "minimal") {
    int planned = 0, with_victims = 0, none = 0, with_reclaim = 0, fits_now = 0;
    size_t candidates = 0;
    int multi = 0, greedy = 0, greedy_worse = 0;
    for (uint64_t seed = 1; seed <= 600; ++seed) {
      rng r{seed * 7919};
      cluster_state st{random_cluster(r)};
      placer p;
      quota_table quotas;
      if (r.chance(0.5))
        for (auto t : tenants)
          quotas[t] = {static_cast<double>(r.below(4)), 100};
      // Fill with up to 10 allocations started at random times.
      for (uint64_t i = 1; i <= 24 && st.allocations().size() < 10; ++i) {
        auto g = random_running(r, i);
        g.borrowed = !quotas.empty() && r.chance(0.5);
        if (r.chance(0.5)) g.last_checkpoint = t0 + std::chrono::minutes(r.below(600));
        auto out = p.place(st, g);
        if (out.plan)
          REQUIRE(st.commit(g, *out.plan, t0 + std::chrono::minutes(r.below(600))).ok());
      }
      auto in = random_gang(r, 100);
      in.priority = static_cast<int32_t>(1 + r.below(4));
      if (!quotas.empty() && r.chance(0.5)) {
        // Often within its own quota, so that it may reclaim.
        double held = 0, need = 0;
        for (auto& [id, a] : st.allocations())
          if (a.request.tenant == in.tenant) held += gpus_of(a.plan);
        for (uint32_t k = 0; k < in.required_bundles(); ++k)
          need += in.bundles[k].gpus + in.bundles[k].gpu_milli / 1000.0;
        quotas[in.tenant].guaranteed_gpus = held + need + r.below(3);
      }
      auto now = t0 + 12h;
      preemption_policy pol;
      pol.quotas = quotas;
      auto plan = select_victims(st, p, in, now, pol);
      auto b = brute_force(st, in, quotas, now);
      INFO("seed " << seed << ", " << st.allocations().size() << " allocations");
      REQUIRE(plan.has_value() == b.found);
      if (!plan) {
        ++none;
        continue;
      }
      ++planned;
      rules rl{st, in, quotas};
      for (auto& [id, a] : st.allocations())
        candidates += rl.allowed(a);
      for (auto& v : plan->victims) {
        const auto* a = st.find(v.allocation);
        REQUIRE(a != nullptr);
        CHECK(a->request.preemptible);
        CHECK(rl.allowed(*a));
        if (quotas.empty()) CHECK(a->request.priority < in.priority);
        CHECK(v.reclaim == rl.reclaimable(*a));
        CHECK(v.lost_gpu_seconds == doctest::Approx(lost_of(*a, now)));
        if (v.reclaim) ++with_reclaim;
      }
      CHECK(fits_after(st, in, *plan));
      CHECK(plan->exact);
      CHECK(plan->lost_gpu_seconds == doctest::Approx(b.cost).epsilon(1e-9));
      CHECK(plan->victims.size() == b.count);
      if (plan->victims.empty())
        ++fits_now;
      else
        ++with_victims;
      if (plan->victims.size() > 1) ++multi;
      // With almost no budget greedy decides: still allowed victims and a
      // gang that fits, never cheaper than the optimum.
      pol.search_budget = 2;
      auto rough = select_victims(st, p, in, now, pol);
      REQUIRE(rough);
      for (auto& v : rough->victims)
        CHECK(rl.allowed(*st.find(v.allocation)));
      CHECK(fits_after(st, in, *rough));
      CHECK(rough->lost_gpu_seconds >= plan->lost_gpu_seconds - 1e-6);
      if (!rough->exact) {
        ++greedy;
        if (rough->lost_gpu_seconds > plan->lost_gpu_seconds + 1e-6) ++greedy_worse;
      }
    }
    MESSAGE("allowed victims per planned case "
            << static_cast<double>(candidates) / planned);
    MESSAGE("plans " << planned << " (with victims " << with_victims
                     << ", several victims " << multi << ", greedy fallbacks " << greedy
                     << " of which costlier " << greedy_worse << ", fits now " << fits_now
                     << ", reclaim victims " << with_reclaim << "), no plan " << none);
    CHECK(with_victims > 300);
    CHECK(none > 50);
    CHECK(with_reclaim > 20);
    CHECK(multi > 50);
    CHECK(greedy > 50);
  }
}
