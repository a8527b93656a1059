#include "troupe/finops/idle.hpp"

#include "troupe/finops/errc.hpp"
#include "troupe/finops/ledger.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace troupe::finops {
namespace {

std::string duration_text(duration d) {
  const int64_t s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s % 3600 == 0 && s != 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0 && s != 0) return std::to_string(s / 60) + "m";
  if (d % std::chrono::seconds{1} == duration::zero()) return std::to_string(s) + "s";
  return std::to_string(
             std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) +
         "ms";
}

std::string percent_text(double fraction) {
  return std::to_string(static_cast<int64_t>(std::llround(fraction * 1000)) / 10) + "." +
         std::to_string(static_cast<int64_t>(std::llround(fraction * 1000)) % 10) + "%";
}

} // namespace

const char* to_string(workload_class c) noexcept {
  switch (c) {
  case workload_class::training:
    return "training";
  case workload_class::serving:
    return "serving";
  case workload_class::interactive:
    return "interactive";
  case workload_class::eval:
    return "eval";
  }
  return "?";
}

std::optional<workload_class> parse_workload_class(std::string_view s) noexcept {
  for (size_t i = 0; i < workload_class_count; ++i) {
    auto c = static_cast<workload_class>(i);
    if (s == to_string(c)) return c;
  }
  return std::nullopt;
}

const char* to_string(idle_action_kind k) noexcept {
  switch (k) {
  case idle_action_kind::notify_owner:
    return "notify_owner";
  case idle_action_kind::cancel_reclaim:
    return "cancel_reclaim";
  case idle_action_kind::checkpoint_and_evict:
    return "checkpoint_and_evict";
  case idle_action_kind::scale_to_min_replicas:
    return "scale_to_min_replicas";
  case idle_action_kind::release:
    return "release";
  case idle_action_kind::evict:
    return "evict";
  }
  return "?";
}

idle_action_kind reclaim_action(workload_class c) noexcept {
  switch (c) {
  case workload_class::training:
    return idle_action_kind::checkpoint_and_evict;
  case workload_class::serving:
    return idle_action_kind::scale_to_min_replicas;
  case workload_class::interactive:
    return idle_action_kind::release;
  case workload_class::eval:
    return idle_action_kind::evict;
  }
  return idle_action_kind::evict;
}

bool is_reclaim(idle_action_kind k) noexcept {
  return k != idle_action_kind::notify_owner && k != idle_action_kind::cancel_reclaim;
}

result<label_exemption> parse_exemption(std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos)
    return error{errc::invalid_argument,
                 "exemption \"" + std::string{text} + "\": expected key=value"};
  if (eq == 0)
    return error{errc::invalid_argument,
                 "exemption \"" + std::string{text} + "\": empty label key"};
  if (text.find('=', eq + 1) != std::string_view::npos)
    return error{errc::invalid_argument,
                 "exemption \"" + std::string{text} + "\": more than one '='"};
  return label_exemption{std::string{text.substr(0, eq)},
                         std::string{text.substr(eq + 1)}};
}

result<void> idle_policy::validate() const {
  std::string problems;
  auto add = [&](const std::string& p) {
    problems += (problems.empty() ? "" : "\n") + p;
  };
  for (size_t i = 0; i < workload_class_count; ++i) {
    const auto& c = classes[i];
    const std::string name = to_string(static_cast<workload_class>(i));
    if (!(c.utilisation_threshold >= 0.0 && c.utilisation_threshold <= 1.0))
      add(name + ".utilisation_threshold: expected 0..1, got " +
          std::to_string(c.utilisation_threshold));
    if (c.window < duration::zero()) add(name + ".window: negative");
    if (c.warm_up < duration::zero()) add(name + ".warm_up: negative");
    if (c.grace < duration::zero()) add(name + ".grace: negative");
  }
  for (const auto& e : exemptions)
    if (e.key.empty()) add("exemptions: empty label key (value \"" + e.value + "\")");
  if (!problems.empty()) return error{errc::invalid_argument, problems};
  return ok();
}

audit_record to_audit(const idle_action& a) {
  return audit_record{a.at, a.allocation, a.kind, a.dry_run, a.reason};
}

