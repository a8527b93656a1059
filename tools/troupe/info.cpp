// `troupe info`: UCX version, GPU direct support, and the UCX lanes per
// peer. Without --connect it probes loopback: a second in-process node
// connects to the first, so the lanes two troupe processes on this machine
// would use are shown.

#include "info.hpp"

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/auth.hpp"
#include "troupe/transport/device_buffer.hpp"
#include "troupe/transport/fabric.hpp"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>
#include <vector>

namespace troupe::tools {

namespace {

struct info_options {
  std::string config_path;
  std::vector<std::string> connect;
  bool json = false;
};

int run_info(const info_options& o) {
  auto env = snapshot_environment();
  const auto node_schema = node_config_schema(); // the binder borrows it
  node_config ncfg = node_schema.defaults();
  transport::transport_settings tset = transport::transport_schema().defaults();
  config_binder binder;
  binder.bind(node_schema, ncfg).bind(transport::transport_schema(), tset);
  auto loaded = o.config_path.empty() ? binder.load_string("", "<defaults>", env)
                                      : binder.load_file(o.config_path, env);
  if (!loaded) {
    std::cerr << "troupe info: " << loaded.err().message() << '\n';
    return 2;
  }
  bool probe = o.connect.empty();
  if (probe && tset.transport.secret.empty() && tset.transport.secret_file.empty())
    tset.transport.secret =
        transport::random_hex(24); // loopback probe: both ends are ours
  ncfg.metrics.enabled = false;
  if (ncfg.log.level < log_level::warn) ncfg.log.level = log_level::warn;
  ncfg.node.name = "troupe-info-" + std::to_string(::getpid());
  auto n = node::start(ncfg);
  if (!n) {
    std::cerr << "troupe info: " << n.err().to_string() << '\n';
    return 1;
  }
  auto f = transport::fabric::start(**n, tset.transport);
  if (!f) {
    std::cerr << "troupe info: " << f.err().to_string() << '\n';
    return 1;
  }
  std::unique_ptr<node> n2;
  std::unique_ptr<transport::fabric> f2;
  std::vector<transport::peer_info> peers;
  std::vector<std::string> errors;
  if (probe) {
    node_config c2 = ncfg;
    c2.node.name += "-probe";
    auto m = node::start(c2);
    if (m) n2 = std::move(*m);
    auto t2 = tset.transport;
    t2.listen_enabled = false;
    if (n2) {
      auto g = transport::fabric::start(*n2, t2);
      if (g)
        f2 = std::move(*g);
      else
        errors.push_back(g.err().to_string());
    }
    if (f2) {
      auto p = f2->connect((*f)->listen_address());
      if (p) {
        p->address = "loopback probe";
        peers.push_back(*p);
      } else {
        errors.push_back(p.err().to_string());
      }
    }
  } else {
    for (const auto& addr : o.connect) {
      auto p = (*f)->connect(addr);
      if (p)
        peers.push_back(*p);
      else
        errors.push_back(addr + ": " + p.err().to_string());
    }
  }
  bool gpu = (*f)->gpu_direct();
  if (o.json) {
    nlohmann::json j;
    j["ucx_version"] = transport::fabric::ucx_version();
    j["gpu_direct"] = gpu;
    j["cuda_built"] = transport::cuda_built();
    j["cuda_devices"] = transport::cuda_device_count();
    j["gpu_memory_path"] = gpu ? "direct" : "staged";
    j["listen"] = (*f)->listen_address();
    j["peers"] = nlohmann::json::array();
    for (const auto& p : peers)
      j["peers"].push_back({{"node", p.node_name},
                            {"address", p.address},
                            {"protocol", p.protocol},
                            {"transports", p.transports}});
    j["errors"] = errors;
    std::cout << j.dump(2) << '\n';
  } else {
    std::cout << "UCX " << transport::fabric::ucx_version() << '\n'
              << "GPU direct (UCX CUDA memory support): "
              << (gpu ? "yes" : "no (this UCX build cannot access GPU memory)") << '\n'
              << "GPU memory in messages: "
              << (gpu ? "direct" : "staged through pinned host memory") << "; CUDA "
              << (transport::cuda_built() ? "built" : "not built") << ", "
              << transport::cuda_device_count() << " device(s)\n"
              << "listening at " << (*f)->listen_address() << '\n';
    for (const auto& p : peers) {
      std::cout << "peer " << p.node_name << " (" << p.address << ", protocol "
                << p.protocol << "): ";
      for (size_t i = 0; i < p.transports.size(); ++i)
        std::cout << (i ? ", " : "") << p.transports[i];
      std::cout << '\n';
    }
    for (const auto& e : errors)
      std::cout << "error: " << e << '\n';
  }
  f2.reset();
  f->reset();
  if (n2) n2->stop();
  (*n)->stop();
  return errors.empty() ? 0 : 1;
}

} // namespace

CLI::App* add_info(CLI::App& app, std::function<int()>& run) {
  auto o = std::make_shared<info_options>();
  auto* cmd = app.add_subcommand(
      "info", "Show the transport: UCX version, GPU direct support, and the UCX lanes "
              "chosen per peer (a loopback probe when no --connect is given)");
  cmd->add_option("-c,--config", o->config_path, "Node config (TOML) with [transport]");
  cmd->add_option("--connect", o->connect,
                  "Peer address host:port to connect to (repeatable; needs the cluster "
                  "secret in [transport] or TROUPE_TRANSPORT_SECRET)");
  cmd->add_flag("--json", o->json, "Print JSON");
  run = [o] { return run_info(*o); };
  return cmd;
}

} // namespace troupe::tools
