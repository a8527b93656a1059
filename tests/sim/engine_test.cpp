#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"
#include "troupe/sim/cost_model.hpp"
#include "troupe/sim/engine.hpp"
#include "troupe/sim/event_queue.hpp"

#include <doctest/doctest.h>

using namespace troupe;
using namespace troupe::sim;
using namespace std::chrono_literals;
namespace pl = troupe::placement;

namespace {

time_point at(duration d) {
  return time_point{} + d;
}

double hours(duration d) {
  return std::chrono::duration<double>(d).count() / 3600.0;
}

/// One rack of `nodes` nodes with `gpus` GPUs each.
pl::cluster_topology small_cluster(uint32_t nodes, uint32_t gpus) {
  pl::generated_cluster g;
  g.racks = 1;
  g.nodes_per_rack = nodes;
  g.gpus_per_node = gpus;
  return pl::generate_cluster(g);
}

trace_job job(std::string name, duration submit, duration run, uint32_t gpus) {
  trace_job j;
  j.name = std::move(name);
  j.submit = submit;
  j.run_time = run;
  j.gpus = gpus;
  j.gpus_per_bundle = 8;
  return j;
}

sim_config config(pl::cluster_topology topo, std::string_view policy) {
  sim_config c;
  c.topology = std::move(topo);
  c.policy = parse_policy(policy).value();
  return c;
}

} // namespace

TEST_CASE("event queue: time order, then push order; clock follows") {
  event_queue q;
  q.push(at(5s), event_kind::finish, 1);
  q.push(at(1s), event_kind::arrival, 2);
  q.push(at(5s), event_kind::arrival, 3);
  q.push(at(1s), event_kind::sample, 4);
  q.push(at(0s), event_kind::sample, 5);
  std::vector<uint64_t> order;
  sim_clock clk;
  while (!q.empty()) {
    auto e = q.pop();
    CHECK(e.at >= clk.now());
    clk.advance_to(e.at);
    order.push_back(e.subject);
  }
  CHECK(order == std::vector<uint64_t>{5, 2, 4, 1, 3});
  CHECK(q.pushed() == 5);
  CHECK(clk.now() == at(5s));

  // A larger random workload comes out sorted and stable.
  seeded_rng rng(9);
  for (uint64_t i = 0; i < 10000; ++i)
    q.push(at(std::chrono::seconds(rng.below(100))), event_kind::sample, i);
  event prev = q.pop();
  while (!q.empty()) {
    auto e = q.pop();
    REQUIRE((e.at > prev.at || (e.at == prev.at && e.seq > prev.seq)));
    prev = e;
  }
}

TEST_CASE("checkpoint model: wall time, progress and evictions") {
  checkpoint_model m{10min, 1min, 5min};
  REQUIRE(m.validate().ok());
  // 35 minutes of work from scratch: checkpoints at 10, 20, 30 min of work.
  CHECK(segment_wall_time(m, 0min, 35min, false) == 38min);
  CHECK(segment_wall_time(m, 0min, 30min, false) == 32min); // none at the end
  CHECK(segment_wall_time(m, 20min, 35min, true) == 5min + 15min + 1min);

  auto s = segment_after(m, 0min, 35min, 25min, false);
  CHECK(s.done == 23min); // two cycles of 11 min, then 3 min of work
  CHECK(s.saved == 20min);
  CHECK_FALSE(s.checkpointing);
  s = segment_after(m, 0min, 35min, 10min + 30s, false);
  CHECK(s.done == 10min);
  CHECK(s.saved == 0min); // the checkpoint is still being written
  CHECK(s.checkpointing);
  s = segment_after(m, 20min, 35min, 4min, true); // still restarting
  CHECK(s.done == 20min);

  // A kill loses the work since the last completed checkpoint.
  auto k = evict_segment(m, 0min, 35min, 25min, false, 0min);
  CHECK(k.saved == 20min);
  CHECK(k.lost == 3min);
  CHECK(k.release_after == 0min);
  // A 2-minute notice leaves time for a 1-minute checkpoint: nothing lost.
  auto n = evict_segment(m, 0min, 35min, 25min, false, 2min);
  CHECK(n.saved == 23min);
  CHECK(n.lost == 0min);
  CHECK(n.release_after == 1min);
  // A notice shorter than the checkpoint: runs on, then loses what it did.
  checkpoint_model slow{10min, 5min, 0min};
  auto x = evict_segment(slow, 0min, 60min, 12min, false, 2min);
  // at 12 min: 10 min done, checkpoint in progress since 10 min (3 min left
  // of 5, more than the 2-minute notice); at 14 min it is still writing.
  CHECK(x.saved == 0min);
  CHECK(x.lost == 10min);
  CHECK(x.release_after == 2min);
  // No checkpoints at all: everything is lost.
  checkpoint_model none{};
  auto y = evict_segment(none, 0min, 60min, 42min, false, 0min);
  CHECK(y.lost == 42min);
  CHECK(y.saved == 0min);

  CHECK_FALSE(checkpoint_model{0min, 1min, 0min}.validate().ok());
  CHECK_FALSE(checkpoint_model{-1min, 0min, 0min}.validate().ok());
}

