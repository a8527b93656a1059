// `troupe cluster-sim replay|convert`: loads traces and clusters, runs the
// simulator, prints and writes the reports.

#include "cluster_sim.hpp"

#include "troupe/placement/topology_config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/sim/fgd_experiment.hpp"
#include "troupe/sim/replay.hpp"
#include "troupe/sim/trace.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <unistd.h>

namespace troupe::tools {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// Where the jobs come from (one of).
struct trace_source {
  std::string troupe_trace;  ///< .csv or .jsonl in troupe's format
  std::string philly;        ///< philly.csv
  std::string vc_nodes;      ///< helios_philly_vc_nodes.csv
  std::string alibaba_pods;  ///< openb_pod_list_*.csv
  std::string alibaba_nodes; ///< openb_node_list_gpu_node.csv
  uint64_t synthetic_jobs = 0;
  sim::synthetic_trace synth;

  void add_options(CLI::App* cmd) {
    auto* g = cmd->add_option_group("trace", "Where the jobs come from (one of)");
    g->add_option("--trace", troupe_trace, "Trace in troupe's format (.csv or .jsonl)")
        ->check(CLI::ExistingFile);
    g->add_option("--philly", philly, "Philly job trace (philly.csv); needs --vc-nodes")
        ->check(CLI::ExistingFile);
    cmd->add_option("--vc-nodes", vc_nodes, "Philly nodes per virtual cluster (CSV)")
        ->check(CLI::ExistingFile);
    g->add_option("--alibaba-pods", alibaba_pods, "Alibaba openb pod list (CSV)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--alibaba-nodes", alibaba_nodes, "Alibaba openb node list (CSV)")
        ->check(CLI::ExistingFile);
    g->add_option("--synthetic", synthetic_jobs, "Generate this many synthetic jobs")
        ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
    g->require_option(1);
    cmd->add_option("--arrivals-per-hour", synth.arrivals_per_hour,
                    "Synthetic: mean arrival rate");
    cmd->add_option("--synthetic-seed", synth.seed, "Synthetic: seed");
  }

  result<sim::trace> load() const {
    if (!troupe_trace.empty()) return sim::load_troupe_trace(troupe_trace);
    if (!philly.empty()) {
      if (vc_nodes.empty())
        return error{std::make_error_code(std::errc::invalid_argument),
                     "--philly needs --vc-nodes (nodes per virtual cluster)"};
      return sim::load_philly(philly, vc_nodes);
    }
    if (!alibaba_pods.empty()) {
      auto t = sim::load_alibaba_pods(alibaba_pods);
      if (!t) return t;
      if (!alibaba_nodes.empty()) {
        auto n = sim::load_alibaba_nodes(alibaba_nodes);
        if (!n) return n.err();
        t->nodes = std::move(*n);
      }
      return t;
    }
    auto p = synth;
    p.jobs = synthetic_jobs;
    return sim::generate_trace(p);
  }
};

/// "RxNxG": racks x nodes per rack x GPUs per node.
result<placement::generated_cluster> parse_shape(const std::string& s) {
  placement::generated_cluster g;
  unsigned r = 0, n = 0, gp = 0;
  char x1 = 0, x2 = 0;
  int used = 0;
  if (std::sscanf(s.c_str(), "%u%c%u%c%u%n", &r, &x1, &n, &x2, &gp, &used) != 5 ||
      x1 != 'x' || x2 != 'x' || static_cast<size_t>(used) != s.size() || r == 0 ||
      n == 0 || gp == 0 || gp > placement::max_gpus_per_node)
    return error{std::make_error_code(std::errc::invalid_argument),
                 "--generate: expected RACKSxNODESxGPUS (e.g. 25x50x8), got \"" + s +
                     "\""};
  g.racks = r;
  g.nodes_per_rack = n;
  g.gpus_per_node = gp;
  return g;
}

duration hours(double h) {
  return std::chrono::duration_cast<duration>(std::chrono::duration<double>(h * 3600.0));
}

struct replay_cli {
  trace_source src;
  std::vector<std::string> policies{"fifo", "sjf", "troupe"};
  bool per_vc = false;
  std::string cluster_file;
  std::string generate;
  double spot_fraction = 0;
  uint64_t seed = 1;
  double sample_minutes = 10;
  double mtbf_hours = 0;
  double repair_hours = 2;
  double spot_rate = 0;
  double spot_outage_hours = 1;
  std::vector<std::string> spot_traces;
  double spot_notice_s = 120;
  double ckpt_interval_min = 0;
  double ckpt_cost_s = 0;
  double restart_delay_s = 0;
  double horizon_hours = 0;
  double arrival_scale = 1.0;
  bool fragmentation = false;
  // FinOps in the loop (sim/finops_loop.hpp):
  std::string finops; ///< "", off, dry-run, on
  double idle_jobs = 0.5;
  std::vector<double> idle_share{0.05, 0.20};
  double idle_tail = 0.35;
  uint64_t idle_seed = 1;
  bool spot_policy = false;
  double on_demand_usd = 3.06;
  double spot_usd = 0.918;
  std::string out_dir;
  bool json = false;
  bool progress = false;
  bool no_progress = false;

