#include "troupe/placement/placer.hpp"

#include "troupe/placement/preemption.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

namespace troupe::placement {
namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

/// Node states as the gang being placed would leave them.
class scratch {
public:
  explicit scratch(const cluster_state& st) : st_(st) {}
  const node_state& get(node_id n) const {
    auto it = touched_.find(n.value());
    return it != touched_.end() ? it->second : st_.state(n);
  }
  node_state& mut(node_id n) {
    auto it = touched_.find(n.value());
    if (it == touched_.end()) it = touched_.emplace(n.value(), st_.state(n)).first;
    return it->second;
  }

private:
  const cluster_state& st_;
  std::map<uint32_t, node_state> touched_;
};

/// Free GPU capacity of a node in milli-GPUs (MIG GPUs by compute slices).
uint64_t free_milli(const node_spec& sp, const node_state& ns) {
  uint64_t f = 0;
  for (size_t g = 0; g < sp.gpus.size(); ++g) {
    const auto& gs = ns.gpus[g];
    if (gs.mig)
      f += (7 - std::min<uint32_t>(7, gs.mig->compute_used())) * 1000 / 7;
    else if (!gs.whole_taken)
      f += 1000 - gs.used_milli;
  }
  return f;
}

uint64_t consumed_milli(const node_spec& sp, const bundle& b) {
  if (b.gpus > 0) return 1000ULL * b.gpus;
  if (b.gpu_milli > 0) return b.gpu_milli;
  if (!b.mig_profile.empty()) {
    for (auto& g : sp.gpus)
      if (auto* p = find_mig_profile(g.model, b.mig_profile))
        return p->compute_slices * 1000 / 7;
  }
  return 0;
}

std::vector<uint32_t> order_largest_first(const gang_request& req, uint32_t count) {
  std::vector<uint32_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto& x = req.bundles[a];
    const auto& y = req.bundles[b];
    if (x.gpus != y.gpus) return x.gpus > y.gpus;
    if (x.gpu_milli != y.gpu_milli) return x.gpu_milli > y.gpu_milli;
    return x.cpu_milli > y.cpu_milli;
  });
  return order;
}

bool all_whole_gpu(const gang_request& req) {
  return std::all_of(req.bundles.begin(), req.bundles.end(),
                     [](const bundle& b) { return b.gpus > 0; });
}

uint32_t total_gpus(const gang_request& req) {
  uint32_t n = 0;
  for (auto& b : req.bundles)
    n += b.gpus;
  return n;
}

} // namespace

// -- candidates and scoring ----------------------------------------------------------

size_t candidates_on_node(const cluster_state& st, node_id n, const node_state& ns,
                          const bundle& b, uint32_t bundle_index,
                          std::vector<bundle_placement>& out) {
  const auto& sp = st.spec(n);
  if (ns.used_cpu_milli + b.cpu_milli > sp.cpu_milli) return 0;
  if (ns.used_memory_mib + b.memory_mib > sp.memory_mib) return 0;
  size_t count = 0;
  // The next element of `out`, reset to the bundle's base placement; its
  // whole-GPU list keeps its storage.
  auto next = [&]() -> bundle_placement& {
    if (count == out.size()) out.emplace_back();
    auto& c = out[count++];
    c.bundle = bundle_index;
    c.node = n;
    c.gpus.clear();
    c.shared_gpu.reset();
    c.gpu_milli = 0;
    c.mig_profile.clear();
    c.mig_start = 0;
    c.cpu_milli = b.cpu_milli;
    c.memory_mib = b.memory_mib;
    return c;
  };
  if (b.gpus > 0) {
    if (ns.free_whole < b.gpus) return 0;
    // Free GPUs of allowed models, grouped by NVLink island (no allocation:
    // this runs for every node per decision).
    uint32_t free_idx[max_gpus_per_node];
    uint32_t nfree = 0;
    uint32_t domains[max_gpus_per_node];
    uint32_t domain_free[max_gpus_per_node];
    uint32_t ndomains = 0;
    for (uint32_t g = 0; g < sp.gpus.size(); ++g) {
      if (sp.gpus[g].sharing != gpu_sharing::whole || !ns.gpus[g].free_whole() ||
          (!b.gpu_models.empty() && !model_allowed(b, sp.gpus[g].model)))
        continue;
      free_idx[nfree++] = g;
      uint32_t d = sp.gpus[g].nvlink_domain, k = 0;
      while (k < ndomains && domains[k] != d)
        ++k;
      if (k == ndomains) {
        domains[ndomains] = d;
        domain_free[ndomains++] = 0;
      }
      ++domain_free[k];
    }
    if (nfree < b.gpus) return 0;
    for (uint32_t k = 0; k < ndomains; ++k) {
      if (domain_free[k] < b.gpus) continue;
      auto& c = next();
      c.gpus.reserve(b.gpus);
      for (uint32_t i = 0; i < nfree && c.gpus.size() < b.gpus; ++i)
        if (sp.gpus[free_idx[i]].nvlink_domain == domains[k])
          c.gpus.push_back(free_idx[i]);
    }
    if (count == 0) { // span islands: biggest first, fewest islands
      uint32_t order[max_gpus_per_node];
      for (uint32_t k = 0; k < ndomains; ++k)
        order[k] = k;
      std::stable_sort(order, order + ndomains, [&](uint32_t x, uint32_t y) {
        return domain_free[x] > domain_free[y];
      });
      auto& c = next();
      for (uint32_t k = 0; k < ndomains && c.gpus.size() < b.gpus; ++k)
        for (uint32_t i = 0; i < nfree && c.gpus.size() < b.gpus; ++i)
          if (sp.gpus[free_idx[i]].nvlink_domain == domains[order[k]])
            c.gpus.push_back(free_idx[i]);
      std::sort(c.gpus.begin(), c.gpus.end());
    }
  } else if (b.gpu_milli > 0) {
    for (uint32_t g = 0; g < sp.gpus.size(); ++g) {
      const auto& gs = sp.gpus[g];
      const auto& st_g = ns.gpus[g];
      if (gs.sharing == gpu_sharing::mig || st_g.whole_taken ||
          (!b.gpu_models.empty() && !model_allowed(b, gs.model)))
        continue;
      if (st_g.used_milli + b.gpu_milli > 1000) continue;
      if (gs.sharing == gpu_sharing::time_sliced &&
          st_g.shares + 1 > gs.time_slice_replicas)
        continue;
      auto& c = next();
      c.shared_gpu = g;
      c.gpu_milli = b.gpu_milli;
    }
  } else if (!b.mig_profile.empty()) {
    for (uint32_t g = 0; g < sp.gpus.size(); ++g) {
      if (sp.gpus[g].sharing != gpu_sharing::mig || !ns.gpus[g].mig ||
          !model_allowed(b, sp.gpus[g].model))
        continue;
      auto start = ns.gpus[g].mig->first_fit(b.mig_profile);
      if (!start) continue;
      auto& c = next();
      c.shared_gpu = g;
      c.mig_profile = b.mig_profile;
      c.mig_start = *start;
    }
  } else {
    next();
  }
  return count;
}

