// Placement strategies and topology choices on hand-made clusters, and
// explanations of pending requests.

#include "troupe/placement/errc.hpp"
#include "troupe/placement/placer.hpp"

#include <doctest/doctest.h>
#include <set>

using namespace troupe::placement;

namespace {

node_spec make_node(std::string name, uint32_t rack, uint32_t gpus, uint32_t islands = 1,
                    std::string model = "H100-80GB") {
  node_spec n;
  n.name = std::move(name);
  n.rack = rack;
  n.cpu_milli = 64000;
  n.memory_mib = 512 * 1024;
  for (uint32_t g = 0; g < gpus; ++g) {
    gpu_spec s;
    s.model = model;
    s.nvlink_domain = g / (gpus / islands);
    s.nic_rail = g;
    n.gpus.push_back(s);
  }
  return n;
}

cluster_topology racks(uint32_t n) {
  cluster_topology t;
  for (uint32_t r = 0; r < n; ++r)
    t.racks.push_back({"rack-" + std::to_string(r), 0, 1.0});
  return t;
}

gang_request gang(uint32_t bundles, uint32_t gpus_each, strategy s) {
  gang_request r;
  r.id = request_id{1};
  r.placement_strategy = s;
  for (uint32_t i = 0; i < bundles; ++i) {
    bundle b;
    b.gpus = gpus_each;
    b.cpu_milli = 1000;
    b.memory_mib = 1024;
    r.bundles.push_back(b);
  }
  return r;
}

/// Takes whole GPUs `gpus` on node `n` with a throwaway allocation.
void occupy(cluster_state& st, uint32_t n, std::vector<uint32_t> gpus) {
  gang_request r;
  r.id = request_id{999};
  bundle b;
  b.gpus = static_cast<uint32_t>(gpus.size());
  r.bundles.push_back(b);
  placement_plan p;
  bundle_placement bp;
  bp.node = node_id{n};
  bp.gpus = std::move(gpus);
  p.bundles.push_back(bp);
  REQUIRE(st.commit(r, p, {}).ok());
}

std::set<uint32_t> nodes_of(const placement_plan& p) {
  std::set<uint32_t> s;
  for (auto& b : p.bundles)
    s.insert(b.node.value());
  return s;
}

} // namespace

