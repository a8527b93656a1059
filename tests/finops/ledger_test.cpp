#include "troupe/finops/errc.hpp"
#include "troupe/finops/ledger.hpp"
#include "troupe/runtime/random.hpp"

#include <algorithm>
#include <chrono>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::duration;
using troupe::micro_usd;
using troupe::seeded_rng;
using troupe::time_point;
using namespace troupe::finops;

namespace {

const time_point epoch0{};

time_point at_ns(int64_t ns) {
  return time_point{duration{ns}};
}

usage_entry entry(uint64_t alloc, uint64_t seq, int64_t gpu_ms, int64_t used,
                  int64_t price, time_point start = epoch0 + 1h, duration len = 10min) {
  usage_entry e;
  e.allocation = allocation_id{alloc};
  e.sequence = seq;
  e.tenant = "acme";
  e.cost_labels = {{"team", "vision"}, {"project", "p1"}, {"env", "prod"}};
  e.span = {start, start + len};
  e.gpu_ms = gpu_ms;
  e.used_gpu_ms = used;
  e.price_per_gpu_hour = micro_usd{price};
  return e;
}

/// floor(sum of gpu_ms * price / 3600000), independently of the ledger.
micro_usd exact_cost(const std::vector<usage_entry>& es) {
  __int128 n = 0;
  for (const auto& e : es)
    n += static_cast<__int128>(e.gpu_ms) * e.price_per_gpu_hour.value();
  return micro_usd{static_cast<int64_t>(n / gpu_ms_per_gpu_hour)};
}

} // namespace

