// Issue 6's cluster figures on a local cluster of trouped processes on
// loopback: the time for W workers to join (start of the head to every
// node up, as the head's member list says), and for a job of R replicas,
// one simulated GPU each, from submit to every replica running, over
// repeated trials (each trial cancels its job and waits until its
// processes are gone).
//
//   bench_cluster_jobs [--workers 16] [--gpus 4] [--replicas 64] [--trials 5]
//                      [--trouped PATH]
// Prints the join time, one line per trial and the median and max.

#include "troupe/actors/job_manager.hpp"
#include "troupe/actors/local_cluster.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using namespace troupe::actors;
using json = nlohmann::json;
using clk = std::chrono::steady_clock;

namespace {

double ms(clk::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

} // namespace

int main(int argc, char** argv) {
  int workers = 16, gpus = 4, replicas = 64, trials = 5;
  std::string trouped;
  CLI::App app{"Join time and submit-to-running time on a local trouped cluster"};
  app.add_option("--workers", workers)->check(CLI::Range(1, 64));
  app.add_option("--gpus", gpus, "Simulated GPUs per node")->check(CLI::Range(1, 64));
  app.add_option("--replicas", replicas)->check(CLI::Range(1, 4096));
  app.add_option("--trials", trials)->check(CLI::Range(1, 100));
  app.add_option("--trouped", trouped, "trouped (default: ../tools/trouped)");
  CLI11_PARSE(app, argc, argv);
  auto tools = fs::read_symlink("/proc/self/exe").parent_path() / ".." / "tools";
  if (trouped.empty()) trouped = (tools / "trouped").string();
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  ::setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 0);

  local_cluster_options o;
  o.dir = fs::temp_directory_path() / ("troupe-bench-jobs-" + std::to_string(::getpid()));
  o.trouped = trouped;
  o.workers = workers;
  o.gpus_per_node = gpus;
  o.name_prefix = "b" + std::to_string(::getpid());
  o.ready_timeout = 120s;
  if (fs::exists(tools / "troupe-exec")) o.exec_helper = tools / "troupe-exec";
  struct guard {
    fs::path dir;
    ~guard() {
      (void)stop_local_cluster(dir, 5s);
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } g{o.dir};

  auto t0 = clk::now();
  auto c = start_local_cluster(o);
  if (!c) {
    std::cerr << "bench_cluster_jobs: " << c.err().to_string() << '\n';
    return 1;
  }
  troupe::transport::transport_config tc;
  tc.secret = c->secret;
  auto base = troupe::default_config();
  base.log.level = troupe::log_level::off;
  auto cl = cluster_client::connect("bench-jobs-" + std::to_string(::getpid()), tc,
                                    c->head().name, c->head().address, base);
  if (!cl || !(*cl)->jobs) {
    std::cerr << "bench_cluster_jobs: cannot reach the head's job manager\n";
    return 1;
  }
  auto& client = **cl;
  auto ask = [&](auto&&... xs) {
    auto r = client.host->request<std::string>(client.jobs, 30s, xs...);
    return r ? json::parse(*r) : json{{"error", r.err().to_string()}};
  };
  // Join: every node up.
  for (;;) {
    auto r =
        client.host->request<std::string>(client.membership, 5s, members_atom::value);
    int up = 0;
    if (r)
      for (auto& m : json::parse(*r))
        up += m["state"] == "up" ? 1 : 0;
    if (up == workers + 1) break;
    if (clk::now() - t0 > 120s) {
      std::cerr << "bench_cluster_jobs: only " << up << " nodes up after 120 s\n";
      return 1;
    }
    std::this_thread::sleep_for(5ms);
  }
  auto join = clk::now() - t0;
  std::cout << "join: " << workers << " workers + head up " << ms(join)
            << " ms after the head was started\n";

  std::vector<double> times;
  for (int t = 0; t < trials; ++t) {
    json spec = {{"name", "bench-" + std::to_string(t)},
                 {"command", {"sleep", "600"}},
                 {"replicas", replicas},
                 {"resources", {{"gpus", 1}}}};
    auto s0 = clk::now();
    auto sub = ask(jm_submit_atom::value, std::string{"bench"}, spec.dump());
    if (!sub.contains("job")) {
      std::cerr << "bench_cluster_jobs: submit failed: " << sub.dump() << '\n';
      return 1;
    }
    auto id = sub["job"]["id"].get<std::string>();
    json doc;
    for (;;) {
      doc = ask(jm_get_atom::value, std::string{}, true, id)["job"];
      int running = 0;
      for (auto& r : doc["replicas"])
        running += r["state"] == "running" ? 1 : 0;
      if (running == replicas) break;
      if (clk::now() - s0 > 120s) {
        std::cerr << "bench_cluster_jobs: " << running << "/" << replicas
                  << " running after 120 s\n";
        return 1;
      }
      std::this_thread::sleep_for(2ms);
    }
    auto took = ms(clk::now() - s0);
    times.push_back(took);
    std::cout << "trial " << t << ": " << replicas << " replicas running " << took
              << " ms after submit\n";
    ask(jm_cancel_atom::value, std::string{}, true, id);
    for (int i = 0; i < 200; ++i) { // processes gone before the next trial
      bool any = false;
      for (auto& r : doc["replicas"])
        any |= ::kill(r["pid"].get<int>(), 0) == 0;
      if (!any) break;
      std::this_thread::sleep_for(50ms);
    }
  }
  std::sort(times.begin(), times.end());
  std::cout << "submit to all running: median " << times[times.size() / 2] << " ms, max "
            << times.back() << " ms over " << times.size() << " trials\n";
  client.host->stop();
  return 0;
}
