#include "troupe/actors/inventory.hpp"

#include "troupe/actors/errc.hpp"
#include "troupe/placement/mig.hpp"
#include "troupe/placement/topology_config.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <unistd.h>
#include <utility>

namespace troupe::actors {

std::string_view to_string(gpu_source s) noexcept {
  switch (s) {
  case gpu_source::none:
    return "none";
  case gpu_source::nvml:
    return "nvml";
  case gpu_source::declared:
    return "declared";
  case gpu_source::simulated:
    return "simulated";
  }
  return "none";
}

std::string local_hostname() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0 || buf[0] == '\0') return "localhost";
  return std::string{buf.data()};
}

// -- model names --------------------------------------------------------------

namespace {

/// Marketed memory sizes (GB on the box) of data-centre and workstation
/// GPUs; NVML reports a little less usable memory than the label.
constexpr std::array<uint32_t, 22> marketed_gb = {4,   6,   8,   10,  11,  12, 16, 20,
                                                  24,  32,  40,  48,  64,  80, 94, 96,
                                                  120, 141, 144, 180, 192, 288};

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> words;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

} // namespace

std::string gpu_model_name(std::string_view nvml_name, uint64_t memory_mib) {
  auto words = split_words(nvml_name);
  // Vendor and brand words carry no model information.
  std::erase_if(words, [](const std::string& w) {
    return w == "NVIDIA" || w == "Tesla" || w == "GeForce" || w == "Quadro";
  });
  std::string product;
  if (!words.empty()) {
    product = words[0];
    // "RTX 4090", "RTX A6000": the series word needs the number after it.
    if (product == "RTX" && words.size() > 1) product += "-" + words[1];
    // "A100-SXM4-80GB", "V100-SXM2-32GB": the form factor follows a dash.
    if (product.rfind("RTX-", 0) != 0) product = product.substr(0, product.find('-'));
  }
  if (product.empty()) product = "GPU";
  if (memory_mib == 0) return product;
  double gib = static_cast<double>(memory_mib) / 1024.0;
  uint64_t gb = static_cast<uint64_t>(std::ceil(gib));
  for (uint32_t m : marketed_gb) {
    if (static_cast<double>(m) >= gib - 0.5) {
      gb = m;
      break;
    }
  }
  return product + "-" + std::to_string(gb) + "GB";
}

// -- GPUs ---------------------------------------------------------------------

std::vector<gpu_info>
gpus_from_nvml(const std::vector<nvml_device_info>& devices,
               const std::function<std::optional<uint32_t>(std::string_view)>& numa_of) {
  std::vector<gpu_info> gpus;
  gpus.reserve(devices.size());
  for (const auto& d : devices) {
    gpu_info g;
    g.index = d.index;
    g.uuid = d.uuid;
    g.name = d.name;
    g.memory_mib = d.memory_total_bytes >> 20;
    g.model = gpu_model_name(d.name, g.memory_mib);
    g.pci_bus_id = d.pci_bus_id;
    if (numa_of && !g.pci_bus_id.empty()) g.numa_node = numa_of(g.pci_bus_id);
    g.nvlink_links = static_cast<uint32_t>(d.nvlink_remote_bus_ids.size());
    g.nvlink_peers = d.nvlink_remote_bus_ids;
    std::sort(g.nvlink_peers.begin(), g.nvlink_peers.end());
    g.nvlink_peers.erase(std::unique(g.nvlink_peers.begin(), g.nvlink_peers.end()),
                         g.nvlink_peers.end());
    g.mig = d.mig;
    gpus.push_back(std::move(g));
  }
  assign_nvlink_domains(gpus);
  return gpus;
}

