#pragma once
/// The node agent's resource inventory: what one machine offers the
/// cluster. CPU cores, NUMA nodes and memory come from hwloc (sysconf when
/// hwloc cannot load a topology); GPUs come from NVML when it is present,
/// else from GPUs declared in the `[resources]` config section, else from
/// simulated GPUs of that section, so a CPU-only machine can host a
/// simulated 8-GPU node. The inventory travels to the head as JSON
/// (`encode_inventory` / `decode_inventory`) and becomes the placement
/// module's `node_spec` there (`to_node_spec`).
///
/// Everything here is plain code over plain data except
/// `discover_inventory` and `host_topology`, which read the machine.

#include "troupe/actors/nvml.hpp"
#include "troupe/placement/topology.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/result.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::actors {

// -- inventory ----------------------------------------------------------------

/// Where the GPUs of an inventory come from.
enum class gpu_source : uint8_t {
  none,      ///< no GPUs
  nvml,      ///< discovered through NVML
  declared,  ///< real GPUs NVML cannot see, declared in config
  simulated, ///< simulated GPUs (CPU-only machines, tests)
};

/// "none", "nvml", "declared", "simulated".
[[nodiscard]] std::string_view to_string(gpu_source s) noexcept;

/// One GPU of a node.
struct gpu_info {
  uint32_t index = 0; ///< NVML index; position in node_inventory::gpus
  std::string uuid;   ///< NVML UUID, or "GPU-sim-<node>-<index>" / "GPU-declared-..."
  std::string name;   ///< as the driver names it; the model for declared/simulated GPUs
  std::string model;  ///< troupe's model name, e.g. "H100-80GB" (see gpu_model_name)
  uint64_t memory_mib = 0;
  std::string pci_bus_id;            ///< "dddd:bb:dd.f"; empty when unknown
  std::optional<uint32_t> numa_node; ///< OS index of the nearest NUMA node, when known
  /// Distinct PCI addresses at the far end of the active NVLinks (other
  /// GPUs or NVSwitches), sorted.
  std::vector<std::string> nvlink_peers;
  uint32_t nvlink_links = 0; ///< active NVLink links
  /// GPUs of this node with the same value share an NVLink island (directly
  /// or through NVSwitches); a GPU without NVLink is alone in its own.
  /// Numbered 0.. in order of each island's lowest GPU index.
  uint32_t nvlink_domain = 0;
  mig_mode mig = mig_mode::unsupported;
  bool simulated = false;
  bool operator==(const gpu_info&) const = default;
};

/// One NUMA node of the host.
struct numa_node_info {
  uint32_t os_index = 0;
  uint64_t memory_bytes = 0;
  uint32_t logical_cpus = 0; ///< PUs local to this node
  bool operator==(const numa_node_info&) const = default;
};

/// CPUs, NUMA nodes and memory of the host.
struct host_layout {
  uint32_t physical_cores = 0;
  /// Online logical CPUs (hardware threads) of the machine, whether or not
  /// this process may run on them: what sysconf(_SC_NPROCESSORS_ONLN) says.
  uint32_t logical_cpus = 0;
  /// Logical CPUs this process may run on (its cpuset or affinity mask);
  /// at most logical_cpus.
  uint32_t allowed_cpus = 0;
  /// The machine's memory: the kernel's total, or the NUMA nodes' sum when
  /// larger (their sum may be less in VMs with hot-added memory).
  uint64_t memory_bytes = 0;
  std::vector<numa_node_info> numa_nodes; ///< by OS index; at least one
  std::string source;                     ///< "hwloc" or "sysconf"
  bool operator==(const host_layout&) const = default;
};

