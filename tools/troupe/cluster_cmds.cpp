// `troupe up`, `troupe down`, `troupe nodes`.

#include "cluster_cmds.hpp"

#include "troupe/actors/daemon.hpp"
#include "troupe/actors/local_cluster.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace troupe::tools {

namespace {

namespace fs = std::filesystem;

struct cluster_options {
  std::string dir = "/tmp/troupe-local";
  int workers = 3;
  int gpus = 8;
  std::string price;
  int spot_workers = 0;
  std::string spot_price;
  std::string head; // NAME@HOST:PORT for `nodes`
  bool json = false;
};

fs::path trouped_path() {
  // trouped is built next to troupe (build/tools/).
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path{"trouped"} : self.parent_path() / "trouped";
}

int run_up(const cluster_options& o) {
  actors::local_cluster_options lo;
  lo.dir = o.dir;
  lo.trouped = trouped_path();
  lo.workers = o.workers;
  lo.gpus_per_node = o.gpus;
  lo.price_per_gpu_hour = o.price;
  lo.spot_workers = std::min(o.spot_workers, o.workers);
  lo.spot_price_per_gpu_hour = o.spot_price.empty() ? o.price : o.spot_price;
  if (auto helper = trouped_path().parent_path() / "troupe-exec"; fs::exists(helper))
    lo.exec_helper = helper;
  auto c = actors::start_local_cluster(lo);
  if (!c) {
    std::cerr << "troupe up: " << c.err().to_string() << '\n';
    return 1;
  }
  std::cout << "local cluster in " << c->dir.string() << ": head " << c->head().name
            << " at " << c->head().address << ", " << o.workers << " worker(s)\n"
            << "  API " << c->api_url << " (admin token in "
            << (c->dir / "admin.token").string() << ")\n  troupe nodes --dir "
            << c->dir.string() << "\n  troupe submit --dir " << c->dir.string()
            << " --name hello --replicas 2 --gpus 1 -- 'echo hi'\n"
            << "  troupe down --dir " << c->dir.string() << '\n';
  return 0;
}

int run_down(const cluster_options& o) {
  auto n = actors::stop_local_cluster(o.dir);
  if (!n) {
    std::cerr << "troupe down: " << n.err().to_string() << '\n';
    return 1;
  }
  std::cout << "stopped " << *n << " process(es)\n";
  return 0;
}

int run_nodes(const cluster_options& o) {
  std::string head = o.head;
  auto env = snapshot_environment();
  auto ncfg_loaded = load_config_string("", "<defaults>", env);
  auto tset = transport::transport_schema().load_string("", "<defaults>", env);
  if (!ncfg_loaded || !tset) {
    std::cerr << "troupe nodes: "
              << (!ncfg_loaded ? ncfg_loaded.err().message() : tset.err().message())
              << '\n';
    return 2;
  }
  auto& tc = tset->transport;
  if (head.empty()) {
    auto c = actors::read_local_cluster(o.dir);
    if (!c) {
      std::cerr << "troupe nodes: " << c.err().to_string()
                << " (or give --head NAME@HOST:PORT)\n";
      return 1;
    }
    head = c->head().name + "@" + c->head().address;
    if (tc.secret.empty() && tc.secret_file.empty()) tc.secret = c->secret;
  }
  auto h = actors::parse_head(head);
  if (!h) {
    std::cerr << "troupe nodes: --head: " << h.err().message() << '\n';
    return 2;
  }
  std::string members;
  {
    auto c = actors::cluster_client::connect("troupe-cli-" + std::to_string(::getpid()),
                                             tc, h->first, h->second, *ncfg_loaded);
    if (!c) {
      std::cerr << "troupe nodes: " << c.err().to_string() << '\n';
      return 1;
    }
    auto r = (*c)->host->request<std::string>((*c)->membership, std::chrono::seconds{5},
                                              actors::members_atom::value);
    if (!r) {
      std::cerr << "troupe nodes: " << r.err().to_string() << '\n';
      return 1;
    }
    members = *r;
  }
  auto j = nlohmann::json::parse(members, nullptr, false);
  if (o.json) {
    std::cout << j.dump(2) << '\n';
    return 0;
  }
  std::cout << std::left << std::setw(28) << "NODE" << std::setw(10) << "STATE"
            << std::setw(24) << "ADDRESS" << std::setw(6) << "GPUS"
            << "FLAGS\n";
  for (const auto& m : j) {
    std::string flags;
    if (m.value("cordoned", false)) flags += "cordoned ";
    if (m.value("draining", false)) flags += "draining ";
    if (m.contains("reason")) flags += m["reason"].get<std::string>();
    std::size_t gpus = m.contains("inventory") && m["inventory"].contains("gpus")
                           ? m["inventory"]["gpus"].size()
                           : 0;
    std::cout << std::left << std::setw(28) << m.value("node", "") << std::setw(10)
              << m.value("state", "") << std::setw(24) << m.value("address", "")
              << std::setw(6) << gpus << flags << '\n';
  }
  return 0;
}

} // namespace

void add_cluster_commands(CLI::App& app, std::function<int()>& run) {
  auto o = std::make_shared<cluster_options>();
  auto* up = app.add_subcommand(
      "up",
      "Start a local cluster: a head and N workers as trouped processes on loopback "
      "(simulated GPUs where there are none)");
  up->add_option("--dir", o->dir, "State directory (configs, logs, pids, secret)");
  up->add_option("--workers", o->workers, "Worker nodes")->check(CLI::Range(0, 64));
  up->add_option("--gpus", o->gpus, "Simulated GPUs per node where NVML finds none")
      ->check(CLI::Range(0, 256));
  up->add_option("--price", o->price,
                 "Price of a GPU-hour in USD on every node (\"2.50\"), for showback");
  up->add_option("--spot-workers", o->spot_workers,
                 "The last N workers are spot capacity")
      ->check(CLI::Range(0, 64));
  up->add_option("--spot-price", o->spot_price,
                 "Price of a spot GPU-hour in USD (default: --price)");
  up->callback([&run, o] { run = [o] { return run_up(*o); }; });
  auto* down =
      app.add_subcommand("down", "Stop the local cluster started by `troupe up`");
  down->add_option("--dir", o->dir, "State directory");
  down->callback([&run, o] { run = [o] { return run_down(*o); }; });
  auto* nodes = app.add_subcommand("nodes", "List the cluster's members (from the head)");
  nodes->add_option("--dir", o->dir, "State directory of a local cluster");
  nodes->add_option("--head", o->head,
                    "The head as NAME@HOST:PORT (needs the cluster secret in "
                    "TROUPE_TRANSPORT_SECRET or TROUPE_TRANSPORT_SECRET_FILE)");
  nodes->add_flag("--json", o->json, "Print JSON");
  nodes->callback([&run, o] { run = [o] { return run_nodes(*o); }; });
}

} // namespace troupe::tools
