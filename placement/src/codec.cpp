#include "troupe/placement/codec.hpp"

#include "troupe/placement/errc.hpp"

#include <nlohmann/json.hpp>

namespace troupe::placement {
namespace {

using nlohmann::json;

/// Thrown inside decoding only; turned into an error at the boundary.
struct decode_error {
  std::string what;
};

int64_t ns_of(time_point t) {
  return t.time_since_epoch().count();
}

json labels_json(const labels& l) {
  json j = json::object();
  for (auto& [k, v] : l)
    j[k] = v;
  return j;
}

json bundle_json(const bundle& b) {
  json j = {{"gpus", b.gpus},
            {"gpu_milli", b.gpu_milli},
            {"cpu_milli", b.cpu_milli},
            {"memory_mib", b.memory_mib}};
  if (!b.mig_profile.empty()) j["mig_profile"] = b.mig_profile;
  if (!b.gpu_models.empty()) j["gpu_models"] = b.gpu_models;
  if (!b.node_selector.empty()) j["node_selector"] = labels_json(b.node_selector);
  return j;
}

json request_json(const gang_request& r) {
  json bundles = json::array();
  for (auto& b : r.bundles)
    bundles.push_back(bundle_json(b));
  return {{"id", r.id.value()},
          {"tenant", r.tenant},
          {"cost_labels", labels_json(r.cost_labels)},
          {"bundles", std::move(bundles)},
          {"min_bundles", r.min_bundles},
          {"strategy", to_string(r.placement_strategy)},
          {"require_nvlink_domain", r.require_nvlink_domain},
          {"priority", r.priority},
          {"preemptible", r.preemptible},
          {"spot_tolerant", r.spot_tolerant},
          {"cheapest_first", r.cheapest_first},
          {"runtime_estimate_ns", r.runtime_estimate.count()},
          {"submitted_ns", ns_of(r.submitted)},
          {"last_checkpoint_ns", ns_of(r.last_checkpoint)},
          {"borrowed", r.borrowed}};
}

// -- decoding helpers: each names the field on error ---------------------------------

const json& field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object()) throw decode_error{where + ": expected an object"};
  auto it = j.find(key);
  if (it == j.end()) throw decode_error{where + "." + key + ": missing"};
  return *it;
}

template <class T>
T get_uint(const json& j, const char* key, const std::string& where, T max) {
  const auto& v = field(j, key, where);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    throw decode_error{where + "." + key + ": expected a non-negative integer"};
  auto x = v.get<uint64_t>();
  if (x > static_cast<uint64_t>(max))
    throw decode_error{where + "." + key + ": " + std::to_string(x) + " is out of range"};
  return static_cast<T>(x);
}

int64_t get_int(const json& j, const char* key, const std::string& where) {
  const auto& v = field(j, key, where);
  if (!v.is_number_integer())
    throw decode_error{where + "." + key + ": expected an integer"};
  return v.get<int64_t>();
}

bool get_bool(const json& j, const char* key, const std::string& where) {
  const auto& v = field(j, key, where);
  if (!v.is_boolean()) throw decode_error{where + "." + key + ": expected true or false"};
  return v.get<bool>();
}

std::string get_string(const json& j, const char* key, const std::string& where) {
  const auto& v = field(j, key, where);
  if (!v.is_string()) throw decode_error{where + "." + key + ": expected a string"};
  return v.get<std::string>();
}

labels get_labels(const json& j, const char* key, const std::string& where,
                  bool optional) {
  labels out;
  if (optional && (!j.is_object() || !j.contains(key))) return out;
  const auto& v = field(j, key, where);
  if (!v.is_object())
    throw decode_error{where + "." + key + ": expected an object of strings"};
  for (auto& [k, val] : v.items()) {
    if (!val.is_string())
      throw decode_error{where + "." + key + "." + k + ": expected a string"};
    out.emplace(k, val.get<std::string>());
  }
  return out;
}

bundle bundle_from(const json& j, const std::string& where) {
  bundle b;
  b.gpus = get_uint<uint32_t>(j, "gpus", where, 1024);
  b.gpu_milli = get_uint<uint32_t>(j, "gpu_milli", where, 999);
  b.cpu_milli = get_uint<uint64_t>(j, "cpu_milli", where, uint64_t{1} << 40);
  b.memory_mib = get_uint<uint64_t>(j, "memory_mib", where, uint64_t{1} << 40);
  if (j.contains("mig_profile")) b.mig_profile = get_string(j, "mig_profile", where);
  if (j.contains("gpu_models")) {
    const auto& m = j["gpu_models"];
    if (!m.is_array())
      throw decode_error{where + ".gpu_models: expected an array of strings"};
    for (auto& x : m) {
      if (!x.is_string())
        throw decode_error{where + ".gpu_models: expected an array of strings"};
      b.gpu_models.push_back(x.get<std::string>());
    }
  }
  b.node_selector = get_labels(j, "node_selector", where, true);
  return b;
}

