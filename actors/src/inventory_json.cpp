// node_inventory <-> JSON. Decoding reads a node's report: outside input,
// bounded and checked field by field.

#include "json_input.hpp"
#include "troupe/actors/errc.hpp"
#include "troupe/actors/inventory.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>

namespace troupe::actors {
namespace {

using nlohmann::json;

constexpr size_t max_depth = 8;
constexpr size_t max_name_bytes = 255;  // hostnames, node names
constexpr size_t max_label_bytes = 128; // GPU names, models, UUIDs, driver versions
constexpr size_t max_pci_bytes = 32;    // before normalisation
constexpr size_t max_note_bytes = 1024;
constexpr size_t max_notes = 64;
constexpr size_t max_numa_nodes = 1024;
constexpr uint64_t max_cpus = uint64_t{1} << 20;
constexpr uint64_t max_memory_bytes = uint64_t{1} << 52;   // 4 PiB
constexpr uint64_t max_gpu_memory_mib = uint64_t{1} << 24; // 16 TiB
constexpr uint64_t max_os_index = 1u << 16;

/// Thrown inside decoding only; turned into an error at the boundary.
struct decode_error {
  std::string what;
};

// -- encoding -----------------------------------------------------------------

json gpu_json(const gpu_info& g) {
  return json{{"index", g.index},
              {"uuid", g.uuid},
              {"name", g.name},
              {"model", g.model},
              {"memory_mib", g.memory_mib},
              {"pci_bus_id", g.pci_bus_id},
              {"numa_node", g.numa_node ? json(*g.numa_node) : json(nullptr)},
              {"nvlink_peers", g.nvlink_peers},
              {"nvlink_links", g.nvlink_links},
              {"nvlink_domain", g.nvlink_domain},
              {"mig", std::string{to_string(g.mig)}},
              {"simulated", g.simulated}};
}

// -- decoding -----------------------------------------------------------------

/// Reads one JSON object, naming fields by their path in errors.
class reader {
public:
  reader(const json& obj, std::string path) : obj_(obj), path_(std::move(path)) {
    if (!obj_.is_object()) fail("", "an object", obj_);
  }

  std::string at(std::string_view key) const {
    return path_.empty() ? std::string{key} : path_ + "." + std::string{key};
  }

  [[noreturn]] void fail(std::string_view key, std::string_view expected,
                         const json& got) const {
    std::string where = key.empty() ? (path_.empty() ? "document" : path_) : at(key);
    throw decode_error{where + ": expected " + std::string{expected} + ", got " +
                       detail::describe_json(got)};
  }

  const json& field(std::string_view key) const {
    auto it = obj_.find(key);
    if (it == obj_.end()) throw decode_error{at(key) + ": missing"};
    return *it;
  }

  const json* optional_field(std::string_view key) const {
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }

  uint64_t unsigned_int(std::string_view key, uint64_t min, uint64_t max) const {
    return check_unsigned(field(key), key, min, max);
  }

  uint64_t check_unsigned(const json& v, std::string_view key, uint64_t min,
                          uint64_t max) const {
    std::string expected =
        "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    if (!v.is_number_integer()) fail(key, expected, v);
    if (v.is_number_integer() && !v.is_number_unsigned()) fail(key, expected, v);
    auto x = v.get<uint64_t>();
    if (x < min || x > max) fail(key, expected, v);
    return x;
  }

  std::string string(std::string_view key, size_t max_bytes, bool allow_empty) const {
    return check_string(field(key), key, max_bytes, allow_empty);
  }

  std::string check_string(const json& v, std::string_view key, size_t max_bytes,
                           bool allow_empty) const {
    std::string expected = std::string{allow_empty ? "a string" : "a non-empty string"} +
                           " of at most " + std::to_string(max_bytes) +
                           " bytes without control characters";
    if (!v.is_string()) fail(key, expected, v);
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > max_bytes || (s.empty() && !allow_empty)) fail(key, expected, v);
    for (char c : s)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) fail(key, expected, v);
    return s;
  }

  bool boolean(std::string_view key) const {
    const json& v = field(key);
    if (!v.is_boolean()) fail(key, "true or false", v);
    return v.get<bool>();
  }

  const json& array(std::string_view key, size_t max_items) const {
    const json& v = field(key);
    std::string expected = "an array of at most " + std::to_string(max_items) + " items";
    if (!v.is_array() || v.size() > max_items) {
      if (v.is_array())
        throw decode_error{at(key) + ": expected " + expected + ", got " +
                           std::to_string(v.size())};
      fail(key, expected, v);
    }
    return v;
  }

