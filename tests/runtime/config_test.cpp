#include "troupe/runtime/config.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using troupe::config_binder;
using troupe::config_schema;
using troupe::env_map;
using troupe::load_config_string;
using troupe::log_level;
using troupe::node_config;
using troupe::scheduler_policy;
using troupe::runtime::errc;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::size_t count_lines(const std::string& text) {
  return text.empty()
             ? 0
             : 1 + static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

/// A config of another module, to show the binder is not node-specific.
struct pool_section {
  std::vector<std::string> hosts;
  std::string strategy = "pack";
  std::chrono::nanoseconds lease = 30s;
  bool operator==(const pool_section&) const = default;
};

struct placement_config {
  pool_section pool;
  bool operator==(const placement_config&) const = default;
};

config_schema<placement_config> placement_schema() {
  config_schema<placement_config> s;
  s.section("placement.pool", &placement_config::pool, "GPU pool.")
      .string_list("hosts", &pool_section::hosts, {}, "Hosts of the pool.")
      .one_of("strategy", &pool_section::strategy, "pack",
              {"pack", "spread", "strict_pack", "strict_spread", "topology"},
              "How gangs are placed.")
      .duration("lease", &pool_section::lease, 30s, troupe::duration_range{1s, 1h},
                "Lease length.");
  return s;
}

std::filesystem::path example_file() {
  return std::filesystem::path{TROUPE_SOURCE_DIR} / "config" / "troupe.example.toml";
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in{p, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// Writes a file under the temp dir and removes it on scope exit.
class temp_file {
public:
  temp_file(const std::string& name, const std::string& content)
      : path_(std::filesystem::temp_directory_path() /
              ("troupe_config_test_" + std::to_string(::getpid()) + "_" + name)) {
    std::ofstream out{path_, std::ios::binary};
    out << content;
  }
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

private:
  std::filesystem::path path_;
};

/// One hostile input: TOML text, environment, and substrings the error
/// must contain.
struct hostile_case {
  std::string what;
  std::string toml;
  env_map env;
  std::vector<std::string> expected;
};

std::string garbage_bytes(std::size_t n) {
  std::string out(n, '\0');
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;
  for (auto& c : out) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    c = static_cast<char>(state >> 56);
  }
  return out;
}

std::string nested(std::size_t depth, const std::string& open, const std::string& leaf,
                   const std::string& close) {
  std::string out = "a = ";
  for (std::size_t i = 0; i < depth; ++i)
    out += open;
  out += leaf;
  for (std::size_t i = 0; i < depth; ++i)
    out += close;
  return out + "\n";
}

std::vector<hostile_case> hostile_cases() {
  const std::string dur = "expected duration like \"250ms\"";
  return {
      {"unclosed table header",
       "[metrics\nport = 1\n",
       {},
       {"bad.toml:1:9: ", "expected ']'"}},
      {"unterminated string", "[node]\nname = \"abc\n", {}, {"bad.toml:2:"}},
      {"key without value", "[node]\nname =\n", {}, {"bad.toml:2:"}},
      {"unknown section",
       "\n[metricz]\nport = 1\n",
       {},
       {"bad.toml:2: metricz: unknown section (did you mean 'metrics'?)"}},
      {"unknown key with suggestion",
       "[metrics]\n\nprot = 9100\n",
       {},
       {"bad.toml:3: metrics.prot: unknown key (did you mean 'port'?)"}},
      {"unknown key at top level",
       "# comment\nport = 1\n",
       {},
       {"bad.toml:2: port: unknown key"}},
      {"string where integer expected",
       "[metrics]\nport = \"abc\"\n",
       {},
       {"bad.toml:2: metrics.port: expected integer in [0, 65535], got string "
        "\"abc\""}},
      {"negative port",
       "[metrics]\nport = -1\n",
       {},
       {"bad.toml:2: metrics.port: expected integer in [0, 65535], got -1"}},
      {"port 70000",
       "[metrics]\nenabled = true\nport = 70000\n",
       {},
       {"bad.toml:3: metrics.port: expected integer in [0, 65535], got 70000"}},
      {"ratio 1.5",
       "[trace]\nsampling_ratio = 1.5\n",
       {},
       {"bad.toml:2: trace.sampling_ratio: expected number in [0, 1], got 1.5"}},
      {"NaN ratio",
       "[trace]\nsampling_ratio = nan\n",
       {},
       {"bad.toml:2: trace.sampling_ratio: expected number in [0, 1], got nan"}},
      {"infinite multiplier",
       "[supervision]\nbackoff_multiplier = inf\n",
       {},
       {"bad.toml:2: supervision.backoff_multiplier: expected number in [1, "
        "100], got inf"}},
      {"integer overflowing 64 bits",
       "[metrics]\nport = 99999999999999999999\n",
       {},
       {"bad.toml:2:", "not representable in 64 bits"}},
      {"int64 max into a small field",
       "[scheduler]\nthreads = 9223372036854775807\n",
       {},
       {"bad.toml:2: scheduler.threads: expected integer in [0, 1024], got "
        "9223372036854775807"}},
      {"float where integer expected",
       "[scheduler]\nthreads = 4.0\n",
       {},
       {"bad.toml:2: scheduler.threads: expected integer in [0, 1024], got "
        "float 4.0"}},
      {"string where boolean expected",
       "[metrics]\nenabled = \"yes\"\n",
       {},
       {"bad.toml:2: metrics.enabled: expected boolean, got string \"yes\""}},
      {"date where integer expected",
       "[scheduler]\nthreads = 1979-05-27\n",
       {},
       {"bad.toml:2: scheduler.threads: expected integer in [0, 1024], got date"}},
      {"duration in parsecs",
       "[shutdown]\ntimeout = \"5 parsecs\"\n",
       {},
       {"bad.toml:2: shutdown.timeout: " + dur, "got \"5 parsecs\""}},
      {"negative duration",
       "[supervision]\nmax_period = \"-1s\"\n",
       {},
       {"bad.toml:2: supervision.max_period: " + dur, "got \"-1s\" (negative)"}},
      {"duration with exponent",
       "[supervision]\nbackoff_max = \"1e99s\"\n",
       {},
       {"bad.toml:2: supervision.backoff_max: " + dur, "got \"1e99s\""}},
      {"duration overflowing nanoseconds",
       "[shutdown]\ntimeout = \"99999999999h\"\n",
       {},
       {"bad.toml:2: shutdown.timeout: " + dur, "(too large)"}},
      {"duration without unit",
       "[shutdown]\ntimeout = 5\n",
       {},
       {"bad.toml:2: shutdown.timeout: " + dur, "got integer 5"}},
      {"empty enum",
       "[scheduler]\npolicy = \"\"\n",
       {},
       {"bad.toml:2: scheduler.policy: expected one of "
        "sharing|stealing|testing, got \"\""}},
      {"enum case mismatch",
       "[log]\nlevel = \"INFO\"\n",
       {},
       {"bad.toml:2: log.level: expected one of "
        "trace|debug|info|warn|error|off, got \"INFO\" (did you mean 'info'?)"}},
      {"enum typo",
       "[scheduler]\npolicy = \"staeling\"\n",
       {},
       {"got \"staeling\" (did you mean 'stealing'?)"}},
      {"array where string expected",
       "[node]\nname = [\"a\", \"b\"]\n",
       {},
       {"bad.toml:2: node.name: expected string, got array"}},
      {"array where enum expected",
       "[scheduler]\npolicy = [\"stealing\"]\n",
       {},
       {"bad.toml:2: scheduler.policy: expected one of sharing|stealing|testing, "
        "got array"}},
      {"inline table where integer expected",
       "[metrics]\nport = { x = 1 }\n",
       {},
       {"bad.toml:2: metrics.port: expected integer in [0, 65535], got table"}},
      {"sub-table where integer expected",
       "[metrics.port]\nx = 1\n",
       {},
       {"bad.toml:1: metrics.port: expected integer in [0, 65535], got table"}},
      {"scalar where section expected",
       "metrics = 5\n",
       {},
       {"bad.toml:1: metrics: expected section [metrics], got integer 5"}},
      {"array of tables where section expected",
       "[[metrics]]\nport = 1\n",
       {},
       {"bad.toml:1: metrics: expected section [metrics], got array"}},
      {"duplicate key",
       "[metrics]\nport = 1\nport = 2\n",
       {},
       {"bad.toml:3:", "cannot redefine existing integer 'port'"}},
      {"duplicate section",
       "[metrics]\nport = 1\n[metrics]\nenabled = true\n",
       {},
       {"bad.toml:3:"}},
      {"non-UTF-8 string",
       "[node]\nname = \"\xff\xfe\"\n",
       {},
       {"bad.toml:2:", "invalid utf-8"}},
      {"non-UTF-8 comment", "# \xc0\xaf\n", {}, {"bad.toml:1:", "invalid utf-8"}},
      {"NUL byte",
       std::string("[node]\nname = \"a\"") + '\0' + "\n",
       {},
       {"bad.toml:2:"}},
      {"control characters in a key",
       "[node]\n\"na\\u0001me\" = 1\n",
       {},
       {"bad.toml:2: node.\"na\\x01me\": unknown key"}},
      {"1 MB of random bytes", garbage_bytes(1 << 20), {}, {"bad.toml:1:"}},
      {"1 MB of one line of junk", std::string(1 << 20, '!'), {}, {"bad.toml:1:1:"}},
      {"deeply nested inline tables",
       nested(100000, "{b=", "1", "}"),
       {},
       {"bad.toml:1:", "exceeded maximum nested value depth"}},
      {"deeply nested arrays",
       nested(100000, "[", "1", "]"),
       {},
       {"bad.toml:1:", "exceeded maximum nested value depth"}},
      {"shallow nested table where string expected",
       "[node]\nname = {a = {b = {c = 1}}}\n",
       {},
       {"bad.toml:2: node.name: expected string, got table"}},
      {"backoff_initial above backoff_max",
       "[supervision]\nbackoff_initial = \"10s\"\nbackoff_max = \"1s\"\n",
       {},
       {"bad.toml: supervision.backoff_initial (10s) exceeds "
        "supervision.backoff_max (1s)"}},
      {"env integer garbage",
       "",
       {{"TROUPE_METRICS_PORT", "x"}},
       {"env TROUPE_METRICS_PORT: expected integer in [0, 65535], got \"x\""}},
      {"env integer with spaces",
       "",
       {{"TROUPE_METRICS_PORT", " 9100"}},
       {"env TROUPE_METRICS_PORT: expected integer in [0, 65535], got \" 9100\""}},
      {"env integer overflow",
       "",
       {{"TROUPE_SUPERVISION_SEED", "99999999999999999999"}},
       {"env TROUPE_SUPERVISION_SEED: expected integer in [0, "
        "9223372036854775807], got \"99999999999999999999\""}},
      {"env negative seed",
       "",
       {{"TROUPE_SUPERVISION_SEED", "-1"}},
       {"env TROUPE_SUPERVISION_SEED: expected integer", "got \"-1\""}},
      {"env duration garbage",
       "",
       {{"TROUPE_SHUTDOWN_TIMEOUT", "5 parsecs"}},
       {"env TROUPE_SHUTDOWN_TIMEOUT: " + dur, "got \"5 parsecs\""}},
      {"env boolean garbage",
       "",
       {{"TROUPE_STORE_SYNC_WRITES", "yes"}},
       {"env TROUPE_STORE_SYNC_WRITES: expected boolean (true, false, 1 or 0), "
        "got \"yes\""}},
      {"env NaN ratio",
       "",
       {{"TROUPE_TRACE_SAMPLING_RATIO", "nan"}},
       {"env TROUPE_TRACE_SAMPLING_RATIO: expected number in [0, 1], got \"nan\""}},
      {"env enum garbage",
       "",
       {{"TROUPE_LOG_LEVEL", "loud"}},
       {"env TROUPE_LOG_LEVEL: expected one of trace|debug|info|warn|error|off, "
        "got \"loud\""}},
      {"env non-UTF-8 string",
       "",
       {{"TROUPE_NODE_NAME", "\xff\x01"}},
       {"env TROUPE_NODE_NAME: expected UTF-8 text, got \"\\xff\\x01\""}},
      {"env unknown key in a known section",
       "",
       {{"TROUPE_METRICS_PROT", "1"}},
       {"env TROUPE_METRICS_PROT: unknown setting (did you mean "
        "TROUPE_METRICS_PORT?)"}},
      {"env garbage next to a valid file",
       "[metrics]\nport = 9000\n",
       {{"TROUPE_METRICS_PORT", "9000x"}},
       {"env TROUPE_METRICS_PORT: expected integer in [0, 65535], got \"9000x\""}},
  };
}

} // namespace

TEST_SUITE("config") {
  TEST_CASE("default_config matches the struct initialisers and the documented "
            "defaults") {
    const node_config c = troupe::default_config();
    CHECK(c == node_config{});
    CHECK(c.node.name == "troupe-local");
    CHECK(c.node.tenant == "default");
    CHECK(c.scheduler.threads == 0);
    CHECK(c.scheduler.policy == scheduler_policy::stealing);
    CHECK_FALSE(c.scheduler.busy_poll);
    CHECK(c.log.level == log_level::info);
    CHECK(c.log.file.empty());
    CHECK(c.log.pattern.empty());
    CHECK(c.metrics.enabled);
    CHECK(c.metrics.bind == "127.0.0.1");
    CHECK(c.metrics.port == 0);
    CHECK(c.metrics.latency_sample_every == 16);
    CHECK(c.trace.sampling_ratio == 0.0);
    CHECK(c.trace.export_path.empty());
    CHECK(c.trace.queue_capacity == 65536);
    CHECK(c.supervision.max_restarts == 3);
    CHECK(c.supervision.max_period == 5s);
    CHECK(c.supervision.backoff_initial == 10ms);
    CHECK(c.supervision.backoff_max == 5s);
    CHECK(c.supervision.backoff_multiplier == 2.0);
    CHECK(c.supervision.backoff_jitter == 0.2);
    CHECK(c.supervision.seed == 0);
    CHECK(c.store.path.empty());
    CHECK(c.store.sync_writes);
    CHECK(c.shutdown.timeout == 5s);
  }

  TEST_CASE("an empty file and an empty environment give the defaults") {
    auto r = load_config_string("", "empty.toml", {});
    REQUIRE(r.ok());
    CHECK(*r == troupe::default_config());
    auto comments_only = load_config_string("# nothing\n\n", "c.toml", {});
    REQUIRE(comments_only.ok());
    CHECK(*comments_only == troupe::default_config());
  }

  TEST_CASE("a full valid file sets every key") {
    const std::string text = R"(
[node]
name = "gpu-a7"
tenant = "research"

[scheduler]
threads = 16
policy = "sharing"
busy_poll = true

[log]
level = "debug"
file = "/var/log/troupe.log"
pattern = "%v"

[metrics]
enabled = false
bind = "0.0.0.0"
port = 9100
latency_sample_every = 64

[trace]
sampling_ratio = 0.25
export_path = "/tmp/traces.json"
queue_capacity = 1024

[supervision]
max_restarts = 10
max_period = "1m"
backoff_initial = "250ms"
backoff_max = "30s"
backoff_multiplier = 3
backoff_jitter = 0.5
seed = 42

[store]
path = "/var/lib/troupe"
sync_writes = false

[shutdown]
timeout = "1h30m"
)";
    auto r = load_config_string(text, "full.toml", {});
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().message()));
    const auto& c = *r;
    CHECK(c.node.name == "gpu-a7");
    CHECK(c.node.tenant == "research");
    CHECK(c.scheduler.threads == 16);
    CHECK(c.scheduler.policy == scheduler_policy::sharing);
    CHECK(c.scheduler.busy_poll);
    CHECK(c.log.level == log_level::debug);
    CHECK(c.log.file == "/var/log/troupe.log");
    CHECK(c.log.pattern == "%v");
    CHECK_FALSE(c.metrics.enabled);
    CHECK(c.metrics.bind == "0.0.0.0");
    CHECK(c.metrics.port == 9100);
    CHECK(c.metrics.latency_sample_every == 64);
    CHECK(c.trace.sampling_ratio == 0.25);
    CHECK(c.trace.export_path == "/tmp/traces.json");
    CHECK(c.trace.queue_capacity == 1024);
    CHECK(c.supervision.max_restarts == 10);
    CHECK(c.supervision.max_period == 1min);
    CHECK(c.supervision.backoff_initial == 250ms);
    CHECK(c.supervision.backoff_max == 30s);
    CHECK(c.supervision.backoff_multiplier == 3.0);
    CHECK(c.supervision.backoff_jitter == 0.5);
    CHECK(c.supervision.seed == 42);
    CHECK(c.store.path == "/var/lib/troupe");
    CHECK_FALSE(c.store.sync_writes);
    CHECK(c.shutdown.timeout == 90min);
  }

  TEST_CASE("a partial file keeps the defaults of keys it does not set") {
    auto r = load_config_string("[metrics]\nport = 9100\n", "p.toml", {});
    REQUIRE(r.ok());
    node_config expected;
    expected.metrics.port = 9100;
    CHECK(*r == expected);
  }

  TEST_CASE("durations accept every unit, fractions and combinations") {
    struct row {
      std::string text;
      std::chrono::nanoseconds expected;
    };
    const std::vector<row> rows{
        {"7ns", 7ns},
        {"10us", 10us},
        {"3\xC2\xB5s", 3us},
        {"250ms", 250ms},
        {"5s", 5s},
        {"2m", 2min},
        {"1h", 1h},
        {"1h30m", 90min},
        {"1.5s", 1500ms},
        {"0s", 0s},
        {"0.000000001s", 1ns},
        {"2562047h", 2562047h},
    };
    for (const auto& r : rows) {
      INFO(r.text);
      auto file =
          load_config_string("[shutdown]\ntimeout = \"" + r.text + "\"\n", "d.toml", {});
      REQUIRE_MESSAGE(file.ok(), (file.ok() ? "" : file.err().message()));
      CHECK(file->shutdown.timeout == r.expected);
      auto env = load_config_string("", "d.toml", {{"TROUPE_SHUTDOWN_TIMEOUT", r.text}});
      REQUIRE(env.ok());
      CHECK(env->shutdown.timeout == r.expected);
    }
  }

  TEST_CASE("environment overrides beat the file") {
    const std::string text =
        "[metrics]\nport = 9000\nenabled = true\n[node]\nname = \"from-file\"\n";
    const env_map env{
        {"TROUPE_METRICS_PORT", "9100"},
        {"TROUPE_METRICS_ENABLED", "0"},
        {"TROUPE_SCHEDULER_POLICY", "testing"},
        {"TROUPE_SUPERVISION_BACKOFF_INITIAL", "20ms"},
        {"TROUPE_SUPERVISION_BACKOFF_JITTER", "0.75"},
        {"TROUPE_LOG_FILE", ""},
        {"TROUPE_STORE_SYNC_WRITES", "false"},
        // Not ours: no section of that name, or not TROUPE_ at all.
        {"TROUPE_HOME", "/opt/troupe"},
        {"TROUPE_PLACEMENT_STRATEGY", "pack"},
        {"PATH", "/usr/bin"},
    };
    auto r = load_config_string(text, "env.toml", env);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().message()));
    CHECK(r->metrics.port == 9100);
    CHECK_FALSE(r->metrics.enabled);
    CHECK(r->node.name == "from-file"); // not overridden
    CHECK(r->scheduler.policy == scheduler_policy::testing);
    CHECK(r->supervision.backoff_initial == 20ms);
    CHECK(r->supervision.backoff_jitter == 0.75);
    CHECK(r->log.file.empty());
    CHECK_FALSE(r->store.sync_writes);
  }

  TEST_CASE("a bad file value is reported even when the environment overrides it") {
    auto r = load_config_string("[metrics]\nport = 70000\n", "bad.toml",
                                {{"TROUPE_METRICS_PORT", "9100"}});
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.err().message(), "bad.toml:2: metrics.port:"));
  }

  TEST_CASE("to_toml round-trips defaults and a config with every key changed") {
    auto defaults =
        load_config_string(troupe::to_toml(troupe::default_config()), "rt.toml", {});
    REQUIRE(defaults.ok());
    CHECK(*defaults == troupe::default_config());

    node_config c;
    c.node.name = "quote \" backslash \\ newline \n tab \t n\xC5\x93ud";
    c.node.tenant = "";
    c.scheduler.threads = 1024;
    c.scheduler.policy = scheduler_policy::testing;
    c.scheduler.busy_poll = true;
    c.log.level = log_level::off;
    c.log.file = "C:\\logs\\troupe.log";
    c.log.pattern = "[%H:%M:%S] %v";
    c.metrics.enabled = false;
    c.metrics.bind = "::1";
    c.metrics.port = 65535;
    c.metrics.latency_sample_every = 1'000'000;
    c.trace.sampling_ratio = 0.1;
    c.trace.export_path = "/tmp/t.json";
    c.trace.queue_capacity = 10'000'000;
    c.supervision.max_restarts = 0;
    c.supervision.max_period = 90s;
    c.supervision.backoff_initial = 1500us;
    c.supervision.backoff_max = 7ns + 1s;
    c.supervision.backoff_multiplier = 1.0000001;
    c.supervision.backoff_jitter = 1.0;
    c.supervision.seed = std::numeric_limits<std::int64_t>::max();
    c.store.path = "/var/lib/troupe";
    c.store.sync_writes = false;
    c.shutdown.timeout = 0s;
    const std::string text = troupe::to_toml(c);
    auto back = load_config_string(text, "rt.toml", {});
    REQUIRE_MESSAGE(back.ok(), (back.ok() ? "" : back.err().message()));
    CHECK(*back == c);
    CHECK(troupe::to_toml(*back) == text);
  }

  TEST_CASE("the example file is to_toml of the defaults and loads to them") {
    const auto path = example_file();
    const std::string text = read_all(path);
    REQUIRE_FALSE(text.empty());
    const std::string generated = troupe::to_toml(troupe::default_config());
    REQUIRE(text.size() > generated.size());
    CHECK_MESSAGE(text.ends_with(generated),
                  "config/troupe.example.toml is stale; regenerate it from "
                  "to_toml(default_config())");
    auto r = troupe::load_config_file(path, {});
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().message()));
    CHECK(*r == troupe::default_config());
    const auto schema = troupe::node_config_schema();
    for (const auto& f : schema.decl().fields) {
      INFO(f.dotted_key());
      CHECK(contains(text, "\n" + f.key + " = "));
      CHECK(contains(text, f.env_name()));
    }
  }

  TEST_CASE("hostile configs are rejected with the line and dotted key, never a "
            "crash or an exception") {
    const auto cases = hostile_cases();
    REQUIRE(cases.size() >= 25);
    for (const auto& c : cases) {
      INFO(c.what);
      auto r = load_config_string(c.toml, "bad.toml", c.env);
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(errc::invalid_argument));
      const auto& msg = r.err().message();
      INFO(msg.substr(0, 400));
      for (const auto& e : c.expected)
        CHECK_MESSAGE(contains(msg, e), e);
    }
  }

  TEST_CASE("every problem in one file is reported, in line order, one per line") {
    const std::string text = "[metrics]\n"                  // 1
                             "port = 70000\n"               // 2
                             "prot = 1\n"                   // 3
                             "[trace]\n"                    // 4
                             "sampling_ratio = 1.5\n"       // 5
                             "[supervision]\n"              // 6
                             "max_period = \"5 parsecs\"\n" // 7
                             "seed = \"x\"\n"               // 8
                             "[scheduler]\n"                // 9
                             "policy = \"Sharing\"\n"       // 10
                             "[metricz]\n";                 // 11
    auto r = load_config_string(text, "troupe.toml", {{"TROUPE_LOG_LEVEL", "loud"}});
    REQUIRE_FALSE(r.ok());
    const auto& msg = r.err().message();
    CHECK(count_lines(msg) == 8);
    const std::vector<std::string> in_order{
        "troupe.toml:2: metrics.port:",
        "troupe.toml:3: metrics.prot: unknown key (did you mean 'port'?)",
        "troupe.toml:5: trace.sampling_ratio:",
        "troupe.toml:7: supervision.max_period:",
        "troupe.toml:8: supervision.seed: expected integer",
        "troupe.toml:10: scheduler.policy:",
        "troupe.toml:11: metricz: unknown section",
        "env TROUPE_LOG_LEVEL:",
    };
    std::size_t pos = 0;
    for (const auto& e : in_order) {
      INFO(e);
      auto found = msg.find(e, pos);
      REQUIRE(found != std::string::npos);
      pos = found + e.size();
    }
  }

  TEST_CASE("thousands of problems are capped with a count of the rest") {
    std::string text = "[node]\n";
    for (int i = 0; i < 1000; ++i)
      text += "junk" + std::to_string(i) + " = 1\n";
    auto r = load_config_string(text, "many.toml", {});
    REQUIRE_FALSE(r.ok());
    CHECK(count_lines(r.err().message()) == 101);
    CHECK(contains(r.err().message(), "... and 900 more problems"));
    CHECK(contains(r.err().message(), "many.toml:2: node.junk0: unknown key"));
  }

  TEST_CASE("load_config_file names the file in errors and reports missing "
            "files") {
    temp_file bad{"bad.toml", "[metrics]\nport = \"x\"\n"};
    auto r = troupe::load_config_file(bad.path(), {});
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.err().message(), bad.path().string() + ":2: metrics.port:"));

    temp_file good{"good.toml", "[node]\nname = \"n1\"\n"};
    auto g = troupe::load_config_file(good.path(), {{"TROUPE_NODE_TENANT", "t"}});
    REQUIRE(g.ok());
    CHECK(g->node.name == "n1");
    CHECK(g->node.tenant == "t");

    auto missing = troupe::load_config_file("/nonexistent/troupe.toml", {});
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.err().is(errc::not_found));
    CHECK(contains(missing.err().message(), "/nonexistent/troupe.toml"));

    auto dir = troupe::load_config_file(std::filesystem::temp_directory_path(), {});
    REQUIRE_FALSE(dir.ok());
    CHECK(dir.err().is(errc::invalid_argument));
  }

  TEST_CASE("a binder loads several modules' schemas from one document") {
    auto node_schema = troupe::node_config_schema();
    auto pool_schema = placement_schema();
    node_config node = node_schema.defaults();
    placement_config placement = pool_schema.defaults();
    CHECK(placement.pool.lease == 30s);
    config_binder binder;
    binder.bind(node_schema, node).bind(pool_schema, placement);
    const std::string text =
        "[node]\nname = \"n\"\n"
        "[placement.pool]\nhosts = [\"a\", \"b\"]\nstrategy = \"spread\"\n";
    auto r =
        binder.load_string(text, "both.toml", {{"TROUPE_PLACEMENT_POOL_LEASE", "2m"}});
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().message()));
    CHECK(node.node.name == "n");
    CHECK(placement.pool.hosts == std::vector<std::string>{"a", "b"});
    CHECK(placement.pool.strategy == "spread");
    CHECK(placement.pool.lease == 2min);

    // The node schema alone does not know [placement].
    auto alone = load_config_string(text, "both.toml", {});
    REQUIRE_FALSE(alone.ok());
    CHECK(contains(alone.err().message(), "both.toml:3: placement: unknown section"));

    // String lists from the environment are comma-separated.
    auto env = pool_schema.load_string(
        "", "env", {{"TROUPE_PLACEMENT_POOL_HOSTS", "gpu-1, gpu-2 ,gpu-3"}});
    REQUIRE(env.ok());
    CHECK(env->pool.hosts == std::vector<std::string>{"gpu-1", "gpu-2", "gpu-3"});
    auto empty =
        pool_schema.load_string("", "env", {{"TROUPE_PLACEMENT_POOL_HOSTS", ""}});
    REQUIRE(empty.ok());
    CHECK(empty->pool.hosts.empty());

    // Round trip through the module's own to_toml.
    placement_config p;
    p.pool.hosts = {"x", "y \"quoted\""};
    p.pool.strategy = "topology";
    p.pool.lease = 1h;
    auto back = pool_schema.load_string(pool_schema.to_toml(p), "rt", {});
    REQUIRE(back.ok());
    CHECK(*back == p);
  }

  TEST_CASE("a module's schema reports its own constraints in the house format") {
    auto s = placement_schema();
    auto r = s.load_string(
        "[placement.pool]\nstrategy = \"packk\"\nlease = \"2h\"\nhosts = [\"a\", 3]\n"
        "[placement]\nextra = 1\n",
        "config.toml", {});
    REQUIRE_FALSE(r.ok());
    const auto& msg = r.err().message();
    CHECK(contains(msg, "config.toml:2: placement.pool.strategy: expected one of "
                        "pack|spread|strict_pack|strict_spread|topology, got "
                        "\"packk\" (did you mean 'pack'?)"));
    CHECK(contains(msg, "config.toml:3: placement.pool.lease: expected duration "
                        "in [1s, 1h]"));
    CHECK(contains(msg, "config.toml:4: placement.pool.hosts: expected array of "
                        "strings, got array whose element 1 is integer 3"));
    CHECK(contains(msg, "config.toml:6: placement.extra: unknown key"));
  }

  TEST_CASE("snapshot_environment copies only TROUPE_ variables") {
    REQUIRE(::setenv("TROUPE_CONFIG_TEST_MARKER", "42", 1) == 0);
    REQUIRE(::setenv("CONFIG_TEST_NOT_TROUPE", "1", 1) == 0);
    const env_map env = troupe::snapshot_environment();
    ::unsetenv("TROUPE_CONFIG_TEST_MARKER");
    ::unsetenv("CONFIG_TEST_NOT_TROUPE");
    REQUIRE(env.count("TROUPE_CONFIG_TEST_MARKER") == 1);
    CHECK(env.at("TROUPE_CONFIG_TEST_MARKER") == "42");
    for (const auto& [name, value] : env)
      CHECK(name.starts_with("TROUPE_"));
  }

  TEST_CASE("enum names print as they are written in the config") {
    CHECK(troupe::to_string(scheduler_policy::stealing) == "stealing");
    CHECK(troupe::to_string(log_level::warn) == "warn");
  }
}