TEST_SUITE("placer") {
  TEST_CASE("TOPOLOGY puts a 4-GPU gang in one free NVLink island, not across two") {
    auto t = racks(1);
    t.nodes.push_back(make_node("n0", 0, 8, 2)); // islands {0-3}, {4-7}
    t.nodes.push_back(make_node("n1", 0, 8, 2));
    cluster_state st{t};
    occupy(st, 0, {0, 1, 4, 5}); // n0: 2 free in each island
    occupy(st, 1, {0, 1, 2, 3}); // n1: island 1 fully free
    placer p;
    auto out = p.place(st, gang(4, 1, strategy::topology));
    REQUIRE(out.plan);
    CHECK(nodes_of(*out.plan) == std::set<uint32_t>{1});
    for (auto& b : out.plan->bundles)
      CHECK(b.gpus.front() >= 4);
    CHECK(out.allreduce_gbps == doctest::Approx(nvlink_gbps("H100-80GB")));
    REQUIRE(st.commit(gang(4, 1, strategy::topology), *out.plan, {}).ok());
    st.check_invariants();
  }

  TEST_CASE("TOPOLOGY keeps a gang in one rack before spreading over racks") {
    auto t = racks(2);
    t.nodes.push_back(make_node("a0", 0, 8));
    t.nodes.push_back(make_node("a1", 0, 8));
    t.nodes.push_back(make_node("b0", 1, 8));
    t.nodes.push_back(make_node("b1", 1, 8));
    cluster_state st{t};
    occupy(st, 0, {0, 1, 2, 3}); // rack 0: 4 + 8 free
    occupy(st, 2, {0, 1, 2});    // rack 1: 5 + 8 free
    occupy(st, 3, {0, 1, 2});
    placer p;
    auto out = p.place(st, gang(12, 1, strategy::topology));
    REQUIRE(out.plan);
    CHECK(nodes_of(*out.plan) == std::set<uint32_t>{0, 1});
    CHECK(out.allreduce_gbps == doctest::Approx(400.0 / 8));
  }

  TEST_CASE("TOPOLOGY spans the fewest racks when no rack is enough") {
    auto t = racks(3);
    for (uint32_t r = 0; r < 3; ++r) {
      t.nodes.push_back(make_node("r" + std::to_string(r) + "a", r, 8));
      t.nodes.push_back(make_node("r" + std::to_string(r) + "b", r, 8));
    }
    t.racks[1].uplink_oversubscription = 2.0;
    cluster_state st{t};
    occupy(st, 0, {0, 1, 2, 3, 4, 5}); // rack 0: 10 free
    occupy(st, 4, {0, 1, 2, 3});       // rack 2: 12 free; rack 1: 16 free
    placer p;
    auto out = p.place(st, gang(24, 1, strategy::topology));
    REQUIRE(out.plan);
    std::set<uint32_t> racks_used;
    for (auto& b : out.plan->bundles)
      racks_used.insert(st.spec(b.node).rack);
    CHECK(racks_used == std::set<uint32_t>{1, 2});
    CHECK(out.allreduce_gbps == doctest::Approx(400.0 / 8 / 2.0));
  }

  TEST_CASE("STRICT_PACK places all bundles on one node or not at all") {
    auto t = racks(1);
    t.nodes.push_back(make_node("n0", 0, 8));
    t.nodes.push_back(make_node("n1", 0, 8));
    cluster_state st{t};
    occupy(st, 0, {0, 1, 2, 3, 4});
    occupy(st, 1, {0, 1, 2, 3, 4});
    placer p;
    auto r = gang(2, 2, strategy::strict_pack);
    auto out = p.place(st, r);
    CHECK_FALSE(out.plan);
    CHECK_FALSE(out.never_fits);
    CHECK(out.explanation ==
          "needs 4 GPUs on one node; most free on one node is 3 (node n0)");
    auto ok = p.place(st, gang(3, 1, strategy::strict_pack));
    REQUIRE(ok.plan);
    CHECK(nodes_of(*ok.plan).size() == 1);
  }

  TEST_CASE("STRICT_SPREAD puts every bundle on a different node") {
    auto t = racks(1);
    for (int i = 0; i < 3; ++i)
      t.nodes.push_back(make_node("n" + std::to_string(i), 0, 8));
    cluster_state st{t};
    placer p;
    auto out = p.place(st, gang(3, 2, strategy::strict_spread));
    REQUIRE(out.plan);
    CHECK(nodes_of(*out.plan).size() == 3);
    auto four = p.place(st, gang(4, 1, strategy::strict_spread));
    CHECK_FALSE(four.plan);
    CHECK(four.never_fits);
    CHECK(four.explanation == "needs 4 distinct nodes; only 3 can host a bundle");
  }

  TEST_CASE(
      "SPREAD prefers distinct nodes but may share when it must; PACK prefers one") {
    auto t = racks(1);
    for (int i = 0; i < 2; ++i)
      t.nodes.push_back(make_node("n" + std::to_string(i), 0, 8));
    cluster_state st{t};
    placer p;
    auto spread = p.place(st, gang(2, 1, strategy::spread));
    REQUIRE(spread.plan);
    CHECK(nodes_of(*spread.plan).size() == 2);
    auto three = p.place(st, gang(3, 1, strategy::spread));
    REQUIRE(three.plan);
    CHECK(nodes_of(*three.plan).size() == 2);
    auto pack = p.place(st, gang(4, 2, strategy::pack));
    REQUIRE(pack.plan);
    CHECK(nodes_of(*pack.plan).size() == 1);
    auto pack_big = p.place(st, gang(5, 2, strategy::pack));
    REQUIRE(pack_big.plan);
    CHECK(nodes_of(*pack_big.plan).size() == 2);
  }

  TEST_CASE("a gang that needs one NVLink domain explains the largest free one") {
    auto t = racks(1);
    for (int i = 0; i < 18; ++i)
      t.nodes.push_back(make_node("n" + std::to_string(i), 0, 8));
    cluster_state st{t};
    for (uint32_t i = 0; i < 18; ++i)
      occupy(st, i,
             i == 17 ? std::vector<uint32_t>{0, 1} : std::vector<uint32_t>{0, 1, 2, 3});
    placer p;
    auto r = gang(1, 8, strategy::topology);
    r.require_nvlink_domain = true;
    auto out = p.place(st, r);
    CHECK_FALSE(out.plan);
    CHECK_FALSE(out.never_fits);
    CHECK(out.explanation ==
          "needs 8 GPUs in one NVLink domain; largest free domain has 6 (node n17)");
    auto huge = gang(2, 8, strategy::topology);
    huge.require_nvlink_domain = true;
    auto never = p.place(st, huge);
    CHECK(never.never_fits);
    CHECK(never.explanation ==
          "needs 16 GPUs in one NVLink domain; the largest domain has 8 GPUs");
  }

  TEST_CASE("an elastic gang takes as many bundles as fit, at least its minimum") {
    auto t = racks(1);
    t.nodes.push_back(make_node("n0", 0, 8));
    cluster_state st{t};
    occupy(st, 0, {0, 1});
    placer p;
    auto r = gang(4, 2, strategy::pack);
    r.min_bundles = 2;
    auto out = p.place(st, r);
    REQUIRE(out.plan);
    CHECK(out.bundles_placed == 3);
    REQUIRE(st.commit(r, *out.plan, {}).ok());
    auto again = p.place(st, r);
    CHECK_FALSE(again.plan);
  }

  TEST_CASE("spot nodes take only spot-tolerant work") {
    auto t = racks(1);
    t.nodes.push_back(make_node("spot0", 0, 8));
    t.nodes.back().capacity = capacity_type::spot;
    cluster_state st{t};
    placer p;
    auto r = gang(1, 1, strategy::pack);
    auto out = p.place(st, r);
    CHECK_FALSE(out.plan);
    CHECK(out.never_fits);
    CHECK(out.explanation.find("spot nodes excluded") != std::string::npos);
    r.spot_tolerant = true;
    CHECK(p.place(st, r).plan);
  }

  TEST_CASE("cheapest_first puts a gang on the cheapest nodes it fits, adding dearer "
            "tiers only as needed") {
    auto t = racks(1);
    // Best fit alone would take the 4-GPU on-demand node for a 4-GPU
    // bundle; the 8-GPU spot node is cheaper.
    t.nodes.push_back(make_node("od4", 0, 4));
    t.nodes.back().price_per_gpu_hour = troupe::micro_usd{3'000'000};
    t.nodes.push_back(make_node("spot8", 0, 8));
    t.nodes.back().capacity = capacity_type::spot;
    t.nodes.back().price_per_gpu_hour = troupe::micro_usd{1'000'000};
    t.nodes.push_back(make_node("rsv4", 0, 4));
    t.nodes.back().capacity = capacity_type::reserved;
    t.nodes.back().price_per_gpu_hour = troupe::micro_usd{2'000'000};
    cluster_state st{t};
    placer p;
    auto r = gang(1, 4, strategy::pack);
    r.spot_tolerant = true;
    auto plain = p.place(st, r);
    REQUIRE(plain.plan);
    CHECK(nodes_of(*plain.plan) == std::set<uint32_t>{0}); // the tightest fit
    r.cheapest_first = true;
    auto cheap = p.place(st, r);
    REQUIRE(cheap.plan);
    CHECK(nodes_of(*cheap.plan) == std::set<uint32_t>{1});
    // 3 bundles of 4: two on spot, then the next tier (reserved), not on-demand.
    auto big = gang(3, 4, strategy::pack);
    big.spot_tolerant = big.cheapest_first = true;
    auto g = p.place(st, big);
    REQUIRE(g.plan);
    CHECK(nodes_of(*g.plan) == std::set<uint32_t>{1, 2});
    // Not spot tolerant: the spot tier is not eligible; the reserved node is
    // cheaper than on-demand.
    auto od = gang(1, 4, strategy::pack);
    od.cheapest_first = true;
    auto o = p.place(st, od);
    REQUIRE(o.plan);
    CHECK(nodes_of(*o.plan) == std::set<uint32_t>{2});
    // Nothing fits even with every tier: no plan, as without the flag.
    auto huge = gang(1, 16, strategy::pack);
    huge.cheapest_first = huge.spot_tolerant = true;
    CHECK_FALSE(p.place(st, huge).plan);
  }

  TEST_CASE("GPU shares go to the GPU they fill best and never exceed 1000 milli") {
    auto t = racks(1);
    t.nodes.push_back(make_node("n0", 0, 2));
    cluster_state st{t};
    placer p;
    gang_request r;
    r.id = request_id{5};
    bundle b;
    b.gpu_milli = 600;
    r.bundles.push_back(b);
    auto first = p.place(st, r);
    REQUIRE(first.plan);
    REQUIRE(st.commit(r, *first.plan, {}).ok());
    r.bundles[0].gpu_milli = 300;
    auto second = p.place(st, r);
    REQUIRE(second.plan);
    CHECK(second.plan->bundles[0].shared_gpu == first.plan->bundles[0].shared_gpu);
    REQUIRE(st.commit(r, *second.plan, {}).ok());
    r.bundles[0].gpu_milli = 200;
    auto third = p.place(st, r);
    REQUIRE(third.plan);
    CHECK(third.plan->bundles[0].shared_gpu != first.plan->bundles[0].shared_gpu);
    st.check_invariants();
  }

  TEST_CASE("a bundle no node can host is reported as never fitting, with the numbers") {
    auto t = racks(1);
    t.nodes.push_back(make_node("n0", 0, 8));
    cluster_state st{t};
    placer p;
    auto out = p.place(st, gang(1, 16, strategy::pack));
    CHECK(out.never_fits);
    CHECK(out.explanation.find("bundle 0 needs 16 whole GPUs on one node") !=
          std::string::npos);
    CHECK(out.explanation.find("the largest matching node has 8") != std::string::npos);
    auto a100 = gang(1, 1, strategy::pack);
    a100.bundles[0].gpu_models = {"A100-80GB"};
    auto o2 = p.place(st, a100);
    CHECK(o2.never_fits);
    CHECK(o2.explanation.find("of model A100-80GB") != std::string::npos);
  }
}

