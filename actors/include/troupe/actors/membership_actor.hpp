#pragma once
/// The membership actor: a thin shell over `membership_table` that runs on
/// every node of a cluster, registered as "troupe.membership".
///
/// On the head it owns the cluster's membership table: workers join it and
/// send heartbeats; the fabric's peer events are its transport errors; a
/// tick (every half heartbeat interval) runs the failure detector; every
/// event goes to the subscribers. On a worker it joins the head (connecting
/// to its address and retrying until it answers), sends heartbeats, and
/// joins again by itself when the head comes back after a restart.
///
/// The actor runs detached (its own thread): joining blocks on the
/// fabric's connect, and heartbeats must leave on time even when every
/// scheduler thread is busy (the issue's "no false downs while the cores
/// are busy").
///
/// Second signals: indirect probes, transport errors and the suspect
/// timeout. Workers connect to each other (the node with the smaller id
/// dials, one step per tick) and find each other's membership actors; for
/// each probe the head's table asks for, the head tells the chosen workers
/// to ping the suspect's membership actor, and they report whether it
/// answered within `probe_timeout`. Workers learn of members from the
/// head's events, which the head sends to every joined worker.
///
/// Protocol (atoms below; JSON strings for structured payloads, so the
/// same messages cross the network and the HTTP API unchanged):
///   (join_atom, name, address, uint64 incarnation, std::string inventory JSON)
///       one way; answered (joined_atom, members JSON) or (refused_atom, why).
///       The inventory (inventory.hpp's encode_inventory, "" for none) is
///       outside input: decoded with its bounds, a bad one refuses the join.
///   (heartbeat_atom, uint64 node, uint64 incarnation)          one way
///   (leave_atom, uint64 node, uint64 incarnation) -> bool   (to the head)
///   (leave_atom) -> bool   local, on a worker: leave the cluster gracefully
///   (subscribe_atom, caf::actor) -> std::string members JSON; the subscriber
///       then gets (event_atom, std::string event JSON) for every event
///   (members_atom) -> std::string members JSON
///   (cordon_atom | uncordon_atom | drain_atom, std::string name) -> bool
///   (pause_atom, int64 ms)   test hook on a worker: no heartbeats and no ping
///       answers for that long (as if the process were stopped)
/// Internal (between membership actors): probe requests and results, pings.
/// A worker answers members_atom with what the head last told it. The
/// members JSON carries each node's inventory (under "inventory") when it
/// reported one: that is how the head learns every node's resources.
#include "troupe/actors/membership.hpp"
#include "troupe/runtime/actor.hpp"

#include <caf/fwd.hpp>
#include <cstdint>
#include <map>
#include <string>

namespace troupe {
class node;
}
namespace troupe::transport {
class fabric;
}

namespace troupe::actors {

using join_atom = caf::atom_constant<caf::atom("mb_join")>;
using joined_atom = caf::atom_constant<caf::atom("mb_joined")>;
using refused_atom = caf::atom_constant<caf::atom("mb_refused")>;
using heartbeat_atom = caf::atom_constant<caf::atom("mb_beat")>;
using leave_atom = caf::atom_constant<caf::atom("mb_leave")>;
using subscribe_atom = caf::atom_constant<caf::atom("mb_sub")>;
using event_atom = caf::atom_constant<caf::atom("mb_event")>;
using members_atom = caf::atom_constant<caf::atom("mb_list")>;
using cordon_atom = caf::atom_constant<caf::atom("mb_cordon")>;
using uncordon_atom = caf::atom_constant<caf::atom("mb_uncord")>;
using drain_atom = caf::atom_constant<caf::atom("mb_drain")>;
using pause_atom = caf::atom_constant<caf::atom("mb_pause")>;

/// The name the membership actor is registered under on every node.
inline constexpr const char* membership_actor_name = "troupe.membership";

struct membership_actor_config {
  membership_config membership;
  bool head = false;
  /// Workers: the head's node name and fabric listen address.
  std::string head_name;
  std::string head_address;
  /// This node's resources as encode_inventory wrote them ("" for none):
  /// sent with the join (workers) or listed with the members (head).
  std::string inventory_json;
};

/// JSON of one event / of the member list (what subscribers receive).
[[nodiscard]] std::string to_json(const membership_event& e);
[[nodiscard]] std::string to_json(const std::vector<member>& members);
/// The same with each member's inventory JSON (by node id) where known.
[[nodiscard]] std::string
to_json(const std::vector<member>& members,
        const std::map<std::uint64_t, std::string>& inventories);

/// Spawns this node's membership actor (detached, adopted by `n`, named
/// `membership_actor_name`). `f` must outlive it (stop the node first).
/// Errors: invalid_argument (a worker without head name or address),
/// already_exists (one is running).
[[nodiscard]] result<actor_ref> start_membership(node& n, transport::fabric& f,
                                                 membership_actor_config cfg);

} // namespace troupe::actors