  /// A PCI address, normalised; empty allowed when `allow_empty`.
  std::string pci(const json& v, std::string_view key, bool allow_empty) const {
    auto s = check_string(v, key, max_pci_bytes, allow_empty);
    if (s.empty()) return s;
    auto norm = normalize_pci_bus_id(s);
    if (norm.empty()) fail(key, "a PCI address such as \"0000:18:00.0\"", v);
    return norm;
  }

private:
  const json& obj_;
  std::string path_;
};

template <class Enum, size_t N>
Enum enum_field(const reader& r, std::string_view key,
                const std::array<std::pair<std::string_view, Enum>, N>& names) {
  const json& v = r.field(key);
  std::string expected = "one of ";
  for (size_t i = 0; i < N; ++i)
    expected += std::string{i == 0 ? "" : "|"} + std::string{names[i].first};
  if (!v.is_string()) r.fail(key, expected, v);
  for (const auto& [name, value] : names)
    if (v.get_ref<const std::string&>() == name) return value;
  r.fail(key, expected, v);
}

constexpr std::array<std::pair<std::string_view, mig_mode>, 3> mig_names = {
    {{"unsupported", mig_mode::unsupported},
     {"disabled", mig_mode::disabled},
     {"enabled", mig_mode::enabled}}};

constexpr std::array<std::pair<std::string_view, placement::capacity_type>, 3>
    capacity_names = {{{"on_demand", placement::capacity_type::on_demand},
                       {"reserved", placement::capacity_type::reserved},
                       {"spot", placement::capacity_type::spot}}};
/// Placement's price limit: 10^6 USD per GPU-hour.
constexpr uint64_t max_price_micro_usd = uint64_t{1'000'000} * 1'000'000;

constexpr std::array<std::pair<std::string_view, gpu_source>, 4> source_names = {
    {{"none", gpu_source::none},
     {"nvml", gpu_source::nvml},
     {"declared", gpu_source::declared},
     {"simulated", gpu_source::simulated}}};

gpu_info decode_gpu(const json& v, const std::string& path, size_t position,
                    size_t gpu_count) {
  reader r{v, path};
  gpu_info g;
  g.index = static_cast<uint32_t>(r.unsigned_int("index", position, position));
  g.uuid = r.string("uuid", max_label_bytes, false);
  g.name = r.string("name", max_label_bytes, false);
  g.model = r.string("model", max_label_bytes, false);
  g.memory_mib = r.unsigned_int("memory_mib", 0, max_gpu_memory_mib);
  g.pci_bus_id = r.pci(r.field("pci_bus_id"), "pci_bus_id", true);
  if (const json& numa = r.field("numa_node"); !numa.is_null())
    g.numa_node =
        static_cast<uint32_t>(r.check_unsigned(numa, "numa_node", 0, max_os_index));
  const json& peers = r.array("nvlink_peers", nvml_max_nvlinks);
  for (size_t i = 0; i < peers.size(); ++i)
    g.nvlink_peers.push_back(
        r.pci(peers[i], "nvlink_peers[" + std::to_string(i) + "]", false));
  g.nvlink_links =
      static_cast<uint32_t>(r.unsigned_int("nvlink_links", 0, nvml_max_nvlinks));
  if (g.nvlink_peers.size() > g.nvlink_links)
    throw decode_error{r.at("nvlink_peers") + ": " +
                       std::to_string(g.nvlink_peers.size()) + " peers over " +
                       std::to_string(g.nvlink_links) + " links"};
  g.nvlink_domain = static_cast<uint32_t>(
      r.unsigned_int("nvlink_domain", 0, gpu_count == 0 ? 0 : gpu_count - 1));
  g.mig = enum_field(r, "mig", mig_names);
  g.simulated = r.boolean("simulated");
  return g;
}

