#include "troupe/sim/fgd_experiment.hpp"

#include "troupe/placement/cluster_state.hpp"
#include "troupe/placement/placer.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>
#include <numeric>
#include <optional>

namespace troupe::sim {

using runtime::errc;
namespace pl = troupe::placement;

namespace {

constexpr uint64_t milli_per_gpu = 1000;

/// One pod of the trace as the experiment submits it.
struct pod {
  pl::gang_request request;
  uint64_t total_milli = 0;   ///< GPU milli it asks for in all
  uint64_t per_gpu_milli = 0; ///< per GPU: 1000 whole, the share, 0 CPU-only
};

/// Seeds of the independent streams one experiment seed drives.
uint64_t stream_seed(uint64_t seed, uint64_t stream) {
  uint64_t s = seed ^ (0x6a09e667f3bcc909ULL * (stream + 1));
  return splitmix64(s);
}

/// The target workloads of the policies.
struct mixes {
  pl::workload_mix typical;  ///< M, for FGD and the report
  pl::workload_mix capacity; ///< M', for troupe's capacity term
};

std::unique_ptr<pl::scorer> make_scorer(const std::string& policy,
                                        const pl::cluster_state& st, const mixes& m,
                                        const fgd_experiment_config& cfg, uint64_t seed) {
  const auto& mix = m.typical;
  if (policy == "random")
    return std::make_unique<pl::random_scorer>(st, stream_seed(seed, 2));
  if (policy == "bestfit")
    return std::make_unique<pl::paper_best_fit_scorer>(128000, 8000,
                                                       pl::best_fit_score::simulator);
  if (policy == "bestfit_exact")
    return std::make_unique<pl::paper_best_fit_scorer>(128000, 8000,
                                                       pl::best_fit_score::exact);
  if (policy == "fgd")
    return std::make_unique<pl::fgd_scorer>(st, mix, pl::fgd_score::simulator);
  if (policy == "fgd_gradient")
    return std::make_unique<pl::fgd_scorer>(st, mix, pl::fgd_score::gradient);
  if (policy == "troupe")
    return std::make_unique<pl::troupe_scorer>(st, mix, m.capacity,
                                               cfg.troupe_capacity_weight);
  if (policy == "best_fit") return std::make_unique<pl::best_fit_scorer>();
  return nullptr;
}

/// The expected fragmentation of the whole cluster, kept up to date node by
/// node: per class the sum over nodes of its fragment (exact integers), so
/// the total does not depend on the order of updates.
class fragmentation_tracker {
public:
  fragmentation_tracker(const pl::cluster_state& st, const pl::workload_mix& mix)
      : st_(st), mix_(mix), classes_(mix.classes.size()),
        per_node_(st.node_count() * classes_, 0), free_per_node_(st.node_count(), 0),
        totals_(classes_, 0) {
    for (uint32_t k = 0; k < st.node_count(); ++k)
      update(pl::node_id{k});
  }

  /// Recomputes node `n` after a change.
  void update(pl::node_id n) {
    const auto& spec = st_.spec(n);
    const auto& ns = st_.state(n);
    auto* row = &per_node_[n.value() * classes_];
    for (size_t c = 0; c < classes_; ++c) {
      uint64_t f = pl::class_fragmentation(spec, ns, mix_.classes[c]);
      totals_[c] = totals_[c] - row[c] + f;
      row[c] = f;
    }
    uint64_t free = pl::node_free_gpu_milli(spec, ns);
    free_ = free_ - free_per_node_[n.value()] + free;
    free_per_node_[n.value()] = free;
  }

