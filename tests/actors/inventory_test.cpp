// The node agent's resource inventory: discovery through the fake NVML,
// declared and simulated GPUs from the [resources] section, hwloc on this
// machine, the JSON codec against hostile input, and the conversion to
// placement's node_spec.

#include "fake_nvml_scenario.hpp"
#include "troupe/actors/errc.hpp"
#include "troupe/actors/inventory.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

using namespace troupe;
using namespace troupe::actors;
using troupe::test::fake_nvml_library;
using troupe::test::fake_nvml_scenario;
using troupe::test::four_gpu_scenario;

namespace {

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

/// An NVML path that never loads, so tests behave alike on GPU machines.
const std::string no_nvml = "/nonexistent/libnvidia-ml.so.1";

resources_section with_nvml(gpu_discovery d, std::string lib) {
  resources_section r;
  r.discovery = d;
  r.nvml_library = std::move(lib);
  return r;
}

std::vector<uint32_t> domains_of(const node_inventory& inv) {
  std::vector<uint32_t> out;
  for (const auto& g : inv.gpus)
    out.push_back(g.nvlink_domain);
  return out;
}

result<resources_settings> load_resources(std::string_view toml) {
  return resources_schema().load_string(toml, "node.toml", env_map{});
}

} // namespace

TEST_SUITE("actors.inventory") {

  TEST_CASE("NVML discovery describes the four-GPU node and maps it to placement") {
    fake_nvml_scenario scenario{four_gpu_scenario()};
    auto inv = discover_inventory(with_nvml(gpu_discovery::nvml, fake_nvml_library),
                                  "node-a", env_map{});
    REQUIRE_MESSAGE(inv.ok(), troupe::test::why(inv));
    CHECK(inv->node_name == "node-a");
    CHECK(inv->hostname == local_hostname());
    CHECK(inv->source == gpu_source::nvml);
    CHECK(inv->driver_version == "550.54.15");
    REQUIRE(inv->gpus.size() == 4);
    CHECK(domains_of(*inv) == std::vector<uint32_t>{0, 0, 1, 1});
    for (const auto& g : inv->gpus) {
      CAPTURE(g.index);
      CHECK(g.model == "H100-80GB");
      CHECK(g.name == "NVIDIA H100 80GB HBM3");
      CHECK(g.memory_mib == 81559);
      CHECK_FALSE(g.simulated);
      CHECK(g.mig == (g.index == 2 ? mig_mode::enabled : mig_mode::disabled));
    }
    CHECK(inv->gpus[0].nvlink_peers == std::vector<std::string>{"0000:2a:00.0"});
    CHECK(inv->gpus[0].nvlink_links == 2);
    CHECK(inv->gpus[3].nvlink_peers == std::vector<std::string>{"0000:3b:00.0"});
    CHECK(inv->gpus[3].nvlink_links == 1);
    CHECK(inv->gpus[2].pci_bus_id == "0000:3b:00.0");

    auto node = to_node_spec(*inv);
    CHECK(node.name == "node-a");
    CHECK(node.cpu_milli == uint64_t{inv->host.allowed_cpus} * 1000);
    CHECK(node.memory_mib == inv->host.memory_bytes >> 20);
    REQUIRE(node.gpus.size() == 4);
    CHECK(node.gpus[0].model == "H100-80GB");
    CHECK(node.gpus[0].memory_mib == 81559);
    CHECK(node.gpus[1].nvlink_domain == 0);
    CHECK(node.gpus[3].nvlink_domain == 1);
    CHECK(node.gpus[2].sharing == placement::gpu_sharing::mig);
    CHECK(node.gpus[0].sharing == placement::gpu_sharing::whole);
    placement::cluster_topology topo;
    topo.racks.push_back({"rack-0", 0, 1.0});
    topo.nodes.push_back(node);
    auto valid = topo.validate();
    CHECK_MESSAGE(valid.ok(), troupe::test::why(valid));
  }

  TEST_CASE("NVLink islands through an NVSwitch join every GPU that reaches it") {
    std::vector<gpu_info> gpus(5);
    const char* buses[] = {"0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:04:00.0",
                           "0000:05:00.0"};
    for (size_t i = 0; i < gpus.size(); ++i) {
      gpus[i].index = static_cast<uint32_t>(i);
      gpus[i].pci_bus_id = buses[i];
    }
    // 0, 2 and 3 reach switch a0; 1 reaches nothing; 4 reaches switch b0.
    gpus[0].nvlink_peers = {"0000:a0:00.0"};
    gpus[2].nvlink_peers = {"0000:a0:00.0"};
    gpus[3].nvlink_peers = {"0000:a0:00.0", "0000:a1:00.0"};
    gpus[4].nvlink_peers = {"0000:b0:00.0"};
    assign_nvlink_domains(gpus);
    std::vector<uint32_t> d;
    for (const auto& g : gpus)
      d.push_back(g.nvlink_domain);
    CHECK(d == std::vector<uint32_t>{0, 1, 0, 0, 2});
  }

  TEST_CASE("a simulated 8-GPU node comes from the [resources] section") {
    auto cfg = load_resources(R"(
[resources]
simulated_gpus = 8
gpu_model = "H100-80GB"
gpu_memory_mib = 81920
nvlink_domain_size = 8
nvml_library = "/nonexistent/libnvidia-ml.so.1"
)");
    REQUIRE_MESSAGE(cfg.ok(), troupe::test::why(cfg));
    CHECK(cfg->resources.discovery == gpu_discovery::automatic);
    auto inv = discover_inventory(cfg->resources, "sim-0", env_map{});
    REQUIRE_MESSAGE(inv.ok(), troupe::test::why(inv));
    CHECK(inv->source == gpu_source::simulated);
    REQUIRE(inv->gpus.size() == 8);
    REQUIRE_FALSE(inv->notes.empty());
    CHECK(contains(inv->notes[0], "cannot load /nonexistent/libnvidia-ml.so.1"));
    CHECK(domains_of(*inv) == std::vector<uint32_t>(8, 0));
    for (const auto& g : inv->gpus) {
      CAPTURE(g.index);
      CHECK(g.simulated);
      CHECK(g.model == "H100-80GB");
      CHECK(g.memory_mib == 81920);
      CHECK(g.uuid == "GPU-sim-sim-0-" + std::to_string(g.index));
      CHECK(g.mig == mig_mode::disabled); // H100 could, but is not in MIG mode
      CHECK(g.nvlink_links == 7);
      REQUIRE(g.numa_node.has_value());
    }
    auto node = to_node_spec(*inv);
    CHECK(node.gpus.size() == 8);
    CHECK(node.capacity == placement::capacity_type::on_demand);
    CHECK(node.price_per_gpu_hour == troupe::micro_usd{0});
    placement::cluster_topology topo;
    topo.racks.push_back({"rack-0", 0, 1.0});
    topo.nodes.push_back(node);
    CHECK(topo.validate().ok());
  }

  TEST_CASE("simulated islands, MIG and NUMA spread follow the config") {
    resources_section r;
    r.discovery = gpu_discovery::simulated;
    r.simulated_gpus = 8;
    r.nvlink_domain_size = 4;
    r.gpu_model = "A100-80GB";
    r.gpu_mig = true;
    host_layout host;
    host.numa_nodes = {{0, 1 << 30, 4}, {1, 1 << 30, 4}};
    auto gpus = configured_gpus(r, gpu_source::simulated, 8, "n", host);
    REQUIRE(gpus.size() == 8);
    for (uint32_t i = 0; i < 8; ++i) {
      CAPTURE(i);
      CHECK(gpus[i].nvlink_domain == i / 4);
      CHECK(gpus[i].numa_node == i / 4);
      CHECK(gpus[i].mig == mig_mode::enabled);
      CHECK(gpus[i].nvlink_links == 3);
    }
    r.nvlink_domain_size = 0;
    auto lonely = configured_gpus(r, gpu_source::simulated, 3, "n", host);
    for (uint32_t i = 0; i < 3; ++i) {
      CHECK(lonely[i].nvlink_domain == i);
      CHECK(lonely[i].nvlink_peers.empty());
    }
    node_inventory inv;
    inv.gpus = gpus;
    auto node = to_node_spec(inv);
    CHECK(node.gpus[5].sharing == placement::gpu_sharing::mig);
    CHECK(node.gpus[5].numa_node == 1);
  }

  TEST_CASE("discovery falls back from NVML to declared, then simulated, then none") {
    SUBCASE("NVML loads but sees no GPUs: declared GPUs") {
      fake_nvml_scenario scenario{{{"gpus", nlohmann::json::array()}}};
      auto r = with_nvml(gpu_discovery::automatic, fake_nvml_library);
      r.declared_gpus = 2;
      r.gpu_model = "A100-40GB";
      r.gpu_memory_mib = 40960;
      r.nvlink_domain_size = 2;
      auto inv = discover_inventory(r, "d", env_map{});
      REQUIRE_MESSAGE(inv.ok(), troupe::test::why(inv));
      CHECK(inv->source == gpu_source::declared);
      REQUIRE(inv->gpus.size() == 2);
      CHECK_FALSE(inv->gpus[0].simulated);
      CHECK(inv->gpus[1].model == "A100-40GB");
      CHECK(inv->gpus[1].uuid == "GPU-declared-d-1");
      CHECK_FALSE(inv->gpus[1].numa_node.has_value());
      CHECK(domains_of(*inv) == std::vector<uint32_t>{0, 0});
      CHECK(contains(inv->notes.at(0), "sees no GPUs"));
    }
    SUBCASE("no NVML, nothing configured: no GPUs") {
      auto inv = discover_inventory(with_nvml(gpu_discovery::automatic, no_nvml), "x",
                                    env_map{});
      REQUIRE(inv.ok());
      CHECK(inv->source == gpu_source::none);
      CHECK(inv->gpus.empty());
    }
    SUBCASE("NVML from TROUPE_NVML_LIBRARY in the environment map") {
      fake_nvml_scenario scenario{four_gpu_scenario()};
      auto inv =
          discover_inventory(resources_section{}, "e",
                             env_map{{std::string{nvml_library_env}, fake_nvml_library}});
      REQUIRE(inv.ok());
      CHECK(inv->source == gpu_source::nvml);
      CHECK(inv->gpus.size() == 4);
    }
    SUBCASE("discovery = none ignores everything") {
      auto r = with_nvml(gpu_discovery::none, fake_nvml_library);
      r.simulated_gpus = 8;
      auto inv = discover_inventory(r, "x", env_map{});
      REQUIRE(inv.ok());
      CHECK(inv->source == gpu_source::none);
      CHECK(inv->gpus.empty());
    }
  }

  TEST_CASE("discovery reports NVML failures it must not paper over") {
    SUBCASE("discovery = nvml without a library") {
      auto inv =
          discover_inventory(with_nvml(gpu_discovery::nvml, no_nvml), "x", env_map{});
      REQUIRE_FALSE(inv.ok());
      CHECK(inv.err().is(errc::unavailable));
    }
    SUBCASE("NVML sees GPUs and then fails on one: no simulated stand-ins") {
      auto s = four_gpu_scenario();
      s["gpus"][2]["fail"] = {{"nvmlDeviceGetPciInfo_v3", 15}};
      fake_nvml_scenario scenario{s};
      auto r = with_nvml(gpu_discovery::automatic, fake_nvml_library);
      r.simulated_gpus = 8;
      auto inv = discover_inventory(r, "x", env_map{});
      REQUIRE_FALSE(inv.ok());
      CHECK(inv.err().is(errc::unavailable));
      CHECK(contains(inv.err().message(), "nvmlDeviceGetPciInfo_v3 (GPU 2)"));
    }
    SUBCASE("nvmlInit_v2 fails: auto falls back and says why") {
      fake_nvml_scenario scenario{{{"fail", {{"nvmlInit_v2", 9}}}}};
      auto r = with_nvml(gpu_discovery::automatic, fake_nvml_library);
      r.simulated_gpus = 2;
      auto inv = discover_inventory(r, "x", env_map{});
      REQUIRE(inv.ok());
      CHECK(inv->source == gpu_source::simulated);
      CHECK(contains(inv->notes.at(0), "nvmlInit_v2"));
    }
  }

  TEST_CASE("GPU model names follow placement's spelling") {
    struct row {
      const char* nvml;
      uint64_t mib;
      const char* model;
    };
    for (const auto& r :
         std::vector<row>{{"NVIDIA H100 80GB HBM3", 81559, "H100-80GB"},
                          {"NVIDIA H100 NVL", 95830, "H100-94GB"},
                          {"NVIDIA H200", 143771, "H200-141GB"},
                          {"NVIDIA A100-SXM4-80GB", 81920, "A100-80GB"},
                          {"NVIDIA A100-SXM4-40GB", 40536, "A100-40GB"},
                          {"Tesla V100-SXM2-32GB", 32510, "V100-32GB"},
                          {"Tesla T4", 15360, "T4-16GB"},
                          {"NVIDIA L4", 23034, "L4-24GB"},
                          {"NVIDIA GeForce RTX 4090", 24564, "RTX-4090-24GB"},
                          {"NVIDIA RTX A6000", 49140, "RTX-A6000-48GB"},
                          {"NVIDIA B200", 183359, "B200-180GB"},
                          {"Mystery", 400000, "Mystery-391GB"},
                          {"", 0, "GPU"}}) {
      CAPTURE(r.nvml);
      CHECK(gpu_model_name(r.nvml, r.mib) == r.model);
    }
  }

  TEST_CASE("hwloc describes this machine's CPUs, NUMA nodes and memory") {
    auto topo = host_topology::load();
    REQUIRE_MESSAGE(topo.ok(), troupe::test::why(topo));
    const auto& h = topo->layout();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    MESSAGE("hwloc: " << h.physical_cores << " cores, " << h.logical_cpus << " CPUs ("
                      << h.allowed_cpus << " allowed), " << h.numa_nodes.size()
                      << " NUMA nodes, " << (h.memory_bytes >> 20)
                      << " MiB; sysconf: " << online << " CPUs online");
    CHECK(h.source == "hwloc");
    CHECK(h.physical_cores >= 1);
    CHECK(h.physical_cores <= h.logical_cpus);
    // hwloc is loaded with the disallowed CPUs included, so it counts every
    // online CPU as sysconf does, whatever this process's cpuset.
    CHECK(h.logical_cpus == static_cast<uint32_t>(online));
    CHECK(h.allowed_cpus >= 1);
    CHECK(h.allowed_cpus <= h.logical_cpus);
    REQUIRE_FALSE(h.numa_nodes.empty());
    uint64_t numa_memory = 0;
    for (const auto& n : h.numa_nodes)
      numa_memory += n.memory_bytes;
    // This sandbox (a Firecracker VM) lists less memory in its NUMA node's
    // meminfo than MemTotal; the host total is the larger figure.
    CHECK(numa_memory > 0);
    CHECK(numa_memory <= h.memory_bytes);
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    auto phys = static_cast<double>(pages) * static_cast<double>(page);
    CHECK(static_cast<double>(h.memory_bytes) > 0.9 * phys);
    CHECK(static_cast<double>(h.memory_bytes) < 1.1 * phys);
    CHECK_FALSE(topo->numa_node_of("not a bus id").has_value());
    CHECK_FALSE(topo->numa_node_of("fffe:00:00.0").has_value());

    auto fallback = sysconf_host_layout();
    CHECK(fallback.logical_cpus == h.logical_cpus);
    CHECK(fallback.numa_nodes.size() == 1);
  }

  TEST_CASE(
      "hwloc places this machine's PCI devices on NUMA nodes the kernel agrees with") {
    auto topo = host_topology::load();
    REQUIRE(topo.ok());
    std::set<uint32_t> nodes;
    for (const auto& n : topo->layout().numa_nodes)
      nodes.insert(n.os_index);
    std::error_code ec;
    size_t devices = 0;
    size_t placed = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator("/sys/bus/pci/devices", ec)) {
      ++devices;
      auto bus = entry.path().filename().string();
      auto node = topo->numa_node_of(bus);
      if (!node) continue; // hwloc filtered it out (not a GPU, NIC or disk)
      ++placed;
      CAPTURE(bus);
      CHECK(nodes.count(*node) == 1);
      int kernel = -1;
      std::ifstream(entry.path() / "numa_node") >> kernel;
      if (kernel >= 0) CHECK(*node == static_cast<uint32_t>(kernel));
    }
    MESSAGE(devices << " PCI devices in sysfs, " << placed << " placed by hwloc");
  }

  TEST_CASE("inventories round-trip through JSON") {
    fake_nvml_scenario scenario{four_gpu_scenario()};
    auto nvml = discover_inventory(with_nvml(gpu_discovery::nvml, fake_nvml_library), "a",
                                   env_map{});
    REQUIRE(nvml.ok());
    auto r = with_nvml(gpu_discovery::simulated, no_nvml);
    r.simulated_gpus = 8;
    r.capacity = placement::capacity_type::spot;
    r.price_per_gpu_hour = "1.25";
    auto sim = discover_inventory(r, "b", env_map{});
    REQUIRE(sim.ok());
    CHECK(sim->capacity == placement::capacity_type::spot);
    CHECK(sim->price_per_gpu_hour == troupe::micro_usd{1'250'000});
    auto spec = to_node_spec(*sim);
    CHECK(spec.capacity == placement::capacity_type::spot);
    CHECK(spec.price_per_gpu_hour == troupe::micro_usd{1'250'000});
    auto none =
        discover_inventory(with_nvml(gpu_discovery::none, no_nvml), "", env_map{});
    REQUIRE(none.ok());
    for (const auto* inv : {&*nvml, &*sim, &*none}) {
      auto text = encode_inventory(*inv);
      auto back = decode_inventory(text);
      REQUIRE_MESSAGE(back.ok(), troupe::test::why(back));
      CHECK(*back == *inv);
    }
  }

  TEST_CASE("the JSON decoder rejects hostile inventories with clear errors") {
    resources_section r;
    r.discovery = gpu_discovery::simulated;
    r.simulated_gpus = 2;
    r.nvml_library = no_nvml;
    auto good = discover_inventory(r, "n", env_map{});
    REQUIRE(good.ok());
    const auto base = nlohmann::json::parse(encode_inventory(*good));

    struct row {
      const char* what;
      std::function<void(nlohmann::json&)> edit;
      const char* message;
    };
    using nlohmann::json;
    const std::vector<row> rows = {
        {"hostname a number", [](json& j) { j["hostname"] = 7; }, "hostname: expected"},
        {"hostname empty", [](json& j) { j["hostname"] = ""; }, "hostname: expected"},
        {"hostname huge", [](json& j) { j["hostname"] = std::string(300, 'h'); },
         "hostname: expected"},
        {"control byte", [](json& j) { j["hostname"] = "a\nb"; }, "hostname: expected"},
        {"no host", [](json& j) { j.erase("host"); }, "host: missing"},
        {"negative cpus", [](json& j) { j["host"]["logical_cpus"] = -4; },
         "host.logical_cpus: expected an integer in [1, 1048576], got -4"},
        {"zero cpus", [](json& j) { j["host"]["logical_cpus"] = 0; },
         "host.logical_cpus"},
        {"fractional cpus", [](json& j) { j["host"]["logical_cpus"] = 2.5; },
         "got a fractional number"},
        {"cpus as string", [](json& j) { j["host"]["logical_cpus"] = "8"; }, "got \"8\""},
        {"more cores than cpus",
         [](json& j) {
           j["host"]["physical_cores"] = j["host"]["logical_cpus"].get<int>() + 1;
         },
         "host.physical_cores"},
        {"absurd memory", [](json& j) { j["host"]["memory_bytes"] = 1ull << 60; },
         "host.memory_bytes"},
        {"huge integer", [](json& j) { j["host"]["memory_bytes"] = "@HUGE@"; },
         "host.memory_bytes"},
        {"no NUMA nodes", [](json& j) { j["host"]["numa_nodes"] = json::array(); },
         "at least one node"},
        {"NUMA node twice",
         [](json& j) { j["host"]["numa_nodes"].push_back(j["host"]["numa_nodes"][0]); },
         "listed twice"},
        {"bad host source", [](json& j) { j["host"]["source"] = "guess"; },
         "host.source: expected one of hwloc|sysconf"},
        {"unknown gpu source", [](json& j) { j["gpu_source"] = "cuda"; },
         "gpu_source: expected one of none|nvml|declared|simulated, got \"cuda\""},
        {"gpus not an array", [](json& j) { j["gpus"] = json::object(); },
         "gpus: expected"},
        {"too many gpus",
         [](json& j) {
           json many = json::array();
           for (int i = 0; i < 300; ++i)
             many.push_back(j["gpus"][0]);
           j["gpus"] = many;
         },
         "at most 256 items, got 300"},
        {"gpus with source none", [](json& j) { j["gpu_source"] = "none"; },
         "gpu_source is \"none\""},
        {"index out of place", [](json& j) { j["gpus"][1]["index"] = 5; },
         "gpus[1].index: expected an integer in [1, 1]"},
        {"negative memory", [](json& j) { j["gpus"][0]["memory_mib"] = -1; },
         "gpus[0].memory_mib: expected an integer in [0, 16777216], got -1"},
        {"absurd GPU memory", [](json& j) { j["gpus"][0]["memory_mib"] = 1ull << 40; },
         "gpus[0].memory_mib"},
        {"bad bus id", [](json& j) { j["gpus"][0]["pci_bus_id"] = "pci0"; },
         "gpus[0].pci_bus_id: expected a PCI address"},
        {"bad peer", [](json& j) { j["gpus"][0]["nvlink_peers"][0] = "x"; },
         "gpus[0].nvlink_peers[0]"},
        {"too many peers",
         [](json& j) {
           j["gpus"][0]["nvlink_peers"] =
               json(std::vector<std::string>(40, "0000:01:00.0"));
         },
         "gpus[0].nvlink_peers: expected an array of at most 18 items"},
        {"more peers than links", [](json& j) { j["gpus"][0]["nvlink_links"] = 0; },
         "peers over 0 links"},
        {"domain beyond the GPUs", [](json& j) { j["gpus"][0]["nvlink_domain"] = 9; },
         "gpus[0].nvlink_domain"},
        {"bad mig", [](json& j) { j["gpus"][0]["mig"] = true; },
         "gpus[0].mig: expected one of unsupported|disabled|enabled, got true"},
        {"numa node a string", [](json& j) { j["gpus"][0]["numa_node"] = "0"; },
         "gpus[0].numa_node"},
        {"simulated flag contradicts the source",
         [](json& j) { j["gpus"][0]["simulated"] = false; }, "gpus[0].simulated: false"},
        {"duplicate uuid", [](json& j) { j["gpus"][1]["uuid"] = j["gpus"][0]["uuid"]; },
         "gpus[1].uuid: listed twice"},
        {"gpu not an object", [](json& j) { j["gpus"][0] = 3; },
         "gpus[0]: expected an object, got 3"},
        {"document not an object", [](json& j) { j = json::array(); },
         "document: expected an object"},
        {"notes not strings",
         [](json& j) {
           j["notes"] = {1, 2};
         },
         "notes[0]"},
        {"unknown capacity", [](json& j) { j["capacity"] = "preemptible"; },
         "capacity: expected one of on_demand|reserved|spot"},
        {"capacity a number", [](json& j) { j["capacity"] = 1; }, "capacity: expected"},
        {"negative price", [](json& j) { j["price_micro_usd"] = -1; },
         "price_micro_usd: expected an integer"},
        {"price above placement's limit",
         [](json& j) { j["price_micro_usd"] = 1'000'000'000'001; }, "price_micro_usd"},
        {"price as text", [](json& j) { j["price_micro_usd"] = "2.50"; },
         "price_micro_usd"},
    };
    for (const auto& r : rows) {
      CAPTURE(r.what);
      json j = base;
      r.edit(j);
      auto text = j.dump();
      // A number wider than 64 bits, which JSON allows and nlohmann stores as
      // a double.
      if (auto at = text.find("\"@HUGE@\""); at != std::string::npos)
        text.replace(at, 8, "99999999999999999999999");
      auto got = decode_inventory(text);
      REQUIRE_FALSE(got.ok());
      CHECK(got.err().is(errc::invalid_argument));
      CHECK_MESSAGE(contains(got.err().message(), r.message), got.err().message());
    }

    SUBCASE("text that is not an inventory") {
      for (std::string text :
           {std::string{}, std::string{"{"}, std::string{"null"}, std::string{"\"x\""},
            std::string(5000, '['), std::string(max_inventory_json_bytes + 1, ' '),
            std::string{"{\"a\":"} + std::string(20, '[')}) {
        CAPTURE(text.substr(0, 20));
        auto got = decode_inventory(text);
        REQUIRE_FALSE(got.ok());
        CHECK(got.err().is(errc::invalid_argument));
      }
    }
    SUBCASE("unknown keys are ignored") {
      json j = base;
      j["future_field"] = {{"x", 1}};
      j["gpus"][0]["temperature"] = 60;
      auto got = decode_inventory(j.dump());
      REQUIRE_MESSAGE(got.ok(), troupe::test::why(got));
      CHECK(*got == *good);
    }
  }

  TEST_CASE("the [resources] section rejects hostile values with their key") {
    struct row {
      const char* toml;
      const char* message;
    };
    for (const auto& r : std::vector<row>{
             {"[resources]\nsimulated_gpus = -1\n", "resources.simulated_gpus"},
             {"[resources]\nsimulated_gpus = 100000\n", "resources.simulated_gpus"},
             {"[resources]\nsimulated_gpus = \"8\"\n", "resources.simulated_gpus"},
             {"[resources]\nsimulated_gpus = 8.5\n", "resources.simulated_gpus"},
             {"[resources]\ndeclared_gpus = -3\n", "resources.declared_gpus"},
             {"[resources]\ngpu_memory_mib = 0\n", "resources.gpu_memory_mib"},
             {"[resources]\ngpu_memory_mib = 99999999999999\n",
              "resources.gpu_memory_mib"},
             {"[resources]\nnvlink_domain_size = -8\n", "resources.nvlink_domain_size"},
             {"[resources]\ndiscovery = \"gpu\"\n", "resources.discovery"},
             {"[resources]\ngpu_model = 7\n", "resources.gpu_model"},
             {"[resources]\ngpu_model = \"\"\n", "gpu_model must be 1 to 64 bytes"},
             {"[resources]\ngpu_mig = \"yes\"\n", "resources.gpu_mig"},
             {"[resources]\nsimulated_gpu = 8\n", "resources.simulated_gpu"},
             {"[resources]\ndiscovery = \"simulated\"\n",
              "discovery = \"simulated\" needs simulated_gpus >= 1"},
             {"[resources]\ndiscovery = \"declared\"\n",
              "discovery = \"declared\" needs declared_gpus >= 1"},
             {"[resources]\ndeclared_gpus = 2\nsimulated_gpus = 8\n", "are both set"},
             {"[resources]\nsimulated_gpus = 8\ngpu_model = \"T4-16GB\"\ngpu_mig = "
              "true\n",
              "gpu_mig needs a MIG-capable gpu_model"},
             {"[resources]\ncapacity = \"preemptible\"\n", "resources.capacity"},
             {"[resources]\ncapacity = \"on-demand\"\n", "resources.capacity"},
             {"[resources]\nprice_per_gpu_hour_usd = \"-2\"\n",
              "resources.price_per_gpu_hour_usd"},
             {"[resources]\nprice_per_gpu_hour_usd = \"2,50\"\n",
              "resources.price_per_gpu_hour_usd"},
             {"[resources]\nprice_per_gpu_hour_usd = 2.5\n",
              "resources.price_per_gpu_hour_usd"},
         }) {
      CAPTURE(r.toml);
      auto got = load_resources(r.toml);
      REQUIRE_FALSE(got.ok());
      CHECK_MESSAGE(contains(got.err().message(), r.message), got.err().message());
    }
    auto defaults = load_resources("");
    REQUIRE(defaults.ok());
    CHECK(defaults->resources == resources_section{});
    auto env = resources_schema().load_string(
        "", "node.toml", env_map{{"TROUPE_RESOURCES_SIMULATED_GPUS", "4"}});
    REQUIRE(env.ok());
    CHECK(env->resources.simulated_gpus == 4);
    auto toml = resources_schema().to_toml(*env);
    auto back = resources_schema().load_string(toml, "rendered", env_map{});
    REQUIRE(back.ok());
    CHECK(*back == *env);
  }

} // TEST_SUITE
