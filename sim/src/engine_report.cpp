/// Tables, charts and JSON over simulation results (data only; report.cpp
/// renders them).
#include "troupe/sim/engine.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace troupe::sim {

summary_table compare_table(const std::vector<sim_result>& results, std::string title) {
  summary_table t;
  t.title = std::move(title);
  bool labelled = false;
  for (const auto& r : results)
    labelled = labelled || !r.label.empty();
  if (labelled) t.columns.push_back("cluster");
  for (const char* c :
       {"policy", "jobs", "done", "JCT mean h", "JCT p50 h", "JCT p99 h", "wait mean h",
        "wait p50 h", "wait p99 h", "util %", "preempt", "killed", "lost GPU-h"})
    t.columns.emplace_back(c);
  auto h = [](double s) { return format_number(s / 3600.0, 2); };
  for (const auto& r : results) {
    const auto& s = r.summary;
    std::vector<std::string> row;
    if (labelled) row.push_back(r.label);
    row.push_back(r.policy);
    row.push_back(std::to_string(s.jobs));
    row.push_back(std::to_string(s.completed));
    row.push_back(h(s.jct_mean_s));
    row.push_back(h(s.jct_median_s));
    row.push_back(h(s.jct_p99_s));
    row.push_back(h(s.queue_mean_s));
    row.push_back(h(s.queue_median_s));
    row.push_back(h(s.queue_p99_s));
    row.push_back(format_number(s.utilisation_pct, 1));
    row.push_back(std::to_string(s.preemptions));
    row.push_back(std::to_string(s.failures));
    row.push_back(format_number(s.lost_gpu_hours, 1));
    t.rows.push_back(std::move(row));
  }
  return t;
}

summary_table finops_table(const std::vector<sim_result>& results, std::string title) {
  summary_table t;
  t.title = std::move(title);
  bool labelled = false;
  for (const auto& r : results)
    labelled = labelled || (r.finops && !r.label.empty());
  if (labelled) t.columns.push_back("cluster");
  for (const char* c :
       {"policy", "finops", "cost USD", "GPU-h", "spot GPU-h", "idle GPU-h", "held GPU-h",
        "detected GPU-h", "reclaimed GPU-h", "notices", "reclaims"})
    t.columns.emplace_back(c);
  auto h = [](int64_t gpu_ms) {
    return format_number(static_cast<double>(gpu_ms) /
                             static_cast<double>(finops::gpu_ms_per_gpu_hour),
                         1);
  };
  for (const auto& r : results) {
    if (!r.finops) continue;
    const auto& f = *r.finops;
    std::vector<std::string> row;
    if (labelled) row.push_back(r.label);
    row.push_back(r.policy);
    row.push_back(to_string(f.mode));
    row.push_back(finops::format_usd(f.ledger.cost));
    row.push_back(h(f.ledger.gpu_ms));
    row.push_back(h(f.spot_gpu_ms));
    row.push_back(h(f.idle_gpu_ms));
    row.push_back(h(f.idle_held_gpu_ms));
    row.push_back(h(f.detected_gpu_ms));
    row.push_back(h(f.reclaimed_gpu_ms));
    row.push_back(std::to_string(f.notices));
    row.push_back(std::to_string(
        f.mode == finops_mode::dry_run ? f.dry_run_savings.reclaims : f.reclaims));
    t.rows.push_back(std::move(row));
  }
  return t;
}

namespace {

std::vector<chart> charts_of(const std::vector<sim_result>& results);

} // namespace

std::vector<chart> compare_charts(const std::vector<sim_result>& results) {
  // Runs with labels (e.g. one per virtual cluster) get one set of charts
  // per label, so a chart compares the policies on one cluster.
  std::vector<std::string> labels;
  for (const auto& r : results)
    if (std::find(labels.begin(), labels.end(), r.label) == labels.end())
      labels.push_back(r.label);
  if (labels.size() <= 1) return charts_of(results);
  std::vector<chart> out;
  for (const auto& label : labels) {
    std::vector<sim_result> group;
    for (const auto& r : results)
      if (r.label == label) {
        sim_result copy;
        copy.policy = r.policy;
        copy.series = r.series;
        group.push_back(std::move(copy));
      }
    for (auto& c : charts_of(group)) {
      c.id += "_" + label;
      c.title += " (" + label + ")";
      out.push_back(std::move(c));
    }
  }
  return out;
}

