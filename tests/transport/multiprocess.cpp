// Two processes on loopback: this test and tests/transport/peer_main.cpp.
// Run twice by ctest: transport.multiprocess_tcp (UCX_TLS=tcp for both) and
// transport.multiprocess_shm (UCX's choice, which must be shared memory).
// Each case asserts the transport actually chosen.

#include "checksum.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using troupe::transport::fabric;

extern char** environ;

namespace {

using add_atom = caf::atom_constant<caf::atom("add")>;
using get_atom = caf::atom_constant<caf::atom("get")>;

std::string transports() {
  // Loopback only: UCX would also open lanes on the other interfaces.
  ::setenv("UCX_NET_DEVICES", "lo", 0);
  const char* t = std::getenv("TROUPE_TEST_UCX_TLS");
  return t != nullptr ? t : "";
}

/// The peer process: spawned with pipes to its stdin and stdout, killed
/// (by pid) when the test ends.
struct peer_process {
  pid_t pid = -1;
  int in = -1;         // its stdin
  FILE* out = nullptr; // its stdout
  std::string address;

  explicit peer_process(const std::string& secret) {
    int to[2];
    int from[2];
    REQUIRE(::pipe(to) == 0);
    REQUIRE(::pipe(from) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from[1], 1);
    posix_spawn_file_actions_addclose(&fa, to[1]);
    posix_spawn_file_actions_addclose(&fa, from[0]);
    std::string name =
        "peer-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++);
    std::vector<std::string> args{TROUPE_TEST_PEER, "--secret", secret, "--name", name};
    if (!transports().empty()) {
      args.push_back("--transports");
      args.push_back(transports());
    }
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, TROUPE_TEST_PEER, &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(to[0]);
    ::close(from[1]);
    in = to[1];
    out = ::fdopen(from[0], "r");
    char line[512] = {};
    std::string l;
    while (l.rfind("ready ", 0) != 0) {
      REQUIRE(std::fgets(line, sizeof line, out) != nullptr);
      l = line;
    }
    address = l.substr(6);
    while (!address.empty() && (address.back() == '\n' || address.back() == '\r'))
      address.pop_back();
  }
  /// Asks for its counters and returns the line it prints.
  std::string stats() {
    REQUIRE(::write(in, "stats\n", 6) == 6);
    char buf[512] = {};
    std::string l;
    while (l.rfind("stats ", 0) != 0) {
      REQUIRE(std::fgets(buf, sizeof buf, out) != nullptr);
      l = buf;
    }
    return l;
  }
  /// Closes its stdin and returns what it printed before exiting.
  std::string finish() {
    if (in >= 0) ::close(in);
    in = -1;
    std::string all;
    char buf[512];
    while (std::fgets(buf, sizeof buf, out) != nullptr)
      all += buf;
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return all;
  }
  void kill9() {
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
  }
  ~peer_process() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    if (in >= 0) ::close(in);
    if (out != nullptr) std::fclose(out);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

struct client {
  std::unique_ptr<troupe::node> node;
  std::unique_ptr<fabric> fab;
  explicit client(const std::string& secret) {
    auto cfg = troupe::default_config();
    cfg.node.name = "client-" + std::to_string(::getpid());
    cfg.scheduler.threads = 2;
    cfg.metrics.enabled = false;
    cfg.log.level = std::getenv("TROUPE_TEST_LOG") ? troupe::log_level::info
                                                   : troupe::log_level::warn;
    auto n = troupe::node::start(cfg);
    REQUIRE(n.ok());
    node = std::move(*n);
    troupe::transport::transport_config tc;
    tc.listen_enabled = false;
    tc.secret = secret;
    tc.transports = transports();
    tc.busy_poll = std::getenv("TROUPE_TEST_BUSY_POLL") != nullptr;
    auto f = fabric::start(*node, tc);
    REQUIRE_MESSAGE(f.ok(), f.err().to_string());
    fab = std::move(*f);
  }
  ~client() {
    fab.reset();
    node->stop();
  }
};

const std::string secret = "multiprocess test secret 0123456789";

/// Checks the lanes UCX chose for `peer`.
void check_lanes(const troupe::transport::peer_info& peer) {
  std::string lanes;
  for (const auto& t : peer.transports)
    lanes += t + " ";
  MESSAGE("UCX lanes to " << peer.node_name << ": " << lanes);
  REQUIRE_FALSE(peer.transports.empty());
  if (transports() == "tcp") {
    for (const auto& t : peer.transports)
      CHECK_MESSAGE(t.rfind("tcp/", 0) == 0, t);
  } else {
    bool shm = false;
    for (const auto& t : peer.transports)
      shm = shm || t.rfind("sysv/", 0) == 0 || t.rfind("posix/", 0) == 0 ||
            t.rfind("cma/", 0) == 0;
    CHECK_MESSAGE(shm, "expected a shared-memory lane, got " << lanes);
  }
}

} // namespace

TEST_CASE("1,000,000 messages: none lost, none reordered; 1 GiB payload checksum") {
  peer_process server{secret};
  client c{secret};
  auto peer = c.fab->connect(server.address);
  REQUIRE_MESSAGE(peer.ok(), peer.err().to_string());
  check_lanes(*peer);
  auto sink = c.fab->lookup(peer->node_name, "sink", 10s);
  REQUIRE_MESSAGE(sink.ok(), sink.err().to_string());

  // try_tell says overloaded when the peer's queue is full: back off.
  auto t0 = std::chrono::steady_clock::now();
  constexpr int64_t total = 1'000'000;
  uint64_t backoffs = 0;
  for (int64_t i = 0; i < total; ++i) {
    for (;;) {
      auto r = c.fab->try_tell(*sink, caf::make_message(add_atom::value, i));
      if (r) break;
      REQUIRE_MESSAGE(r.err().is(troupe::runtime::errc::overloaded), r.err().to_string());
      ++backoffs;
      std::this_thread::sleep_for(1ms);
    }
  }
  auto counts = c.node->request_message(*sink, 120s, caf::make_message(get_atom::value));
  REQUIRE_MESSAGE(counts.ok(), counts.err().to_string());
  REQUIRE(counts->size() == 2);
  CHECK(counts->get_as<int64_t>(0) == total);
  CHECK(counts->get_as<int64_t>(1) == 0);
  auto t1 = std::chrono::steady_clock::now();
  MESSAGE("sent " << total << " messages, " << backoffs << " back-offs, "
                  << std::chrono::duration<double>(t1 - t0).count() << " s");

  std::vector<char> big(size_t{1} << 30);
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>(i / 4096 * 131 + 7);
  big.back() = 42;
  uint64_t expect = troupe::test::checksum(big);
  auto t2 = std::chrono::steady_clock::now();
  auto sum = c.node->request<uint64_t>(*sink, 120s, std::move(big));
  MESSAGE("1 GiB: fill and checksum "
          << std::chrono::duration<double>(t2 - t1).count() << " s, request "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count()
          << " s");
  REQUIRE_MESSAGE(sum.ok(), sum.err().to_string());
  CHECK(*sum == expect);
  MESSAGE("1 GiB request: "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count()
          << " s");
  auto out = server.finish();
  CHECK(out.find("dropped_malformed=0") != std::string::npos);
}

TEST_CASE("a peer killed with SIGKILL mid-transfer: the sender gets an error, no hang") {
  peer_process server{secret};
  client c{secret};
  auto peer = c.fab->connect(server.address);
  REQUIRE_MESSAGE(peer.ok(), peer.err().to_string());
  auto sink = c.fab->lookup(peer->node_name, "sink", 10s);
  REQUIRE(sink.ok());
  std::thread killer{[&] {
    std::this_thread::sleep_for(200ms);
    server.kill9();
  }};
  // Requests with large payloads keep the link busy while the peer dies.
  troupe::error last;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    std::vector<char> chunk(64 << 20, static_cast<char>(i));
    auto r = c.node->request<uint64_t>(*sink, 60s, std::move(chunk));
    if (!r) {
      last = r.err();
      break;
    }
  }
  killer.join();
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(static_cast<bool>(last));
  CHECK_MESSAGE(last.is(troupe::runtime::errc::disconnected), last.to_string());
  CHECK(took < 50s);
  // The client node still works after losing its peer.
  auto again = c.node->request<uint64_t>(*sink, 5s, std::vector<char>(10));
  REQUIRE_FALSE(again.ok());
  CHECK(again.err().is(troupe::runtime::errc::disconnected));
}

TEST_CASE("a client with the wrong secret is rejected before reaching any actor") {
  peer_process server{secret};
  client c{"not the cluster secret at all"};
  auto peer = c.fab->connect(server.address);
  REQUIRE_FALSE(peer.ok());
  CHECK_MESSAGE(peer.err().is(troupe::transport::errc::auth_failed),
                peer.err().to_string());
  // The server counts the attempt once the client's rejection reached it
  // (connect() returns as soon as the client has decided): ask until then.
  std::string line;
  for (int i = 0; i < 200; ++i) {
    line = server.stats();
    if (line.find("auth_failures=0") == std::string::npos) break;
    std::this_thread::sleep_for(50ms);
  }
  MESSAGE(line);
  CHECK(line.find("auth_failures=1") != std::string::npos);
  CHECK(line.find("dropped_unauthenticated=0") != std::string::npos);
}
