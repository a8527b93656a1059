#pragma once
/// The cluster-wide registry of named actors, as plain code: which name
/// belongs to which actor on which node (generation), and who watches a
/// name. The registry actor (registry_actor.hpp) is its shell on the head.
///
/// Rules: a name is held by at most one actor; registering a taken name
/// fails unless it is the same actor (idempotent). Entries go when their
/// actor exits, when it is unregistered, or when its node goes down or
/// leaves (every entry of that node and generation at once). Every removal
/// tells the name's watchers, once, and forgets them. A watch on a free
/// name is kept until the name is registered and then removed ("tell me
/// when it goes").
#include "troupe/actors/errc.hpp"
#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::actors {

/// Where a named actor lives. `actor` is the runtime's actor id on `node`.
struct registry_entry {
  std::string name;
  std::uint64_t node = 0; ///< transport node id
  std::uint64_t incarnation = 0;
  std::uint64_t actor = 0;
  bool operator==(const registry_entry&) const = default;
};

/// Why an entry went.
enum class removal_reason { unregistered, actor_exited, node_down, node_left };
[[nodiscard]] std::string_view to_string(removal_reason r) noexcept;

/// One name removed, and who must be told (watcher ids are the caller's).
struct registry_removal {
  registry_entry entry;
  removal_reason reason = removal_reason::unregistered;
  std::vector<std::uint64_t> watchers;
};

class name_registry {
public:
  /// Registers `e.name`. Errors: invalid_argument (empty or over 256
  /// bytes, control characters, node or actor 0), conflict (held by
  /// another actor: the message names its node).
  [[nodiscard]] result<void> add(const registry_entry& e);
  /// Removes `name` if `actor` on `node` holds it (not_found otherwise).
  [[nodiscard]] result<registry_removal> remove(std::string_view name, std::uint64_t node,
                                                std::uint64_t actor);
  /// Every name that actor held (it exited).
  [[nodiscard]] std::vector<registry_removal> actor_exited(std::uint64_t node,
                                                           std::uint64_t actor);
  /// Every name of `node` at `incarnation` or older (it went down or left).
  [[nodiscard]] std::vector<registry_removal>
  node_gone(std::uint64_t node, std::uint64_t incarnation, removal_reason why);
  /// The entry under `name`, or null.
  [[nodiscard]] const registry_entry* find(std::string_view name) const;
  /// Adds `watcher` to `name`'s watchers (told at its next removal).
  void watch(std::string_view name, std::uint64_t watcher);
  /// Forgets `watcher` everywhere (it exited).
  void forget_watcher(std::uint64_t watcher);
  [[nodiscard]] std::vector<registry_entry> entries() const;
  [[nodiscard]] std::size_t size() const noexcept { return by_name_.size(); }

private:
  registry_removal take(std::map<std::string, registry_entry, std::less<>>::iterator it,
                        removal_reason why);

  std::map<std::string, registry_entry, std::less<>> by_name_;
  std::map<std::string, std::set<std::uint64_t>, std::less<>> watchers_;
};

} // namespace troupe::actors
