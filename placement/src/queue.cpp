#include "troupe/placement/queue.hpp"

#include "troupe/placement/errc.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>

namespace troupe::placement {
namespace {

constexpr double eps = 1e-9;

double seconds(duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

/// `t` relative to `now`, e.g. "now+3600s".
std::string when(time_point t, time_point now) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(t - now).count();
  return s >= 0 ? "now+" + std::to_string(s) + "s" : "now" + std::to_string(s) + "s";
}

std::string req_name(request_id id) {
  return "request " + std::to_string(id.value());
}

} // namespace

result<void> queue_policy::validate() const {
  std::string problems;
  auto problem = [&](const std::string& s) {
    if (!problems.empty()) problems += '\n';
    problems += "queue policy: " + s;
  };
  if (aging_interval.count() <= 0) problem("aging_interval must be positive");
  if (aging_step < 0) problem("aging_step must not be negative");
  if (aging_cap < 0) problem("aging_cap must not be negative");
  if (usage_half_life.count() <= 0) problem("usage_half_life must be positive");
  if (size_boost_levels > 62) problem("size_boost_levels must be at most 62");
  if (size_boost_levels > 0 && size_boost_base.count() <= 0)
    problem("size_boost_base must be positive");
  for (auto& [t, w] : weights)
    if (!(w > 0) || !std::isfinite(w))
      problem("weight of tenant \"" + t + "\" must be positive and finite, got " +
              num(w));
  for (auto& [t, q] : preemption.quotas) {
    if (!(q.guaranteed_gpus >= 0) || !std::isfinite(q.guaranteed_gpus))
      problem("quota of tenant \"" + t + "\": guaranteed_gpus must be >= 0, got " +
              num(q.guaranteed_gpus));
    if (!(q.borrow_limit_gpus >= 0))
      problem("quota of tenant \"" + t + "\": borrow_limit_gpus must be >= 0, got " +
              num(q.borrow_limit_gpus));
  }
  if (!problems.empty()) return error{errc::invalid_argument, problems};
  return ok();
}

scheduling_queue::scheduling_queue(queue_policy policy) : policy_(std::move(policy)) {
  auto v = policy_.validate();
  TROUPE_ASSERT(v.ok(), v.ok() ? "" : v.err().message().c_str());
}

result<void> scheduling_queue::submit(gang_request req) {
  if (auto v = req.validate(); !v.ok()) return std::move(v).err();
  for (auto& q : queue_)
    if (q.id == req.id)
      return error{errc::conflict, req_name(req.id) + " is already queued"};
  queue_.push_back(std::move(req));
  return ok();
}

result<gang_request> scheduling_queue::cancel(request_id id) {
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const gang_request& r) { return r.id == id; });
  if (it == queue_.end()) return error{errc::not_found, req_name(id) + " is not queued"};
  gang_request r = std::move(*it);
  queue_.erase(it);
  return r;
}

int64_t scheduling_queue::effective_priority(const gang_request& req,
                                             time_point now) const {
  int64_t p = req.priority;
  if (policy_.size_boost_levels > 0 && req.runtime_estimate.count() > 0) {
    double gpu_time =
        std::max(req.gpu_equivalent(), 0.001) * seconds(req.runtime_estimate);
    double unit = seconds(policy_.size_boost_base);
    uint32_t k = 0;
    while (k < policy_.size_boost_levels && gpu_time > unit * std::ldexp(1.0, k))
      ++k;
    p += policy_.size_boost_levels - k;
  }
  if (policy_.aging_cap <= 0 || policy_.aging_step <= 0 || now <= req.submitted) return p;
  int64_t steps = (now - req.submitted) / policy_.aging_interval;
  int64_t cap = policy_.aging_cap;
  int64_t bonus = steps >= cap ? cap : std::min<int64_t>(cap, steps * policy_.aging_step);
  return p + bonus;
}

double scheduling_queue::decay(duration d) const {
  return std::exp2(-seconds(d) / seconds(policy_.usage_half_life));
}

double scheduling_queue::weight(std::string_view tenant) const {
  auto it = policy_.weights.find(tenant);
  return it == policy_.weights.end() ? 1.0 : it->second;
}

