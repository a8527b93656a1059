// host_topology: the one place hwloc is used.

#include "troupe/actors/errc.hpp"
#include "troupe/actors/inventory.hpp"

#include <algorithm>
#include <hwloc.h>
#include <unistd.h>
#include <utility>

namespace troupe::actors {

struct host_topology::impl {
  hwloc_topology_t topo = nullptr;
  host_layout layout;

  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  ~impl() {
    if (topo != nullptr) hwloc_topology_destroy(topo);
  }
};

namespace {

uint32_t count_of(hwloc_topology_t topo, hwloc_obj_type_t type) {
  int n = hwloc_get_nbobjs_by_type(topo, type);
  return n > 0 ? static_cast<uint32_t>(n) : 0;
}

uint32_t weight(hwloc_const_bitmap_t set) {
  if (set == nullptr) return 0;
  int w = hwloc_bitmap_weight(set);
  return w > 0 ? static_cast<uint32_t>(w) : 0;
}

} // namespace

result<host_topology> host_topology::load() {
  auto p = std::make_unique<impl>();
  if (hwloc_topology_init(&p->topo) != 0) {
    p->topo = nullptr;
    return error{errc::unavailable, "hwloc: hwloc_topology_init failed"};
  }
  // All online CPUs and NUMA nodes, also those outside this process's
  // cpuset, so logical_cpus is the machine's (sysconf's) count; the allowed
  // ones are counted separately. PCI bridges and GPUs are kept for the
  // GPU -> NUMA look-up.
  if (hwloc_topology_set_flags(p->topo, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED) != 0 ||
      hwloc_topology_set_io_types_filter(p->topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT) != 0)
    return error{errc::unavailable, "hwloc: cannot configure the topology"};
  if (hwloc_topology_load(p->topo) != 0)
    return error{errc::unavailable, "hwloc: hwloc_topology_load failed"};

  host_layout& h = p->layout;
  h.source = "hwloc";
  h.logical_cpus = count_of(p->topo, HWLOC_OBJ_PU);
  h.physical_cores = count_of(p->topo, HWLOC_OBJ_CORE);
  if (h.physical_cores == 0) h.physical_cores = h.logical_cpus; // no core level known
  h.allowed_cpus = weight(hwloc_topology_get_allowed_cpuset(p->topo));
  if (h.allowed_cpus == 0 || h.allowed_cpus > h.logical_cpus)
    h.allowed_cpus = h.logical_cpus;
  hwloc_obj_t root = hwloc_get_root_obj(p->topo);
  h.memory_bytes = root != nullptr ? root->total_memory : 0;
  uint32_t nodes = count_of(p->topo, HWLOC_OBJ_NUMANODE);
  for (uint32_t i = 0; i < nodes; ++i) {
    hwloc_obj_t n = hwloc_get_obj_by_type(p->topo, HWLOC_OBJ_NUMANODE, i);
    if (n == nullptr) continue;
    numa_node_info info;
    info.os_index = n->os_index;
    info.memory_bytes = n->attr != nullptr ? n->attr->numanode.local_memory : 0;
    info.logical_cpus = weight(n->cpuset);
    h.numa_nodes.push_back(info);
  }
  if (h.logical_cpus == 0)
    return error{errc::unavailable, "hwloc: the topology has no processing units"};
  if (h.numa_nodes.empty()) h.numa_nodes.push_back({0, h.memory_bytes, h.logical_cpus});
  // hwloc sums the NUMA nodes' meminfo; some VMs (memory hot-added by a
  // balloon or lazily initialised, as on Firecracker) list less there than
  // the kernel's MemTotal. The machine total is the larger of the two.
  uint64_t numa_sum = 0;
  for (const auto& n : h.numa_nodes)
    numa_sum += n.memory_bytes;
  h.memory_bytes =
      std::max({h.memory_bytes, numa_sum, sysconf_host_layout().memory_bytes});
  return host_topology{std::move(p)};
}

host_topology::host_topology(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
host_topology::host_topology(host_topology&&) noexcept = default;
host_topology& host_topology::operator=(host_topology&&) noexcept = default;
host_topology::~host_topology() = default;

const host_layout& host_topology::layout() const noexcept {
  return impl_->layout;
}

std::optional<uint32_t> host_topology::numa_node_of(std::string_view pci_bus_id) const {
  auto a = parse_pci_bus_id(pci_bus_id);
  if (!a) return std::nullopt;
  hwloc_obj_t dev =
      hwloc_get_pcidev_by_busid(impl_->topo, a->domain, a->bus, a->device, a->function);
  if (dev == nullptr) return std::nullopt;
  hwloc_obj_t anchor = hwloc_get_non_io_ancestor_obj(impl_->topo, dev);
  if (anchor == nullptr || anchor->nodeset == nullptr ||
      hwloc_bitmap_weight(anchor->nodeset) != 1)
    return std::nullopt; // attached to the whole machine: no single nearest node
  int first = hwloc_bitmap_first(anchor->nodeset);
  if (first < 0) return std::nullopt;
  return static_cast<uint32_t>(first);
}

host_layout sysconf_host_layout() {
  host_layout h;
  h.source = "sysconf";
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  h.logical_cpus = cpus > 0 ? static_cast<uint32_t>(cpus) : 1;
  h.physical_cores = h.logical_cpus;
  h.allowed_cpus = h.logical_cpus;
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0)
    h.memory_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  h.numa_nodes.push_back({0, h.memory_bytes, h.logical_cpus});
  return h;
}

} // namespace troupe::actors
