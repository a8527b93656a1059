#include "troupe/actors/name_registry.hpp"

namespace troupe::actors {

std::string_view to_string(removal_reason r) noexcept {
  switch (r) {
  case removal_reason::unregistered:
    return "unregistered";
  case removal_reason::actor_exited:
    return "actor_exited";
  case removal_reason::node_down:
    return "node_down";
  case removal_reason::node_left:
    return "node_left";
  }
  return "unknown";
}

namespace {

constexpr std::size_t max_name_bytes = 256;

result<void> check_name(std::string_view name) {
  if (name.empty()) return error{errc::invalid_argument, "registry: empty name"};
  if (name.size() > max_name_bytes)
    return error{errc::invalid_argument, "registry: name of " +
                                             std::to_string(name.size()) +
                                             " bytes (limit 256)"};
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f)
      return error{errc::invalid_argument, "registry: control character in a name"};
  return ok();
}

} // namespace

result<void> name_registry::add(const registry_entry& e) {
  if (auto r = check_name(e.name); !r) return r;
  if (e.node == 0 || e.actor == 0)
    return error{errc::invalid_argument,
                 "registry: \"" + e.name + "\" without node or actor"};
  auto it = by_name_.find(e.name);
  if (it != by_name_.end()) {
    if (it->second.node == e.node && it->second.actor == e.actor &&
        it->second.incarnation == e.incarnation)
      return ok(); // the same registration again
    return error{errc::conflict, "registry: \"" + e.name + "\" is taken by actor " +
                                     std::to_string(it->second.actor) + " on node " +
                                     std::to_string(it->second.node)};
  }
  by_name_.emplace(e.name, e);
  return ok();
}

registry_removal
name_registry::take(std::map<std::string, registry_entry, std::less<>>::iterator it,
                    removal_reason why) {
  registry_removal out{it->second, why, {}};
  if (auto w = watchers_.find(it->first); w != watchers_.end()) {
    out.watchers.assign(w->second.begin(), w->second.end());
    watchers_.erase(w);
  }
  by_name_.erase(it);
  return out;
}

result<registry_removal> name_registry::remove(std::string_view name, std::uint64_t node,
                                               std::uint64_t actor) {
  auto it = by_name_.find(name);
  if (it == by_name_.end() || it->second.node != node || it->second.actor != actor)
    return error{errc::not_found, "registry: \"" + std::string{name} +
                                      "\" is not registered by that actor"};
  return take(it, removal_reason::unregistered);
}

std::vector<registry_removal> name_registry::actor_exited(std::uint64_t node,
                                                          std::uint64_t actor) {
  std::vector<registry_removal> out;
  for (auto it = by_name_.begin(); it != by_name_.end();) {
    auto next = std::next(it);
    if (it->second.node == node && it->second.actor == actor)
      out.push_back(take(it, removal_reason::actor_exited));
    it = next;
  }
  return out;
}

std::vector<registry_removal> name_registry::node_gone(std::uint64_t node,
                                                       std::uint64_t incarnation,
                                                       removal_reason why) {
  std::vector<registry_removal> out;
  for (auto it = by_name_.begin(); it != by_name_.end();) {
    auto next = std::next(it);
    if (it->second.node == node && it->second.incarnation <= incarnation)
      out.push_back(take(it, why));
    it = next;
  }
  return out;
}

const registry_entry* name_registry::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

void name_registry::watch(std::string_view name, std::uint64_t watcher) {
  auto it = watchers_.find(name);
  if (it == watchers_.end())
    it = watchers_.emplace(std::string{name}, std::set<std::uint64_t>{}).first;
  it->second.insert(watcher);
}

void name_registry::forget_watcher(std::uint64_t watcher) {
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    it->second.erase(watcher);
    it = it->second.empty() ? watchers_.erase(it) : std::next(it);
  }
}

std::vector<registry_entry> name_registry::entries() const {
  std::vector<registry_entry> out;
  out.reserve(by_name_.size());
  for (const auto& [name, e] : by_name_)
    out.push_back(e);
  return out;
}

} // namespace troupe::actors