gang_request request_from(const json& j, const std::string& where) {
  gang_request r;
  r.id = request_id{get_uint<uint64_t>(j, "id", where, UINT64_MAX)};
  r.tenant = get_string(j, "tenant", where);
  r.cost_labels = get_labels(j, "cost_labels", where, true);
  const auto& bundles = field(j, "bundles", where);
  if (!bundles.is_array()) throw decode_error{where + ".bundles: expected an array"};
  if (bundles.size() > 100000) throw decode_error{where + ".bundles: too many bundles"};
  for (size_t i = 0; i < bundles.size(); ++i)
    r.bundles.push_back(
        bundle_from(bundles[i], where + ".bundles[" + std::to_string(i) + "]"));
  r.min_bundles = get_uint<uint32_t>(j, "min_bundles", where, UINT32_MAX);
  auto s = get_string(j, "strategy", where);
  auto st = parse_strategy(s);
  if (!st)
    throw decode_error{where +
                       ".strategy: expected one of pack|spread|strict_pack|strict_spread|"
                       "topology, got \"" +
                       s + "\""};
  r.placement_strategy = *st;
  r.require_nvlink_domain = get_bool(j, "require_nvlink_domain", where);
  auto prio = get_int(j, "priority", where);
  if (prio < INT32_MIN || prio > INT32_MAX)
    throw decode_error{where + ".priority: out of range"};
  r.priority = static_cast<int32_t>(prio);
  r.preemptible = get_bool(j, "preemptible", where);
  r.spot_tolerant = get_bool(j, "spot_tolerant", where);
  r.cheapest_first =
      j.contains("cheapest_first") ? get_bool(j, "cheapest_first", where) : false;
  r.runtime_estimate = duration{get_int(j, "runtime_estimate_ns", where)};
  r.submitted = time_point{duration{get_int(j, "submitted_ns", where)}};
  r.last_checkpoint = time_point{duration{get_int(j, "last_checkpoint_ns", where)}};
  r.borrowed = j.contains("borrowed") ? get_bool(j, "borrowed", where) : false;
  return r;
}

template <class F> auto guarded(std::string_view text, F f) -> decltype(f(json{})) {
  try {
    auto j = json::parse(text);
    return f(j);
  } catch (const json::exception& e) {
    return error{errc::invalid_argument, std::string{"malformed JSON: "} + e.what()};
  } catch (const decode_error& e) {
    return error{errc::invalid_argument, e.what};
  }
}

} // namespace

std::string encode(const gang_request& r) {
  return request_json(r).dump();
}

std::string encode(const allocation& a) {
  json bundles = json::array();
  for (auto& b : a.plan.bundles) {
    json x = {{"bundle", b.bundle},       {"node", b.node.value()},
              {"gpus", b.gpus},           {"gpu_milli", b.gpu_milli},
              {"cpu_milli", b.cpu_milli}, {"memory_mib", b.memory_mib}};
    if (b.shared_gpu) x["shared_gpu"] = *b.shared_gpu;
    if (!b.mig_profile.empty()) {
      x["mig_profile"] = b.mig_profile;
      x["mig_start"] = b.mig_start;
    }
    bundles.push_back(std::move(x));
  }
  json j = {{"id", a.id.value()},
            {"request", request_json(a.request)},
            {"plan", {{"bundles", std::move(bundles)}, {"score", a.plan.score}}},
            {"start_ns", ns_of(a.start)}};
  return j.dump();
}

std::string encode(const node_spec& n) {
  json gpus = json::array();
  for (auto& g : n.gpus)
    gpus.push_back({{"model", g.model},
                    {"memory_mib", g.memory_mib},
                    {"nvlink_domain", g.nvlink_domain},
                    {"pcie_switch", g.pcie_switch},
                    {"numa_node", g.numa_node},
                    {"nic_rail", g.nic_rail},
                    {"sharing", to_string(g.sharing)},
                    {"time_slice_replicas", g.time_slice_replicas}});
  json j = {{"name", n.name},
            {"gpus", std::move(gpus)},
            {"cpu_milli", n.cpu_milli},
            {"memory_mib", n.memory_mib},
            {"labels", labels_json(n.node_labels)},
            {"capacity", to_string(n.capacity)},
            {"price_per_gpu_hour_micro_usd", n.price_per_gpu_hour.value()},
            {"nic_gbps", n.nic_gbps}};
  return j.dump();
}

