// Resizing running elastic gangs: cluster_state::shrink / grow and
// placer::place_growth on hand-made clusters.

#include "troupe/placement/errc.hpp"
#include "troupe/placement/placer.hpp"

#include <doctest/doctest.h>
#include <set>

using namespace troupe::placement;

namespace {

node_spec make_node(std::string name, uint32_t gpus) {
  node_spec n;
  n.name = std::move(name);
  n.rack = 0;
  n.cpu_milli = 64000;
  n.memory_mib = 512 * 1024;
  for (uint32_t g = 0; g < gpus; ++g) {
    gpu_spec s;
    s.model = "H100-80GB";
    s.nic_rail = g;
    n.gpus.push_back(s);
  }
  return n;
}

cluster_state cluster(std::vector<uint32_t> gpus_per_node) {
  cluster_topology t;
  t.racks.push_back({"rack-0", 0, 1.0});
  for (size_t i = 0; i < gpus_per_node.size(); ++i)
    t.nodes.push_back(make_node("n" + std::to_string(i), gpus_per_node[i]));
  return cluster_state{t};
}

gang_request elastic(uint32_t bundles, uint32_t gpus_each, uint32_t min, strategy s) {
  gang_request r;
  r.id = request_id{1};
  r.placement_strategy = s;
  r.min_bundles = min;
  for (uint32_t i = 0; i < bundles; ++i) {
    bundle b;
    b.gpus = gpus_each;
    b.cpu_milli = 1000;
    b.memory_mib = 1024;
    r.bundles.push_back(b);
  }
  return r;
}

bundle_placement at(const gang_request& r, uint32_t bundle, uint32_t node,
                    std::vector<uint32_t> gpus) {
  bundle_placement bp;
  bp.bundle = bundle;
  bp.node = node_id{node};
  bp.gpus = std::move(gpus);
  bp.cpu_milli = r.bundles[bundle].cpu_milli;
  bp.memory_mib = r.bundles[bundle].memory_mib;
  return bp;
}

/// Commits bundle 0 of `r` on `node` with GPUs `gpus`.
allocation_id start_with_one(cluster_state& st, const gang_request& r, uint32_t node,
                             std::vector<uint32_t> gpus) {
  placement_plan p;
  p.bundles.push_back(at(r, 0, node, std::move(gpus)));
  auto id = st.commit(r, p, {});
  REQUIRE(id.ok());
  return *id;
}

std::set<uint32_t> bundles_of(const placement_plan& p) {
  std::set<uint32_t> s;
  for (auto& b : p.bundles)
    s.insert(b.bundle);
  return s;
}

std::set<uint32_t> nodes_of(const placement_plan& p) {
  std::set<uint32_t> s;
  for (auto& b : p.bundles)
    s.insert(b.node.value());
  return s;
}

} // namespace

