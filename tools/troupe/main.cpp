// troupe: the command-line tool. Thin: parses arguments, loads the config,
// calls into the libraries.

#include "cluster_cmds.hpp"
#include "cluster_sim.hpp"
#include "cost_cmds.hpp"
#include "info.hpp"
#include "jobs_cmds.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/workloads/demo_job.hpp"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"troupe: actor runtime for AI infrastructure"};
  app.set_version_flag("--version", std::string{"troupe "} + TROUPE_VERSION);
  app.require_subcommand(1);

  std::string config_path;
  troupe::workloads::demo_options demo;
  auto* demo_cmd = app.add_subcommand(
      "demo",
      "Run the main job on an embedded single-node runtime: a supervised actor tree "
      "estimating pi, with one injected worker crash");
  demo_cmd->add_option("-c,--config", config_path, "Node config (TOML)");
  demo_cmd->add_option("--workers", demo.workers, "Worker actors")
      ->check(CLI::Range(1, 1024));
  demo_cmd->add_option("--shards", demo.shards, "Work items")
      ->check(CLI::Range(1, 1000000));
  demo_cmd->add_option("--samples", demo.samples_per_shard, "Samples per shard")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  demo_cmd->add_option("--seed", demo.seed, "Seed");
  demo_cmd->add_option("--crash-shard", demo.crash_shard,
                       "Shard whose first attempt crashes its worker (-1: none)");

  std::function<int()> cluster_sim_run;
  auto* cluster_sim_cmd = troupe::tools::add_cluster_sim(app, cluster_sim_run);

  std::function<int()> info_run;
  auto* info_cmd = troupe::tools::add_info(app, info_run);

  std::function<int()> cluster_run;
  troupe::tools::add_cluster_commands(app, cluster_run);
  troupe::tools::add_job_commands(app, cluster_run);
  troupe::tools::add_cost_commands(app, cluster_run);

  CLI11_PARSE(app, argc, argv);

  if (cluster_run) return cluster_run();
  if (cluster_sim_cmd->parsed()) return cluster_sim_run();
  if (info_cmd->parsed()) return info_run();

  if (demo_cmd->parsed()) {
    auto env = troupe::snapshot_environment();
    auto cfg = config_path.empty() ? troupe::load_config_string("", "<defaults>", env)
                                   : troupe::load_config_file(config_path, env);
    if (!cfg.ok()) {
      std::cerr << "troupe: " << cfg.err().message() << '\n';
      return 2;
    }
    auto n = troupe::node::start(*cfg);
    if (!n.ok()) {
      std::cerr << "troupe: " << n.err().to_string() << '\n';
      return 1;
    }
    auto rep = troupe::workloads::run_demo(**n, demo, std::cout);
    (*n)->stop();
    if (!rep.ok()) {
      std::cerr << "troupe demo: " << rep.err().to_string() << '\n';
      return 1;
    }
    if (auto f = (*n)->failures(); !f.empty()) {
      for (auto& s : f)
        std::cerr << "troupe demo: " << s << '\n';
      return 1;
    }
    return 0;
  }
  return 0;
}
