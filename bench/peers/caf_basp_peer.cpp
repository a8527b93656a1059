// One side of a CAF 0.17 remoting benchmark: the io middleman, BASP over TCP.
//
// This is the baseline troupe's transport is measured against
// (bench/peers/run_side_by_side.sh, docs/PERFORMANCE.md "Transport: peers").
// It uses CAF core and io only, no troupe library, so it measures CAF as a
// CAF user would get it.
//
//   bench_caf_basp_peer --role server --port P [--poll0]
//     Publishes an echo/sink actor on 127.0.0.1:P (P = 0: the kernel picks),
//     prints "ready <port>" and runs until stdin closes, stdin says "quit",
//     or a client sends a quit request (--test quit).
//   bench_caf_basp_peer --role client --port P --test rtt|rate|bw|local-rtt|quit
//                       --size BYTES --count N [--warmup W] [--poll0]
//     Prints one JSON line on stdout:
//       rtt:  N request/response round trips with a BYTES payload each way;
//             median_us and p99_us of the round trip.
//       rate: N one-way messages of BYTES, then a request the server answers
//             after them (it counts what arrived); msgs_per_s.
//       bw:   the same as rate for large payloads; gib_per_s.
//       local-rtt: rtt to an actor in the same process (no network).
//
// CAF 0.17 has no backpressure: one-way sends are queued without bound in the
// middleman's output buffer. rate and bw therefore send in windows of at most
// --window-bytes (default 8 MiB, and at most 16384 messages), each closed by a
// request that the server answers with what it received; two windows are in
// flight so the pipe stays full. The reported time runs from the first send
// to the last answer.
//
// Payloads are std::string (one copy to serialize; std::vector<caf::byte> is
// serialized byte by byte). Every message type used here (atoms, std::string,
// uint64_t) is built into CAF 0.17, so no add_message_type is needed; a
// custom type would have to be registered on both sides.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using echo_atom = caf::atom_constant<caf::atom("echo")>;
using data_atom = caf::atom_constant<caf::atom("data")>;
using sync_atom = caf::atom_constant<caf::atom("sync")>;
using quit_atom = caf::atom_constant<caf::atom("quit")>;

using clock_type = std::chrono::steady_clock;

constexpr auto request_timeout = std::chrono::seconds{60};

struct options {
  std::string role;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string test = "rtt";
  std::uint64_t size = 64;
  std::uint64_t count = 10000;
  std::uint64_t warmup = 1000;
  std::uint64_t window_bytes = 8ull << 20;
  std::uint64_t warmup_bytes = 256ull << 20;
  bool poll0 = false;
};

constexpr std::uint64_t window_msgs = 16384;

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

// -- server side -----------------------------------------------------------

struct sink_state {
  std::uint64_t received = 0; // one-way messages since the last sync
  std::uint64_t bytes = 0;    // their payload bytes
};

caf::behavior echo_sink(caf::stateful_actor<sink_state>* self,
                        std::shared_ptr<stop_signal> stop) {
  return {
      [](echo_atom, std::string& payload) { return std::move(payload); },
      [self](data_atom, const std::string& payload) {
        ++self->state.received;
        self->state.bytes += payload.size();
      },
      [self](sync_atom) {
        auto reply = std::make_tuple(self->state.received, self->state.bytes);
        self->state = sink_state{};
        return reply;
      },
      [self, stop](quit_atom) {
        if (stop) stop->raise();
        return quit_atom::value;
      },
  };
}

// -- client side -----------------------------------------------------------

struct rtt_result {
  std::vector<std::int64_t> samples_ns; // timed round trips only
  std::string error;                    // empty on success
};

// Issues `warmup` untimed then `count` timed sequential requests
// (request -> then -> next request) and delivers the timed samples.
caf::behavior rtt_client(caf::event_based_actor* self, caf::actor server,
                         std::string payload, std::uint64_t warmup, std::uint64_t count,
                         std::shared_ptr<std::promise<rtt_result>> done) {
  auto result = std::make_shared<rtt_result>();
  result->samples_ns.reserve(count);
  auto step = std::make_shared<std::function<void(std::uint64_t)>>();
  *step = [=](std::uint64_t i) {
    if (i == warmup + count) {
      done->set_value(std::move(*result));
      self->quit();
      return;
    }
    auto start = clock_type::now();
    self->request(server, request_timeout, echo_atom::value, payload)
        .then(
            [=](const std::string& reply) {
              auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            clock_type::now() - start)
                            .count();
              if (reply.size() != payload.size()) {
                result->error = "echo returned the wrong size";
                (*step)(warmup + count);
                return;
              }
              if (i >= warmup) result->samples_ns.push_back(ns);
              (*step)(i + 1);
            },
            [=](caf::error& err) {
              result->error = "request failed: " + self->system().render(err);
              done->set_value(std::move(*result));
              self->quit();
            });
  };
  // `step` refers to itself; the cycle is broken when the actor is gone, not
  // inside a call of `step`.
  self->attach_functor([step] { *step = nullptr; });
  (*step)(0);
  // All work is driven by the responses above; the actor quits itself.
  return {[](quit_atom) {}};
}

