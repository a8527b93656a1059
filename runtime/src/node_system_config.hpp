#pragma once
// Private: the CAF system config a node builds, carrying its services so
// troupe actors can find them (no globals).

#include <caf/actor_system_config.hpp>

namespace troupe {

class node_services;

class node_system_config final : public caf::actor_system_config {
public:
  node_services* services = nullptr;
};

/// The services of the node that owns `sys`, or null for a plain CAF system.
inline node_services* services_of(caf::actor_system& sys) {
  auto* cfg = dynamic_cast<const node_system_config*>(&sys.config());
  return cfg != nullptr ? cfg->services : nullptr;
}

} // namespace troupe
