#include "troupe/placement/preemption.hpp"

#include <algorithm>
#include <chrono>
#include <queue>

namespace troupe::placement {
namespace {

constexpr double eps = 1e-9;

double seconds(duration d) {
  return std::chrono::duration<double>(d).count();
}

double quota_of(const quota_table& q, std::string_view tenant) {
  auto it = q.find(tenant);
  return it == q.end() ? 0.0 : it->second.guaranteed_gpus;
}

double held(const tenant_gpus& in_use, std::string_view tenant) {
  auto it = in_use.find(tenant);
  return it == in_use.end() ? 0.0 : it->second;
}

/// Milli-GPU capacity a plan holds on whole/shared (non-MIG) GPUs.
uint64_t plan_milli(const placement_plan& plan, const std::vector<bool>& relevant) {
  uint64_t m = 0;
  for (auto& bp : plan.bundles)
    if (relevant[bp.node.value()]) m += 1000ULL * bp.gpus.size() + bp.gpu_milli;
  return m;
}

struct candidate {
  const allocation* a = nullptr;
  double lost = 0;
  double gpus = 0;
  uint64_t milli = 0; ///< freed on nodes that can host part of the gang
  bool reclaim = false;
};

/// One search: the fixed facts and the feasibility test.
class search {
public:
  search(const cluster_state& st, const placer& p, const gang_request& incoming,
         const tenant_gpus& in_use, const quota_table& quotas,
         std::vector<candidate> cands, uint64_t free_milli, uint64_t need_milli)
      : st_(st), p_(p), in_(incoming), in_use_(in_use), quotas_(quotas),
        cands_(std::move(cands)), free_milli_(free_milli), need_milli_(need_milli) {}

  const std::vector<candidate>& cands() const { return cands_; }

  /// Reclaim never takes a tenant further below its quota than needed: per
  /// tenant, its reclaim victims minus the largest stay under its excess.
  bool reclaim_ok(const std::vector<uint32_t>& set) const {
    std::map<std::string_view, std::pair<double, double>> by_tenant; // sum, max
    for (auto i : set) {
      const auto& c = cands_[i];
      if (!c.reclaim) continue;
      auto& [sum, mx] = by_tenant[c.a->request.tenant];
      sum += c.gpus;
      mx = std::max(mx, c.gpus);
    }
    for (auto& [t, sm] : by_tenant) {
      double excess = held(in_use_, t) - quota_of(quotas_, t);
      if (sm.first - sm.second >= excess - eps) return false;
    }
    return true;
  }

  /// Frees enough GPU capacity on the nodes that matter (necessary, cheap).
  bool enough_capacity(const std::vector<uint32_t>& set) const {
    uint64_t m = free_milli_;
    for (auto i : set)
      m += cands_[i].milli;
    return m >= need_milli_;
  }

  /// Re-places the incoming gang on a copy with `set` released and commits
  /// it there; the plan when it fits.
  std::optional<placement_plan> fits(const std::vector<uint32_t>& set) {
    ++examined_;
    cluster_state copy = st_;
    for (auto i : set) {
      auto r = copy.release(cands_[i].a->id);
      TROUPE_ASSERT(r.ok(), "preemption: candidate allocation vanished from the copy");
    }
    auto out = p_.place(copy, in_);
    if (!out.plan) return std::nullopt;
    auto c = copy.commit(in_, *out.plan, time_point{});
    if (!c.ok())
      return std::nullopt; // the placer's plan does not commit: treat as no fit
    return std::move(out.plan);
  }

