// Placement decisions under steady churn, troupe's placer against a naive
// first fit in the same run.
//
// A generated cluster (N nodes x 8 H100, racks of 32 nodes) is filled to 70%
// of its GPUs with the request mix; then every iteration releases one random
// allocation and places one new request of the mix, so the cluster stays near
// 70% allocated. One decision = place + commit. Mixes:
//   topology8: a gang of 8 one-GPU bundles with the TOPOLOGY strategy
//   single:    one bundle of one GPU with PACK
// Counters: decisions/s (items_per_second), p50/p99 decision latency (us),
// and the share of decisions that found a placement.

#include "troupe/placement/placer.hpp"
#include "troupe/runtime/random.hpp"

#include <algorithm>
#include <benchmark/benchmark.h>
#include <chrono>
#include <vector>

using namespace troupe::placement;

namespace {

struct rng {
  uint64_t s;
  uint64_t next() { return troupe::splitmix64(s); }
};

gang_request make_request(int mix, uint64_t id) {
  gang_request r;
  r.id = request_id{id};
  bundle b;
  b.gpus = 1;
  b.cpu_milli = 4000;
  b.memory_mib = 16384;
  if (mix == 0) {
    r.placement_strategy = strategy::topology;
    r.bundles.assign(8, b);
  } else {
    r.placement_strategy = strategy::pack;
    r.bundles.push_back(b);
  }
  return r;
}

/// The baseline: first node (in index order) with room, lowest free GPUs.
std::optional<placement_plan> first_fit(const cluster_state& st,
                                        const gang_request& req) {
  std::vector<std::pair<uint32_t, std::vector<uint32_t>>> taken; // node, gpus
  placement_plan plan;
  for (uint32_t i = 0; i < req.bundles.size(); ++i) {
    const auto& b = req.bundles[i];
    bool placed = false;
    for (uint32_t k = 0; k < st.node_count() && !placed; ++k) {
      node_id n{k};
      const auto& sp = st.spec(n);
      const auto& ns = st.state(n);
      uint64_t cpu = ns.used_cpu_milli, mem = ns.used_memory_mib;
      std::vector<uint32_t> mine;
      for (auto& [tn, tg] : taken)
        if (tn == k) mine.insert(mine.end(), tg.begin(), tg.end());
      cpu += b.cpu_milli * (mine.size()); // bundles of one GPU each here
      mem += b.memory_mib * (mine.size());
      if (cpu + b.cpu_milli > sp.cpu_milli || mem + b.memory_mib > sp.memory_mib)
        continue;
      std::vector<uint32_t> gpus;
      for (uint32_t g = 0; g < sp.gpus.size() && gpus.size() < b.gpus; ++g)
        if (ns.gpus[g].free_whole() &&
            std::find(mine.begin(), mine.end(), g) == mine.end())
          gpus.push_back(g);
      if (gpus.size() < b.gpus) continue;
      bundle_placement bp;
      bp.bundle = i;
      bp.node = n;
      bp.gpus = gpus;
      bp.cpu_milli = b.cpu_milli;
      bp.memory_mib = b.memory_mib;
      plan.bundles.push_back(bp);
      taken.push_back({k, gpus});
      placed = true;
    }
    if (!placed) return std::nullopt;
  }
  return plan;
}

template <bool Naive> void run(benchmark::State& state) {
  auto nodes = static_cast<uint32_t>(state.range(0));
  int mix = static_cast<int>(state.range(1));
  generated_cluster g;
  g.racks = std::max<uint32_t>(1, nodes / 32);
  g.nodes_per_rack = nodes / g.racks;
  cluster_state st{generate_cluster(g)};
  placer p;
  rng r{42};
  std::vector<allocation_id> live;
  uint64_t id = 1;
  auto decide = [&](const gang_request& req) -> bool {
    std::optional<placement_plan> plan;
    if constexpr (Naive) {
      plan = first_fit(st, req);
    } else {
      auto out = p.place(st, req);
      plan = std::move(out.plan);
    }
    if (!plan) return false;
    auto a = st.commit(req, std::move(*plan), {});
    if (!a.ok()) return false;
    live.push_back(*a);
    return true;
  };
  const uint64_t target = st.total_gpu_milli() * 7 / 10;
  while (st.allocated_gpu_milli() < target)
    if (!decide(make_request(mix, id++))) break;
  std::vector<double> lat;
  lat.reserve(1 << 16);
  uint64_t placed = 0, tried = 0;
  for (auto _ : state) {
    if (!live.empty() && st.allocated_gpu_milli() >= target) {
      auto i = r.next() % live.size();
      if (!st.release(live[i]).ok()) state.SkipWithError("release failed");
      live[i] = live.back();
      live.pop_back();
    }
    auto req = make_request(mix, id++);
    auto t0 = std::chrono::steady_clock::now();
    bool ok = decide(req);
    auto t1 = std::chrono::steady_clock::now();
    lat.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    placed += ok;
    ++tried;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) {
    return lat.empty() ? 0.0 : lat[static_cast<size_t>(q * (lat.size() - 1))];
  };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["placed_share"] = tried ? static_cast<double>(placed) / tried : 0.0;
  state.counters["alloc_share"] = static_cast<double>(st.allocated_gpu_milli()) /
                                  static_cast<double>(st.total_gpu_milli());
  state.SetItemsProcessed(static_cast<int64_t>(tried));
  st.check_invariants();
}

void BM_placement_troupe(benchmark::State& s) {
  run<false>(s);
}
void BM_placement_first_fit(benchmark::State& s) {
  run<true>(s);
}

void args(benchmark::internal::Benchmark* b) {
  for (int mix : {0, 1})
    for (int n : {128, 1024, 8192})
      b->Args({n, mix});
  b->ArgNames({"nodes", "mix"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

} // namespace

BENCHMARK(BM_placement_troupe)->Apply(args);
BENCHMARK(BM_placement_first_fit)->Apply(args);

BENCHMARK_MAIN();