TEST_SUITE("finops.ledger") {
  TEST_CASE("usage rounds each instant down to the millisecond and is additive") {
    // 8 GPUs from 1000.7 ms to 2000.2 ms: floor_ms gives 1000 ms.
    const auto start = at_ns(1'000'700'000);
    const auto end = at_ns(2'000'200'000);
    CHECK(floor_ms(start) == 1000);
    CHECK(floor_ms(at_ns(-1)) == -1); // toward minus infinity
    CHECK(cumulative_gpu_ms(8000, start, end) == 8000);
    CHECK(cumulative_gpu_ms(8000, end, start) == 0);
    // A quarter GPU for 3 ms: floor(750 / 1000) = 0, for 4 ms: 1.
    CHECK(cumulative_gpu_ms(250, epoch0, epoch0 + 3ms) == 0);
    CHECK(cumulative_gpu_ms(250, epoch0, epoch0 + 4ms) == 1);
    // Metering a quarter GPU one millisecond at a time still sums exactly.
    allocation_meter m{allocation_id{1}, "t", {}, 250, epoch0, micro_usd{0}, 1h};
    int64_t sum = 0;
    for (int i = 1; i <= 1000; ++i)
      for (const auto& e : m.advance(epoch0 + std::chrono::milliseconds{i}, 0.0))
        sum += e.gpu_ms;
    CHECK(sum == 250);
    CHECK(m.metered_gpu_ms() == 250);
  }

  TEST_CASE("money carries its remainder so parts cost what the whole costs") {
    // $1 per GPU-hour: one GPU-ms costs 0.2777... micro-dollars.
    int64_t r = 0;
    int64_t total = 0;
    for (int i = 0; i < 3'600'000; i += 1000)
      total += charge(1000, micro_usd{1'000'000}, r).value();
    CHECK(total == 1'000'000);
    CHECK(r == 0);
    CHECK(cost_of(1, micro_usd{1'000'000}) == micro_usd{0});
    CHECK(cost_of(3'600'000, micro_usd{2'500'000}) == micro_usd{2'500'000});
    // No overflow for a year of 100,000 GPUs at $100/GPU-hour.
    const int64_t year_ms = int64_t{365} * 24 * 3'600'000;
    CHECK(cost_of(year_ms * 100'000, micro_usd{100'000'000}) ==
          micro_usd{int64_t{365} * 24 * 100'000 * 100'000'000});
    CHECK(share_of(micro_usd{10}, 1, 3) == micro_usd{3});
    CHECK(share_of(micro_usd{10}, 0, 0) == micro_usd{0});
    CHECK(format_usd(micro_usd{1'234'567}) == "1.234567");
    CHECK(format_usd(micro_usd{-5}) == "-0.000005");
    CHECK(format_usd(micro_usd{0}) == "0.000000");
  }

  TEST_CASE("periods cut intervals at their boundaries") {
    auto pieces = split_by_period({epoch0 + 30min, epoch0 + 150min}, 1h);
    REQUIRE(pieces.size() == 3);
    CHECK(pieces[0].end == epoch0 + 1h);
    CHECK(pieces[1].start == epoch0 + 1h);
    CHECK(pieces[1].end == epoch0 + 2h);
    CHECK(pieces[2].end == epoch0 + 150min);
    CHECK(split_by_period({epoch0 + 1h, epoch0 + 1h}, 1h).empty());
    CHECK(period_start(at_ns(-1), 1h) == epoch0 - 1h);
  }

  TEST_CASE("conservation: seeded random splits account every allocated GPU-ms and "
            "micro-dollar exactly, duplicates included") {
    for (uint64_t seed : {1ULL, 2ULL, 3ULL, 42ULL, 2026ULL}) {
      CAPTURE(seed);
      seeded_rng rng{seed};
      ledger_state ledger{1h};
      int64_t allocated_gpu_ms = 0;
      micro_usd allocated_cost{0};
      std::vector<usage_entry> all;
      for (uint64_t a = 0; a < 60; ++a) {
        // Whole GPUs (1..16) or a share of one (1..999 milli).
        const bool share = rng.below(4) == 0;
        const int64_t milli = share ? static_cast<int64_t>(1 + rng.below(999))
                                    : static_cast<int64_t>(1000 * (1 + rng.below(16)));
        const auto start = at_ns(static_cast<int64_t>(rng.below(int64_t{1} << 46)));
        const auto end = start + duration{static_cast<int64_t>(
                                     rng.below(int64_t{3} * 24 * 3600 * 1'000'000'000))};
        const micro_usd price{static_cast<int64_t>(rng.below(20'000'000))};
        std::vector<time_point> cuts;
        const auto n_cuts = rng.below(40);
        for (uint64_t i = 0; i < n_cuts; ++i)
          cuts.push_back(start + duration{static_cast<int64_t>(rng.below(
                                     static_cast<uint64_t>((end - start).count()) + 1))});
        cuts.push_back(end);
        std::sort(cuts.begin(), cuts.end());
        allocation_meter meter{allocation_id{a},
                               a % 3 == 0 ? "acme" : "globex",
                               {{"team", a % 2 == 0 ? "vision" : "speech"}},
                               milli,
                               start,
                               price,
                               1h};
        std::vector<usage_entry> mine;
        for (auto c : cuts)
          for (auto& e : meter.advance(c, rng.unit()))
            mine.push_back(std::move(e));
        const int64_t whole = cumulative_gpu_ms(milli, start, end);
        if (!share) CHECK(whole == milli / 1000 * (floor_ms(end) - floor_ms(start)));
        CHECK(meter.metered_gpu_ms() == whole);
        int64_t parts = 0;
        for (const auto& e : mine)
          parts += e.gpu_ms;
        CHECK(parts == whole);
        CHECK(exact_cost(mine) == cost_of(whole, price)); // parts cost the whole
        allocated_gpu_ms += whole;
        allocated_cost =
            micro_usd{allocated_cost.value() + cost_of(whole, price).value()};
        all.insert(all.end(), mine.begin(), mine.end());
      }
      // Apply in a random order, every entry twice or three times.
      std::vector<usage_entry> feed;
      for (const auto& e : all) {
        const auto copies = 2 + rng.below(2);
        for (uint64_t i = 0; i < copies; ++i)
          feed.push_back(e);
      }
      for (size_t i = feed.size(); i > 1; --i)
        std::swap(feed[i - 1], feed[rng.below(i)]);
      size_t applied = 0;
      size_t duplicates = 0;
      for (const auto& e : feed) {
        auto r = ledger.apply(e);
        REQUIRE(r.ok());
        (*r == apply_outcome::applied ? applied : duplicates)++;
      }
      CHECK(applied == all.size());
      CHECK(duplicates == feed.size() - all.size());
      const auto total = ledger.total();
      CHECK(total.gpu_ms == allocated_gpu_ms);
      CHECK(total.cost == allocated_cost);
      CHECK(total.entries == static_cast<int64_t>(all.size()));
      usage_totals from_accounts;
      for (const auto& [id, acct] : ledger.accounts()) {
        from_accounts.add(acct.totals);
        CHECK(acct.applied_above.empty()); // every sequence arrived: compacted
      }
      CHECK(from_accounts == total);
      for (const auto& [k, row] : ledger.rows()) {
        CHECK(row.used_gpu_ms <= row.gpu_ms);
        CHECK(row.used_cost.value() + row.idle_cost().value() == row.cost.value());
        CHECK(row.idle_cost().value() >= 0);
      }
      // The state survives serialisation unchanged.
      auto back = ledger_state_from_json(to_json(ledger));
      REQUIRE(back.ok());
      CHECK(*back == ledger);
    }
  }

  TEST_CASE("a price change between pieces charges each piece at its price") {
    allocation_meter m{allocation_id{9},   "acme", {}, 3000, epoch0,
                       micro_usd{999'999}, 1h};
    std::vector<usage_entry> es;
    for (auto& e : m.advance(epoch0 + 37min + 123ms, 0.5))
      es.push_back(e);
    m.set_price(micro_usd{333'333});
    for (auto& e : m.advance(epoch0 + 5h + 1ms, 0.25))
      es.push_back(e);
    ledger_state l{1h};
    for (const auto& e : es)
      REQUIRE(l.apply(e).ok());
    CHECK(l.total().cost == exact_cost(es));
    CHECK(l.total().gpu_ms == 3 * (5 * 3'600'000 + 1));
  }

  TEST_CASE("used and idle cost split every entry exactly") {
    ledger_state l{1h};
    // 3 GPU-hours at $2, one third used.
    REQUIRE(l.apply(entry(1, 0, 3 * 3'600'000, 3'600'000, 2'000'000)).ok());
    auto t = l.total();
    CHECK(t.cost == micro_usd{6'000'000});
    CHECK(t.used_cost == micro_usd{2'000'000});
    CHECK(t.idle_cost() == micro_usd{4'000'000});
    CHECK(t.idle_gpu_ms() == 2 * 3'600'000);
    CHECK(used_gpu_ms(1000, 0.333) == 333);
    CHECK(used_gpu_ms(1000, 2.0) == 1000);
    CHECK(used_gpu_ms(1000, -1.0) == 0);
    CHECK(used_gpu_ms(1000, std::nan("")) == 0);
  }

  TEST_CASE("replaying an entry does not count it twice, out of order included") {
    ledger_state l{1h};
    auto e0 = entry(1, 0, 1000, 0, 1'000'000);
    auto e2 = entry(1, 2, 1000, 0, 1'000'000);
    CHECK(*l.apply(e2) == apply_outcome::applied);
    CHECK(*l.apply(e2) == apply_outcome::duplicate);
    CHECK(*l.apply(e0) == apply_outcome::applied);
    CHECK(*l.apply(e0) == apply_outcome::duplicate);
    CHECK(l.applied(allocation_id{1}, 0));
    CHECK_FALSE(l.applied(allocation_id{1}, 1));
    CHECK(l.applied(allocation_id{1}, 2));
    CHECK(l.accounts().at(allocation_id{1}).applied_below == 1);
    CHECK(l.accounts().at(allocation_id{1}).applied_above.size() == 1);
    CHECK(*l.apply(entry(1, 1, 1000, 0, 1'000'000)) == apply_outcome::applied);
    CHECK(l.accounts().at(allocation_id{1}).applied_below == 3);
    CHECK(l.accounts().at(allocation_id{1}).applied_above.empty());
    CHECK(l.total().gpu_ms == 3000);
    CHECK(l.total().entries == 3);
    // The same sequence number of another allocation is another entry.
    CHECK(*l.apply(entry(2, 0, 1000, 0, 1'000'000)) == apply_outcome::applied);
  }

  TEST_CASE("malformed entries are rejected and change nothing") {
    ledger_state l{1h};
    const auto before = l;
    struct bad_case {
      const char* what;
      usage_entry e;
      const char* expected;
    };
    auto crossing = entry(1, 0, 1000, 0, 1);
    crossing.span = {epoch0 + 50min, epoch0 + 70min};
    auto backwards = entry(1, 0, 1000, 0, 1);
    backwards.span = {epoch0 + 50min, epoch0 + 40min};
    auto no_tenant = entry(1, 0, 1000, 0, 1);
    no_tenant.tenant.clear();
    const bad_case cases[] = {
        {"negative usage", entry(1, 0, -1, 0, 1), "negative gpu_ms"},
        {"used above allocated", entry(1, 0, 10, 11, 1), "used_gpu_ms 11"},
        {"negative used", entry(1, 0, 10, -1, 1), "used_gpu_ms -1"},
        {"negative price", entry(1, 0, 10, 0, -1), "negative price"},
        {"crossing a period", crossing, "crosses the period boundary"},
        {"ending before starting", backwards, "before it starts"},
        {"no tenant", no_tenant, "empty tenant"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.what);
      auto r = l.apply(c.e);
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(errc::invalid_argument));
      CHECK(r.err().message().find(c.expected) != std::string::npos);
      CHECK(l == before);
      CHECK_FALSE(l.applied(allocation_id{1}, 0));
    }
  }

  TEST_CASE("serialised state that is not the ledger's is corrupted, not trusted") {
    ledger_state l{1h};
    REQUIRE(l.apply(entry(1, 0, 7200, 3600, 1'000'000)).ok());
    REQUIRE(l.apply(entry(1, 5, 7200, 3600, 1'000'000)).ok());
    const std::string good = to_json(l);
    auto back = ledger_state_from_json(good);
    REQUIRE(back.ok());
    CHECK(*back == l);
    auto doc = nlohmann::json::parse(good);
    auto mutate = [&](auto fn) {
      auto d = doc;
      fn(d);
      return d.dump();
    };
    const std::vector<std::pair<std::string, std::string>> hostile = {
        {"empty", ""},
        {"not JSON", "{\"version\": 1,"},
        {"an array", "[]"},
        {"truncated", good.substr(0, good.size() / 2)},
        {"wrong version", mutate([](auto& d) { d["version"] = 2; })},
        {"zero period", mutate([](auto& d) { d["period_ns"] = 0; })},
        {"no accounts", mutate([](auto& d) { d.erase("accounts"); })},
        {"remainder out of range",
         mutate([](auto& d) { d["accounts"][0]["rem"] = 3'600'000; })},
        {"sequence below the watermark",
         mutate([](auto& d) { d["accounts"][0]["above"] = {0}; })},
        {"entry count off", mutate([](auto& d) { d["accounts"][0]["t"][4] = 7; })},
        {"rows disagree with accounts", mutate([](auto& d) { d["rows"][0][5][0] = 1; })},
        {"used above allocated", mutate([](auto& d) { d["rows"][0][5][1] = 1'000'000; })},
        {"negative id", mutate([](auto& d) { d["accounts"][0]["id"] = -1; })},
        {"row of the wrong shape", mutate([](auto& d) {
           d["rows"][0] = {1, 2};
         })},
        {"a string for a number",
         mutate([](auto& d) { d["accounts"][0]["below"] = "1"; })},
        {"binary garbage", std::string("\x00\xff\xfe{", 4)},
    };
    for (const auto& row : hostile) {
      const auto& [what, text] = row;
      CAPTURE(row.first); // a plain name: clang 14 cannot capture a binding
      auto r = ledger_state_from_json(text);
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(errc::corrupted));
    }
  }

  TEST_CASE("budgets warn at the threshold and block only low-priority work when "
            "exceeded") {
    tenant_budget b;
    b.limit = micro_usd{100'000'000}; // $100
    b.warn_permille = 800;
    b.block_below_priority = 10;
    auto ok = check_budget(b, micro_usd{79'999'999}, 0);
    CHECK(ok.status == budget_status::ok);
    CHECK(ok.admit);
    auto warn = check_budget(b, micro_usd{80'000'000}, 0);
    CHECK(warn.status == budget_status::warn);
    CHECK(warn.admit);
    CHECK(warn.reason.find("80.0%") != std::string::npos);
    auto low = check_budget(b, micro_usd{100'000'000}, 5);
    CHECK(low.status == budget_status::exceeded);
    CHECK_FALSE(low.admit);
    CHECK(low.reason.find("blocked") != std::string::npos);
    auto high = check_budget(b, micro_usd{150'000'000}, 10);
    CHECK(high.status == budget_status::exceeded);
    CHECK(high.admit);
    tenant_budget none;
    auto free = check_budget(none, micro_usd{1'000'000'000'000}, -100);
    CHECK(free.status == budget_status::ok);
    CHECK(free.admit);

    // The spend of the period comes from the ledger.
    ledger_state l{1h};
    REQUIRE(l.apply(entry(1, 0, 50 * 3'600'000, 0, 2'000'000)).ok()); // $100
    auto other = entry(2, 0, 3'600'000, 0, 2'000'000);
    other.tenant = "globex";
    REQUIRE(l.apply(other).ok());
    const auto spent = l.tenant_period("acme", epoch0 + 1h + 5min).cost;
    CHECK(spent == micro_usd{100'000'000});
    CHECK(l.tenant_period("acme", epoch0 + 3h).cost == micro_usd{0});
    CHECK_FALSE(check_budget(b, spent, 0).admit);
  }

  TEST_CASE("parse_usd reads what format_usd writes and refuses the rest") {
    for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{999'999}, int64_t{1'000'000},
                      int64_t{123'456'789'012}, int64_t{1'000'000'000'000'000'000}}) {
      auto r = parse_usd(format_usd(micro_usd{v}));
      REQUIRE(r.ok());
      CHECK(r->value() == v);
    }
    CHECK(parse_usd("120")->value() == 120'000'000);
    CHECK(parse_usd("0.5")->value() == 500'000);
    CHECK(parse_usd("007.25")->value() == 7'250'000);
    for (const char* bad : {"", "-1", "+1", "1.", ".5", "1.2.3", "1,000", "1e6", " 1",
                            "1 ", "0x10", "1.0000001", "1000000000001", "nan", "inf",
                            "99999999999999999999999", "12\n", "USD 5"}) {
      CAPTURE(bad);
      auto r = parse_usd(bad);
      CHECK_FALSE(r.ok());
      if (!r.ok()) CHECK(r.err().message().find("amount") != std::string::npos);
    }
  }

  TEST_CASE("a budget window sums the tenant's periods in it, aligned to the epoch") {
    ledger_state l{1h};
    // acme: 1 USD in each of hours 0..4; globex: 7 USD in hour 1.
    for (uint64_t h = 0; h < 5; ++h)
      REQUIRE(l.apply(entry(10 + h, 0, 3'600'000, 0, 1'000'000,
                            epoch0 + std::chrono::hours{h}))
                  .ok());
    auto g = entry(99, 0, 3'600'000, 0, 7'000'000, epoch0 + 1h);
    g.tenant = "globex";
    REQUIRE(l.apply(g).ok());
    // Windows of 2 h: [0, 2h), [2h, 4h), [4h, 6h).
    CHECK(budget_spend(l, "acme", epoch0 + 30min, 2h) == micro_usd{2'000'000});
    CHECK(budget_spend(l, "acme", epoch0 + 3h, 2h) == micro_usd{2'000'000});
    CHECK(budget_spend(l, "acme", epoch0 + 5h, 2h) == micro_usd{1'000'000});
    CHECK(budget_spend(l, "globex", epoch0 + 1h, 2h) == micro_usd{7'000'000});
    CHECK(budget_spend(l, "initech", epoch0 + 1h, 2h) == micro_usd{0});
    CHECK(budget_spend(l, "acme", epoch0 + 1h, 24h) == micro_usd{5'000'000});
  }

  TEST_CASE("reports group by period and label and render as CSV and JSON") {
    ledger_state l{1h};
    auto a = entry(1, 0, 3'600'000, 1'800'000, 2'000'000, epoch0 + 1h);
    auto b = entry(2, 0, 7'200'000, 0, 1'000'000, epoch0 + 1h);
    b.cost_labels["team"] = "speech, \"asr\"";
    auto c = entry(1, 1, 3'600'000, 3'600'000, 2'000'000, epoch0 + 2h);
    for (const auto& e : {a, b, c})
      REQUIRE(l.apply(e).ok());

    auto by_period = make_report(l, {.period = true, .tenant = true});
    REQUIRE(by_period.size() == 2);
    CHECK(by_period[0].period_start_ms == 3'600'000);
    CHECK(by_period[0].totals.gpu_ms == 10'800'000);
    CHECK(by_period[0].totals.cost == micro_usd{4'000'000});
    CHECK(by_period[1].totals.cost == micro_usd{2'000'000});

    auto by_team = make_report(l, {.period = false, .tenant = false, .team = true});
    REQUIRE(by_team.size() == 2);
    CHECK(by_team[0].team == "speech, \"asr\"");
    CHECK(by_team[1].team == "vision");
    CHECK(by_team[1].totals.gpu_ms == 7'200'000);
    CHECK(by_team[1].totals.used_cost == micro_usd{3'000'000});
    CHECK(by_team[1].period_start_ms == -1);

    auto window = make_report(l, {}, epoch0 + 2h, epoch0 + 3h);
    REQUIRE(window.size() == 1);
    CHECK(window[0].totals.entries == 1);

    // A tenant's own report: only its rows, whatever the grouping.
    auto g = entry(3, 0, 1'000, 0, 2'000'000, epoch0 + 1h);
    g.tenant = "globex";
    REQUIRE(l.apply(g).ok());
    auto all_teams = make_report(l, {.period = false, .tenant = false, .team = true});
    auto acme = make_report(l, {.period = false, .tenant = false, .team = true},
                            time_point::min(), time_point::max(), "acme");
    CHECK(acme == by_team);
    CHECK(all_teams != by_team);
    auto globex = make_report(l, {.period = false, .tenant = true}, time_point::min(),
                              time_point::max(), "globex");
    REQUIRE(globex.size() == 1);
    CHECK(globex[0].totals.gpu_ms == 1'000);
    CHECK(make_report(l, {}, time_point::min(), time_point::max(), "initech").empty());

    const auto csv = render_csv(by_team);
    CHECK(csv.starts_with("period_start_ms,tenant,team,project,env,gpu_ms,used_gpu_ms,"
                          "idle_gpu_ms,gpu_hours,cost_usd,used_cost_usd,idle_cost_usd,"
                          "entries\n"));
    CHECK(csv.find(",,\"speech, \"\"asr\"\"\",,,7200000,0,7200000,2.000,2.000000,"
                   "0.000000,2.000000,1\n") != std::string::npos);
    CHECK(csv.find(",,vision,,,7200000,5400000,1800000,2.000,4.000000,3.000000,"
                   "1.000000,2\n") != std::string::npos);

    auto j = nlohmann::json::parse(render_json(by_period));
    REQUIRE(j.size() == 2);
    CHECK(j[0]["period_start_ms"] == 3'600'000);
    CHECK(j[0]["tenant"] == "acme");
    CHECK(j[0]["cost_usd"] == "4.000000");
    CHECK(j[0]["cost_micro_usd"] == 4'000'000);
    CHECK(j[0]["idle_cost_micro_usd"] == 3'000'000);
    CHECK(j[1]["used_gpu_ms"] == 3'600'000);
    auto none = nlohmann::json::parse(render_json(by_team));
    CHECK(none[0]["period_start_ms"].is_null());
  }
}
