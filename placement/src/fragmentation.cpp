#include "troupe/placement/fragmentation.hpp"

#include "troupe/placement/errc.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

namespace troupe::placement {
namespace {

constexpr uint32_t milli_per_gpu = 1000;
constexpr double inf = std::numeric_limits<double>::infinity();

bool allowed(const std::vector<std::string>& models, const std::string& model) noexcept {
  if (models.empty()) return true;
  for (const auto& m : models)
    if (m == model) return true;
  return false;
}

/// Free milli of one non-MIG GPU.
uint32_t gpu_free_milli(const gpu_state& gs) noexcept {
  if (gs.whole_taken) return 0;
  return milli_per_gpu - std::min(milli_per_gpu, gs.used_milli);
}

bool usable_by(const workload_class& c, const gpu_spec& spec, const gpu_state& gs,
               uint32_t free) noexcept {
  if (!allowed(c.gpu_models, spec.model)) return false;
  if (c.gpus > 0) return spec.sharing == gpu_sharing::whole && free == milli_per_gpu;
  if (free < c.gpu_milli) return false;
  return spec.sharing != gpu_sharing::time_sliced || gs.shares < spec.time_slice_replicas;
}

uint64_t free_cpu(const node_spec& spec, const node_state& ns) noexcept {
  return spec.cpu_milli - std::min(spec.cpu_milli, ns.used_cpu_milli);
}

std::string join_models(const std::vector<std::string>& models) {
  std::string s;
  for (const auto& m : models) {
    if (!s.empty()) s += '|';
    s += m;
  }
  return s;
}

} // namespace

// -- the target workload --------------------------------------------------------------

double workload_mix::total_weight() const noexcept {
  double w = 0;
  for (const auto& c : classes)
    w += c.weight;
  return w;
}

result<void> workload_mix::validate() const {
  std::string problems;
  auto say = [&](size_t i, const std::string& what) {
    if (!problems.empty()) problems += "; ";
    problems += "class " + std::to_string(i) + ": " + what;
  };
  for (size_t i = 0; i < classes.size(); ++i) {
    const auto& c = classes[i];
    if (!std::isfinite(c.weight) || c.weight < 0)
      say(i, "weight must be finite and >= 0, got " + std::to_string(c.weight));
    if (c.gpus > 0 && c.gpu_milli > 0) say(i, "asks for whole GPUs and a GPU share");
    if (c.gpu_milli >= milli_per_gpu)
      say(i, "gpu_milli must be 1..999, got " + std::to_string(c.gpu_milli));
  }
  if (!problems.empty())
    return error{errc::invalid_argument, "workload mix: " + problems};
  return ok();
}

result<workload_mix> typical_workload_mix(std::span<const bundle> bundles,
                                          const typical_mix_options& opt) {
  if (!(opt.popularity > 0 && opt.popularity <= 1))
    return error{errc::invalid_argument,
                 "typical_workload_mix: popularity must be in (0, 1], got " +
                     std::to_string(opt.popularity)};
  // The key orders as the simulator's PodResource.Less: CPU, milli per GPU,
  // GPU count, models string.
  using key = std::tuple<uint64_t, uint32_t, uint32_t, std::string>;
  struct group {
    double count = 0;
    std::vector<std::string> models;
  };
  std::map<key, group> groups;
  size_t mig = 0;
  for (size_t i = 0; i < bundles.size(); ++i) {
    const auto& b = bundles[i];
    if (!b.mig_profile.empty()) {
      ++mig;
      continue;
    }
    if (b.gpus > 0 && b.gpu_milli > 0)
      return error{errc::invalid_argument, "typical_workload_mix: bundle " +
                                               std::to_string(i) +
                                               " asks for whole GPUs and a GPU share"};
    if (b.gpu_milli >= milli_per_gpu)
      return error{errc::invalid_argument,
                   "typical_workload_mix: bundle " + std::to_string(i) +
                       ": gpu_milli must be 1..999, got " + std::to_string(b.gpu_milli)};
    bool cpu_only = b.gpus == 0 && b.gpu_milli == 0;
    if (cpu_only && !opt.include_cpu_only) continue;
    uint32_t per_gpu = b.gpus > 0 ? milli_per_gpu : b.gpu_milli;
    uint32_t count = b.gpus > 0 ? b.gpus : (b.gpu_milli > 0 ? 1 : 0);
    auto& g = groups[key{b.cpu_milli, per_gpu, count, join_models(b.gpu_models)}];
    if (g.count == 0) g.models = b.gpu_models;
    g.count += 1;
  }
  if (groups.empty())
    return error{errc::invalid_argument,
                 "typical_workload_mix: none of the " + std::to_string(bundles.size()) +
                     " bundles makes a class (" + std::to_string(mig) +
                     " MIG bundles skipped" +
                     (opt.include_cpu_only ? "" : ", CPU-only bundles excluded") + ")"};
  std::vector<std::pair<const key*, const group*>> order;
  order.reserve(groups.size());
  double total = 0;
  for (const auto& [k, g] : groups) {
    order.emplace_back(&k, &g);
    total += g.count;
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    if (a.second->count != b.second->count) return a.second->count > b.second->count;
    return *a.first > *b.first;
  });
  double expected = opt.popularity * total;
  double kept = 0;
  size_t n = 0;
  while (n < order.size() && kept < expected)
    kept += order[n++].second->count;
  workload_mix mix;
  mix.classes.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& [cpu, per_gpu, count, joined] = *order[i].first;
    workload_class c;
    if (per_gpu == milli_per_gpu)
      c.gpus = count;
    else
      c.gpu_milli = per_gpu;
    c.gpu_models = order[i].second->models;
    c.cpu_milli = cpu;
    c.weight = order[i].second->count / kept;
    mix.classes.push_back(std::move(c));
  }
  return mix;
}

