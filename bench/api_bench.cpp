// The head's HTTP API (actors/http_api.hpp) over loopback: requests per
// second of GET /v1/health and GET /v1/jobs (a page of 20 out of 200 jobs)
// on keep-alive connections, against the in-memory control plane of the
// tests; and the same list through http_api::handle() without sockets, to
// tell the HTTP cost from the API's own. Items are requests.
//
//   cmake -DTROUPE_BUILD_BENCH=ON ... && cmake --build build --target bench_api
//   build/bench/bench_api --benchmark_min_time=2

#include "../tests/actors/memory_control_plane.hpp"
#include "troupe/actors/api_tokens.hpp"
#include "troupe/actors/http_api.hpp"

#include <benchmark/benchmark.h>
#include <cstdio>
#include <cstdlib>
#include <httplib.h>
#include <memory>

using namespace troupe::actors;

namespace {

const std::string tenant_token = "bench-tenant-token";

struct api_fixture {
  testing::memory_control_plane plane;
  api_tokens tokens;
  std::unique_ptr<api_server> server;
  api_fixture() {
    (void)tokens.add(digest_token(tenant_token), {"acme", false});
    auto spec =
        decode_job_spec(R"({"name": "bench", "command": ["true"], "replicas": 2})");
    for (int i = 0; i < 200; ++i)
      (void)plane.submit({"acme", false}, *spec);
    api_options o;
    o.port = 0;
    o.threads = 8;
    auto s = api_server::start(plane, tokens, o);
    if (!s) {
      std::fprintf(stderr, "bench_api: %s\n", s.err().to_string().c_str());
      std::abort();
    }
    server = std::move(*s);
  }
};

api_fixture& fixture() {
  static api_fixture f;
  return f;
}

void run_get(benchmark::State& state, const std::string& path, bool auth) {
  httplib::Client client("127.0.0.1", fixture().server->port());
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  httplib::Headers headers;
  if (auth) headers.emplace("Authorization", "Bearer " + tenant_token);
  for (auto _ : state) {
    auto r = client.Get(path, headers);
    if (!r || r->status != 200) {
      state.SkipWithError("request failed");
      break;
    }
    benchmark::DoNotOptimize(r->body.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_http_health(benchmark::State& state) {
  run_get(state, "/v1/health", false);
}

void BM_http_list_jobs(benchmark::State& state) {
  run_get(state, "/v1/jobs?limit=20", true);
}

void BM_handle_list_jobs(benchmark::State& state) {
  http_api api(fixture().plane, fixture().tokens, api_options{});
  api_request rq;
  rq.method = "GET";
  rq.path = "/v1/jobs";
  rq.query = {{"limit", "20"}};
  rq.authorization = {"Bearer " + tenant_token};
  for (auto _ : state) {
    auto res = api.handle(rq);
    if (res.status != 200) {
      state.SkipWithError("request failed");
      break;
    }
    benchmark::DoNotOptimize(res.body.data());
  }
  state.SetItemsProcessed(state.iterations());
}

} // namespace

BENCHMARK(BM_http_health)->UseRealTime()->Threads(1)->Threads(4);
BENCHMARK(BM_http_list_jobs)->UseRealTime()->Threads(1)->Threads(4);
BENCHMARK(BM_handle_list_jobs)->UseRealTime()->Threads(1);

BENCHMARK_MAIN();