std::vector<gpu_info> configured_gpus(const resources_section& cfg, gpu_source source,
                                      uint32_t count, std::string_view node_name,
                                      const host_layout& host) {
  TROUPE_ASSERT(count <= max_configured_gpus,
                "more configured GPUs than a node may have");
  const bool simulated = source == gpu_source::simulated;
  const uint32_t island = std::max<uint32_t>(cfg.nvlink_domain_size, 1);
  const mig_mode mig = cfg.gpu_mig ? mig_mode::enabled
                       : placement::mig_profiles_for(cfg.gpu_model) != nullptr
                           ? mig_mode::disabled
                           : mig_mode::unsupported;
  auto sim_bus_id = [](uint32_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "fffe:%02x:00.0", i & 0xffu);
    return std::string{buf};
  };
  std::vector<gpu_info> gpus;
  gpus.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    gpu_info g;
    g.index = i;
    g.uuid = std::string{simulated ? "GPU-sim-" : "GPU-declared-"} +
             std::string{node_name} + "-" + std::to_string(i);
    g.name = cfg.gpu_model;
    g.model = cfg.gpu_model;
    g.memory_mib = cfg.gpu_memory_mib;
    g.mig = mig;
    g.simulated = simulated;
    g.nvlink_domain = i / island;
    if (simulated) {
      g.pci_bus_id = sim_bus_id(i);
      if (!host.numa_nodes.empty()) {
        size_t n = host.numa_nodes.size();
        g.numa_node = host.numa_nodes[static_cast<size_t>(i) * n / count].os_index;
      }
      if (island > 1) {
        uint32_t first = g.nvlink_domain * island;
        for (uint32_t j = first; j < std::min(first + island, count); ++j)
          if (j != i) g.nvlink_peers.push_back(sim_bus_id(j));
        g.nvlink_links = static_cast<uint32_t>(g.nvlink_peers.size());
      }
    }
    gpus.push_back(std::move(g));
  }
  // Declared GPUs have no addresses to link: their islands are the
  // configured ones. Simulated GPUs derive theirs from the links, as NVML
  // GPUs do, which gives the same islands.
  if (simulated) assign_nvlink_domains(gpus);
  return gpus;
}

void assign_nvlink_domains(std::vector<gpu_info>& gpus) {
  // Union-find over GPUs and remote devices, keyed by PCI address.
  std::map<std::string, size_t> ids;
  std::vector<size_t> parent;
  auto id_of = [&](const std::string& key) {
    auto [it, fresh] = ids.emplace(key, parent.size());
    if (fresh) parent.push_back(parent.size());
    return it->second;
  };
  auto find = [&](size_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  };
  std::vector<size_t> gpu_ids;
  for (size_t i = 0; i < gpus.size(); ++i) {
    const auto& g = gpus[i];
    // A GPU without an address is keyed by its index so it never merges
    // with another by accident.
    gpu_ids.push_back(
        id_of(g.pci_bus_id.empty() ? "#gpu" + std::to_string(i) : g.pci_bus_id));
  }
  for (size_t i = 0; i < gpus.size(); ++i)
    for (const auto& peer : gpus[i].nvlink_peers) {
      size_t a = find(gpu_ids[i]);
      size_t b = find(id_of(peer));
      if (a != b) parent[std::max(a, b)] = std::min(a, b);
    }
  std::map<size_t, uint32_t> domain_of_root;
  for (size_t i = 0; i < gpus.size(); ++i) {
    auto [it, fresh] = domain_of_root.emplace(
        find(gpu_ids[i]), static_cast<uint32_t>(domain_of_root.size()));
    gpus[i].nvlink_domain = it->second;
  }
}

// -- discovery ----------------------------------------------------------------

