#include "troupe/finops/errc.hpp"
#include "troupe/finops/idle.hpp"
#include "troupe/finops/ledger.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <doctest/doctest.h>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::duration;
using troupe::micro_usd;
using troupe::time_point;
using namespace troupe::finops;

namespace {

const time_point t0 = time_point{} + 1000h;

time_point at_min(int64_t m) {
  return t0 + std::chrono::minutes{m};
}

/// 30m window, 10m warm-up, 30m grace and a 5% threshold for every class.
idle_policy test_policy(bool dry_run = false) {
  idle_policy p;
  for (auto& c : p.classes) {
    c.utilisation_threshold = 0.05;
    c.window = 30min;
    c.warm_up = 10min;
    c.grace = 30min;
  }
  p.dry_run = dry_run;
  return p;
}

tracked_allocation alloc(uint64_t id, workload_class cls = workload_class::training,
                         uint32_t gpus = 2) {
  tracked_allocation a;
  a.id = allocation_id{id};
  a.cls = cls;
  a.start = t0;
  a.gpus = gpus;
  a.price_per_gpu_hour = micro_usd{2'000'000};
  a.owner = "team-a";
  return a;
}

/// Feeds one sample a minute for minutes [from, to] of allocation `id`, all
/// its GPUs at `util(minute)`, then advances to `to`. Returns the actions.
std::vector<idle_action> run(idle_detector& d, uint64_t id, int64_t from, int64_t to,
                             const std::function<double(int64_t)>& util,
                             uint32_t gpus = 2) {
  std::vector<idle_action> out;
  std::vector<double> values(gpus);
  for (int64_t m = from; m <= to; ++m) {
    std::fill(values.begin(), values.end(), util(m));
    d.observe({allocation_id{id}, at_min(m), values}, out);
  }
  d.advance(at_min(to), out);
  return out;
}

double idle(int64_t) {
  return 0.0;
}

} // namespace