void scheduling_queue::record_usage(std::string_view tenant, double gpu_seconds,
                                    time_point at) {
  if (!(gpu_seconds > 0)) return;
  auto it = usage_.find(tenant);
  if (it == usage_.end()) it = usage_.emplace(std::string{tenant}, usage{0, at}).first;
  auto& u = it->second;
  if (at >= u.as_of) {
    u.value = u.value * decay(at - u.as_of) + gpu_seconds;
    u.as_of = at;
  } else {
    u.value += gpu_seconds * decay(u.as_of - at);
  }
}

void scheduling_queue::charge(const cluster_state& st, time_point now) {
  const double h = seconds(policy_.usage_half_life);
  // Usage at rate g over [from, now], each instant decayed to now:
  // g x h / ln 2 x (1 - 2^(-(now - from) / h)). Every allocation that ran
  // through the whole stretch since the last charge shares the factor, so
  // their GPUs are summed per tenant first (one record per tenant).
  auto factor = [&](time_point from) {
    return h / std::log(2.0) * (1.0 - std::exp2(-seconds(now - from) / h));
  };
  if (last_charge_ && now <= *last_charge_) return; // charged up to now already
  if (last_charge_ && st.latest_start() <= *last_charge_) {
    // Every live allocation ran through the whole stretch: per tenant.
    double f = factor(*last_charge_);
    for (const auto& [tenant, units] : st.gpu_units_by_tenant())
      record_usage(
          tenant, static_cast<double>(units) / cluster_state::gpu_units_per_gpu * f, now);
    last_charge_ = now;
    return;
  }
  std::vector<std::pair<std::string_view, double>> whole; // tenant, GPUs
  for (const auto& entry : st.allocations()) {
    const allocation& a = entry.second;
    auto from = a.start;
    bool since_last = last_charge_ && *last_charge_ >= from;
    if (since_last) from = *last_charge_;
    if (now <= from) continue;
    double g = gpu_equivalent(st, a.plan);
    if (g <= 0) continue;
    if (!since_last) {
      record_usage(a.request.tenant, g * factor(from), now);
      continue;
    }
    auto it = std::find_if(whole.begin(), whole.end(),
                           [&](const auto& e) { return e.first == a.request.tenant; });
    if (it == whole.end()) {
      whole.emplace_back(a.request.tenant, g);
    } else {
      it->second += g;
    }
  }
  if (last_charge_ && now > *last_charge_) {
    double f = factor(*last_charge_);
    for (auto& [tenant, g] : whole)
      record_usage(tenant, g * f, now);
  }
  if (!last_charge_ || now > *last_charge_) last_charge_ = now;
}

double scheduling_queue::decayed_usage(std::string_view tenant, time_point now) const {
  auto it = usage_.find(tenant);
  if (it == usage_.end()) return 0.0;
  const auto& u = it->second;
  return now >= u.as_of ? u.value * decay(now - u.as_of) : u.value;
}

std::map<std::string, double, std::less<>>
scheduling_queue::factors(time_point now) const {
  std::set<std::string, std::less<>> tenants;
  for (auto& [t, w] : policy_.weights)
    tenants.insert(t);
  for (auto& [t, u] : usage_)
    tenants.insert(t);
  for (auto& r : queue_)
    tenants.insert(r.tenant);
  double total_w = 0, total_u = 0;
  for (auto& t : tenants) {
    total_w += weight(t);
    total_u += decayed_usage(t, now);
  }
  std::map<std::string, double, std::less<>> out;
  for (auto& t : tenants) {
    if (total_u <= 0) {
      out[t] = 1.0;
      continue;
    }
    double share = weight(t) / total_w;
    double used = decayed_usage(t, now) / total_u;
    out[t] = std::exp2(-used / share);
  }
  return out;
}

double scheduling_queue::fair_share_factor(std::string_view tenant,
                                           time_point now) const {
  auto f = factors(now);
  auto it = f.find(tenant);
  if (it != f.end()) return it->second;
  return 1.0; // not known yet: no usage, so 2^0 whatever its share
}

