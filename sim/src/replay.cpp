#include "troupe/sim/replay.hpp"

#include "troupe/runtime/errc.hpp"

#include <filesystem>
#include <set>

namespace troupe::sim {

using runtime::errc;

result<report_bundle> run_replay(const trace& t, const replay_options& opt,
                                 const progress_fn& progress) {
  if (opt.policies.empty()) return error{errc::invalid_argument, "no policy to run"};
  std::vector<sim_policy> policies;
  for (const auto& p : opt.policies) {
    auto pp = parse_policy(p);
    if (!pp) return pp.err();
    policies.push_back(std::move(*pp));
  }
  report_bundle out;
  // The runs: (label, trace, topology).
  struct run {
    std::string label;
    trace jobs;
    placement::cluster_topology topology;
  };
  std::vector<run> runs;
  if (opt.per_tenant) {
    std::set<std::string> tenants;
    for (const auto& j : t.jobs)
      tenants.insert(j.tenant);
    for (const auto& tenant : tenants) {
      run r;
      r.label = tenant;
      std::vector<trace_node> nodes;
      for (const auto& n : t.nodes)
        if (n.name.size() > tenant.size() &&
            n.name.compare(0, tenant.size(), tenant) == 0 && n.name[tenant.size()] == '-')
          nodes.push_back(n);
      if (nodes.empty()) {
        out.warnings.push_back("tenant " + tenant + ": no nodes named \"" + tenant +
                               "-...\" in the trace; skipped");
        continue;
      }
      auto topo = topology_from_nodes(nodes);
      if (!topo) return topo.err();
      r.topology = std::move(*topo);
      r.jobs.source = t.source;
      for (const auto& j : t.jobs)
        if (j.tenant == tenant) r.jobs.jobs.push_back(j);
      runs.push_back(std::move(r));
    }
    if (runs.empty())
      return error{errc::invalid_argument, "per-tenant replay: no tenant has nodes"};
  } else {
    run r;
    r.jobs = t;
    r.topology = opt.base.topology;
    if (r.topology.nodes.empty()) {
      auto topo = topology_from_nodes(t.nodes);
      if (!topo) return topo.err();
      r.topology = std::move(*topo);
    }
    runs.push_back(std::move(r));
  }
  if (opt.pricing)
    for (auto& r : runs)
      if (auto p =
              price_nodes(r.topology, opt.pricing->on_demand, opt.pricing->spot_fraction,
                          opt.pricing->spot, opt.base.seed);
          !p)
        return p.err();
  uint64_t total = 0;
  for (const auto& r : runs)
    total += r.jobs.jobs.size() * policies.size();
  uint64_t base_done = 0;
  std::vector<sim_result> results;
  for (const auto& r : runs) {
    for (const auto& p : policies) {
      sim_config c = opt.base;
      c.topology = r.topology;
      c.policy = p;
      progress_fn inner;
      if (progress)
        inner = [&](uint64_t done, uint64_t) { progress(base_done + done, total); };
      auto res = simulate(r.jobs, c, inner);
      if (!res) {
        auto where = r.label.empty() ? p.name : r.label + " " + p.name;
        return error{res.err().code(), where + ": " + res.err().message()};
      }
      base_done += r.jobs.jobs.size();
      res->label = r.label;
      out.events += res->summary.events;
      res->jobs.clear();
      results.push_back(std::move(*res));
    }
  }
  out.table = compare_table(results, "Trace replay: " + t.source);
  if (opt.base.finops)
    out.finops_table =
        finops_table(results, "FinOps (ledger, idle reclaim, spot): " + t.source);
  out.charts = compare_charts(results);
  out.json = results_json(results);
  return out;
}

result<void> write_report(const std::string& dir, const report_bundle& r) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error{errc::io_error, "cannot create " + dir + ": " + ec.message()};
  auto path = [&](const std::string& name) {
    return (std::filesystem::path(dir) / name).string();
  };
  std::string text = render_table(r.table);
  if (r.finops_table) text += "\n" + render_table(*r.finops_table);
  if (auto w = write_text_file(path("summary.txt"), text); !w) return w;
  if (auto w = write_text_file(path("summary.json"), r.json); !w) return w;
  if (auto w = write_text_file(path("series.csv"), render_series_csv(r.charts)); !w)
    return w;
  for (const auto& c : r.charts)
    if (auto w = write_text_file(path(c.id + ".svg"), render_svg(c)); !w) return w;
  return ok();
}

} // namespace troupe::sim