TEST_CASE("policies: parse, and a clear error for unknown names") {
  CHECK(parse_policy("fifo")->discipline == queue_discipline::fifo);
  CHECK(parse_policy("troupe:fgd")->scorer == "fgd");
  auto bad = parse_policy("lifo");
  REQUIRE(!bad.ok());
  CHECK(bad.err().message().find("fifo, sjf, troupe") != std::string::npos);
  auto bad2 = parse_policy("sjf:worst");
  REQUIRE(!bad2.ok());
  CHECK(bad2.err().message().find("unknown scorer \"worst\"") != std::string::npos);
}

TEST_CASE("FIFO blocks behind the head; SJF runs short jobs first") {
  // One 8-GPU node. A (8 GPUs, 10 h) runs; then B (8 GPUs, 5 h) and C
  // (1 GPU, 1 h) queue.
  trace t;
  t.jobs = {job("A", 0h, 10h, 8), job("B", 1h, 5h, 8), job("C", 2h, 1h, 1)};
  auto fifo = simulate(t, config(small_cluster(1, 8), "fifo"));
  REQUIRE(fifo.ok());
  CHECK(fifo->summary.completed == 3);
  // FIFO: A 0-10, B 10-15, C 15-16.
  CHECK(*fifo->jobs[0].end == at(10h));
  CHECK(*fifo->jobs[1].end == at(15h));
  CHECK(*fifo->jobs[2].end == at(16h));
  auto sjf = simulate(t, config(small_cluster(1, 8), "sjf"));
  REQUIRE(sjf.ok());
  // SJF: A 0-10, C 10-11, B 11-16.
  CHECK(*sjf->jobs[2].end == at(11h));
  CHECK(*sjf->jobs[1].end == at(16h));
  CHECK(sjf->summary.jct_mean_s < fifo->summary.jct_mean_s);
  // Queueing delay of C: 13 h under FIFO, 8 h under SJF.
  CHECK(hours(fifo->jobs[2].queued) == doctest::Approx(13));
  CHECK(hours(sjf->jobs[2].queued) == doctest::Approx(8));
}

TEST_CASE("troupe's queue backfills a short job without delaying the head") {
  // Two 4-GPU nodes. A (4 GPUs, 10 h) runs on one; B (8 GPUs) must wait
  // for A; C (4 GPUs, 2 h) fits on the free node and ends before A does,
  // so EASY backfill starts it at once. FIFO holds C behind B.
  trace t;
  t.jobs = {job("A", 0h, 10h, 4), job("B", 1h, 3h, 8), job("C", 2h, 2h, 4)};
  t.jobs[1].gpus_per_bundle = 4;
  auto tr = simulate(t, config(small_cluster(2, 4), "troupe"));
  REQUIRE(tr.ok());
  CHECK(*tr->jobs[2].first_start == at(2h));  // backfilled
  CHECK(*tr->jobs[1].first_start == at(10h)); // head not delayed
  auto ff = simulate(t, config(small_cluster(2, 4), "fifo"));
  REQUIRE(ff.ok());
  CHECK(*ff->jobs[1].first_start == at(10h)); // B needs both nodes
  CHECK(*ff->jobs[2].first_start == at(13h)); // C waits behind B
}