std::vector<std::pair<uint32_t, int64_t>>
scheduling_queue::order_indices(time_point now) const {
  auto f = factors(now);
  struct key {
    int64_t effective_priority;
    double fair_share;
    time_point submitted;
    request_id id;
    uint32_t index;
  };
  std::vector<key> keys;
  keys.reserve(queue_.size());
  // Requests of one tenant are usually adjacent: look the factor up once
  // per run of equal tenants.
  const std::string* last_tenant = nullptr;
  double last_factor = 1;
  for (uint32_t i = 0; i < queue_.size(); ++i) {
    const auto& r = queue_[i];
    if (last_tenant == nullptr || *last_tenant != r.tenant) {
      last_tenant = &r.tenant;
      last_factor = f.at(r.tenant);
    }
    keys.push_back({effective_priority(r, now), last_factor, r.submitted, r.id, i});
  }
  std::sort(keys.begin(), keys.end(), [](const key& a, const key& b) {
    if (a.effective_priority != b.effective_priority)
      return a.effective_priority > b.effective_priority;
    if (a.fair_share != b.fair_share) return a.fair_share > b.fair_share;
    if (a.submitted != b.submitted) return a.submitted < b.submitted;
    return a.id < b.id; // ids are unique: a total order
  });
  std::vector<std::pair<uint32_t, int64_t>> out;
  out.reserve(keys.size());
  for (const auto& k : keys)
    out.emplace_back(k.index, k.effective_priority);
  return out;
}

std::vector<queued_request> scheduling_queue::order(time_point now) const {
  auto f = factors(now);
  std::vector<queued_request> out;
  out.reserve(queue_.size());
  for (auto [i, eff] : order_indices(now)) {
    const auto& r = queue_[i];
    out.push_back({r.id, r.tenant, r.priority, eff, f.at(r.tenant), r.submitted});
  }
  return out;
}

namespace {

/// Where the head goes and the state it will find: the running allocations
/// that have ended by then released, the head and the backfilled requests
/// that run past then committed.
struct head_info {
  request_id id{0};
  std::optional<time_point> start;
  cluster_state projection;
  bool by_preemption = false;
  allocation_id in_projection{0}; ///< the head's allocation in `projection`
};

/// False when `r` certainly cannot be placed in `st` now: the counters rule
/// it out, or a request of the same shape already failed in this pass.
bool could_fit_now(const cluster_state& st, const gang_request& r,
                   const std::vector<const gang_request*>& failed) {
  if (capacity_rules_out(st, r)) return false;
  return std::none_of(failed.begin(), failed.end(),
                      [&](const gang_request* f) { return same_shape(*f, r); });
}

/// The earliest time `r` fits when the running allocations of `st` end by
/// their estimates (unknown runtimes last), and the projected state then.
std::optional<head_info> reserve(const cluster_state& st, const placer& p,
                                 const gang_request& r, time_point now) {
  struct ending {
    time_point end;
    bool known;
    allocation_id id;
  };
  std::vector<ending> ends;
  for (auto& [id, a] : st.allocations()) {
    bool known = a.request.runtime_estimate.count() > 0;
    ends.push_back(
        {known ? a.start + a.request.runtime_estimate : time_point::max(), known, id});
  }
  std::stable_sort(ends.begin(), ends.end(), [](const ending& a, const ending& b) {
    if (a.known != b.known) return a.known;
    return a.end < b.end;
  });
  // One placer call per distinct end time once enough capacity is free (a
  // binary search would need a placer monotone in released capacity).
  cluster_state copy = st.without_allocations();
  for (size_t i = 0; i < ends.size();) {
    size_t j = i;
    while (j < ends.size() && ends[j].known == ends[i].known &&
           ends[j].end == ends[i].end) {
      const allocation* a = st.find(ends[j].id);
      TROUPE_ASSERT(a != nullptr, "reservation: allocation vanished");
      copy.release_copy_of(*a);
      ++j;
    }
    if (capacity_rules_out(copy, r)) { // cannot fit yet: no placer call
      i = j;
      continue;
    }
    auto plan = p.find_plan(copy, r);
    if (plan) {
      std::optional<time_point> start;
      if (ends[i].known) start = std::max(ends[i].end, now);
      auto c = copy.commit(r, *plan, start.value_or(now));
      if (!c.ok())
        return std::nullopt; // the placer's plan does not commit: no reservation
      return head_info{r.id, start, std::move(copy), false, *c};
    }
    i = j;
  }
  return std::nullopt;
}

} // namespace