  int run() {
    auto t = src.load();
    if (!t) return fail(t.err());
    for (const auto& w : t->warnings)
      std::cerr << "troupe cluster-sim: warning: " << w << '\n';
    if (arrival_scale != 1.0)
      if (auto s = sim::scale_arrivals(*t, arrival_scale); !s) return fail(s.err());
    sim::replay_options opt;
    opt.policies = policies;
    opt.per_tenant = per_vc;
    auto& c = opt.base;
    if (!cluster_file.empty()) {
      auto topo = placement::load_topology_file(cluster_file);
      if (!topo) return fail(topo.err());
      c.topology = std::move(*topo);
    } else if (!generate.empty()) {
      auto g = parse_shape(generate);
      if (!g) return fail(g.err());
      g->spot_fraction = spot_fraction;
      g->seed = seed;
      c.topology = placement::generate_cluster(*g);
    } else if (t->nodes.empty()) {
      std::cerr
          << "troupe cluster-sim: the trace has no node list: give --cluster FILE or "
             "--generate RxNxG\n";
      return 2;
    }
    c.seed = seed;
    c.sample_interval = hours(sample_minutes / 60.0);
    c.faults.node_mtbf = hours(mtbf_hours);
    c.faults.node_repair = hours(repair_hours);
    c.faults.spot_reclaims_per_hour = spot_rate;
    c.faults.spot_outage = hours(spot_outage_hours);
    c.faults.spot_notice = hours(spot_notice_s / 3600.0);
    for (const auto& p : spot_traces) {
      std::vector<std::string> files;
      if (fs::is_directory(p)) {
        for (const auto& e : fs::recursive_directory_iterator(p))
          if (e.is_regular_file() && e.path().extension() == ".json")
            files.push_back(e.path().string());
        std::sort(files.begin(), files.end());
      } else {
        files.push_back(p);
      }
      for (const auto& f : files) {
        auto st = sim::load_spot_trace(f);
        if (!st) return fail(st.err());
        c.faults.spot_traces.push_back(std::move(*st));
      }
    }
    c.checkpoints.interval = hours(ckpt_interval_min / 60.0);
    c.checkpoints.cost = hours(ckpt_cost_s / 3600.0);
    c.checkpoints.restart_delay = hours(restart_delay_s / 3600.0);
    c.horizon = hours(horizon_hours);
    c.fragmentation_series = fragmentation;
    if (!finops.empty()) {
      sim::finops_loop_config f;
      if (finops == "off") {
        f.mode = sim::finops_mode::off;
      } else if (finops == "dry-run" || finops == "dry_run") {
        f.mode = sim::finops_mode::dry_run;
      } else if (finops == "on") {
        f.mode = sim::finops_mode::on;
      } else {
        return fail(
            error{runtime::errc::invalid_argument,
                  "--finops: expected off, dry-run or on, got \"" + finops + "\""});
      }
      if (idle_share.size() != 2)
        return fail(error{runtime::errc::invalid_argument,
                          "--idle-share: expected MIN,MAX (two shares of the run time)"});
      sim::idle_class_model m;
      m.idle_job_probability = idle_jobs;
      m.idle_share_min = idle_share[0];
      m.idle_share_max = idle_share[1];
      m.tail_probability = idle_tail;
      f.model = sim::idle_model::uniform(m, idle_seed);
      // Alibaba's latency-sensitive pods are online services.
      f.class_by_qos = {{"LS", finops::workload_class::serving}};
      if (spot_policy) f.spot = finops::spot_policy{};
      c.finops = f;
      auto usd = [](double x) { return micro_usd{std::llround(x * 1e6)}; };
      opt.pricing = sim::replay_options::node_pricing{usd(on_demand_usd), usd(spot_usd),
                                                      spot_fraction};
    }

    bool bar_on = progress || (!no_progress && isatty(STDERR_FILENO) != 0);
    uint64_t total = t->jobs.size() * policies.size();
    sim::progress_bar bar("jobs simulated", total, bar_on);
    auto t0 = std::chrono::steady_clock::now();
    auto r = sim::run_replay(*t, opt, [&](uint64_t done, uint64_t) { bar.update(done); });
    bar.finish();
    double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r) return fail(r.err());
    for (const auto& w : r->warnings)
      std::cerr << "troupe cluster-sim: warning: " << w << '\n';
    if (json) {
      std::cout << r->json;
    } else {
      std::cout << sim::render_table(r->table);
      if (r->finops_table) std::cout << '\n' << sim::render_table(*r->finops_table);
    }
    std::cout.flush();
    std::cerr << "troupe cluster-sim: " << r->events << " events in " << wall << " s ("
              << static_cast<uint64_t>(wall > 0 ? static_cast<double>(r->events) / wall
                                                : 0)
              << " events/s)\n";
    if (!out_dir.empty()) {
      if (auto w = sim::write_report(out_dir, *r); !w) return fail(w.err());
      std::cerr << "troupe cluster-sim: report written to " << out_dir << '\n';
    }
    return 0;
  }