struct stream_result {
  std::int64_t ns = 0; // first timed send to last confirmation
  std::string error;
};

// Sends `warmup` untimed then `count` timed one-way messages of `size` bytes in
// confirmed windows (see the file comment).
caf::behavior stream_client(caf::event_based_actor* self, caf::actor server,
                            std::uint64_t size, std::uint64_t window_bytes,
                            std::uint64_t warmup, std::uint64_t count,
                            std::shared_ptr<std::promise<stream_result>> done) {
  // One message shared by every send: its payload is serialized per send, as
  // any sender's would be, but not copied in memory first.
  auto msg = caf::make_message(data_atom::value, std::string(size, 'x'));
  auto window = std::max<std::uint64_t>(
      1, std::min(window_msgs, window_bytes / std::max<std::uint64_t>(size, 1)));
  struct phase {
    std::uint64_t total = 0, sent = 0, confirmed = 0;
    clock_type::time_point start;
    bool failed = false;
  };
  auto ph = std::make_shared<phase>();
  auto run =
      std::make_shared<std::function<void(std::uint64_t, std::function<void()>)>>();
  auto send_window = std::make_shared<std::function<void(std::function<void()>)>>();
  *send_window = [=](std::function<void()> finished) {
    auto n = std::min(window, ph->total - ph->sent);
    if (n == 0 || ph->failed) return;
    for (std::uint64_t i = 0; i < n; ++i)
      self->send(server, msg);
    ph->sent += n;
    self->request(server, request_timeout, sync_atom::value)
        .then(
            [=](std::uint64_t got, std::uint64_t bytes) {
              if (ph->failed) return;
              if (got != n || bytes != n * size) {
                ph->failed = true;
                done->set_value(stream_result{0, "server received " +
                                                     std::to_string(got) + " of " +
                                                     std::to_string(n) + " messages"});
                self->quit();
                return;
              }
              ph->confirmed += n;
              if (ph->confirmed == ph->total)
                finished();
              else
                (*send_window)(finished);
            },
            [=](caf::error& err) {
              if (ph->failed) return;
              ph->failed = true;
              done->set_value(
                  stream_result{0, "sync failed: " + self->system().render(err)});
              self->quit();
            });
  };
  *run = [=](std::uint64_t total, std::function<void()> finished) {
    *ph = phase{};
    ph->total = total;
    ph->start = clock_type::now();
    if (total == 0) {
      finished();
      return;
    }
    (*send_window)(finished);
    (*send_window)(finished); // two windows in flight
  };
  self->attach_functor([run, send_window] {
    *run = nullptr;
    *send_window = nullptr;
  });
  // A sync first: it resets the server's counters from any earlier client.
  self->request(server, request_timeout, sync_atom::value)
      .then(
          [=](std::uint64_t, std::uint64_t) {
            (*run)(warmup, [=] {
              (*run)(count, [=] {
                auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              clock_type::now() - ph->start)
                              .count();
                done->set_value(stream_result{ns, {}});
                self->quit();
              });
            });
          },
          [=](caf::error& err) {
            done->set_value(
                stream_result{0, "sync failed: " + self->system().render(err)});
            self->quit();
          });
  return {[](quit_atom) {}};
}

// -- setup and output ------------------------------------------------------

void configure(caf::actor_system_config& cfg, const options& opt) {
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", std::size_t{2});
  cfg.set("logger.verbosity", caf::atom("quiet"));
  if (opt.poll0) cfg.set("work-stealing.moderate-poll-attempts", std::size_t{0});
}

std::string json_head(const options& opt, const char* system, const char* transport) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"system\":\"%s\",\"transport\":\"%s\",\"mode\":\"%s\",\"test\":\"%s\","
                "\"size\":%llu,\"count\":%llu",
                system, transport, opt.poll0 ? "poll0" : "default", opt.test.c_str(),
                static_cast<unsigned long long>(opt.size),
                static_cast<unsigned long long>(opt.count));
  return buf;
}

int run_server(const options& opt) {
  caf::actor_system_config cfg;
  configure(cfg, opt);
  caf::actor_system sys{cfg};
  auto stop = std::make_shared<stop_signal>();
  auto server = sys.spawn(echo_sink, stop);
  auto port = sys.middleman().publish(server, opt.port, opt.host.c_str(), true);
  if (!port) {
    std::cerr << "bench_caf_basp_peer: publish on " << opt.host << ":" << opt.port
              << " failed: " << sys.render(port.error()) << "\n";
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
    return 1;
  }
  std::cout << "ready " << *port << std::endl;
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
  static_cast<void>(sys.middleman().unpublish(server, *port));
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  return 0;
}

int report_rtt(const options& opt, const char* system, const char* transport,
               rtt_result r) {
  if (!r.error.empty() || r.samples_ns.empty()) {
    std::cerr << "bench_caf_basp_peer: " << (r.error.empty() ? "no samples" : r.error)
              << "\n";
    return 1;
  }
  auto& s = r.samples_ns;
  std::sort(s.begin(), s.end());
  auto at = [&](double q) {
    auto idx = static_cast<std::size_t>(q * static_cast<double>(s.size() - 1) + 0.5);
    return static_cast<double>(s[idx]) / 1000.0;
  };
  std::printf("%s,\"median_us\":%.3f,\"p99_us\":%.3f}\n",
              json_head(opt, system, transport).c_str(), at(0.5), at(0.99));
  std::fflush(stdout);
  return 0;
}