schedule_result scheduling_queue::schedule(cluster_state& st, const placer& p,
                                           time_point now, const schedule_options& opt) {
  charge(st, now);
  schedule_result res;
  const auto ordered = order_indices(now);
  const auto& quotas = policy_.preemption.quotas;
  auto in_use = gpus_in_use(st);
  std::optional<head_info> head;
  std::set<request_id> started;

  // Empty when `tenant` may take `g` more GPUs now; else why not. Sets
  // `borrowed` when it would run beyond its guaranteed quota.
  auto quota_check = [&](const gang_request& r, double g, bool& borrowed) -> std::string {
    borrowed = false;
    if (within_quota(quotas, in_use, r.tenant, g)) return {};
    auto it = quotas.find(r.tenant);
    tenant_quota q = it == quotas.end() ? tenant_quota{} : it->second;
    auto iu = in_use.find(r.tenant);
    double have = iu == in_use.end() ? 0.0 : iu->second;
    std::string head_txt = "tenant \"" + r.tenant + "\" holds " + num(have) +
                           " GPUs of its " + num(q.guaranteed_gpus) +
                           " guaranteed and this needs " + num(g) + " more";
    if (!r.preemptible)
      return head_txt + "; a non-preemptible request runs only within its tenant's quota";
    if (have + g > q.guaranteed_gpus + q.borrow_limit_gpus + eps)
      return head_txt + "; that exceeds its borrow limit of " + num(q.borrow_limit_gpus) +
             " GPUs beyond the quota";
    borrowed = true;
    return {};
  };

  struct attempt {
    std::optional<placed_request> placed;
    bool quota_blocked = false;
    std::string why;
  };
  // Commits `plan` for `r` in `st` (and in `projection` when given, so that
  // it keeps off what the head will need), after the quota check.
  auto try_start = [&](const gang_request& r, const placement_plan& plan,
                       cluster_state* projection) -> attempt {
    attempt a;
    double g = gpu_equivalent(st, plan);
    bool borrowed = false;
    if (auto q = quota_check(r, g, borrowed); !q.empty()) {
      a.quota_blocked = true;
      a.why = std::move(q);
      return a;
    }
    std::optional<allocation_id> in_projection;
    if (projection != nullptr) {
      auto pc = projection->commit(r, plan, now);
      if (!pc.ok()) {
        a.why = "needs capacity reserved for " + req_name(head->id);
        return a;
      }
      in_projection = *pc;
    }
    gang_request run = r;
    run.borrowed = borrowed;
    auto c = st.commit(run, plan, now);
    if (!c.ok()) {
      if (in_projection) (void)projection->release(*in_projection);
      a.why = "its plan did not commit: " + c.err().message();
      return a;
    }
    in_use[r.tenant] += g;
    a.placed = placed_request{r.id, *c, borrowed, false};
    return a;
  };

  // Quiet passes: shapes that did not fit in `st` during this pass (which
  // only loses capacity while the pass runs), so equal ones need no attempt.
  std::vector<const gang_request*> failed_shapes;
  // ...and shapes that found no room the head does not need (the projection
  // also only loses capacity during the pass).
  std::vector<const gang_request*> failed_backfill_shapes;
  auto has_shape = [](const std::vector<const gang_request*>& v, const gang_request& r) {
    return std::any_of(v.begin(), v.end(), [&](auto* f) { return same_shape(*f, r); });
  };
  for (auto [index, eff] : ordered) {
    // A plain variable: clang before 16 cannot capture structured bindings.
    const auto effective = eff;
    const gang_request& r = queue_[index];
    auto pend = [&](std::string why) {
      if (!opt.explain) return;
      TROUPE_ASSERT(!why.empty(), "a pending request needs an explanation");
      res.pending.push_back({r.id, effective, std::move(why)});
    };
    if (!opt.explain && head) {
      // Behind a reserved head only a backfill can start: skip what cannot.
      if (!policy_.backfill || r.runtime_estimate.count() == 0) continue;
      bool ends_in_time =
          !head->by_preemption && head->start && now + r.runtime_estimate <= *head->start;
      if (!ends_in_time && has_shape(failed_backfill_shapes, r)) continue;
    }
    placement_outcome out;
    if (opt.explain) {
      out = p.place(st, r);
    } else if (could_fit_now(st, r, failed_shapes)) {
      out.plan = p.find_plan(st, r);
      if (!out.plan) failed_shapes.push_back(&r);
    }

    if (out.plan) {
      if (!head) {
        auto a = try_start(r, *out.plan, nullptr);
        if (a.placed) {
          res.placed.push_back(*a.placed);
          started.insert(r.id);
        } else {
          pend("fits now, but " + a.why);
        }
        continue;
      }
      const std::string behind = "behind reserved " + req_name(head->id);
      if (!policy_.backfill) {
        pend("fits now, but waits " + behind + " (backfill is off)");
        continue;
      }
      if (r.runtime_estimate.count() == 0) {
        pend("fits now, but its runtime is unknown, so it may not start ahead of "
             "reserved " +
             req_name(head->id));
        continue;
      }
      attempt a;
      bool ends_in_time =
          !head->by_preemption && head->start && now + r.runtime_estimate <= *head->start;
      if (ends_in_time) {
        a = try_start(r, *out.plan, nullptr);
      } else {
        // Runs past the reservation: only in capacity the head does not need.
        a = try_start(r, *out.plan, &head->projection);
        if (!a.placed && !a.quota_blocked) {
          auto alt = p.find_plan(head->projection, r);
          if (alt) {
            auto b = try_start(r, *alt, &head->projection);
            if (b.placed || b.quota_blocked) a = std::move(b);
          }
        }
      }
      if (!a.placed && !a.quota_blocked && !ends_in_time && !opt.explain)
        failed_backfill_shapes.push_back(&r);
      if (a.placed) {
        a.placed->backfilled = true;
        res.placed.push_back(*a.placed);
        started.insert(r.id);
        continue;
      }
      if (a.quota_blocked) {
        pend("fits now, but " + a.why);
      } else if (head->by_preemption) {
        pend("fits now, but " + a.why +
             ", which it gets once the preemption victims are evicted");
      } else if (head->start) {
        pend("fits now, but by its runtime estimate it ends at " +
             when(now + r.runtime_estimate, now) + ", after " + req_name(head->id) +
             "'s reservation at " + when(*head->start, now) + ", and it " + a.why);
      } else {
        pend("fits now, but " + req_name(head->id) +
             " waits for allocations of unknown runtime, and this " + a.why);
      }
      continue;
    }

    // Does not fit now.
    if (out.never_fits) {
      pend(out.explanation);
      continue;
    }
    if (head) {
      pend(out.explanation + "; queued behind reserved " + req_name(head->id));
      continue;
    }
    bool borrowed = false;
    if (auto qwhy = quota_check(r, required_gpu_equivalent(st, r), borrowed);
        !qwhy.empty()) {
      pend(out.explanation + "; and " + qwhy);
      continue;
    }
    if (policy_.preemption.enabled) {
      auto plan = select_victims(st, p, r, now, policy_.preemption);
      if (plan && !plan->victims.empty()) {
        cluster_state projection = st;
        for (auto& v : plan->victims) {
          auto rel = projection.release(v.allocation);
          TROUPE_ASSERT(rel.ok(), "preemption plan names an unknown allocation");
        }
        auto c = projection.commit(r, plan->placement, now);
        TROUPE_ASSERT(c.ok(), "preemption plan's placement does not commit");
        head = head_info{r.id, now, std::move(projection), true, *c};
        res.reserved = reservation{r.id, now, plan->placement};
        pend(out.explanation + "; preemption planned: evict " +
             std::to_string(plan->victims.size()) + " allocation(s), losing " +
             num(plan->lost_gpu_seconds) + " GPU-seconds of work");
        res.preemption = std::move(*plan);
        continue;
      }
    }
    if (auto h = reserve(st, p, r, now)) {
      head = std::move(h);
      const allocation* mine = head->projection.find(head->in_projection);
      TROUPE_ASSERT(mine != nullptr, "reservation without the head in its projection");
      res.reserved = reservation{r.id, head->start, mine->plan};
      pend(out.explanation + (head->start
                                  ? "; reserved to start at " + when(*head->start, now)
                                  : "; reserved to start when allocations of unknown "
                                    "runtime end"));
    } else {
      pend(out.explanation + "; no reservation: it does not fit even when every running "
                             "allocation ends");
    }
  }

  std::erase_if(queue_, [&](const gang_request& r) { return started.count(r.id) > 0; });
  return res;
}

} // namespace troupe::placement