std::vector<bundle_placement> candidates_on_node(const cluster_state& st, node_id n,
                                                 const node_state& ns, const bundle& b,
                                                 uint32_t bundle_index) {
  std::vector<bundle_placement> out;
  out.resize(candidates_on_node(st, n, ns, b, bundle_index, out));
  return out;
}

void scorer::score_node(const node_spec& spec, const node_state& before, const bundle& b,
                        std::span<const bundle_placement> candidates,
                        std::span<double> out) const {
  for (size_t i = 0; i < candidates.size(); ++i)
    out[i] = score(spec, before, b, candidates[i]);
}

double best_fit_scorer::score(const node_spec& sp, const node_state& before,
                              const bundle& b, const bundle_placement& c) const {
  double node_after = static_cast<double>(free_milli(sp, before)) -
                      static_cast<double>(consumed_milli(sp, b));
  double local_after = 0; // free capacity left in the island or on the GPU used
  if (!c.gpus.empty()) {
    auto d = sp.gpus[c.gpus.front()].nvlink_domain;
    for (uint32_t g = 0; g < sp.gpus.size(); ++g)
      if (sp.gpus[g].nvlink_domain == d && before.gpus[g].free_whole())
        local_after += 1000;
    local_after -= 1000.0 * static_cast<double>(c.gpus.size());
  } else if (c.shared_gpu) {
    const auto& gs = before.gpus[*c.shared_gpu];
    local_after = gs.mig ? (7.0 - gs.mig->compute_used()) * 1000 / 7 -
                               static_cast<double>(consumed_milli(sp, b))
                         : 1000.0 - gs.used_milli - b.gpu_milli;
  }
  return node_after + local_after / 1024.0;
}

// -- bandwidth estimate -------------------------------------------------------------

double estimate_allreduce_gbps(const cluster_state& st, const placement_plan& plan) {
  struct where {
    uint32_t node, domain, rack;
    std::string model;
  };
  std::vector<where> gpus;
  for (auto& bp : plan.bundles) {
    const auto& sp = st.spec(bp.node);
    for (auto g : bp.gpus)
      gpus.push_back(
          {bp.node.value(), sp.gpus[g].nvlink_domain, sp.rack, sp.gpus[g].model});
  }
  if (gpus.size() <= 1) return gpus.empty() ? 0.0 : inf;
  std::set<uint32_t> nodes, racks;
  std::set<std::pair<uint32_t, uint32_t>> domains;
  double nvl = inf;
  for (auto& w : gpus) {
    nodes.insert(w.node);
    racks.insert(w.rack);
    domains.insert({w.node, w.domain});
    nvl = std::min(nvl, nvlink_gbps(w.model));
  }
  if (domains.size() == 1) return nvl > 0 ? nvl : pcie_gbps;
  double bw = domains.size() > nodes.size()
                  ? std::min(nvl > 0 ? nvl : pcie_gbps, pcie_gbps)
                  : (nvl > 0 ? nvl : pcie_gbps);
  if (nodes.size() > 1) {
    double nic = inf;
    for (auto n : nodes)
      nic = std::min(nic, st.spec(node_id{n}).nic_gbps / 8.0);
    bw = std::min(bw, nic);
  }
  if (racks.size() > 1) {
    double over = 1.0;
    for (auto r : racks)
      over = std::max(over, st.topology().racks[r].uplink_oversubscription);
    bw /= over;
  }
  return bw;
}

