// troupe's actor layer against raw CAF, in one run.
//
// Tell throughput: a sender actor sends N ints to a receiver, then a request
// that the receiver answers after the N (FIFO per sender); time per message.
// Request round trip: a pinger actor issues N sequential requests to a
// ponger (request -> then -> next request).
// Each case runs on raw CAF actors and on troupe actors on a troupe node
// with supervision and metrics on; troupe also runs with full trace sampling.

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/node.hpp"

#include <benchmark/benchmark.h>
#include <caf/all.hpp>
#include <future>

using namespace std::chrono_literals;

namespace {

using go_atom = caf::atom_constant<caf::atom("go")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
constexpr int batch = 20000;

// -- raw CAF ------------------------------------------------------------------

caf::behavior caf_sink(caf::event_based_actor*) {
  return {[](int) {}, [](done_atom) { return true; }};
}

caf::behavior caf_blaster(caf::event_based_actor* self, caf::actor sink) {
  return {[=](go_atom, int n) -> caf::result<bool> {
    for (int i = 0; i < n; ++i)
      self->send(sink, i);
    self->delegate(sink, done_atom::value);
    return caf::delegated<bool>{};
  }};
}

caf::behavior caf_ponger(caf::event_based_actor*) {
  return {[](int x) { return x + 1; }};
}

caf::behavior caf_pinger(caf::event_based_actor* self, caf::actor ponger) {
  return {[=](go_atom, int n) -> caf::result<int> {
    auto rp = self->make_response_promise<int>();
    auto step = std::make_shared<std::function<void(int, int)>>();
    *step = [=](int left, int acc) mutable {
      if (left == 0) {
        rp.deliver(acc);
        return;
      }
      // Same timeout as the troupe side: a timed request arms a timer.
      self->request(ponger, std::chrono::seconds{60}, acc).then([=](int y) {
        (*step)(left - 1, y);
      });
    };
    (*step)(n, 0);
    return rp;
  }};
}

struct caf_env {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf_env() {
    cfg.set("scheduler.max-threads", size_t{2});
    cfg.set("logger.verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

void BM_caf_tell_throughput(benchmark::State& state) {
  caf_env env;
  auto sink = env.sys->spawn(caf_sink);
  auto blaster = env.sys->spawn(caf_blaster, sink);
  caf::scoped_actor self{*env.sys};
  for (auto _ : state) {
    bool ok = false;
    self->request(blaster, caf::infinite, go_atom::value, batch)
        .receive([&](bool b) { ok = b; }, [&](caf::error&) {});
    if (!ok) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations() * batch);
  self->send_exit(blaster, caf::exit_reason::kill);
  self->send_exit(sink, caf::exit_reason::kill);
}

void BM_caf_request_roundtrip(benchmark::State& state) {
  caf_env env;
  auto ponger = env.sys->spawn(caf_ponger);
  auto pinger = env.sys->spawn(caf_pinger, ponger);
  caf::scoped_actor self{*env.sys};
  constexpr int n = 2000;
  for (auto _ : state) {
    int got = 0;
    self->request(pinger, caf::infinite, go_atom::value, n)
        .receive([&](int x) { got = x; }, [&](caf::error&) {});
    if (got != n) state.SkipWithError("wrong answer");
  }
  state.SetItemsProcessed(state.iterations() * n);
  self->send_exit(pinger, caf::exit_reason::kill);
  self->send_exit(ponger, caf::exit_reason::kill);
}

// -- troupe ---------------------------------------------------------------------

std::unique_ptr<troupe::node> troupe_node(double sampling) {
  // Defaults plus TROUPE_* environment overrides (e.g.
  // TROUPE_METRICS_LATENCY_SAMPLE_EVERY=1 to time every message).
  auto loaded = troupe::load_config_string("", "<bench>", troupe::snapshot_environment());
  if (!loaded.ok()) return nullptr;
  auto cfg = *loaded;
  cfg.scheduler.threads = 2;
  cfg.metrics.enabled = true; // metrics on, served over HTTP
  cfg.log.level = troupe::log_level::warn;
  cfg.trace.sampling_ratio = sampling;
  cfg.trace.queue_capacity = 1 << 20;
  auto n = troupe::node::start(cfg);
  if (!n.ok()) return nullptr;
  return std::move(*n);
}

troupe::supervisor_spec tell_tree(troupe::node& n) {
  auto spec = n.make_supervisor_spec("bench", troupe::restart_strategy::one_for_one);
  spec.children.push_back(
      troupe::worker_fn("sink", troupe::restart_type::permanent,
                        [](troupe::actor& self) -> troupe::behavior {
                          if (!self.register_as("sink").ok()) self.quit();
                          return {[](int) {}, [](done_atom) { return true; }};
                        }));
  spec.children.push_back(
      troupe::worker_fn("blaster", troupe::restart_type::permanent,
                        [](troupe::actor& self) -> troupe::behavior {
                          if (!self.register_as("blaster").ok()) self.quit();
                          return {[&self](go_atom, int n) -> caf::result<bool> {
                            auto sink = self.lookup("sink");
                            if (!sink.ok())
                              return caf::make_error(caf::sec::invalid_argument);
                            for (int i = 0; i < n; ++i)
                              self.tell(*sink, i);
                            self.delegate(*sink, done_atom::value);
                            return caf::delegated<bool>{};
                          }};
                        }));
  return spec;
}

troupe::actor_ref wait_for(troupe::node& n, const char* name) {
  for (;;) {
    if (auto r = n.lookup(name); r.ok()) return *r;
    std::this_thread::sleep_for(1ms);
  }
}

void troupe_tell(benchmark::State& state, double sampling) {
  auto n = troupe_node(sampling);
  if (!n) return state.SkipWithError("node did not start");
  n->spawn_supervisor(tell_tree(*n));
  auto blaster = wait_for(*n, "blaster");
  wait_for(*n, "sink");
  for (auto _ : state) {
    auto r = n->request<bool>(blaster, 60s, go_atom::value, batch);
    if (!r.ok()) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations() * batch);
  n->stop();
}

void BM_troupe_tell_throughput(benchmark::State& state) {
  troupe_tell(state, 0.0);
}
void BM_troupe_tell_throughput_sampled(benchmark::State& state) {
  troupe_tell(state, 1.0);
}

void troupe_roundtrip(benchmark::State& state, double sampling) {
  auto n = troupe_node(sampling);
  if (!n) return state.SkipWithError("node did not start");
  auto spec = n->make_supervisor_spec("bench", troupe::restart_strategy::one_for_one);
  spec.children.push_back(troupe::worker_fn("ponger", troupe::restart_type::permanent,
                                            [](troupe::actor& self) -> troupe::behavior {
                                              if (!self.register_as("ponger").ok())
                                                self.quit();
                                              return {[](int x) { return x + 1; }};
                                            }));
  spec.children.push_back(
      troupe::worker_fn("pinger", troupe::restart_type::permanent,
                        [](troupe::actor& self) -> troupe::behavior {
                          if (!self.register_as("pinger").ok()) self.quit();
                          return {[&self](go_atom, int n) -> caf::result<int> {
                            auto ponger = self.lookup("ponger");
                            if (!ponger.ok())
                              return caf::make_error(caf::sec::invalid_argument);
                            auto rp = self.make_response_promise<int>();
                            auto step = std::make_shared<std::function<void(int, int)>>();
                            auto target = *ponger;
                            *step = [&self, rp, step, target](int left, int acc) mutable {
                              if (left == 0) {
                                rp.deliver(acc);
                                return;
                              }
                              self.request(target, 60s, acc).then([step, left](int y) {
                                (*step)(left - 1, y);
                              });
                            };
                            (*step)(n, 0);
                            return rp;
                          }};
                        }));
  n->spawn_supervisor(spec);
  auto pinger = wait_for(*n, "pinger");
  wait_for(*n, "ponger");
  constexpr int count = 2000;
  for (auto _ : state) {
    auto r = n->request<int>(pinger, 60s, go_atom::value, count);
    if (!r.ok() || *r != count) state.SkipWithError("wrong answer");
  }
  state.SetItemsProcessed(state.iterations() * count);
  n->stop();
}

void BM_troupe_request_roundtrip(benchmark::State& state) {
  troupe_roundtrip(state, 0.0);
}
void BM_troupe_request_roundtrip_sampled(benchmark::State& state) {
  troupe_roundtrip(state, 1.0);
}

} // namespace

BENCHMARK(BM_caf_tell_throughput)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_troupe_tell_throughput)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_troupe_tell_throughput_sampled)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_caf_request_roundtrip)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_troupe_request_roundtrip)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_troupe_request_roundtrip_sampled)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
