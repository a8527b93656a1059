#include "troupe/placement/mig.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"

#include <algorithm>
#include <cstdint>
#include <doctest/doctest.h>
#include <set>
#include <string>
#include <utility>
#include <vector>

using troupe::placement::find_mig_profile;
using troupe::placement::make_layout;
using troupe::placement::mig_compute_slices;
using troupe::placement::mig_gpu_layout;
using troupe::placement::mig_instance;
using troupe::placement::mig_memory_mask;
using troupe::placement::mig_memory_slices;
using troupe::placement::mig_models;
using troupe::placement::mig_profile;
using troupe::placement::mig_profiles_for;
using troupe::placement::pack_profiles;
using troupe::runtime::errc;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Places each (profile, start) in order and requires every one to succeed.
mig_gpu_layout layout_of(const std::string& model,
                         const std::vector<mig_instance>& instances) {
  mig_gpu_layout layout{model};
  for (const auto& i : instances) {
    auto r = layout.place(i.profile, i.start);
    INFO(model << ": " << i.profile << " at " << i.start << ": "
               << (r ? "" : r.err().to_string()));
    REQUIRE(r.ok());
  }
  return layout;
}

/// The error message of placing `profile` at `start` on `layout` (which must
/// fail), after checking that the failure left the layout unchanged.
std::string rejection(mig_gpu_layout& layout, const std::string& profile,
                      uint32_t start) {
  const auto before = layout.instances();
  const auto mask = layout.memory_mask();
  const auto compute = layout.compute_used();
  auto r = layout.place(profile, start);
  REQUIRE_FALSE(r.ok());
  CHECK(r.err().is(errc::invalid_argument));
  CHECK(layout.instances() == before);
  CHECK(layout.memory_mask() == mask);
  CHECK(layout.compute_used() == compute);
  CHECK(layout.valid());
  return r.err().message();
}

struct splitmix64 {
  uint64_t state;
  uint64_t next() { return troupe::splitmix64(state); }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
};

} // namespace

