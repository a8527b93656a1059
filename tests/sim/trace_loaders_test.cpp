// The trace loaders (Philly, AWS spot, troupe's own format), the synthetic
// generator and round trips through troupe's format: small fixtures, tables
// of hostile inputs per loader with the exact error each gives, and the real
// traces of shared/data/traces when that directory exists (a clean clone
// has only the excerpts under tests/sim/data).
#include "troupe/runtime/errc.hpp"
#include "troupe/sim/trace.hpp"

#include <algorithm>
#include <cmath>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <unistd.h>

using namespace troupe;
using namespace troupe::sim;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const fs::path data_dir = TROUPE_SIM_TEST_DATA;
const fs::path traces_dir = TROUPE_TRACES_DIR;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot open ", p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// True when the real traces are here; a MESSAGE saying what is skipped
/// otherwise (a clean clone has no ../shared).
bool have_real_traces() {
  if (fs::is_directory(traces_dir)) return true;
  MESSAGE("skipped: no real traces at ", traces_dir.string());
  return false;
}

/// One hostile input and the error it must give: the exact message, or a
/// prefix when `expected` ends with "...".
struct hostile {
  const char* what;
  std::string text;
  std::string expected;
};

template <class Parse>
void check_hostile(const std::vector<hostile>& cases, Parse parse) {
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto r = parse(c.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(runtime::errc::invalid_argument));
    std::string_view want = c.expected;
    if (want.ends_with("...")) {
      want.remove_suffix(3);
      CHECK_MESSAGE(r.err().message().starts_with(want), r.err().message());
    } else {
      CHECK(r.err().message() == c.expected);
    }
  }
}

vc_node_counts philly_vcs() {
  auto v = parse_philly_vc_nodes(slurp(data_dir / "philly_vc_nodes.csv"), "vc.csv");
  REQUIRE(v.ok());
  return *v;
}

bool sorted_by_submit(const trace& t) {
  return std::is_sorted(t.jobs.begin(), t.jobs.end(),
                        [](const auto& a, const auto& b) { return a.submit < b.submit; });
}

/// Writes `t` as troupe CSV and JSON lines, reads both back, and checks
/// they equal `t`; also through files with save/load.
void check_round_trip(const trace& t, const std::string& stem) {
  REQUIRE(check_troupe_trace(t).ok());
  auto csv = parse_troupe_csv(to_troupe_csv(t), stem + ".csv");
  REQUIRE_MESSAGE(csv.ok(), csv.err().message());
  CHECK(csv->jobs == t.jobs);
  CHECK(csv->nodes == t.nodes);
  auto jsonl = parse_troupe_jsonl(to_troupe_jsonl(t), stem + ".jsonl");
  REQUIRE_MESSAGE(jsonl.ok(), jsonl.err().message());
  CHECK(jsonl->jobs == t.jobs);
  CHECK(jsonl->nodes == t.nodes);
  for (const char* ext : {".csv", ".jsonl"}) {
    auto path = (fs::temp_directory_path() /
                 ("troupe-trace-test-" + stem + "-" + std::to_string(::getpid()) + ext))
                    .string();
    REQUIRE(save_troupe_trace(t, path).ok());
    auto back = load_troupe_trace(path);
    fs::remove(path);
    REQUIRE_MESSAGE(back.ok(), back.err().message());
    CHECK(back->jobs == t.jobs);
    CHECK(back->nodes == t.nodes);
    CHECK(back->source == path);
  }
}

const std::string philly_header = "timestamp,duration,num_gpus,gpu_time,cluster\n";
const vc_node_counts small_vcs = {{"a", 2}, {"b", 1}};

} // namespace