  static int fail(const error& e) {
    std::cerr << "troupe cluster-sim: " << e.message() << '\n';
    return 2;
  }
};

struct convert_cli {
  trace_source src;
  std::string out;
  int run() {
    auto t = src.load();
    if (!t) return replay_cli::fail(t.err());
    for (const auto& w : t->warnings)
      std::cerr << "troupe cluster-sim: warning: " << w << '\n';
    if (auto s = sim::save_troupe_trace(*t, out); !s) return replay_cli::fail(s.err());
    std::cerr << "troupe cluster-sim: " << t->jobs.size() << " jobs, " << t->nodes.size()
              << " nodes written to " << out << '\n';
    return 0;
  }
};

struct fgd_cli {
  std::string nodes;
  std::string pods;
  std::vector<std::string> policies{"random", "bestfit", "fgd", "troupe"};
  std::string seeds = "42-51";
  double ratio = 1.3;
  std::string arrivals = "simulator";
  std::string out_dir;
  bool json = false;
  bool progress = false;
  bool no_progress = false;

  int run() {
    auto n = sim::load_alibaba_nodes(nodes);
    if (!n) return replay_cli::fail(n.err());
    auto p = sim::load_alibaba_pods(pods);
    if (!p) return replay_cli::fail(p.err());
    auto topo = sim::topology_from_nodes(*n);
    if (!topo) return replay_cli::fail(topo.err());
    sim::fgd_experiment_config cfg;
    cfg.policies = policies;
    auto sd = sim::parse_seed_list(seeds);
    if (!sd)
      return replay_cli::fail(error{sd.err().code(), "--seeds: " + sd.err().message()});
    cfg.seeds = *sd;
    cfg.demand_ratio = ratio;
    auto am = sim::parse_arrival_model(arrivals);
    if (!am) return replay_cli::fail(am.err());
    cfg.arrivals = *am;
    bool bar_on = progress || (!no_progress && isatty(STDERR_FILENO) != 0);
    // One run per policy, timed (wall time per seed goes to stderr: it is
    // not part of the deterministic report).
    sim::fgd_experiment_result all;
    std::vector<double> wall;
    {
      for (const auto& pol : cfg.policies) {
        auto one = cfg;
        one.policies = {pol};
        sim::progress_bar pb("arrivals (" + pol + ")", 1000, bar_on);
        auto t0 = std::chrono::steady_clock::now();
        auto r =
            sim::run_fgd_experiment(*topo, *p, one, [&](uint64_t done, uint64_t total) {
              pb.update(total ? done * 1000 / total : 0);
            });
        pb.finish();
        if (!r) return replay_cli::fail(r.err());
        wall.push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (all.runs.empty()) {
          all = std::move(*r);
        } else {
          for (auto& run : r->runs)
            all.runs.push_back(std::move(run));
        }
      }
      all.config = cfg;
    }
    auto table = all.table();
    auto seeds_table = all.seed_table();
    auto charts = all.charts();
    std::string text = sim::render_table(table) + "\n" + sim::render_table(seeds_table);
    std::string js = sim::render_table_json(table);
    if (json) {
      std::cout << js;
    } else {
      std::cout << text;
    }
    std::cout.flush();
    for (size_t i = 0; i < cfg.policies.size(); ++i)
      std::cerr << "troupe cluster-sim: " << cfg.policies[i] << ": " << wall[i]
                << " s for " << cfg.seeds.size() << " seed(s), "
                << wall[i] / static_cast<double>(cfg.seeds.size()) << " s per seed\n";
    if (!out_dir.empty()) {
      sim::report_bundle b;
      b.table = table;
      b.charts = charts;
      b.json = js;
      if (auto w = sim::write_report(out_dir, b); !w) return replay_cli::fail(w.err());
      auto seeds_path = (fs::path(out_dir) / "seeds.txt").string();
      if (auto w = sim::write_text_file(seeds_path, sim::render_table(seeds_table)); !w)
        return replay_cli::fail(w.err());
      std::cerr << "troupe cluster-sim: report written to " << out_dir << '\n';
    }
    return 0;
  }
};

} // namespace