  /// F(M) of the cluster in milli-GPU.
  double fragmentation() const {
    double f = 0;
    for (size_t c = 0; c < classes_; ++c)
      f += mix_.classes[c].weight * static_cast<double>(totals_[c]);
    return f;
  }
  uint64_t free_milli() const { return free_; }

private:
  const pl::cluster_state& st_;
  const pl::workload_mix& mix_;
  size_t classes_;
  std::vector<uint64_t> per_node_; ///< node-major, class fragments
  std::vector<uint64_t> free_per_node_;
  std::vector<uint64_t> totals_;
  uint64_t free_ = 0;
};

/// The arrival list of one seed: indices into `pool` (see the header).
std::vector<uint32_t> draw_arrivals(const std::vector<pod>& pool, uint64_t target,
                                    arrival_model model, seeded_rng& rng) {
  std::vector<uint32_t> order;
  uint64_t requested = 0;
  if (model == arrival_model::simulator) {
    order.resize(pool.size());
    std::iota(order.begin(), order.end(), 0u);
    for (size_t i = order.size(); i > 1; --i) // Fisher-Yates
      std::swap(order[i - 1], order[rng.below(i)]);
    for (auto i : order)
      requested += pool[i].total_milli;
    while (requested > target && !order.empty()) { // tuneDownPods
      size_t i = rng.below(order.size());
      requested -= pool[order[i]].total_milli;
      order.erase(order.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (requested > target) return order;
  }
  for (;;) { // tuneUpPods
    uint32_t i = static_cast<uint32_t>(rng.below(pool.size()));
    if (requested + pool[i].per_gpu_milli > target) break;
    requested += pool[i].total_milli;
    order.push_back(i);
  }
  return order;
}

/// `topology` with its nodes in a seeded random order (racks unchanged).
pl::cluster_topology permute_nodes(const pl::cluster_topology& topology,
                                   seeded_rng& rng) {
  pl::cluster_topology t = topology;
  for (size_t i = t.nodes.size(); i > 1; --i)
    std::swap(t.nodes[i - 1], t.nodes[rng.below(i)]);
  return t;
}

/// Sums of the figures over the records that fall on one x. Allocation is
/// summed in milli-GPU, exactly, so that equal allocations give equal means
/// and the curve is monotone to the last bit.
struct bucket {
  uint64_t alloc = 0;
  double frag = 0, rate = 0;
  uint64_t count = 0;
  void add(const bucket& o) {
    alloc += o.alloc;
    frag += o.frag;
    rate += o.rate;
    count += o.count;
  }
};

/// Runs one policy on one seed's arrivals.
fgd_run run_one(const std::string& policy, uint64_t seed,
                const pl::cluster_topology& topology, const std::vector<pod>& pool,
                const std::vector<uint32_t>& arrivals, const mixes& m,
                const fgd_experiment_config& cfg,
                const std::function<void(uint64_t)>& tick) {
  const auto& mix = m.typical;
  const double demand_ratio = cfg.demand_ratio;
  pl::cluster_state st{topology};
  auto sc = make_scorer(policy, st, m, cfg, seed);
  TROUPE_ASSERT(sc != nullptr, "fgd experiment: policy checked before the runs");
  pl::placer placer{sc.get()};
  fragmentation_tracker frag{st, mix};
  const auto capacity = static_cast<double>(st.total_gpu_milli());
  const auto x_max = static_cast<size_t>(std::lround(demand_ratio * 100.0));
  std::vector<bucket> buckets(x_max + 2);
  uint64_t arrived = 0;
  auto record = [&] {
    double pct = 100.0 * static_cast<double>(arrived) / capacity;
    auto x = static_cast<size_t>(std::max(0.0, std::nearbyint(pct)));
    if (x >= buckets.size()) return;
    double f = frag.fragmentation();
    uint64_t free = frag.free_milli();
    auto& b = buckets[x];
    b.alloc += st.allocated_gpu_milli();
    b.frag += 100.0 * f / capacity;
    b.rate += free > 0 ? 100.0 * f / static_cast<double>(free) : 0.0;
    b.count += 1;
  };
  fgd_run run;
  run.policy = policy;
  run.seed = seed;
  record();
  for (size_t k = 0; k < arrivals.size(); ++k) {
    const auto& p = pool[arrivals[k]];
    arrived += p.total_milli;
    if (auto plan = placer.find_plan(st, p.request)) {
      auto n = plan->bundles.front().node;
      auto r = st.commit(p.request, std::move(*plan), time_point{});
      TROUPE_ASSERT(r.ok(), r.ok() ? "" : r.err().message().c_str());
      frag.update(n);
    } else {
      ++run.failed;
    }
    record();
    if ((k + 1) % 1024 == 0) tick(1024);
  }
  tick(arrivals.size() % 1024);
  run.arrivals = arrivals.size();
  run.arrived_gpu_milli = arrived;
  run.allocated_gpu_milli = st.allocated_gpu_milli();
  for (size_t x = 0; x <= x_max; ++x) {
    bucket b = buckets[x];
    if (b.count == 0) { // the simulator's fallback: x-1..x+1
      if (x > 0) b.add(buckets[x - 1]);
      b.add(buckets[x + 1]);
      if (b.count == 0) continue;
    }
    auto n = static_cast<double>(b.count);
    const double alloc = 100.0 * static_cast<double>(b.alloc) / (n * capacity);
    run.demand_pct.push_back(static_cast<double>(x));
    run.alloc_pct.push_back(alloc);
    run.frag_pct.push_back(b.frag / n);
    run.frag_rate_pct.push_back(b.rate / n);
    if (x == 100) {
      run.alloc_at_100 = alloc;
      run.frag_at_100 = b.frag / n;
      run.frag_gpus_at_100 = b.frag / n * capacity / 100.0 / milli_per_gpu;
      run.frag_rate_at_100 = b.rate / n;
    }
  }
  return run;
}

std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, digits);
  return std::string(buf, r.ptr);
}

struct stats {
  double mean = 0, stddev = 0, min = 0, max = 0;
};

stats summarise(const std::vector<double>& v) {
  stats s;
  if (v.empty()) return s;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  for (double x : v)
    s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v)
      ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return s;
}

} // namespace

