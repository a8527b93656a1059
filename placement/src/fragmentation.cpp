#include "troupe/placement/fragmentation.hpp"

#include "troupe/placement/errc.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>

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

// -- the cached engine of fgd_scorer and troupe_scorer ----------------------------------

namespace {

/// What a candidate changes on a node, enough to compute its effect from
/// the node's aggregates: the GPUs it takes, its CPU, and the free GPU
/// milli it takes.
struct change {
  uint32_t gpus = 0; ///< GPUs changed (0: CPU only)
  uint32_t gpu[max_gpus_per_node];
  uint64_t cpu = 0;
  uint64_t freed = 0; ///< free GPU milli taken
};

/// The memo key of a candidate on a node state: every input of its effect
/// besides the state.
struct candidate_key {
  uint8_t type = 0; ///< 0 CPU only, 1 share, 2 whole GPUs
  uint16_t kind = 0;
  uint16_t free = 0;
  uint32_t shares = 0;
  uint32_t amount = 0; ///< share milli, or whole GPU count
  uint64_t cpu = 0;
  friend bool operator==(const candidate_key&, const candidate_key&) = default;
};

constexpr uint16_t no_kind = 0xffff; ///< a MIG GPU: outside the measures

struct vector_hash {
  size_t operator()(const std::vector<uint32_t>& v) const noexcept {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ v.size();
    for (auto x : v) {
      h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
      h *= 0xbf58476d1ce4e5b9ULL;
    }
    return static_cast<size_t>(h ^ (h >> 31));
  }
};

/// GPU milli a task of `c` takes.
uint64_t demand_of(const workload_class& c) noexcept {
  return c.gpus > 0 ? uint64_t{milli_per_gpu} * c.gpus : c.gpu_milli;
}

/// Tasks of class `c` one GPU could take, by its free milli and shares.
uint32_t gpu_slots(const workload_class& c, const gpu_spec& spec, const gpu_state& gs,
                   uint32_t free) noexcept {
  if (spec.sharing == gpu_sharing::mig || !allowed(c.gpu_models, spec.model)) return 0;
  if (c.gpus > 0) return spec.sharing == gpu_sharing::whole && free == milli_per_gpu;
  if (free < c.gpu_milli) return 0;
  uint32_t n = free / c.gpu_milli;
  if (spec.sharing == gpu_sharing::time_sliced)
    n = std::min(n, spec.time_slice_replicas > gs.shares
                        ? spec.time_slice_replicas - gs.shares
                        : 0u);
  return n;
}

/// Whether `p` applies to `ns` for `b` (the checks of cluster_state::apply_to
/// for non-MIG bundles, without building its messages); fills `ch`.
bool describe(const node_spec& spec, const node_state& ns, const bundle& b,
              const bundle_placement& p, change& ch) {
  if (p.cpu_milli != b.cpu_milli || p.memory_mib != b.memory_mib) return false;
  if (ns.used_cpu_milli + b.cpu_milli > spec.cpu_milli) return false;
  if (ns.used_memory_mib + b.memory_mib > spec.memory_mib) return false;
  ch.cpu = b.cpu_milli;
  ch.gpus = 0;
  ch.freed = 0;
  if (b.gpus > 0) {
    if (p.gpus.size() != b.gpus || p.shared_gpu) return false;
    for (size_t i = 0; i < p.gpus.size(); ++i) {
      const auto g = p.gpus[i];
      if (g >= spec.gpus.size() || g >= ns.gpus.size()) return false;
      for (size_t j = 0; j < i; ++j)
        if (p.gpus[j] == g) return false;
      if (spec.gpus[g].sharing != gpu_sharing::whole || !ns.gpus[g].free_whole() ||
          (!b.gpu_models.empty() && !model_allowed(b, spec.gpus[g].model)))
        return false;
      ch.gpu[ch.gpus++] = g;
    }
    ch.freed = milli_per_gpu * b.gpus;
    return true;
  }
  if (b.gpu_milli > 0) {
    if (!p.shared_gpu || !p.gpus.empty() || p.gpu_milli != b.gpu_milli) return false;
    const auto g = *p.shared_gpu;
    if (g >= spec.gpus.size() || g >= ns.gpus.size()) return false;
    const auto& gs = spec.gpus[g];
    const auto& st = ns.gpus[g];
    if (gs.sharing == gpu_sharing::mig || st.whole_taken ||
        st.used_milli + b.gpu_milli > milli_per_gpu ||
        (!b.gpu_models.empty() && !model_allowed(b, gs.model)))
      return false;
    if (gs.sharing == gpu_sharing::time_sliced && st.shares + 1 > gs.time_slice_replicas)
      return false;
    ch.gpu[ch.gpus++] = g;
    ch.freed = b.gpu_milli;
    return true;
  }
  return p.gpus.empty() && !p.shared_gpu;
}

} // namespace

