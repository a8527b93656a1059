// The job spec decoder against hostile input (a table of rows, each with
// the error it must give), encode/decode round trips, durations, signal
// names and the mapping to the placement engine's gang request.

#include "troupe/actors/errc.hpp"
#include "troupe/actors/job_spec.hpp"

#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace troupe::actors;

namespace {

/// A valid spec with one field replaced: `field` is JSON text spliced in.
std::string with(const std::string& extra) {
  return R"({"name": "t", "command": ["true"])" + (extra.empty() ? "" : ", " + extra) +
         "}";
}

std::string nested(size_t depth) {
  std::string s = with(R"("env": )");
  s.pop_back();
  return s + std::string(depth, '[') + std::string(depth, ']') + "}";
}

const char* full_spec = R"({
  "name": "train-llm", "command": ["python", "train.py", "--lr", "3e-4"], "replicas": 4,
  "min_replicas": 2,
  "env": {"NCCL_DEBUG": "INFO", "EMPTY": ""}, "working_dir": "/data/run1",
  "resources": {"gpus": 8, "gpu_model": "H100", "cpu_milli": 32000, "memory_mib": 256000},
  "class": "training", "priority": -5, "preemptible": true, "spot_tolerant": true,
  "labels": {"tenant": "acme", "team": "ml", "project": "llm", "env": "prod",
             "custom": {"owner": "ada"}},
  "time_limit": "2h30m", "checkpoint": {"signal": "SIGUSR2", "timeout": "5m", "interval": "20m"},
  "restart": {"policy": "on-failure", "max_restarts": 7,
              "backoff": {"initial": "500ms", "max": "1m", "multiplier": 3, "reset_after": "1h"}},
  "idempotency_key": "c0ffee-42"})";

} // namespace