result<std::vector<uint64_t>> parse_seed_list(std::string_view text) {
  auto bad = [&] {
    return error{runtime::errc::invalid_argument,
                 "expected a list like 42-51 or 1,2,3, got \"" + std::string(text) +
                     "\""};
  };
  // A whole unsigned number, or nothing.
  auto number = [](std::string_view s) -> std::optional<uint64_t> {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
  };
  std::vector<uint64_t> out;
  std::string_view rest = text;
  for (;;) {
    auto comma = rest.find(',');
    auto part = rest.substr(0, comma);
    auto dash = part.find('-');
    if (dash == std::string_view::npos) {
      auto v = number(part);
      if (!v) return bad();
      out.push_back(*v);
    } else {
      auto a = number(part.substr(0, dash)), b = number(part.substr(dash + 1));
      if (!a || !b || *a > *b || *b - *a >= 100000) return bad();
      for (auto x = *a; x <= *b; ++x)
        out.push_back(x);
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

result<arrival_model> parse_arrival_model(std::string_view text) {
  if (text == "simulator") return arrival_model::simulator;
  if (text == "with_replacement") return arrival_model::with_replacement;
  return error{runtime::errc::invalid_argument,
               "arrivals: expected simulator or with_replacement, got \"" +
                   std::string(text) + "\""};
}

std::vector<std::string> fgd_policy_names() {
  return {"random",       "bestfit",       "fgd",     "troupe",
          "fgd_gradient", "bestfit_exact", "best_fit"};
}

result<fgd_experiment_result>
run_fgd_experiment(const pl::cluster_topology& topology, const trace& pods,
                   const fgd_experiment_config& cfg,
                   std::function<void(uint64_t done, uint64_t total)> progress) {
  auto bad = [](std::string what) {
    return error{errc::invalid_argument, "fgd experiment: " + std::move(what)};
  };
  const auto known = fgd_policy_names();
  if (cfg.policies.empty()) return bad("no policy to run");
  for (const auto& p : cfg.policies)
    if (std::find(known.begin(), known.end(), p) == known.end()) {
      std::string list;
      for (const auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      return bad("unknown policy \"" + p + "\"; known policies: " + list);
    }
  if (cfg.seeds.empty()) return bad("no seed to run");
  if (!std::isfinite(cfg.demand_ratio) || cfg.demand_ratio <= 0 || cfg.demand_ratio > 100)
    return bad("demand_ratio must be in (0, 100], got " +
               std::to_string(cfg.demand_ratio));
  if (auto v = topology.validate(); !v) return v.err();
  if (topology.total_gpus() == 0) return bad("the topology has no GPU");
  if (pods.jobs.empty()) return bad("the trace has no pod");

  std::vector<pod> pool;
  std::vector<pl::bundle> bundles;
  pool.reserve(pods.jobs.size());
  bundles.reserve(pods.jobs.size());
  for (size_t i = 0; i < pods.jobs.size(); ++i) {
    const auto& j = pods.jobs[i];
    if (j.bundle_count() != 1)
      return bad("pod " + std::to_string(i) + " (" + j.name + ") has " +
                 std::to_string(j.bundle_count()) +
                 " bundles; the experiment places pods "
                 "of one bundle");
    pod p;
    p.request = to_gang_request(j, pl::request_id{i + 1});
    p.total_milli = milli_per_gpu * j.gpus + j.gpu_milli;
    p.per_gpu_milli = j.gpu_milli > 0 ? j.gpu_milli : (j.gpus > 0 ? milli_per_gpu : 0);
    bundles.push_back(p.request.bundles.front());
    pool.push_back(std::move(p));
  }
  if (!std::isfinite(cfg.troupe_capacity_weight) || cfg.troupe_capacity_weight < 0)
    return bad("troupe_capacity_weight must be a number >= 0, got " +
               std::to_string(cfg.troupe_capacity_weight));
  auto mix = pl::typical_workload_mix(bundles, cfg.mix);
  if (!mix) return mix.err();
  auto cap_opt = cfg.mix;
  cap_opt.popularity = cfg.troupe_capacity_popularity;
  auto cap = pl::typical_workload_mix(bundles, cap_opt);
  if (!cap) return cap.err();
  const mixes m{*mix, *cap};

  fgd_experiment_result out;
  out.config = cfg;
  out.nodes = topology.nodes.size();
  out.mix_classes = mix->classes.size();
  out.total_gpu_milli = milli_per_gpu * topology.total_gpus();
  const auto target = static_cast<uint64_t>(
      std::floor(cfg.demand_ratio * static_cast<double>(out.total_gpu_milli)));

  // Per seed: the arrivals and the node order, shared by every policy.
  std::vector<std::vector<uint32_t>> arrivals;
  std::vector<pl::cluster_topology> orders;
  uint64_t total = 0;
  for (auto seed : cfg.seeds) {
    seeded_rng rng{stream_seed(seed, 0)};
    arrivals.push_back(draw_arrivals(pool, target, cfg.arrivals, rng));
    total += arrivals.back().size() * cfg.policies.size();
    if (cfg.shuffle_nodes) {
      seeded_rng node_rng{stream_seed(seed, 1)};
      orders.push_back(permute_nodes(topology, node_rng));
    }
  }
  uint64_t done = 0;
  auto tick = [&](uint64_t n) {
    done += n;
    if (progress) progress(done, total);
  };
  if (progress) progress(0, total);
  for (const auto& policy : cfg.policies)
    for (size_t s = 0; s < cfg.seeds.size(); ++s)
      out.runs.push_back(run_one(policy, cfg.seeds[s],
                                 cfg.shuffle_nodes ? orders[s] : topology, pool,
                                 arrivals[s], m, cfg, tick));
  return out;
}

const fgd_run* fgd_experiment_result::find(const std::string& policy,
                                           uint64_t seed) const {
  for (const auto& r : runs)
    if (r.policy == policy && r.seed == seed) return &r;
  return nullptr;
}

summary_table fgd_experiment_result::table() const {
  summary_table t;
  t.title = "GPU allocation at 100% arrived GPU demand (" +
            std::to_string(config.seeds.size()) + " seeds)";
  t.columns = {"policy",      "seeds",       "alloc mean %", "alloc stddev",
               "alloc min %", "alloc max %", "frag GPUs %",  "frag rate %",
               "failed pods", "arrivals",    "wins vs fgd"};
  const bool have_fgd = std::find(config.policies.begin(), config.policies.end(),
                                  "fgd") != config.policies.end();
  for (const auto& policy : config.policies) {
    std::vector<double> alloc, frag, rate, failed, arrived;
    int wins = 0;
    for (auto seed : config.seeds) {
      const auto* r = find(policy, seed);
      if (r == nullptr) continue;
      alloc.push_back(r->alloc_at_100);
      frag.push_back(r->frag_at_100);
      rate.push_back(r->frag_rate_at_100);
      failed.push_back(static_cast<double>(r->failed));
      arrived.push_back(static_cast<double>(r->arrivals));
      if (const auto* f = find("fgd", seed);
          f != nullptr && r->alloc_at_100 > f->alloc_at_100)
        ++wins;
    }
    auto a = summarise(alloc);
    t.rows.push_back({policy, std::to_string(alloc.size()), fixed(a.mean, 2),
                      fixed(a.stddev, 2), fixed(a.min, 2), fixed(a.max, 2),
                      fixed(summarise(frag).mean, 2), fixed(summarise(rate).mean, 2),
                      fixed(summarise(failed).mean, 1), fixed(summarise(arrived).mean, 1),
                      policy == "fgd" || !have_fgd
                          ? std::string{"-"}
                          : std::to_string(wins) + "/" + std::to_string(alloc.size())});
  }
  return t;
}

summary_table fgd_experiment_result::seed_table() const {
  summary_table t;
  t.title = "GPU allocation at 100% arrived GPU demand per seed (%)";
  t.columns = {"seed"};
  for (const auto& p : config.policies)
    t.columns.push_back(p);
  for (auto seed : config.seeds) {
    std::vector<std::string> row{std::to_string(seed)};
    for (const auto& p : config.policies) {
      const auto* r = find(p, seed);
      row.push_back(r ? fixed(r->alloc_at_100, 2) : std::string{"-"});
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::vector<chart> fgd_experiment_result::charts() const {
  chart alloc{"fgd_allocation",
              "GPU allocation vs arrived GPU demand (mean over seeds)",
              "arrived GPU demand (% of cluster GPUs)",
              "GPUs allocated (%)",
              {},
              0,
              100};
  chart frag{"fgd_fragmentation",
             "Fragmented GPUs vs arrived GPU demand (mean over seeds)",
             "arrived GPU demand (% of cluster GPUs)",
             "fragmented GPUs (% of cluster GPUs)",
             {},
             0,
             0};
  const auto x_max = static_cast<size_t>(std::lround(config.demand_ratio * 100.0));
  for (const auto& policy : config.policies) {
    std::vector<double> sa(x_max + 1, 0), sf(x_max + 1, 0), n(x_max + 1, 0);
    for (const auto& r : runs) {
      if (r.policy != policy) continue;
      for (size_t i = 0; i < r.demand_pct.size(); ++i) {
        auto x = static_cast<size_t>(r.demand_pct[i]);
        if (x > x_max) continue;
        sa[x] += r.alloc_pct[i];
        sf[x] += r.frag_pct[i];
        n[x] += 1;
      }
    }
    series a{policy, {}, {}}, f{policy, {}, {}};
    for (size_t x = 0; x <= x_max; ++x) {
      if (n[x] == 0) continue;
      a.x.push_back(static_cast<double>(x));
      a.y.push_back(sa[x] / n[x]);
      f.x.push_back(static_cast<double>(x));
      f.y.push_back(sf[x] / n[x]);
    }
    alloc.lines.push_back(std::move(a));
    frag.lines.push_back(std::move(f));
  }
  return {alloc, frag};
}

} // namespace troupe::sim
