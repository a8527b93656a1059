// Time from SIGKILL of a worker to its down event on the head, at default
// membership settings, over repeated trials (issue 6's goal: median under
// 3 s). A local cluster of trouped processes on loopback; each trial kills
// one worker, waits for the head's down event (as a subscriber on another
// node sees it), then starts that worker again and waits until it is up.
//
//   bench_cluster_failover [--trials N] [--workers W] [--trouped PATH]
// Prints one line per trial and the median, p90 and p99 in ms.

#include "troupe/actors/local_cluster.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unistd.h>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using namespace troupe::actors;

namespace {

struct event_wait {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<nlohmann::json, std::chrono::steady_clock::time_point>> events;

  std::optional<std::chrono::steady_clock::time_point> wait(const std::string& kind,
                                                            const std::string& node,
                                                            size_t from,
                                                            std::chrono::seconds t) {
    std::unique_lock<std::mutex> g{mu};
    std::optional<std::chrono::steady_clock::time_point> at;
    cv.wait_for(g, t, [&] {
      for (size_t i = from; i < events.size(); ++i)
        if (events[i].first["kind"] == kind && events[i].first["node"] == node) {
          at = events[i].second;
          return true;
        }
      return false;
    });
    return at;
  }
  size_t size() {
    std::lock_guard<std::mutex> g{mu};
    return events.size();
  }
};

double pct(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

} // namespace

int main(int argc, char** argv) {
  int trials = 10;
  int workers = 3;
  std::string trouped;
  CLI::App app{"SIGKILL-to-down time of a local trouped cluster"};
  app.add_option("--trials", trials)->check(CLI::Range(1, 1000));
  app.add_option("--workers", workers)->check(CLI::Range(2, 32));
  app.add_option("--trouped", trouped,
                 "trouped executable (default: next to this one, "
                 "../tools/trouped)");
  CLI11_PARSE(app, argc, argv);
  if (trouped.empty())
    trouped =
        (fs::read_symlink("/proc/self/exe").parent_path() / ".." / "tools" / "trouped")
            .string();
  ::setenv("UCX_NET_DEVICES", "lo", 0);

  local_cluster_options o;
  o.dir = fs::temp_directory_path() / ("troupe-failover-" + std::to_string(::getpid()));
  o.trouped = trouped;
  o.workers = workers;
  o.name_prefix = "fo" + std::to_string(::getpid());
  auto c = start_local_cluster(o);
  if (!c) {
    std::cerr << "bench_cluster_failover: " << c.err().to_string() << '\n';
    return 1;
  }
  int rc = 0;
  {
    troupe::transport::transport_config tc;
    tc.secret = c->secret;
    auto cl = cluster_client::connect("failover-client-" + std::to_string(::getpid()), tc,
                                      c->head().name, c->head().address);
    if (!cl) {
      std::cerr << "bench_cluster_failover: " << cl.err().to_string() << '\n';
      (void)stop_local_cluster(o.dir, 3s);
      return 1;
    }
    auto& n = (*cl)->host;
    auto ev = std::make_shared<event_wait>();
    auto sub = n->spawn("sub", [ev](troupe::actor&) -> troupe::behavior {
      return {[ev](event_atom, const std::string& text) {
                std::lock_guard<std::mutex> g{ev->mu};
                ev->events.emplace_back(nlohmann::json::parse(text),
                                        std::chrono::steady_clock::now());
                ev->cv.notify_all();
              },
              [](const std::string&) {}};
    });
    std::vector<double> ms;
    {
      n->tell((*cl)->membership, subscribe_atom::value, sub.handle());
      std::this_thread::sleep_for(3s); // every worker up
      for (int t = 0; t < trials && rc == 0; ++t) {
        auto& victim = c->nodes[1 + static_cast<size_t>(t % workers)];
        auto from = ev->size();
        auto t0 = std::chrono::steady_clock::now();
        ::kill(victim.pid, SIGKILL);
        auto down = ev->wait("down", victim.name, from, 30s);
        if (!down) {
          std::cerr << "trial " << t << ": " << victim.name << " never declared down\n";
          rc = 1;
          break;
        }
        double d = std::chrono::duration<double, std::milli>(*down - t0).count();
        ms.push_back(d);
        std::cout << "trial " << t << ": " << victim.name << " down after " << d
                  << " ms\n";
        auto from2 = ev->size();
        if (auto r = respawn_local_node(*c, victim.name, trouped, 30s); !r) {
          std::cerr << "respawn: " << r.err().to_string() << '\n';
          rc = 1;
          break;
        }
        if (!ev->wait("up", victim.name, from2, 30s)) {
          std::cerr << victim.name << " did not come back up\n";
          rc = 1;
        }
      }
    }
    if (!ms.empty())
      std::cout << "SIGKILL -> down over " << ms.size() << " trials: median "
                << pct(ms, 0.5) << " ms, p90 " << pct(ms, 0.9) << " ms, p99 "
                << pct(ms, 0.99) << " ms, max " << *std::max_element(ms.begin(), ms.end())
                << " ms\n";
  }
  (void)stop_local_cluster(o.dir, 3s);
  std::error_code ec;
  fs::remove_all(o.dir, ec);
  return rc;
}