TEST_SUITE("cluster state") {
  TEST_CASE("a plan that breaks any rule changes nothing") {
    auto t = racks(1);
    t.nodes.push_back(make_node("n0", 0, 4));
    t.nodes.push_back(make_node("n1", 0, 4));
    cluster_state st{t};
    auto r = gang(2, 2, strategy::strict_pack);
    placement_plan plan;
    bundle_placement a;
    a.bundle = 0;
    a.node = node_id{0};
    a.gpus = {0, 1};
    a.cpu_milli = 1000;
    a.memory_mib = 1024;
    auto b = a;
    b.bundle = 1;
    b.node = node_id{1};
    plan.bundles = {a, b};
    auto res = st.commit(r, plan, {});
    REQUIRE_FALSE(res.ok());
    CHECK(res.err().is(errc::invalid_argument));
    CHECK(res.err().message() == "strict_pack gang spans 2 nodes");
    CHECK(st.allocated_gpu_milli() == 0);
    // Overlapping GPUs within one gang: the second bundle finds GPU 1 taken.
    b.node = node_id{0};
    b.gpus = {1, 2};
    plan.bundles = {a, b};
    auto overlap = st.commit(r, plan, {});
    REQUIRE_FALSE(overlap.ok());
    CHECK(overlap.err().is(errc::insufficient));
    CHECK(st.allocated_gpu_milli() == 0);
    // A required bundle missing: all or nothing.
    plan.bundles = {a};
    auto partial = st.commit(r, plan, {});
    REQUIRE_FALSE(partial.ok());
    CHECK(partial.err().message().find("all or nothing") != std::string::npos);
    st.check_invariants();
  }

  TEST_CASE("release frees exactly what was taken and unknown ids are errors") {
    auto t = racks(1);
    t.nodes.push_back(make_node("n0", 0, 8));
    cluster_state st{t};
    placer p;
    auto r = gang(2, 3, strategy::pack);
    auto out = p.place(st, r);
    REQUIRE(out.plan);
    auto id = st.commit(r, *out.plan, {});
    REQUIRE(id.ok());
    CHECK(st.allocated_gpu_milli() == 6000);
    CHECK(st.free_whole_gpus(node_id{0}) == 2);
    REQUIRE(st.release(*id).ok());
    CHECK(st.allocated_gpu_milli() == 0);
    CHECK(st.free_whole_gpus(node_id{0}) == 8);
    auto again = st.release(*id);
    REQUIRE_FALSE(again.ok());
    CHECK(again.err().is(errc::not_found));
  }

  TEST_CASE("topology validation reports every problem") {
    auto t = racks(1);
    t.nodes.push_back(make_node("n0", 3, 2));
    t.nodes.push_back(make_node("n0", 0, 2, 1, "V100-32GB"));
    t.nodes.back().gpus[0].sharing = gpu_sharing::mig;
    auto v = t.validate();
    REQUIRE_FALSE(v.ok());
    CHECK(v.err().message().find("rack 3 does not exist") != std::string::npos);
    CHECK(v.err().message().find("duplicate node name") != std::string::npos);
    CHECK(v.err().message().find("V100-32GB does not support MIG") != std::string::npos);
  }
}