result<node_inventory> discover_inventory(const resources_section& cfg,
                                          std::string_view node_name,
                                          const env_map& env) {
  node_inventory inv;
  inv.node_name = std::string{node_name};
  inv.hostname = local_hostname();
  inv.capacity = cfg.capacity;
  if (!cfg.price_per_gpu_hour.empty()) {
    auto price = placement::parse_price(cfg.price_per_gpu_hour);
    if (!price)
      return error{errc::invalid_argument,
                   "resources.price_per_gpu_hour_usd: " + price.err().message()};
    inv.price_per_gpu_hour = *price;
  }
  std::optional<host_topology> topo;
  if (auto t = host_topology::load(); t) {
    topo.emplace(std::move(*t));
    inv.host = topo->layout();
  } else {
    inv.host = sysconf_host_layout();
    inv.notes.push_back(t.err().message() + "; CPUs and memory from sysconf");
  }

  // NVML GPUs: false when NVML sees none; an error when a GPU it sees cannot
  // be described (a broken GPU is reported, never replaced by simulated ones).
  auto read_nvml = [&](const nvml_library& lib) -> result<bool> {
    auto devices = lib.devices();
    if (!devices) return std::move(devices).err();
    if (devices->size() > placement::max_gpus_per_node)
      return error{errc::unavailable, "NVML (" + lib.path() + ") reports " +
                                          std::to_string(devices->size()) +
                                          " GPUs, more than a node may have (" +
                                          std::to_string(placement::max_gpus_per_node) +
                                          ")"};
    if (devices->empty() && cfg.discovery == gpu_discovery::automatic) {
      inv.notes.push_back("NVML (" + lib.path() + ") sees no GPUs");
      return false;
    }
    if (auto v = lib.driver_version(); v) inv.driver_version = *v;
    inv.gpus = gpus_from_nvml(*devices, [&](std::string_view bus) {
      return topo ? topo->numa_node_of(bus) : std::nullopt;
    });
    inv.source = gpu_source::nvml;
    return true;
  };
  auto open_nvml = [&] {
    return cfg.nvml_library.empty() ? nvml_library::open_default(env)
                                    : nvml_library::open(cfg.nvml_library);
  };

  auto use_configured = [&](gpu_source source, uint32_t count) {
    inv.gpus = configured_gpus(cfg, source, count,
                               inv.node_name.empty() ? std::string_view{inv.hostname}
                                                     : std::string_view{inv.node_name},
                               inv.host);
    inv.source = count == 0 ? gpu_source::none : source;
  };

  switch (cfg.discovery) {
  case gpu_discovery::nvml: {
    auto lib = open_nvml();
    if (!lib) return std::move(lib).err();
    if (auto found = read_nvml(*lib); !found) return std::move(found).err();
    break;
  }
  case gpu_discovery::automatic: {
    if (auto lib = open_nvml(); lib) {
      auto found = read_nvml(*lib);
      if (!found) return std::move(found).err();
      if (*found) break;
    } else {
      inv.notes.push_back(lib.err().message());
    }
    if (cfg.declared_gpus > 0)
      use_configured(gpu_source::declared, cfg.declared_gpus);
    else if (cfg.simulated_gpus > 0)
      use_configured(gpu_source::simulated, cfg.simulated_gpus);
    break;
  }
  case gpu_discovery::declared:
    use_configured(gpu_source::declared, cfg.declared_gpus);
    break;
  case gpu_discovery::simulated:
    use_configured(gpu_source::simulated, cfg.simulated_gpus);
    break;
  case gpu_discovery::none:
    break;
  }
  return inv;
}

// -- placement ----------------------------------------------------------------

placement::node_spec to_node_spec(const node_inventory& inv) {
  placement::node_spec n;
  n.name = inv.node_name.empty() ? inv.hostname : inv.node_name;
  // The CPUs this agent (and so the processes it starts) may run on.
  uint32_t cpus =
      inv.host.allowed_cpus != 0 ? inv.host.allowed_cpus : inv.host.logical_cpus;
  n.cpu_milli = uint64_t{cpus} * 1000;
  n.memory_mib = inv.host.memory_bytes >> 20;
  n.gpus.reserve(inv.gpus.size());
  for (const auto& g : inv.gpus) {
    placement::gpu_spec s;
    s.model = g.model;
    s.memory_mib = g.memory_mib;
    s.nvlink_domain = g.nvlink_domain;
    s.numa_node = g.numa_node.value_or(0);
    s.sharing =
        g.mig == mig_mode::enabled && placement::mig_profiles_for(g.model) != nullptr
            ? placement::gpu_sharing::mig
            : placement::gpu_sharing::whole;
    n.gpus.push_back(std::move(s));
  }
  n.capacity = inv.capacity;
  n.price_per_gpu_hour = inv.price_per_gpu_hour;
  return n;
}

} // namespace troupe::actors
