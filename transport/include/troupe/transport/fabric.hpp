#pragma once
/// The UCX fabric: what makes a troupe node reachable from other nodes and
/// their actors reachable from it.
///
///   auto f = transport::fabric::start(node, cfg);       // listens
///   auto peer = (*f)->connect("10.0.0.7:7100");          // authenticates
///   auto ref = (*f)->lookup("b", "trainer", 5s);         // actor_ref (remote)
///   node.tell(*ref, work_atom::value, shard);            // as for a local one
///
/// A ref to a remote actor is a CAF proxy: tell, request (with timeout),
/// monitor and link on it work as on a local actor. When the remote actor
/// ends, monitors get a down message with its exit reason; when its node
/// becomes unreachable they get `disconnected`, and requests still waiting
/// for an answer from that node fail with `disconnected` at once.
///
/// Threads: one progress thread per fabric owns the UCX context, worker,
/// listener and endpoints. Senders (any actor thread) encode envelopes into
/// the peer's outgoing batch under a short lock and wake the progress thread
/// (only when it sleeps); the progress thread sends batches as UCX active
/// messages and delivers incoming envelopes to local mailboxes. Idle, it
/// sleeps on the worker's event fd (`ucp_worker_arm`); with `busy_poll` it
/// spins for the lowest latency.

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/transport/auth.hpp"
#include "troupe/transport/message_types.hpp"
#include "troupe/transport/wire.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {
class node;
}

namespace troupe::transport {

/// The `[transport]` section of a node's config.
/// Which local actors receive messages from the network on the fabric's
/// progress thread itself (see `transport_config::inline_delivery`).
enum class inline_mode : uint8_t {
  off,    ///< every message goes through CAF's scheduler
  marked, ///< actors passed to fabric::deliver_inline
  all,    ///< every local event-based actor (each still moved back when slow)
};

struct transport_config {
  /// Address to listen on, "host:port"; port 0 picks a free one.
  std::string listen = "127.0.0.1:0";
  /// Whether to listen at all (a node that only connects out may not).
  bool listen_enabled = true;
  /// UCX transports (UCX_TLS), e.g. "tcp" or "shm,tcp"; "" lets UCX choose.
  std::string transports;
  /// Lets UCX use shared memory between processes of one machine even with
  /// peer error handling (UCX 1.13 needs SYSV/POSIX_ERROR_HANDLING for that).
  bool shared_memory = true;
  /// Spin on the worker instead of sleeping on its event fd.
  bool busy_poll = false;
  /// Send from the sender's own thread while the link to a peer is idle
  /// (lower latency); otherwise messages go through the progress thread.
  /// Off with busy_poll (the spinning progress thread holds the worker).
  bool direct_send = true;
  /// Run the receiving actor on the progress thread when a message for it
  /// arrives (no hand-off to a scheduler thread: one thread wake-up less
  /// per hop, and its replies leave at the progress thread's next turn).
  /// The contract for such actors: handlers are short and never block (no
  /// blocking receive, no blocking fabric call such as connect or lookup:
  /// those fail at once with `unavailable` rather than deadlock). An actor
  /// whose inline runs exceed `inline_budget` three times in a row goes
  /// back to the scheduler for good (counted, logged once).
  inline_mode inline_delivery = inline_mode::marked;
  std::chrono::nanoseconds inline_budget = std::chrono::microseconds{500};
  /// Messages an actor handles per inline run before others get a turn.
  int64_t inline_throughput = 64;
  /// File holding the cluster secret (first line), mode 0600; or the secret
  /// itself in `secret` (tests, env TROUPE_TRANSPORT_SECRET).
  std::string secret_file;
  std::string secret;
  /// A second accepted secret during a rotation.
  std::string next_secret;
  /// Keep large message buffers in the heap for reuse (glibc's mmap
  /// threshold raised to 32 MiB, trim threshold to 256 MiB) instead of
  /// mapping and faulting in fresh pages for every large message; this is
  /// process-wide. Doubles bandwidth at 1-16 MiB here (docs/PERFORMANCE.md).
  bool keep_large_buffers = true;
  /// Bytes queued for one peer before sends fail with `overloaded`.
  int64_t send_queue_bytes = int64_t{256} << 20;
  /// Bytes a peer may have in flight before it waits for credit.
  int64_t window_bytes = int64_t{64} << 20;
  /// Payloads at least this large travel by rendezvous, without a copy.
  int64_t bulk_threshold = int64_t{256} << 10;
  /// Largest frame accepted from the network.
  int64_t max_frame_bytes = int64_t{64} << 20;
  /// Largest single payload accepted (inline or bulk).
  int64_t max_payload_bytes = int64_t{4} << 30;
  /// How long connect() waits for the handshake.
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds{10};
};

/// A config file's transport part: the `[transport]` section.
struct transport_settings {
  transport_config transport;
};

/// The schema of `[transport]` (bind it with config_binder next to the
/// node's own schema to read both from one file).
[[nodiscard]] const config_schema<transport_settings>& transport_schema();

/// A connected (or formerly connected) peer.
struct peer_info {
  std::string node_name;
  uint64_t node_id = 0;
  uint64_t incarnation = 0;
  std::string address;         ///< the peer's listen address
  std::string remote_sockaddr; ///< where our endpoint is connected
  bool outbound = false;       ///< we connected to it
  bool up = false;
  /// UCX lanes of the endpoint: "tcp/lo", "sysv/memory", ...
  std::vector<std::string> transports;
  uint16_t protocol = 0;
};

/// Counters, for tests, `troupe info` and metrics.
struct fabric_stats {
  uint64_t envelopes_sent = 0;
  uint64_t envelopes_received = 0;
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t bulk_sent = 0;
  uint64_t bulk_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t dropped_malformed = 0; ///< frames that failed to decode
  uint64_t dropped_unauthenticated = 0;
  uint64_t dropped_unknown_type = 0;
  uint64_t dropped_no_receiver = 0;
  uint64_t dropped_overloaded = 0; ///< sends refused: queue full
  uint64_t auth_failures = 0;
  uint64_t peers_lost = 0;
  uint64_t inline_runs = 0;    ///< actor runs on the progress thread
  uint64_t inline_demoted = 0; ///< actors moved back to the scheduler (too slow)
};

/// Told when a peer comes up (`why` empty) or goes down (`why` says why),
/// on the fabric's progress thread: it must be quick and must not block
/// (send a message, set a flag).
using peer_listener = std::function<void(const peer_info& peer, const std::string& why)>;

/// Builds the actor a `spawn_on` request asks for, from its arguments.
using spawn_factory = std::function<result<actor_ref>(node&, const caf::message& args)>;

class fabric_core;

class fabric {
public:
  /// Starts the fabric of `n`: UCX context and worker, listener, progress
  /// thread. Errors: invalid_argument (bad config, no or short secret),
  /// unavailable (address in use), transport.ucx_error.
  [[nodiscard]] static result<std::unique_ptr<fabric>>
  start(node& n, transport_config cfg, message_types types = message_types::defaults());
  /// Stops: closes endpoints (peers see us leave), joins the thread.
  ~fabric();
  fabric(const fabric&) = delete;
  fabric& operator=(const fabric&) = delete;