TEST_CASE("a job that can never fit is rejected, not queued forever") {
  trace t;
  t.jobs = {job("big", 0h, 1h, 64), job("ok", 0h, 1h, 2)};
  auto r = simulate(t, config(small_cluster(2, 8), "fifo"));
  REQUIRE(r.ok());
  CHECK(r->summary.never_fit == 1);
  CHECK(r->summary.completed == 1);
  CHECK(r->jobs[0].never_fits);
}

TEST_CASE("node failures kill jobs, lose work since the checkpoint, and restart them") {
  trace t;
  for (int i = 0; i < 40; ++i)
    t.jobs.push_back(job("j" + std::to_string(i), std::chrono::hours(i), 20h, 8));
  auto c = config(small_cluster(8, 8), "troupe");
  c.checkpoints = {1h, 2min, 10min};
  c.faults.node_mtbf = 48h;
  c.faults.node_repair = 3h;
  c.seed = 7;
  auto r = simulate(t, c);
  REQUIRE(r.ok());
  CHECK(r->summary.completed == 40);
  CHECK(r->summary.node_failures > 0);
  CHECK(r->summary.failures > 0);
  uint64_t restarts = 0;
  for (const auto& j : r->jobs) {
    restarts += j.starts - 1;
    // At most one interval of work per kill.
    CHECK(j.lost_work <= j.failures * 1h);
    if (j.failures == 0)
      CHECK(*j.end - *j.first_start == 20h + 19 * 2min);
    else
      CHECK(*j.end - *j.first_start > 20h + 19 * 2min);
  }
  CHECK(restarts == r->summary.failures);
  CHECK(r->summary.lost_gpu_hours > 0);

  // The same seed gives the same run; another seed a different one.
  auto again = simulate(t, c);
  REQUIRE(again.ok());
  CHECK(again->summary.node_failures == r->summary.node_failures);
  CHECK(again->summary.jct_mean_s == r->summary.jct_mean_s);
  CHECK(again->series.allocation_pct == r->series.allocation_pct);
  c.seed = 8;
  auto other = simulate(t, c);
  REQUIRE(other.ok());
  CHECK(other->summary.jct_mean_s != r->summary.jct_mean_s);
}

TEST_CASE("spot reclaims from a trace: checkpoint within the notice loses nothing") {
  // Two spot nodes whose trace goes away for 2 ticks every 10 (tick 1 h).
  pl::generated_cluster g;
  g.racks = 1;
  g.nodes_per_rack = 2;
  g.gpus_per_node = 8;
  g.spot_fraction = 1.0;
  auto topo = pl::generate_cluster(g);
  for (auto& n : topo.nodes)
    REQUIRE(n.capacity == pl::capacity_type::spot);
  spot_trace st;
  st.tick = 1h;
  st.counts = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  trace t;
  for (int i = 0; i < 6; ++i) {
    auto j = job("s" + std::to_string(i), std::chrono::hours(i), 15h, 8);
    j.spot_tolerant = true;
    t.jobs.push_back(j);
  }
  auto c = config(topo, "troupe");
  c.faults.spot_traces = {st};
  c.faults.spot_notice = 2min;
  c.checkpoints = {30min, 1min, 5min};
  auto r = simulate(t, c);
  REQUIRE(r.ok());
  INFO(r->summary.never_fit, " ", r->summary.unfinished, " ", r->summary.events);
  CHECK(r->summary.completed == 6);
  CHECK(r->summary.spot_reclaims > 0);
  CHECK(r->summary.failures > 0);
  CHECK(r->summary.lost_gpu_hours == 0); // every eviction checkpointed in time

  // With a 30 s notice the 1-minute checkpoint does not fit: work is lost.
  c.faults.spot_notice = 30s;
  auto late = simulate(t, c);
  REQUIRE(late.ok());
  CHECK(late->summary.completed == 6);
  CHECK(late->summary.lost_gpu_hours > 0);
}