// -- the placer
// --------------------------------------------------------------------------

const scorer& placer::active() const {
  static const best_fit_scorer fallback;
  return scorer_ != nullptr ? *scorer_ : fallback;
}

namespace {

struct choice {
  double score = inf;
  bundle_placement where;
};

/// Candidates and their scores for one node, reused from node to node (and
/// bundle to bundle) within one decision so that scoring allocates nothing.
struct candidate_buffer {
  std::vector<bundle_placement> candidates;
  std::vector<double> scores;
};

/// Enumerates the candidates of bundle `i` on node `n` in state `ns`, scores
/// them all with one `score_node` call and calls `visit(candidate, score)`
/// for each, in candidate order.
template <class Visit>
void for_each_scored(const cluster_state& st, const scorer& sc, node_id n,
                     const node_state& ns, const bundle& b, uint32_t i,
                     candidate_buffer& buf, Visit visit) {
  size_t k = candidates_on_node(st, n, ns, b, i, buf.candidates);
  if (k == 0) return;
  if (buf.scores.size() < k) buf.scores.resize(k);
  sc.score_node(st.spec(n), ns, b,
                std::span<const bundle_placement>{buf.candidates.data(), k},
                std::span<double>{buf.scores.data(), k});
  for (size_t j = 0; j < k; ++j)
    visit(buf.candidates[j], buf.scores[j]);
}

/// Which nodes may ever host each bundle of a request (labels, spot, models,
/// schedulable), computed once per decision; identical bundles share a row.
class eligibility {
public:
  eligibility(const cluster_state& st, const gang_request& req,
              std::optional<troupe::micro_usd> max_price = std::nullopt)
      : rows_(req.bundles.size()) {
    std::vector<size_t> owner(req.bundles.size());
    for (size_t i = 0; i < req.bundles.size(); ++i) {
      size_t j = 0;
      while (j < i && !(req.bundles[j] == req.bundles[i]))
        ++j;
      owner[i] = j;
      if (j < i) continue;
      auto& row = table_.emplace_back(st.node_count());
      for (uint32_t k = 0; k < st.node_count(); ++k)
        row[k] =
            st.eligible(node_id{k}, req.bundles[i], req.spot_tolerant) &&
                    (!max_price || st.spec(node_id{k}).price_per_gpu_hour <= *max_price)
                ? 1
                : 0;
      index_.push_back(table_.size() - 1);
    }
    for (size_t i = 0; i < req.bundles.size(); ++i) {
      size_t first = 0;
      for (size_t j = 0; j < owner[i]; ++j)
        if (owner[j] == j) ++first;
      rows_[i] = first;
    }
  }
  bool ok(uint32_t bundle, node_id n) const {
    return table_[rows_[bundle]][n.value()] != 0;
  }

private:
  std::vector<std::vector<uint8_t>> table_;
  std::vector<size_t> index_;
  std::vector<size_t> rows_;
};

/// Places bundles one at a time on the best candidate among `nodes`;
/// `bias(n)` is added to every candidate's score on node n.
template <class NodeOk, class Bias>
std::optional<placement_plan>
greedy(const cluster_state& st, const scorer& sc, const gang_request& req,
       const eligibility& el, const std::vector<uint32_t>& order,
       const std::vector<node_id>& nodes, NodeOk node_ok, Bias bias,
       candidate_buffer& buf, std::set<uint32_t> used = {}) {
  scratch s{st};
  placement_plan plan;
  for (auto i : order) {
    const auto& b = req.bundles[i];
    choice best;
    for (auto n : nodes) {
      if (!el.ok(i, n) || !node_ok(n, used)) continue;
      const auto& ns = s.get(n);
      if (b.gpus > ns.free_whole) continue;
      const double nb = bias(n, used);
      for_each_scored(st, sc, n, ns, b, i, buf, [&](const bundle_placement& c, double v) {
        v += nb;
        if (v < best.score) {
          best.score = v;
          best.where = c;
        }
      });
    }
    if (best.score == inf) return std::nullopt;
    auto r = st.apply_to(s.mut(best.where.node), st.spec(best.where.node), b, best.where);
    TROUPE_ASSERT(r.ok(), "placer: a chosen candidate did not apply");
    used.insert(best.where.node.value());
    plan.score += best.score;
    plan.bundles.push_back(std::move(best.where));
  }
  return plan;
}

/// Places bundles `order` of `req` on node `n` only, each whole-GPU bundle
/// inside NVLink island `island` when it is set.
std::optional<placement_plan> on_node(const cluster_state& st, const scorer& sc,
                                      const gang_request& req, const eligibility& el,
                                      const std::vector<uint32_t>& order, node_id n,
                                      std::optional<uint32_t> island,
                                      candidate_buffer& buf) {
  const auto& sp = st.spec(n);
  node_state ns = st.state(n);
  placement_plan plan;
  for (auto i : order) {
    const auto& b = req.bundles[i];
    if (!el.ok(i, n)) return std::nullopt;
    choice c;
    for_each_scored(
        st, sc, n, ns, b, i, buf, [&](const bundle_placement& cand, double v) {
          if (island && !std::all_of(cand.gpus.begin(), cand.gpus.end(), [&](uint32_t g) {
                return sp.gpus[g].nvlink_domain == *island;
              }))
            return;
          if (v < c.score) {
            c.score = v;
            c.where = cand;
          }
        });
    if (c.score == inf) return std::nullopt;
    auto r = st.apply_to(ns, sp, b, c.where);
    TROUPE_ASSERT(r.ok(), "placer: a chosen candidate did not apply");
    plan.score += c.score;
    plan.bundles.push_back(std::move(c.where));
  }
  return plan;
}

/// Tries the whole gang on node `n` (optionally every whole GPU in one
/// island); returns the plan and its score.
std::optional<placement_plan> on_one_node(const cluster_state& st, const scorer& sc,
                                          const gang_request& req,
                                          const std::vector<uint32_t>& order, node_id n,
                                          bool one_domain, uint32_t need,
                                          candidate_buffer& buf) {
  const auto& sp = st.spec(n);
  std::vector<int64_t> islands;
  if (one_domain) {
    std::map<uint32_t, uint32_t> free;
    for (uint32_t g = 0; g < sp.gpus.size(); ++g)
      if (sp.gpus[g].sharing == gpu_sharing::whole && st.state(n).gpus[g].free_whole())
        ++free[sp.gpus[g].nvlink_domain];
    for (auto& [d, f] : free)
      if (f >= need) islands.push_back(d);
  } else {
    islands.push_back(-1);
  }
  std::optional<placement_plan> best;
  for (auto island : islands) {
    node_state ns = st.state(n);
    placement_plan plan;
    bool fits = true;
    for (auto i : order) {
      const auto& b = req.bundles[i];
      choice c;
      for_each_scored(
          st, sc, n, ns, b, i, buf, [&](const bundle_placement& cand, double v) {
            if (island >= 0 &&
                !std::all_of(cand.gpus.begin(), cand.gpus.end(), [&](uint32_t g) {
                  return sp.gpus[g].nvlink_domain == static_cast<uint32_t>(island);
                }))
              return;
            if (v < c.score) {
              c.score = v;
              c.where = cand;
            }
          });
      if (c.score == inf) {
        fits = false;
        break;
      }
      auto r = st.apply_to(ns, sp, b, c.where);
      TROUPE_ASSERT(r.ok(), "placer: a chosen candidate did not apply");
      plan.score += c.score;
      plan.bundles.push_back(std::move(c.where));
    }
    if (fits && (!best || plan.score < best->score)) best = std::move(plan);
  }
  return best;
}

/// All bundles on one node (optionally with every whole GPU in one island).
/// With a scorer that prefers the tightest node and a whole-GPU gang, nodes
/// are visited by free whole GPUs, fewest first (then by index), and the
/// first node that fits wins.
std::optional<placement_plan> single_node(const cluster_state& st, const scorer& sc,
                                          const gang_request& req, const eligibility& el,
                                          const std::vector<uint32_t>& order,
                                          bool one_domain, candidate_buffer& buf) {
  uint32_t need = total_gpus(req);
  auto node_ok = [&](node_id n) {
    if (st.state(n).free_whole < need) return false;
    for (auto i : order)
      if (!el.ok(i, n)) return false;
    return true;
  };
  std::optional<placement_plan> best;
  // One bundle and no island to keep: the best candidate over the nodes, in
  // the order `consider` below visits them, scored against the live node
  // states (nothing to simulate), with no plan built per node.
  const bool single = order.size() == 1 && !one_domain;
  choice single_best;
  auto consider = [&](node_id n) {
    if (single) {
      const auto i = order.front();
      for_each_scored(st, sc, n, st.state(n), req.bundles[i], i, buf,
                      [&](const bundle_placement& c, double v) {
                        if (v < single_best.score) {
                          single_best.score = v;
                          single_best.where = c;
                        }
                      });
      if (single_best.score != inf && (!best || single_best.score < best->score)) {
        if (!best) best.emplace();
        best->score = single_best.score;
        best->bundles.assign(1, single_best.where);
      }
      return;
    }
    auto p = on_one_node(st, sc, req, order, n, one_domain, need, buf);
    if (p && (!best || p->score < best->score)) best = std::move(p);
  };
  if (sc.prefers_tightest_node() && need > 0 && all_whole_gpu(req)) {
    std::vector<std::vector<uint32_t>> buckets(max_gpus_per_node + 1);
    for (uint32_t k = 0; k < st.node_count(); ++k) {
      node_id n{k};
      if (node_ok(n)) buckets[st.state(n).free_whole].push_back(k);
    }
    for (auto& bucket : buckets) {
      for (auto k : bucket) {
        consider(node_id{k});
        if (best) return best; // the first fit among the tightest nodes
      }
    }
    return best;
  }
  for (uint32_t k = 0; k < st.node_count(); ++k)
    if (need == 0 || node_ok(node_id{k})) {
      bool all = true;
      for (auto i : order)
        all = all && el.ok(i, node_id{k});
      if (all) consider(node_id{k});
    }
  return best;
}

std::vector<node_id> all_nodes(const cluster_state& st) {
  std::vector<node_id> v;
  for (uint32_t k = 0; k < st.node_count(); ++k)
    v.push_back(node_id{k});
  return v;
}

} // namespace

