#include "troupe/placement/errc.hpp"
#include "troupe/placement/topology_config.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

using troupe::micro_usd;
using troupe::placement::capacity_type;
using troupe::placement::cluster_topology;
using troupe::placement::errc;
using troupe::placement::gpu_sharing;
using troupe::placement::load_topology_file;
using troupe::placement::load_topology_string;
using troupe::placement::parse_price;

namespace {

std::filesystem::path example_file() {
  return std::filesystem::path{TROUPE_SOURCE_DIR} / "config" / "cluster.example.toml";
}

// Lines 1-3: one rack "r". Line 4: [[nodes]]. Lines 5-10: name, rack,
// cpu_millicores, memory_mib, price_per_gpu_hour_usd, gpus (in that order,
// each replaceable through `over`; an empty value drops the line, leaving an
// empty line so later numbers hold). Line 11 on: `extra`.
std::string node_doc(const std::map<std::string, std::string>& over = {},
                     const std::string& extra = "") {
  const std::vector<std::pair<std::string, std::string>> fields{
      {"name", "\"n0\""},
      {"rack", "\"r\""},
      {"cpu_millicores", "96000"},
      {"memory_mib", "1048576"},
      {"price_per_gpu_hour_usd", "\"2.50\""},
      {"gpus", "{ count = 8, model = \"H100-80GB\", memory_mib = 81920 }"},
  };
  std::string s = "[[racks]]\nname = \"r\"\nspine = 0\n[[nodes]]\n";
  for (const auto& [k, v] : fields) {
    auto it = over.find(k);
    const std::string& value = it == over.end() ? v : it->second;
    if (!value.empty()) s += k + " = " + value;
    s += '\n';
  }
  return s + extra;
}

// Lines 1-3: rack "r". Line 4: [[node_groups]]. Lines 5-11: prefix, count,
// rack, cpu_millicores, memory_mib, price_per_gpu_hour_usd, gpus.
std::string group_doc(const std::string& count, const std::string& extra = "") {
  return "[[racks]]\nname = \"r\"\nspine = 0\n[[node_groups]]\nprefix = \"g\"\ncount = " +
         count +
         "\nrack = \"r\"\ncpu_millicores = 1000\nmemory_mib = 1024\n"
         "price_per_gpu_hour_usd = \"1\"\n"
         "gpus = { count = 1, model = \"H100-80GB\", memory_mib = 81920 }\n" +
         extra;
}

std::string error_of(const std::string& toml) {
  auto r = load_topology_string(toml, "t.toml");
  REQUIRE_MESSAGE(!r.ok(), "expected an error for:\n" << toml);
  CHECK(r.err().is(errc::invalid_argument));
  return r.err().message();
}

const troupe::placement::node_spec& node_named(const cluster_topology& t,
                                               std::string_view name) {
  auto id = t.find_node(name);
  REQUIRE_MESSAGE(id.ok(), name);
  return t.nodes[id->value()];
}

struct hostile_case {
  std::string what;
  std::string toml;
  int line;
  std::string key;  // dotted key after "t.toml:<line>: "
  std::string also; // another fragment the message must hold
};

} // namespace