// -- the capacity measure -------------------------------------------------------------

uint64_t class_capacity(const node_spec& spec, const node_state& ns,
                        const workload_class& c) noexcept {
  if (c.cpu_only()) return 0;
  uint64_t slots = 0;
  for (size_t g = 0; g < spec.gpus.size(); ++g)
    slots += gpu_slots(c, spec.gpus[g], ns.gpus[g], gpu_free_milli(ns.gpus[g]));
  uint64_t n = slots / (c.gpus > 0 ? c.gpus : 1);
  return c.cpu_milli > 0 ? std::min<uint64_t>(n, free_cpu(spec, ns) / c.cpu_milli) : n;
}

double node_capacity(const node_spec& spec, const node_state& ns,
                     const workload_mix& mix) noexcept {
  double h = 0;
  for (const auto& c : mix.classes) {
    if (c.cpu_only()) continue;
    h += c.weight * static_cast<double>(demand_of(c)) *
         static_cast<double>(class_capacity(spec, ns, c));
  }
  return h;
}

namespace detail {

/// The caches behind fgd_scorer and troupe_scorer (see fgd_scorer's
/// comment): per node its shape and last state; per distinct (shape, state)
/// the aggregates of the fragmentation measure (F classes) and of the
/// capacity measure (capacity classes; none for FGD); per (state, candidate
/// kind) the effect of the candidate on both.
struct fragmentation_cache {
  /// A class of the fragmentation mix, flattened.
  struct cls {
    bool cpu_only = false;
    bool whole = false;
    uint32_t need = 1;
    uint32_t milli = 0;
    uint64_t cpu = 0;
    double weight = 0;
  };
  /// A class of the capacity mix that asks for GPUs.
  struct cap_cls {
    bool whole = false;
    uint32_t need = 1;
    uint32_t milli = 0;
    uint64_t cpu = 0;
    double value = 0; ///< weight x GPU milli per task
  };
  /// What a node's spec says, per GPU kind (GPUs of a node with the same
  /// model, sharing and replicas).
  struct shape {
    const node_spec* spec = nullptr;
    uint32_t id = 0;                  ///< interned: equal specs, equal ids
    std::vector<uint16_t> kind;       ///< per GPU; no_kind for MIG
    std::vector<gpu_sharing> sharing; ///< per kind
    std::vector<uint32_t> replicas;   ///< per kind
    std::vector<uint8_t> allowed;     ///< F classes x kinds
    std::vector<uint8_t> cap_allowed; ///< capacity classes x kinds
  };
  struct node_entry {
    shape sh;
    bool have_state = false;
    uint32_t state = 0;
    std::vector<uint32_t>
        snap; ///< used CPU (2 words), then free milli and shares per non-MIG GPU
  };
  /// One distinct (shape, state): its aggregates per class.
  struct state_entry {
    uint64_t free_total = 0;
    uint64_t free_cpu = 0;
    std::vector<uint32_t> usable;   ///< per F class: GPUs it can use
    std::vector<uint64_t> unusable; ///< per F class: free milli on GPUs it cannot use
    std::vector<uint32_t> slots;    ///< per capacity class: tasks its GPUs could take
    double fragmentation = 0;       ///< F_n(M)
    double capacity = 0;            ///< H_n(M')
  };
  /// The effect of a candidate.
  struct effect {
    double fragmentation = 0; ///< increase of F_n(M)
    double capacity = 0;      ///< decrease of H_n(M')
  };
  /// One remembered effect: of candidate `key` on state `state`.
  struct memo {
    uint32_t state = 0;
    uint32_t epoch = 0; ///< 0: empty
    candidate_key key;
    effect fx;
    double score = 0;
  };

