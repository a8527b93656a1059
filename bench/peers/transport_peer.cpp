// One side of a troupe transport benchmark: two troupe nodes in two
// processes, connected by the UCX fabric (transport/fabric.hpp).
//
// The counterpart of bench_caf_basp_peer, with the same CLI and output
// contract, for bench/peers/run_side_by_side.sh (docs/PERFORMANCE.md,
// "Transport: peers (issue 5)").
//
//   bench_transport_peer --role server --port P [--transport tcp|shm] [--busy-poll]
//     A node whose fabric listens on 127.0.0.1:P (P = 0: the kernel picks)
//     with an echo/sink actor registered as "bench"; prints "ready <port>"
//     and runs until stdin closes, stdin says "quit", or a client sends a
//     quit request (--test quit).
//   bench_transport_peer --role client --port P --test rtt|rate|bw|quit
//                        --size BYTES --count N [--transport tcp|shm] [--busy-poll]
//     Connects, looks the echo actor up and prints one JSON line on stdout:
//       rtt:  N request/response round trips with a BYTES payload each way,
//             issued from inside a troupe actor (request -> then -> next
//             request); median_us and p99_us. For reference also the median
//             of node.request (a blocking call that makes a scoped actor per
//             call) as median_us_blocking.
//       rate: N one-way messages of BYTES sent by an actor (in chunks of
//             1000 tells per message to itself, so its mailbox is served),
//             then a request the server answers after them; msgs_per_s.
//       bw:   the same for large payloads; gib_per_s.
//
// The fabric refuses one-way sends with `overloaded` once a peer's send
// queue is full (transport.send_queue_bytes, 256 MiB) and a refused tell is
// dropped. So rate and bw send, as bench_caf_basp_peer does, in windows of at
// most --window-bytes (default 32 MiB, and at most 65536 messages), each
// closed by a request that the server answers with what it received since
// the previous one; two windows are in flight so the pipe stays full. The
// reported time runs from the first timed send to the last answer.
//
// --transport tcp sets transport.transports = "tcp" (UCX_TLS); shm leaves it
// empty, so UCX picks shared memory for the data lanes (the fabric enables
// UCX's sysv/posix error handling itself). The lanes UCX chose for the peer
// are printed as "lanes". --busy-poll makes the fabric's progress thread spin
// instead of sleeping on the worker's event fd.
//
// Payloads are std::string (a registered wire type; one large enough travels
// by rendezvous without a copy). Both nodes: 2 scheduler threads, metrics
// off, log level warn.

#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

namespace {

using troupe::actor_ref;
using troupe::transport::fabric;
using troupe::transport::transport_config;

using echo_atom = caf::atom_constant<caf::atom("echo")>;
using data_atom = caf::atom_constant<caf::atom("data")>;
using sync_atom = caf::atom_constant<caf::atom("sync")>;
using quit_atom = caf::atom_constant<caf::atom("quit")>;
using pump_atom = caf::atom_constant<caf::atom("pump")>;

using clock_type = std::chrono::steady_clock;

constexpr auto request_timeout = std::chrono::seconds{60};
constexpr auto connect_timeout = std::chrono::seconds{10};
/// Both sides share it; a benchmark on loopback needs no real secret.
constexpr const char* bench_secret = "troupe-bench-peers-shared-secret";
constexpr const char* server_actor = "bench";
/// Messages per window at most, and tells per chunk (per message to self).
constexpr std::uint64_t window_msgs = 65536;
constexpr std::uint64_t chunk_msgs = 1000;

struct options {
  std::string role;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string test = "rtt";
  std::uint64_t size = 64;
  std::uint64_t count = 10000;
  std::uint64_t warmup = 1000;
  std::uint64_t blocking = 5000;
  std::uint64_t window_bytes = 32ull << 20;
  std::uint64_t warmup_bytes = 256ull << 20;
  std::string transport = "shm";
  bool busy_poll = false;
  bool poll0 = false;
  bool inline_all = false;
};

// Raised once by whichever comes first: stdin closed, "quit" on stdin, or a
// quit request.
class stop_signal {
public:
  void raise() {
    std::lock_guard<std::mutex> guard{mu_};
    raised_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> guard{mu_};
    cv_.wait(guard, [this] { return raised_; });
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool raised_ = false; // guarded by mu_
};

// -- setup -------------------------------------------------------------------

std::unique_ptr<troupe::node> make_node(const options& opt, const std::string& name) {
  auto cfg = troupe::default_config();
  cfg.node.name = name;
  cfg.scheduler.threads = 2;
  cfg.scheduler.busy_poll = opt.poll0;
  cfg.metrics.enabled = false;
  cfg.log.level = troupe::log_level::warn;
  auto n = troupe::node::start(cfg);
  if (!n) {
    std::cerr << "bench_transport_peer: node: " << n.err().to_string() << "\n";
    return nullptr;
  }
  return std::move(*n);
}

std::unique_ptr<fabric> make_fabric(troupe::node& n, const options& opt,
                                    std::string listen) {
  transport_config c;
  c.listen = std::move(listen);
  c.secret = bench_secret;
  c.transports = opt.transport == "tcp" ? "tcp" : "";
  c.busy_poll = opt.busy_poll;
  c.inline_delivery = opt.inline_all ? troupe::transport::inline_mode::all
                                     : troupe::transport::inline_mode::marked;
  c.connect_timeout = connect_timeout;
  auto f = fabric::start(n, c);
  if (!f) {
    std::cerr << "bench_transport_peer: fabric: " << f.err().to_string() << "\n";
    return nullptr;
  }
  return std::move(*f);
}

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs)
    out += (out.empty() ? "" : ",") + x;
  return out;
}