  uint32_t examined() const { return examined_; }

private:
  const cluster_state& st_;
  const placer& p_;
  const gang_request& in_;
  const tenant_gpus& in_use_;
  const quota_table& quotas_;
  std::vector<candidate> cands_;
  uint64_t free_milli_;
  uint64_t need_milli_;
  uint32_t examined_ = 0;
};

double cost_of(const std::vector<candidate>& c, const std::vector<uint32_t>& set) {
  double s = 0;
  for (auto i : set)
    s += c[i].lost; // in index order: monotone under the successor moves
  return s;
}

struct subset {
  double cost;
  std::vector<uint32_t> idx; ///< ascending candidate indices
};

struct later {
  bool operator()(const subset& a, const subset& b) const {
    if (a.cost != b.cost) return a.cost > b.cost;
    if (a.idx.size() != b.idx.size()) return a.idx.size() > b.idx.size();
    return a.idx > b.idx;
  }
};

} // namespace

double gpu_equivalent(const cluster_state& st, const placement_plan& plan) {
  double g = 0;
  for (auto& bp : plan.bundles) {
    g += static_cast<double>(bp.gpus.size()) + bp.gpu_milli / 1000.0;
    if (!bp.mig_profile.empty() && bp.shared_gpu) {
      const auto& model = st.spec(bp.node).gpus.at(*bp.shared_gpu).model;
      if (auto* prof = find_mig_profile(model, bp.mig_profile))
        g += static_cast<double>(prof->compute_slices) / mig_compute_slices;
    }
  }
  return g;
}

double required_gpu_equivalent(const cluster_state& st, const gang_request& req) {
  double g = 0;
  auto n = std::min<size_t>(req.required_bundles(), req.bundles.size());
  for (size_t i = 0; i < n; ++i) {
    const auto& b = req.bundles[i];
    g += b.gpu_equivalent();
    if (b.mig_profile.empty()) continue;
    const mig_profile* prof = nullptr;
    for (auto& node : st.topology().nodes) {
      for (auto& gs : node.gpus)
        if ((prof = find_mig_profile(gs.model, b.mig_profile)) != nullptr) break;
      if (prof != nullptr) break;
    }
    if (prof != nullptr)
      g += static_cast<double>(prof->compute_slices) / mig_compute_slices;
  }
  return g;
}

tenant_gpus gpus_in_use(const cluster_state& st) {
  tenant_gpus out;
  for (const auto& [tenant, units] : st.gpu_units_by_tenant())
    out.emplace(tenant, static_cast<double>(units) / cluster_state::gpu_units_per_gpu);
  return out;
}

double lost_gpu_seconds(const cluster_state& st, const allocation& a, time_point now) {
  auto since = std::max(a.start, a.request.last_checkpoint);
  if (now <= since) return 0.0;
  return gpu_equivalent(st, a.plan) * seconds(now - since);
}

bool within_quota(const quota_table& quotas, const tenant_gpus& in_use,
                  std::string_view tenant, double gpus) {
  if (quotas.empty() || gpus <= eps) return true;
  return held(in_use, tenant) + gpus <= quota_of(quotas, tenant) + eps;
}

std::optional<preemption_plan> select_victims(const cluster_state& st, const placer& p,
                                              const gang_request& incoming,
                                              time_point now,
                                              const preemption_policy& policy) {
  if (!policy.enabled || !incoming.validate().ok()) return std::nullopt;
  preemption_plan plan;
  plan.incoming = incoming.id;
  // Cheap first: is any allocation a possible victim at all (preemptible,
  // and lower priority or possibly reclaimable)? If not, the answer is only
  // whether the gang fits now.
  {
    bool quotas = !policy.quotas.empty();
    bool any =
        std::any_of(st.allocations().begin(), st.allocations().end(), [&](const auto& e) {
          const auto& r = e.second.request;
          return r.preemptible && (r.priority < incoming.priority ||
                                   (quotas && r.borrowed && r.tenant != incoming.tenant));
        });
    if (!any) {
      auto fit = p.find_plan(st, incoming);
      if (!fit) return std::nullopt;
      plan.placement = std::move(*fit);
      return plan;
    }
  }
  {
    auto out = p.place(st, incoming);
    if (out.plan) {
      plan.placement = std::move(*out.plan);
      return plan;
    }
    if (out.never_fits) return std::nullopt;
  }

  // Nodes that can host some bundle of the gang: only capacity there helps.
  std::vector<bool> relevant(st.node_count(), false);
  uint64_t free_milli = 0;
  for (uint32_t k = 0; k < st.node_count(); ++k) {
    node_id n{k};
    relevant[k] = std::any_of(
        incoming.bundles.begin(), incoming.bundles.end(),
        [&](const bundle& b) { return st.eligible(n, b, incoming.spot_tolerant); });
    if (!relevant[k]) continue;
    const auto& sp = st.spec(n);
    for (size_t g = 0; g < sp.gpus.size(); ++g) {
      const auto& gs = st.state(n).gpus[g];
      if (!gs.mig && !gs.whole_taken) free_milli += 1000 - gs.used_milli;
    }
  }
  uint64_t need_milli = 0;
  for (uint32_t i = 0; i < incoming.required_bundles(); ++i)
    need_milli += 1000ULL * incoming.bundles[i].gpus + incoming.bundles[i].gpu_milli;

  auto in_use = gpus_in_use(st);
  bool may_reclaim =
      !policy.quotas.empty() && within_quota(policy.quotas, in_use, incoming.tenant,
                                             required_gpu_equivalent(st, incoming));
  std::vector<candidate> cands;
  for (auto& [id, a] : st.allocations()) {
    const auto& r = a.request;
    if (!r.preemptible) continue;
    bool lower = r.priority < incoming.priority;
    bool reclaim = !lower && may_reclaim && r.borrowed && r.tenant != incoming.tenant &&
                   policy.reclaim_ignores_priority &&
                   held(in_use, r.tenant) > quota_of(policy.quotas, r.tenant) + eps;
    // A lower-priority borrowed allocation is a priority victim (no quota limit).
    if (!lower && !reclaim) continue;
    bool touches = std::any_of(
        a.plan.bundles.begin(), a.plan.bundles.end(),
        [&](const bundle_placement& bp) { return relevant[bp.node.value()]; });
    if (!touches) continue;
    candidate c;
    c.a = &a;
    c.gpus = gpu_equivalent(st, a.plan);
    c.lost = lost_gpu_seconds(st, a, now);
    c.milli = plan_milli(a.plan, relevant);
    c.reclaim = reclaim;
    cands.push_back(c);
  }
  if (cands.empty()) return std::nullopt;
  std::stable_sort(cands.begin(), cands.end(),
                   [](const candidate& x, const candidate& y) {
                     if (x.lost != y.lost) return x.lost < y.lost;
                     return x.a->id < y.a->id;
                   });
  search s(st, p, incoming, in_use, policy.quotas, std::move(cands), free_milli,
           need_milli);
  const auto& cs = s.cands();
  const auto n = static_cast<uint32_t>(cs.size());

  // Fast reject: releasing every candidate does not make room.
  {
    std::vector<uint32_t> all(n);
    for (uint32_t i = 0; i < n; ++i)
      all[i] = i;
    if (!s.enough_capacity(all) || !s.fits(all)) return std::nullopt;
  }

  std::optional<std::vector<uint32_t>> chosen;
  std::optional<placement_plan> where;
  // Best-first over subsets in (cost, count) order: from a set whose largest
  // index is i, "add i+1" and "replace i by i+1" never lower the key (the
  // candidates are sorted by cost), and every subset is reached exactly once
  // from the empty set, so sets pop in non-decreasing key order.
  std::priority_queue<subset, std::vector<subset>, later> heap;
  heap.push({cs[0].lost, {0}});
  uint32_t popped = 0;
  while (!heap.empty() && popped < policy.search_budget) {
    auto cur = heap.top();
    heap.pop();
    ++popped;
    auto last = cur.idx.back();
    if (last + 1 < n) {
      auto add = cur.idx;
      add.push_back(last + 1);
      heap.push({cost_of(cs, add), std::move(add)});
      auto rep = cur.idx;
      rep.back() = last + 1;
      heap.push({cost_of(cs, rep), std::move(rep)});
    }
    if (!s.reclaim_ok(cur.idx) || !s.enough_capacity(cur.idx)) continue;
    if (auto pl = s.fits(cur.idx)) {
      chosen = std::move(cur.idx);
      where = std::move(pl);
      break;
    }
  }
  // Every set was enumerated: none both obeys the reclaim limit and fits.
  if (!chosen && heap.empty()) return std::nullopt;
  if (!chosen) {
    // Greedy: cheapest lost work per GPU freed first, until it fits; then
    // drop victims (dearest first) that are not needed.
    plan.exact = false;
    std::vector<uint32_t> order(n);
    for (uint32_t i = 0; i < n; ++i)
      order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
      double px = cs[x].lost / std::max(cs[x].gpus, 1e-3);
      double py = cs[y].lost / std::max(cs[y].gpus, 1e-3);
      return px < py;
    });
    std::vector<uint32_t> set;
    for (auto i : order) {
      auto next = set;
      next.insert(std::upper_bound(next.begin(), next.end(), i), i);
      if (!s.reclaim_ok(next)) continue;
      set = std::move(next);
      if (!s.enough_capacity(set)) continue;
      if (auto pl = s.fits(set)) {
        where = std::move(pl);
        chosen = set;
        break;
      }
    }
    if (!chosen) return std::nullopt;
    std::vector<uint32_t> dearest = *chosen;
    std::stable_sort(dearest.begin(), dearest.end(),
                     [&](uint32_t x, uint32_t y) { return cs[x].lost > cs[y].lost; });
    for (auto i : dearest) {
      auto without = *chosen;
      without.erase(std::find(without.begin(), without.end(), i));
      if (without.empty() || !s.reclaim_ok(without) || !s.enough_capacity(without))
        continue;
      if (auto pl = s.fits(without)) {
        chosen = std::move(without);
        where = std::move(pl);
      }
    }
  }

  for (auto i : *chosen) {
    const auto& c = cs[i];
    preemption_victim v;
    v.allocation = c.a->id;
    v.request = c.a->request.id;
    v.tenant = c.a->request.tenant;
    v.priority = c.a->request.priority;
    v.gpus = c.gpus;
    v.lost_gpu_seconds = c.lost;
    v.reclaim = c.reclaim;
    plan.lost_gpu_seconds += c.lost;
    plan.victims.push_back(std::move(v));
  }
  std::sort(plan.victims.begin(), plan.victims.end(),
            [](const preemption_victim& x, const preemption_victim& y) {
              return x.allocation < y.allocation;
            });
  plan.placement = std::move(*where);
  plan.sets_examined = s.examined();
  return plan;
}

} // namespace troupe::placement