  std::vector<cls> classes;
  std::vector<cap_cls> capacity;
  std::vector<node_entry> nodes; ///< by node id
  node_entry stray;              ///< for a node id outside the cluster
  std::unordered_map<std::string, uint32_t> shape_ids;
  std::unordered_map<std::vector<uint32_t>, uint32_t, vector_hash> state_ids;
  std::vector<state_entry> states;
  std::vector<uint32_t> key; ///< scratch
  /// Remembered effects, direct-mapped by (state, candidate key): a new one
  /// replaces whatever held its slot. `epoch` changes when the states are
  /// forgotten, which empties every slot at once.
  std::vector<memo> memos = std::vector<memo>(memo_slots);
  uint32_t epoch = 1;
  const workload_mix* mix = nullptr;
  const workload_mix* capacity_mix = nullptr;

  static constexpr size_t max_states = 1 << 16;
  static constexpr size_t memo_slots = 1 << 15;

  fragmentation_cache(const workload_mix& m, const workload_mix* cap, size_t nodes_count)
      : nodes(nodes_count), mix(&m), capacity_mix(cap) {
    for (const auto& c : m.classes) {
      cls k;
      k.cpu_only = c.cpu_only();
      k.whole = c.gpus > 0;
      k.need = c.gpus > 0 ? c.gpus : 1;
      k.milli = c.gpu_milli;
      k.cpu = c.cpu_milli;
      k.weight = c.weight;
      classes.push_back(k);
    }
    if (cap != nullptr)
      for (const auto& c : cap->classes) {
        if (c.cpu_only()) continue; // asks for no GPU: adds 0
        cap_cls k;
        k.whole = c.gpus > 0;
        k.need = c.gpus > 0 ? c.gpus : 1;
        k.milli = c.gpu_milli;
        k.cpu = c.cpu_milli;
        k.value = c.weight * static_cast<double>(demand_of(c));
        capacity.push_back(k);
      }
  }

  memo& slot(uint32_t state, const candidate_key& k) {
    uint64_t h = state * 0x9e3779b97f4a7c15ULL;
    h ^= (static_cast<uint64_t>(k.type) << 56) ^ (static_cast<uint64_t>(k.kind) << 40) ^
         (static_cast<uint64_t>(k.free) << 24) ^ k.amount;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= k.cpu * 0x94d049bb133111ebULL + k.shares;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return memos[(h >> 32) & (memo_slots - 1)];
  }

  bool usable_by(size_t c, const shape& sh, uint16_t k, uint32_t free,
                 uint32_t shares) const noexcept {
    const auto& cl = classes[c];
    if (k == no_kind || free == 0 || !sh.allowed[c * sh.sharing.size() + k]) return false;
    if (cl.whole) return sh.sharing[k] == gpu_sharing::whole && free == milli_per_gpu;
    if (free < cl.milli) return false;
    return sh.sharing[k] != gpu_sharing::time_sliced || shares < sh.replicas[k];
  }

  /// gpu_slots, by kind.
  uint32_t slots_of(size_t c, const shape& sh, uint16_t k, uint32_t free,
                    uint32_t shares) const noexcept {
    const auto& cl = capacity[c];
    if (k == no_kind || !sh.cap_allowed[c * sh.sharing.size() + k]) return 0;
    if (cl.whole) return sh.sharing[k] == gpu_sharing::whole && free == milli_per_gpu;
    if (free < cl.milli) return 0;
    uint32_t n = free / cl.milli;
    if (sh.sharing[k] == gpu_sharing::time_sliced)
      n = std::min(n, sh.replicas[k] > shares ? sh.replicas[k] - shares : 0u);
    return n;
  }