std::optional<placement_plan>
placer::place_exact(const cluster_state& st, const gang_request& req,
                    std::optional<troupe::micro_usd> max_price) const {
  const auto& sc = active();
  eligibility el{st, req, max_price};
  candidate_buffer buf;
  auto order = order_largest_first(req, static_cast<uint32_t>(req.bundles.size()));
  auto any = [](node_id, const std::set<uint32_t>&) { return true; };
  auto unused = [](node_id n, const std::set<uint32_t>& used) {
    return !used.count(n.value());
  };
  auto no_bias = [](node_id, const std::set<uint32_t>&) { return 0.0; };
  constexpr double big = 1e12;
  if (req.require_nvlink_domain) {
    if (!all_whole_gpu(req)) return std::nullopt;
    return single_node(st, sc, req, el, order, true, buf);
  }
  switch (req.placement_strategy) {
  case strategy::strict_pack:
    return single_node(st, sc, req, el, order, false, buf);
  case strategy::pack: {
    if (auto p = single_node(st, sc, req, el, order, false, buf)) return p;
    return greedy(
        st, sc, req, el, order, all_nodes(st), any,
        [](node_id n, const std::set<uint32_t>& used) {
          return used.count(n.value()) ? -big : 0.0;
        },
        buf);
  }
  case strategy::spread:
    return greedy(
        st, sc, req, el, order, all_nodes(st), any,
        [](node_id n, const std::set<uint32_t>& used) {
          return used.count(n.value()) ? big : 0.0;
        },
        buf);
  case strategy::strict_spread:
    return greedy(st, sc, req, el, order, all_nodes(st), unused, no_bias, buf);
  case strategy::topology: {
    if (!all_whole_gpu(req)) {
      gang_request packed = req;
      packed.placement_strategy = strategy::pack;
      return place_exact(st, packed, max_price);
    }
    // 1: one NVLink island; 2: one node.
    if (auto p = single_node(st, sc, req, el, order, true, buf)) return p;
    if (auto p = single_node(st, sc, req, el, order, false, buf)) return p;
    // Within a set of nodes: fill the nodes with most free GPUs first
    // (fewest nodes), staying on nodes already used.
    auto fill = [&](const std::vector<node_id>& nodes) {
      return greedy(
          st, sc, req, el, order, nodes, any,
          [&](node_id n, const std::set<uint32_t>& used) {
            double b = used.count(n.value()) ? -big : 0.0;
            return b - 1e6 * st.free_whole_gpus(n);
          },
          buf);
    };
    // 3: one rack; the rack whose plan uses the fewest nodes, then the
    // tightest fit.
    std::map<uint32_t, std::vector<node_id>> by_rack;
    std::map<uint32_t, uint32_t> rack_free;
    for (uint32_t k = 0; k < st.node_count(); ++k) {
      node_id n{k};
      by_rack[st.spec(n).rack].push_back(n);
      if (el.ok(0, n))
        rack_free[st.spec(n).rack] += st.free_whole_gpus(n, req.bundles.front());
    }
    uint32_t need = total_gpus(req);
    // Rank racks by how many nodes the gang would need there (from free
    // counts, most-free nodes first), then by the tightest fit; simulate
    // in that order until one works.
    std::vector<std::tuple<size_t, uint32_t, uint32_t>> ranked; // nodes, free, rack
    for (auto& [r, nodes] : by_rack) {
      if (rack_free[r] < need) continue;
      std::vector<uint32_t> frees;
      for (auto n : nodes)
        if (el.ok(0, n)) frees.push_back(st.free_whole_gpus(n, req.bundles.front()));
      std::sort(frees.rbegin(), frees.rend());
      size_t used = 0;
      uint32_t got = 0;
      while (got < need && used < frees.size())
        got += frees[used++];
      ranked.emplace_back(used, rack_free[r], r);
    }
    std::sort(ranked.begin(), ranked.end());
    for (auto& [nodes_needed, free, r] : ranked)
      if (auto p = fill(by_rack[r])) return p;
    // 4: fewest racks: racks by free GPUs, most first, added until enough.
    std::vector<std::pair<uint32_t, uint32_t>> racks; // free, rack
    for (auto& [r, f] : rack_free)
      racks.push_back({f, r});
    std::stable_sort(racks.begin(), racks.end(),
                     [](auto& a, auto& b) { return a.first > b.first; });
    std::vector<node_id> nodes;
    uint32_t have = 0;
    for (auto& [f, r] : racks) {
      nodes.insert(nodes.end(), by_rack[r].begin(), by_rack[r].end());
      have += f;
      if (have >= need) break;
    }
    return fill(nodes);
  }
  }
  return std::nullopt;
}