std::string to_json_line(const audit_record& r) {
  nlohmann::json j{{"at_ms", floor_ms(r.at)},
                   {"allocation", r.allocation.value()},
                   {"action", to_string(r.action)},
                   {"dry_run", r.dry_run},
                   {"reason", r.reason}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// -- idle_detector ------------------------------------------------------------

idle_detector::idle_detector(idle_policy policy) : policy_(std::move(policy)) {
  auto v = policy_.validate();
  if (!v) {
    std::fprintf(stderr, "troupe: idle_detector: %s\n", v.err().to_string().c_str());
  }
  TROUPE_ASSERT(v.ok(), "idle_policy does not validate");
}

result<void> idle_detector::track(const tracked_allocation& a) {
  if (a.gpus == 0)
    return error{errc::invalid_argument,
                 "allocation " + std::to_string(a.id.value()) + ": no GPUs to watch"};
  if (a.price_per_gpu_hour.value() < 0)
    return error{errc::invalid_argument,
                 "allocation " + std::to_string(a.id.value()) + ": negative price"};
  state st;
  st.alloc = a;
  for (const auto& e : policy_.exemptions) {
    auto it = a.allocation_labels.find(e.key);
    if (it != a.allocation_labels.end() && it->second == e.value) {
      st.exempt = true;
      break;
    }
  }
  if (!states_.emplace(a.id, std::move(st)).second)
    return error{errc::conflict,
                 "allocation " + std::to_string(a.id.value()) + " is already tracked"};
  return ok();
}

void idle_detector::untrack(allocation_id id) {
  states_.erase(id); // stale entries in due_ are skipped when they come up
}

idle_action idle_detector::make_action(const state& st, time_point at,
                                       idle_action_kind kind, double max_util,
                                       std::string reason) const {
  idle_action a;
  a.at = at;
  a.allocation = st.alloc.id;
  a.kind = kind;
  a.cls = st.alloc.cls;
  a.dry_run = policy_.dry_run;
  a.idle_since = st.idle_since.value_or(at);
  a.gpus = st.alloc.gpus;
  a.max_utilisation = max_util;
  a.owner = st.alloc.owner;
  a.reason = std::move(reason);
  return a;
}

void idle_detector::count_saving(state& st, time_point from, time_point to) {
  if (to <= from) return;
  const int64_t ms = floor_ms(to) - floor_ms(from);
  const int64_t gpu_ms = ms * static_cast<int64_t>(st.alloc.gpus);
  savings_.gpu_ms += gpu_ms;
  savings_.cost =
      micro_usd{savings_.cost.value() +
                charge(gpu_ms, st.alloc.price_per_gpu_hour, saving_remainder_).value()};
}

void idle_detector::fire(time_point due, state& st, std::vector<idle_action>& out) {
  const auto& cp = policy_.of(st.alloc.cls);
  const auto kind = reclaim_action(st.alloc.cls);
  std::string reason =
      std::string{policy_.dry_run ? "dry run: would " : ""} + to_string(kind) + ": " +
      to_string(st.alloc.cls) + " allocation idle since " +
      std::to_string(floor_ms(*st.idle_since)) + " ms (" +
      duration_text(due - *st.idle_since) + ", every GPU under " +
      percent_text(cp.utilisation_threshold) + ") and the " + duration_text(cp.grace) +
      " grace period after the notice ended; frees " + std::to_string(st.alloc.gpus) +
      " GPUs (" +
      format_usd(micro_usd{st.alloc.price_per_gpu_hour.value() *
                           static_cast<int64_t>(st.alloc.gpus)}) +
      " USD per hour)";
  out.push_back(make_action(st, due, kind, 0.0, std::move(reason)));
  st.ph = phase::reclaimed;
  if (policy_.dry_run) {
    ++savings_.reclaims;
    st.saving_from = due;
  }
}

void idle_detector::advance(time_point now, std::vector<idle_action>& out) {
  while (!due_.empty() && due_.begin()->first <= now) {
    auto node = due_.extract(due_.begin());
    auto it = states_.find(node.mapped().id);
    if (it == states_.end()) continue; // untracked meanwhile
    auto& st = it->second;
    if (st.ph != phase::notified || st.generation != node.mapped().generation) continue;
    const auto& cp = policy_.of(st.alloc.cls);
    if (st.last_sample && node.key() - *st.last_sample > cp.window) {
      // No evidence of idleness for longer than the window: a gap.
      out.push_back(make_action(
          st, node.key(), idle_action_kind::cancel_reclaim, 0.0,
          std::string{policy_.dry_run ? "dry run: " : ""} + "no samples for " +
              duration_text(node.key() - *st.last_sample) +
              " before the reclaim (longer than the " + duration_text(cp.window) +
              " window; missing telemetry never counts as idle): the pending reclaim is "
              "off"));
      ++st.generation;
      st.ph = phase::active;
      st.idle_since.reset();
      continue;
    }
    fire(node.key(), st, out);
  }
}

void idle_detector::observe(const utilisation_sample& s, std::vector<idle_action>& out) {
  advance(s.at, out);
  auto it = states_.find(s.allocation);
  if (it == states_.end() || s.gpu_utilisation.empty()) {
    ++ignored_;
    return;
  }
  auto& st = it->second;
  if (st.last_sample && s.at < *st.last_sample) {
    ++ignored_;
    return;
  }
  if (st.exempt) return;
  const auto& cp = policy_.of(st.alloc.cls);
  if (s.at < st.alloc.start + cp.warm_up) return; // warm-up: not even a sample
  const std::optional<time_point> prev = st.last_sample;
  st.last_sample = s.at;
  if (st.ph == phase::reclaimed && !policy_.dry_run) return; // the actor untracks it

  double max_util = 0.0;
  bool busy = false;
  for (double u : s.gpu_utilisation) {
    if (std::isnan(u)) {
      busy = true;
      max_util = 1.0;
      continue;
    }
    u = std::clamp(u, 0.0, 1.0);
    max_util = std::max(max_util, u);
    if (u >= cp.utilisation_threshold) busy = true;
  }
  const bool gap = prev && s.at - *prev > cp.window;

  if (busy || gap) {
    if (st.ph == phase::notified) {
      std::string why = busy ? "utilisation recovered to " + percent_text(max_util) +
                                   " (threshold " +
                                   percent_text(cp.utilisation_threshold) + ")"
                             : "no samples for " + duration_text(s.at - *prev) +
                                   " (longer than the " + duration_text(cp.window) +
                                   " window; missing telemetry never counts as idle)";
      out.push_back(make_action(st, s.at, idle_action_kind::cancel_reclaim, max_util,
                                std::string{policy_.dry_run ? "dry run: " : ""} + why +
                                    ": the pending reclaim is off"));
      ++st.generation;
    }
    st.ph = phase::active;
    st.idle_since = busy ? std::nullopt : std::optional<time_point>{s.at};
    return;
  }

  // An idle sample.
  if (!st.idle_since) st.idle_since = s.at;
  switch (st.ph) {
  case phase::active:
    if (s.at - *st.idle_since >= cp.window) {
      st.ph = phase::notified;
      st.reclaim_due = s.at + cp.grace;
      out.push_back(make_action(
          st, s.at, idle_action_kind::notify_owner, max_util,
          std::string{policy_.dry_run ? "dry run: " : ""} + to_string(st.alloc.cls) +
              " allocation idle for " + duration_text(s.at - *st.idle_since) +
              " (every GPU under " + percent_text(cp.utilisation_threshold) +
              ", busiest " + percent_text(max_util) + "); " +
              to_string(reclaim_action(st.alloc.cls)) + " in " + duration_text(cp.grace) +
              " unless utilisation recovers"));
      if (cp.grace == duration::zero()) {
        fire(s.at, st, out);
      } else {
        due_.emplace(st.reclaim_due, due_reclaim{st.alloc.id, st.generation});
      }
    }
    break;
  case phase::notified:
    break;
  case phase::reclaimed: // dry run only: count what the reclaim would save
    count_saving(st, std::max(st.saving_from, prev.value_or(s.at)), s.at);
    break;
  }
}

std::vector<idle_action>
idle_detector::step(time_point now, std::span<const utilisation_sample> samples) {
  std::vector<idle_action> out;
  for (const auto& s : samples)
    observe(s, out);
  advance(now, out);
  std::stable_sort(
      out.begin(), out.end(),
      [](const idle_action& a, const idle_action& b) { return a.at < b.at; });
  return out;
}

} // namespace troupe::finops