  void build_shape(shape& sh, const node_spec& spec) {
    sh.spec = &spec;
    sh.kind.assign(spec.gpus.size(), no_kind);
    sh.sharing.clear();
    sh.replicas.clear();
    std::vector<const std::string*> models;
    std::string id = std::to_string(spec.cpu_milli);
    for (size_t g = 0; g < spec.gpus.size(); ++g) {
      const auto& gs = spec.gpus[g];
      id += '|' + gs.model + '/' + std::to_string(static_cast<int>(gs.sharing)) + '/' +
            std::to_string(gs.time_slice_replicas);
      if (gs.sharing == gpu_sharing::mig) continue;
      size_t k = 0;
      while (k < models.size() &&
             !(*models[k] == gs.model && sh.sharing[k] == gs.sharing &&
               sh.replicas[k] == gs.time_slice_replicas))
        ++k;
      if (k == models.size()) {
        models.push_back(&gs.model);
        sh.sharing.push_back(gs.sharing);
        sh.replicas.push_back(gs.time_slice_replicas);
      }
      sh.kind[g] = static_cast<uint16_t>(k);
    }
    sh.allowed.assign(classes.size() * models.size(), 0);
    for (size_t c = 0; c < classes.size(); ++c)
      for (size_t k = 0; k < models.size(); ++k)
        sh.allowed[c * models.size() + k] =
            allowed(mix->classes[c].gpu_models, *models[k]);
    sh.cap_allowed.assign(capacity.size() * models.size(), 0);
    if (capacity_mix != nullptr) {
      size_t c = 0;
      for (const auto& cc : capacity_mix->classes) {
        if (cc.cpu_only()) continue;
        for (size_t k = 0; k < models.size(); ++k)
          sh.cap_allowed[c * models.size() + k] = allowed(cc.gpu_models, *models[k]);
        ++c;
      }
    }
    sh.id = shape_ids.emplace(std::move(id), static_cast<uint32_t>(shape_ids.size()))
                .first->second;
  }

  uint64_t fragment(size_t c, uint32_t usable, uint64_t unusable, uint64_t free_total,
                    uint64_t cpu) const noexcept {
    const auto& cl = classes[c];
    if (cl.cpu_only || usable < cl.need || cpu < cl.cpu) return free_total;
    return unusable;
  }

  uint64_t tasks(size_t c, uint32_t slots, uint64_t cpu) const noexcept {
    const auto& cl = capacity[c];
    uint64_t n = slots / cl.need;
    return cl.cpu > 0 ? std::min<uint64_t>(n, cpu / cl.cpu) : n;
  }

  /// The entry of a new (shape, state), computed as class_fragmentation
  /// and class_capacity do.
  state_entry make_state(const shape& sh, const node_spec& spec,
                         const node_state& ns) const {
    state_entry se;
    se.free_cpu = free_cpu(spec, ns);
    for (size_t g = 0; g < spec.gpus.size(); ++g)
      if (sh.kind[g] != no_kind) se.free_total += gpu_free_milli(ns.gpus[g]);
    se.usable.assign(classes.size(), 0);
    se.unusable.assign(classes.size(), 0);
    for (size_t c = 0; c < classes.size(); ++c) {
      if (classes[c].cpu_only) continue;
      for (size_t g = 0; g < spec.gpus.size(); ++g) {
        if (sh.kind[g] == no_kind) continue;
        uint32_t f = gpu_free_milli(ns.gpus[g]);
        if (f == 0) continue;
        if (usable_by(c, sh, sh.kind[g], f, ns.gpus[g].shares))
          ++se.usable[c];
        else
          se.unusable[c] += f;
      }
    }
    double f = 0;
    for (size_t c = 0; c < classes.size(); ++c)
      f += classes[c].weight *
           static_cast<double>(
               fragment(c, se.usable[c], se.unusable[c], se.free_total, se.free_cpu));
    se.fragmentation = f;
    se.slots.assign(capacity.size(), 0);
    double h = 0;
    for (size_t c = 0; c < capacity.size(); ++c) {
      for (size_t g = 0; g < spec.gpus.size(); ++g)
        se.slots[c] +=
            slots_of(c, sh, sh.kind[g], gpu_free_milli(ns.gpus[g]), ns.gpus[g].shares);
      h += capacity[c].value * static_cast<double>(tasks(c, se.slots[c], se.free_cpu));
    }
    se.capacity = h;
    return se;
  }

