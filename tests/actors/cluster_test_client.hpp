#pragma once
// What the multi-process cluster tests share: a client node connected to a
// local cluster's head (its membership actor and job manager), waits on
// members and jobs, and a guard that stops the cluster by pid whatever the
// test did.

#include "troupe/actors/job_manager.hpp"
#include "troupe/actors/local_cluster.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace troupe::actors::testing {

using namespace std::chrono_literals;

/// Stops the cluster (SIGCONT first, for stopped nodes) and removes its
/// directory (kept when TROUPE_TEST_KEEP is set).
struct cluster_guard {
  std::filesystem::path dir;
  std::vector<pid_t> stopped;
  ~cluster_guard() {
    for (auto p : stopped)
      ::kill(p, SIGCONT);
    (void)stop_local_cluster(dir, 3s);
    // Replica processes of killed nodes die with their troupe-exec parent
    // (PR_SET_PDEATHSIG); give them a moment before removing their files.
    std::this_thread::sleep_for(200ms);
    std::error_code ec;
    if (std::getenv("TROUPE_TEST_KEEP") == nullptr) std::filesystem::remove_all(dir, ec);
  }
};

/// Wall-clock ms since the Unix epoch (the FinOps messages' time base).
inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline bool alive(int pid) {
  return pid > 0 && ::kill(pid, 0) == 0;
}

inline bool all_running(const nlohmann::json& j) {
  for (auto& r : j["replicas"])
    if (r["state"] != "running") return false;
  return true;
}

/// A node of the test's own connected to the head; `connect()` again after
/// a head restart.
struct cluster_test_client {
  const local_cluster* lc = nullptr;
  std::string prefix;
  bool need_jobs = true;
  std::unique_ptr<cluster_client> c;
  int connects = 0;

  cluster_test_client(const local_cluster& cluster, std::string name_prefix,
                      bool jobs = true)
      : lc(&cluster), prefix(std::move(name_prefix)), need_jobs(jobs) {
    connect();
  }
  void connect() {
    c.reset();
    transport::transport_config tc;
    tc.secret = lc->secret;
    auto base = default_config();
    base.log.level = log_level::off;
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto cl = cluster_client::connect(prefix + "-" + std::to_string(::getpid()) + "-" +
                                            std::to_string(connects++),
                                        tc, lc->head().name, lc->head().address, base);
      if (cl.ok() && (!need_jobs || (*cl)->jobs)) {
        c = std::move(*cl);
        return;
      }
      std::this_thread::sleep_for(200ms);
    }
    FAIL("cannot reach the head's membership actor and job manager");
  }
  template <class... Ts> nlohmann::json call(Ts&&... xs) {
    auto r = c->host->request<std::string>(c->jobs, 10s, std::forward<Ts>(xs)...);
    if (!r.ok()) FAIL(r.err().to_string());
    return nlohmann::json::parse(*r);
  }
  nlohmann::json job(const std::string& id) {
    return call(jm_get_atom::value, std::string{}, true, id)["job"];
  }
  nlohmann::json members() {
    auto r = c->host->request<std::string>(c->membership, 5s, members_atom::value);
    if (!r.ok()) FAIL(r.err().to_string());
    return nlohmann::json::parse(*r);
  }
  /// The member `name` as the head lists it (null if it has none).
  nlohmann::json member(const std::string& name) {
    for (auto& m : members())
      if (m["node"] == name) return m;
    return nullptr;
  }
  /// Waits until `pred(member)` holds for `name`; returns the member and
  /// how long it took (-1 ms on timeout).
  template <class P>
  std::pair<nlohmann::json, std::chrono::milliseconds>
  wait_member(const std::string& name, P pred, std::chrono::seconds timeout) {
    auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < timeout) {
      auto m = member(name);
      if (!m.is_null() && pred(m))
        return {m, std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - t0)};
      std::this_thread::sleep_for(50ms);
    }
    return {nlohmann::json{}, std::chrono::milliseconds{-1}};
  }
  std::pair<nlohmann::json, std::chrono::milliseconds>
  wait_state(const std::string& name, const std::string& state,
             std::chrono::seconds timeout) {
    return wait_member(
        name, [&](const nlohmann::json& m) { return m["state"] == state; }, timeout);
  }
  /// Waits until `pred(job doc)` holds.
  template <class P>
  nlohmann::json wait_job(const std::string& id, P pred, std::chrono::seconds timeout,
                          const char* what) {
    auto t0 = std::chrono::steady_clock::now();
    nlohmann::json last;
    while (std::chrono::steady_clock::now() - t0 < timeout) {
      last = job(id);
      if (pred(last)) return last;
      std::this_thread::sleep_for(100ms);
    }
    FAIL_CHECK("timed out waiting for " << std::string{what}
                                        << "; last: " << last.dump());
    return last;
  }
};

} // namespace troupe::actors::testing