// -- the measure ----------------------------------------------------------------------

uint64_t node_free_gpu_milli(const node_spec& spec, const node_state& ns) noexcept {
  uint64_t f = 0;
  for (size_t g = 0; g < spec.gpus.size(); ++g)
    if (spec.gpus[g].sharing != gpu_sharing::mig) f += gpu_free_milli(ns.gpus[g]);
  return f;
}

uint64_t class_fragmentation(const node_spec& spec, const node_state& ns,
                             const workload_class& c) noexcept {
  uint64_t free_total = 0;
  uint64_t unusable = 0; // free milli on GPUs the class cannot use
  uint32_t usable = 0;
  const bool cpu_only = c.cpu_only();
  for (size_t g = 0; g < spec.gpus.size(); ++g) {
    const auto& gsp = spec.gpus[g];
    if (gsp.sharing == gpu_sharing::mig) continue;
    uint32_t f = gpu_free_milli(ns.gpus[g]);
    if (f == 0) continue;
    free_total += f;
    if (cpu_only) continue;
    if (usable_by(c, gsp, ns.gpus[g], f))
      ++usable;
    else
      unusable += f;
  }
  if (cpu_only) return free_total;
  uint32_t need = c.gpus > 0 ? c.gpus : 1;
  if (usable < need || free_cpu(spec, ns) < c.cpu_milli) return free_total;
  return unusable;
}

double node_fragmentation(const node_spec& spec, const node_state& ns,
                          const workload_mix& mix) noexcept {
  double f = 0;
  for (const auto& c : mix.classes)
    f += c.weight * static_cast<double>(class_fragmentation(spec, ns, c));
  return f;
}

double cluster_fragmentation(const cluster_state& st, const workload_mix& mix) {
  double f = 0;
  for (uint32_t k = 0; k < st.node_count(); ++k) {
    node_id n{k};
    if (st.state(n).schedulable) f += node_fragmentation(st.spec(n), st.state(n), mix);
  }
  return f;
}

double fragmentation_rate(const node_spec& spec, const node_state& ns,
                          const workload_mix& mix) noexcept {
  double denom = mix.total_weight() * static_cast<double>(node_free_gpu_milli(spec, ns));
  return denom > 0 ? node_fragmentation(spec, ns, mix) / denom : 0.0;
}

double fragmentation_rate(const cluster_state& st, const workload_mix& mix) {
  uint64_t free = 0;
  for (uint32_t k = 0; k < st.node_count(); ++k) {
    node_id n{k};
    if (st.state(n).schedulable) free += node_free_gpu_milli(st.spec(n), st.state(n));
  }
  double denom = mix.total_weight() * static_cast<double>(free);
  return denom > 0 ? cluster_fragmentation(st, mix) / denom : 0.0;
}

// -- scorers --------------------------------------------------------------------------

fgd_scorer::fgd_scorer(const cluster_state& st, workload_mix mix, fgd_score mode)
    : st_(st), mix_(std::move(mix)), mode_(mode) {
  auto v = mix_.validate();
  TROUPE_ASSERT(v.ok(), v.ok() ? "" : v.err().message().c_str());
}