TEST_SUITE("mig") {
  TEST_CASE(
      "each MIG model has the seven profiles of NVIDIA's tables with GB * 1024 MiB") {
    struct expected_row {
      const char* name;
      uint32_t compute, memory;
      uint64_t gb;
      uint32_t max;
    };
    struct expected_model {
      const char* model;
      std::vector<expected_row> rows;
    };
    const std::vector<expected_model> expected = {
        {"A100-40GB",
         {{"1g.5gb", 1, 1, 5, 7},
          {"1g.5gb+me", 1, 1, 5, 1},
          {"1g.10gb", 1, 2, 10, 4},
          {"2g.10gb", 2, 2, 10, 3},
          {"3g.20gb", 3, 4, 20, 2},
          {"4g.20gb", 4, 4, 20, 1},
          {"7g.40gb", 7, 8, 40, 1}}},
        {"A100-80GB",
         {{"1g.10gb", 1, 1, 10, 7},
          {"1g.10gb+me", 1, 1, 10, 1},
          {"1g.20gb", 1, 2, 20, 4},
          {"2g.20gb", 2, 2, 20, 3},
          {"3g.40gb", 3, 4, 40, 2},
          {"4g.40gb", 4, 4, 40, 1},
          {"7g.80gb", 7, 8, 80, 1}}},
        {"H100-80GB",
         {{"1g.10gb", 1, 1, 10, 7},
          {"1g.10gb+me", 1, 1, 10, 1},
          {"1g.20gb", 1, 2, 20, 4},
          {"2g.20gb", 2, 2, 20, 3},
          {"3g.40gb", 3, 4, 40, 2},
          {"4g.40gb", 4, 4, 40, 1},
          {"7g.80gb", 7, 8, 80, 1}}},
        {"H100-94GB",
         {{"1g.12gb", 1, 1, 12, 7},
          {"1g.12gb+me", 1, 1, 12, 1},
          {"1g.24gb", 1, 2, 24, 4},
          {"2g.24gb", 2, 2, 24, 3},
          {"3g.47gb", 3, 4, 47, 2},
          {"4g.47gb", 4, 4, 47, 1},
          {"7g.94gb", 7, 8, 94, 1}}},
        {"H200-141GB",
         {{"1g.18gb", 1, 1, 18, 7},
          {"1g.18gb+me", 1, 1, 18, 1},
          {"1g.35gb", 1, 2, 35, 4},
          {"2g.35gb", 2, 2, 35, 3},
          {"3g.71gb", 3, 4, 71, 2},
          {"4g.71gb", 4, 4, 71, 1},
          {"7g.141gb", 7, 8, 141, 1}}},
    };
    REQUIRE(mig_models().size() == expected.size());
    for (size_t m = 0; m < expected.size(); ++m) {
      const auto& e = expected[m];
      CAPTURE(e.model);
      CHECK(mig_models()[m] == e.model);
      const auto* profiles = mig_profiles_for(e.model);
      REQUIRE(profiles != nullptr);
      REQUIRE(profiles->size() == e.rows.size());
      for (size_t i = 0; i < e.rows.size(); ++i) {
        const mig_profile& p = (*profiles)[i];
        CAPTURE(p.name);
        CHECK(p.name == e.rows[i].name);
        CHECK(p.compute_slices == e.rows[i].compute);
        CHECK(p.memory_slices == e.rows[i].memory);
        CHECK(p.memory_mib == e.rows[i].gb * 1024);
        CHECK(p.max_instances == e.rows[i].max);
        CHECK(find_mig_profile(e.model, e.rows[i].name) == &p);
      }
    }
    CHECK(find_mig_profile("H200-141GB", "7g.141gb")->memory_mib == 144384);
    CHECK(find_mig_profile("A100-40GB", "1g.5gb")->memory_mib == 5120);
  }

  TEST_CASE(
      "starts follow nvidia-smi mig -lgipp and every start fits in 8 memory slices") {
    for (const auto& model : mig_models()) {
      for (const auto& p : *mig_profiles_for(model)) {
        CAPTURE(model);
        CAPTURE(p.name);
        std::vector<uint32_t> want;
        if (p.compute_slices == 1 && p.memory_slices == 1) want = {0, 1, 2, 3, 4, 5, 6};
        if (p.compute_slices == 1 && p.memory_slices == 2) want = {0, 2, 4, 6};
        if (p.compute_slices == 2) want = {0, 2, 4};
        if (p.compute_slices == 3) want = {0, 4};
        if (p.compute_slices == 4 || p.compute_slices == 7) want = {0};
        CHECK(p.starts == want);
        for (uint32_t s : p.starts)
          CHECK(mig_memory_mask(p, s) != 0);
        // max_instances never exceeds the non-overlapping starts.
        CHECK(p.max_instances <= p.starts.size());
      }
    }
    const mig_profile& three_g = *find_mig_profile("A100-80GB", "3g.40gb");
    CHECK(mig_memory_mask(three_g, 0) == 0x0F);
    CHECK(mig_memory_mask(three_g, 4) == 0xF0);
    CHECK(mig_memory_mask(three_g, 5) == 0); // would run past slice 7
    CHECK(mig_memory_mask(*find_mig_profile("A100-80GB", "7g.80gb"), 0) == 0xFF);
  }

  TEST_CASE("models without MIG and misspelled models have no tables") {
    for (const std::string model :
         {"V100-32GB", "V100", "T4", "L4", "L40S", "", "a100-80gb", "A100", "H100"}) {
      CAPTURE(model);
      CHECK(mig_profiles_for(model) == nullptr);
      CHECK(find_mig_profile(model, "1g.10gb") == nullptr);
    }
    CHECK(find_mig_profile("A100-80GB", "1g.5gb") == nullptr); // a 40GB name
    CHECK(find_mig_profile("A100-80GB", "MIG 1g.10gb") == nullptr);
  }

  TEST_CASE(
      "seven 1g instances fill every compute slice and leave the last memory slice") {
    for (const std::string& model : mig_models()) {
      CAPTURE(model);
      const std::string one_g = (*mig_profiles_for(model))[0].name;
      mig_gpu_layout layout{model};
      for (uint32_t i = 0; i < 7; ++i) {
        CHECK(layout.first_fit(one_g) == i);
        REQUIRE(layout.place(one_g, i).ok());
      }
      CHECK(layout.compute_used() == 7);
      CHECK(layout.memory_mask() == 0x7F);
      CHECK(layout.valid());
      CHECK_FALSE(layout.first_fit(one_g).has_value());
      // Slice 7 is free but only a 1g on two slices (at 6), 3g at 4 or 7g
      // reach it, and every compute slice is taken.
      CHECK(contains(rejection(layout, one_g, 6), "needs 1 compute slice but only 0"));
    }
  }

  TEST_CASE("documented combinations from the guide are accepted") {
    const std::vector<std::pair<std::string, std::vector<mig_instance>>> accepted = {
        {"A100-80GB", {{"4g.40gb", 0}, {"3g.40gb", 4}}},
        {"A100-80GB", {{"3g.40gb", 0}, {"3g.40gb", 4}}},
        {"A100-80GB", {{"7g.80gb", 0}}},
        {"A100-80GB", {{"3g.40gb", 4}, {"2g.20gb", 0}, {"1g.10gb", 2}, {"1g.10gb", 3}}},
        {"A100-80GB", {{"3g.40gb", 4}, {"2g.20gb", 0}, {"2g.20gb", 2}}},
        {"A100-80GB", {{"3g.40gb", 0}, {"2g.20gb", 4}, {"1g.10gb", 6}}},
        {"A100-80GB", {{"4g.40gb", 0}, {"2g.20gb", 4}, {"1g.10gb", 6}}},
        {"A100-80GB", {{"4g.40gb", 0}, {"1g.10gb", 4}, {"1g.10gb", 5}, {"1g.10gb", 6}}},
        {"A100-80GB", {{"2g.20gb", 0}, {"2g.20gb", 2}, {"2g.20gb", 4}, {"1g.10gb", 6}}},
        {"A100-80GB", {{"1g.20gb", 0}, {"1g.20gb", 2}, {"1g.20gb", 4}, {"1g.20gb", 6}}},
        {"A100-80GB", {{"1g.10gb+me", 0}, {"1g.10gb", 1}, {"3g.40gb", 4}}},
        {"A100-40GB", {{"4g.20gb", 0}, {"3g.20gb", 4}}},
        {"A100-40GB",
         {{"3g.20gb", 4}, {"1g.5gb", 0}, {"1g.5gb", 1}, {"1g.5gb", 2}, {"1g.5gb", 3}}},
        {"H100-80GB", {{"3g.40gb", 0}, {"1g.20gb", 4}, {"1g.10gb", 6}}},
        {"H100-94GB", {{"4g.47gb", 0}, {"3g.47gb", 4}}},
        {"H100-94GB", {{"3g.47gb", 0}, {"3g.47gb", 4}}},
        {"H200-141GB", {{"4g.71gb", 0}, {"3g.71gb", 4}}},
        {"H200-141GB", {{"2g.35gb", 0}, {"2g.35gb", 2}, {"1g.35gb", 4}, {"1g.18gb", 6}}},
        {"H200-141GB", {{"7g.141gb", 0}}},
    };
    for (const auto& entry : accepted) {
      const std::string& model = entry.first;
      const std::vector<mig_instance>& instances = entry.second;
      CAPTURE(model);
      const auto layout = layout_of(model, instances);
      CHECK(layout.valid());
      CHECK(layout.instances().size() == instances.size());
      CHECK(layout.compute_used() <= mig_compute_slices);
      auto made = make_layout(model, instances);
      REQUIRE(made.ok());
      CHECK(made->instances() == layout.instances());
    }
    const auto four_three = layout_of("A100-80GB", {{"4g.40gb", 0}, {"3g.40gb", 4}});
    CHECK(four_three.memory_mask() == 0xFF);
    CHECK(four_three.compute_used() == 7);
    const auto three_three = layout_of("H100-80GB", {{"3g.40gb", 0}, {"3g.40gb", 4}});
    CHECK(three_three.memory_mask() == 0xFF);
    CHECK(three_three.compute_used() == 6); // one compute slice idles
  }

  TEST_CASE("4g plus 4g is rejected because the compute slices run out") {
    auto layout = layout_of("A100-80GB", {{"4g.40gb", 0}});
    const auto why = rejection(layout, "4g.40gb", 0);
    CHECK(contains(why, "needs 4 compute slices but only 3 of 7 are free"));
  }

  TEST_CASE("7g takes the whole GPU and nothing joins it either way round") {
    auto full = layout_of("H100-80GB", {{"7g.80gb", 0}});
    CHECK(full.memory_mask() == 0xFF);
    CHECK(full.compute_used() == 7);
    for (const auto& p : *mig_profiles_for("H100-80GB")) {
      CAPTURE(p.name);
      CHECK(full.valid_starts(p.name).empty());
      CHECK_FALSE(full.first_fit(p.name).has_value());
      CHECK(contains(rejection(full, p.name, 0), "but only 0 of 7 are free"));
    }
    auto small = layout_of("H100-80GB", {{"1g.10gb", 3}});
    CHECK(contains(rejection(small, "7g.80gb", 0), "needs 7 compute slices but only 6"));
  }

  TEST_CASE("overlapping memory slices are rejected naming both instances") {
    auto layout = layout_of("A100-80GB", {{"3g.40gb", 0}});
    CHECK(rejection(layout, "2g.20gb", 2) ==
          "A100-80GB: 2g.20gb at 2 (memory slices 2-3) overlaps 3g.40gb at 0 "
          "(memory slices 0-3)");
    CHECK(contains(rejection(layout, "4g.40gb", 0), "overlaps 3g.40gb at 0"));
    CHECK(contains(rejection(layout, "1g.10gb", 3),
                   "1g.10gb at 3 (memory slice 3) overlaps"));
    auto ones = layout_of("A100-80GB", {{"1g.10gb", 0}});
    CHECK(contains(rejection(ones, "1g.10gb", 0), "overlaps 1g.10gb at 0"));
    CHECK(contains(rejection(ones, "1g.20gb", 0), "overlaps 1g.10gb at 0"));
  }

  TEST_CASE("starts that NVIDIA does not list are rejected with the valid ones") {
    mig_gpu_layout layout{"A100-80GB"};
    CHECK(rejection(layout, "2g.20gb", 1) ==
          "A100-80GB: 2g.20gb cannot start at memory slice 1 (valid starts: 0, 2, 4)");
    CHECK(contains(rejection(layout, "2g.20gb", 6), "valid starts: 0, 2, 4"));
    CHECK(contains(rejection(layout, "3g.40gb", 2), "valid starts: 0, 4"));
    CHECK(contains(rejection(layout, "4g.40gb", 4), "valid starts: 0)"));
    CHECK(contains(rejection(layout, "1g.10gb", 7), "cannot start at memory slice 7"));
    CHECK(contains(rejection(layout, "1g.20gb", 1), "valid starts: 0, 2, 4, 6"));
    CHECK(contains(rejection(layout, "7g.80gb", 1), "valid starts: 0)"));
    CHECK(contains(rejection(layout, "1g.10gb", 4000000000u), "cannot start"));
    CHECK(layout.instances().empty());
  }

  TEST_CASE("more instances than a profile allows are rejected") {
    // Four 1g.20gb use four compute slices, so a fifth has compute to spare
    // and is stopped by the count (checked before the overlap).
    auto quarters = layout_of(
        "A100-80GB", {{"1g.20gb", 0}, {"1g.20gb", 2}, {"1g.20gb", 4}, {"1g.20gb", 6}});
    CHECK(quarters.compute_used() == 4);
    CHECK(contains(rejection(quarters, "1g.20gb", 0),
                   "1g.20gb allows at most 4 instances per GPU and 4 are placed"));

    auto media = layout_of("H200-141GB", {{"1g.18gb+me", 0}});
    CHECK(rejection(media, "1g.18gb+me", 1) ==
          "H200-141GB: 1g.18gb+me allows at most 1 instance per GPU and 1 is placed");
    CHECK(media.place("1g.18gb", 1).ok()); // the plain 1g is not limited by +me

    auto halves = layout_of("A100-40GB", {{"3g.20gb", 0}, {"3g.20gb", 4}});
    CHECK(halves.valid_starts("3g.20gb").empty());
  }

  TEST_CASE("unknown profiles and models are rejected with what is known") {
    mig_gpu_layout a100{"A100-80GB"};
    CHECK(rejection(a100, "5g.50gb", 0) ==
          "A100-80GB: unknown MIG profile \"5g.50gb\" (profiles: 1g.10gb, 1g.10gb+me, "
          "1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb)");
    CHECK(contains(rejection(a100, "1g.5gb", 0), "unknown MIG profile \"1g.5gb\""));
    CHECK(a100.valid_starts("5g.50gb").empty());
    CHECK_FALSE(a100.first_fit("5g.50gb").has_value());

    mig_gpu_layout v100{"V100-32GB"};
    CHECK(v100.profiles() == nullptr);
    CHECK(v100.model() == "V100-32GB");
    CHECK(rejection(v100, "1g.10gb", 0) ==
          "GPU model \"V100-32GB\" has no MIG support (MIG models: A100-40GB, A100-80GB, "
          "H100-80GB, H100-94GB, H200-141GB)");
    CHECK_FALSE(v100.first_fit("1g.10gb").has_value());
    CHECK(v100.valid_starts("1g.10gb").empty());
    CHECK(v100.valid());

    auto made = make_layout("T4", {{"1g.5gb", 0}});
    REQUIRE_FALSE(made.ok());
    CHECK(made.err().is(errc::invalid_argument));
    CHECK(contains(made.err().message(), "GPU model \"T4\" has no MIG support"));
    CHECK_FALSE(make_layout("L4", {}).ok());
  }

  TEST_CASE("a failed place changes nothing and a remove frees exactly its slices") {
    auto layout =
        layout_of("A100-80GB", {{"3g.40gb", 4}, {"2g.20gb", 0}, {"1g.10gb", 2}});
    CHECK(layout.memory_mask() == 0xF7);
    CHECK(layout.compute_used() == 6);
    (void)rejection(layout, "2g.20gb", 2); // checks nothing changed
    CHECK(layout.instances() ==
          std::vector<mig_instance>{{"2g.20gb", 0}, {"1g.10gb", 2}, {"3g.40gb", 4}});

    REQUIRE(layout.remove(4).ok());
    CHECK(layout.memory_mask() == 0x07);
    CHECK(layout.compute_used() == 3);
    CHECK(layout.valid());
    CHECK(layout.valid_starts("3g.40gb") == std::vector<uint32_t>{4});
    CHECK(layout.valid_starts("2g.20gb") == std::vector<uint32_t>{4});
    CHECK(layout.valid_starts("1g.10gb") == std::vector<uint32_t>{3, 4, 5, 6});

    auto missing = layout.remove(4);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.err().is(errc::not_found));
    CHECK(missing.err().message() ==
          "A100-80GB: no MIG instance starts at memory slice 4");
    // Removing by a slice inside an instance is not removing it.
    CHECK(layout.remove(1).err().is(errc::not_found));
    CHECK(layout.instances().size() == 2);

    REQUIRE(layout.remove(0).ok());
    REQUIRE(layout.remove(2).ok());
    CHECK(layout.instances().empty());
    CHECK(layout.memory_mask() == 0);
    CHECK(layout.compute_used() == 0);
    CHECK(mig_gpu_layout{"V100"}.remove(0).err().is(errc::not_found));
  }

  TEST_CASE("first_fit and valid_starts follow what is placed, fragmentation included") {
    mig_gpu_layout layout{"H100-80GB"};
    CHECK(layout.first_fit("1g.10gb") == 0u);
    CHECK(layout.valid_starts("2g.20gb") == std::vector<uint32_t>{0, 2, 4});
    CHECK(layout.valid_starts("7g.80gb") == std::vector<uint32_t>{0});

    REQUIRE(layout.place("3g.40gb", 0).ok());
    CHECK(layout.first_fit("3g.40gb") == 4u);
    CHECK(layout.valid_starts("2g.20gb") == std::vector<uint32_t>{4});
    CHECK(layout.valid_starts("1g.20gb") == std::vector<uint32_t>{4, 6});
    CHECK_FALSE(layout.first_fit("4g.40gb").has_value());
    CHECK_FALSE(layout.first_fit("7g.80gb").has_value());

    // Two 1g instances at 1 and 5 leave six memory slices and five compute
    // slices free, yet no 3g fits: both of its starts are blocked.
    auto fragmented = layout_of("H100-80GB", {{"1g.10gb", 1}, {"1g.10gb", 5}});
    CHECK(fragmented.compute_used() == 2);
    CHECK_FALSE(fragmented.first_fit("3g.40gb").has_value());
    CHECK_FALSE(fragmented.first_fit("4g.40gb").has_value());
    CHECK(fragmented.valid_starts("2g.20gb") == std::vector<uint32_t>{2});
    CHECK(fragmented.valid_starts("1g.20gb") == std::vector<uint32_t>{2, 6});
    CHECK(fragmented.can_place("1g.10gb", 0).ok());
    CHECK(fragmented.instances().size() == 2); // can_place changes nothing
  }

  TEST_CASE("make_layout round-trips a layout and names the instance it rejects") {
    const auto original =
        layout_of("H200-141GB", {{"3g.71gb", 4}, {"1g.35gb", 2}, {"1g.18gb+me", 0}});
    auto rebuilt = make_layout("H200-141GB", original.instances());
    REQUIRE(rebuilt.ok());
    CHECK(rebuilt->instances() == original.instances());
    CHECK(rebuilt->memory_mask() == original.memory_mask());
    CHECK(rebuilt->compute_used() == original.compute_used());
    CHECK(rebuilt->model() == "H200-141GB");
    CHECK(rebuilt->valid());
    // Ordered by start whatever the input order.
    CHECK(rebuilt->instances() ==
          std::vector<mig_instance>{{"1g.18gb+me", 0}, {"1g.35gb", 2}, {"3g.71gb", 4}});

    auto empty = make_layout("A100-40GB", {});
    REQUIRE(empty.ok());
    CHECK(empty->instances().empty());

    auto bad = make_layout("A100-80GB", {{"4g.40gb", 0}, {"3g.40gb", 4}, {"1g.10gb", 6}});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().is(errc::invalid_argument));
    CHECK(bad.err().message() ==
          "instance 2 (1g.10gb at 6): A100-80GB: 1g.10gb at 6 needs 1 compute slice but "
          "only 0 of 7 are free");
    auto overlap = make_layout("A100-80GB", {{"2g.20gb", 2}, {"3g.40gb", 0}});
    REQUIRE_FALSE(overlap.ok());
    CHECK(contains(overlap.err().message(), "instance 1 (3g.40gb at 0)"));
    CHECK(contains(overlap.err().message(), "overlaps 2g.20gb at 2"));
  }

  TEST_CASE(
      "pack_profiles places the largest profiles first and leaves what does not fit") {
    using demand = std::vector<std::pair<std::string, uint32_t>>;
    using instances = std::vector<mig_instance>;

    CHECK(pack_profiles("A100-80GB", demand{{"4g.40gb", 1}, {"3g.40gb", 1}}) ==
          instances{{"4g.40gb", 0}, {"3g.40gb", 4}});
    // 7g first; nothing else fits beside it.
    CHECK(pack_profiles("H100-80GB", demand{{"1g.10gb", 3}, {"7g.80gb", 1}}) ==
          instances{{"7g.80gb", 0}});
    // Ten 1g asked, seven fit.
    CHECK(pack_profiles("H200-141GB", demand{{"1g.18gb", 10}}) ==
          instances{{"1g.18gb", 0},
                    {"1g.18gb", 1},
                    {"1g.18gb", 2},
                    {"1g.18gb", 3},
                    {"1g.18gb", 4},
                    {"1g.18gb", 5},
                    {"1g.18gb", 6}});
    // Plain first fit would put 3g at 0 and then fit only one 2g: moving the
    // 3g to 4 fits both 2g (7 compute slices instead of 6).
    CHECK(pack_profiles("A100-80GB",
                        demand{{"1g.10gb", 1}, {"2g.20gb", 2}, {"3g.40gb", 1}}) ==
          instances{{"3g.40gb", 4}, {"2g.20gb", 0}, {"2g.20gb", 2}});
    // When everything fits, starts are plain first fit.
    CHECK(pack_profiles("A100-80GB",
                        demand{{"3g.40gb", 1}, {"2g.20gb", 1}, {"1g.10gb", 1}}) ==
          instances{{"3g.40gb", 0}, {"2g.20gb", 4}, {"1g.10gb", 6}});
    // Repeated entries add up; unknown profiles and zero counts are ignored.
    CHECK(pack_profiles(
              "A100-40GB",
              demand{{"3g.20gb", 1}, {"9g.99gb", 4}, {"2g.10gb", 0}, {"3g.20gb", 1}}) ==
          instances{{"3g.20gb", 0}, {"3g.20gb", 4}});
    // Memory, not compute, stops 3g + 3g + 1g: 3g at 0 takes four memory
    // slices for three compute slices, so one compute slice idles.
    CHECK(pack_profiles("A100-40GB", demand{{"3g.20gb", 2}, {"1g.5gb", 1}}) ==
          instances{{"3g.20gb", 0}, {"3g.20gb", 4}});
    CHECK(pack_profiles("V100", demand{{"1g.10gb", 1}}).empty());
    CHECK(pack_profiles("A100-80GB", demand{}).empty());
  }

  TEST_CASE("pack_profiles gives the largest profiles as many instances as can fit, in "
            "order") {
    // Oracle: every per-profile count vector some layout reaches, found by
    // exhaustive search. The geometry is the same on every model, so one
    // search over A100-80GB serves all (counts are by table position).
    std::set<std::vector<uint32_t>> reachable;
    {
      std::set<std::vector<mig_instance>> seen;
      std::vector<mig_gpu_layout> stack{mig_gpu_layout{"A100-80GB"}};
      while (!stack.empty()) {
        mig_gpu_layout layout = std::move(stack.back());
        stack.pop_back();
        if (!seen.insert(layout.instances()).second) continue;
        std::vector<uint32_t> counts;
        for (const auto& p : *layout.profiles())
          counts.push_back(layout.count(p.name));
        reachable.insert(counts);
        for (const auto& p : *layout.profiles()) {
          for (uint32_t s : layout.valid_starts(p.name)) {
            mig_gpu_layout next = layout;
            REQUIRE(next.place(p.name, s).ok());
            stack.push_back(std::move(next));
          }
        }
      }
    }

    splitmix64 rng{0xC0FFEEULL};
    for (int round = 0; round < 2000; ++round) {
      const auto& model =
          mig_models()[rng.below(static_cast<uint32_t>(mig_models().size()))];
      const auto& profiles = *mig_profiles_for(model);
      std::vector<std::pair<std::string, uint32_t>> demand;
      const uint32_t entries = rng.below(5);
      for (uint32_t e = 0; e < entries; ++e) {
        demand.emplace_back(
            profiles[rng.below(static_cast<uint32_t>(profiles.size()))].name,
            rng.below(9));
      }
      const auto packed = pack_profiles(model, demand);
      auto layout = make_layout(model, packed);
      INFO("round " << round << " on " << model);
      REQUIRE(layout.ok());
      CHECK(layout->valid());
      CHECK(layout->compute_used() <= mig_compute_slices);

      std::vector<uint32_t> asked(profiles.size(), 0);
      std::vector<uint32_t> got(profiles.size(), 0);
      for (size_t i = 0; i < profiles.size(); ++i) {
        for (const auto& entry : demand) {
          if (entry.first == profiles[i].name) asked[i] += entry.second;
        }
        got[i] = layout->count(profiles[i].name);
        CHECK(got[i] <= asked[i]); // never more than asked
      }
      // Largest first (more compute, then more memory, then table order):
      // one more instance of any profile, keeping the larger ones as packed
      // and dropping the smaller ones, must not fit if it was asked for.
      std::vector<size_t> order(profiles.size());
      for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (profiles[a].compute_slices != profiles[b].compute_slices) {
          return profiles[a].compute_slices > profiles[b].compute_slices;
        }
        return profiles[a].memory_slices > profiles[b].memory_slices;
      });
      std::vector<uint32_t> prefix(profiles.size(), 0);
      for (size_t index : order) {
        if (got[index] < asked[index]) {
          std::vector<uint32_t> one_more = prefix;
          one_more[index] = got[index] + 1;
          CAPTURE(profiles[index].name);
          CHECK(reachable.count(one_more) == 0);
        }
        prefix[index] = got[index];
      }
    }
  }

  TEST_CASE("random places and removes never overlap memory, overcommit compute or break "
            "validity") {
    splitmix64 rng{0x7E57AB1EULL};
    for (const auto& model : mig_models()) {
      CAPTURE(model);
      const auto& profiles = *mig_profiles_for(model);
      mig_gpu_layout layout{model};
      uint32_t placed = 0;
      uint32_t rejected = 0;
      uint32_t removed = 0;
      for (int step = 0; step < 5000; ++step) {
        const uint32_t action = rng.below(10);
        if (action < 6) {
          // Place a random profile at a random start, listed or not.
          const mig_profile& p =
              profiles[rng.below(static_cast<uint32_t>(profiles.size()))];
          const uint32_t start = rng.below(mig_memory_slices + 2); // 0..9
          const auto starts_before = layout.valid_starts(p.name);
          const bool expected = std::find(starts_before.begin(), starts_before.end(),
                                          start) != starts_before.end();
          const auto before = layout.instances();
          auto r = layout.place(p.name, start);
          REQUIRE(r.ok() == expected);
          if (r.ok()) {
            ++placed;
          } else {
            ++rejected;
            REQUIRE(r.err().is(errc::invalid_argument));
            REQUIRE(layout.instances() == before);
          }
        } else if (action < 8) {
          // Place by first fit.
          const mig_profile& p =
              profiles[rng.below(static_cast<uint32_t>(profiles.size()))];
          if (auto s = layout.first_fit(p.name)) {
            REQUIRE(layout.valid_starts(p.name).front() == *s);
            REQUIRE(layout.place(p.name, *s).ok());
            ++placed;
          } else {
            REQUIRE(layout.valid_starts(p.name).empty());
          }
        } else {
          // Remove a random slice's instance, if one starts there.
          const uint32_t start = rng.below(mig_memory_slices);
          const bool present =
              std::any_of(layout.instances().begin(), layout.instances().end(),
                          [&](const mig_instance& i) { return i.start == start; });
          auto r = layout.remove(start);
          REQUIRE(r.ok() == present);
          if (r.ok()) ++removed;
        }

        // Invariants, recomputed here from the table.
        uint32_t mask = 0;
        uint32_t compute = 0;
        for (const auto& inst : layout.instances()) {
          const mig_profile* p = find_mig_profile(model, inst.profile);
          REQUIRE(p != nullptr);
          const uint32_t m = ((1u << p->memory_slices) - 1u) << inst.start;
          REQUIRE(inst.start + p->memory_slices <= 8);
          REQUIRE((m & mask) == 0); // memory slices never overlap
          mask |= m;
          compute += p->compute_slices;
          REQUIRE(layout.count(p->name) <= p->max_instances);
        }
        REQUIRE(compute <= mig_compute_slices);
        REQUIRE(layout.memory_mask() == mask);
        REQUIRE(layout.compute_used() == compute);
        REQUIRE(layout.valid());
      }
      // The walk exercised every path.
      CHECK(placed > 100);
      CHECK(rejected > 100);
      CHECK(removed > 100);
    }
  }

  TEST_CASE("every reachable layout is valid and can be rebuilt in any order") {
    // Depth-first over every (profile, start) that valid_starts offers, from
    // the empty GPU: every layout NVIDIA's rules reach, each visited once.
    for (const std::string& model : mig_models()) {
      CAPTURE(model);
      std::set<std::vector<mig_instance>> seen;
      std::vector<mig_gpu_layout> stack{mig_gpu_layout{model}};
      size_t maximal = 0;
      while (!stack.empty()) {
        mig_gpu_layout layout = std::move(stack.back());
        stack.pop_back();
        if (!seen.insert(layout.instances()).second) continue;
        REQUIRE(layout.valid());
        REQUIRE(layout.compute_used() <= mig_compute_slices);
        auto reversed = layout.instances();
        std::reverse(reversed.begin(), reversed.end());
        auto rebuilt = make_layout(model, reversed);
        REQUIRE(rebuilt.ok());
        REQUIRE(rebuilt->instances() == layout.instances());
        bool extended = false;
        for (const auto& p : *layout.profiles()) {
          for (uint32_t s : layout.valid_starts(p.name)) {
            mig_gpu_layout next = layout;
            REQUIRE(next.place(p.name, s).ok());
            stack.push_back(std::move(next));
            extended = true;
          }
        }
        if (!extended) ++maximal;
      }
      // Counts from an independent brute force over all subsets of
      // (profile, start) under the same three rules (disjoint memory slices,
      // at most 7 compute slices, max_instances), empty layout included; 723
      // layouts without the +me profile. The geometry is identical on every
      // model, so the counts are too.
      CHECK(seen.size() == 2319);
      CHECK(maximal == 239);
    }
  }

  TEST_CASE("a copied layout is an independent value") {
    auto layout = layout_of("A100-80GB", {{"4g.40gb", 0}, {"2g.20gb", 4}});
    mig_gpu_layout copy = layout;
    CHECK(copy.valid());
    CHECK(copy.instances() == layout.instances());
    REQUIRE(copy.remove(4).ok());
    CHECK(copy.valid());
    CHECK(layout.instances().size() == 2); // copies are independent
  }
}