  /// The node's entry, its state brought up to date with `ns`.
  node_entry& view(node_id n, const node_spec& spec, const node_state& ns) {
    node_entry& e = n.value() < nodes.size() ? nodes[n.value()] : stray;
    if (e.sh.spec != &spec) {
      build_shape(e.sh, spec);
      e.have_state = false;
    }
    // Compare the state with the one the entry was made for.
    const uint64_t cpu = ns.used_cpu_milli;
    bool same = e.have_state && e.snap[0] == static_cast<uint32_t>(cpu) &&
                e.snap[1] == static_cast<uint32_t>(cpu >> 32);
    size_t i = 2;
    for (size_t g = 0; same && g < spec.gpus.size(); ++g) {
      if (e.sh.kind[g] == no_kind) continue;
      same =
          e.snap[i] == gpu_free_milli(ns.gpus[g]) && e.snap[i + 1] == ns.gpus[g].shares;
      i += 2;
    }
    if (same) return e;
    e.snap.clear();
    e.snap.push_back(static_cast<uint32_t>(cpu));
    e.snap.push_back(static_cast<uint32_t>(cpu >> 32));
    for (size_t g = 0; g < spec.gpus.size(); ++g) {
      if (e.sh.kind[g] == no_kind) continue;
      e.snap.push_back(gpu_free_milli(ns.gpus[g]));
      e.snap.push_back(ns.gpus[g].shares);
    }
    key.assign(1, e.sh.id);
    key.insert(key.end(), e.snap.begin(), e.snap.end());
    if (auto it = state_ids.find(key); it != state_ids.end()) {
      e.state = it->second;
    } else {
      if (states.size() >= max_states) { // start over: forget every state
        states.clear();
        state_ids.clear();
        ++epoch;
        for (auto& other : nodes)
          other.have_state = false;
        stray.have_state = false;
      }
      e.state = static_cast<uint32_t>(states.size());
      states.push_back(make_state(e.sh, spec, ns));
      state_ids.emplace(key, e.state);
    }
    e.have_state = true;
    return e;
  }

  /// F_n(M) after `ch` minus before, and H_n(M') before minus after, from
  /// the state's aggregates (the same sums, in the same order, as
  /// node_fragmentation and node_capacity).
  effect evaluate(const shape& sh, const state_entry& se, const node_state& ns,
                  const change& ch) const {
    const uint64_t free_total = se.free_total - ch.freed;
    const uint64_t cpu = se.free_cpu - ch.cpu;
    // Per changed GPU: kind, free and shares before, free after.
    struct gpu_change {
      uint16_t kind;
      uint32_t f0, s0, f1;
    };
    gpu_change gc[max_gpus_per_node];
    for (uint32_t i = 0; i < ch.gpus; ++i) {
      const uint32_t g = ch.gpu[i];
      const uint32_t f0 = gpu_free_milli(ns.gpus[g]);
      gc[i] = {sh.kind[g], f0, ns.gpus[g].shares,
               ch.gpus == 1 && ch.freed < milli_per_gpu
                   ? f0 - static_cast<uint32_t>(ch.freed)
                   : 0};
    }
    double f = 0;
    for (size_t c = 0; c < classes.size(); ++c) {
      uint32_t usable = se.usable[c];
      uint64_t unusable = se.unusable[c];
      if (!classes[c].cpu_only) {
        for (uint32_t i = 0; i < ch.gpus; ++i) {
          const auto& x = gc[i];
          if (x.f0 > 0) {
            if (usable_by(c, sh, x.kind, x.f0, x.s0))
              --usable;
            else
              unusable -= x.f0;
          }
          if (x.f1 > 0) {
            if (usable_by(c, sh, x.kind, x.f1, x.s0 + 1))
              ++usable;
            else
              unusable += x.f1;
          }
        }
      }
      f += classes[c].weight *
           static_cast<double>(fragment(c, usable, unusable, free_total, cpu));
    }
    double h = 0;
    for (size_t c = 0; c < capacity.size(); ++c) {
      uint32_t slots = se.slots[c];
      for (uint32_t i = 0; i < ch.gpus; ++i) {
        const auto& x = gc[i];
        slots = slots - slots_of(c, sh, x.kind, x.f0, x.s0) +
                slots_of(c, sh, x.kind, x.f1, x.s0 + (x.f1 > 0 ? 1 : 0));
      }
      h += capacity[c].value * static_cast<double>(tasks(c, slots, cpu));
    }
    return {f - se.fragmentation, se.capacity - h};
  }