// -- server side -------------------------------------------------------------

struct sink_state {
  std::uint64_t received = 0; // one-way messages since the last sync
  std::uint64_t bytes = 0;    // their payload bytes
};

troupe::behavior echo_sink(troupe::actor&, std::shared_ptr<stop_signal> stop) {
  auto st = std::make_shared<sink_state>();
  return {
      [](echo_atom, std::string& payload) { return std::move(payload); },
      [st](data_atom, const std::string& payload) {
        ++st->received;
        st->bytes += payload.size();
      },
      [st](sync_atom) {
        auto reply = std::make_tuple(st->received, st->bytes);
        *st = sink_state{};
        return reply;
      },
      [stop](quit_atom) {
        stop->raise();
        return quit_atom::value;
      },
  };
}

int run_server(const options& opt) {
  auto n = make_node(opt, "bench-server");
  if (!n) return 1;
  auto f = make_fabric(*n, opt, opt.host + ":" + std::to_string(opt.port));
  if (!f) return 1;
  auto stop = std::make_shared<stop_signal>();
  auto sink = n->spawn("bench-echo",
                       [stop](troupe::actor& self) { return echo_sink(self, stop); });
  if (auto r = n->register_name(server_actor, sink); !r) {
    std::cerr << "bench_transport_peer: register: " << r.err().to_string() << "\n";
    return 1;
  }
  auto addr = f->listen_address();
  auto colon = addr.rfind(':');
  std::cout << "ready " << (colon == std::string::npos ? addr : addr.substr(colon + 1))
            << std::endl;
  // Raw read(2) so that the detached thread touches no iostream state that
  // static destruction could tear down under it.
  std::thread{[stop] {
    std::string line;
    char c;
    while (::read(STDIN_FILENO, &c, 1) == 1) {
      if (c != '\n') {
        line += c;
        continue;
      }
      if (line == "quit") break;
      line.clear();
    }
    stop->raise();
  }}.detach();
  stop->wait();
  f.reset();
  n->stop();
  return 0;
}

// -- client side: round trips -------------------------------------------------

struct rtt_result {
  std::vector<std::int64_t> samples_ns; // timed round trips only
  std::string error;                    // empty on success
};

/// Issues `warmup` untimed then `count` timed sequential requests
/// (request -> then -> next request) and delivers the timed samples.
struct rtt_loop : std::enable_shared_from_this<rtt_loop> {
  troupe::actor* self = nullptr;
  actor_ref server;
  std::string payload;
  std::uint64_t warmup = 0;
  std::uint64_t count = 0;
  std::promise<rtt_result> done;
  rtt_result result;

  void finish() {
    done.set_value(std::move(result));
    self->quit();
  }

