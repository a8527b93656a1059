#include "troupe/sim/finops_loop.hpp"

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace troupe::sim {

using runtime::errc;

idle_model idle_model::uniform(const idle_class_model& m, uint64_t seed) {
  idle_model out;
  out.classes.fill(m);
  out.seed = seed;
  return out;
}

namespace {

bool unit_range(double x) {
  return x >= 0.0 && x <= 1.0;
} // false for NaN

} // namespace

result<void> idle_model::validate() const {
  std::string bad;
  for (size_t i = 0; i < classes.size(); ++i) {
    const auto& c = classes[i];
    std::string where = std::string{"idle model "} +
                        to_string(static_cast<finops::workload_class>(i)) + ": ";
    if (!unit_range(c.idle_job_probability))
      bad += where + "idle_job_probability must be in [0, 1]; ";
    if (!unit_range(c.idle_share_min))
      bad += where + "idle_share_min must be in [0, 1]; ";
    if (!unit_range(c.idle_share_max))
      bad += where + "idle_share_max must be in [0, 1]; ";
    if (unit_range(c.idle_share_min) && unit_range(c.idle_share_max) &&
        c.idle_share_min > c.idle_share_max)
      bad += where + "idle_share_min is above idle_share_max; ";
    if (!unit_range(c.tail_probability))
      bad += where + "tail_probability must be in [0, 1]; ";
  }
  if (!unit_range(busy_utilisation)) bad += "busy_utilisation must be in [0, 1]; ";
  if (!unit_range(idle_utilisation)) bad += "idle_utilisation must be in [0, 1]; ";
  if (bad.empty()) return ok();
  bad.resize(bad.size() - 2);
  return error{errc::invalid_argument, bad};
}

idle_phase draw_idle_phase(const idle_model& m, finops::workload_class cls,
                           duration run_time, uint64_t job_index) {
  // One generator per job, from the model's seed and the job's index only.
  seeded_rng rng(m.seed ^ (0x9e3779b97f4a7c15ULL * (job_index + 1)));
  rng.next();
  // Always four draws, so a parameter change moves no other job's draws.
  const double u_has = rng.unit();
  const double u_share = rng.unit();
  const double u_tail = rng.unit();
  const double u_pos = rng.unit();
  const auto& c = m.of(cls);
  const int64_t run_ms = std::chrono::floor<std::chrono::milliseconds>(run_time).count();
  if (run_ms <= 0 || !(u_has < c.idle_job_probability)) return {};
  const double share = c.idle_share_min + (c.idle_share_max - c.idle_share_min) * u_share;
  const auto len_ms =
      std::clamp<int64_t>(std::llround(static_cast<double>(run_ms) * share), 0, run_ms);
  if (len_ms == 0) return {};
  idle_phase p;
  if (u_tail < c.tail_probability) {
    p.end = run_time;
    p.begin = run_time - std::chrono::milliseconds{len_ms};
    return p;
  }
  const auto begin_ms = std::clamp<int64_t>(
      static_cast<int64_t>(std::floor(static_cast<double>(run_ms - len_ms) * u_pos)), 0,
      run_ms - len_ms);
  p.begin = std::chrono::milliseconds{begin_ms};
  p.end = std::chrono::milliseconds{begin_ms + len_ms};
  return p;
}

const char* to_string(finops_mode m) noexcept {
  switch (m) {
  case finops_mode::off:
    return "off";
  case finops_mode::dry_run:
    return "dry_run";
  case finops_mode::on:
    return "on";
  }
  return "?";
}

finops::workload_class finops_loop_config::class_of(const trace_job& j) const {
  auto it = class_by_qos.find(j.qos);
  return it == class_by_qos.end() ? default_class : it->second;
}

result<void> finops_loop_config::validate() const {
  std::string bad;
  auto p = idle;
  p.dry_run = mode == finops_mode::dry_run;
  if (auto v = p.validate(); !v) bad += v.err().message() + "; ";
  if (auto v = model.validate(); !v) bad += v.err().message() + "; ";
  if (telemetry_interval.count() <= 0) {
    bad += "telemetry_interval must be positive; ";
  } else {
    for (size_t i = 0; i < finops::workload_class_count; ++i) {
      auto cls = static_cast<finops::workload_class>(i);
      if (telemetry_interval > idle.of(cls).window)
        bad += std::string{"telemetry_interval is longer than the "} + to_string(cls) +
               " window (every sample would be a gap); ";
    }
  }
  if (ledger_period.count() <= 0) bad += "ledger_period must be positive; ";
  if (spot)
    if (auto v = spot->validate(); !v) bad += v.err().message() + "; ";
  if (bad.empty()) return ok();
  bad.resize(bad.size() - 2);
  return error{errc::invalid_argument, "finops: " + bad};
}

result<void> price_nodes(placement::cluster_topology& topo, micro_usd on_demand,
                         double spot_fraction, micro_usd spot, uint64_t seed) {
  if (!unit_range(spot_fraction))
    return error{errc::invalid_argument, "spot fraction must be in [0, 1]"};
  if (on_demand.value() < 0 || spot.value() < 0)
    return error{errc::invalid_argument, "prices must not be negative"};
  const size_t n = topo.nodes.size();
  for (auto& node : topo.nodes) {
    node.capacity = placement::capacity_type::on_demand;
    node.price_per_gpu_hour = on_demand;
  }
  auto k = static_cast<size_t>(std::llround(spot_fraction * static_cast<double>(n)));
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  seeded_rng rng(seed ^ 0x5b07c0575eedULL);
  for (size_t i = n; i > 1; --i) // Fisher-Yates with our own generator
    std::swap(order[i - 1], order[rng.below(i)]);
  for (size_t i = 0; i < k && i < n; ++i) {
    topo.nodes[order[i]].capacity = placement::capacity_type::spot;
    topo.nodes[order[i]].price_per_gpu_hour = spot;
  }
  return ok();
}

} // namespace troupe::sim
