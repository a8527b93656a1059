// Tracing: sampling, the bounded export queue, OTLP-JSON, and one trace
// across a chain of actors.

#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/trace.hpp"

#include <condition_variable>
#include <cstdlib>
#include <doctest/doctest.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unistd.h>

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string temp_path(const std::string& stem) {
  return "/tmp/troupe-" + stem + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::rand());
}

/// A sink that blocks in write() until released.
class gated_sink final : public troupe::span_sink {
public:
  troupe::result<void> write(const std::vector<troupe::span_record>& batch) override {
    std::unique_lock<std::mutex> g{mu_};
    ++entered_;
    cv_.notify_all();
    cv_.wait(g, [&] { return open_; });
    written_ += batch.size();
    return troupe::ok();
  }
  void wait_entered() {
    std::unique_lock<std::mutex> g{mu_};
    cv_.wait(g, [&] { return entered_ > 0; });
  }
  void release() {
    std::lock_guard<std::mutex> g{mu_};
    open_ = true;
    cv_.notify_all();
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool open_ = false;
  size_t written_ = 0;
};

} // namespace

TEST_SUITE("trace") {
  TEST_CASE("a sampling ratio of 0 samples nothing, 1 everything, 0.25 about a quarter") {
    troupe::tracer none{0.0, 16, nullptr, 1};
    troupe::tracer all{1.0, 16, nullptr, 1};
    troupe::tracer quarter{0.25, 16, nullptr, 1};
    int n_none = 0, n_all = 0, n_quarter = 0;
    for (int i = 0; i < 10000; ++i) {
      n_none += none.new_root().sampled;
      n_all += all.new_root().sampled;
      n_quarter += quarter.new_root().sampled;
    }
    CHECK(n_none == 0);
    CHECK(n_all == 10000);
    CHECK(n_quarter > 2200);
    CHECK(n_quarter < 2800);
  }

  TEST_CASE("child spans keep the trace id and tenant and get a new span id") {
    troupe::tracer t{1.0, 16, nullptr, 3};
    auto root = t.new_root("acme");
    auto child = t.child_of(root);
    CHECK(child.trace_hi == root.trace_hi);
    CHECK(child.trace_lo == root.trace_lo);
    CHECK(child.tenant == "acme");
    CHECK(child.span_id != root.span_id);
    CHECK(root.trace_id_hex().size() == 32);
    CHECK(root.span_id_hex().size() == 16);
  }

  TEST_CASE("a full export queue drops and counts spans instead of blocking") {
    auto sink = std::make_unique<gated_sink>();
    auto* gate = sink.get();
    troupe::tracer t{1.0, 2, std::move(sink), 5};
    t.record(troupe::span_record{});
    gate->wait_entered(); // the exporter holds span 1 in write()
    t.record(troupe::span_record{});
    t.record(troupe::span_record{});
    t.record(troupe::span_record{}); // queue holds 2: this one is dropped
    t.record(troupe::span_record{});
    CHECK(t.dropped() == 2);
    gate->release();
    t.flush();
    CHECK(t.exported() == 3);
    CHECK(t.recorded() == 5);
  }

  TEST_CASE("spans encode as OTLP-JSON with hex ids and string nanosecond times") {
    troupe::span_record s;
    s.trace_hi = 1;
    s.trace_lo = 2;
    s.span_id = 0xabc;
    s.parent_span_id = 0x10;
    s.name = "worker";
    s.kind = troupe::span_kind::server;
    s.start_unix_ns = 1700000000000000000;
    s.end_unix_ns = 1700000000000001000;
    s.status = troupe::span_status::ok;
    s.attributes = {{"tenant", "acme"}, {"bad", std::string{"\xff\xfe"}}};
    auto doc = json::parse(troupe::to_otlp_json({s}, "svc"));
    auto& rs = doc["resourceSpans"][0];
    CHECK(rs["resource"]["attributes"][0]["value"]["stringValue"] == "svc");
    auto& span = rs["scopeSpans"][0]["spans"][0];
    CHECK(span["traceId"] == "00000000000000010000000000000002");
    CHECK(span["spanId"] == "0000000000000abc");
    CHECK(span["parentSpanId"] == "0000000000000010");
    CHECK(span["kind"] == 2);
    CHECK(span["startTimeUnixNano"] == "1700000000000000000");
    CHECK(span["status"]["code"] == 1);
    CHECK(span["attributes"][0]["key"] == "tenant");
  }

  TEST_CASE(
      "a request through a chain of three actors yields one trace with correct parents") {
    auto trace_file = temp_path("trace") + ".jsonl";
    auto log_file = temp_path("log") + ".log";
    auto cfg = troupe::default_config();
    cfg.scheduler.threads = 2;
    cfg.metrics.enabled = false;
    cfg.log.level = troupe::log_level::info;
    cfg.log.file = log_file;
    cfg.trace.sampling_ratio = 1.0;
    cfg.trace.export_path = trace_file;
    auto started = troupe::node::start(cfg);
    REQUIRE(started.ok());
    auto& n = **started;
    using note_atom = caf::atom_constant<caf::atom("note")>;
    // C answers x * 10 and logs; B delegates to C; A requests B and, in the
    // continuation, tells D (which must be a child of A's span) and answers.
    auto c = n.spawn("C", [](troupe::actor&) -> troupe::behavior {
      return {[](int x) {
        troupe::logging::get("test")->info("C handles {}", x);
        return x * 10;
      }};
    });
    auto b = n.spawn("B", [c](troupe::actor& self) -> troupe::behavior {
      return {[&self, c](int x) { return self.delegate(c, x + 1); }};
    });
    auto d = n.spawn(
        "D", [](troupe::actor&) -> troupe::behavior { return {[](note_atom, int) {}}; });
    auto a = n.spawn("A", [b, d](troupe::actor& self) -> troupe::behavior {
      return {[&self, b, d](int x) -> caf::result<int> {
        auto rp = self.make_response_promise<int>();
        self.request(b, 5s, x + 1).then([&self, d, rp](int y) mutable {
          self.tell(d, note_atom::value, y);
          rp.deliver(y);
        });
        return rp;
      }};
    });
    auto r = n.request<int>(a, 5s, 1);
    REQUIRE(r.ok());
    CHECK(*r == 30);
    n.stop();

    std::ifstream in{trace_file};
    REQUIRE(in.good());
    std::map<std::string, json> by_name;
    std::string line;
    std::set<std::string> traces;
    while (std::getline(in, line)) {
      auto doc = json::parse(line);
      for (auto& s : doc["resourceSpans"][0]["scopeSpans"][0]["spans"]) {
        by_name[s["name"]] = s;
        traces.insert(s["traceId"].get<std::string>());
      }
    }
    REQUIRE(by_name.count("request") == 1);
    REQUIRE(by_name.count("A") == 1);
    REQUIRE(by_name.count("B") == 1);
    REQUIRE(by_name.count("C") == 1);
    REQUIRE(by_name.count("D") == 1);
    CHECK(traces.size() == 1);
    CHECK_FALSE(by_name["request"].contains("parentSpanId"));
    CHECK(by_name["A"]["parentSpanId"] == by_name["request"]["spanId"]);
    CHECK(by_name["B"]["parentSpanId"] == by_name["A"]["spanId"]);
    CHECK(by_name["C"]["parentSpanId"] == by_name["B"]["spanId"]);
    CHECK(by_name["D"]["parentSpanId"] == by_name["A"]["spanId"]);

    // The log line written inside C carries the trace id.
    std::ifstream log{log_file};
    std::string all((std::istreambuf_iterator<char>(log)),
                    std::istreambuf_iterator<char>());
    auto trace_id = *traces.begin();
    CHECK(all.find("trace=" + trace_id + " C handles 3") != std::string::npos);
    std::remove(trace_file.c_str());
    std::remove(log_file.c_str());
    REQUIRE(troupe::logging::configure({}).ok());
  }

  TEST_CASE("with sampling at 0 no span is recorded and messages travel unwrapped") {
    auto cfg = troupe::default_config();
    cfg.scheduler.threads = 2;
    cfg.metrics.enabled = false;
    cfg.log.level = troupe::log_level::off;
    auto started = troupe::node::start(cfg);
    REQUIRE(started.ok());
    auto& n = **started;
    auto a = n.spawn("A", [](troupe::actor& self) -> troupe::behavior {
      return {[&self](int x) { return self.current_context() == nullptr ? x : -1; }};
    });
    auto r = n.request<int>(a, 5s, 7);
    REQUIRE(r.ok());
    CHECK(*r == 7);
    CHECK(n.tracer().recorded() == 0);
  }

  TEST_CASE("a tenant travels with the request even when the trace is not sampled") {
    auto cfg = troupe::default_config();
    cfg.scheduler.threads = 2;
    cfg.metrics.enabled = false;
    cfg.log.level = troupe::log_level::off;
    auto started = troupe::node::start(cfg);
    REQUIRE(started.ok());
    auto& n = **started;
    auto b = n.spawn("B", [](troupe::actor& self) -> troupe::behavior {
      return {[&self](int) -> std::string {
        auto* ctx = self.current_context();
        return ctx != nullptr ? ctx->tenant : std::string{"<none>"};
      }};
    });
    auto a = n.spawn("A", [b](troupe::actor& self) -> troupe::behavior {
      return {[&self, b](int x) { return self.delegate(b, x); }};
    });
    auto r = n.request_message(a, 5s, caf::make_message(1), "acme");
    REQUIRE(r.ok());
    REQUIRE(r->match_elements<std::string>());
    CHECK(r->get_as<std::string>(0) == "acme");
    CHECK(n.tracer().recorded() == 0);
  }
}
