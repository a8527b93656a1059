#include "troupe/finops/errc.hpp"
#include "troupe/finops/telemetry.hpp"
#include "troupe/finops/telemetry_config.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::time_point;
using namespace troupe::finops;
namespace fs = std::filesystem;

namespace {

time_point at_s(int64_t s) {
  return time_point{std::chrono::seconds{s}};
}

gpu_sample make(std::string node, uint32_t gpu, int64_t t_s, uint32_t util,
                uint64_t alloc, uint64_t mem = 0, uint32_t power = 0) {
  gpu_sample s;
  s.node = std::move(node);
  s.gpu_index = gpu;
  s.at = at_s(t_s);
  s.utilisation_pct = util;
  s.memory_used_mib = mem;
  s.power_mw = power;
  s.allocation = allocation_id{alloc};
  return s;
}

// A unique directory, removed when the test ends.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("troupe-telemetry-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Writes `text` to `p` and gives it modification time `stamp` seconds after
// a fixed base, so a change is seen however coarse the filesystem's clock.
void write_hook(const fs::path& p, const std::string& text, int stamp) {
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
  }
  static const auto base = fs::file_time_type::clock::now();
  fs::last_write_time(p, base + std::chrono::seconds{stamp});
}

} // namespace

TEST_SUITE("finops.telemetry") {
  TEST_CASE("aggregation per allocation is exact on hand-built samples") {
    // Allocation 7 holds n1/0 and n1/1; allocation 9 holds n2/0; n2/1 is free.
    std::vector<gpu_sample> s = {
        make("n1", 0, 0, 90, 7, 1000, 300'000),
        make("n1", 1, 0, 3, 7, 500, 90'000),
        make("n1", 0, 10, 80, 7, 1200, 310'000),
        make("n1", 1, 10, 5, 7, 600, 95'000),
        make("n2", 0, 0, 0, 9, 0, 60'000),
        make("n2", 0, 10, 4, 9, 10, 61'000),
        make("n2", 1, 0, 100, 0),   // unallocated: skipped
        make("n1", 0, 20, 100, 7),  // outside the window: skipped
        make("n1", 0, -10, 100, 7), // before it: skipped
    };
    aggregation_rule rule;
    rule.window = {at_s(0), at_s(20)};
    rule.busy_threshold_pct = 5;
    rule.sample_interval = 10s;
    auto by = aggregate_by_allocation(s, rule);
    REQUIRE(by.size() == 2);
    const auto& a7 = by.at(allocation_id{7});
    CHECK(a7.samples == 4);
    CHECK(a7.utilisation_sum == 178);
    CHECK(a7.utilisation_max == 90);
    CHECK(a7.mean_utilisation_pct() == doctest::Approx(44.5));
    CHECK(a7.busy_samples == 3); // 5 is at the threshold: busy
    CHECK(a7.busy_gpu_ms(rule.sample_interval) == 30'000);
    CHECK(a7.idle_gpu_ms(rule.sample_interval) == 10'000);
    CHECK(a7.memory_sum_mib == 3300);
    CHECK(a7.memory_max_mib == 1200);
    CHECK(a7.power_sum_mw == 795'000);
    CHECK(a7.power_max_mw == 310'000);
    const auto& a9 = by.at(allocation_id{9});
    CHECK(a9.samples == 2);
    CHECK(a9.busy_samples == 0);
    CHECK(a9.idle_gpu_ms(rule.sample_interval) == 20'000);
    CHECK(a9.utilisation_max == 4);

    // Merging per-GPU summaries gives the same as summarising together.
    sample_summary g0, g1;
    for (const auto& x : s) {
      if (x.node != "n1" || !rule.window.contains(x.at)) continue;
      (x.gpu_index == 0 ? g0 : g1).add(x, 5);
    }
    g0.merge(g1);
    CHECK(g0 == a7);

    sample_summary empty;
    CHECK(empty.mean_utilisation_pct() == 0.0);
  }

  TEST_CASE("aggregation per tenant maps allocations and keeps unattributed time") {
    std::vector<gpu_sample> s = {
        make("n", 0, 0, 50, 1), make("n", 1, 0, 0, 2),  make("n", 2, 0, 70, 3),
        make("n", 3, 0, 20, 0), make("n", 4, 0, 9, 42), // 42: not in the map
    };
    aggregation_rule rule;
    rule.window = {at_s(0), at_s(1)};
    rule.busy_threshold_pct = 10;
    rule.sample_interval = 1s;
    const std::unordered_map<allocation_id, std::string> tenants = {
        {allocation_id{1}, "acme"},
        {allocation_id{2}, "acme"},
        {allocation_id{3}, "beta"}};
    auto by = aggregate_by_tenant(s, rule, tenants, "(none)");
    REQUIRE(by.size() == 3);
    CHECK(by.at("acme").samples == 2);
    CHECK(by.at("acme").utilisation_sum == 50);
    CHECK(by.at("acme").busy_gpu_ms(rule.sample_interval) == 1000);
    CHECK(by.at("acme").idle_gpu_ms(rule.sample_interval) == 1000);
    CHECK(by.at("beta").utilisation_max == 70);
    CHECK(by.at("(none)").samples == 2);
    CHECK(by.at("(none)").busy_samples == 1);
    // No sample is lost: the tenants' samples add up to all of them.
    uint64_t total = 0;
    for (const auto& [t, sum] : by)
      total += sum.samples;
    CHECK(total == s.size());
  }

  TEST_CASE("samples out of range do not validate") {
    CHECK(validate(make("n", 0, 0, 100, 1, max_sample_memory_mib, max_sample_power_mw)));
    CHECK_FALSE(validate(make("", 0, 0, 1, 1)));
    CHECK_FALSE(validate(make(std::string(256, 'x'), 0, 0, 1, 1)));
    CHECK_FALSE(validate(make("n", 0, 0, 101, 1)));
    CHECK_FALSE(validate(make("n", 0, 0, 1, 1, max_sample_memory_mib + 1)));
    CHECK_FALSE(validate(make("n", 0, 0, 1, 1, 0, max_sample_power_mw + 1)));
    CHECK_FALSE(validate(make("n", 0, -1, 1, 1)));
  }

  TEST_CASE("the simulated source reports what the API sets") {
    simulated_source src("sim-0", 4);
    auto s0 = src.sample(at_s(5));
    REQUIRE(s0.ok());
    REQUIRE(s0->size() == 4);
    for (const auto& g : *s0) {
      CHECK(g.utilisation_pct == 0);
      CHECK(g.node == "sim-0");
      CHECK(g.at == at_s(5));
      CHECK(g.allocation == allocation_id{0});
    }
    CHECK((*s0)[2].uuid == "SIM-sim-0-2");
    REQUIRE(src.set_utilisation(2, 75));
    REQUIRE(src.set_memory(2, 4096));
    REQUIRE(src.set_power(2, 250'000));
    auto s1 = src.sample(at_s(15));
    REQUIRE(s1.ok());
    CHECK((*s1)[2].utilisation_pct == 75);
    CHECK((*s1)[2].memory_used_mib == 4096);
    CHECK((*s1)[2].power_mw == 250'000);
    CHECK((*s1)[1].utilisation_pct == 0);
    CHECK(src.set_utilisation(4, 10).err().is(errc::invalid_argument));
    CHECK(src.set_utilisation(0, 101).err().is(errc::invalid_argument));
    CHECK_FALSE(src.set_memory(0, max_sample_memory_mib + 1));
    CHECK_FALSE(src.set_power(9, 1));
  }

  TEST_CASE("the simulated source re-reads its hook file when it changes") {
    temp_dir dir;
    const auto hook = dir.path / "util";
    simulated_source src("sim-1", 3, hook);
    // No file yet: not an error, everything idle.
    auto s = src.sample(at_s(0));
    REQUIRE(s.ok());
    CHECK((*s)[0].utilisation_pct == 0);

    write_hook(hook, "# gpu util mem power\n0 85 40000 350000\n\n1 12 # note\n", 1);
    s = src.sample(at_s(10));
    REQUIRE(s.ok());
    CHECK((*s)[0].utilisation_pct == 85);
    CHECK((*s)[0].memory_used_mib == 40000);
    CHECK((*s)[0].power_mw == 350'000);
    CHECK((*s)[1].utilisation_pct == 12);
    CHECK((*s)[2].utilisation_pct == 0);

    // The API speaks later and wins until the file changes again.
    REQUIRE(src.set_utilisation(0, 3));
    auto unchanged = src.reload();
    REQUIRE(unchanged.ok());
    CHECK_FALSE(*unchanged);
    s = src.sample(at_s(20));
    REQUIRE(s.ok());
    CHECK((*s)[0].utilisation_pct == 3);

    // A change: GPU 0 gets 40, memory and power left out keep their values.
    write_hook(hook, "0 40\n2\t100\r\n", 2);
    s = src.sample(at_s(30));
    REQUIRE(s.ok());
    CHECK((*s)[0].utilisation_pct == 40);
    CHECK((*s)[0].memory_used_mib == 40000);
    CHECK((*s)[0].power_mw == 350'000);
    CHECK((*s)[1].utilisation_pct == 12); // not named: kept
    CHECK((*s)[2].utilisation_pct == 100);

    // A bad file is refused whole, reported until it changes, values kept.
    write_hook(hook, "0 99\n1 150\n", 3);
    s = src.sample(at_s(40));
    REQUIRE_FALSE(s.ok());
    CHECK(s.err().is(errc::invalid_argument));
    CHECK(s.err().message().find(hook.string() + ":2: utilisation_pct") !=
          std::string::npos);
    CHECK_FALSE(src.sample(at_s(50)).ok());
    write_hook(hook, "1 7\n", 4);
    s = src.sample(at_s(60));
    REQUIRE(s.ok());
    CHECK((*s)[0].utilisation_pct == 40); // the bad file's 99 never applied
    CHECK((*s)[1].utilisation_pct == 7);

    // The file removed: values kept, no error.
    fs::remove(hook);
    s = src.sample(at_s(70));
    REQUIRE(s.ok());
    CHECK((*s)[1].utilisation_pct == 7);
  }

  TEST_CASE("hostile hook files are refused with file, line and what") {
    struct hostile {
      std::string what;
      std::string text;
      std::string expected;
    };
    const std::vector<hostile> cases = {
        {"one field", "0\n", "hook:1: expected 'gpu_index utilisation_pct"},
        {"five fields", "0 1 2 3 4\n", "hook:1: expected at most 4 fields, got 5"},
        {"utilisation over 100", "0 101\n",
         "hook:1: utilisation_pct: expected an integer in [0, 100], got \"101\""},
        {"negative utilisation", "0 -5\n", "hook:1: utilisation_pct:"},
        {"signed index", "+0 5\n", "hook:1: gpu_index: expected an unsigned integer"},
        {"fractional utilisation", "0 50.5\n", "got \"50.5\""},
        {"hex", "0x1 5\n", "hook:1: gpu_index:"},
        {"index past the GPUs", "\n\n4 5\n",
         "hook:3: gpu_index: 4 but the node has 4 GPUs"},
        {"huge index", "99999999999999999999999 5\n", "hook:1: gpu_index:"},
        {"GPU twice", "1 5\n1 6\n", "hook:2: gpu_index: GPU 1 given twice"},
        {"memory too large", "0 5 16777217\n", "hook:1: memory_used_mib:"},
        {"power too large", "0 5 0 10000001\n", "hook:1: power_mw:"},
        {"binary garbage", std::string("0 5\n\x01\xff 7\n"),
         "hook:2: gpu_index: expected an unsigned integer, got \"\\x01\\xff\""},
        {"NUL inside a number",
         std::string("0 5\0"
                     "0\n",
                     6),
         "hook:1: utilisation_pct:"},
        {"overlong line", "0 5" + std::string(300, ' ') + "\n",
         "hook:1: line of 303 bytes"},
        {"oversized file", std::string(max_hook_file_bytes + 1, '\n'),
         "hook: 1048577 bytes, over the limit"},
        {"words", "gpu0 busy\n", "hook:1: gpu_index:"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.what);
      auto r = parse_utilisation_hook(c.text, "hook", 4);
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(errc::invalid_argument));
      CAPTURE(r.err().message());
      CHECK(r.err().message().find(c.expected) != std::string::npos);
    }
    // And the good forms.
    auto good = parse_utilisation_hook("# c\n\n 3\t100 0 0 \r\n0 0 16777216 10000000\n",
                                       "hook", 4);
    REQUIRE(good.ok());
    REQUIRE(good->size() == 2);
    CHECK((*good)[0] == utilisation_hook_line{3, 100, 0, 0});
    CHECK((*good)[1] ==
          utilisation_hook_line{0, 0, max_sample_memory_mib, max_sample_power_mw});
    auto empty = parse_utilisation_hook("", "hook", 0);
    REQUIRE(empty.ok());
    CHECK(empty->empty());
  }

  TEST_CASE(
      "the telemetry section loads, defaults to the documented tiers and checks order") {
    const auto schema = telemetry_config_schema();
    const auto d = schema.defaults();
    CHECK(d.telemetry.sample_interval == 10s);
    CHECK(d.telemetry.raw_retention == 6h);
    CHECK(d.telemetry.minute_retention == 24h * 14);
    CHECK(d.telemetry.hour_retention == 24h * 180);
    CHECK(to_store_options(d).validate().ok());
    auto c = schema.load_string(
        "[telemetry]\nraw_retention = \"2h\"\nsimulated_file = \"/tmp/u\"\n"
        "simulated_gpus = 8\n",
        "t.toml", {{"TROUPE_TELEMETRY_BUSY_THRESHOLD_PCT", "12"}});
    REQUIRE(c.ok());
    CHECK(c->telemetry.raw_retention == 2h);
    CHECK(c->telemetry.simulated_file == "/tmp/u");
    CHECK(c->telemetry.simulated_gpus == 8);
    CHECK(to_store_options(*c).busy_threshold_pct == 12);
    auto bad =
        schema.load_string("[telemetry]\nraw_retention = \"400h\"\n", "t.toml", {});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().message().find("raw_retention longer than minute_retention") !=
          std::string::npos);
    auto bad2 =
        schema.load_string("[telemetry]\nbusy_threshold_pct = 101\n", "t.toml", {});
    REQUIRE_FALSE(bad2.ok());
    CHECK(bad2.err().message().find("t.toml:2: telemetry.busy_threshold_pct") !=
          std::string::npos);
  }
}
