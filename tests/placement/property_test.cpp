// Property tests: random clusters, requests, bogus plans and releases; the
// accounting invariants are checked after every step.

#include "troupe/placement/errc.hpp"
#include "troupe/placement/placer.hpp"
#include "troupe/runtime/random.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <set>

using namespace troupe::placement;

namespace {

struct rng {
  uint64_t s;
  uint64_t next() { return troupe::splitmix64(s); }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
  bool chance(double p) { return troupe::unit_double(s) < p; }
};

cluster_topology random_cluster(rng& r) {
  cluster_topology t;
  uint32_t nracks = 1 + r.below(3);
  for (uint32_t k = 0; k < nracks; ++k)
    t.racks.push_back({"rack" + std::to_string(k), 0, 1.0 + r.below(3)});
  uint32_t nodes = 2 + r.below(7);
  const char* models[] = {"H100-80GB", "A100-80GB", "V100-32GB"};
  for (uint32_t i = 0; i < nodes; ++i) {
    node_spec n;
    n.name = "n" + std::to_string(i);
    n.rack = r.below(nracks);
    n.cpu_milli = 8000 + 1000 * r.below(32);
    n.memory_mib = 16384 + 1024 * r.below(64);
    n.capacity = r.chance(0.2) ? capacity_type::spot : capacity_type::on_demand;
    if (r.chance(0.3)) n.node_labels["zone"] = r.chance(0.5) ? "a" : "b";
    uint32_t gpus = r.below(9);
    uint32_t islands = 1 + r.below(2);
    std::string model = models[r.below(3)];
    for (uint32_t g = 0; g < gpus; ++g) {
      gpu_spec s;
      s.model = model;
      s.nvlink_domain = g % islands;
      uint32_t mode = r.below(10);
      if (mode < 2 && model != "V100-32GB")
        s.sharing = gpu_sharing::mig;
      else if (mode < 4) {
        s.sharing = gpu_sharing::time_sliced;
        s.time_slice_replicas = 1 + r.below(4);
      }
      n.gpus.push_back(s);
    }
    t.nodes.push_back(std::move(n));
  }
  return t;
}

gang_request random_request(rng& r, uint64_t id) {
  gang_request q;
  q.id = request_id{id};
  q.placement_strategy = static_cast<strategy>(r.below(5));
  q.spot_tolerant = r.chance(0.5);
  q.require_nvlink_domain = r.chance(0.1);
  uint32_t n = 1 + r.below(4);
  const char* profiles[] = {"1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"};
  for (uint32_t i = 0; i < n; ++i) {
    bundle b;
    switch (r.below(5)) {
    case 0:
    case 1:
      b.gpus = 1 + r.below(4);
      break;
    case 2:
      b.gpu_milli = 100 * (1 + r.below(9));
      break;
    case 3:
      b.mig_profile = profiles[r.below(4)];
      break;
    default:
      break;
    }
    b.cpu_milli = 500 * r.below(8);
    b.memory_mib = 1024 * r.below(8);
    if (!b.wants_gpu() && b.cpu_milli == 0) b.cpu_milli = 100;
    if (r.chance(0.2)) b.gpu_models = {r.chance(0.5) ? "H100-80GB" : "A100-80GB"};
    if (r.chance(0.1)) b.node_selector["zone"] = "a";
    q.bundles.push_back(b);
  }
  if (r.chance(0.3)) q.min_bundles = 1 + r.below(n);
  return q;
}

/// A plan with random damage: another node, other GPUs, a dropped bundle.
placement_plan mangle(rng& r, const cluster_state& st, placement_plan p) {
  if (p.bundles.empty()) return p;
  auto& b = p.bundles[r.below(static_cast<uint32_t>(p.bundles.size()))];
  switch (r.below(4)) {
  case 0:
    b.node = node_id{r.below(static_cast<uint32_t>(st.node_count()))};
    break;
  case 1:
    for (auto& g : b.gpus)
      g = r.below(9);
    break;
  case 2:
    p.bundles.erase(p.bundles.begin());
    break;
  default:
    if (b.shared_gpu) b.shared_gpu = r.below(9);
    b.mig_start = r.below(8);
    break;
  }
  return p;
}

uint64_t gpu_milli(const placement_plan& p) {
  uint64_t m = 0;
  for (auto& b : p.bundles)
    m += 1000 * b.gpus.size() + b.gpu_milli;
  return m;
}

struct resize_counts {
  uint64_t shrinks = 0, refused_shrinks = 0, grows = 0, rejected_grows = 0, no_room = 0;
};

/// One random resize of allocation `id`: a shrink (sometimes below the
/// minimum, which must be refused), or a grow by the placer's plan (sometimes
/// damaged, which must fit as a whole or change nothing). Checks the exact
/// GPU accounting and that the id stays.
void resize_step(rng& r, cluster_state& st, const placer& p, allocation_id id,
                 resize_counts& counts) {
  const allocation before = *st.find(id);
  const auto placed = static_cast<uint32_t>(before.plan.bundles.size());
  const auto required = before.request.required_bundles();
  const auto total = static_cast<uint32_t>(before.request.bundles.size());
  const auto milli = st.allocated_gpu_milli();
  if (placed == total || r.chance(0.3)) {
    if (required > 0 && r.chance(0.2)) {
      auto res = st.shrink(id, required - 1);
      REQUIRE_FALSE(res.ok());
      REQUIRE(res.err().code() == errc::invalid_argument);
      REQUIRE(st.allocated_gpu_milli() == milli);
      REQUIRE(st.find(id)->plan.bundles.size() == placed);
      ++counts.refused_shrinks;
      return;
    }
    auto target = required + r.below(placed - required + 1);
    auto res = st.shrink(id, target);
    INFO("shrink: " << (res.ok() ? "" : res.err().to_string()));
    REQUIRE(res.ok());
    REQUIRE(res->id == id);
    REQUIRE(res->plan.bundles.size() == target);
    placement_plan kept = before.plan;
    std::sort(kept.bundles.begin(), kept.bundles.end(),
              [](auto& a, auto& b) { return a.bundle < b.bundle; });
    kept.bundles.resize(target);
    REQUIRE(st.allocated_gpu_milli() == milli - gpu_milli(before.plan) + gpu_milli(kept));
    ++counts.shrinks;
    return;
  }
  auto out = p.place_growth(st, before, placed + 1 + r.below(total - placed));
  if (!out.plan) {
    REQUIRE_FALSE(out.explanation.empty());
    ++counts.no_room;
    return;
  }
  REQUIRE(out.bundles_placed == out.plan->bundles.size());
  REQUIRE(out.bundles_placed >= 1);
  bool damaged = r.chance(0.3);
  auto plan = damaged ? mangle(r, st, *out.plan) : *out.plan;
  auto res = st.grow(id, plan);
  INFO("grow of the placer's own plan: " << (res.ok() ? "" : res.err().to_string()));
  if (!damaged) REQUIRE(res.ok());
  if (res.ok()) {
    REQUIRE(res->id == id);
    REQUIRE(res->plan.bundles.size() == placed + plan.bundles.size());
    REQUIRE(st.allocated_gpu_milli() == milli + gpu_milli(plan));
    ++counts.grows;
  } else {
    ++counts.rejected_grows;
    REQUIRE(st.allocated_gpu_milli() == milli);
    REQUIRE(st.find(id)->plan.bundles.size() == placed);
  }
}

} // namespace