CLI::App* add_cluster_sim(CLI::App& app, std::function<int()>& run) {
  auto* cmd = app.add_subcommand(
      "cluster-sim", "Cluster simulator: replay GPU traces through troupe's placement "
                     "policies (see docs/SIMULATOR.md)");
  cmd->require_subcommand(1);

  auto replay = std::make_shared<replay_cli>();
  auto* rp = cmd->add_subcommand(
      "replay",
      "Replay a trace under several policies side by side: JCT, queueing delay, "
      "utilisation; table, JSON, CSV and SVG");
  replay->src.add_options(rp);
  rp->add_option(
        "-p,--policies", replay->policies,
        "Policies <fifo|sjf|troupe>[:<bestfit|paper-bestfit|fgd|fgd-sim|troupe|random>]")
      ->delimiter(',');
  rp->add_flag("--per-vc", replay->per_vc,
               "One cluster per virtual cluster (tenant), from the trace's node list");
  rp->add_option("--cluster", replay->cluster_file, "Cluster topology (TOML)")
      ->check(CLI::ExistingFile);
  rp->add_option("--generate", replay->generate,
                 "Generated cluster RACKSxNODESxGPUS, e.g. 25x50x8 (10,000 GPUs)");
  rp->add_option("--spot-fraction", replay->spot_fraction,
                 "Share of spot nodes (generated clusters; with --finops, any cluster)")
      ->check(CLI::Range(0.0, 1.0));
  rp->add_option("--seed", replay->seed, "Seed (faults, random scorer, spot offsets)");
  rp->add_option("--sample-minutes", replay->sample_minutes, "Time series resolution")
      ->check(CLI::PositiveNumber);
  rp->add_option("--mtbf-hours", replay->mtbf_hours, "Node MTBF (0: no failures)")
      ->check(CLI::NonNegativeNumber);
  rp->add_option("--repair-hours", replay->repair_hours, "Node repair time")
      ->check(CLI::PositiveNumber);
  rp->add_option("--spot-reclaims-per-hour", replay->spot_rate,
                 "Spot reclaims per spot node per hour (without --spot-traces)")
      ->check(CLI::NonNegativeNumber);
  rp->add_option("--spot-outage-hours", replay->spot_outage_hours,
                 "How long a reclaimed spot node stays away (rate mode)")
      ->check(CLI::PositiveNumber);
  rp->add_option("--spot-traces", replay->spot_traces,
                 "Spot availability JSON files or directories (replayed per spot node)")
      ->check(CLI::ExistingPath);
  rp->add_option("--spot-notice-s", replay->spot_notice_s,
                 "Spot reclaim notice (seconds)")
      ->check(CLI::NonNegativeNumber);
  rp->add_option("--checkpoint-minutes", replay->ckpt_interval_min,
                 "Checkpoint interval of every job (0: never)")
      ->check(CLI::NonNegativeNumber);
  rp->add_option("--checkpoint-cost-s", replay->ckpt_cost_s,
                 "Wall time of one checkpoint")
      ->check(CLI::NonNegativeNumber);
  rp->add_option("--restart-delay-s", replay->restart_delay_s,
                 "Restart delay after eviction")
      ->check(CLI::NonNegativeNumber);
  rp->add_option("--horizon-hours", replay->horizon_hours,
                 "Stop after this long (0: never)")
      ->check(CLI::NonNegativeNumber);
  rp->add_option("--arrival-scale", replay->arrival_scale,
                 "Multiply submit times by this (0.25: the same jobs arrive 4x faster)")
      ->check(CLI::PositiveNumber);
  rp->add_option("--finops", replay->finops,
                 "FinOps in the loop: off (ledger only), dry-run or on (idle reclaim); "
                 "docs/FINOPS-EXPERIMENT.md");
  rp->add_option("--idle-jobs", replay->idle_jobs,
                 "FinOps idle model: share of jobs with an idle phase")
      ->check(CLI::Range(0.0, 1.0));
  rp->add_option("--idle-share", replay->idle_share,
                 "FinOps idle model: MIN,MAX length of the phase, share of the run time")
      ->delimiter(',');
  rp->add_option("--idle-tail", replay->idle_tail,
                 "FinOps idle model: probability the phase ends the run (else a pause)")
      ->check(CLI::Range(0.0, 1.0));
  rp->add_option("--idle-seed", replay->idle_seed, "FinOps idle model: seed");
  rp->add_flag("--spot-policy", replay->spot_policy,
               "FinOps: the spot policy decides which jobs may use spot (training and "
               "eval that checkpoint every 30 min or less, 50% per tenant)");
  rp->add_option("--on-demand-price", replay->on_demand_usd,
                 "FinOps: on-demand USD per GPU-hour")
      ->check(CLI::NonNegativeNumber);
  rp->add_option("--spot-price", replay->spot_usd, "FinOps: spot USD per GPU-hour")
      ->check(CLI::NonNegativeNumber);
  rp->add_flag("--fragmentation", replay->fragmentation,
               "Record GPU fragmentation over time (FGD's measure against the trace's "
               "typical jobs; costs a scan of the cluster per sample)");
  rp->add_option("-o,--out", replay->out_dir,
                 "Directory for summary.txt/.json, series.csv and SVG charts");
  rp->add_flag("--json", replay->json, "Print the JSON summary instead of the table");
  rp->add_flag("--progress", replay->progress, "Always draw the progress bar");
  rp->add_flag("--no-progress", replay->no_progress, "Never draw the progress bar");

  auto convert = std::make_shared<convert_cli>();
  auto* cv = cmd->add_subcommand(
      "convert", "Convert a trace (Philly, Alibaba, synthetic) to troupe's trace format");
  convert->src.add_options(cv);
  cv->add_option("-o,--out", convert->out, "Output file (.csv or .jsonl)")->required();

  auto fgd = std::make_shared<fgd_cli>();
  auto* fg = cmd->add_subcommand(
      "fgd",
      "The FGD paper's fragmentation experiment on the Alibaba openb trace: GPU "
      "allocation at 100% arrived demand per policy, 10 seeds (docs/FGD-EXPERIMENT.md)");
  fg->add_option("--nodes", fgd->nodes, "openb node list (CSV)")
      ->required()
      ->check(CLI::ExistingFile);
  fg->add_option("--pods", fgd->pods, "openb pod list (CSV)")
      ->required()
      ->check(CLI::ExistingFile);
  fg->add_option("-p,--policies", fgd->policies,
                 "Policies: random, bestfit, fgd, troupe, ...")
      ->delimiter(',');
  fg->add_option("--seeds", fgd->seeds, "Seeds, e.g. 42-51 or 1,2,3");
  fg->add_option("--ratio", fgd->ratio,
                 "Arrivals until this multiple of the GPUs is asked")
      ->check(CLI::PositiveNumber);
  fg->add_option("--arrivals", fgd->arrivals,
                 "simulator (every pod once, then draws) or with_replacement");
  fg->add_option("-o,--out", fgd->out_dir,
                 "Directory for the tables, CSV and SVG charts");
  fg->add_flag("--json", fgd->json, "Print the JSON summary instead of the tables");
  fg->add_flag("--progress", fgd->progress, "Always draw the progress bar");
  fg->add_flag("--no-progress", fgd->no_progress, "Never draw the progress bar");

  run = [cmd, rp, cv, fg, replay, convert, fgd]() -> int {
    (void)cmd;
    if (rp->parsed()) return replay->run();
    if (cv->parsed()) return convert->run();
    if (fg->parsed()) return fgd->run();
    return 2;
  };
  return cmd;
}

} // namespace troupe::tools