TEST_SUITE("resize") {
  TEST_CASE(
      "an elastic gang shrinks to its first bundles and grows back under the same id") {
    auto st = cluster({8, 8});
    auto req = elastic(4, 2, 2, strategy::pack);
    placer p;
    auto out = p.place(st, req);
    REQUIRE(out.plan);
    REQUIRE(out.bundles_placed == 4);
    auto id = st.commit(req, *out.plan, {});
    REQUIRE(id.ok());
    CHECK(st.allocated_gpu_milli() == 8000);

    auto small = st.shrink(*id, 2);
    REQUIRE(small.ok());
    CHECK(small->id == *id);
    CHECK(bundles_of(small->plan) == std::set<uint32_t>{0, 1});
    CHECK(st.allocated_gpu_milli() == 4000);
    CHECK(bundles_of(st.find(*id)->plan) == std::set<uint32_t>{0, 1});
    st.check_invariants();

    auto growth = p.place_growth(st, *st.find(*id), 4);
    REQUIRE(growth.plan);
    CHECK(growth.bundles_placed == 2);
    CHECK(bundles_of(*growth.plan) == std::set<uint32_t>{2, 3});
    CHECK(nodes_of(*growth.plan) == nodes_of(small->plan)); // pack: next to the gang
    auto big = st.grow(*id, *growth.plan);
    REQUIRE(big.ok());
    CHECK(big->id == *id);
    CHECK(big->plan.bundles.size() == 4);
    for (uint32_t i = 0; i < 4; ++i)
      CHECK(big->plan.bundles[i].bundle == i);
    CHECK(st.allocated_gpu_milli() == 8000);
    CHECK(st.allocations().size() == 1);
    st.check_invariants();

    // Shrinking to the current size or more changes nothing.
    auto same = st.shrink(*id, 4);
    REQUIRE(same.ok());
    CHECK(same->plan.bundles.size() == 4);
    CHECK(st.allocated_gpu_milli() == 8000);
    // Nothing left to grow into.
    auto none = p.place_growth(st, *st.find(*id), 4);
    CHECK_FALSE(none.plan);
    CHECK(none.explanation.find("already has every bundle") != std::string::npos);
  }

  TEST_CASE("shrinking below the required bundles is refused with the numbers") {
    auto st = cluster({8});
    auto req = elastic(4, 1, 3, strategy::pack);
    placer p;
    auto out = p.place(st, req);
    REQUIRE(out.plan);
    auto id = st.commit(req, *out.plan, {});
    REQUIRE(id.ok());
    auto r = st.shrink(*id, 2);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code() == errc::invalid_argument);
    CHECK(r.err().message().find("to 2 bundles") != std::string::npos);
    CHECK(r.err().message().find("at least 3") != std::string::npos);
    CHECK(st.find(*id)->plan.bundles.size() == 4);
    CHECK(st.allocated_gpu_milli() == 4000);

    // A gang without an elastic minimum cannot shrink at all.
    auto fixed = elastic(2, 1, 0, strategy::pack);
    auto fid = st.commit(fixed, *p.place(st, fixed).plan, {});
    REQUIRE(fid.ok());
    CHECK(st.shrink(*fid, 1).err().code() == errc::invalid_argument);
    CHECK(st.shrink(*id, 5).err().code() == errc::invalid_argument);
    CHECK(st.shrink(allocation_id{999}, 1).err().code() == errc::not_found);
    st.check_invariants();
  }

  TEST_CASE("growth of a strict_pack gang stays on its node") {
    auto st = cluster({4, 8});
    auto req = elastic(3, 2, 1, strategy::strict_pack);
    auto id = start_with_one(st, req, 0, {0, 1});

    placement_plan elsewhere;
    elsewhere.bundles.push_back(at(req, 1, 1, {0, 1}));
    auto bad = st.grow(id, elsewhere);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().code() == errc::invalid_argument);
    CHECK(bad.err().message().find("strict_pack") != std::string::npos);

    placer p;
    auto growth = p.place_growth(st, *st.find(id), 3);
    REQUIRE(growth.plan);
    CHECK(growth.bundles_placed == 1); // n0 has room for one more, n1 is off limits
    CHECK(nodes_of(*growth.plan) == std::set<uint32_t>{0});
    REQUIRE(st.grow(id, *growth.plan).ok());
    st.check_invariants();

    auto full = p.place_growth(st, *st.find(id), 3);
    CHECK_FALSE(full.plan);
    CHECK(full.explanation.find("bundle 2") != std::string::npos);
    CHECK(full.explanation.find("n0") != std::string::npos);
  }

  TEST_CASE("growth of a strict_spread gang only uses nodes the gang does not") {
    auto st = cluster({4, 4, 4});
    auto req = elastic(4, 1, 1, strategy::strict_spread);
    auto id = start_with_one(st, req, 0, {0});

    placement_plan same_node;
    same_node.bundles.push_back(at(req, 1, 0, {1}));
    auto bad = st.grow(id, same_node);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().code() == errc::invalid_argument);
    CHECK(bad.err().message().find("strict_spread") != std::string::npos);

    placer p;
    auto growth = p.place_growth(st, *st.find(id), 4);
    REQUIRE(growth.plan);
    CHECK(growth.bundles_placed == 2); // three nodes, four bundles
    CHECK(bundles_of(*growth.plan) == std::set<uint32_t>{1, 2});
    CHECK(nodes_of(*growth.plan) == std::set<uint32_t>{1, 2});
    auto grown = st.grow(id, *growth.plan);
    REQUIRE(grown.ok());
    CHECK(nodes_of(grown->plan).size() == 3);
    st.check_invariants();

    auto more = p.place_growth(st, *st.find(id), 4);
    CHECK_FALSE(more.plan);
    CHECK(more.explanation.find("outside the 3 nodes") != std::string::npos);
  }

  TEST_CASE("a failed grow changes nothing") {
    auto st = cluster({4, 4});
    auto req = elastic(4, 2, 1, strategy::pack);
    auto id = start_with_one(st, req, 0, {0, 1});
    // Someone else takes GPUs 0-1 of n1.
    auto other = elastic(1, 2, 0, strategy::pack);
    placement_plan op;
    op.bundles.push_back(at(other, 0, 1, {0, 1}));
    REQUIRE(st.commit(other, op, {}).ok());

    const auto before = *st.find(id);
    const auto milli = st.allocated_gpu_milli();
    const auto n0 = st.state(node_id{0});
    const auto n1 = st.state(node_id{1});
    auto unchanged = [&] {
      CHECK(st.allocated_gpu_milli() == milli);
      CHECK(bundles_of(st.find(id)->plan) == bundles_of(before.plan));
      CHECK(st.state(node_id{0}).free_whole == n0.free_whole);
      CHECK(st.state(node_id{0}).used_cpu_milli == n0.used_cpu_milli);
      CHECK(st.state(node_id{1}).free_whole == n1.free_whole);
      CHECK(st.state(node_id{1}).used_cpu_milli == n1.used_cpu_milli);
      st.check_invariants();
    };

    // Bundle 1 fits on n0, bundle 2 wants n1's taken GPUs: all or nothing.
    placement_plan clash;
    clash.bundles.push_back(at(req, 1, 0, {2, 3}));
    clash.bundles.push_back(at(req, 2, 1, {0, 1}));
    auto r = st.grow(id, clash);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code() == errc::insufficient);
    unchanged();

    placement_plan again;
    again.bundles.push_back(at(req, 0, 0, {2, 3}));
    CHECK(st.grow(id, again).err().code() == errc::invalid_argument); // already placed
    unchanged();

    placement_plan beyond;
    beyond.bundles.push_back(at(req, 1, 0, {2, 3}));
    beyond.bundles.back().bundle = 4;
    CHECK(st.grow(id, beyond).err().code() == errc::invalid_argument); // no such bundle
    unchanged();

    CHECK(st.grow(id, placement_plan{}).err().code() == errc::invalid_argument);
    CHECK(st.grow(allocation_id{999}, clash).err().code() == errc::not_found);
    unchanged();
  }
}