  void step(std::uint64_t i) {
    if (i == warmup + count) return finish();
    auto start = clock_type::now();
    auto me = shared_from_this();
    self->request(server, request_timeout, echo_atom::value, payload)
        .then(
            [me, i, start](const std::string& reply) {
              auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            clock_type::now() - start)
                            .count();
              if (reply.size() != me->payload.size()) {
                me->result.error = "echo returned the wrong size";
                return me->finish();
              }
              if (i >= me->warmup) me->result.samples_ns.push_back(ns);
              me->step(i + 1);
            },
            [me](caf::error& err) {
              me->result.error = "request failed: " + caf::to_string(err);
              me->finish();
            });
  }
};

rtt_result actor_rtt(troupe::node& n, const actor_ref& server, std::uint64_t size,
                     std::uint64_t warmup, std::uint64_t count) {
  auto loop = std::make_shared<rtt_loop>();
  loop->server = server;
  loop->payload = std::string(size, 'x');
  loop->warmup = warmup;
  loop->count = count;
  loop->result.samples_ns.reserve(count);
  auto fut = loop->done.get_future();
  n.spawn("bench-rtt", [loop](troupe::actor& self) -> troupe::behavior {
    loop->self = &self;
    loop->step(0);
    return {[](quit_atom) {}};
  });
  return fut.get();
}

double quantile_us(std::vector<std::int64_t>& s, double q) {
  std::sort(s.begin(), s.end());
  auto idx = static_cast<std::size_t>(q * static_cast<double>(s.size() - 1) + 0.5);
  return static_cast<double>(s[idx]) / 1000.0;
}

// -- client side: one-way streams ----------------------------------------------

struct stream_result {
  std::int64_t ns = 0; // first timed send to last confirmation
  std::string error;
};

/// Sends `untimed` then `count` one-way messages in confirmed windows (see
/// the file comment), `chunk_msgs` tells per turn of the actor.
struct stream_loop : std::enable_shared_from_this<stream_loop> {
  troupe::actor* self = nullptr;
  actor_ref server;
  caf::message msg; // one message for every send: serialized per send, never copied
  std::uint64_t size = 0;
  std::uint64_t window = 1;
  std::uint64_t untimed = 0;
  std::uint64_t count = 0;
  std::promise<stream_result> done;
  bool failed = false;

  // the phase being sent
  std::uint64_t total = 0, sent = 0, confirmed = 0, in_window = 0, open_windows = 0;
  bool pump_queued = false;
  bool timed = false;
  clock_type::time_point start;

  void fail(std::string why) {
    if (failed) return;
    failed = true;
    done.set_value(stream_result{0, std::move(why)});
    self->quit();
  }

  void begin(std::uint64_t n, bool is_timed) {
    total = n;
    sent = confirmed = in_window = open_windows = 0;
    timed = is_timed;
    start = clock_type::now();
    if (n == 0) return phase_done();
    pump();
  }

  void phase_done() {
    if (!timed) return begin(count, true);
    auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start)
            .count();
    done.set_value(stream_result{ns, {}});
    self->quit();
  }

  void pump() {
    std::uint64_t budget = chunk_msgs;
    while (budget > 0 && sent < total && open_windows < 2 && !failed) {
      auto k = std::min({budget, window - in_window, total - sent});
      for (std::uint64_t i = 0; i < k; ++i)
        self->tell(server, msg);
      sent += k;
      in_window += k;
      budget -= k;
      if (in_window == window || sent == total) {
        close_window(in_window);
        in_window = 0;
      }
    }
    if (sent < total && open_windows < 2 && !pump_queued && !failed) {
      pump_queued = true;
      self->tell(self->self_ref(), pump_atom::value);
    }
  }

  void close_window(std::uint64_t k) {
    ++open_windows;
    auto me = shared_from_this();
    self->request(server, request_timeout, sync_atom::value)
        .then(
            [me, k](std::uint64_t got, std::uint64_t bytes) {
              if (me->failed) return;
              if (got != k || bytes != k * me->size)
                return me->fail("server received " + std::to_string(got) + " of " +
                                std::to_string(k) + " messages (" +
                                std::to_string(bytes) + " bytes)");
              --me->open_windows;
              me->confirmed += k;
              if (me->confirmed == me->total) return me->phase_done();
              if (!me->pump_queued) me->pump();
            },
            [me](caf::error& err) { me->fail("sync failed: " + caf::to_string(err)); });
  }
};

