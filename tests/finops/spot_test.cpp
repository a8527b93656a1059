#include "troupe/finops/spot.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::micro_usd;
using troupe::time_point;
using troupe::placement::capacity_type;
using namespace troupe::finops;

namespace {

spot_policy policy() {
  spot_policy p;
  p.max_spot_share_permille = 500;
  p.max_checkpoint_interval = 30min;
  p.notice_margin = 10s;
  return p;
}

spot_candidate good_job(uint32_t gpus = 8) {
  spot_candidate j;
  j.tenant = "acme";
  j.gpus = gpus;
  j.spot_tolerant = true;
  j.checkpoints = true;
  j.checkpoint_interval = 20min;
  return j;
}

} // namespace

TEST_SUITE("finops.spot") {
  TEST_CASE("only tolerant, checkpointing work within the tenant's share goes on spot") {
    const auto p = policy();
    REQUIRE(p.validate().ok());
    auto ok = decide_spot(p, good_job(), {.spot = 0, .total = 8});
    CHECK(ok.allowed());
    CHECK(ok.verdict == spot_verdict::allowed);

    auto intolerant = good_job();
    intolerant.spot_tolerant = false;
    CHECK(decide_spot(p, intolerant, {}).verdict == spot_verdict::not_tolerant);

    auto no_ckpt = good_job();
    no_ckpt.checkpoints = false;
    CHECK(decide_spot(p, no_ckpt, {}).verdict == spot_verdict::no_checkpointing);

    auto slow = good_job();
    slow.checkpoint_interval = 31min;
    auto d = decide_spot(p, slow, {.spot = 0, .total = 100});
    CHECK(d.verdict == spot_verdict::interval_too_long);
    CHECK(d.reason.find("1860s") != std::string::npos);
    auto unknown = good_job();
    unknown.checkpoint_interval = 0s;
    CHECK(decide_spot(p, unknown, {.spot = 0, .total = 100}).verdict ==
          spot_verdict::interval_too_long);
    auto exact = good_job();
    exact.checkpoint_interval = 30min; // the limit itself is kept
    CHECK(decide_spot(p, exact, {.spot = 0, .total = 100}).allowed());
  }

  TEST_CASE("the spot share cap counts the new job and allows exactly the cap") {
    const auto p = policy(); // 50%
    // 8 on spot of 8 + 8 = 16 after: exactly 50%.
    CHECK(decide_spot(p, good_job(8), {.spot = 0, .total = 8}).allowed());
    // 9 of 17: over.
    auto over = decide_spot(p, good_job(1), {.spot = 8, .total = 16});
    CHECK(over.verdict == spot_verdict::share_cap_exceeded);
    CHECK(over.reason.find("9 of 17") != std::string::npos);
    // A tenant with nothing yet cannot put everything on spot at 50%.
    CHECK(decide_spot(p, good_job(8), {}).verdict == spot_verdict::share_cap_exceeded);
    auto all = p;
    all.max_spot_share_permille = 1000;
    CHECK(decide_spot(all, good_job(8), {}).allowed());
    auto none = p;
    none.max_spot_share_permille = 0;
    CHECK_FALSE(decide_spot(none, good_job(1), {.spot = 0, .total = 1000}).allowed());
  }

  TEST_CASE("the cheapest pool with room is chosen, spot only when allowed") {
    const std::vector<node_pool> pools = {
        {"od", capacity_type::on_demand, micro_usd{2'500'000}, 64},
        {"reserved", capacity_type::reserved, micro_usd{1'800'000}, 4},
        {"spot", capacity_type::spot, micro_usd{900'000}, 64},
    };
    spot_decision yes;
    spot_decision no{spot_verdict::not_tolerant, ""};
    CHECK(choose_pool(pools, 8, yes) == 2u);
    CHECK(choose_pool(pools, 8, no) == 0u); // reserved is too small
    CHECK(choose_pool(pools, 4, no) == 1u); // reserved fits
    CHECK_FALSE(choose_pool(pools, 65, yes).has_value());
  }

  TEST_CASE("a preemption notice checkpoints what fits and records what is lost") {
    const auto p = policy();
    const time_point t0 = time_point{} + 100h;
    preemption_notice n{"spot-node-3", t0, t0 + 120s};
    std::vector<spot_job> jobs(4);
    // Fits: 20s checkpoint + 10s margin <= 120s.
    jobs[0] = {allocation_id{1}, 8, true, 20s, t0 - 2h, t0 - 10min};
    // Too slow: 115s + 10s > 120s; runs to the deadline and loses the work
    // since its last checkpoint 10 minutes ago: 10m + 120s.
    jobs[1] = {allocation_id{2}, 4, true, 115s, t0 - 2h, t0 - 10min};
    // Cannot checkpoint and never did: loses everything since its start.
    jobs[2] = {allocation_id{3}, 1, false, 0s, t0 - 1h, std::nullopt};
    // Exactly fits: 110s + 10s == 120s.
    jobs[3] = {allocation_id{4}, 2, true, 110s, t0 - 1h, t0 - 1min};
    auto plan = plan_preemption(p, n, jobs);
    REQUIRE(plan.steps.size() == 4);
    CHECK(plan.steps[0].action == notice_action::checkpoint_then_reschedule);
    CHECK(plan.steps[0].checkpoint_done == t0 + 20s);
    CHECK(plan.steps[0].lost_gpu_ms == 0);
    CHECK(plan.steps[0].reason.find("spot-node-3") != std::string::npos);

    CHECK(plan.steps[1].action == notice_action::lose_work);
    CHECK(plan.steps[1].lost_work == 12min);
    CHECK(plan.steps[1].lost_gpu_ms == 4 * 12 * 60'000);
    CHECK(plan.steps[1].reason.find("does not fit") != std::string::npos);

    CHECK(plan.steps[2].action == notice_action::lose_work);
    CHECK(plan.steps[2].lost_work == 62min);
    CHECK(plan.steps[2].lost_gpu_ms == 62 * 60'000);
    CHECK(plan.steps[2].reason.find("cannot checkpoint") != std::string::npos);
    CHECK(plan.steps[2].reason.find("since its start") != std::string::npos);

    CHECK(plan.steps[3].action == notice_action::checkpoint_then_reschedule);

    CHECK(plan.lost_gpu_ms == 4 * 12 * 60'000 + 62 * 60'000);
    CHECK(plan.gpus_to_reschedule == 15);
  }

  TEST_CASE("a notice shorter than the margin loses the work of every job") {
    const time_point t0 = time_point{} + 1h;
    auto plan = plan_preemption(policy(), {"n", t0, t0 + 5s},
                                {{allocation_id{1}, 2, true, 0s, t0 - 30s, t0 - 10s}});
    REQUIRE(plan.steps.size() == 1);
    CHECK(plan.steps[0].action == notice_action::lose_work);
    CHECK(plan.steps[0].lost_work == 15s);
    CHECK(plan.lost_gpu_ms == 30'000);
  }

  TEST_CASE("spot policy validation names bad values") {
    spot_policy p;
    p.max_spot_share_permille = 1001;
    p.max_checkpoint_interval = 0s;
    p.notice_margin = -1s;
    auto v = p.validate();
    REQUIRE_FALSE(v.ok());
    CHECK(v.err().message().find("max_spot_share_permille") != std::string::npos);
    CHECK(v.err().message().find("max_checkpoint_interval") != std::string::npos);
    CHECK(v.err().message().find("notice_margin") != std::string::npos);
  }
}