std::optional<placement_plan> placer::place_elastic(const cluster_state& st,
                                                    const gang_request& req,
                                                    uint32_t& bundles_placed) const {
  auto required = req.required_bundles();
  // Price tiers, cheapest first (cheapest_first); the last try has them all.
  std::vector<troupe::micro_usd> tiers;
  if (req.cheapest_first) {
    for (uint32_t k = 0; k < st.node_count(); ++k)
      tiers.push_back(st.spec(node_id{k}).price_per_gpu_hour);
    std::sort(tiers.begin(), tiers.end());
    tiers.erase(std::unique(tiers.begin(), tiers.end()), tiers.end());
    if (!tiers.empty()) tiers.pop_back(); // the dearest: no limit
  }
  auto exact = [&](const gang_request& r) {
    // All nodes first: when the gang does not fit at all (a preemption
    // search asks that often), no tier is tried.
    auto any = place_exact(st, r);
    if (!any) return any;
    for (auto t : tiers)
      if (auto p = place_exact(st, r, t)) return p;
    return any;
  };
  for (auto k = static_cast<uint32_t>(req.bundles.size()); k >= required && k > 0; --k) {
    std::optional<placement_plan> p;
    if (k == req.bundles.size()) {
      p = exact(req); // all bundles: no copy of the request
    } else {
      gang_request sub = req;
      sub.bundles.resize(k);
      sub.min_bundles = 0;
      p = exact(sub);
    }
    if (p) {
      std::sort(p->bundles.begin(), p->bundles.end(),
                [](auto& a, auto& b) { return a.bundle < b.bundle; });
      bundles_placed = k;
      return p;
    }
  }
  return std::nullopt;
}

