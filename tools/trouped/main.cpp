// trouped: one troupe cluster node (head or worker). All logic lives in
// troupe::actors::daemon; this main parses flags, waits for SIGTERM or
// SIGINT, leaves the cluster gracefully and stops.

#include "troupe/actors/daemon.hpp"

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <pthread.h>

int main(int argc, char** argv) {
  std::string config_path;
  CLI::App app{"trouped: a troupe cluster node (head or worker)"};
  app.add_option("--config", config_path,
                 "node config (TOML): [node], [transport], "
                 "[membership], [resources], [cluster], [api], [finops], "
                 "[telemetry]");
  app.set_version_flag("--version", TROUPE_VERSION);
  CLI11_PARSE(app, argc, argv);

  // Signals are taken by sigwait below: block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto env = troupe::snapshot_environment();
  auto cfg = troupe::actors::load_daemon_config(config_path, env);
  if (!cfg) {
    std::cerr << "trouped: " << cfg.err().message() << '\n';
    return 2;
  }
  auto d = troupe::actors::daemon::start(std::move(*cfg), env);
  if (!d) {
    std::cerr << "trouped: " << d.err().to_string() << '\n';
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  if (auto r = (*d)->leave(std::chrono::seconds{2}); !r)
    std::cerr << "trouped: leaving: " << r.err().to_string() << '\n';
  (*d)->stop();
  return 0;
}