TEST_SUITE("finops.idle") {
  TEST_CASE("an allocation idle for the window is notified, then reclaimed after the "
            "grace period") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1)).ok());
    auto actions = run(d, 1, 0, 120, idle);
    REQUIRE(actions.size() == 2);
    // Warm-up ends at 10m: the idle run starts there and spans 30m at 40m.
    CHECK(actions[0].kind == idle_action_kind::notify_owner);
    CHECK(actions[0].at == at_min(40));
    CHECK(actions[0].idle_since == at_min(10));
    CHECK(actions[0].owner == "team-a");
    CHECK_FALSE(actions[0].dry_run);
    CHECK(actions[0].reason.find("idle for 30m") != std::string::npos);
    CHECK(actions[1].kind == idle_action_kind::checkpoint_and_evict);
    CHECK(actions[1].at == at_min(70));
    CHECK(actions[1].gpus == 2);
    CHECK(actions[1].reason.find("grace") != std::string::npos);
  }

  TEST_CASE("samples inside the warm-up period are ignored") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1)).ok());
    // Idle only during warm-up: nothing, however idle.
    CHECK(run(d, 1, 0, 9, idle).empty());
    // Busy during warm-up, idle after: the window counts from the first
    // idle sample after warm-up, exactly as if warm-up had been idle.
    idle_detector d2{test_policy()};
    REQUIRE(d2.track(alloc(2)).ok());
    auto actions = run(d2, 2, 0, 45, [](int64_t m) { return m < 10 ? 0.9 : 0.0; });
    REQUIRE(actions.size() == 1);
    CHECK(actions[0].at == at_min(40));
    // A longer warm-up for one class moves its notice.
    auto p = test_policy();
    p.of(workload_class::eval).warm_up = 20min;
    idle_detector d3{p};
    REQUIRE(d3.track(alloc(3, workload_class::eval)).ok());
    auto eval_actions = run(d3, 3, 0, 55, idle);
    REQUIRE(eval_actions.size() == 1);
    CHECK(eval_actions[0].at == at_min(50));
  }

  TEST_CASE("one busy GPU keeps the whole allocation alive") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1, workload_class::training, 4)).ok());
    std::vector<idle_action> out;
    const std::vector<double> util{0.0, 0.0, 0.0, 0.3};
    for (int64_t m = 0; m <= 180; ++m)
      d.observe({allocation_id{1}, at_min(m), util}, out);
    d.advance(at_min(180), out);
    CHECK(out.empty());
  }

  TEST_CASE("a busy sample inside the window starts the window over") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1)).ok());
    auto actions = run(d, 1, 0, 80, [](int64_t m) { return m == 36 ? 0.5 : 0.01; });
    REQUIRE(actions.size() == 1);
    CHECK(actions[0].kind == idle_action_kind::notify_owner);
    CHECK(actions[0].at == at_min(67)); // idle run from 37
    // Exactly at the threshold counts as busy.
    idle_detector d2{test_policy()};
    REQUIRE(d2.track(alloc(2)).ok());
    CHECK(run(d2, 2, 0, 120, [](int64_t) { return 0.05; }).empty());
  }

  TEST_CASE("allocations with an exempt label are never acted on") {
    auto p = test_policy();
    p.exemptions.push_back({"finops/exempt", "true"});
    idle_detector d{p};
    auto exempt = alloc(1);
    exempt.allocation_labels["finops/exempt"] = "true";
    auto other_value = alloc(2);
    other_value.allocation_labels["finops/exempt"] = "false";
    REQUIRE(d.track(exempt).ok());
    REQUIRE(d.track(other_value).ok());
    CHECK(run(d, 1, 0, 200, idle).empty());
    auto actions = run(d, 2, 0, 200, idle);
    REQUIRE(actions.size() == 2); // only an exact key=value match exempts
    CHECK(actions[1].kind == idle_action_kind::checkpoint_and_evict);
  }

  TEST_CASE("recovery during the grace period cancels the reclaim") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1)).ok());
    auto actions = run(d, 1, 0, 150, [](int64_t m) { return m == 50 ? 0.8 : 0.0; });
    REQUIRE(actions.size() == 4);
    CHECK(actions[0].kind == idle_action_kind::notify_owner);
    CHECK(actions[0].at == at_min(40));
    CHECK(actions[1].kind == idle_action_kind::cancel_reclaim);
    CHECK(actions[1].at == at_min(50));
    CHECK(actions[1].max_utilisation == doctest::Approx(0.8));
    CHECK(actions[1].reason.find("recovered") != std::string::npos);
    // No reclaim at 70: the rule started over at 51.
    CHECK(actions[2].kind == idle_action_kind::notify_owner);
    CHECK(actions[2].at == at_min(81));
    CHECK(actions[3].kind == idle_action_kind::checkpoint_and_evict);
    CHECK(actions[3].at == at_min(111));
  }

  TEST_CASE("missing telemetry is not idleness") {
    auto p = test_policy();
    p.of(workload_class::training).grace = 60min; // long enough to see a gap in it
    idle_detector d{p};
    REQUIRE(d.track(alloc(1)).ok());
    std::vector<idle_action> out;
    const std::vector<double> zero{0.0, 0.0};
    for (int64_t m = 10; m <= 20; ++m)
      d.observe({allocation_id{1}, at_min(m), zero}, out);
    // 40 minutes without samples (longer than the window), then idle again.
    for (int64_t m = 60; m <= 95; ++m)
      d.observe({allocation_id{1}, at_min(m), zero}, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].at == at_min(90));
    CHECK(out[0].idle_since == at_min(60));
    // A gap during the grace period (due at 150) cancels the pending
    // reclaim too.
    d.observe({allocation_id{1}, at_min(130), zero}, out);
    REQUIRE(out.size() == 2);
    CHECK(out[1].kind == idle_action_kind::cancel_reclaim);
    CHECK(out[1].reason.find("no samples") != std::string::npos);
    d.advance(at_min(200), out);
    CHECK(out.size() == 2);
  }

  TEST_CASE("a reclaim needs samples within the window of its deadline") {
    auto p = test_policy();
    p.of(workload_class::training).grace = 60min; // notice at 40, deadline at 100
    idle_detector d{p};
    REQUIRE(d.track(alloc(1)).ok());
    REQUIRE(d.track(alloc(2)).ok());
    // Allocation 1 goes silent at 45: 55 minutes of silence at the deadline.
    auto silent = run(d, 1, 0, 45, idle);
    // Allocation 2 reports until 75: 25 minutes of silence, within the window.
    auto quiet = run(d, 2, 0, 75, idle);
    REQUIRE(silent.size() == 1);
    REQUIRE(quiet.size() == 1);
    std::vector<idle_action> out;
    d.advance(at_min(100), out);
    REQUIRE(out.size() == 2);
    std::sort(out.begin(), out.end(), [](const idle_action& a, const idle_action& b) {
      return a.allocation < b.allocation;
    });
    CHECK(out[0].kind == idle_action_kind::cancel_reclaim);
    CHECK(out[0].reason.find("no samples for 55m") != std::string::npos);
    CHECK(out[1].kind == idle_action_kind::checkpoint_and_evict);
    // Allocation 1 starts over when samples come back.
    auto back = run(d, 1, 101, 140, idle);
    REQUIRE(back.size() == 1);
    CHECK(back[0].kind == idle_action_kind::notify_owner);
    CHECK(back[0].at == at_min(131));
  }

  TEST_CASE("each workload class gets its own reclaim") {
    const std::pair<workload_class, idle_action_kind> cases[] = {
        {workload_class::training, idle_action_kind::checkpoint_and_evict},
        {workload_class::serving, idle_action_kind::scale_to_min_replicas},
        {workload_class::interactive, idle_action_kind::release},
        {workload_class::eval, idle_action_kind::evict},
    };
    for (const auto& [cls, kind] : cases) {
      idle_detector d{test_policy()};
      REQUIRE(d.track(alloc(7, cls)).ok());
      auto actions = run(d, 7, 0, 100, idle);
      REQUIRE(actions.size() == 2);
      CHECK(actions[1].kind == kind);
      CHECK(actions[1].cls == cls);
      CHECK(is_reclaim(actions[1].kind));
      CHECK(parse_workload_class(to_string(cls)) == cls);
    }
    CHECK_FALSE(parse_workload_class("batch").has_value());
  }

  TEST_CASE("a class threshold applies to that class only") {
    auto p = test_policy();
    p.of(workload_class::serving).utilisation_threshold = 0.2;
    idle_detector d{p};
    REQUIRE(d.track(alloc(1, workload_class::serving)).ok());
    REQUIRE(d.track(alloc(2, workload_class::training)).ok());
    auto serving = run(d, 1, 0, 100, [](int64_t) { return 0.1; });
    auto training = run(d, 2, 0, 100, [](int64_t) { return 0.1; });
    CHECK(serving.size() == 2);
    CHECK(training.empty());
  }

  TEST_CASE("reclaims fire at their deadline without further samples") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1)).ok());
    auto actions = run(d, 1, 0, 40, idle);
    REQUIRE(actions.size() == 1);
    std::vector<idle_action> out;
    d.advance(at_min(69), out);
    CHECK(out.empty());
    d.advance(at_min(70), out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].at == at_min(70));
    d.advance(at_min(500), out);
    CHECK(out.size() == 1); // once
    // Untracking drops a pending reclaim.
    REQUIRE(d.track(alloc(2)).ok());
    REQUIRE(run(d, 2, 0, 40, idle).size() == 1);
    d.untrack(allocation_id{2});
    out.clear();
    d.advance(at_min(1000), out);
    CHECK(out.empty());
  }

  TEST_CASE("a zero grace period reclaims with the notice") {
    auto p = test_policy();
    p.of(workload_class::eval).grace = 0s;
    idle_detector d{p};
    REQUIRE(d.track(alloc(1, workload_class::eval)).ok());
    auto actions = run(d, 1, 0, 60, idle);
    REQUIRE(actions.size() == 2);
    CHECK(actions[0].at == at_min(40));
    CHECK(actions[1].at == at_min(40));
    CHECK(actions[1].kind == idle_action_kind::evict);
  }

  TEST_CASE("dry run reports would-be reclaims and the GPU-hours and money they save") {
    idle_detector d{test_policy(true)};
    REQUIRE(d.track(alloc(1, workload_class::training, 4)).ok());
    // Idle to 130m, busy at 131, idle again after.
    auto actions = run(
        d, 1, 0, 140, [](int64_t m) { return m == 131 ? 0.9 : 0.0; }, 4);
    REQUIRE(actions.size() == 2);
    CHECK(actions[0].dry_run);
    CHECK(actions[1].dry_run);
    CHECK(actions[1].kind == idle_action_kind::checkpoint_and_evict);
    CHECK(actions[1].at == at_min(70));
    CHECK(actions[1].reason.find("would") != std::string::npos);
    CHECK(actions[1].reason.find("frees 4 GPUs (8.000000 USD per hour)") !=
          std::string::npos);
    // Idle from the would-be reclaim at 70m to the last idle sample at 130m:
    // 60 minutes x 4 GPUs = 4 GPU-hours at $2 = $8.
    CHECK(d.savings().reclaims == 1);
    CHECK(d.savings().gpu_ms == 4 * 3'600'000);
    CHECK(d.savings().cost == micro_usd{8'000'000});
    // The idle run after the busy sample starts over: notified again at 162.
    auto more = run(d, 1, 141, 200, idle, 4);
    REQUIRE(more.size() == 2);
    CHECK(more[0].at == at_min(162));
    CHECK(more[1].at == at_min(192));
    CHECK(d.savings().reclaims == 2);
    CHECK(d.savings().gpu_ms == 4 * 3'600'000 + 4 * 8 * 60'000);
  }

  TEST_CASE("live mode follows nothing after a reclaim and counts no savings") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1)).ok());
    auto actions = run(d, 1, 0, 300, idle);
    CHECK(actions.size() == 2);
    CHECK(d.savings().reclaims == 0);
    CHECK(d.savings().gpu_ms == 0);
  }

  TEST_CASE("bad samples and calls are ignored or rejected, not trusted") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1)).ok());
    auto again = d.track(alloc(1));
    REQUIRE_FALSE(again.ok());
    CHECK(again.err().is(errc::conflict));
    auto none = alloc(2, workload_class::training, 0);
    auto r = d.track(none);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::invalid_argument));

    std::vector<idle_action> out;
    const std::vector<double> zero{0.0, 0.0};
    d.observe({allocation_id{99}, at_min(20), zero}, out); // unknown
    d.observe({allocation_id{1}, at_min(20), {}}, out);    // no GPUs
    d.observe({allocation_id{1}, at_min(30), zero}, out);
    d.observe({allocation_id{1}, at_min(25), zero}, out); // older than the last
    CHECK(d.ignored_samples() == 3);
    // NaN reads as busy, out-of-range values are clamped.
    const std::vector<double> nan{std::nan(""), 0.0};
    const std::vector<double> negative{-3.0, -1.0};
    for (int64_t m = 31; m <= 200; ++m)
      d.observe({allocation_id{1}, at_min(m), m % 10 == 0 ? nan : negative}, out);
    CHECK(out.empty());
  }

  TEST_CASE("step returns the actions of a tick in time order") {
    idle_detector d{test_policy()};
    REQUIRE(d.track(alloc(1)).ok());
    REQUIRE(d.track(alloc(2)).ok());
    std::vector<double> zero{0.0, 0.0};
    std::vector<idle_action> all;
    for (int64_t m = 0; m <= 100; ++m) {
      const utilisation_sample samples[] = {{allocation_id{2}, at_min(m), zero},
                                            {allocation_id{1}, at_min(m), zero}};
      auto actions = d.step(at_min(m), samples);
      for (size_t i = 1; i < actions.size(); ++i)
        CHECK(actions[i - 1].at <= actions[i].at);
      all.insert(all.end(), actions.begin(), actions.end());
    }
    CHECK(all.size() == 4);
  }

  TEST_CASE("audit records carry time, allocation, action and reason") {
    idle_detector d{test_policy(true)};
    REQUIRE(d.track(alloc(5)).ok());
    auto actions = run(d, 5, 0, 80, idle);
    REQUIRE(actions.size() == 2);
    auto rec = to_audit(actions[1]);
    CHECK(rec.at == at_min(70));
    CHECK(rec.allocation == allocation_id{5});
    CHECK(rec.action == idle_action_kind::checkpoint_and_evict);
    CHECK(rec.dry_run);
    CHECK(rec.reason == actions[1].reason);
    auto j = nlohmann::json::parse(to_json_line(rec));
    CHECK(j["at_ms"] == floor_ms(at_min(70)));
    CHECK(j["allocation"] == 5);
    CHECK(j["action"] == "checkpoint_and_evict");
    CHECK(j["dry_run"] == true);
    CHECK(j["reason"] == rec.reason);
  }

  TEST_CASE("policy validation names every bad value") {
    auto p = test_policy();
    p.of(workload_class::serving).utilisation_threshold = 1.5;
    p.of(workload_class::eval).utilisation_threshold = std::nan("");
    p.of(workload_class::training).grace = -1s;
    p.exemptions.push_back({"", "x"});
    auto v = p.validate();
    REQUIRE_FALSE(v.ok());
    const auto& msg = v.err().message();
    CHECK(msg.find("serving.utilisation_threshold") != std::string::npos);
    CHECK(msg.find("eval.utilisation_threshold") != std::string::npos);
    CHECK(msg.find("training.grace") != std::string::npos);
    CHECK(msg.find("empty label key") != std::string::npos);

    CHECK(parse_exemption("a=b").ok());
    CHECK(parse_exemption("a=").ok()); // an empty value is a value
    CHECK_FALSE(parse_exemption("ab").ok());
    CHECK_FALSE(parse_exemption("=b").ok());
    CHECK_FALSE(parse_exemption("a=b=c").ok());
  }

  TEST_CASE("a tick over 10,000 GPUs notifies every idle allocation once") {
    // 1,250 allocations of 8 GPUs; every tenth busy. Behaviour only: the
    // per-tick latency goal is measured in bench/, not asserted here.
    idle_detector d{test_policy()};
    constexpr uint64_t n = 1250;
    for (uint64_t i = 0; i < n; ++i)
      REQUIRE(d.track(alloc(i, workload_class::training, 8)).ok());
    const std::vector<double> zero(8, 0.0);
    const std::vector<double> busy(8, 0.7);
    std::vector<utilisation_sample> samples(n);
    int64_t notices = 0;
    int64_t reclaims = 0;
    for (int64_t m = 0; m <= 75; ++m) {
      for (uint64_t i = 0; i < n; ++i)
        samples[i] = {allocation_id{i}, at_min(m), i % 10 == 0 ? busy : zero};
      for (const auto& a : d.step(at_min(m), samples)) {
        notices += a.kind == idle_action_kind::notify_owner;
        reclaims += is_reclaim(a.kind);
      }
    }
    CHECK(notices == 1125);
    CHECK(reclaims == 1125);
  }
}