TEST_CASE("jobs that never end hold their GPUs; the run ends when the others are done") {
  trace t;
  t.jobs = {job("forever", 0h, 0h, 8), job("a", 1h, 2h, 8), job("b", 2h, 1h, 4)};
  auto r = simulate(t, config(small_cluster(2, 8), "fifo"));
  REQUIRE(r.ok());
  CHECK(r->summary.completed == 2);
  CHECK(r->summary.unfinished == 1);
  CHECK(*r->jobs[1].end == at(3h));
  CHECK(*r->jobs[2].end == at(4h)); // waits for a: the other node is held forever
  // With faults the run would never end: a horizon is required.
  auto c = config(small_cluster(2, 8), "fifo");
  c.faults.node_mtbf = 100h;
  auto bad = simulate(t, c);
  REQUIRE(!bad.ok());
  CHECK(bad.err().message().find("set a horizon") != std::string::npos);
  c.horizon = 48h;
  CHECK(simulate(t, c).ok());
}

TEST_CASE("bad configs are rejected with the field named") {
  trace t;
  t.jobs = {job("a", 0h, 1h, 1)};
  auto c = config(small_cluster(1, 8), "fifo");
  c.sample_interval = 0s;
  auto r = simulate(t, c);
  REQUIRE(!r.ok());
  CHECK(r.err().message().find("sample_interval") != std::string::npos);
  c = config(small_cluster(1, 8), "fifo");
  c.faults.node_mtbf = 1h;
  c.faults.node_repair = 0s;
  r = simulate(t, c);
  REQUIRE(!r.ok());
  CHECK(r.err().message().find("node_repair") != std::string::npos);
  c = config(small_cluster(1, 8), "fifo:fgd");
  c.mix = pl::workload_mix{};
  r = simulate(t, c);
  REQUIRE(!r.ok());
  CHECK(r.err().message().find("needs a workload mix") != std::string::npos);
}

TEST_CASE("reports are byte-identical for the same inputs and seed") {
  // A busy mixed workload with failures and a random scorer: everything
  // that could leak nondeterminism.
  trace t;
  seeded_rng rng(11);
  for (int i = 0; i < 400; ++i) {
    auto j = job("j" + std::to_string(i), std::chrono::minutes(3 * i),
                 std::chrono::minutes(10 + rng.below(600)), 1u << rng.below(5));
    j.tenant = "t" + std::to_string(rng.below(3));
    t.jobs.push_back(j);
  }
  auto run = [&](std::string_view policy, uint64_t seed) {
    auto c = config(small_cluster(6, 8), policy);
    c.seed = seed;
    c.faults.node_mtbf = 200h;
    c.checkpoints = {30min, 1min, 2min};
    auto r = simulate(t, c);
    REQUIRE(r.ok());
    return *r;
  };
  for (auto policy : {"fifo:random", "sjf", "troupe"}) {
    CAPTURE(policy);
    std::vector<sim_result> a{run(policy, 3)}, b{run(policy, 3)};
    CHECK(results_json(a) == results_json(b));
    CHECK(render_series_csv(compare_charts(a)) == render_series_csv(compare_charts(b)));
    CHECK(render_table(compare_table(a, "x")) == render_table(compare_table(b, "x")));
    CHECK(a[0].summary.completed == 400);
  }
  // Side by side: the table has one row per policy and the charts one line
  // per policy.
  std::vector<sim_result> all{run("fifo", 1), run("sjf", 1), run("troupe", 1)};
  auto table = compare_table(all, "side by side");
  CHECK(table.rows.size() == 3);
  auto charts = compare_charts(all);
  REQUIRE(!charts.empty());
  CHECK(charts[0].lines.size() == 3);
  // Labelled runs (one per cluster) get one set of charts per label.
  auto labelled = all;
  labelled[0].label = "vc1";
  labelled[1].label = "vc1";
  labelled[2].label = "vc2";
  auto per_label = compare_charts(labelled);
  REQUIRE(per_label.size() >= 2);
  CHECK(per_label[0].id == "allocation_vc1");
  CHECK(per_label[0].lines.size() == 2);
  CHECK(per_label[0].lines[0].name == "fifo");
  CHECK(std::any_of(per_label.begin(), per_label.end(), [](const chart& c) {
    return c.id == "queue_vc2" && c.lines.size() == 1;
  }));
  // SJF never has a worse mean queueing delay than FIFO on this load.
  CHECK(all[1].summary.queue_mean_s <= all[0].summary.queue_mean_s);
}