  /// "host:port" the listener is bound to ("" when not listening).
  [[nodiscard]] std::string listen_address() const;
  /// This node's name, wire id and incarnation.
  [[nodiscard]] const std::string& node_name() const noexcept;
  [[nodiscard]] uint64_t node_id() const noexcept;
  [[nodiscard]] uint64_t incarnation() const noexcept;

  /// Connects to the node listening at `address` and authenticates both
  /// ways; returns the peer once it is up (or at once if already
  /// connected). Errors: disconnected (unreachable, refused, timed out),
  /// transport.auth_failed, transport.protocol_mismatch.
  [[nodiscard]] result<peer_info> connect(std::string_view address);
  /// The same with its own handshake timeout instead of `connect_timeout`.
  [[nodiscard]] result<peer_info> connect(std::string_view address,
                                          std::chrono::nanoseconds timeout);

  /// The actor registered under `name` on node `node_name` (a connected
  /// peer or this node). Errors: not_found, disconnected, timeout.
  [[nodiscard]] result<actor_ref> lookup(std::string_view node_name,
                                         std::string_view name,
                                         std::chrono::nanoseconds timeout);

  /// Makes `type` spawnable by peers through spawn_on.
  void register_spawnable(std::string type, spawn_factory factory);
  /// Spawns an actor of registered `type` on node `node_name` with `args`.
  /// Errors: not_found (unknown type or node), disconnected, timeout, and
  /// whatever the factory returned.
  [[nodiscard]] result<actor_ref> spawn_on(std::string_view node_name,
                                           std::string_view type, caf::message args,
                                           std::chrono::nanoseconds timeout);

  /// Adds a listener for peers coming up and going down (see peer_listener).
  void watch_peers(peer_listener listener);

  /// Delivers messages from the network to local actor `a` on the progress
  /// thread (`transport_config::inline_delivery`, mode `marked`): for
  /// latency-critical endpoints whose handlers are short and never block.
  /// Errors: invalid_argument (empty or remote ref).
  [[nodiscard]] result<void> deliver_inline(const actor_ref& a, bool on = true);

  /// Sends like a tell, but says `overloaded` when the peer's send queue is
  /// full instead of dropping (and `disconnected` when it is down).
  [[nodiscard]] result<void> try_tell(const actor_ref& to, caf::message msg);

  /// The node a ref lives on ("" for a local or empty ref), by name.
  [[nodiscard]] std::string node_of(const actor_ref& ref) const;
  /// Whether `ref` is a proxy for an actor on another node.
  [[nodiscard]] static bool is_remote(const actor_ref& ref) noexcept;

  [[nodiscard]] std::vector<peer_info> peers() const;
  [[nodiscard]] fabric_stats stats() const;
  /// Whether UCX can move GPU memory directly (CUDA memory type support).
  [[nodiscard]] bool gpu_direct() const noexcept;
  /// UCX version string.
  [[nodiscard]] static std::string ucx_version();

private:
  explicit fabric(std::shared_ptr<fabric_core> core);
  std::shared_ptr<fabric_core> core_;
};

} // namespace troupe::transport