  /// Scores candidates with `score_of(effect)`, remembering effects and
  /// scores per (state, candidate kind). The candidates of one node share
  /// its entry, and neighbours that change GPUs in the same state are
  /// looked up once.
  template <class ScoreOf>
  void score(const node_spec& spec, const node_state& before, const bundle& b,
             std::span<const bundle_placement> candidates, std::span<double> out,
             ScoreOf score_of) {
    change ch;
    const node_entry* e = nullptr;
    node_id e_node{0};
    candidate_key last_key;
    double last = 0;
    bool have_last = false;
    for (size_t i = 0; i < candidates.size(); ++i) {
      const auto& cand = candidates[i];
      if (!describe(spec, before, b, cand, ch)) {
        out[i] = inf;
        continue;
      }
      if (e == nullptr || cand.node != e_node) {
        e = &view(cand.node, spec, before);
        e_node = cand.node;
        have_last = false;
      }
      // The memo key: everything the effect depends on besides the state.
      // Whole GPUs are remembered when they are all of one kind (then which
      // ones does not matter: each is entirely free).
      candidate_key key;
      bool remember = true;
      key.cpu = b.cpu_milli;
      if (ch.gpus == 0) {
        key.type = 0;
      } else if (b.gpu_milli > 0) {
        const auto g = ch.gpu[0];
        key.type = 1;
        key.kind = e->sh.kind[g];
        key.free = static_cast<uint16_t>(gpu_free_milli(before.gpus[g]));
        key.shares = before.gpus[g].shares;
        key.amount = b.gpu_milli;
      } else {
        key.type = 2;
        key.kind = e->sh.kind[ch.gpu[0]];
        key.amount = ch.gpus;
        for (uint32_t j = 0; j < ch.gpus; ++j)
          remember = remember && e->sh.kind[ch.gpu[j]] == key.kind &&
                     before.gpus[ch.gpu[j]].shares == 0;
      }
      if (remember && have_last && key == last_key) {
        out[i] = last;
        continue;
      }
      memo* m = remember ? &slot(e->state, key) : nullptr;
      if (m != nullptr && m->epoch == epoch && m->state == e->state && m->key == key) {
        out[i] = m->score;
      } else {
        effect fx = evaluate(e->sh, states[e->state], before, ch);
        out[i] = score_of(fx);
        if (m != nullptr) *m = {e->state, epoch, key, fx, out[i]};
      }
      if (remember) {
        last_key = key;
        last = out[i];
        have_last = true;
      }
    }
  }

  effect effect_of(const node_spec& spec, const node_state& before, const bundle& b,
                   const bundle_placement& candidate) {
    change ch;
    if (!describe(spec, before, b, candidate, ch)) return {inf, inf};
    const auto& e = view(candidate.node, spec, before);
    return evaluate(e.sh, states[e.state], before, ch);
  }
};

} // namespace detail

// -- scorers --------------------------------------------------------------------------

fgd_scorer::fgd_scorer(const cluster_state& st, workload_mix mix, fgd_score mode)
    : st_(st), mix_(std::move(mix)), mode_(mode) {
  auto v = mix_.validate();
  TROUPE_ASSERT(v.ok(), v.ok() ? "" : v.err().message().c_str());
  cache_ = std::make_unique<detail::fragmentation_cache>(mix_, nullptr, st_.node_count());
}

fgd_scorer::~fgd_scorer() = default;

void fgd_scorer::score_node(const node_spec& spec, const node_state& before,
                            const bundle& b, std::span<const bundle_placement> candidates,
                            std::span<double> out) const {
  if (!b.mig_profile.empty()) {
    mig_fallback_.score_node(spec, before, b, candidates, out);
    return;
  }
  if (mode_ == fgd_score::gradient) {
    cache_->score(
        spec, before, b, candidates, out,
        [](const detail::fragmentation_cache::effect& fx) { return fx.fragmentation; });
  } else {
    // fgd_score.go: int64(sigmoid((before - after) / 1000) * MaxNodeScore),
    // higher better; negated here so that lower is better.
    cache_->score(spec, before, b, candidates, out,
                  [](const detail::fragmentation_cache::effect& fx) {
                    return -std::floor(100.0 /
                                       (1.0 + std::exp(fx.fragmentation / 1000.0)));
                  });
  }
}