placement_outcome placer::place(const cluster_state& st, const gang_request& req) const {
  placement_outcome out;
  if (auto v = req.validate(); !v.ok()) {
    out.never_fits = true;
    out.explanation = v.err().message();
    return out;
  }
  if (auto p = place_elastic(st, req, out.bundles_placed)) {
    out.allreduce_gbps = estimate_allreduce_gbps(st, *p);
    out.plan = std::move(p);
    return out;
  }
  out.explanation = explain_pending(st, req, &out.never_fits);
  return out;
}

std::optional<placement_plan> placer::find_plan(const cluster_state& st,
                                                const gang_request& req) const {
  if (!req.validate().ok()) return std::nullopt;
  uint32_t placed = 0;
  return place_elastic(st, req, placed);
}

bool same_shape(const gang_request& a, const gang_request& b) noexcept {
  return a.bundles == b.bundles && a.placement_strategy == b.placement_strategy &&
         a.spot_tolerant == b.spot_tolerant &&
         a.require_nvlink_domain == b.require_nvlink_domain &&
         a.min_bundles == b.min_bundles;
}

bool capacity_rules_out(const cluster_state& st, const gang_request& req) {
  double free = static_cast<double>(st.total_gpu_milli() - st.allocated_gpu_milli());
  if (required_gpu_equivalent(st, req) * 1000.0 > free + 1e-6) return true;
  uint32_t largest = 0;
  for (uint32_t i = 0; i < req.required_bundles() && i < req.bundles.size(); ++i)
    largest = std::max(largest, req.bundles[i].gpus);
  return largest > st.max_free_whole();
}