int run_client(const options& opt) {
  caf::actor_system_config cfg;
  configure(cfg, opt);
  caf::actor_system sys{cfg};
  if (opt.test == "local-rtt") {
    auto server = sys.spawn(echo_sink, std::shared_ptr<stop_signal>{});
    auto done = std::make_shared<std::promise<rtt_result>>();
    auto fut = done->get_future();
    sys.spawn(rtt_client, server, std::string(opt.size, 'x'), opt.warmup, opt.count,
              done);
    auto rc = report_rtt(opt, "caf-local", "local", fut.get());
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
    return rc;
  }
  auto server = sys.middleman().remote_actor(opt.host, opt.port);
  if (!server) {
    std::cerr << "bench_caf_basp_peer: remote_actor " << opt.host << ":" << opt.port
              << " failed: " << sys.render(server.error()) << "\n";
    return 1;
  }
  if (opt.test == "quit") {
    caf::scoped_actor self{sys};
    bool ok = false;
    self->request(*server, request_timeout, quit_atom::value)
        .receive([&](quit_atom) { ok = true; },
                 [&](caf::error& err) {
                   std::cerr << "bench_caf_basp_peer: quit failed: " << sys.render(err)
                             << "\n";
                 });
    return ok ? 0 : 1;
  }
  if (opt.test == "rtt") {
    auto done = std::make_shared<std::promise<rtt_result>>();
    auto fut = done->get_future();
    sys.spawn(rtt_client, *server, std::string(opt.size, 'x'), opt.warmup, opt.count,
              done);
    return report_rtt(opt, "caf-basp", "tcp", fut.get());
  }
  // rate / bw: a short round-trip warm-up first (connection, scheduler,
  // allocator), then untimed one-way messages, then the timed run. The
  // untimed part is a tenth of the count, and for bw at least --warmup-bytes
  // (at most the count): a fresh TCP connection's buffers grow over the first
  // few hundred MiB, and timing them halves short runs.
  {
    auto done = std::make_shared<std::promise<rtt_result>>();
    auto fut = done->get_future();
    sys.spawn(rtt_client, *server, std::string(64, 'x'), opt.warmup, std::uint64_t{1},
              done);
    auto warm = fut.get();
    if (!warm.error.empty()) {
      std::cerr << "bench_caf_basp_peer: warm-up: " << warm.error << "\n";
      return 1;
    }
  }
  auto done = std::make_shared<std::promise<stream_result>>();
  auto fut = done->get_future();
  auto untimed = opt.count / 10;
  if (opt.test == "bw")
    untimed = std::max(untimed, std::min(opt.count, opt.warmup_bytes / opt.size));
  sys.spawn(stream_client, *server, opt.size, opt.window_bytes, untimed, opt.count, done);
  auto r = fut.get();
  if (!r.error.empty() || r.ns <= 0) {
    std::cerr << "bench_caf_basp_peer: " << r.error << "\n";
    return 1;
  }
  auto secs = static_cast<double>(r.ns) / 1e9;
  auto msgs = static_cast<double>(opt.count) / secs;
  auto gib = static_cast<double>(opt.count) * static_cast<double>(opt.size) / secs /
             static_cast<double>(1ull << 30);
  std::printf("%s,\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"gib_per_s\":%.4f}\n",
              json_head(opt, "caf-basp", "tcp").c_str(), secs, msgs, gib);
  std::fflush(stdout);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"CAF 0.17 BASP benchmark peer (see bench/peers/run_side_by_side.sh)"};
  app.add_option("--role", opt.role, "server or client")
      ->required()
      ->check(CLI::IsMember({"server", "client"}));
  app.add_option("--host", opt.host, "address to publish on / connect to");
  app.add_option("--port", opt.port, "TCP port (server: 0 = any free port)");
  app.add_option("--test", opt.test, "client: rtt|rate|bw|local-rtt|quit")
      ->check(CLI::IsMember({"rtt", "rate", "bw", "local-rtt", "quit"}));
  app.add_option("--size", opt.size, "payload bytes per message")
      ->check(CLI::PositiveNumber);
  app.add_option("--count", opt.count, "timed messages or round trips")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "untimed round trips first");
  app.add_option("--window-bytes", opt.window_bytes,
                 "rate/bw: bytes in flight per confirmed window (two in flight)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup-bytes", opt.warmup_bytes,
                 "bw: untimed bytes sent first (at most --count messages)");
  app.add_flag("--poll0", opt.poll0, "work-stealing.moderate-poll-attempts=0");
  CLI11_PARSE(app, argc, argv);
  if (opt.role == "client" && opt.port == 0 && opt.test != "local-rtt") {
    std::cerr << "bench_caf_basp_peer: a client needs --port\n";
    return 2;
  }
  return opt.role == "server" ? run_server(opt) : run_client(opt);
}