TEST_CASE("release_bundle frees one bundle of a gang, whatever its index; the last one "
          "releases the allocation; a partial gang can be restored") {
  auto s = cluster({8, 8, 8});
  auto r = elastic(3, 4, 0, strategy::strict_spread); // a rigid gang of 3
  placement_plan plan;
  plan.bundles = {at(r, 0, 0, {0, 1, 2, 3}), at(r, 1, 1, {0, 1, 2, 3}),
                  at(r, 2, 2, {0, 1, 2, 3})};
  auto id = s.commit(r, plan, troupe::time_point{});
  REQUIRE(id.ok());
  CHECK(s.allocated_gpu_milli() == 12000);
  auto a = s.release_bundle(*id, 0); // the required bundle 0's node was lost
  REQUIRE(a.ok());
  CHECK(a->plan.bundles.size() == 2);
  CHECK(s.allocated_gpu_milli() == 8000);
  CHECK(s.free_whole_gpus(node_id{0}) == 8);
  s.check_invariants();
  auto again = s.release_bundle(*id, 0);
  REQUIRE_FALSE(again.ok());
  CHECK(again.err().code() == errc::not_found);
  // Restored elsewhere as it is now, without bundle 0.
  auto copy = cluster({8, 8, 8});
  REQUIRE(copy.restore(*s.find(*id)).ok());
  CHECK(copy.allocated_gpu_milli() == 8000);
  copy.check_invariants();
  REQUIRE(s.release_bundle(*id, 2).ok());
  auto last = s.release_bundle(*id, 1);
  REQUIRE(last.ok());
  CHECK(last->plan.bundles.empty());
  CHECK(s.find(*id) == nullptr);
  CHECK(s.allocated_gpu_milli() == 0);
  s.check_invariants();
}