stream_result actor_stream(troupe::node& n, const actor_ref& server, const options& opt,
                           std::uint64_t untimed) {
  auto loop = std::make_shared<stream_loop>();
  loop->server = server;
  loop->msg = caf::make_message(data_atom::value, std::string(opt.size, 'x'));
  loop->size = opt.size;
  loop->window = std::max<std::uint64_t>(
      1, std::min(window_msgs, opt.window_bytes / std::max<std::uint64_t>(opt.size, 1)));
  loop->untimed = untimed;
  loop->count = opt.count;
  auto fut = loop->done.get_future();
  n.spawn("bench-stream", [loop](troupe::actor& self) -> troupe::behavior {
    loop->self = &self;
    // A sync first: it resets the server's counters from any earlier client.
    self.request(loop->server, request_timeout, sync_atom::value)
        .then([loop](std::uint64_t, std::uint64_t) { loop->begin(loop->untimed, false); },
              [loop](caf::error& err) {
                loop->fail("sync failed: " + caf::to_string(err));
              });
    return {
        [loop](pump_atom) {
          loop->pump_queued = false;
          loop->pump();
        },
        [](quit_atom) {},
    };
  });
  return fut.get();
}

// -- client side: output ----------------------------------------------------------

std::string json_head(const options& opt, const std::string& lanes) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"system\":\"troupe\",\"transport\":\"%s\",\"mode\":\"%s\","
                "\"busy_poll\":%s,\"inline\":%s,\"test\":\"%s\",\"size\":%llu,"
                "\"count\":%llu,\"lanes\":\"%s\"",
                opt.transport.c_str(), opt.busy_poll ? "busy-poll" : "event",
                opt.busy_poll ? "true" : "false", opt.inline_all ? "true" : "false",
                opt.test.c_str(), static_cast<unsigned long long>(opt.size),
                static_cast<unsigned long long>(opt.count), lanes.c_str());
  return buf;
}