placement_outcome placer::place_growth(const cluster_state& st, const allocation& a,
                                       uint32_t target_bundles) const {
  placement_outcome out;
  const auto& req = a.request;
  auto name = "allocation " + std::to_string(a.id.value());
  if (a.plan.bundles.empty()) { // only a hand-made allocation: commit never leaves one
    out.explanation = name + " has no placed bundle to grow from";
    return out;
  }
  auto target =
      std::min<uint32_t>(target_bundles, static_cast<uint32_t>(req.bundles.size()));
  std::set<uint32_t> placed, gang_nodes, gang_racks;
  for (auto& p : a.plan.bundles) {
    placed.insert(p.bundle);
    gang_nodes.insert(p.node.value());
    gang_racks.insert(st.spec(p.node).rack);
  }
  std::vector<uint32_t> missing;
  for (uint32_t i = 0; i < target; ++i)
    if (!placed.count(i)) missing.push_back(i);
  if (missing.empty()) {
    out.explanation = name + " already has every bundle up to " + std::to_string(target) +
                      " placed (" + std::to_string(placed.size()) + " of " +
                      std::to_string(req.bundles.size()) + ")";
    return out;
  }
  const auto& sc = active();
  eligibility el{st, req};
  candidate_buffer buf;
  node_id home{*gang_nodes.begin()};
  // The island of the gang's whole GPUs, for a gang that must share one.
  std::optional<uint32_t> island;
  if (req.require_nvlink_domain)
    for (auto& p : a.plan.bundles)
      if (!p.gpus.empty()) island = st.spec(p.node).gpus[p.gpus.front()].nvlink_domain;
  constexpr double big = 1e12;
  auto any = [](node_id, const std::set<uint32_t>&) { return true; };
  auto unused = [](node_id n, const std::set<uint32_t>& used) {
    return !used.count(n.value());
  };
  auto no_bias = [](node_id, const std::set<uint32_t>&) { return 0.0; };
  auto near = [&](node_id n, const std::set<uint32_t>& used) {
    if (used.count(n.value())) return -big;
    return gang_racks.count(st.spec(n).rack) ? -big / 2 : 0.0;
  };
  auto away = [](node_id n, const std::set<uint32_t>& used) {
    return used.count(n.value()) ? big : 0.0;
  };
  for (auto k = static_cast<uint32_t>(missing.size()); k > 0; --k) {
    // Largest first among the k lowest missing bundles.
    std::vector<uint32_t> order(missing.begin(), missing.begin() + k);
    std::stable_sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
      const auto& p = req.bundles[x];
      const auto& q = req.bundles[y];
      if (p.gpus != q.gpus) return p.gpus > q.gpus;
      if (p.gpu_milli != q.gpu_milli) return p.gpu_milli > q.gpu_milli;
      return p.cpu_milli > q.cpu_milli;
    });
    std::optional<placement_plan> plan;
    if (req.require_nvlink_domain || req.placement_strategy == strategy::strict_pack) {
      plan = on_node(st, sc, req, el, order, home, island, buf);
    } else {
      switch (req.placement_strategy) {
      case strategy::strict_spread:
        plan = greedy(st, sc, req, el, order, all_nodes(st), unused, no_bias, buf,
                      gang_nodes);
        break;
      case strategy::spread:
        plan = greedy(st, sc, req, el, order, all_nodes(st), any, away, buf, gang_nodes);
        break;
      default: // pack, topology: on the gang's nodes, then its racks
        plan = greedy(st, sc, req, el, order, all_nodes(st), any, near, buf, gang_nodes);
        break;
      }
    }
    if (!plan) continue;
    std::sort(plan->bundles.begin(), plan->bundles.end(),
              [](auto& x, auto& y) { return x.bundle < y.bundle; });
    placement_plan grown = a.plan;
    grown.bundles.insert(grown.bundles.end(), plan->bundles.begin(), plan->bundles.end());
    out.allreduce_gbps = estimate_allreduce_gbps(st, grown);
    out.bundles_placed = k;
    out.plan = std::move(plan);
    return out;
  }
  auto first = missing.front();
  std::string where;
  if (req.require_nvlink_domain && island)
    where = "NVLink island " + std::to_string(*island) + " of " + st.spec(home).name +
            ", where the gang's GPUs are";
  else if (req.require_nvlink_domain || req.placement_strategy == strategy::strict_pack)
    where = st.spec(home).name + ", the node of this " +
            (req.require_nvlink_domain ? std::string{"NVLink-domain"} : "strict_pack") +
            " gang";
  else if (req.placement_strategy == strategy::strict_spread)
    where = "any eligible node outside the " + std::to_string(gang_nodes.size()) +
            " nodes this strict_spread gang uses";
  else
    where = "any eligible node";
  const auto& b = req.bundles[first];
  std::string what = b.gpus > 0               ? std::to_string(b.gpus) + " whole GPUs"
                     : b.gpu_milli > 0        ? std::to_string(b.gpu_milli) + " milli-GPU"
                     : !b.mig_profile.empty() ? "MIG " + b.mig_profile
                                              : "CPU/memory only";
  out.explanation = name + " cannot grow: bundle " + std::to_string(first) + " (" + what +
                    ", " + std::to_string(b.cpu_milli) + " mCPU, " +
                    std::to_string(b.memory_mib) + " MiB) fits on no free room of " +
                    where;
  return out;
}

// -- explanations ---------------------------------------------------------------------