node_inventory decode(const json& doc) {
  reader r{doc, ""};
  node_inventory inv;
  inv.node_name = r.string("node_name", max_name_bytes, true);
  inv.hostname = r.string("hostname", max_name_bytes, false);

  const json& host_json = r.field("host");
  reader h{host_json, "host"};
  host_layout& host = inv.host;
  host.logical_cpus = static_cast<uint32_t>(h.unsigned_int("logical_cpus", 1, max_cpus));
  host.physical_cores =
      static_cast<uint32_t>(h.unsigned_int("physical_cores", 1, host.logical_cpus));
  host.allowed_cpus =
      static_cast<uint32_t>(h.unsigned_int("allowed_cpus", 1, host.logical_cpus));
  host.memory_bytes = h.unsigned_int("memory_bytes", 0, max_memory_bytes);
  host.source = h.string("source", 16, false);
  if (host.source != "hwloc" && host.source != "sysconf")
    h.fail("source", "one of hwloc|sysconf", h.field("source"));
  const json& numa = h.array("numa_nodes", max_numa_nodes);
  if (numa.empty()) throw decode_error{"host.numa_nodes: expected at least one node"};
  std::set<uint32_t> seen_numa;
  for (size_t i = 0; i < numa.size(); ++i) {
    reader n{numa[i], "host.numa_nodes[" + std::to_string(i) + "]"};
    numa_node_info info;
    info.os_index = static_cast<uint32_t>(n.unsigned_int("os_index", 0, max_os_index));
    info.memory_bytes = n.unsigned_int("memory_bytes", 0, max_memory_bytes);
    info.logical_cpus =
        static_cast<uint32_t>(n.unsigned_int("logical_cpus", 0, host.logical_cpus));
    if (!seen_numa.insert(info.os_index).second)
      throw decode_error{n.at("os_index") + ": NUMA node " +
                         std::to_string(info.os_index) + " listed twice"};
    host.numa_nodes.push_back(info);
  }

  inv.source = enum_field(r, "gpu_source", source_names);
  inv.driver_version = r.string("driver_version", max_label_bytes, true);
  const json& gpus = r.array("gpus", placement::max_gpus_per_node);
  if (inv.source == gpu_source::none && !gpus.empty())
    throw decode_error{"gpus: gpu_source is \"none\" but " + std::to_string(gpus.size()) +
                       " GPUs are listed"};
  std::set<std::string> uuids;
  for (size_t i = 0; i < gpus.size(); ++i) {
    std::string path = "gpus[" + std::to_string(i) + "]";
    auto g = decode_gpu(gpus[i], path, i, gpus.size());
    if (g.simulated != (inv.source == gpu_source::simulated))
      throw decode_error{path + ".simulated: " + (g.simulated ? "true" : "false") +
                         " but gpu_source is \"" + std::string{to_string(inv.source)} +
                         "\""};
    if (!uuids.insert(g.uuid).second) throw decode_error{path + ".uuid: listed twice"};
    inv.gpus.push_back(std::move(g));
  }

  // The pool (inventories from before it was declared have neither field).
  if (r.optional_field("capacity") != nullptr)
    inv.capacity = enum_field(r, "capacity", capacity_names);
  if (r.optional_field("price_micro_usd") != nullptr)
    inv.price_per_gpu_hour = micro_usd{
        static_cast<int64_t>(r.unsigned_int("price_micro_usd", 0, max_price_micro_usd))};
  if (const json* notes = r.optional_field("notes"); notes != nullptr) {
    const json& list = r.array("notes", max_notes);
    for (size_t i = 0; i < list.size(); ++i)
      inv.notes.push_back(r.check_string(list[i], "notes[" + std::to_string(i) + "]",
                                         max_note_bytes, true));
  }
  return inv;
}

} // namespace

std::string encode_inventory(const node_inventory& inv) {
  json numa = json::array();
  for (const auto& n : inv.host.numa_nodes)
    numa.push_back({{"os_index", n.os_index},
                    {"memory_bytes", n.memory_bytes},
                    {"logical_cpus", n.logical_cpus}});
  json gpus = json::array();
  for (const auto& g : inv.gpus)
    gpus.push_back(gpu_json(g));
  json doc = {
      {"node_name", inv.node_name},
      {"hostname", inv.hostname},
      {"host",
       {{"physical_cores", inv.host.physical_cores},
        {"logical_cpus", inv.host.logical_cpus},
        {"allowed_cpus", inv.host.allowed_cpus},
        {"memory_bytes", inv.host.memory_bytes},
        {"source", inv.host.source},
        {"numa_nodes", std::move(numa)}}},
      {"gpu_source", std::string{to_string(inv.source)}},
      {"driver_version", inv.driver_version},
      {"gpus", std::move(gpus)},
      {"notes", inv.notes},
      {"capacity", inv.capacity == placement::capacity_type::on_demand  ? "on_demand"
                   : inv.capacity == placement::capacity_type::reserved ? "reserved"
                                                                        : "spot"},
      {"price_micro_usd", inv.price_per_gpu_hour.value()}};
  // Replace invalid UTF-8 (a hostname or NVML string could hold any byte)
  // rather than throw.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

result<node_inventory> decode_inventory(std::string_view json_text) {
  if (json_text.size() > max_inventory_json_bytes)
    return error{errc::invalid_argument,
                 "inventory: " + std::to_string(json_text.size()) +
                     " bytes, more than the " + std::to_string(max_inventory_json_bytes) +
                     " accepted"};
  if (detail::json_nesting_depth(json_text, max_depth) > max_depth)
    return error{errc::invalid_argument, "inventory: nested deeper than " +
                                             std::to_string(max_depth) + " levels"};
  json doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded())
    return error{errc::invalid_argument, "inventory: not valid JSON"};
  try {
    return decode(doc);
  } catch (const decode_error& e) {
    return error{errc::invalid_argument, "inventory: " + e.what};
  } catch (const json::exception& e) {
    return error{errc::invalid_argument, std::string{"inventory: "} + e.what()};
  }
}

} // namespace troupe::actors
