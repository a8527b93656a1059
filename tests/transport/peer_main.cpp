// The other process of tests/transport/multiprocess.cpp: a troupe node with
// a fabric and a "sink" actor. Prints "ready <host:port>" once listening,
// serves until its stdin closes, then prints its fabric counters.
//
//   transport_test_peer --secret S [--transports tcp] [--name N]

#include "checksum.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <tuple>
#include <unistd.h>

namespace {

using add_atom = caf::atom_constant<caf::atom("add")>;
using get_atom = caf::atom_constant<caf::atom("get")>;

} // namespace

int main(int argc, char** argv) {
  std::string secret;
  std::string transports;
  std::string name = "peer-" + std::to_string(::getpid());
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--secret")
      secret = argv[i + 1];
    else if (k == "--transports")
      transports = argv[i + 1];
    else if (k == "--name")
      name = argv[i + 1];
  }
  auto cfg = troupe::default_config();
  cfg.node.name = name;
  cfg.scheduler.threads = 2;
  cfg.metrics.enabled = false;
  cfg.log.level = troupe::log_level::warn;
  auto n = troupe::node::start(cfg);
  if (!n) {
    std::fprintf(stderr, "peer: %s\n", n.err().to_string().c_str());
    return 2;
  }
  troupe::transport::transport_config tc;
  tc.listen = "127.0.0.1:0";
  tc.secret = secret;
  tc.transports = transports;
  tc.busy_poll = std::getenv("TROUPE_TEST_BUSY_POLL") != nullptr;
  auto f = troupe::transport::fabric::start(**n, tc);
  if (!f) {
    std::fprintf(stderr, "peer: %s\n", f.err().to_string().c_str());
    return 2;
  }
  struct sink_state {
    int64_t count = 0;
    int64_t next = 0;
    int64_t disorder = 0;
  };
  auto sink = (*n)->spawn("sink", [](troupe::actor&) -> troupe::behavior {
    auto st = std::make_shared<sink_state>();
    return {
        [st](add_atom, int64_t seq) {
          if (seq != st->next) ++st->disorder;
          st->next = seq + 1;
          ++st->count;
        },
        [st](get_atom) { return std::make_tuple(st->count, st->disorder); },
        [](const std::vector<char>& v) { return troupe::test::checksum(v); },
    };
  });
  if (auto r = (*n)->register_name("sink", sink); !r) return 2;
  std::printf("ready %s\n", (*f)->listen_address().c_str());
  std::fflush(stdout);
  auto print_stats = [&] {
    auto s = (*f)->stats();
    std::printf(
        "stats auth_failures=%llu dropped_unauthenticated=%llu dropped_malformed=%llu\n",
        static_cast<unsigned long long>(s.auth_failures),
        static_cast<unsigned long long>(s.dropped_unauthenticated),
        static_cast<unsigned long long>(s.dropped_malformed));
    std::fflush(stdout);
  };
  // "stats" on stdin prints the counters now; end of input ends the peer.
  std::string line;
  while (std::getline(std::cin, line))
    if (line == "stats") print_stats();
  print_stats();
  f->reset();
  (*n)->stop();
  return 0;
}