result<node_spec> decode_node_spec(std::string_view text) {
  return guarded(text, [](const json& j) -> result<node_spec> {
    node_spec n;
    const std::string w = "node";
    n.name = get_string(j, "name", w);
    if (n.name.empty() || n.name.size() > 253)
      throw decode_error{"node.name: expected 1..253 bytes"};
    const auto& gpus = field(j, "gpus", w);
    if (!gpus.is_array() || gpus.size() > max_gpus_per_node)
      throw decode_error{"node.gpus: expected an array of at most " +
                         std::to_string(max_gpus_per_node) + " GPUs"};
    for (size_t i = 0; i < gpus.size(); ++i) {
      std::string g = "node.gpus[" + std::to_string(i) + "]";
      gpu_spec s;
      s.model = get_string(gpus[i], "model", g);
      s.memory_mib = get_uint<uint64_t>(gpus[i], "memory_mib", g, uint64_t{1} << 40);
      s.nvlink_domain = get_uint<uint32_t>(gpus[i], "nvlink_domain", g, UINT32_MAX);
      s.pcie_switch = get_uint<uint32_t>(gpus[i], "pcie_switch", g, UINT32_MAX);
      s.numa_node = get_uint<uint32_t>(gpus[i], "numa_node", g, UINT32_MAX);
      s.nic_rail = get_uint<uint32_t>(gpus[i], "nic_rail", g, UINT32_MAX);
      auto sharing = get_string(gpus[i], "sharing", g);
      bool known = false;
      for (auto k : {gpu_sharing::whole, gpu_sharing::time_sliced, gpu_sharing::mig})
        if (sharing == to_string(k)) {
          s.sharing = k;
          known = true;
        }
      if (!known) throw decode_error{g + ".sharing: unknown mode \"" + sharing + "\""};
      s.time_slice_replicas = get_uint<uint32_t>(gpus[i], "time_slice_replicas", g, 1024);
      n.gpus.push_back(std::move(s));
    }
    n.cpu_milli = get_uint<uint64_t>(j, "cpu_milli", w, uint64_t{1} << 40);
    n.memory_mib = get_uint<uint64_t>(j, "memory_mib", w, uint64_t{1} << 40);
    n.node_labels = get_labels(j, "labels", w, true);
    if (n.node_labels.size() > 256) throw decode_error{"node.labels: more than 256"};
    auto cap = get_string(j, "capacity", w);
    bool known = false;
    for (auto k :
         {capacity_type::on_demand, capacity_type::reserved, capacity_type::spot})
      if (cap == to_string(k)) {
        n.capacity = k;
        known = true;
      }
    if (!known)
      throw decode_error{"node.capacity: unknown capacity type \"" + cap + "\""};
    n.price_per_gpu_hour = micro_usd{get_int(j, "price_per_gpu_hour_micro_usd", w)};
    const auto& nic = field(j, "nic_gbps", w);
    if (!nic.is_number() || nic.get<double>() < 0 || nic.get<double>() > 1e6)
      throw decode_error{"node.nic_gbps: expected a number in [0, 1e6]"};
    n.nic_gbps = nic.get<double>();
    return n;
  });
}

result<gang_request> decode_request(std::string_view text) {
  return guarded(text, [](const json& j) -> result<gang_request> {
    auto r = request_from(j, "request");
    if (auto v = r.validate(); !v.ok()) return std::move(v).err();
    return r;
  });
}

result<allocation> decode_allocation(std::string_view text) {
  return guarded(text, [](const json& j) -> result<allocation> {
    allocation a;
    a.id = allocation_id{get_uint<uint64_t>(j, "id", "allocation", UINT64_MAX)};
    a.request = request_from(field(j, "request", "allocation"), "allocation.request");
    const auto& plan = field(j, "plan", "allocation");
    const auto& bundles = field(plan, "bundles", "allocation.plan");
    if (!bundles.is_array())
      throw decode_error{"allocation.plan.bundles: expected an array"};
    for (size_t i = 0; i < bundles.size(); ++i) {
      std::string w = "allocation.plan.bundles[" + std::to_string(i) + "]";
      const auto& x = bundles[i];
      bundle_placement b;
      b.bundle = get_uint<uint32_t>(x, "bundle", w, UINT32_MAX);
      b.node = node_id{get_uint<uint32_t>(x, "node", w, UINT32_MAX)};
      const auto& gpus = field(x, "gpus", w);
      if (!gpus.is_array()) throw decode_error{w + ".gpus: expected an array"};
      for (auto& g : gpus) {
        if (!g.is_number_unsigned() || g.get<uint64_t>() >= max_gpus_per_node)
          throw decode_error{w + ".gpus: expected GPU indices below " +
                             std::to_string(max_gpus_per_node)};
        b.gpus.push_back(g.get<uint32_t>());
      }
      b.gpu_milli = get_uint<uint32_t>(x, "gpu_milli", w, 999);
      b.cpu_milli = get_uint<uint64_t>(x, "cpu_milli", w, uint64_t{1} << 40);
      b.memory_mib = get_uint<uint64_t>(x, "memory_mib", w, uint64_t{1} << 40);
      if (x.contains("shared_gpu"))
        b.shared_gpu = get_uint<uint32_t>(x, "shared_gpu", w, max_gpus_per_node - 1);
      if (x.contains("mig_profile")) {
        b.mig_profile = get_string(x, "mig_profile", w);
        b.mig_start = get_uint<uint32_t>(x, "mig_start", w, 7);
      }
      a.plan.bundles.push_back(std::move(b));
    }
    if (plan.contains("score") && plan["score"].is_number())
      a.plan.score = plan["score"].get<double>();
    a.start = time_point{duration{get_int(j, "start_ns", "allocation")}};
    return a;
  });
}

} // namespace troupe::placement
