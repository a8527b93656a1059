/// Synthetic traces for scale tests: Poisson arrivals, log-normal run times,
/// a GPU-count mix and Zipf-like tenants, all drawn from troupe's own
/// seeded generator so that a seed gives the same trace everywhere.
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"
#include "troupe/sim/trace.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace troupe::sim {

using runtime::errc;

namespace {

constexpr uint64_t max_jobs = 100'000'000;
constexpr uint32_t max_tenants = 1'000'000;
constexpr uint32_t max_job_gpus = 100'000;
constexpr double ms_per_hour = 3'600'000.0;
constexpr int64_t max_trace_ms_int =
    std::chrono::duration_cast<std::chrono::milliseconds>(max_trace_time).count();
constexpr auto max_trace_ms = static_cast<double>(max_trace_ms_int);

std::string num(double v) {
  return std::to_string(v);
}

/// Standard normal deviates by the Box-Muller transform, two per pair of
/// uniforms (the second kept for the next call).
class normal_source {
public:
  explicit normal_source(seeded_rng& rng) : rng_(rng) {}
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 1.0 - rng_.unit(); // (0, 1]: log is finite
    double u2 = rng_.unit();
    double r = std::sqrt(-2.0 * std::log(u1));
    double a = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

private:
  seeded_rng& rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

/// The index of the first cumulative weight above `u * total`.
size_t pick(const std::vector<double>& cumulative, double u) {
  double x = u * cumulative.back();
  auto it = std::upper_bound(cumulative.begin(), cumulative.end(), x);
  return std::min(static_cast<size_t>(it - cumulative.begin()), cumulative.size() - 1);
}

} // namespace

result<trace> generate_trace(const synthetic_trace& p) {
  std::vector<std::string> bad;
  if (p.jobs == 0 || p.jobs > max_jobs)
    bad.push_back("jobs: expected 1.." + std::to_string(max_jobs) + ", got " +
                  std::to_string(p.jobs));
  if (!std::isfinite(p.arrivals_per_hour) || p.arrivals_per_hour <= 0)
    bad.push_back("arrivals_per_hour: expected a positive number, got " +
                  num(p.arrivals_per_hour));
  if (p.median_run_time < std::chrono::milliseconds(1))
    bad.push_back("median_run_time: expected at least 1 ms");
  if (!std::isfinite(p.run_time_sigma) || p.run_time_sigma < 0 || p.run_time_sigma > 10)
    bad.push_back("run_time_sigma: expected 0..10, got " + num(p.run_time_sigma));
  if (p.max_run_time < std::chrono::milliseconds(1) || p.max_run_time > max_trace_time)
    bad.push_back("max_run_time: expected 1 ms to 100 years");
  else if (p.median_run_time > p.max_run_time)
    bad.push_back("median_run_time: more than max_run_time");
  if (p.gpus_per_bundle > placement::max_gpus_per_node)
    bad.push_back("gpus_per_bundle: expected 0.." +
                  std::to_string(placement::max_gpus_per_node) + ", got " +
                  std::to_string(p.gpus_per_bundle));
  double mix_total = 0;
  bool shares = false;
  if (p.gpu_mix.empty()) bad.push_back("gpu_mix: empty");
  for (size_t i = 0; i < p.gpu_mix.size(); ++i) {
    auto [g, w] = p.gpu_mix[i];
    auto at = "gpu_mix[" + std::to_string(i) + "]: ";
    if (!std::isfinite(w) || w < 0) {
      bad.push_back(at + "weight must be a finite number >= 0, got " + num(w));
      continue;
    }
    mix_total += w;
    if (w > 0 && g == 0) shares = true;
    if (g > max_job_gpus)
      bad.push_back(at + std::to_string(g) + " GPUs is more than " +
                    std::to_string(max_job_gpus) + " for one job");
    else if (p.gpus_per_bundle == 0 && g > placement::max_gpus_per_node)
      bad.push_back(at + std::to_string(g) +
                    " GPUs on one node (gpus_per_bundle 0) is more than a node has");
  }
  if (!p.gpu_mix.empty() && !(mix_total > 0))
    bad.push_back("gpu_mix: the weights add up to 0");
  if (!std::isfinite(mix_total)) bad.push_back("gpu_mix: the weights overflow");
  if (shares && (p.share_milli == 0 || p.share_milli > 999))
    bad.push_back("share_milli: expected 1..999 (gpu_mix has shares), got " +
                  std::to_string(p.share_milli));
  if (p.tenants == 0 || p.tenants > max_tenants)
    bad.push_back("tenants: expected 1.." + std::to_string(max_tenants) + ", got " +
                  std::to_string(p.tenants));
  if (!bad.empty()) {
    std::string msg = "synthetic trace: ";
    for (size_t i = 0; i < bad.size(); ++i)
      msg += (i ? "; " : "") + bad[i];
    return error{errc::invalid_argument, msg};
  }

  std::vector<double> mix_cum;
  for (auto [g, w] : p.gpu_mix)
    mix_cum.push_back((mix_cum.empty() ? 0 : mix_cum.back()) + w);
  // Zipf-like popularity: tenant k (0-based) has weight 1 / (k + 1).
  std::vector<double> tenant_cum;
  std::vector<std::string> tenant_names;
  tenant_cum.reserve(p.tenants);
  tenant_names.reserve(p.tenants);
  for (uint32_t k = 0; k < p.tenants; ++k) {
    tenant_cum.push_back((tenant_cum.empty() ? 0 : tenant_cum.back()) + 1.0 / (k + 1));
    tenant_names.push_back("t" + std::to_string(k));
  }

  const double rate_per_ms = p.arrivals_per_hour / ms_per_hour;
  const double mu =
      std::log(std::chrono::duration<double, std::milli>(p.median_run_time).count());
  const double cap_ms = static_cast<double>(
      std::chrono::duration_cast<std::chrono::milliseconds>(p.max_run_time).count());

  seeded_rng rng(p.seed);
  normal_source normal(rng);
  trace out;
  out.source = "synthetic(seed=" + std::to_string(p.seed) + ")";
  out.jobs.reserve(p.jobs);
  double t_ms = 0;
  for (uint64_t i = 0; i < p.jobs; ++i) {
    if (i > 0) t_ms += -std::log(1.0 - rng.unit()) / rate_per_ms;
    auto submit_ms = static_cast<int64_t>(std::round(t_ms));
    if (t_ms > max_trace_ms || submit_ms > max_trace_ms_int)
      return error{errc::invalid_argument,
                   "synthetic trace: job " + std::to_string(i) +
                       " arrives after 100 years: raise arrivals_per_hour or lower jobs"};
    double run_ms = std::exp(mu + p.run_time_sigma * normal.next());
    run_ms = std::clamp(std::round(run_ms), 1.0, cap_ms);
    const auto& [gpus, weight] = p.gpu_mix[pick(mix_cum, rng.unit())];
    size_t tenant = pick(tenant_cum, rng.unit());

    trace_job j;
    j.name = "job-" + std::to_string(i);
    j.submit = std::chrono::milliseconds(submit_ms);
    j.run_time = std::chrono::milliseconds(static_cast<int64_t>(run_ms));
    if (gpus == 0) {
      j.gpu_milli = p.share_milli;
    } else {
      j.gpus = gpus;
      j.gpus_per_bundle = p.gpus_per_bundle;
    }
    j.tenant = tenant_names[tenant];
    out.jobs.push_back(std::move(j));
  }
  return out;
}

} // namespace troupe::sim