/// What one machine offers. Plain data.
struct node_inventory {
  std::string node_name; ///< the troupe node name ([node] name)
  std::string hostname;
  host_layout host;
  gpu_source source = gpu_source::none;
  std::string driver_version; ///< NVML only
  std::vector<gpu_info> gpus;
  /// What discovery wants the operator to know (NVML missing, hwloc failed),
  /// one sentence each.
  std::vector<std::string> notes;
  /// The node's pool, as [resources] declares it: capacity type and the
  /// price of one of its GPUs for an hour (showback, spot placement).
  placement::capacity_type capacity = placement::capacity_type::on_demand;
  micro_usd price_per_gpu_hour{0};
  bool operator==(const node_inventory&) const = default;
};

// -- [resources] config -------------------------------------------------------

/// How the node agent finds its GPUs.
enum class gpu_discovery : uint8_t {
  automatic, ///< NVML if it loads and sees GPUs, else declared, else simulated, else none
  nvml,      ///< NVML or fail
  declared,  ///< `declared_gpus` real GPUs described by config
  simulated, ///< `simulated_gpus` simulated GPUs
  none,      ///< no GPUs
};

/// [resources]: the node agent's resource discovery.
struct resources_section {
  gpu_discovery discovery = gpu_discovery::automatic;
  std::string nvml_library; ///< empty: TROUPE_NVML_LIBRARY, else libnvidia-ml.so.1
  uint32_t declared_gpus = 0;
  uint32_t simulated_gpus = 0;
  std::string gpu_model = "H100-80GB"; ///< model of declared or simulated GPUs
  uint64_t gpu_memory_mib = 81920;
  /// GPUs per NVLink island of declared or simulated GPUs (consecutive
  /// indices); 0 or 1: no NVLink.
  uint32_t nvlink_domain_size = 8;
  bool gpu_mig = false; ///< declared or simulated GPUs are in MIG mode
  /// The node's pool: capacity type and price per GPU-hour in USD
  /// (`price_per_gpu_hour_usd = "2.50"`, as in the cluster topology file;
  /// empty: 0, nothing charged).
  placement::capacity_type capacity = placement::capacity_type::on_demand;
  std::string price_per_gpu_hour;
  bool operator==(const resources_section&) const = default;
};

/// The config struct the `[resources]` schema binds.
struct resources_settings {
  resources_section resources;
  bool operator==(const resources_settings&) const = default;
};

/// Most declared or simulated GPUs (placement's per-node limit).
inline constexpr uint32_t max_configured_gpus = 256;

/// The schema of `[resources]`, with its limits and whole-section checks
/// (a discovery mode that needs GPUs has some; declared and simulated GPUs
/// are not both set; MIG only on a model placement knows MIG profiles of).
/// Built on each call; bind it next to other modules' schemas with a
/// `config_binder`.
[[nodiscard]] config_schema<resources_settings> resources_schema();

// -- discovery ----------------------------------------------------------------

/// The host's hwloc topology, loaded once with PCI devices. Move-only; it
/// owns the hwloc topology and frees it in its destructor. Const members
/// may be called from several threads (hwloc allows concurrent reads of a
/// loaded topology).
class host_topology {
public:
  /// Loads this machine's topology; errc::unavailable when hwloc fails.
  [[nodiscard]] static result<host_topology> load();

  host_topology(host_topology&&) noexcept;
  host_topology& operator=(host_topology&&) noexcept;
  host_topology(const host_topology&) = delete;
  host_topology& operator=(const host_topology&) = delete;
  ~host_topology();

  /// Cores, CPUs, NUMA nodes and memory (source "hwloc").
  [[nodiscard]] const host_layout& layout() const noexcept;