namespace {

std::vector<chart> charts_of(const std::vector<sim_result>& results) {
  auto name = [](const sim_result& r) {
    return r.label.empty() ? r.policy : r.label + " " + r.policy;
  };
  auto make = [&](std::string id, std::string title, std::string y,
                  std::vector<double> sim_series::*field, double y_max) {
    chart c;
    c.id = std::move(id);
    c.title = std::move(title);
    c.x_label = "simulated time (hours)";
    c.y_label = std::move(y);
    c.y_max = y_max;
    for (const auto& r : results) {
      const auto& ys = r.series.*field;
      if (ys.empty()) continue;
      series s;
      s.name = name(r);
      s.x = r.series.hours;
      s.y = ys;
      s.x.resize(std::min(s.x.size(), s.y.size()));
      c.lines.push_back(std::move(s));
    }
    return c;
  };
  std::vector<chart> out;
  out.push_back(make("allocation", "GPU allocation over time", "GPUs allocated (%)",
                     &sim_series::allocation_pct, 100));
  out.push_back(make("queue", "Queue length over time", "jobs waiting",
                     &sim_series::queue_length, 0));
  out.push_back(
      make("running", "Running jobs over time", "jobs running", &sim_series::running, 0));
  bool frag = false;
  for (const auto& r : results)
    frag = frag || !r.series.fragmentation_pct.empty();
  if (frag)
    out.push_back(make("fragmentation", "GPU fragmentation over time",
                       "fragmented share of free GPU (%)", &sim_series::fragmentation_pct,
                       100));
  bool down = false;
  for (const auto& r : results)
    for (double d : r.series.nodes_down)
      down = down || d > 0;
  if (down)
    out.push_back(make("nodes_down", "Nodes down over time", "nodes down",
                       &sim_series::nodes_down, 0));
  return out;
}

} // namespace

std::string results_json(const std::vector<sim_result>& results) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const auto& r : results) {
    const auto& s = r.summary;
    nlohmann::ordered_json j;
    j["policy"] = r.policy;
    if (!r.label.empty()) j["cluster"] = r.label;
    j["jobs"] = s.jobs;
    j["completed"] = s.completed;
    j["never_fit"] = s.never_fit;
    j["unfinished"] = s.unfinished;
    j["jct_s"] = {
        {"mean", s.jct_mean_s}, {"median", s.jct_median_s}, {"p99", s.jct_p99_s}};
    j["queueing_s"] = {
        {"mean", s.queue_mean_s}, {"median", s.queue_median_s}, {"p99", s.queue_p99_s}};
    j["utilisation_pct"] = s.utilisation_pct;
    j["makespan_h"] = s.makespan_h;
    j["preemptions"] = s.preemptions;
    j["job_kills"] = s.failures;
    j["node_failures"] = s.node_failures;
    j["spot_reclaims"] = s.spot_reclaims;
    j["lost_gpu_hours"] = s.lost_gpu_hours;
    j["events"] = s.events;
    if (r.finops) {
      const auto& f = *r.finops;
      nlohmann::ordered_json fj;
      fj["mode"] = to_string(f.mode);
      fj["cost_micro_usd"] = f.ledger.cost.value();
      fj["used_cost_micro_usd"] = f.ledger.used_cost.value();
      fj["spot_cost_micro_usd"] = f.spot_cost.value();
      fj["on_demand_cost_micro_usd"] = f.on_demand_cost.value();
      fj["gpu_ms"] = f.ledger.gpu_ms;
      fj["used_gpu_ms"] = f.ledger.used_gpu_ms;
      fj["allocated_gpu_ms"] = f.allocated_gpu_ms;
      fj["spot_gpu_ms"] = f.spot_gpu_ms;
      fj["idle_gpu_ms"] = f.idle_gpu_ms;
      fj["idle_held_gpu_ms"] = f.idle_held_gpu_ms;
      fj["detected_gpu_ms"] = f.detected_gpu_ms;
      fj["reclaimed_gpu_ms"] = f.reclaimed_gpu_ms;
      fj["reclaimed_cost_micro_usd"] = f.reclaimed_cost.value();
      fj["jobs_with_idle_phase"] = f.jobs_with_idle_phase;
      fj["notices"] = f.notices;
      fj["cancels"] = f.cancels;
      fj["reclaims"] = f.reclaims;
      fj["reclaims_outside_phase"] = f.reclaims_outside_phase;
      fj["tail_completions"] = f.tail_completions;
      fj["pause_returns"] = f.pause_returns;
      fj["spot_tolerant_jobs"] = f.spot_tolerant_jobs;
      fj["dry_run_savings"] = {{"reclaims", f.dry_run_savings.reclaims},
                               {"gpu_ms", f.dry_run_savings.gpu_ms},
                               {"cost_micro_usd", f.dry_run_savings.cost.value()}};
      j["finops"] = std::move(fj);
    }
    arr.push_back(std::move(j));
  }
  return arr.dump(2) + "\n";
}

} // namespace troupe::sim
