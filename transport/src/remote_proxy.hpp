#pragma once
/// A local stand-in for an actor on another node. CAF calls `enqueue` on the
/// sender's thread; the proxy hands the message to the fabric, which encodes
/// it into the peer's outgoing batch. Monitors and links attach to the proxy
/// as to any actor; the fabric kills the proxy (with the remote exit reason,
/// or `disconnected`) when the remote actor or its node goes away.

#include "fabric_core.hpp"

#include <caf/actor_proxy.hpp>
#include <memory>

namespace troupe::transport {

class remote_proxy final : public caf::actor_proxy {
public:
  remote_proxy(caf::actor_config& cfg, std::weak_ptr<fabric_core> core,
               std::shared_ptr<peer_state> peer, wire_ref target);
  ~remote_proxy() override;

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override;
  /// Linking a local actor to the proxy also links it on the remote node.
  bool add_backlink(caf::abstract_actor* x) override;
  bool remove_backlink(caf::abstract_actor* x) override;
  void kill_proxy(caf::execution_unit* host, caf::error reason) override;
  const char* name() const override { return "troupe.remote_proxy"; }

  const wire_ref& target() const noexcept { return target_; }
  const std::shared_ptr<peer_state>& peer() const noexcept { return peer_; }

private:
  std::weak_ptr<fabric_core> core_;
  std::shared_ptr<peer_state> peer_;
  wire_ref target_;
};

/// The proxy behind a handle, or null for local actors.
inline remote_proxy* as_proxy(const caf::strong_actor_ptr& p) noexcept {
  // Local actors carry their system's node id: no dynamic_cast (whose
  // type_info compare costs a strcmp) on the send path of local senders.
  if (!p || p->node() == p->home_system->node()) return nullptr;
  return dynamic_cast<remote_proxy*>(p->get());
}

} // namespace troupe::transport