TEST_SUITE("job_spec") {

  TEST_CASE("a minimal spec takes the defaults") {
    auto s = decode_job_spec(R"({"name": "hello", "command": ["echo", "hi"]})");
    REQUIRE(s.ok());
    CHECK(s->name == "hello");
    CHECK(s->argv() == std::vector<std::string>{"echo", "hi"});
    CHECK(s->replicas == 1);
    CHECK(s->kind == job_class::batch);
    CHECK(s->restart.mode == restart_mode::never);
    CHECK_FALSE(s->checkpoint);
    CHECK(s->time_limit == troupe::duration{0});
  }

  TEST_CASE("a full spec decodes every field") {
    auto s = decode_job_spec(full_spec);
    REQUIRE_MESSAGE(s.ok(), s.err().message());
    CHECK(s->replicas == 4);
    CHECK(s->min_replicas == std::optional<uint32_t>{2});
    CHECK(s->env.at("NCCL_DEBUG") == "INFO");
    CHECK(s->working_dir == "/data/run1");
    CHECK(s->resources == replica_resources{8, "H100", 32000, 256000});
    CHECK(s->kind == job_class::training);
    CHECK(s->priority == -5);
    CHECK(s->preemptible);
    CHECK(s->spot_tolerant);
    CHECK(s->labels.tenant == "acme");
    CHECK(s->labels.custom.at("owner") == "ada");
    CHECK(s->time_limit == 150min);
    REQUIRE(s->checkpoint);
    CHECK(s->checkpoint->signal == SIGUSR2);
    CHECK(s->checkpoint->timeout == 5min);
    CHECK(s->checkpoint->interval == 20min);
    CHECK(s->restart.mode == restart_mode::on_failure);
    CHECK(s->restart.max_restarts == 7);
    CHECK(s->restart.backoff == backoff_policy{500ms, 1min, 3, 1h});
    CHECK(s->idempotency_key == "c0ffee-42");
  }

  TEST_CASE("a shell string runs through /bin/sh -c") {
    auto s = decode_job_spec(
        with("").replace(with("").find("[\"true\"]"), 8, R"("echo $HOME | tr a-z A-Z")"));
    REQUIRE_MESSAGE(s.ok(), s.err().message());
    CHECK(s->shell);
    CHECK(s->argv() ==
          std::vector<std::string>{"/bin/sh", "-c", "echo $HOME | tr a-z A-Z"});
  }

  TEST_CASE("encode then decode gives the same spec") {
    for (const char* text :
         {full_spec, R"({"name": "a", "command": "sleep 1"})",
          R"({"name": "b", "command": ["x"], "restart": {"policy": "always"},
                               "checkpoint": {}, "time_limit": 3600})"}) {
      auto s = decode_job_spec(text);
      REQUIRE_MESSAGE(s.ok(), s.err().message());
      auto encoded = encode_job_spec(*s);
      auto back = decode_job_spec(encoded);
      REQUIRE_MESSAGE(back.ok(), back.err().message() << " in " << encoded);
      CHECK(*back == *s);
      CHECK(encode_job_spec(*back) == encoded);
    }
  }

  TEST_CASE("encoding a spec built in code with invalid UTF-8 does not throw") {
    job_spec s;
    s.name = "x";
    s.command = {"echo", "\xff"};
    auto back = decode_job_spec(encode_job_spec(s));
    REQUIRE(back.ok());
    CHECK(back->command[1] == "\xef\xbf\xbd"); // U+FFFD
  }

  TEST_CASE("hostile input is refused with the field path and what was expected") {
    struct row {
      std::string input;
      std::string error; // a substring of the message
    };
    const std::string huge_name(100, 'a');
    const std::vector<row> rows = {
        {"", "job: not valid JSON"},
        {"{", "job: not valid JSON"},
        {"[]", "job: expected an object, got an array of 0 items"},
        {"42", "job: expected an object, got 42"},
        {"{}", "job.name: missing"},
        {R"({"name": "x"})", "job.command: missing"},
        {R"({"name": 7, "command": ["a"]})", "job.name: expected a name of 1 to 63"},
        {R"({"name": "", "command": ["a"]})", "job.name: expected a name"},
        {R"({"name": "a b", "command": ["a"]})",
         "job.name: expected a name of 1 to 63 characters [A-Za-z0-9._-], got \"a b\""},
        {R"({"name": ")" + huge_name + R"(", "command": ["a"]})",
         "job.name: expected a name"},
        {R"({"name": "x", "command": []})",
         "job.command: expected a list of 1 to 1024 arguments, got an array of 0 items"},
        {R"({"name": "x", "command": ""})", "job.command: expected a non-empty string"},
        {R"({"name": "x", "command": "   "})",
         "job.command: expected a non-blank shell command"},
        {R"({"name": "x", "command": [""]})",
         "job.command[0]: expected a non-empty string"},
        {R"({"name": "x", "command": ["a", 3]})", "job.command[1]: expected a string"},
        {R"({"name": "x", "command": {"a": 1}})",
         "job.command: expected a list of arguments or a shell command string, got an "
         "object"},
        {R"({"name": "x", "command": ["a", "b\u0000c"]})", "job.command[1]:"},
        {with(R"("min_replicas": 0)"),
         "job.min_replicas: expected an integer in [1, 1], got 0"},
        {with(R"("replicas": 3, "min_replicas": 4)"),
         "job.min_replicas: expected an integer in [1, 3], got 4"},
        {with(R"("min_replicas": "1")"), "job.min_replicas: expected an integer"},
        {with(R"("replicas": 0)"),
         "job.replicas: expected an integer in [1, 10000], got 0"},
        {with(R"("replicas": -3)"),
         "job.replicas: expected an integer in [1, 10000], got -3"},
        {with(R"("replicas": 18446744073709551615)"),
         "job.replicas: expected an integer in [1, 10000], got 18446744073709551615"},
        {with(R"("replicas": 2.5)"),
         "job.replicas: expected an integer in [1, 10000], got a fractional number"},
        {with(R"("replicas": "4")"),
         "job.replicas: expected an integer in [1, 10000], got \"4\""},
        {with(R"("replicas": 1e400)"), "job: not valid JSON"},
        {with(R"("replicass": 2)"),
         "job.replicass: unknown key (did you mean 'replicas'?)"},
        {with(R"("comand": "x")"), "job.comand: unknown key (did you mean 'command'?)"},
        {with(R"("zzzzzz": 1)"), "job.zzzzzz: unknown key"},
        {with(R"("env": {"1BAD": "x"})"),
         "job.env: key \"1BAD\": expected a variable name"},
        {with(R"("env": {"A=B": "x"})"),
         "job.env: key \"A=B\": expected a variable name"},
        {with(R"("env": {"A": 1})"), "job.env.A: expected a string"},
        {with(R"("env": ["A"])"), "job.env: expected an object of at most 512 entries"},
        {with(R"("working_dir": "relative/dir")"),
         "job.working_dir: expected an absolute path"},
        {with(R"("resources": {"gpus": -1})"),
         "job.resources.gpus: expected an integer in [0, 1024], got -1"},
        {with(R"("resources": {"gpus": 100000})"),
         "job.resources.gpus: expected an integer in [0, 1024]"},
        {with(R"("resources": {"gpu": 1})"),
         "job.resources.gpu: unknown key (did you mean 'gpus'?)"},
        {with(R"("resources": {"memory_mib": 99999999999999})"),
         "job.resources.memory_mib: expected an integer"},
        {with(R"("class": "trainign")"),
         "job.class: expected one of training|serving|interactive|eval|batch, got "
         "\"trainign\" (did you mean 'training'?)"},
        {with(R"("class": null)"),
         "job.class: expected one of training|serving|interactive|eval|batch, got null"},
        {with(R"("priority": 9999999999)"),
         "job.priority: expected an integer in [-1000000, 1000000]"},
        {with(R"("preemptible": "yes")"),
         "job.preemptible: expected true or false, got \"yes\""},
        {with(R"("spot_tolerant": 1)"),
         "job.spot_tolerant: expected true or false, got 1"},
        {with(R"("labels": {"tenant": 5})"), "job.labels.tenant: expected a string"},
        {with(R"("labels": {"teem": "x"})"),
         "job.labels.teem: unknown key (did you mean 'team'?)"},
        {with(R"("labels": {"custom": {"": "x"}})"),
         "job.labels.custom: key \"\": expected a non-empty key"},
        {with(R"("time_limit": "2x")"),
         "job.time_limit: expected a duration in [1s, 365d]"},
        {with(R"("time_limit": "30m2h")"), "job.time_limit: expected a duration"},
        {with(R"("time_limit": "1h1h")"), "job.time_limit: expected a duration"},
        {with(R"("time_limit": "")"), "job.time_limit: expected a duration"},
        {with(R"("time_limit": -5)"), "job.time_limit: expected a duration"},
        {with(R"("time_limit": 0)"), "job.time_limit: expected a duration in [1s, 365d]"},
        {with(R"("time_limit": "99999999999999999h")"),
         "job.time_limit: expected a duration"},
        {with(R"("time_limit": "400d")"),
         "job.time_limit: expected a duration in [1s, 365d]"},
        {with(R"("checkpoint": {"signal": "SIGFOO"})"),
         "job.checkpoint.signal: expected a signal name"},
        {with(R"("checkpoint": {"signal": "SIGKILL"})"),
         "job.checkpoint.signal: expected a signal name"},
        {with(R"("checkpoint": {"signal": 10})"),
         "job.checkpoint.signal: expected a signal name"},
        {with(R"("checkpoint": {"timeout": "0s"})"),
         "job.checkpoint.timeout: expected a duration in [1ms, 1d]"},
        {with(R"("checkpoint": "SIGUSR1")"), "job.checkpoint: expected an object"},
        {with(R"("checkpoint": {"interval": "500ms"})"),
         "job.checkpoint.interval: expected a duration in [1s, 7d]"},
        {with(R"("checkpoint": {"interval": "8d"})"),
         "job.checkpoint.interval: expected a duration in [1s, 7d]"},
        {with(R"("checkpoint": {"interval": -60})"),
         "job.checkpoint.interval: expected a duration in [1s, 7d]"},
        {with(R"("checkpoint": {"interval": true})"),
         "job.checkpoint.interval: expected a duration in [1s, 7d]"},
        {with(R"("checkpoint": {"every": "1m"})"), "job.checkpoint.every: unknown"},
        {with(R"("restart": {"policy": "onfailure"})"),
         "job.restart.policy: expected one of never|on-failure|always, got \"onfailure\" "
         "(did you mean 'on-failure'?)"},
        {with(R"("restart": {"policy": "never", "max_restarts": 3})"),
         "job.restart.max_restarts: not allowed with policy \"never\""},
        {with(R"("restart": {"policy": "always", "max_restarts": -1})"),
         "job.restart.max_restarts: expected an integer in [0, 1000000]"},
        {with(R"("restart": {"policy": "always", "backoff": {"multiplier": 0}})"),
         "job.restart.backoff.multiplier: expected an integer in [1, 16], got 0"},
        {with(
             R"("restart": {"policy": "always", "backoff": {"initial": "1m", "max": "1s"}})"),
         "job.restart.backoff.max: 1s is less than initial 1m"},
        {with(R"("restart": {"policy": "always", "backof": {}})"),
         "job.restart.backof: unknown key (did you mean 'backoff'?)"},
        {with(R"("idempotency_key": "")"),
         "job.idempotency_key: expected a non-empty string"},
        {with(R"("idempotency_key": "a\nb")"),
         "job.idempotency_key: expected a non-empty string of at most 128 bytes without "
         "control characters"},
        {with(R"("idempotency_key": ")" + std::string(200, 'k') + "\""),
         "job.idempotency_key: expected a non-empty string of at most 128 bytes"},
        {nested(20), "job: nested deeper than 8 levels"},
        {with(R"("env": {"A": ")" + std::string(40000, 'v') + "\"}"),
         "job.env.A: expected a string of at most 32768 bytes"},
        {std::string(2 << 20, ' '),
         "job: document of 2097152 bytes is over the limit of 1048576"},
    };
    CHECK(rows.size() >= 30);
    for (const auto& r : rows) {
      auto s = decode_job_spec(r.input);
      INFO("input: " << r.input.substr(0, 200));
      REQUIRE_FALSE(s.ok());
      CHECK(s.err().is(errc::invalid_argument));
      INFO("error: " << s.err().message());
      CHECK(s.err().message().find(r.error) != std::string::npos);
    }
  }

  TEST_CASE("many arguments are refused past the limit") {
    std::string args = "[";
    for (int i = 0; i < 1025; ++i)
      args += std::string{i ? "," : ""} + "\"a\"";
    auto s = decode_job_spec(R"({"name": "x", "command": )" + args + "]}");
    REQUIRE_FALSE(s.ok());
    CHECK(s.err().message().find(
              "job.command: expected a list of 1 to 1024 arguments, got an "
              "array of 1025 items") != std::string::npos);
  }

  TEST_CASE("durations parse and format in canonical form") {
    CHECK(parse_duration("2h30m") == troupe::duration{150min});
    CHECK(parse_duration("1d2h3m4s5ms") == troupe::duration{26h + 3min + 4s + 5ms});
    CHECK(parse_duration("90s") == troupe::duration{90s});
    CHECK(parse_duration("500ms") == troupe::duration{500ms});
    CHECK_FALSE(parse_duration("1.5h"));
    CHECK_FALSE(parse_duration("h"));
    CHECK_FALSE(parse_duration("5"));
    CHECK_FALSE(parse_duration("5 s"));
    CHECK_FALSE(parse_duration("-5s"));
    CHECK(format_duration(150min) == "2h30m");
    CHECK(format_duration(90s) == "1m30s");
    CHECK(format_duration(1500ms) == "1s500ms");
    CHECK(format_duration(troupe::duration{0}) == "0s");
    for (auto d : {1ms, 59999ms, 86400001ms})
      CHECK(parse_duration(format_duration(d)) == troupe::duration{d});
  }

  TEST_CASE("signal names") {
    CHECK(parse_signal_name("SIGUSR1") == SIGUSR1);
    CHECK(parse_signal_name("USR2") == SIGUSR2);
    CHECK(parse_signal_name("SIGTERM") == SIGTERM);
    CHECK_FALSE(parse_signal_name("SIGKILL"));
    CHECK_FALSE(parse_signal_name("sigusr1"));
    CHECK(signal_name(SIGUSR1) == "SIGUSR1");
    CHECK(signal_name(SIGKILL) == "SIGKILL");
  }

  TEST_CASE("a spec maps to a gang request of one bundle per replica") {
    auto s = decode_job_spec(full_spec);
    REQUIRE(s.ok());
    auto g = to_placement_request(*s);
    CHECK(g.bundles.size() == 4);
    CHECK(g.bundles[0].gpus == 8);
    CHECK(g.bundles[0].gpu_models == std::vector<std::string>{"H100"});
    CHECK(g.bundles[0].cpu_milli == 32000);
    CHECK(g.bundles[0].memory_mib == 256000);
    CHECK(g.tenant == "acme");
    CHECK(g.cost_labels.at("team") == "ml");
    CHECK(g.cost_labels.at("owner") == "ada");
    CHECK(g.priority == -5);
    CHECK(g.preemptible);
    CHECK(g.spot_tolerant);
    CHECK(g.validate().ok());
    auto one = to_placement_request(*s, 2);
    CHECK(one.bundles.size() == 1);
    CHECK(one.bundles[0] == g.bundles[0]);
  }

} // TEST_SUITE