int run_client(const options& opt) {
  auto n = make_node(opt, "bench-client-" + std::to_string(::getpid()));
  if (!n) return 1;
  auto f = make_fabric(*n, opt, opt.host + ":0");
  if (!f) return 1;
  auto address = opt.host + ":" + std::to_string(opt.port);
  auto peer = f->connect(address);
  if (!peer) {
    std::cerr << "bench_transport_peer: connect " << address << ": "
              << peer.err().to_string() << "\n";
    return 1;
  }
  auto server = f->lookup(peer->node_name, server_actor, connect_timeout);
  if (!server) {
    std::cerr << "bench_transport_peer: lookup: " << server.err().to_string() << "\n";
    return 1;
  }
  auto peers = f->peers();
  auto lanes = join(peers.empty() ? peer->transports : peers[0].transports);
  int rc = 0;
  auto shutdown = [&] {
    f.reset();
    n->stop();
  };

  if (opt.test == "quit") {
    auto r = n->request<caf::atom_value>(*server, request_timeout, quit_atom::value);
    if (!r) {
      std::cerr << "bench_transport_peer: quit: " << r.err().to_string() << "\n";
      rc = 1;
    }
    shutdown();
    return rc;
  }

  if (opt.test == "rtt") {
    auto r = actor_rtt(*n, *server, opt.size, opt.warmup, opt.count);
    if (!r.error.empty() || r.samples_ns.empty()) {
      std::cerr << "bench_transport_peer: " << (r.error.empty() ? "no samples" : r.error)
                << "\n";
      shutdown();
      return 1;
    }
    // For reference: node.request, a blocking call from outside any actor.
    std::string payload(opt.size, 'x');
    std::vector<std::int64_t> blocking;
    auto nb = std::min(opt.blocking, opt.count);
    blocking.reserve(nb);
    for (std::uint64_t i = 0; i < nb + nb / 10; ++i) {
      auto start = clock_type::now();
      auto reply =
          n->request<std::string>(*server, request_timeout, echo_atom::value, payload);
      auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start)
              .count();
      if (!reply || reply->size() != payload.size()) {
        std::cerr << "bench_transport_peer: node.request: "
                  << (reply ? std::string{"wrong size"} : reply.err().to_string())
                  << "\n";
        shutdown();
        return 1;
      }
      if (i >= nb / 10) blocking.push_back(ns);
    }
    auto median = quantile_us(r.samples_ns, 0.5);
    auto p99 = quantile_us(r.samples_ns, 0.99);
    std::printf("%s,\"median_us\":%.3f,\"p99_us\":%.3f,\"median_us_blocking\":%.3f,"
                "\"blocking_count\":%zu}\n",
                json_head(opt, lanes).c_str(), median, p99,
                blocking.empty() ? 0.0 : quantile_us(blocking, 0.5), blocking.size());
    std::fflush(stdout);
    shutdown();
    return 0;
  }

  // rate / bw: a short round-trip warm-up first (connection, scheduler,
  // allocator), then untimed one-way messages, then the timed run. The
  // untimed part is a tenth of the count, and for bw at least --warmup-bytes
  // (at most the count).
  {
    auto warm = actor_rtt(*n, *server, 64, opt.warmup, 1);
    if (!warm.error.empty()) {
      std::cerr << "bench_transport_peer: warm-up: " << warm.error << "\n";
      shutdown();
      return 1;
    }
  }
  auto untimed = opt.count / 10;
  if (opt.test == "bw")
    untimed = std::max(untimed, std::min(opt.count, opt.warmup_bytes / opt.size));
  auto r = actor_stream(*n, *server, opt, untimed);
  if (!r.error.empty() || r.ns <= 0) {
    std::cerr << "bench_transport_peer: " << r.error << "\n";
    shutdown();
    return 1;
  }
  auto stats = f->stats();
  auto secs = static_cast<double>(r.ns) / 1e9;
  auto msgs = static_cast<double>(opt.count) / secs;
  auto gib = static_cast<double>(opt.count) * static_cast<double>(opt.size) / secs /
             static_cast<double>(1ull << 30);
  std::printf("%s,\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"gib_per_s\":%.4f,"
              "\"frames_sent\":%llu,\"bulk_sent\":%llu,\"overloaded\":%llu}\n",
              json_head(opt, lanes).c_str(), secs, msgs, gib,
              static_cast<unsigned long long>(stats.frames_sent),
              static_cast<unsigned long long>(stats.bulk_sent),
              static_cast<unsigned long long>(stats.dropped_overloaded));
  std::fflush(stdout);
  shutdown();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"troupe transport benchmark peer (see bench/peers/run_side_by_side.sh)"};
  app.add_option("--role", opt.role, "server or client")
      ->required()
      ->check(CLI::IsMember({"server", "client"}));
  app.add_option("--host", opt.host, "address to listen on / connect to");
  app.add_option("--port", opt.port, "port (server: 0 = any free port)");
  app.add_option("--test", opt.test, "client: rtt|rate|bw|quit")
      ->check(CLI::IsMember({"rtt", "rate", "bw", "quit"}));
  app.add_option("--size", opt.size, "payload bytes per message")
      ->check(CLI::PositiveNumber);
  app.add_option("--count", opt.count, "timed messages or round trips")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "untimed round trips first");
  app.add_option("--blocking", opt.blocking,
                 "rtt: node.request round trips for reference");
  app.add_option("--window-bytes", opt.window_bytes,
                 "rate/bw: bytes in flight per confirmed window (two in flight)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup-bytes", opt.warmup_bytes,
                 "bw: untimed bytes sent first (at most --count messages)");
  app.add_option("--transport", opt.transport, "tcp (UCX_TLS=tcp) or shm (UCX chooses)")
      ->check(CLI::IsMember({"tcp", "shm"}));
  app.add_flag("--busy-poll", opt.busy_poll, "the fabric's progress thread spins");
  app.add_flag("--poll0", opt.poll0,
               "scheduler.busy_poll (CAF work-stealing.moderate-poll-attempts=0)");
  app.add_flag("--inline", opt.inline_all,
               "transport.inline_delivery = all: actors run on the progress thread");
  CLI11_PARSE(app, argc, argv);
  if (opt.role == "client" && opt.port == 0) {
    std::cerr << "bench_transport_peer: a client needs --port\n";
    return 2;
  }
  return opt.role == "server" ? run_server(opt) : run_client(opt);
}