double fgd_scorer::gradient(const node_spec& spec, const node_state& before,
                            const bundle& b, const bundle_placement& candidate) const {
  TROUPE_ASSERT(b.mig_profile.empty(),
                "fgd_scorer::gradient: not defined for MIG bundles");
  return cache_->effect_of(spec, before, b, candidate).fragmentation;
}

double fgd_scorer::score(const node_spec& spec, const node_state& before, const bundle& b,
                         const bundle_placement& candidate) const {
  double out = 0;
  score_node(spec, before, b, std::span<const bundle_placement>{&candidate, 1},
             std::span<double>{&out, 1});
  return out;
}

troupe_scorer::troupe_scorer(const cluster_state& st, workload_mix mix,
                             workload_mix capacity_mix, double capacity_weight)
    : st_(st), mix_(std::move(mix)), capacity_mix_(std::move(capacity_mix)),
      capacity_weight_(capacity_weight) {
  for (const auto* m : {&mix_, &capacity_mix_}) {
    auto v = m->validate();
    TROUPE_ASSERT(v.ok(), v.ok() ? "" : v.err().message().c_str());
  }
  TROUPE_ASSERT(std::isfinite(capacity_weight_) && capacity_weight_ >= 0,
                "troupe_scorer: capacity weight must be finite and >= 0");
  cache_ = std::make_unique<detail::fragmentation_cache>(mix_, &capacity_mix_,
                                                         st_.node_count());
}

troupe_scorer::troupe_scorer(const cluster_state& st, workload_mix mix)
    : troupe_scorer(st, mix, mix) {}

troupe_scorer::~troupe_scorer() = default;

void troupe_scorer::score_node(const node_spec& spec, const node_state& before,
                               const bundle& b,
                               std::span<const bundle_placement> candidates,
                               std::span<double> out) const {
  if (!b.mig_profile.empty()) {
    mig_fallback_.score_node(spec, before, b, candidates, out);
    return;
  }
  const double w = capacity_weight_;
  cache_->score(spec, before, b, candidates, out,
                [w](const detail::fragmentation_cache::effect& fx) {
                  return fx.fragmentation + w * fx.capacity;
                });
}

double troupe_scorer::score(const node_spec& spec, const node_state& before,
                            const bundle& b, const bundle_placement& candidate) const {
  double out = 0;
  score_node(spec, before, b, std::span<const bundle_placement>{&candidate, 1},
             std::span<double>{&out, 1});
  return out;
}

std::pair<double, double> troupe_scorer::effect(const node_spec& spec,
                                                const node_state& before, const bundle& b,
                                                const bundle_placement& candidate) const {
  TROUPE_ASSERT(b.mig_profile.empty(),
                "troupe_scorer::effect: not defined for MIG bundles");
  auto fx = cache_->effect_of(spec, before, b, candidate);
  return {fx.fragmentation, fx.capacity};
}

random_scorer::random_scorer(const cluster_state& st, uint64_t seed)
    : st_(st), rng_(seed) {}

double random_scorer::draw(size_t k) const {
  // P(min of k draws > x) = ((1 - x)^(1/k))^k = 1 - x: the node's best
  // candidate is uniform in [0, 1) whatever k is.
  double u = rng_.unit();
  return 1.0 - std::pow(1.0 - u, static_cast<double>(std::max<size_t>(k, 1)));
}

double random_scorer::score(const node_spec&, const node_state& before, const bundle& b,
                            const bundle_placement& candidate) const {
  return draw(
      candidates_on_node(st_, candidate.node, before, b, candidate.bundle).size());
}

void random_scorer::score_node(const node_spec&, const node_state&, const bundle&,
                               std::span<const bundle_placement> candidates,
                               std::span<double> out) const {
  for (size_t i = 0; i < candidates.size(); ++i)
    out[i] = draw(candidates.size());
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