std::string explain_pending(const cluster_state& st, const gang_request& req,
                            bool* never) {
  *never = false;
  std::string out;
  auto say = [&](const std::string& s) {
    if (!out.empty()) out += "; ";
    out += s;
  };
  gang_request need_req = req;
  need_req.bundles.resize(req.required_bundles());
  bool any_spot =
      std::any_of(st.topology().nodes.begin(), st.topology().nodes.end(),
                  [](const node_spec& n) { return n.capacity == capacity_type::spot; });
  // Can any node ever host each bundle?
  for (uint32_t i = 0; i < need_req.bundles.size(); ++i) {
    const auto& b = need_req.bundles[i];
    uint32_t eligible = 0, max_gpus = 0;
    for (uint32_t k = 0; k < st.node_count(); ++k) {
      node_id n{k};
      if (st.eligible(n, b, req.spot_tolerant)) ++eligible;
      uint32_t g = 0;
      for (auto& gs : st.spec(n).gpus)
        if (gs.sharing == gpu_sharing::whole && model_allowed(b, gs.model)) ++g;
      max_gpus = std::max(max_gpus, g);
    }
    if (eligible == 0) {
      *never = true;
      std::string what = b.gpus > 0 ? std::to_string(b.gpus) + " whole GPUs on one node"
                         : b.gpu_milli > 0 ? std::to_string(b.gpu_milli) + " milli-GPU"
                         : !b.mig_profile.empty() ? "MIG " + b.mig_profile
                                                  : "CPU/memory only";
      std::string models;
      for (auto& m : b.gpu_models)
        models += (models.empty() ? "" : "|") + m;
      say("bundle " + std::to_string(i) + " needs " + what +
          (models.empty() ? "" : " of model " + models) +
          (b.node_selector.empty() ? "" : " on nodes matching its selector") +
          (b.gpus > 0 ? "; the largest matching node has " + std::to_string(max_gpus)
                      : "") +
          "; no node can ever host it" +
          (req.spot_tolerant || !any_spot
               ? ""
               : " (spot nodes excluded: request is not spot tolerant)"));
    }
  }
  if (*never) return out;
  uint32_t need = total_gpus(need_req);
  const bundle& first = need_req.bundles.front();
  // Free capacity now, overall and at its largest block.
  uint32_t free_total = 0, best_node_free = 0, best_domain_free = 0, max_domain = 0,
           max_node = 0;
  std::string best_node, best_domain_node;
  for (uint32_t k = 0; k < st.node_count(); ++k) {
    node_id n{k};
    if (!st.eligible(n, first, req.spot_tolerant)) continue;
    const auto& sp = st.spec(n);
    std::map<uint32_t, uint32_t> dom_free, dom_size;
    uint32_t node_free = 0, node_size = 0;
    for (uint32_t g = 0; g < sp.gpus.size(); ++g) {
      if (sp.gpus[g].sharing != gpu_sharing::whole ||
          !model_allowed(first, sp.gpus[g].model))
        continue;
      ++dom_size[sp.gpus[g].nvlink_domain];
      ++node_size;
      if (st.state(n).gpus[g].free_whole() && st.state(n).schedulable) {
        ++dom_free[sp.gpus[g].nvlink_domain];
        ++node_free;
      }
    }
    free_total += node_free;
    max_node = std::max(max_node, node_size);
    if (node_free > best_node_free) {
      best_node_free = node_free;
      best_node = sp.name;
    }
    for (auto& [d, sz] : dom_size)
      max_domain = std::max(max_domain, sz);
    for (auto& [d, f] : dom_free)
      if (f > best_domain_free) {
        best_domain_free = f;
        best_domain_node = sp.name;
      }
  }
  auto node_ref = [](const std::string& n) {
    return n.empty() ? std::string{} : " (node " + n + ")";
  };
  if (req.require_nvlink_domain && need > 0) {
    if (need > max_domain) {
      *never = true;
      say("needs " + std::to_string(need) +
          " GPUs in one NVLink domain; the largest domain has " +
          std::to_string(max_domain) + " GPUs");
    } else {
      say("needs " + std::to_string(need) +
          " GPUs in one NVLink domain; largest free domain has " +
          std::to_string(best_domain_free) + node_ref(best_domain_node));
    }
    return out;
  }
  switch (req.placement_strategy) {
  case strategy::strict_pack:
    if (need > max_node) {
      *never = true;
      say("needs " + std::to_string(need) + " GPUs on one node; the largest node has " +
          std::to_string(max_node));
    } else if (need > 0) {
      say("needs " + std::to_string(need) +
          " GPUs on one node; most free on one node is " +
          std::to_string(best_node_free) + node_ref(best_node));
    }
    break;
  case strategy::strict_spread: {
    uint32_t can = 0, ever = 0;
    for (uint32_t k = 0; k < st.node_count(); ++k) {
      node_id n{k};
      if (!st.eligible(n, first, req.spot_tolerant)) continue;
      ++ever;
      if (!candidates_on_node(st, n, st.state(n), first, 0).empty()) ++can;
    }
    if (ever < need_req.bundles.size()) {
      *never = true;
      say("needs " + std::to_string(need_req.bundles.size()) + " distinct nodes; only " +
          std::to_string(ever) + " can host a bundle");
    } else {
      say("needs " + std::to_string(need_req.bundles.size()) +
          " distinct nodes with room; " + std::to_string(can) + " have room now");
    }
    break;
  }
  default:
    if (need > 0) {
      if (free_total < need)
        say("needs " + std::to_string(need) + " GPUs; " + std::to_string(free_total) +
            " free on eligible nodes");
      else
        say("needs " + std::to_string(need) + " GPUs; " + std::to_string(free_total) +
            " are free but too fragmented: most free on one node is " +
            std::to_string(best_node_free) + node_ref(best_node));
    }
    break;
  }
  if (first.gpu_milli > 0) {
    uint32_t best = 0;
    std::string where;
    for (uint32_t k = 0; k < st.node_count(); ++k) {
      node_id n{k};
      if (!st.eligible(n, first, req.spot_tolerant)) continue;
      const auto& sp = st.spec(n);
      for (uint32_t g = 0; g < sp.gpus.size(); ++g) {
        const auto& gs = st.state(n).gpus[g];
        if (sp.gpus[g].sharing == gpu_sharing::mig || gs.whole_taken) continue;
        uint32_t f = 1000 - gs.used_milli;
        if (f > best) {
          best = f;
          where = sp.name + " GPU " + std::to_string(g);
        }
      }
    }
    say("needs a GPU with " + std::to_string(first.gpu_milli) +
        " milli free; the most free is " + std::to_string(best) +
        (where.empty() ? "" : " (" + where + ")"));
  }
  if (!first.mig_profile.empty())
    say("no free slot for MIG profile " + first.mig_profile);
  if (out.empty()) {
    uint64_t cpu = 0, mem = 0;
    for (uint32_t k = 0; k < st.node_count(); ++k) {
      cpu = std::max(cpu, st.free_cpu_milli(node_id{k}));
      mem = std::max(mem, st.free_memory_mib(node_id{k}));
    }
    say("needs " + std::to_string(first.cpu_milli) + " mCPU and " +
        std::to_string(first.memory_mib) + " MiB on one node; most free is " +
        std::to_string(cpu) + " mCPU / " + std::to_string(mem) + " MiB");
  }
  return out;
}

} // namespace troupe::placement
