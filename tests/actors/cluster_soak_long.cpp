// Soak (ctest label `long`): a healthy local cluster (a head and 3 trouped
// workers, default membership settings) while every core is kept busy by
// spinning processes, for TROUPE_SOAK_SECONDS (default 600): no node may
// ever be suspected down. Issue 6: "zero false downs in a 10-minute soak of
// a healthy cluster whose cores are all kept busy by job processes".

#include "troupe/actors/local_cluster.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <csignal>
#include <doctest/doctest.h>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;
using namespace troupe::actors;
namespace fs = std::filesystem;

TEST_CASE("a busy healthy cluster has no false downs") {
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  int seconds = 600;
  if (const char* s = std::getenv("TROUPE_SOAK_SECONDS")) seconds = std::atoi(s);
  local_cluster_options o;
  o.dir = fs::temp_directory_path() / ("troupe-soak-" + std::to_string(::getpid()));
  o.trouped = TROUPE_TROUPED;
  o.workers = 3;
  o.name_prefix = "soak" + std::to_string(::getpid());
  auto c = start_local_cluster(o);
  REQUIRE_MESSAGE(c.ok(), c.err().to_string());

  // One spinning shell per core (the "job processes").
  std::vector<pid_t> spinners;
  for (unsigned i = 0; i < std::max(1u, std::thread::hardware_concurrency()); ++i) {
    std::string sh = "/bin/sh", flag = "-c", loop = "while :; do :; done";
    char* argv[] = {sh.data(), flag.data(), loop.data(), nullptr};
    pid_t p = 0;
    REQUIRE(::posix_spawn(&p, "/bin/sh", nullptr, nullptr, argv, environ) == 0);
    spinners.push_back(p);
  }

  std::vector<nlohmann::json> bad;
  std::mutex mu;
  {
    troupe::transport::transport_config tc;
    tc.secret = c->secret;
    auto base = troupe::default_config();
    base.log.level = troupe::log_level::off;
    auto cl = cluster_client::connect("soak-client-" + std::to_string(::getpid()), tc,
                                      c->head().name, c->head().address, base);
    REQUIRE_MESSAGE(cl.ok(), cl.err().to_string());
    auto& n = (*cl)->host;
    const auto& m = (*cl)->membership;
    auto sub = n->spawn("soak-sub", [&](troupe::actor&) -> troupe::behavior {
      return {[&](event_atom, const std::string& text) {
                auto e = nlohmann::json::parse(text);
                if (e["kind"] == "suspect" || e["kind"] == "down") {
                  std::lock_guard<std::mutex> g{mu};
                  bad.push_back(e);
                }
              },
              [](const std::string&) {}};
    });
    n->tell(m, subscribe_atom::value, sub.handle());
    std::this_thread::sleep_for(std::chrono::seconds{seconds});
    auto members = n->request<std::string>(m, 10s, members_atom::value);
    REQUIRE(members.ok());
    for (const auto& x : nlohmann::json::parse(*members))
      CHECK_MESSAGE(x["state"] == "up", x.dump());
  }
  for (auto p : spinners) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  (void)stop_local_cluster(o.dir, 3s);
  std::error_code ec;
  fs::remove_all(o.dir, ec);
  std::lock_guard<std::mutex> g{mu};
  for (const auto& e : bad)
    MESSAGE("unexpected: " << e.dump());
  CHECK(bad.empty());
  MESSAGE(seconds << " s with " << spinners.size() << " spinning processes, "
                  << bad.size() << " suspect/down events");
}
