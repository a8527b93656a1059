#pragma once
/// The cluster-wide registry of named actors: a thin shell over
/// `name_registry` on the head, registered as "troupe.registry".
///
/// Any node registers and looks up names through it (the helpers below, or
/// the messages). Entries go when their actor exits (the registry monitors
/// it), when they are unregistered, and when the actor's node goes down or
/// leaves (the registry subscribes to the head's membership actor); the
/// name's watchers are told each time. Handles it returns for actors on
/// other workers resolve on the caller's node through the membership mesh
/// (workers connect to each other).
///
/// Protocol:
///   (reg_put_atom, std::string name, caf::actor who) -> bool
///   (reg_del_atom, std::string name, caf::actor who) -> bool
///   (reg_get_atom, std::string name) -> caf::actor      (error: not found)
///   (reg_watch_atom, std::string name, caf::actor watcher) -> bool; the
///       watcher later gets (reg_gone_atom, std::string name, std::string reason)
///   (reg_list_atom) -> std::string JSON [{name, node, actor}]
#include "troupe/actors/name_registry.hpp"
#include "troupe/runtime/actor.hpp"

#include <caf/fwd.hpp>
#include <chrono>
#include <string>
#include <string_view>

namespace troupe {
class node;
}
namespace troupe::transport {
class fabric;
}

namespace troupe::actors {

using reg_put_atom = caf::atom_constant<caf::atom("reg_put")>;
using reg_del_atom = caf::atom_constant<caf::atom("reg_del")>;
using reg_get_atom = caf::atom_constant<caf::atom("reg_get")>;
using reg_watch_atom = caf::atom_constant<caf::atom("reg_watch")>;
using reg_gone_atom = caf::atom_constant<caf::atom("reg_gone")>;
using reg_list_atom = caf::atom_constant<caf::atom("reg_list")>;

inline constexpr const char* registry_actor_name = "troupe.registry";

/// Spawns the registry on the head (adopted by `n`, named
/// `registry_actor_name`), subscribed to the head's membership actor (start
/// that first). `f` must outlive it. Errors: not_found (no membership
/// actor), already_exists.
[[nodiscard]] result<actor_ref> start_registry(node& n, transport::fabric& f);

/// From any node (outside actors: these block): register `who` under
/// `name`, or find the actor registered under `name`, through the head's
/// registry. Errors: those of the registry (conflict, not_found), and
/// disconnected/timeout when the head cannot be reached.
[[nodiscard]] result<void> register_cluster_name(node& n, transport::fabric& f,
                                                 std::string_view head, std::string name,
                                                 const actor_ref& who,
                                                 std::chrono::nanoseconds timeout);
[[nodiscard]] result<actor_ref> lookup_cluster_name(node& n, transport::fabric& f,
                                                    std::string_view head,
                                                    std::string name,
                                                    std::chrono::nanoseconds timeout);

} // namespace troupe::actors