TEST_SUITE("topology config") {
  TEST_CASE("the example file loads with the documented shape") {
    auto r = load_topology_file(example_file());
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
    const cluster_topology& t = *r;
    REQUIRE(t.racks.size() == 3);
    CHECK(t.racks[0].name == "rack-a");
    CHECK(t.racks[0].uplink_oversubscription == 2.0);
    CHECK(t.racks[1].uplink_oversubscription == 1.0);
    CHECK(t.racks[2].spine == 1);
    REQUIRE(t.nodes.size() == 16 + 8 + 4 + 2);
    CHECK(t.total_gpus() == 16 * 8 + 8 * 8 + 4 * 8 + 4);

    const auto& a0 = node_named(t, "a0");
    CHECK(a0.rack == 0);
    CHECK(a0.capacity == capacity_type::on_demand);
    CHECK(a0.price_per_gpu_hour == micro_usd{2'500'000});
    CHECK(a0.cpu_milli == 96000);
    CHECK(a0.memory_mib == 1048576);
    CHECK(a0.nic_gbps == 400.0);
    CHECK(a0.node_labels.at("zone") == "a");
    REQUIRE(a0.gpus.size() == 8);
    CHECK(a0.gpus[7].model == "H100-80GB");
    CHECK(a0.gpus[7].nvlink_domain == 0);
    CHECK(a0.gpus[7].nic_rail == 7);
    CHECK(a0.gpus[7].numa_node == 1);

    const auto& b3 = node_named(t, "b3");
    CHECK(b3.rack == 1);
    CHECK(b3.capacity == capacity_type::spot);
    CHECK(b3.price_per_gpu_hour == micro_usd{987'654});
    CHECK(b3.node_labels.at("tier") == "preemptible");
    CHECK(b3.gpus[3].nvlink_domain == 0);
    CHECK(b3.gpus[4].nvlink_domain == 1);

    const auto& c0 = node_named(t, "c0");
    CHECK(c0.capacity == capacity_type::reserved);
    CHECK(c0.price_per_gpu_hour == micro_usd{1'800'000});
    CHECK(c0.gpus[0].sharing == gpu_sharing::mig);

    const auto& s0 = node_named(t, "special-0");
    CHECK(s0.rack == 2);
    CHECK(s0.price_per_gpu_hour == micro_usd{350'000});
    CHECK(s0.nic_gbps == 100.0);
    REQUIRE(s0.gpus.size() == 4);
    CHECK(s0.gpus[0].sharing == gpu_sharing::time_sliced);
    CHECK(s0.gpus[0].time_slice_replicas == 4);

    const auto& cpu = node_named(t, "cpu-0");
    CHECK(cpu.gpus.empty());
    CHECK(cpu.price_per_gpu_hour == micro_usd{0});
    CHECK(t.validate().ok());
  }

  TEST_CASE("a node group expands to prefix0..prefixN-1 in order") {
    auto r = load_topology_string(group_doc("3"), "t.toml");
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
    REQUIRE(r->nodes.size() == 3);
    CHECK(r->nodes[0].name == "g0");
    CHECK(r->nodes[1].name == "g1");
    CHECK(r->nodes[2].name == "g2");
    for (const auto& n : r->nodes) {
      CHECK(n.rack == 0);
      CHECK(n.price_per_gpu_hour == micro_usd{1'000'000});
      CHECK(n.gpus.size() == 1);
    }
  }

  TEST_CASE("a [generate] table builds a generated cluster") {
    auto r = load_topology_string(
        "[generate]\nracks = 2\nnodes_per_rack = 3\ngpus_per_node = 4\n"
        "nvlink_domains_per_node = 2\nspot_fraction = 1.0\nspot_price = \"0.75\"\n",
        "gen.toml");
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
    CHECK(r->racks.size() == 2);
    CHECK(r->nodes.size() == 6);
    CHECK(r->total_gpus() == 24);
    CHECK(r->nodes[5].rack == 1);
    CHECK(r->nodes[0].gpus[2].nvlink_domain == 1);
    CHECK(r->nodes[0].capacity == capacity_type::spot);
    CHECK(r->nodes[0].price_per_gpu_hour == micro_usd{750'000});
  }

  TEST_CASE("prices are parsed exactly into micro-dollars") {
    CHECK(*parse_price("2.50") == micro_usd{2'500'000});
    CHECK(*parse_price("0") == micro_usd{0});
    CHECK(*parse_price("0.000001") == micro_usd{1});
    CHECK(*parse_price("3.999999") == micro_usd{3'999'999});
    CHECK(*parse_price("1000000") == micro_usd{1'000'000'000'000});
    for (const char* bad :
         {"", "-1", "+1", "2.5e3", "1.2345678", "abc", "1.", ".5", " 1", "1 ", "1,5",
          "0x10", "1000001", "99999999999999999999", "nan"})
      CHECK_MESSAGE(!parse_price(bad).ok(), bad);
  }

  TEST_CASE("hostile inputs are rejected with the line and key at fault") {
    const std::string second_node =
        "[[nodes]]\nname = \"n0\"\nrack = \"r\"\ncpu_millicores = 1\nmemory_mib = 1\n";
    const std::vector<hostile_case> cases{
        {"syntax error", node_doc({}, "cpu = = 3\n"), 11, "", "TOML syntax error"},
        {"duplicate key", node_doc({}, "rack = \"r\"\n"), 11, "", "TOML syntax error"},
        {"unknown key", node_doc({}, "colour = \"red\"\n"), 11, "nodes[0].colour",
         "unknown key"},
        {"unknown top-level table", node_doc({}, "[placement]\nx = 1\n"), 11, "placement",
         "unknown key"},
        {"rack that does not exist", node_doc({{"rack", "\"rack-z\""}}), 6,
         "nodes[0].rack", "got \"rack-z\""},
        {"negative count", group_doc("-1"), 6, "node_groups[0].count", "got -1"},
        {"count zero", group_doc("0"), 6, "node_groups[0].count", "[1, 100000]"},
        {"count 10 million", group_doc("10000000"), 6, "node_groups[0].count",
         "got 10000000"},
        {"count as a float", group_doc("16.0"), 6, "node_groups[0].count", "got 16.0"},
        {"bad capacity enum", node_doc({}, "capacity = \"spott\"\n"), 11,
         "nodes[0].capacity", "expected one of on_demand|reserved|spot, got \"spott\""},
        {"price with exponent", node_doc({{"price_per_gpu_hour_usd", "\"2.5e3\""}}), 9,
         "nodes[0].price_per_gpu_hour_usd", "got \"2.5e3\""},
        {"negative price", node_doc({{"price_per_gpu_hour_usd", "\"-1\""}}), 9,
         "nodes[0].price_per_gpu_hour_usd", "got \"-1\""},
        {"price with 7 decimals", node_doc({{"price_per_gpu_hour_usd", "\"1.2345678\""}}),
         9, "nodes[0].price_per_gpu_hour_usd", "got \"1.2345678\""},
        {"price that is not a number", node_doc({{"price_per_gpu_hour_usd", "\"abc\""}}),
         9, "nodes[0].price_per_gpu_hour_usd", "got \"abc\""},
        {"price as a float", node_doc({{"price_per_gpu_hour_usd", "2.5"}}), 9,
         "nodes[0].price_per_gpu_hour_usd", "got 2.5"},
        {"GPU node without a price", node_doc({{"price_per_gpu_hour_usd", ""}}), 4,
         "nodes[0].price_per_gpu_hour_usd", "got nothing"},
        {"300 GPUs on a node",
         node_doc(
             {{"gpus", "{ count = 300, model = \"H100-80GB\", memory_mib = 81920 }"}}),
         10, "nodes[0].gpus.count", "[0, 256], got 300"},
        {"MIG on a V100",
         node_doc({{"gpus", "{ count = 4, model = \"V100-32GB\", memory_mib = 32768, "
                            "sharing = \"mig\" }"}}),
         10, "nodes[0].gpus.sharing", "\"V100-32GB\""},
        {"time_sliced without replicas",
         node_doc({{"gpus", "{ count = 1, model = \"L4-24GB\", memory_mib = 24576, "
                            "sharing = \"time_sliced\" }"}}),
         10, "nodes[0].gpus.time_slice_replicas", "got nothing"},
        {"nvlink domains that do not divide the GPUs",
         node_doc({{"gpus", "{ count = 8, model = \"H100-80GB\", memory_mib = 81920, "
                            "nvlink_domains = 3 }"}}),
         10, "nodes[0].gpus.nvlink_domains", "got 3"},
        {"unknown GPU key",
         node_doc({{"gpus", "{ count = 8, model = \"H100-80GB\", memory_mib = 81920, "
                            "nvlink = 1 }"}}),
         10, "nodes[0].gpus.nvlink", "unknown key"},
        {"duplicate node names", node_doc({}, second_node), 12, "nodes[1].name",
         "\"n0\" is also defined at line 5"},
        {"group names colliding with a node",
         group_doc("2", second_node.substr(0, 10) + "name = \"g1\"\nrack = \"r\"\n"
                                                    "cpu_millicores = 1\n"
                                                    "memory_mib = 1\n"),
         13, "nodes[0].name", "\"g1\" is also defined at line 5"},
        {"integer given as a string", node_doc({{"cpu_millicores", "\"96000\""}}), 7,
         "nodes[0].cpu_millicores", "got \"96000\""},
        {"labels as an array", node_doc({}, "labels = [\"a\"]\n"), 11, "nodes[0].labels",
         "got an array"},
        {"label that is not a string", node_doc({}, "labels = { zone = 1 }\n"), 11,
         "nodes[0].labels.zone", "got 1"},
        {"missing required key", node_doc({{"memory_mib", ""}}), 4, "nodes[0].memory_mib",
         "got nothing"},
        {"racks is not an array of tables", "racks = 5\n", 1, "racks", "got 5"},
        {"empty file", "", 1, "racks", "no racks"},
        {"racks but no nodes", "[[racks]]\nname = \"r\"\nspine = 0\n", 1, "nodes",
         "no nodes"},
        {"duplicate rack name",
         "[[racks]]\nname = \"r\"\nspine = 0\n[[racks]]\nname = \"r\"\nspine = 1\n", 5,
         "racks[1].name", "first used at line 2"},
        {"oversubscription below 1",
         "[[racks]]\nname = \"r\"\nspine = 0\nuplink_oversubscription = 0.5\n", 4,
         "racks[0].uplink_oversubscription", "got 0.5"},
        {"generate with zero racks", "[generate]\nracks = 0\n", 2, "generate.racks",
         "got 0"},
        {"generate too large", "[generate]\nracks = 1000\nnodes_per_rack = 1000\n", 3,
         "generate.nodes_per_rack", "1000 * 1000 = 1000000"},
        {"generate next to racks", "[[racks]]\nname = \"r\"\nspine = 0\n[generate]\n", 4,
         "generate", "got both"},
        {"generate unknown key", "[generate]\nrack = 2\n", 2, "generate.rack",
         "unknown key"},
        {"too many nodes in all",
         "[[racks]]\nname = \"r\"\nspine = 0\n"
         "[[node_groups]]\nprefix = \"a\"\ncount = 60000\nrack = \"r\"\n"
         "cpu_millicores = 1\nmemory_mib = 1\n"
         "[[node_groups]]\nprefix = \"b\"\ncount = 60000\nrack = \"r\"\n"
         "cpu_millicores = 1\nmemory_mib = 1\n",
         12, "node_groups[1].count", "at most 100000 nodes in all"},
    };
    CHECK(cases.size() >= 20);
    for (const auto& c : cases) {
      CAPTURE(c.what);
      const std::string msg = error_of(c.toml);
      CAPTURE(msg);
      std::string where = "t.toml:" + std::to_string(c.line) + ":";
      if (!c.key.empty()) where += " " + c.key + ": expected ";
      CHECK(msg.find(where) != std::string::npos);
      CHECK(msg.find(c.also) != std::string::npos);
    }
  }

  TEST_CASE("every problem in a file is reported, in line order") {
    const std::string msg =
        error_of("[[racks]]\n"                                                   // 1
                 "name = \"r\"\n"                                                // 2
                 "spine = -3\n"                                                  // 3
                 "[[nodes]]\n"                                                   // 4
                 "name = \"n0\"\n"                                               // 5
                 "rack = \"nope\"\n"                                             // 6
                 "cpu_millicores = 1\n"                                          // 7
                 "memory_mib = 1\n"                                              // 8
                 "capacity = \"cheap\"\n"                                        // 9
                 "price_per_gpu_hour_usd = \"1e2\"\n"                            // 10
                 "gpus = { count = 2, model = \"H100-80GB\", memory_mib = 1 }\n" // 11
                 "[[node_groups]]\n"                                             // 12
                 "prefix = \"g\"\n"                                              // 13
                 "count = -4\n"                                                  // 14
                 "rack = \"r\"\n"                                                // 15
                 "cpu_millicores = 1\n"                                          // 16
                 "memory_mib = 1\n"                                              // 17
                 "oops = true\n");                                               // 18
    CAPTURE(msg);
    const std::vector<std::string> expected{
        "t.toml:3: racks[0].spine: expected",
        "t.toml:6: nodes[0].rack: expected",
        "t.toml:9: nodes[0].capacity: expected",
        "t.toml:10: nodes[0].price_per_gpu_hour_usd: expected",
        "t.toml:14: node_groups[0].count: expected",
        "t.toml:18: node_groups[0].oops: expected",
    };
    size_t last = 0;
    for (const auto& e : expected) {
      auto at = msg.find(e);
      CHECK_MESSAGE(at != std::string::npos, e);
      if (at != std::string::npos) {
        CHECK_MESSAGE(at >= last, e << " out of order");
        last = at;
      }
    }
    CHECK(std::count(msg.begin(), msg.end(), '\n') == 5);
  }

  TEST_CASE("a missing file is not_found") {
    auto r = load_topology_file("/nonexistent/cluster.toml");
    REQUIRE(!r.ok());
    CHECK(r.err().is(errc::not_found));
  }
}