  /// OS index of the NUMA node nearest the PCI device at `pci_bus_id`, when
  /// hwloc knows the device and it hangs off exactly one NUMA node.
  [[nodiscard]] std::optional<uint32_t> numa_node_of(std::string_view pci_bus_id) const;

private:
  struct impl; ///< the hwloc topology (inventory_hwloc.cpp)
  explicit host_topology(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

/// The host from sysconf alone: logical CPUs (counted as cores too), total
/// memory, one NUMA node holding everything. The fallback when hwloc fails.
[[nodiscard]] host_layout sysconf_host_layout();

/// This machine's host name; "localhost" when it has none.
[[nodiscard]] std::string local_hostname();

/// troupe's model name for a GPU NVML calls `nvml_name` with `memory_mib`
/// of memory: the product (e.g. "H100", "A100", "RTX-4090") without vendor
/// words, then "-<N>GB" with N the marketed size nearest above the memory
/// in GiB (79.6 GiB -> 80, 140.4 GiB -> 141). "NVIDIA H100 80GB HBM3" with
/// 81559 MiB -> "H100-80GB", "NVIDIA H200" with 143771 MiB -> "H200-141GB".
[[nodiscard]] std::string gpu_model_name(std::string_view nvml_name, uint64_t memory_mib);

/// GPUs of an inventory from NVML's descriptions; `numa_of` maps a PCI
/// address to its NUMA node (may be empty). NVLink domains are assigned.
[[nodiscard]] std::vector<gpu_info>
gpus_from_nvml(const std::vector<nvml_device_info>& devices,
               const std::function<std::optional<uint32_t>(std::string_view)>& numa_of);

/// `count` declared or simulated GPUs as `cfg` describes them (model,
/// memory, NVLink islands of `nvlink_domain_size`, MIG). Simulated GPUs get
/// synthetic PCI addresses (domain fffe) and are spread evenly over the
/// host's NUMA nodes, as on a DGX; declared ones have neither. `count` is
/// at most max_configured_gpus (the schema's limit); more is a bug.
[[nodiscard]] std::vector<gpu_info> configured_gpus(const resources_section& cfg,
                                                    gpu_source source, uint32_t count,
                                                    std::string_view node_name,
                                                    const host_layout& host);

/// Sets every GPU's nvlink_domain from the NVLink graph: GPUs joined by
/// links, directly or through a shared remote device (an NVSwitch), share
/// a domain.
void assign_nvlink_domains(std::vector<gpu_info>& gpus);

/// The inventory of this machine: hostname, hwloc (else sysconf) host
/// layout, and GPUs as `cfg.discovery` says. The NVML library is
/// `cfg.nvml_library`, else `TROUPE_NVML_LIBRARY` from `env`, else the
/// driver's soname. Fails with errc::unavailable when discovery is `nvml`
/// and NVML does not load, or when NVML loads, sees GPUs and then fails to
/// describe one (a broken GPU is not replaced by simulated ones).
[[nodiscard]] result<node_inventory> discover_inventory(const resources_section& cfg,
                                                        std::string_view node_name,
                                                        const env_map& env);

// -- JSON ---------------------------------------------------------------------

/// Largest JSON text decode_inventory accepts.
inline constexpr size_t max_inventory_json_bytes = 1u << 20;

/// The inventory as one JSON object (the format decode_inventory reads).
[[nodiscard]] std::string encode_inventory(const node_inventory& inv);

/// Parses and checks an inventory from outside (a node's report). Fails
/// with errc::invalid_argument naming the first problem and where, e.g.
/// "inventory: gpus[2].memory_mib: expected an integer in [0, 16777216], got -1".
/// Bounded: the text, nesting, strings, lists and numbers all have limits.
/// Unknown keys are ignored (a newer node may report more).
[[nodiscard]] result<node_inventory> decode_inventory(std::string_view json_text);

// -- placement ----------------------------------------------------------------

/// The placement module's description of this node: name (node_name, else
/// hostname), CPU capacity (allowed CPUs * 1000 milli: those this agent and
/// the processes it starts may run on), memory, and per GPU
/// its model, memory, NVLink domain and NUMA node (0 when unknown); a GPU in
/// MIG mode is shared as MIG when placement knows the model's MIG profiles,
/// whole otherwise; its capacity type and price as [resources] declares
/// them. Rack, labels, PCIe switch and NIC rail are not known to the node
/// and are left at their defaults.
[[nodiscard]] placement::node_spec to_node_spec(const node_inventory& inv);

} // namespace troupe::actors
