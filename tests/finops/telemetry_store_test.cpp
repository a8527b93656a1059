#include "troupe/finops/errc.hpp"
#include "troupe/finops/telemetry_store.hpp"
#include "troupe/runtime/store.hpp"

#include <chrono>
#include <cstdint>
#include <doctest/doctest.h>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::duration;
using troupe::time_point;
using namespace troupe::finops;
namespace fs = std::filesystem;
namespace rt = troupe::runtime;

namespace {

constexpr int64_t minute_ms = 60'000;
constexpr int64_t hour_ms = 3'600'000;

time_point at_ms(int64_t ms) {
  return time_point{std::chrono::milliseconds{ms}};
}
int64_t ms_of(time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch())
      .count();
}
int64_t floor_to(int64_t v, int64_t unit) {
  return v - v % unit;
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("troupe-tstore-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<rt::store>
open_db(const fs::path& p,
        std::vector<std::string> cfs = telemetry_store::column_families()) {
  rt::store_options o;
  o.path = p.string();
  o.column_families = std::move(cfs);
  o.sync_writes = false;
  auto s = rt::store::open(o);
  REQUIRE(s.ok());
  return std::move(*s);
}

// Deterministic utilisation of a GPU at a time: a mix of busy and idle.
uint32_t util_at(uint32_t gpu, int64_t t_ms) {
  uint64_t x = static_cast<uint64_t>(t_ms) * 2654435761u + gpu * 40503u;
  x ^= x >> 13;
  return static_cast<uint32_t>(x % 4 == 0 ? 0 : x % 101);
}

// The allocation holding a GPU at a time: changes every 5 h, at 30 s past a
// minute, so some minute buckets hold two allocations.
uint64_t alloc_at(uint32_t gpu, int64_t t_ms) {
  return 100 + gpu * 100 + static_cast<uint64_t>((t_ms - 30'000) / (5 * hour_ms));
}

struct gold_key {
  std::string node;
  uint32_t gpu;
  int64_t bucket;
  uint64_t alloc;
  auto operator<=>(const gold_key&) const = default;
};

using gold_map = std::map<gold_key, sample_summary>;

// Aggregates computed straight from the raw samples.
gold_map gold(const std::vector<gpu_sample>& all, int64_t unit, uint32_t threshold) {
  gold_map out;
  for (const auto& s : all)
    out[{s.node, s.gpu_index, floor_to(ms_of(s.at), unit), s.allocation.value()}].add(
        s, threshold);
  return out;
}

} // namespace

TEST_SUITE("finops.telemetry_store") {
  TEST_CASE("compaction rolls raw samples into exact minute and hour tiers, erases by "
            "retention, and survives a reopen") {
    temp_dir dir;
    telemetry_store_options opts;
    opts.raw_retention = 6h;
    opts.minute_retention = 24h;
    opts.hour_retention = 48h;
    opts.busy_threshold_pct = 10;
    const std::vector<gpu_ref> gpus = {{"node-a", 0}, {"node-a", 1}, {"node-b", 0}};
    const int64_t step = 20'000; // 20 s samples, offset 7 s from the minute
    const int64_t end = 3 * 24 * hour_ms;

    std::vector<gpu_sample> all;
    auto db = open_db(dir.path);
    {
      auto ts = telemetry_store::open(*db, opts);
      REQUIRE(ts.ok());
      auto& st = **ts;
      int64_t t = 7'000;
      for (int64_t now = hour_ms; now <= end; now += hour_ms) {
        std::vector<gpu_sample> batch;
        for (; t < now; t += step)
          for (uint32_t g = 0; g < gpus.size(); ++g) {
            gpu_sample s;
            s.node = gpus[g].node;
            s.gpu_index = gpus[g].index;
            s.at = at_ms(t);
            s.utilisation_pct = util_at(g, t);
            s.memory_used_mib = static_cast<uint64_t>(t / 1000 % 80'000);
            s.power_mw = 50'000 + util_at(g, t) * 3'000;
            s.allocation = allocation_id{alloc_at(g, t)};
            batch.push_back(s);
          }
        REQUIRE(st.append(batch));
        all.insert(all.end(), batch.begin(), batch.end());
        auto c = st.compact(at_ms(now));
        REQUIRE(c.ok());
        CHECK(c->minutes_written >= 60 * gpus.size());
      }
      // A sample older than what was rolled up is refused; so is a bad one.
      gpu_sample late = all.back();
      late.at = at_ms(end - 2 * minute_ms);
      auto r = st.append(std::span{&late, 1});
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(errc::invalid_argument));
      gpu_sample bad = all.back();
      bad.at = at_ms(end + 1000);
      bad.utilisation_pct = 101;
      CHECK(st.append(std::span{&bad, 1}).err().is(errc::invalid_argument));
    }

    const auto minutes = gold(all, minute_ms, opts.busy_threshold_pct);
    const auto hours = gold(all, hour_ms, opts.busy_threshold_pct);
    const int64_t raw_from = floor_to(end - 6 * hour_ms, minute_ms);
    const int64_t minute_from = floor_to(end - 24 * hour_ms, hour_ms);
    const int64_t hour_from = floor_to(end - 48 * hour_ms, hour_ms);

    auto check_contents = [&](telemetry_store& st) {
      CHECK(st.horizons().raw_from == at_ms(raw_from));
      CHECK(st.horizons().minute_from == at_ms(minute_from));
      CHECK(st.horizons().hour_from == at_ms(hour_from));
      CHECK(st.gpus() == gpus);
      const troupe::finops::time_window everything{at_ms(0), at_ms(end + hour_ms)};
      uint64_t raw_seen = 0, min_seen = 0, hour_seen = 0;
      for (const auto& g : gpus) {
        CAPTURE(g.node);
        CAPTURE(g.index);
        // Raw: exactly the samples from the raw horizon on.
        auto raw = st.read_tier(telemetry_tier::raw, g, everything);
        REQUIRE(raw.ok());
        std::vector<gpu_sample> want;
        for (const auto& s : all)
          if (s.node == g.node && s.gpu_index == g.index && ms_of(s.at) >= raw_from)
            want.push_back(s);
        REQUIRE(raw->size() == want.size());
        for (size_t i = 0; i < want.size(); ++i) {
          const auto& p = (*raw)[i];
          CHECK(p.at == want[i].at);
          CHECK(p.allocation == want[i].allocation);
          CHECK(p.summary.samples == 1);
          CHECK(p.summary.utilisation_sum == want[i].utilisation_pct);
          CHECK(p.summary.memory_max_mib == want[i].memory_used_mib);
          CHECK(p.summary.power_max_mw == want[i].power_mw);
          CHECK(p.summary.busy_samples == (want[i].utilisation_pct >= 10 ? 1u : 0u));
        }
        raw_seen += raw->size();
        // Minute and hour tiers: each entry equals the gold aggregate, and
        // each gold bucket inside the tier's span has its entry.
        auto check_tier = [&](telemetry_tier tier, const gold_map& g_map, int64_t unit,
                              int64_t from, int64_t to, uint64_t& seen) {
          auto pts = st.read_tier(tier, g, everything);
          REQUIRE(pts.ok());
          size_t expected = 0;
          for (const auto& [k, sum] : g_map)
            if (k.node == g.node && k.gpu == g.index && k.bucket >= from && k.bucket < to)
              ++expected;
          CHECK(pts->size() == expected);
          for (const auto& p : *pts) {
            const int64_t b = ms_of(p.at);
            CHECK(b % unit == 0);
            CHECK(b >= from);
            CHECK(b < to);
            auto it = g_map.find({g.node, g.index, b, p.allocation.value()});
            REQUIRE(it != g_map.end());
            CHECK(p.summary == it->second);
          }
          seen += pts->size();
        };
        check_tier(telemetry_tier::minute, minutes, minute_ms, minute_from, end,
                   min_seen);
        check_tier(telemetry_tier::hour, hours, hour_ms, hour_from, end, hour_seen);
      }
      CHECK(st.count(telemetry_tier::raw).value() == raw_seen);
      CHECK(st.count(telemetry_tier::minute).value() == min_seen);
      CHECK(st.count(telemetry_tier::hour).value() == hour_seen);
      CHECK(min_seen > 24 * 60 * gpus.size()); // some buckets hold two allocations

      // A query picks the finest tier at each instant.
      auto q = st.query_gpu(gpus[1], everything);
      REQUIRE(q.ok());
      int64_t last = -1;
      size_t n_hour = 0, n_min = 0, n_raw = 0;
      for (const auto& p : *q) {
        const int64_t t = ms_of(p.at);
        CHECK(t >= last);
        last = t;
        if (t < minute_from) {
          CHECK(p.tier == telemetry_tier::hour);
          ++n_hour;
        } else if (t < raw_from) {
          CHECK(p.tier == telemetry_tier::minute);
          ++n_min;
        } else {
          CHECK(p.tier == telemetry_tier::raw);
          ++n_raw;
        }
      }
      CHECK(n_hour > 0);
      CHECK(n_min > 0);
      CHECK(n_raw > 0);

      // Per allocation: an allocation that lived in the hour tier's span
      // sums to what the raw samples gave, over its GPUs.
      const allocation_id a{alloc_at(2, 30 * hour_ms)};
      const troupe::finops::time_window w{at_ms(hour_from), at_ms(minute_from)};
      auto sum = st.summarise_allocation(a, w);
      REQUIRE(sum.ok());
      sample_summary want;
      for (const auto& s : all)
        if (s.allocation == a && ms_of(s.at) >= hour_from && ms_of(s.at) < minute_from)
          want.add(s, 10);
      CHECK(want.samples > 0);
      CHECK(*sum == want);
      // Over the raw span, the same holds sample by sample.
      const troupe::finops::time_window wr{at_ms(raw_from), at_ms(end)};
      const allocation_id b{alloc_at(0, end - hour_ms)};
      auto sum_r = st.summarise_allocation(b, wr);
      REQUIRE(sum_r.ok());
      sample_summary want_r;
      for (const auto& s : all)
        if (s.allocation == b && ms_of(s.at) >= raw_from) want_r.add(s, 10);
      CHECK(want_r.samples > 0);
      CHECK(*sum_r == want_r);
    };

    {
      auto ts = telemetry_store::open(*db, opts);
      REQUIRE(ts.ok());
      check_contents(**ts);
    }
    // Close the database and open it again: everything is still there.
    db.reset();
    db = open_db(dir.path);
    auto ts = telemetry_store::open(*db, opts);
    REQUIRE(ts.ok());
    check_contents(**ts);
    // And it carries on: the roll-up marks came back too.
    gpu_sample late = all.back();
    late.at = at_ms(end - minute_ms);
    CHECK_FALSE((*ts)->append(std::span{&late, 1}).ok());
    gpu_sample next = all.back();
    next.at = at_ms(end + 5'000);
    REQUIRE((*ts)->append(std::span{&next, 1}));
    auto c = (*ts)->compact(at_ms(end + minute_ms));
    REQUIRE(c.ok());
    CHECK(c->minutes_written == 1);
  }

  TEST_CASE("size stays within the documented bound over 30 simulated days") {
    temp_dir dir;
    auto db = open_db(dir.path);
    const telemetry_store_options opts; // defaults: 6 h, 14 d, 180 d
    auto ts = telemetry_store::open(*db, opts);
    REQUIRE(ts.ok());
    auto& st = **ts;
    const uint32_t n_gpus = 8;
    const int64_t step = 60'000;
    const duration interval = std::chrono::milliseconds{step};
    const int64_t day = 24 * hour_ms;
    const auto bound = [&](telemetry_tier t, duration every) {
      return n_gpus * entry_bound(opts, t, interval, every);
    };
    int64_t t = 0;
    uint64_t max_raw = 0, max_min = 0, max_hour = 0;
    compact_stats total;
    for (int64_t d = 1; d <= 30; ++d) {
      std::vector<gpu_sample> batch;
      for (; t < d * day; t += step) {
        for (uint32_t g = 0; g < n_gpus; ++g) {
          gpu_sample s;
          s.node = "node-" + std::to_string(g / 4);
          s.gpu_index = g % 4;
          s.at = at_ms(t);
          s.utilisation_pct = util_at(g, t);
          s.allocation = allocation_id{1 + static_cast<uint64_t>(t / day)};
          batch.push_back(std::move(s));
        }
        if (batch.size() >= 4096) {
          REQUIRE(st.append(batch));
          batch.clear();
        }
      }
      REQUIRE(st.append(batch));
      // Right before compaction a day of raw samples has piled up.
      auto raw_before = st.count(telemetry_tier::raw);
      REQUIRE(raw_before.ok());
      CHECK(*raw_before <= bound(telemetry_tier::raw, 24h));
      auto c = st.compact(at_ms(d * day));
      REQUIRE(c.ok());
      total.minutes_erased += c->minutes_erased;
      total.raw_erased += c->raw_erased;
      auto raw = st.count(telemetry_tier::raw).value();
      auto min = st.count(telemetry_tier::minute).value();
      auto hr = st.count(telemetry_tier::hour).value();
      CHECK(raw <= bound(telemetry_tier::raw, 0s));
      CHECK(min <= bound(telemetry_tier::minute, 24h));
      CHECK(hr <= bound(telemetry_tier::hour, 24h));
      max_raw = std::max(max_raw, raw);
      max_min = std::max(max_min, min);
      max_hour = std::max(max_hour, hr);
    }
    // The tiers filled to their retention and old data was erased.
    CHECK(max_raw == n_gpus * 6 * 60);    // exactly 6 h of 1-minute samples
    CHECK(max_min == n_gpus * 14 * 1440); // exactly 14 days of minutes
    CHECK(max_hour == n_gpus * 30 * 24);  // 30 days: under the 180-day retention
    CHECK(total.raw_erased > 0);
    CHECK(total.minutes_erased == n_gpus * 16 * 1440);
    MESSAGE("entries at the end: raw " << max_raw << ", minute " << max_min << ", hour "
                                       << max_hour);
  }

  TEST_CASE("the entry bounds are the figures the header documents") {
    const telemetry_store_options d;
    CHECK(entry_bound(d, telemetry_tier::raw, 10s, 1h) == 2'527);
    CHECK(entry_bound(d, telemetry_tier::minute, 10s, 1h) == 20'220);
    CHECK(entry_bound(d, telemetry_tier::hour, 10s, 1h) == 4'321);
    CHECK(entry_bound(d, telemetry_tier::raw, 10s, 24h) == 10'807);
    CHECK((10'807 - 2'527) * 46 == 380'880);
    CHECK(2'527 * 46 + 20'220 * 78 + 4'321 * 78 == 2'030'440);
  }

  TEST_CASE("bad options, a store without the column families and corrupted entries are "
            "errors") {
    temp_dir dir;
    telemetry_store_options o;
    o.raw_retention = 30s;
    CHECK(o.validate().err().is(errc::invalid_argument));
    o = {};
    o.raw_retention = 24h * 30;
    CHECK(o.validate().err().message().find(
              "raw_retention longer than minute_retention") != std::string::npos);
    o = {};
    o.busy_threshold_pct = 101;
    CHECK_FALSE(o.validate().ok());
    {
      auto bare = open_db(dir.path / "bare", {});
      auto ts = telemetry_store::open(*bare);
      REQUIRE_FALSE(ts.ok());
      CHECK(ts.err().is(errc::invalid_argument));
      CHECK(ts.err().message().find("telemetry_raw") != std::string::npos);
    }
    auto db = open_db(dir.path / "db");
    {
      auto ts = telemetry_store::open(*db);
      REQUIRE(ts.ok());
      gpu_sample s;
      s.node = "n";
      s.at = at_ms(1000);
      s.utilisation_pct = 50;
      REQUIRE((*ts)->append(std::span{&s, 1}));
      // A value of the wrong size under the sample's key: corrupted, not a
      // crash.
      const std::string prefix = std::string("\x01n\0\0\0\0", 6);
      std::string key = prefix + std::string("\0\0\0\0\0\0\x03\xe8", 8);
      REQUIRE(db->put("telemetry_raw", key, "short"));
      auto r = (*ts)->read_tier(telemetry_tier::raw, gpu_ref{"n", 0},
                                {at_ms(0), at_ms(10'000)});
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(errc::corrupted));
      REQUIRE(db->put("telemetry_meta", "zzz", "x"));
    }
    auto again = telemetry_store::open(*db);
    REQUIRE_FALSE(again.ok());
    CHECK(again.err().is(errc::corrupted));
  }
}