TEST_SUITE("sim.trace_loaders") {

  // --- Philly -------------------------------------------------------------------

  TEST_CASE(
      "Philly excerpt: jobs sorted from the earliest row, unlisted clusters skipped "
      "with a count, 8-GPU nodes per listed cluster") {
    auto t =
        parse_philly(slurp(data_dir / "philly_excerpt.csv"), "philly.csv", philly_vcs());
    REQUIRE_MESSAGE(t.ok(), t.err().message());
    // 31 rows: 28 in listed clusters, 2 of 51b7ef and 1 of 23dbec skipped.
    CHECK(t->jobs.size() == 28);
    CHECK(t->warnings ==
          std::vector<std::string>{
              "virtual cluster 23dbec: 1 jobs skipped: the node list has no "
              "node count for it",
              "virtual cluster 51b7ef: 2 jobs skipped: the node list has no "
              "node count for it"});
    CHECK(sorted_by_submit(*t));
    // The earliest row (2017-09-28 06:32:04) is a skipped 23dbec job: submit
    // times still count from it.
    const auto& first = t->jobs.front();
    CHECK(first.name == "philly-4");
    CHECK(first.submit == 91'588s);
    CHECK(first.run_time == 860'662s);
    CHECK(first.tenant == "6c71a0");
    CHECK(first.gpus == 1);
    CHECK(first.gpus_per_bundle == 8);
    CHECK(t->jobs.back().name == "philly-31");
    CHECK(t->jobs.back().submit == 2'493'295s);

    auto big = std::find_if(t->jobs.begin(), t->jobs.end(),
                            [](const trace_job& j) { return j.name == "philly-30"; });
    REQUIRE(big != t->jobs.end());
    CHECK(big->gpus == 16);
    CHECK(big->submit == 470'962s);
    CHECK(big->bundle_count() == 2);
    auto req = to_gang_request(*big, placement::request_id{1});
    REQUIRE(req.bundles.size() == 2);
    CHECK(req.bundles[0].gpus == 8);
    CHECK(req.bundles[1].gpus == 8);
    CHECK(req.tenant == "ee9e8c");
    CHECK(req.validate().ok());

    // 64+32+16+64+64+16+32+16+8+8+32 nodes in 11 clusters.
    REQUIRE(t->nodes.size() == 352);
    CHECK(t->nodes.front().name == "0e4a51-n00");
    CHECK(t->nodes[31].name == "0e4a51-n31");
    CHECK(t->nodes[32].name == "103959-n00");
    std::set<std::string> vcs;
    for (const auto& n : t->nodes) {
      CHECK(n.gpus == 8);
      CHECK(n.gpu_model == "P100");
      vcs.insert(n.name.substr(0, n.name.find('-')));
    }
    CHECK(vcs.size() == 11);
    auto topo = topology_from_nodes(t->nodes);
    REQUIRE(topo.ok());
    CHECK(topo->nodes.size() == 352);
  }

  TEST_CASE("Philly: oversized jobs and zero durations are skipped with a warning per "
            "cluster; ties keep file order; decimals round to the millisecond") {
    std::string text = philly_header + "2017-10-09 07:00:10,10.0,1,10.0,a\n"
                                       "2017-10-09 07:00:00,1.2345,2,2.4,a\n"
                                       "2017-10-09 07:00:10,3,24,72,a\n"
                                       "2017-10-09 07:00:10,4.5,16,72,a\n"
                                       "2017-10-09 07:00:10,5,9,45,b\n"
                                       "2017-10-09 07:00:10,0.0004,1,0,b\n"
                                       "2017-10-09 07:00:10,6,8,48,b\n";
    auto t = parse_philly(text, "p.csv", small_vcs);
    REQUIRE_MESSAGE(t.ok(), t.err().message());
    REQUIRE(t->jobs.size() == 4);
    CHECK(t->jobs[0].name == "philly-3");
    CHECK(t->jobs[0].submit == 0s);
    CHECK(t->jobs[0].run_time == 1235ms);
    CHECK(t->jobs[1].name == "philly-2"); // equal times: file order
    CHECK(t->jobs[1].submit == 10s);
    CHECK(t->jobs[2].name == "philly-5");
    CHECK(t->jobs[2].run_time == 4500ms);
    CHECK(t->jobs[2].bundle_count() == 2);
    CHECK(t->jobs[3].name == "philly-8");
    CHECK(
        t->warnings ==
        std::vector<std::string>{
            "virtual cluster a: 1 jobs skipped: they ask for more GPUs (up to 24) than "
            "its 2 nodes have (16) and could never run",
            "virtual cluster b: 1 jobs skipped: they ask for more GPUs (up to 9) than "
            "its "
            "1 nodes have (8) and could never run",
            "virtual cluster b: 1 jobs skipped: duration 0 (a run time of 0 means never "
            "ends)"});
    CHECK(t->nodes.size() == 3);
    CHECK(t->nodes[2].name == "b-n00");
  }

  TEST_CASE("Philly: CRLF, a byte order mark, extra columns and leap days are fine") {
    std::string text = "\xEF\xBB\xBFtimestamp,duration,num_gpus,gpu_time,cluster,x\r\n"
                       "2016-02-29 23:59:59,1.0,1,1.0,a,zz\r\n"
                       "2016-03-01 00:00:00,2.0,1,2.0,a,\r\n";
    auto t = parse_philly(text, "p.csv", small_vcs);
    REQUIRE_MESSAGE(t.ok(), t.err().message());
    REQUIRE(t->jobs.size() == 2);
    CHECK(t->jobs[1].submit == 1s);
    CHECK(t->jobs[1].run_time == 2s);
    auto empty = parse_philly(philly_header, "p.csv", small_vcs);
    REQUIRE(empty.ok());
    CHECK(empty->jobs.empty());
    CHECK(empty->nodes.size() == 3);
  }

  TEST_CASE("Philly: hostile job files give file:line:col errors") {
    auto row = [](std::string r) { return philly_header + r + "\n"; };
    const std::string dur_msg =
        "expected non-negative seconds (at most 100 years) like \"66.0\", got ";
    std::vector<hostile> cases = {
        {"empty file", "", "p.csv: empty file: expected a header row"},
        {"wrong header", "time,duration,num_gpus,gpu_time,cluster\n",
         "p.csv:1: missing column \"timestamp\" (header: "
         "time,duration,num_gpus,gpu_time,cluster)"},
        {"missing column", "timestamp,duration,num_gpus,gpu_time\n",
         "p.csv:1: missing column \"cluster\" (header: "
         "timestamp,duration,num_gpus,gpu_time)"},
        {"short row", row("2017-10-09 07:01:55,66.0,1"),
         "p.csv:2:5 (cluster): missing field: the row has 3 fields, the header 5"},
        {"long row", row("2017-10-09 07:01:55,66.0,1,66.0,a,extra"),
         "p.csv:2:6: the row has 6 fields, the header 5"},
        {"non-numeric GPUs", row("2017-10-09 07:01:55,66.0,x,66.0,a"),
         "p.csv:2:3 (num_gpus): expected an unsigned integer, got \"x\""},
        {"negative GPUs", row("2017-10-09 07:01:55,66.0,-1,66.0,a"),
         "p.csv:2:3 (num_gpus): expected an unsigned integer, got \"-1\""},
        {"GPU overflow", row("2017-10-09 07:01:55,66.0,99999999999999999999,66.0,a"),
         "p.csv:2:3 (num_gpus): expected an unsigned integer, got "
         "\"99999999999999999999\""},
        {"no GPU", row("2017-10-09 07:01:55,66.0,0,0,a"),
         "p.csv:2:3 (num_gpus): a Philly job needs at least 1 GPU"},
        {"negative duration", row("2017-10-09 07:01:55,-5.0,1,5,a"),
         "p.csv:2:2 (duration): " + dur_msg + "\"-5.0\""},
        {"exponent duration", row("2017-10-09 07:01:55,1e3,1,5,a"),
         "p.csv:2:2 (duration): " + dur_msg + "\"1e3\""},
        {"empty duration", row("2017-10-09 07:01:55,,1,5,a"),
         "p.csv:2:2 (duration): " + dur_msg + "\"\""},
        {"dot without decimals", row("2017-10-09 07:01:55,5.,1,5,a"),
         "p.csv:2:2 (duration): " + dur_msg + "\"5.\""},
        {"duration overflow", row("2017-10-09 07:01:55,99999999999999999999.0,1,5,a"),
         "p.csv:2:2 (duration): " + dur_msg + "\"99999999999999999999.0\""},
        {"bad month", row("2017-13-40 00:00:00,1.0,1,1.0,a"),
         "p.csv:2:1 (timestamp): month 13 is not 1..12, got \"2017-13-40 00:00:00\""},
        {"no leap day", row("2017-02-29 00:00:00,1.0,1,1.0,a"),
         "p.csv:2:1 (timestamp): day 29 is not in month 2 of 2017, got \"2017-02-29 "
         "00:00:00\""},
        {"ISO T", row("2017-10-09T07:01:55,1.0,1,1.0,a"),
         "p.csv:2:1 (timestamp): expected a time \"YYYY-MM-DD HH:MM:SS\", got "
         "\"2017-10-09T07:01:55\""},
        {"hour 24", row("2017-10-09 24:00:00,1.0,1,1.0,a"),
         "p.csv:2:1 (timestamp): time of day out of range (00:00:00..23:59:59), got "
         "\"2017-10-09 24:00:00\""},
        {"empty timestamp", row(",1.0,1,1.0,a"),
         "p.csv:2:1 (timestamp): expected a time \"YYYY-MM-DD HH:MM:SS\", got \"\""},
        {"empty cluster", row("2017-10-09 07:01:55,66.0,1,66.0,"),
         "p.csv:2:5 (cluster): empty virtual cluster"},
        {"unterminated quote", row("2017-10-09 07:01:55,66.0,1,66.0,\"a"),
         "p.csv:2: unterminated quoted field"},
        {"quote inside a field", row("2017-10-09 07:01:55,66.0,1,66.0,a\"b"),
         "p.csv:2:5: quote inside an unquoted field"},
        {"more than 100 years",
         philly_header +
             "2017-10-09 07:01:55,1.0,1,1.0,a\n1900-01-01 00:00:00,1.0,1,1.0,a\n",
         "p.csv:3:1 (timestamp): the trace spans more than 100 years"},
    };
    check_hostile(
        cases, [](const std::string& s) { return parse_philly(s, "p.csv", small_vcs); });
    auto huge = parse_philly(philly_header, "p.csv", {{"a", 10'001}});
    REQUIRE_FALSE(huge.ok());
    CHECK(huge.err().message() ==
          "p.csv: node counts: virtual cluster a has 10001 nodes, more than 10000");
  }

  TEST_CASE("Philly node counts: hostile files") {
    std::vector<hostile> cases = {
        {"empty file", "", "vc.csv: empty file: expected a header row"},
        {"wrong header", "vc,nodes\na,1\n",
         "vc.csv:1: missing column \"node num\" (header: vc,nodes)"},
        {"zero nodes", "vc,node num\na,0\n",
         "vc.csv:2:2 (node num): a virtual cluster needs at least 1 node"},
        {"negative", "vc,node num\na,-3\n",
         "vc.csv:2:2 (node num): expected an unsigned integer, got \"-3\""},
        {"too many", "vc,node num\na,10001\n",
         "vc.csv:2:2 (node num): 10001 nodes is more than 10000 per virtual cluster"},
        {"twice", "vc,node num\na,1\na,2\n",
         "vc.csv:3:1 (vc): virtual cluster \"a\" listed twice"},
        {"empty name", "vc,node num\n,2\n",
         "vc.csv:2:1 (vc): empty virtual cluster name"},
        {"short row", "vc,node num\na\n",
         "vc.csv:2:2 (node num): missing field: the row has 1 fields, the header 2"},
    };
    check_hostile(
        cases, [](const std::string& s) { return parse_philly_vc_nodes(s, "vc.csv"); });
    auto missing = load_philly("/nonexistent/philly.csv",
                               (data_dir / "philly_vc_nodes.csv").string());
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.err().is(runtime::errc::io_error));
    CHECK(missing.err().message() == "/nonexistent/philly.csv: cannot open");
  }

  // --- AWS spot -----------------------------------------------------------------

  TEST_CASE("spot trace excerpt: tick, counts and prices in micro-USD") {
    auto s = load_spot_trace((data_dir / "spot_preemption_excerpt.json").string());
    REQUIRE_MESSAGE(s.ok(), s.err().message());
    CHECK(s->tick == 32s);
    REQUIRE(s->counts.size() == 40);
    CHECK(s->counts[0] == 0);
    CHECK(std::all_of(s->counts.begin() + 1, s->counts.end(),
                      [](auto c) { return c == 1; }));
    REQUIRE(s->prices.size() == 40);
    CHECK(s->prices[0] == micro_usd{918'000});

    auto plain = parse_spot_trace(
        R"({"metadata":{"gap_seconds":300,"x":1},"data":[3,0,-0,2]})", "s.json");
    REQUIRE(plain.ok());
    CHECK(plain->tick == 300s);
    CHECK(plain->counts == std::vector<uint32_t>{3, 0, 0, 2});
    CHECK(plain->prices.empty());
  }

  TEST_CASE("spot trace: hostile files") {
    const std::string meta = R"({"metadata":{"gap_seconds":300},)";
    const std::string gap_msg = "s.json: \"metadata\".\"gap_seconds\": expected a "
                                "positive whole number of seconds "
                                "(at most 100 years), got ";
    const std::string count_msg =
        "]: expected a non-negative whole count of instances, got ";
    std::vector<hostile> cases = {
        {"empty", "",
         "s.json:1:1: invalid JSON at byte 1: syntax error while parsing value..."},
        {"truncated", meta + R"("data":[1,2)",
         "s.json:1:44: invalid JSON at byte 44: syntax error while parsing array..."},
        {"second line", "{\"metadata\":\n  {\"gap_seconds\": 3x}}",
         "s.json:2:20: invalid JSON at byte 33: syntax error..."},
        {"not an object", "[1,2]",
         "s.json: expected a JSON object "
         "{\"metadata\":{\"gap_seconds\":N},\"data\":[...]}, got "
         "array"},
        {"no metadata", R"({"data":[1]})",
         "s.json: missing \"metadata\" (an object with \"gap_seconds\")"},
        {"metadata not an object", R"({"metadata":5,"data":[1]})",
         "s.json: \"metadata\" must be an object, got number"},
        {"no gap", R"({"metadata":{},"data":[1]})",
         "s.json: missing \"metadata\".\"gap_seconds\""},
        {"zero gap", R"({"metadata":{"gap_seconds":0},"data":[1]})", gap_msg + "0"},
        {"negative gap", R"({"metadata":{"gap_seconds":-5},"data":[1]})", gap_msg + "-5"},
        {"fractional gap", R"({"metadata":{"gap_seconds":1.5},"data":[1]})",
         gap_msg + "1.5"},
        {"string gap", R"({"metadata":{"gap_seconds":"300"},"data":[1]})",
         gap_msg + "\"300\""},
        {"gap over 100 years", R"({"metadata":{"gap_seconds":3155760001},"data":[1]})",
         gap_msg + "3155760001"},
        {"no data", R"({"metadata":{"gap_seconds":300}})",
         "s.json: missing \"data\" (an array of counts)"},
        {"data not an array", meta + R"("data":{"a":1}})",
         "s.json: \"data\" must be an array of counts, got object"},
        {"no ticks", meta + R"("data":[]})", "s.json: \"data\" has no ticks"},
        {"fraction", meta + R"("data":[1,0.5]})", "s.json: data[1" + count_msg + "0.5"},
        {"negative", meta + R"("data":[-1]})", "s.json: data[0" + count_msg + "-1"},
        {"overflow", meta + R"("data":[1,1,99999999999999999999]})",
         "s.json: data[2" + count_msg + "1e+20"},
        {"above 32 bits", meta + R"("data":[4294967296]})",
         "s.json: data[0" + count_msg + "4294967296"},
        {"string count", meta + R"("data":["1"]})",
         "s.json: data[0" + count_msg + "\"1\""},
        {"duplicate key", meta + R"("data":[1],"data":[2]})",
         "s.json: invalid JSON: key \"data\" appears twice"},
        {"prices not an array", meta + R"("data":[1],"prices":1})",
         "s.json: \"prices\" must be an array of numbers, got number"},
        {"prices too short", meta + R"("data":[1,1],"prices":[1.0]})",
         "s.json: \"prices\" has 1 entries, \"data\" 2: expected one price per tick"},
        {"negative price", meta + R"("data":[1],"prices":[-0.5]})",
         "s.json: prices[0]: expected a price in USD from 0 to 1000000, got -0.5"},
        {"price not a number", meta + R"("data":[1],"prices":[null]})",
         "s.json: prices[0]: expected a price in USD from 0 to 1000000, got null"},
    };
    check_hostile(cases,
                  [](const std::string& s) { return parse_spot_trace(s, "s.json"); });
  }

  // --- troupe format ------------------------------------------------------------

  TEST_CASE("troupe CSV: defaults, node rows, x_ columns, quoting") {
    constexpr std::string_view text =
        "kind,name,submit_ms,run_time_ms,gpus,gpu_milli,gpus_per_bundle,gpu_models,"
        "cpu_milli,memory_mib,tenant,priority,preemptible,spot_tolerant,qos,gpu_model,"
        "gpu_memory_mib,x_note\n"
        "node,n0,,,8,,,,96000,786432,,,,,,H100,81920,rack 1\n"
        ",train,1500,3600000,16,,8,H100|A100,8000,65536,vision,5,true,0,LS,,,\n"
        "job,\"a,b \"\"c\"\"\",0,,,250,,,,,,,,,,,,\n";
    auto t = parse_troupe_csv(text, "t.csv");
    REQUIRE_MESSAGE(t.ok(), t.err().message());
    REQUIRE(t->nodes.size() == 1);
    CHECK(t->nodes[0] == trace_node{"n0", 96000, 786432, 8, "H100", 81920});
    REQUIRE(t->jobs.size() == 2);
    const auto& share = t->jobs[0]; // submitted first
    CHECK(share.name == "a,b \"c\"");
    CHECK(share.gpu_milli == 250);
    CHECK(share.run_time == 0ms);
    CHECK(share.tenant == "default");
    const auto& train = t->jobs[1];
    CHECK(train.submit == 1500ms);
    CHECK(train.run_time == 1h);
    CHECK(train.gpus == 16);
    CHECK(train.bundle_count() == 2);
    CHECK(train.gpu_models == std::vector<std::string>{"H100", "A100"});
    CHECK(train.tenant == "vision");
    CHECK(train.priority == 5);
    CHECK(train.preemptible);
    CHECK_FALSE(train.spot_tolerant);
    CHECK(train.qos == "LS");
    check_round_trip(*t, "csv-defaults");

    // Only the required columns.
    auto min = parse_troupe_csv("name,submit_ms,gpus\nj,7,1\n", "m.csv");
    REQUIRE(min.ok());
    trace_job want;
    want.name = "j";
    want.submit = 7ms;
    want.gpus = 1;
    CHECK(min->jobs == std::vector<trace_job>{want});
  }

  TEST_CASE("troupe JSON lines: defaults, node lines, blank lines, x_ keys") {
    constexpr std::string_view text =
        "{\"kind\":\"node\",\"name\":\"n0\",\"gpus\":8,\"cpu_milli\":96000,\"memory_"
        "mib\":786432,"
        "\"gpu_model\":\"H100\"}\r\n"
        "\n"
        "  \n"
        "{\"name\":\"train\",\"submit_ms\":1500,\"run_time_ms\":3600000,\"gpus\":16,"
        "\"gpus_per_bundle\":8,\"gpu_models\":[\"H100\"],\"tenant\":\"vision\","
        "\"priority\":-2,\"spot_tolerant\":true,\"x_origin\":{\"any\":[1]}}\n"
        "{\"kind\":\"job\",\"name\":\"cpu\",\"submit_ms\":0,\"cpu_milli\":500}";
    auto t = parse_troupe_jsonl(text, "t.jsonl");
    REQUIRE_MESSAGE(t.ok(), t.err().message());
    REQUIRE(t->nodes.size() == 1);
    CHECK(t->nodes[0] == trace_node{"n0", 96000, 786432, 8, "H100", 0});
    REQUIRE(t->jobs.size() == 2);
    CHECK(t->jobs[0].name == "cpu");
    CHECK(t->jobs[0].cpu_milli == 500);
    CHECK(t->jobs[1].priority == -2);
    CHECK(t->jobs[1].spot_tolerant);
    CHECK(t->jobs[1].gpu_models == std::vector<std::string>{"H100"});
    check_round_trip(*t, "jsonl-defaults");
    auto empty = parse_troupe_jsonl("", "e.jsonl");
    REQUIRE(empty.ok());
    CHECK(empty->jobs.empty());
  }

  TEST_CASE("troupe format: Alibaba, Philly and synthetic traces round-trip exactly") {
    auto nodes = load_alibaba_nodes((data_dir / "openb_nodes_excerpt.csv").string());
    REQUIRE(nodes.ok());
    auto pods = load_alibaba_pods((data_dir / "openb_pods_excerpt.csv").string());
    REQUIRE(pods.ok());
    trace openb = *pods;
    openb.nodes = *nodes;
    REQUIRE(openb.jobs.size() == 20);
    REQUIRE(openb.nodes.size() == 12);
    check_round_trip(openb, "openb");

    auto philly =
        parse_philly(slurp(data_dir / "philly_excerpt.csv"), "philly.csv", philly_vcs());
    REQUIRE(philly.ok());
    check_round_trip(*philly, "philly");

    synthetic_trace p;
    p.jobs = 5000;
    p.seed = 42;
    auto syn = generate_trace(p);
    REQUIRE(syn.ok());
    check_round_trip(*syn, "synthetic");

    // Names with commas, quotes, newlines and non-ASCII text.
    trace odd;
    trace_job j;
    j.name = "a,\"b\"\r\nc \xC3\xA9\xE2\x82\xAC";
    j.submit = 1ms;
    j.gpus = 1;
    j.tenant = " spaced ";
    j.qos = "\x01";
    odd.jobs.push_back(j);
    check_round_trip(odd, "odd");
  }

  TEST_CASE("troupe format: traces that would not read back equal are refused on save") {
    auto base = [] {
      trace t;
      trace_job j;
      j.name = "j";
      j.gpus = 1;
      t.jobs.push_back(j);
      return t;
    };
    struct bad_case {
      const char* what;
      std::function<void(trace&)> change;
      std::string expected;
    };
    std::vector<bad_case> cases = {
        {"sub-millisecond", [](trace& t) { t.jobs[0].submit = 1500us; },
         "job 0 (j) submit_ms: not a whole number of milliseconds"},
        {"negative run time", [](trace& t) { t.jobs[0].run_time = -1ms; },
         "job 0 (j) run_time_ms: negative time"},
        {"over 100 years", [](trace& t) { t.jobs[0].submit = max_trace_time + 1ms; },
         "job 0 (j) submit_ms: more than 100 years"},
        {"empty tenant", [](trace& t) { t.jobs[0].tenant.clear(); },
         "job 0 (j) tenant: must not be empty"},
        {"bad UTF-8", [](trace& t) { t.jobs[0].qos = "\xC3"; },
         "job 0 (j) qos: not valid UTF-8"},
        {"model with a bar", [](trace& t) { t.jobs[0].gpu_models = {"A|B"}; },
         "job 0 (j) gpu_models: a GPU model name may not contain '|'"},
        {"share and whole GPUs", [](trace& t) { t.jobs[0].gpu_milli = 10; },
         "job 0 (j) gpu_milli: a share of one GPU (gpu_milli) and whole GPUs (gpus) "
         "exclude "
         "each other"},
        {"asks for nothing", [](trace& t) { t.jobs[0].gpus = 0; },
         "job 0 (j): the job asks for nothing (no GPU, CPU or memory)"},
        {"unsorted",
         [](trace& t) {
           t.jobs.push_back(t.jobs[0]);
           t.jobs[0].submit = 5ms;
         },
         "job 1 (j): jobs are not sorted by submit time"},
        {"node without a model",
         [](trace& t) {
           t.nodes.push_back({"n", 0, 0, 2, "", 0});
         },
         "node 0 (n) gpu_model: a node with GPUs needs a model"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.what);
      auto t = base();
      c.change(t);
      auto r = check_troupe_trace(t);
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(runtime::errc::invalid_argument));
      CHECK(r.err().message() == c.expected);
      auto saved = save_troupe_trace(t, "/nonexistent-dir/t.csv");
      REQUIRE_FALSE(saved.ok());
      CHECK(saved.err().message() ==
            "/nonexistent-dir/t.csv: cannot save: " + c.expected);
    }
    auto unwritable = save_troupe_trace(base(), "/nonexistent-dir/t.csv");
    REQUIRE_FALSE(unwritable.ok());
    CHECK(unwritable.err().is(runtime::errc::io_error));
    CHECK(unwritable.err().message() == "/nonexistent-dir/t.csv: cannot write");
    auto ext = save_troupe_trace(base(), "t.txt");
    REQUIRE_FALSE(ext.ok());
    CHECK(ext.err().message() ==
          "t.txt: unknown trace format: expected a .csv or .jsonl file");
    auto load_ext = load_troupe_trace("t.json");
    REQUIRE_FALSE(load_ext.ok());
    CHECK(load_ext.err().message() ==
          "t.json: unknown trace format: expected a .csv or .jsonl file");
  }

  TEST_CASE("troupe CSV: hostile files") {
    const std::string h = "name,submit_ms,gpus\n";
    const std::string hk = "kind,name,submit_ms,gpus,gpu_model\n";
    std::vector<hostile> cases = {
        {"empty file", "", "t.csv: empty file: expected a header row"},
        {"unknown column", "name,submit_ms,gpu\nj,0,1\n",
         "t.csv:1:3 (gpu): unknown column (known: kind,name,submit_ms,run_time_ms,gpus,"
         "gpu_milli,gpus_per_bundle,gpu_models,cpu_milli,memory_mib,tenant,priority,"
         "preemptible,spot_tolerant,qos,gpu_model,gpu_memory_mib; prefix extra columns "
         "with "
         "x_)"},
        {"column twice", "name,gpus,gpus\n", "t.csv:1:3 (gpus): column appears twice"},
        {"no name column", "submit_ms,gpus\n0,1\n",
         "t.csv:1: missing column \"name\" (header: submit_ms,gpus)"},
        {"no submit column", "name,gpus\nj,1\n",
         "t.csv:2: column \"submit_ms\" is required and missing"},
        {"empty submit", h + "j,,1\n", "t.csv:2:2 (submit_ms): required, but empty"},
        {"empty name", h + ",0,1\n", "t.csv:2:1 (name): required, but empty"},
        {"short row", h + "j,0\n",
         "t.csv:2:3 (gpus): the row has 2 fields, the header 3"},
        {"long row", h + "j,0,1,2\n", "t.csv:2:4: the row has 4 fields, the header 3"},
        {"non-numeric", h + "j,soon,1\n",
         "t.csv:2:2 (submit_ms): expected an unsigned integer up to 3155760000000, got "
         "\"soon\""},
        {"negative", h + "j,-1,1\n",
         "t.csv:2:2 (submit_ms): expected an unsigned integer up to 3155760000000, got "
         "\"-1\""},
        {"overflow", h + "j,99999999999999999999,1\n",
         "t.csv:2:2 (submit_ms): expected an unsigned integer up to 3155760000000, got "
         "\"99999999999999999999\""},
        {"past 100 years", h + "j,3155760000001,1\n",
         "t.csv:2:2 (submit_ms): expected an unsigned integer up to 3155760000000, got "
         "\"3155760000001\""},
        {"decimal", h + "j,1.5,1\n",
         "t.csv:2:2 (submit_ms): expected an unsigned integer up to 3155760000000, got "
         "\"1.5\""},
        {"whole share", "name,submit_ms,gpu_milli\nj,0,1000\n",
         "t.csv:2:3 (gpu_milli): expected an unsigned integer up to 999, got \"1000\""},
        {"share and GPUs", "name,submit_ms,gpus,gpu_milli\nj,0,1,500\n",
         "t.csv:2:4 (gpu_milli): a share of one GPU (gpu_milli) and whole GPUs (gpus) "
         "exclude each other"},
        {"too many GPUs on a node", h + "j,0,300\n",
         "t.csv:2:3 (gpus): 300 GPUs on one node (gpus_per_bundle 0) is more than a node "
         "has "
         "(256)"},
        {"too many GPUs", "name,submit_ms,gpus,gpus_per_bundle\nj,0,100001,8\n",
         "t.csv:2:3 (gpus): expected an unsigned integer up to 100000, got \"100001\""},
        {"bad boolean", "name,submit_ms,gpus,preemptible\nj,0,1,yes\n",
         "t.csv:2:4 (preemptible): expected true, false, 1 or 0, got \"yes\""},
        {"priority range", "name,submit_ms,gpus,priority\nj,0,1,2147483648\n",
         "t.csv:2:4 (priority): expected a 32-bit integer, got \"2147483648\""},
        {"empty model", "name,submit_ms,gpus,gpu_models\nj,0,1,A100|\n",
         "t.csv:2:4 (gpu_models): expected GPU models separated by '|' with no empty "
         "one, got "
         "\"A100|\""},
        {"kind", hk + "pod,j,0,1,\n",
         "t.csv:2:1 (kind): expected \"job\" or \"node\", got \"pod\""},
        {"job field on a node", hk + "node,n,5,1,A\n",
         "t.csv:2:3 (submit_ms): only job rows have this field; leave it empty"},
        {"node field on a job", hk + "job,j,5,1,A\n",
         "t.csv:2:5 (gpu_model): only node rows have this field; leave it empty"},
        {"node with too many GPUs", hk + "node,n,,300,A\n",
         "t.csv:2:4 (gpus): 300 GPUs is more than a node may have (256)"},
        {"node without a model", hk + "node,n,,2,\n",
         "t.csv:2:5 (gpu_model): a node with GPUs needs a model"},
        {"asks for nothing", h + "j,0,0\n",
         "t.csv:2: the job asks for nothing (no GPU, CPU or memory)"},
        {"bad UTF-8", h + "j\xFF,0,1\n", "t.csv:2:1 (name): not valid UTF-8"},
        {"unterminated quote", h + "\"j,0,1\n", "t.csv:2: unterminated quoted field"},
        {"text after a quote", h + "\"j\"x,0,1\n",
         "t.csv:2:1: text after a closing quote"},
        {"CRLF error line", "name,submit_ms,gpus\r\nj,0,1\r\nk,x,1\r\n",
         "t.csv:3:2 (submit_ms): expected an unsigned integer up to 3155760000000, got "
         "\"x\""},
        {"BOM then unknown", "\xEF\xBB\xBFnam,submit_ms\n",
         "t.csv:1:1 (nam): unknown column..."},
    };
    check_hostile(cases,
                  [](const std::string& s) { return parse_troupe_csv(s, "t.csv"); });
  }

  TEST_CASE("troupe JSON lines: hostile files") {
    const std::string u64_ms = "expected an unsigned integer up to 3155760000000, got ";
    std::vector<hostile> cases = {
        {"not JSON",
         "{\"name\":", "t.jsonl:1:9: invalid JSON: syntax error while parsing value..."},
        {"trailing text", "{\"name\":\"j\",\"submit_ms\":0,\"gpus\":1} x",
         "t.jsonl:1:37: invalid JSON: syntax error while parsing value..."},
        {"error on line 3", "{\"name\":\"j\",\"submit_ms\":0,\"gpus\":1}\n\n{\"name\":1}",
         "t.jsonl:3 (name): expected a string, got 1"},
        {"not an object", "[1]", "t.jsonl:1: expected a JSON object, got array"},
        {"string line", "\"job\"", "t.jsonl:1: expected a JSON object, got string"},
        {"unknown key", "{\"name\":\"j\",\"submit_ms\":0,\"gpu\":1}",
         "t.jsonl:1 (gpu): unknown key (known: "
         "kind,name,submit_ms,run_time_ms,gpus,gpu_milli,"
         "gpus_per_bundle,gpu_models,cpu_milli,memory_mib,tenant,priority,preemptible,"
         "spot_tolerant,qos,gpu_model,gpu_memory_mib; prefix extra keys with x_)"},
        {"duplicate key", "{\"name\":\"j\",\"submit_ms\":0,\"gpus\":1,\"gpus\":2}",
         "t.jsonl:1: invalid JSON: key \"gpus\" appears twice"},
        {"string number", "{\"name\":\"j\",\"submit_ms\":\"10\",\"gpus\":1}",
         "t.jsonl:1 (submit_ms): " + u64_ms + "\"10\""},
        {"fraction", "{\"name\":\"j\",\"submit_ms\":1.5,\"gpus\":1}",
         "t.jsonl:1 (submit_ms): " + u64_ms + "1.5"},
        {"negative", "{\"name\":\"j\",\"submit_ms\":-1,\"gpus\":1}",
         "t.jsonl:1 (submit_ms): " + u64_ms + "-1"},
        {"overflow", "{\"name\":\"j\",\"submit_ms\":99999999999999999999,\"gpus\":1}",
         "t.jsonl:1 (submit_ms): " + u64_ms + "1e+20"},
        {"null", "{\"name\":\"j\",\"submit_ms\":null,\"gpus\":1}",
         "t.jsonl:1 (submit_ms): " + u64_ms + "null"},
        {"string boolean",
         "{\"name\":\"j\",\"submit_ms\":0,\"gpus\":1,\"preemptible\":\"true\"}",
         "t.jsonl:1 (preemptible): expected true or false, got \"true\""},
        {"models as a string",
         "{\"name\":\"j\",\"submit_ms\":0,\"gpus\":1,\"gpu_models\":\"A\"}",
         "t.jsonl:1 (gpu_models): expected an array of GPU model names, got \"A\""},
        {"empty model",
         "{\"name\":\"j\",\"submit_ms\":0,\"gpus\":1,\"gpu_models\":[\"\"]}",
         "t.jsonl:1 (gpu_models): empty GPU model name"},
        {"priority range",
         "{\"name\":\"j\",\"submit_ms\":0,\"gpus\":1,\"priority\":-2147483649}",
         "t.jsonl:1 (priority): expected a 32-bit integer, got -2147483649"},
        {"kind not a string", "{\"kind\":5,\"name\":\"j\"}",
         "t.jsonl:1 (kind): expected \"job\" or \"node\", got 5"},
        {"no name", "{\"submit_ms\":0,\"gpus\":1}",
         "t.jsonl:1 (name): required, but missing"},
        {"no submit", "{\"name\":\"j\",\"gpus\":1}",
         "t.jsonl:1 (submit_ms): required, but missing"},
        {"job key on a node", "{\"kind\":\"node\",\"name\":\"n\",\"tenant\":\"a\"}",
         "t.jsonl:1 (tenant): only job rows have this field"},
        {"empty name", "{\"name\":\"\",\"submit_ms\":0,\"gpus\":1}",
         "t.jsonl:1 (name): must not be empty"},
        {"bad UTF-8", "{\"name\":\"\xC3\",\"submit_ms\":0,\"gpus\":1}",
         "t.jsonl:1:11: invalid JSON: syntax error while parsing value - invalid string: "
         "ill-formed UTF-8 byte..."},
        {"asks for nothing", "{\"name\":\"j\",\"submit_ms\":0}",
         "t.jsonl:1: the job asks for nothing (no GPU, CPU or memory)"},
    };
    check_hostile(cases,
                  [](const std::string& s) { return parse_troupe_jsonl(s, "t.jsonl"); });
  }

  TEST_CASE("the examples of docs/TRACE-FORMAT.md load, and its CSV and JSON lines "
            "examples are the same trace") {
    auto doc = slurp(fs::path(TROUPE_SOURCE_DIR) / "docs" / "TRACE-FORMAT.md");
    auto blocks = [&](std::string_view lang) {
      std::vector<std::string> out;
      std::string open = "```" + std::string(lang) + "\n";
      for (size_t at = doc.find(open); at != std::string::npos; at = doc.find(open, at)) {
        at += open.size();
        auto end = doc.find("```", at);
        REQUIRE(end != std::string::npos);
        out.push_back(doc.substr(at, end - at));
      }
      return out;
    };
    auto csvs = blocks("csv");
    auto jsons = blocks("json");
    REQUIRE(csvs.size() == 2);
    REQUIRE(jsons.size() == 1);
    auto a = parse_troupe_csv(csvs[0], "doc.csv");
    REQUIRE_MESSAGE(a.ok(), a.err().message());
    auto b = parse_troupe_jsonl(jsons[0], "doc.jsonl");
    REQUIRE_MESSAGE(b.ok(), b.err().message());
    CHECK(a->nodes.size() == 2);
    CHECK(a->jobs.size() == 3);
    CHECK(a->jobs == b->jobs);
    CHECK(a->nodes == b->nodes);
    CHECK(a->jobs[0].bundle_count() == 2);
    auto minimal = parse_troupe_csv(csvs[1], "min.csv");
    REQUIRE_MESSAGE(minimal.ok(), minimal.err().message());
    CHECK(minimal->jobs.size() == 2);
  }

  // --- Alibaba (hostile rows; the happy path is in alibaba_trace_test.cpp) ------

  TEST_CASE("Alibaba: hostile node and pod lists") {
    const std::string pods = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,"
                             "pod_phase,creation_time,"
                             "deletion_time,scheduled_time\n";
    std::vector<hostile> pod_cases = {
        {"empty file", "", "a.csv: empty file: expected a header row"},
        {"creation overflow", pods + "p,1,1,0,0,,LS,R,99999999999999999999,,0\n",
         "a.csv:2:9 (creation_time): expected an unsigned integer, got "
         "\"99999999999999999999\""},
        {"creation past 100 years", pods + "p,1,1,0,0,,LS,R,3155760001,,0\n",
         "a.csv:2:9 (creation_time): creation_time 3155760001 is more than 100 years "
         "(max_trace_time)"},
        {"runs past 100 years", pods + "p,1,1,0,0,,LS,R,0,3155760001,0\n",
         "a.csv:2:10 (deletion_time): the pod runs more than 100 years (max_trace_time)"},
        {"deleted before created", pods + "p,1,1,0,0,,LS,R,10,5,0\n",
         "a.csv:2:10 (deletion_time): deletion_time 5 is before creation_time 10"},
        {"share of two GPUs", pods + "p,1,1,2,500,,LS,R,0,1,0\n",
         "a.csv:2:5 (gpu_milli): a pod of 2 GPUs must take whole GPUs (1000), got 500"},
        {"short row", pods + "p,1,1\n",
         "a.csv:2:4 (num_gpu): missing field: the row has 3 fields, the header 11"},
    };
    check_hostile(pod_cases,
                  [](const std::string& s) { return parse_alibaba_pods(s, "a.csv"); });
    std::vector<hostile> node_cases = {
        {"missing column", "sn,cpu_milli,memory_mib,gpu\n",
         "n.csv:1: missing column \"model\" (header: sn,cpu_milli,memory_mib,gpu)"},
        {"GPUs without a model", "sn,cpu_milli,memory_mib,gpu,model\nn,1,1,2,\n",
         "n.csv:2:5 (model): a node with GPUs needs a model"},
        {"negative CPU", "sn,cpu_milli,memory_mib,gpu,model\nn,-1,1,2,A\n",
         "n.csv:2:2 (cpu_milli): expected an unsigned integer, got \"-1\""},
    };
    check_hostile(node_cases,
                  [](const std::string& s) { return parse_alibaba_nodes(s, "n.csv"); });
  }

  // --- synthetic ----------------------------------------------------------------

  TEST_CASE("synthetic trace: the same parameters give the same trace") {
    synthetic_trace p;
    p.jobs = 2000;
    auto a = generate_trace(p);
    auto b = generate_trace(p);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->jobs == b->jobs);
    p.seed = 2;
    auto c = generate_trace(p);
    REQUIRE(c.ok());
    CHECK(a->jobs != c->jobs);
    CHECK(a->nodes.empty());
    CHECK(a->jobs[0].name == "job-0");
    CHECK(a->jobs[0].submit == 0ms);
    // Pinned values of seed 1 (SplitMix64 and the transforms of
    // synthetic_trace.cpp): a change here changes every experiment's trace.
    CHECK(a->jobs[1].submit == 3'525ms);
    CHECK(a->jobs[0].run_time == 1'692'329ms);
    CHECK(a->jobs[0].gpus == 16);
    CHECK(a->jobs[0].tenant == "t1");
  }

  TEST_CASE("synthetic trace: arrival rate, median run time, GPU mix and tenant shares "
            "follow the parameters over 100k jobs") {
    synthetic_trace p;
    p.jobs = 100'000;
    p.gpu_mix = {{0, 0.2}, {1, 0.5}, {16, 0.3}};
    p.share_milli = 300;
    p.tenants = 8;
    auto t = generate_trace(p);
    REQUIRE(t.ok());
    REQUIRE(t->jobs.size() == p.jobs);
    CHECK(sorted_by_submit(*t));
    double hours =
        std::chrono::duration<double, std::ratio<3600>>(t->jobs.back().submit).count();
    CHECK(static_cast<double>(p.jobs - 1) / hours == doctest::Approx(600).epsilon(0.02));

    std::vector<int64_t> runs;
    std::map<uint32_t, uint64_t> mix;
    std::map<std::string, uint64_t> tenants;
    uint64_t capped = 0;
    for (const auto& j : t->jobs) {
      runs.push_back(
          std::chrono::duration_cast<std::chrono::milliseconds>(j.run_time).count());
      CHECK(j.run_time >= 1ms);
      CHECK(j.run_time <= p.max_run_time);
      capped += j.run_time == p.max_run_time;
      mix[j.gpu_milli > 0 ? 0 : j.gpus]++;
      tenants[j.tenant]++;
      if (j.gpu_milli > 0) CHECK(j.gpu_milli == 300);
      if (j.gpus == 16) CHECK(j.bundle_count() == 2);
    }
    std::nth_element(runs.begin(), runs.begin() + runs.size() / 2, runs.end());
    CHECK(static_cast<double>(runs[runs.size() / 2]) ==
          doctest::Approx(30 * 60 * 1000.0).epsilon(0.03));
    // P(log-normal(30 min, 1.8) > 7 days) ~ 6e-4: some dozens are cut.
    CHECK(capped > 10);
    CHECK(capped < 200);
    auto share = [&](uint64_t n) { return static_cast<double>(n) / p.jobs; };
    CHECK(share(mix[0]) == doctest::Approx(0.2).epsilon(0.05));
    CHECK(share(mix[1]) == doctest::Approx(0.5).epsilon(0.03));
    CHECK(share(mix[16]) == doctest::Approx(0.3).epsilon(0.03));
    CHECK(mix.size() == 3);
    // Zipf-like: tenant k has weight 1/(k+1); H_8 = 761/280.
    CHECK(tenants.size() == 8);
    CHECK(share(tenants["t0"]) == doctest::Approx(280.0 / 761).epsilon(0.03));
    CHECK(share(tenants["t7"]) == doctest::Approx(35.0 / 761).epsilon(0.08));
  }

  TEST_CASE("synthetic trace: every bad parameter is named") {
    synthetic_trace p;
    p.jobs = 0;
    p.arrivals_per_hour = -1;
    p.run_time_sigma = std::nan("");
    p.max_run_time = 0s;
    p.gpu_mix = {{0, 1.0}, {2, -1.0}};
    p.share_milli = 1000;
    p.gpus_per_bundle = 300;
    p.tenants = 0;
    auto r = generate_trace(p);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(runtime::errc::invalid_argument));
    CHECK(
        r.err().message() ==
        "synthetic trace: jobs: expected 1..100000000, got 0; arrivals_per_hour: "
        "expected a "
        "positive number, got -1.000000; run_time_sigma: expected 0..10, got nan; "
        "max_run_time: expected 1 ms to 100 years; gpus_per_bundle: expected 0..256, got "
        "300; gpu_mix[1]: weight must be a finite number >= 0, got -1.000000; "
        "share_milli: "
        "expected 1..999 (gpu_mix has shares), got 1000; tenants: expected 1..1000000, "
        "got "
        "0");
    synthetic_trace empty;
    empty.gpu_mix.clear();
    CHECK(generate_trace(empty).err().message() == "synthetic trace: gpu_mix: empty");
    synthetic_trace zero;
    zero.gpu_mix = {{1, 0.0}};
    CHECK(generate_trace(zero).err().message() ==
          "synthetic trace: gpu_mix: the weights add up to 0");
    synthetic_trace slow;
    slow.arrivals_per_hour = 1e-9;
    CHECK(generate_trace(slow).err().message() ==
          "synthetic trace: job 1 arrives after 100 years: raise arrivals_per_hour or "
          "lower "
          "jobs");
  }

  // --- the real traces ----------------------------------------------------------

  TEST_CASE("real Philly trace: 82,247 rows, 18 skipped in 4 unlisted clusters, 11 "
            "clusters with nodes; round-trips through troupe CSV") {
    if (!have_real_traces()) return;
    auto dir = traces_dir / "philly-pollux";
    auto t = load_philly((dir / "philly.csv").string(),
                         (dir / "helios_philly_vc_nodes.csv").string());
    REQUIRE_MESSAGE(t.ok(), t.err().message());
    CHECK(t->jobs.size() == 82'229);
    CHECK(
        t->warnings ==
        std::vector<std::string>{
            "virtual cluster 23dbec: 8 jobs skipped: the node list has no node count for "
            "it",
            "virtual cluster 51b7ef: 4 jobs skipped: the node list has no node count for "
            "it",
            "virtual cluster 795a4c: 3 jobs skipped: the node list has no node count for "
            "it",
            "virtual cluster 925e2b: 3 jobs skipped: the node list has no node count for "
            "it"});
    CHECK(t->jobs.size() + 8 + 4 + 3 + 3 == 82'247);
    CHECK(sorted_by_submit(*t));
    CHECK(t->jobs.front().submit == 0s); // 2017-09-04 10:30:41, cluster 7f04ca
    CHECK(t->jobs.front().tenant == "7f04ca");
    CHECK(t->jobs.back().submit == 9'408'690s); // 2017-12-22 08:02:11
    uint64_t gpus = 0;
    std::set<std::string> tenants;
    for (const auto& j : t->jobs) {
      gpus += j.gpus;
      tenants.insert(j.tenant);
    }
    CHECK(gpus == 107'161);
    CHECK(tenants.size() == 11);
    CHECK(t->nodes.size() == 352);
    auto topo = topology_from_nodes(t->nodes);
    REQUIRE(topo.ok());
    auto back = parse_troupe_csv(to_troupe_csv(*t), "philly.troupe.csv");
    REQUIRE(back.ok());
    CHECK(back->jobs == t->jobs);
    CHECK(back->nodes == t->nodes);
  }

  TEST_CASE("real openb trace: 1,213 nodes with 6,212 GPUs and 8,152 pods; round-trips "
            "through troupe JSON lines") {
    if (!have_real_traces()) return;
    auto dir = traces_dir / "alibaba-openb-2023";
    auto nodes = load_alibaba_nodes((dir / "openb_node_list_gpu_node.csv").string());
    REQUIRE_MESSAGE(nodes.ok(), nodes.err().message());
    CHECK(nodes->size() == 1213);
    uint64_t gpus = 0;
    for (const auto& n : *nodes)
      gpus += n.gpus;
    CHECK(gpus == 6212);
    auto pods = load_alibaba_pods((dir / "openb_pod_list_default.csv").string());
    REQUIRE_MESSAGE(pods.ok(), pods.err().message());
    CHECK(pods->jobs.size() == 8152);
    trace t = *pods;
    t.nodes = *nodes;
    REQUIRE(check_troupe_trace(t).ok());
    auto back = parse_troupe_jsonl(to_troupe_jsonl(t), "openb.jsonl");
    REQUIRE_MESSAGE(back.ok(), back.err().message());
    CHECK(back->jobs == t.jobs);
    CHECK(back->nodes == t.nodes);
  }

  TEST_CASE("real spot traces load: ticks, lengths and prices") {
    if (!have_real_traces()) return;
    auto dir = traces_dir / "spot-traces";
    for (const char* f : {"availability/aws-02-15-2023_us-east-1a_v100_1.json",
                          "availability/aws-02-15-2023_us-west-2b_v100_1.json"}) {
      CAPTURE(f);
      auto s = load_spot_trace((dir / f).string());
      REQUIRE_MESSAGE(s.ok(), s.err().message());
      CHECK(s->tick == 195s);
      CHECK(s->counts.size() == 20'158);
      CHECK(s->prices.empty());
    }
    auto p = load_spot_trace(
        (dir / "preemption/aws-04-22-2023_us-west-2b_v100_1.json").string());
    REQUIRE_MESSAGE(p.ok(), p.err().message());
    CHECK(p->tick == 32s);
    CHECK(p->counts.size() == 19'961);
    REQUIRE(p->prices.size() == 19'961);
    CHECK(std::all_of(p->prices.begin(), p->prices.end(),
                      [](micro_usd m) { return m == micro_usd{918'000}; }));
  }

} // TEST_SUITE
