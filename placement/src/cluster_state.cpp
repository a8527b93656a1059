#include "troupe/placement/cluster_state.hpp"

#include "troupe/placement/errc.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

namespace troupe::placement {
namespace {

bool labels_match(const labels& have, const labels& want) {
  for (auto& [k, v] : want) {
    auto i = have.find(k);
    if (i == have.end() || i->second != v) return false;
  }
  return true;
}

error bad(const std::string& what) {
  return error{errc::invalid_argument, what};
}
error full(const std::string& what) {
  return error{errc::insufficient, what};
}

uint64_t gpu_milli_of(const bundle_placement& p) {
  return 1000 * p.gpus.size() + p.gpu_milli;
}

} // namespace

bool model_allowed(const bundle& b, std::string_view model) noexcept {
  if (b.gpu_models.empty()) return true;
  return std::find(b.gpu_models.begin(), b.gpu_models.end(), model) != b.gpu_models.end();
}

cluster_state::cluster_state(cluster_topology topology)
    : topo_(std::make_shared<const cluster_topology>(std::move(topology))) {
  auto v = topo_->validate();
  TROUPE_ASSERT(v.ok(), v.ok() ? "" : v.err().message().c_str());
  nodes_.resize(topo_->nodes.size());
  summary_.resize(topo_->nodes.size());
  for (size_t i = 0; i < topo_->nodes.size(); ++i) {
    const auto& spec = topo_->nodes[i];
    auto& ns = nodes_[i];
    for (auto& g : spec.gpus) {
      summary_[i].whole_gpus += g.sharing == gpu_sharing::whole ? 1 : 0;
      summary_[i].shareable |= g.sharing != gpu_sharing::mig;
      summary_[i].mig |= g.sharing == gpu_sharing::mig;
    }
    ns.gpus.resize(spec.gpus.size());
    for (size_t g = 0; g < spec.gpus.size(); ++g) {
      if (spec.gpus[g].sharing == gpu_sharing::mig)
        ns.gpus[g].mig.emplace(spec.gpus[g].model);
      if (spec.gpus[g].sharing == gpu_sharing::whole) ++ns.free_whole;
      total_gpu_milli_ += 1000;
    }
  }
  nodes_by_free_whole_.assign(max_gpus_per_node + 1, 0);
  for (const auto& ns : nodes_)
    ++nodes_by_free_whole_[ns.free_whole];
}

uint32_t cluster_state::max_free_whole() const noexcept {
  for (size_t f = nodes_by_free_whole_.size(); f-- > 1;)
    if (nodes_by_free_whole_[f] > 0) return static_cast<uint32_t>(f);
  return 0;
}

void cluster_state::set_node_state(uint32_t n, node_state ns) {
  --nodes_by_free_whole_[nodes_[n].free_whole];
  nodes_[n] = std::move(ns);
  ++nodes_by_free_whole_[nodes_[n].free_whole];
}

void cluster_state::unapply_live(const bundle_placement& p) {
  auto n = p.node.value();
  --nodes_by_free_whole_[nodes_[n].free_whole];
  unapply(nodes_[n], topo_->nodes[n], p);
  ++nodes_by_free_whole_[nodes_[n].free_whole];
}

uint64_t cluster_state::free_cpu_milli(node_id n) const {
  return spec(n).cpu_milli - state(n).used_cpu_milli;
}

uint64_t cluster_state::free_memory_mib(node_id n) const {
  return spec(n).memory_mib - state(n).used_memory_mib;
}

uint32_t cluster_state::free_whole_gpus(node_id n, const bundle& b) const {
  const auto& sp = spec(n);
  const auto& st = state(n);
  uint32_t k = 0;
  for (size_t g = 0; g < sp.gpus.size(); ++g)
    if (sp.gpus[g].sharing == gpu_sharing::whole && st.gpus[g].free_whole() &&
        model_allowed(b, sp.gpus[g].model))
      ++k;
  return k;
}

uint32_t cluster_state::free_whole_gpus(node_id n) const {
  return state(n).free_whole;
}

bool cluster_state::eligible(node_id n, const bundle& b, bool spot_tolerant) const {
  const auto& sp = spec(n);
  if (!state(n).schedulable) return false;
  if (sp.capacity == capacity_type::spot && !spot_tolerant) return false;
  if (!labels_match(sp.node_labels, b.node_selector)) return false;
  if (b.cpu_milli > sp.cpu_milli || b.memory_mib > sp.memory_mib) return false;
  if (!b.wants_gpu()) return true;
  if (b.gpu_models.empty()) { // O(1) from the node summary
    const auto& sum = summary_[n.value()];
    if (b.gpus > 0) return sum.whole_gpus >= b.gpus;
    if (b.gpu_milli > 0) return sum.shareable;
    if (!sum.mig) return false;
  }
  uint32_t whole = 0;
  for (auto& g : sp.gpus) {
    if (!model_allowed(b, g.model)) continue;
    if (b.gpus > 0 && g.sharing == gpu_sharing::whole) ++whole;
    if (b.gpu_milli > 0 && g.sharing != gpu_sharing::mig) return true;
    if (!b.mig_profile.empty() && g.sharing == gpu_sharing::mig &&
        find_mig_profile(g.model, b.mig_profile) != nullptr)
      return true;
  }
  return b.gpus > 0 && whole >= b.gpus;
}

result<void> cluster_state::apply_to(node_state& ns, const node_spec& sp, const bundle& b,
                                     const bundle_placement& p) const {
  std::string w = "bundle " + std::to_string(p.bundle) + " on " + sp.name + ": ";
  if (p.cpu_milli != b.cpu_milli || p.memory_mib != b.memory_mib)
    return bad(w + "placed CPU/memory differ from the request");
  if (ns.used_cpu_milli + b.cpu_milli > sp.cpu_milli)
    return full(w + "needs " + std::to_string(b.cpu_milli) + " mCPU, " +
                std::to_string(sp.cpu_milli - ns.used_cpu_milli) + " free");
  if (ns.used_memory_mib + b.memory_mib > sp.memory_mib)
    return full(w + "needs " + std::to_string(b.memory_mib) + " MiB, " +
                std::to_string(sp.memory_mib - ns.used_memory_mib) + " free");
  if (b.gpus > 0) {
    if (p.gpus.size() != b.gpus || p.shared_gpu)
      return bad(w + "wants " + std::to_string(b.gpus) + " whole GPUs, plan gives " +
                 std::to_string(p.gpus.size()));
    std::set<uint32_t> seen;
    for (auto g : p.gpus) {
      if (g >= sp.gpus.size())
        return bad(w + "GPU " + std::to_string(g) + " does not exist");
      if (!seen.insert(g).second)
        return bad(w + "GPU " + std::to_string(g) + " listed twice");
      if (sp.gpus[g].sharing != gpu_sharing::whole)
        return bad(w + "GPU " + std::to_string(g) + " is " +
                   to_string(sp.gpus[g].sharing));
      if (!model_allowed(b, sp.gpus[g].model))
        return bad(w + "GPU " + std::to_string(g) + " is a " + sp.gpus[g].model);
      if (!ns.gpus[g].free_whole())
        return full(w + "GPU " + std::to_string(g) + " is in use");
    }
  } else if (b.gpu_milli > 0) {
    if (!p.shared_gpu || !p.gpus.empty() || p.gpu_milli != b.gpu_milli)
      return bad(w + "a GPU share needs exactly one shared GPU and the requested milli");
    auto g = *p.shared_gpu;
    if (g >= sp.gpus.size())
      return bad(w + "GPU " + std::to_string(g) + " does not exist");
    const auto& gs = sp.gpus[g];
    if (gs.sharing == gpu_sharing::mig)
      return bad(w + "GPU " + std::to_string(g) + " is in MIG mode");
    if (!model_allowed(b, gs.model))
      return bad(w + "GPU " + std::to_string(g) + " is a " + gs.model);
    const auto& st = ns.gpus[g];
    if (st.whole_taken)
      return full(w + "GPU " + std::to_string(g) + " is allocated whole");
    if (st.used_milli + b.gpu_milli > 1000)
      return full(w + "GPU " + std::to_string(g) + " has " +
                  std::to_string(1000 - st.used_milli) + " milli free, needs " +
                  std::to_string(b.gpu_milli));
    if (gs.sharing == gpu_sharing::time_sliced && st.shares + 1 > gs.time_slice_replicas)
      return full(w + "GPU " + std::to_string(g) + " has all " +
                  std::to_string(gs.time_slice_replicas) + " time slices taken");
  } else if (!b.mig_profile.empty()) {
    if (!p.shared_gpu || !p.gpus.empty() || p.mig_profile != b.mig_profile)
      return bad(w + "a MIG bundle needs exactly one GPU and the requested profile");
    auto g = *p.shared_gpu;
    if (g >= sp.gpus.size())
      return bad(w + "GPU " + std::to_string(g) + " does not exist");
    if (sp.gpus[g].sharing != gpu_sharing::mig || !ns.gpus[g].mig)
      return bad(w + "GPU " + std::to_string(g) + " is not in MIG mode");
    if (!model_allowed(b, sp.gpus[g].model))
      return bad(w + "GPU " + std::to_string(g) + " is a " + sp.gpus[g].model);
  } else if (!p.gpus.empty() || p.shared_gpu) {
    return bad(w + "plan gives GPUs to a bundle that asks for none");
  }
  // All checks passed (MIG checks inside place()); apply.
  if (!b.mig_profile.empty()) {
    auto r = ns.gpus[*p.shared_gpu].mig->place(b.mig_profile, p.mig_start);
    if (!r.ok()) return full(w + r.err().message());
  }
  for (auto g : p.gpus)
    ns.gpus[g].whole_taken = true;
  ns.free_whole -= static_cast<uint32_t>(p.gpus.size());
  if (b.gpu_milli > 0) {
    auto& gs = ns.gpus[*p.shared_gpu];
    if (gs.used_milli == 0 && sp.gpus[*p.shared_gpu].sharing == gpu_sharing::whole)
      --ns.free_whole;
    gs.used_milli += b.gpu_milli;
    gs.shares += 1;
  }
  ns.used_cpu_milli += b.cpu_milli;
  ns.used_memory_mib += b.memory_mib;
  return ok();
}

void cluster_state::unapply(node_state& ns, const node_spec& sp,
                            const bundle_placement& p) const {
  for (auto g : p.gpus)
    ns.gpus[g].whole_taken = false;
  ns.free_whole += static_cast<uint32_t>(p.gpus.size());
  if (p.shared_gpu) {
    auto& gs = ns.gpus[*p.shared_gpu];
    if (p.gpu_milli > 0) {
      gs.used_milli -= p.gpu_milli;
      gs.shares -= 1;
      if (gs.used_milli == 0 && sp.gpus[*p.shared_gpu].sharing == gpu_sharing::whole)
        ++ns.free_whole;
    }
    if (!p.mig_profile.empty()) {
      auto r = gs.mig->remove(p.mig_start);
      TROUPE_ASSERT(r.ok(), "release of a MIG instance that is not placed");
    }
  }
  ns.used_cpu_milli -= p.cpu_milli;
  ns.used_memory_mib -= p.memory_mib;
}

result<void> cluster_state::stage(const gang_request& req,
                                  const std::vector<bundle_placement>& bundles,
                                  std::map<uint32_t, node_state>& scratch) const {
  for (auto& p : bundles) {
    auto n = p.node;
    const auto& b = req.bundles[p.bundle];
    if (!eligible(n, b, req.spot_tolerant))
      return bad("bundle " + std::to_string(p.bundle) + " may not run on " +
                 spec(n).name + " (unschedulable, labels, spot or GPU models)");
    auto it = scratch.find(n.value());
    if (it == scratch.end()) it = scratch.emplace(n.value(), nodes_[n.value()]).first;
    if (auto r = apply_to(it->second, spec(n), b, p); !r.ok()) return std::move(r).err();
  }
  return ok();
}

result<allocation_id> cluster_state::commit(const gang_request& req, placement_plan plan,
                                            time_point now) {
  return commit(req, std::move(plan), now, true);
}

result<allocation_id> cluster_state::commit(const gang_request& req, placement_plan plan,
                                            time_point now, bool whole_gang) {
  if (auto v = req.validate(); !v.ok()) return std::move(v).err();
  auto required = req.required_bundles();
  std::set<uint32_t> placed;
  std::set<uint32_t> nodes_used;
  for (auto& p : plan.bundles) {
    if (p.bundle >= req.bundles.size())
      return bad("plan places bundle " + std::to_string(p.bundle) +
                 " which does not exist");
    if (!placed.insert(p.bundle).second)
      return bad("plan places bundle " + std::to_string(p.bundle) + " twice");
    if (p.node.value() >= nodes_.size())
      return bad("plan uses node " + std::to_string(p.node.value()) +
                 " which does not exist");
    nodes_used.insert(p.node.value());
  }
  for (uint32_t i = 0; whole_gang && i < required; ++i)
    if (!placed.count(i))
      return bad("gang is all or nothing: required bundle " + std::to_string(i) +
                 " is not placed");
  if (req.placement_strategy == strategy::strict_pack && nodes_used.size() > 1)
    return bad("strict_pack gang spans " + std::to_string(nodes_used.size()) + " nodes");
  if (req.placement_strategy == strategy::strict_spread &&
      nodes_used.size() != plan.bundles.size())
    return bad("strict_spread gang puts two bundles on one node");
  // Simulate on copies of the touched nodes; apply only if all fit.
  std::map<uint32_t, node_state> scratch;
  if (auto r = stage(req, plan.bundles, scratch); !r.ok()) return std::move(r).err();
  for (auto& [n, ns] : scratch)
    set_node_state(n, std::move(ns));
  int64_t units = 0;
  for (auto& p : plan.bundles) {
    allocated_gpu_milli_ += gpu_milli_of(p);
    units += gpu_units(p);
  }
  add_units(req.tenant, units);
  if (now > latest_start_) latest_start_ = now;
  allocation a;
  a.id = allocation_id{next_id_++};
  a.request = req;
  a.plan = std::move(plan);
  a.start = now;
  auto id = a.id;
  allocs_.emplace(id, std::move(a));
  return id;
}

result<void> cluster_state::restore(const allocation& a) {
  if (allocs_.count(a.id))
    return error{errc::conflict,
                 "allocation " + std::to_string(a.id.value()) + " exists"};
  auto saved = next_id_;
  next_id_ = a.id.value();
  // An allocation that lost bundles to release_bundle is restored as it is.
  auto r = commit(a.request, a.plan, a.start, false);
  next_id_ = std::max(saved, a.id.value() + 1);
  if (!r.ok()) return std::move(r).err();
  return ok();
}

result<allocation> cluster_state::release(allocation_id id) {
  auto it = allocs_.find(id);
  if (it == allocs_.end())
    return error{errc::not_found, "no allocation " + std::to_string(id.value())};
  allocation a = std::move(it->second);
  allocs_.erase(it);
  int64_t units = 0;
  for (auto& p : a.plan.bundles) {
    unapply_live(p);
    allocated_gpu_milli_ -= 1000 * p.gpus.size() + p.gpu_milli;
    units += gpu_units(p);
  }
  add_units(a.request.tenant, -units);
  return a;
}

cluster_state cluster_state::without_allocations() const {
  cluster_state c(*this, copy_without_allocations{});
  return c;
}

cluster_state::cluster_state(const cluster_state& o, copy_without_allocations)
    : topo_(o.topo_), summary_(o.summary_), nodes_(o.nodes_), next_id_(o.next_id_),
      total_gpu_milli_(o.total_gpu_milli_), allocated_gpu_milli_(o.allocated_gpu_milli_),
      tenant_units_(o.tenant_units_), nodes_by_free_whole_(o.nodes_by_free_whole_),
      latest_start_(o.latest_start_) {}

void cluster_state::release_copy_of(const allocation& a) {
  int64_t units = 0;
  for (auto& p : a.plan.bundles) {
    unapply_live(p);
    allocated_gpu_milli_ -= gpu_milli_of(p);
    units += gpu_units(p);
  }
  add_units(a.request.tenant, -units);
}

result<allocation> cluster_state::shrink(allocation_id id, uint32_t new_bundle_count) {
  auto it = allocs_.find(id);
  if (it == allocs_.end())
    return error{errc::not_found, "no allocation " + std::to_string(id.value())};
  auto& a = it->second;
  auto required = a.request.required_bundles();
  auto name = "allocation " + std::to_string(id.value());
  if (new_bundle_count < required)
    return bad("cannot shrink " + name + " to " + std::to_string(new_bundle_count) +
               " bundles: its request requires at least " + std::to_string(required));
  if (new_bundle_count > a.request.bundles.size())
    return bad("cannot shrink " + name + " to " + std::to_string(new_bundle_count) +
               " bundles: its request has only " +
               std::to_string(a.request.bundles.size()));
  auto& placed = a.plan.bundles;
  std::stable_sort(placed.begin(), placed.end(),
                   [](auto& x, auto& y) { return x.bundle < y.bundle; });
  // Highest bundle indices first; the required ones (0..required-1) are
  // always placed, so they are among the first `new_bundle_count` kept.
  while (placed.size() > new_bundle_count) {
    const auto& p = placed.back();
    unapply_live(p);
    allocated_gpu_milli_ -= gpu_milli_of(p);
    add_units(a.request.tenant, -gpu_units(p));
    placed.pop_back();
  }
  return a;
}

result<allocation> cluster_state::release_bundle(allocation_id id, uint32_t bundle) {
  auto it = allocs_.find(id);
  if (it == allocs_.end())
    return error{errc::not_found, "no allocation " + std::to_string(id.value())};
  auto& placed = it->second.plan.bundles;
  auto p = std::find_if(placed.begin(), placed.end(),
                        [&](const bundle_placement& b) { return b.bundle == bundle; });
  if (p == placed.end())
    return error{errc::not_found, "allocation " + std::to_string(id.value()) +
                                      " has no bundle " + std::to_string(bundle)};
  if (placed.size() == 1) {
    auto r = release(id);
    if (!r.ok()) return std::move(r).err();
    r->plan.bundles.clear();
    return std::move(*r);
  }
  unapply_live(*p);
  allocated_gpu_milli_ -= gpu_milli_of(*p);
  add_units(it->second.request.tenant, -gpu_units(*p));
  placed.erase(p);
  return it->second;
}

result<allocation> cluster_state::grow(allocation_id id, const placement_plan& extra) {
  auto it = allocs_.find(id);
  if (it == allocs_.end())
    return error{errc::not_found, "no allocation " + std::to_string(id.value())};
  auto& a = it->second;
  const auto& req = a.request;
  auto name = "allocation " + std::to_string(id.value());
  if (extra.bundles.empty())
    return bad("cannot grow " + name + ": the plan places no bundle");
  std::set<uint32_t> placed, nodes_used;
  for (auto& p : a.plan.bundles) {
    placed.insert(p.bundle);
    nodes_used.insert(p.node.value());
  }
  for (auto& p : extra.bundles) {
    auto w = "cannot grow " + name + ": plan places bundle " + std::to_string(p.bundle);
    if (p.bundle >= req.bundles.size())
      return bad(w + " which does not exist (the request has " +
                 std::to_string(req.bundles.size()) + ")");
    if (!placed.insert(p.bundle).second) return bad(w + " which is already placed");
    if (p.node.value() >= nodes_.size())
      return bad(w + " on node " + std::to_string(p.node.value()) +
                 " which does not exist");
    bool new_node = nodes_used.insert(p.node.value()).second;
    if (req.placement_strategy == strategy::strict_pack && nodes_used.size() > 1)
      return bad(w + " on " + spec(p.node).name + ": strict_pack gang runs on " +
                 spec(a.plan.bundles.front().node).name);
    if (req.placement_strategy == strategy::strict_spread && !new_node)
      return bad(w + " on " + spec(p.node).name +
                 ": strict_spread gang already has a bundle there");
  }
  std::map<uint32_t, node_state> scratch;
  if (auto r = stage(req, extra.bundles, scratch); !r.ok()) return std::move(r).err();
  for (auto& [n, ns] : scratch)
    set_node_state(n, std::move(ns));
  for (auto& p : extra.bundles) {
    allocated_gpu_milli_ += gpu_milli_of(p);
    add_units(req.tenant, gpu_units(p));
    a.plan.bundles.push_back(p);
  }
  a.plan.score += extra.score;
  std::stable_sort(a.plan.bundles.begin(), a.plan.bundles.end(),
                   [](auto& x, auto& y) { return x.bundle < y.bundle; });
  return a;
}

int64_t cluster_state::gpu_units(const bundle_placement& p) const {
  int64_t u = gpu_units_per_gpu * static_cast<int64_t>(p.gpus.size()) +
              7 * static_cast<int64_t>(p.gpu_milli);
  if (!p.mig_profile.empty() && p.shared_gpu) {
    const auto& model = spec(p.node).gpus.at(*p.shared_gpu).model;
    if (auto* prof = find_mig_profile(model, p.mig_profile))
      u += 1000 * static_cast<int64_t>(prof->compute_slices);
  }
  return u;
}

void cluster_state::add_units(const std::string& tenant, int64_t units) {
  if (units == 0) return;
  auto it = tenant_units_.find(tenant);
  if (it == tenant_units_.end()) it = tenant_units_.emplace(tenant, 0).first;
  it->second += units;
  TROUPE_ASSERT(it->second >= 0, "tenant GPU units went negative");
  if (it->second == 0) tenant_units_.erase(it);
}

result<void> cluster_state::update_checkpoint(allocation_id id, time_point at) {
  auto it = allocs_.find(id);
  if (it == allocs_.end())
    return error{errc::not_found, "no allocation " + std::to_string(id.value())};
  if (at > it->second.request.last_checkpoint) it->second.request.last_checkpoint = at;
  return ok();
}

void cluster_state::set_schedulable(node_id n, bool s) {
  nodes_.at(n.value()).schedulable = s;
}

const allocation* cluster_state::find(allocation_id id) const {
  auto it = allocs_.find(id);
  return it == allocs_.end() ? nullptr : &it->second;
}

void cluster_state::check_invariants() const {
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "cluster_state invariant broken: %s\n", what.c_str());
    std::abort();
  };
  std::vector<node_state> fresh(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    fresh[i].gpus.resize(nodes_[i].gpus.size());
    for (size_t g = 0; g < nodes_[i].gpus.size(); ++g)
      if (topo_->nodes[i].gpus[g].sharing == gpu_sharing::mig)
        fresh[i].gpus[g].mig.emplace(topo_->nodes[i].gpus[g].model);
  }
  uint64_t milli = 0;
  std::map<std::string, int64_t, std::less<>> units;
  for (auto& [id, a] : allocs_) {
    for (auto& p : a.plan.bundles)
      units[a.request.tenant] += gpu_units(p);
    for (auto& p : a.plan.bundles) {
      auto& ns = fresh[p.node.value()];
      const auto& sp = topo_->nodes[p.node.value()];
      for (auto g : p.gpus) {
        if (ns.gpus[g].whole_taken || ns.gpus[g].used_milli > 0)
          fail(sp.name + " GPU " + std::to_string(g) + " given twice");
        ns.gpus[g].whole_taken = true;
      }
      if (p.gpu_milli > 0) {
        auto& gs = ns.gpus[*p.shared_gpu];
        if (gs.whole_taken) fail(sp.name + " shared GPU is also whole");
        gs.used_milli += p.gpu_milli;
        gs.shares += 1;
        if (gs.used_milli > 1000) fail(sp.name + " GPU over 1000 milli");
        if (sp.gpus[*p.shared_gpu].sharing == gpu_sharing::time_sliced &&
            gs.shares > sp.gpus[*p.shared_gpu].time_slice_replicas)
          fail(sp.name + " GPU over its time slices");
      }
      if (!p.mig_profile.empty()) {
        auto r = ns.gpus[*p.shared_gpu].mig->place(p.mig_profile, p.mig_start);
        if (!r.ok()) fail(sp.name + " MIG layout: " + r.err().message());
      }
      ns.used_cpu_milli += p.cpu_milli;
      ns.used_memory_mib += p.memory_mib;
      milli += 1000 * p.gpus.size() + p.gpu_milli;
    }
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const auto& sp = topo_->nodes[i];
    const auto& a = fresh[i];
    const auto& b = nodes_[i];
    if (a.used_cpu_milli != b.used_cpu_milli || a.used_memory_mib != b.used_memory_mib)
      fail(sp.name + " CPU/memory counters drifted");
    uint32_t free_whole = 0;
    for (size_t g = 0; g < a.gpus.size(); ++g)
      if (sp.gpus[g].sharing == gpu_sharing::whole && a.gpus[g].free_whole())
        ++free_whole;
    if (free_whole != b.free_whole)
      fail(sp.name + " cached free whole GPU count drifted");
    if (b.used_cpu_milli > sp.cpu_milli || b.used_memory_mib > sp.memory_mib)
      fail(sp.name + " CPU/memory overcommitted");
    for (size_t g = 0; g < a.gpus.size(); ++g) {
      if (a.gpus[g].whole_taken != b.gpus[g].whole_taken ||
          a.gpus[g].used_milli != b.gpus[g].used_milli ||
          a.gpus[g].shares != b.gpus[g].shares)
        fail(sp.name + " GPU " + std::to_string(g) + " counters drifted");
      if (a.gpus[g].mig &&
          (a.gpus[g].mig->memory_mask() != b.gpus[g].mig->memory_mask() ||
           !b.gpus[g].mig->valid()))
        fail(sp.name + " GPU " + std::to_string(g) + " MIG layout drifted or invalid");
    }
  }
  if (milli != allocated_gpu_milli_) fail("allocated GPU milli drifted");
  std::vector<uint32_t> by_free(max_gpus_per_node + 1, 0);
  for (const auto& ns : nodes_)
    ++by_free[ns.free_whole];
  if (by_free != nodes_by_free_whole_) fail("nodes by free whole GPUs drifted");
  std::erase_if(units, [](const auto& e) { return e.second == 0; });
  if (units != tenant_units_) fail("GPU units per tenant drifted");
}

} // namespace troupe::placement