double fgd_scorer::gradient(const node_spec& spec, const node_state& before,
                            const bundle& b, const bundle_placement& candidate) const {
  // Copy-assignment reuses the scratch vector's storage: no allocation per
  // candidate once it has grown to the largest node (non-MIG GPUs).
  thread_local node_state after;
  after = before;
  // TODO(perf): apply_to formats its error prefix eagerly (one small string
  // per call); an incremental delta over the changed GPUs would avoid the
  // copy and the second pass over the node.
  if (!st_.apply_to(after, spec, b, candidate).ok()) return inf;
  return node_fragmentation(spec, after, mix_) - node_fragmentation(spec, before, mix_);
}

double fgd_scorer::score(const node_spec& spec, const node_state& before, const bundle& b,
                         const bundle_placement& candidate) const {
  if (!b.mig_profile.empty()) return mig_fallback_.score(spec, before, b, candidate);
  double g = gradient(spec, before, b, candidate);
  if (mode_ == fgd_score::gradient || g == inf) return g;
  // fgd_score.go: int64(sigmoid((before - after) / 1000) * MaxNodeScore),
  // higher better; negated here so that lower is better.
  double s = 100.0 / (1.0 + std::exp(g / 1000.0));
  return -std::floor(s);
}

random_scorer::random_scorer(const cluster_state& st, uint64_t seed)
    : st_(st), rng_(seed) {}

double random_scorer::score(const node_spec&, const node_state& before, const bundle& b,
                            const bundle_placement& candidate) const {
  auto k = candidates_on_node(st_, candidate.node, before, b, candidate.bundle).size();
  double u = std::uniform_real_distribution<double>{0.0, 1.0}(rng_);
  // P(min of k draws > x) = ((1 - x)^(1/k))^k = 1 - x: the node's best
  // candidate is uniform in [0, 1) whatever k is.
  return 1.0 - std::pow(1.0 - u, static_cast<double>(std::max<size_t>(k, 1)));
}

paper_best_fit_scorer::paper_best_fit_scorer(uint64_t max_cpu_milli,
                                             uint64_t max_gpu_milli, best_fit_score mode)
    : max_cpu_(static_cast<double>(max_cpu_milli)),
      max_gpu_(static_cast<double>(max_gpu_milli)),
      cpu_norm_(0.5 / static_cast<double>(max_cpu_milli)),
      gpu_norm_(0.5 / static_cast<double>(max_gpu_milli)),
      gpu_tie_(mode == best_fit_score::simulator ? 1e-3
                                                 : 1e-3 * std::min(cpu_norm_, gpu_norm_)),
      mode_(mode) {
  TROUPE_ASSERT(max_cpu_milli > 0 && max_gpu_milli > 0,
                "paper_best_fit_scorer: zero normaliser");
}

double paper_best_fit_scorer::score(const node_spec& spec, const node_state& before,
                                    const bundle& b,
                                    const bundle_placement& candidate) const {
  if (!b.mig_profile.empty()) return mig_fallback_.score(spec, before, b, candidate);
  double cpu_left =
      static_cast<double>(free_cpu(spec, before)) - static_cast<double>(b.cpu_milli);
  double gpu_left = static_cast<double>(node_free_gpu_milli(spec, before)) -
                    static_cast<double>(milli_per_gpu) * b.gpus - b.gpu_milli;
  double node;
  if (mode_ == best_fit_score::simulator) {
    // best_fit_score.go, in its order of operations: fit = sum of (free -
    // request) / max x 0.5; score int64((1 - fit) x 100), higher better.
    double fit = cpu_left / max_cpu_ * 0.5;
    fit += gpu_left / max_gpu_ * 0.5;
    node = -std::trunc((1.0 - fit) * 100.0);
  } else {
    node = cpu_norm_ * cpu_left + gpu_norm_ * gpu_left;
  }
  // Within the node: the tightest GPU that fits (free milli left on it,
  // 0..999, weighed below one step of the node score).
  double on_gpu = 0;
  if (candidate.shared_gpu && *candidate.shared_gpu < before.gpus.size())
    on_gpu = static_cast<double>(gpu_free_milli(before.gpus[*candidate.shared_gpu])) -
             b.gpu_milli;
  return node + gpu_tie_ * on_gpu / milli_per_gpu;
}

} // namespace troupe::placement