TEST_SUITE("placement properties") {
  TEST_CASE(
      "accounting never overcommits and gangs are all or nothing under random churn") {
    uint64_t commits = 0, rejected_mangled = 0, releases = 0;
    resize_counts counts;
    for (uint64_t seed = 1; seed <= 300; ++seed) {
      rng r{seed};
      cluster_state st{random_cluster(r)};
      placer p;
      std::vector<allocation_id> live;
      for (uint64_t step = 0; step < 300; ++step) {
        uint32_t action = r.below(10);
        if (action < 6) {
          auto q = random_request(r, step + 1);
          auto out = p.place(st, q);
          if (out.plan) {
            auto plan = *out.plan;
            if (r.chance(0.3)) {
              // A damaged plan either fits as a whole or changes nothing.
              auto before = st.allocated_gpu_milli();
              auto res = st.commit(q, mangle(r, st, plan), {});
              if (res.ok()) {
                live.push_back(*res);
                ++commits;
              } else {
                ++rejected_mangled;
                REQUIRE(st.allocated_gpu_milli() == before);
              }
            } else {
              auto res = st.commit(q, plan, {});
              INFO("commit of the placer's own plan: "
                   << (res.ok() ? "" : res.err().to_string()));
              REQUIRE(res.ok());
              live.push_back(*res);
              ++commits;
            }
          } else {
            REQUIRE_FALSE(out.explanation.empty());
          }
        } else if (!live.empty()) {
          auto i = r.below(static_cast<uint32_t>(live.size()));
          REQUIRE(st.release(live[i]).ok());
          live.erase(live.begin() + i);
          ++releases;
        }
        if (!live.empty() && r.chance(0.3)) {
          // Mostly an allocation that can change size (elastic, or not whole).
          auto pick = r.below(static_cast<uint32_t>(live.size()));
          for (size_t k = 0; k < live.size() && r.chance(0.9); ++k) {
            const auto& a = *st.find(live[(pick + k) % live.size()]);
            if (a.plan.bundles.size() > a.request.required_bundles() ||
                a.plan.bundles.size() < a.request.bundles.size()) {
              pick = static_cast<uint32_t>((pick + k) % live.size());
              break;
            }
          }
          resize_step(r, st, p, live[pick], counts);
          st.check_invariants();
        }
        st.check_invariants(); // aborts with context on any overcommit or drift
        for (auto& [id, a] : st.allocations()) {
          std::set<uint32_t> nodes, bundles;
          for (auto& b : a.plan.bundles) {
            nodes.insert(b.node.value());
            bundles.insert(b.bundle);
          }
          for (uint32_t k = 0; k < a.request.required_bundles(); ++k)
            REQUIRE(bundles.count(k));
          if (a.request.placement_strategy == strategy::strict_pack)
            REQUIRE(nodes.size() == 1);
          if (a.request.placement_strategy == strategy::strict_spread)
            REQUIRE(nodes.size() == a.plan.bundles.size());
          for (auto& b : a.plan.bundles) {
            const auto& sp = st.spec(b.node);
            if (sp.capacity == capacity_type::spot) REQUIRE(a.request.spot_tolerant);
            const auto& want = a.request.bundles[b.bundle];
            for (auto& [k, v] : want.node_selector)
              REQUIRE(sp.node_labels.at(k) == v);
          }
        }
      }
    }
    MESSAGE("commits " << commits << ", mangled plans rejected " << rejected_mangled
                       << ", releases " << releases);
    CHECK(commits > 5000);
    CHECK(rejected_mangled > 500);
    CHECK(releases > 5000);
    MESSAGE("shrinks " << counts.shrinks << ", refused shrinks " << counts.refused_shrinks
                       << ", grows " << counts.grows << ", rejected grows "
                       << counts.rejected_grows << ", no room to grow "
                       << counts.no_room);
    CHECK(counts.shrinks > 500);
    CHECK(counts.refused_shrinks > 100);
    CHECK(counts.grows > 300);
    CHECK(counts.rejected_grows > 50);
  }
}
