#pragma once
/// The fabric's shared state: peers, proxies, the progress thread. Private
/// to the transport module; `fabric` (fabric.hpp) is its public face.

#include "troupe/runtime/node.hpp"
#include "troupe/transport/auth.hpp"
#include "troupe/transport/fabric.hpp"
#include "troupe/transport/message_types.hpp"
#include "troupe/transport/wire.hpp"
#include "ucx.hpp"

#include <atomic>
#include <caf/all.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <spdlog/logger.h>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace troupe::transport {

class fabric_core;

/// Active message ids.
enum am_id : unsigned {
  am_handshake = 1, ///< data: one handshake frame
  am_frame = 2,     ///< header: sequence; data: envelopes
  am_bulk = 3,      ///< header: sequence + one envelope; data: its payload (rendezvous)
  am_credit = 4,    ///< header: bytes granted
};

/// One item of a peer's outgoing queue, in send order.
struct out_item {
  std::vector<std::byte> frame;        ///< envelopes (am_frame) or one envelope (am_bulk)
  caf::message keep;                   ///< keeps a bulk payload alive until sent
  std::shared_ptr<const void> staging; ///< a staged device buffer's host copy
  bool bulk_on_device = false;         ///< `bulk` is device memory (GPU direct)
  uint64_t seq = 0;                    ///< assigned when taken off the queue
  const char* bulk = nullptr;
  size_t bulk_size = 0;
  size_t bytes() const noexcept { return frame.size() + bulk_size; }
};

/// A frame or bulk transfer that arrived ahead of its turn.
struct in_item {
  std::vector<std::byte> frame;
  std::vector<char> bulk;
  bool is_bulk = false;
  bool complete = true;
};

enum class peer_status : int { handshaking, up, down };

/// A remote node. Shared by the progress thread (endpoint, handshake,
/// reorder buffer: progress thread only), senders (outgoing queue, under
/// `mu`) and proxies (which keep it alive).
struct peer_state {
  // -- set before the peer is up, read-only after -------------------------
  peer_identity id;
  bool outbound = false;
  std::string remote_sockaddr;
  std::vector<std::string> transports;
  std::atomic<peer_status> status{peer_status::handshaking};

  // -- endpoint: written by the progress thread only, under ep_mu held
  // exclusively; other threads (direct sends) read it under ep_mu shared.
  // Never taken exclusively inside a UCX callback.
  std::shared_mutex ep_mu;
  ucp_ep_h ep = nullptr;

  // -- progress thread only ------------------------------------------------
  std::unique_ptr<client_handshake> client;
  std::unique_ptr<server_handshake> server;
  uint64_t expect_seq = 0;
  std::map<uint64_t, in_item> reorder;
  int64_t uncredited = 0;               ///< bytes received and not yet credited back
  bool credit_requested = false;        ///< we asked the peer for credit
  bool credit_wanted = false;           ///< the peer asked us for credit
  std::unordered_set<uint64_t> watched; ///< local actors this peer monitors
  bool closing = false;                 ///< rejected: the failure is already counted
  bool hello_seen = false; ///< server: a hello came (the client got our proof)

  // -- outgoing queue (guarded by mu) ---------------------------------------
  std::mutex mu;
  frame_writer batch;         // guarded by mu
  std::deque<out_item> queue; // guarded by mu
  int64_t queued_bytes = 0;   // guarded by mu
  uint64_t send_seq = 0;      // guarded by mu
  int64_t in_flight = 0;      // guarded by mu: bytes sent, not yet credited
  bool flush_pending = false; // guarded by mu
  int64_t last_direct_ns = 0; // guarded by mu: when this peer last got a direct send

  // -- requests sent to this peer and not yet answered (guarded by req_mu) ---
  struct pending_request {
    caf::strong_actor_ptr sender;
    caf::message_id mid;
  };
  std::mutex req_mu;
  std::unordered_map<uint64_t, pending_request>
      pending; // key: aid ^ mid (see fabric.cpp)

  // -- connect() waiting for this peer (guarded by the core's mu_) ----------
  std::function<void(result<void>)> on_ready;
};

/// Outcome of queueing an envelope for a peer.
enum class queue_result { ok, overloaded, disconnected };

/// The progress thread as a CAF execution unit: actors that CAF schedules
/// "on" it (a message delivered from the network, or sent by an actor
/// running inline) are run by the progress thread itself when the fabric's
/// inline policy picks them, and by CAF's scheduler otherwise.
class inline_unit final : public caf::execution_unit {
public:
  inline_unit(caf::actor_system& sys, fabric_core& core)
      : caf::execution_unit(&sys), core_(core) {}
  void exec_later(caf::resumable* job) override;

private:
  fabric_core& core_;
};

class fabric_core : public std::enable_shared_from_this<fabric_core> {
public:
  fabric_core(node& n, transport_config cfg, message_types types,
              cluster_secrets secrets);
  ~fabric_core();

  [[nodiscard]] result<void> start();
  void stop();

  // -- identity ------------------------------------------------------------------
  node& host() noexcept { return node_; }
  caf::actor_system& system() noexcept { return node_.system(); }
  const std::string& name() const noexcept { return me_.node_name; }
  uint64_t node_id() const noexcept { return node_id_; }
  uint64_t incarnation() const noexcept { return me_.incarnation; }
  const transport_config& config() const noexcept { return cfg_; }
  std::string listen_address() const;
  bool gpu_direct() const noexcept { return worker_ && worker_->cuda_memory(); }

  // -- API (any thread) -------------------------------------------------------------
  [[nodiscard]] result<peer_info> connect(std::string_view address,
                                          std::chrono::nanoseconds timeout);
  [[nodiscard]] result<actor_ref> lookup(std::string_view node_name,
                                         std::string_view name,
                                         std::chrono::nanoseconds timeout);
  [[nodiscard]] result<actor_ref> spawn_on(std::string_view node_name,
                                           std::string_view type, caf::message args,
                                           std::chrono::nanoseconds timeout);
  void register_spawnable(std::string type, spawn_factory f);
  [[nodiscard]] result<void> try_tell(const actor_ref& to, caf::message msg);
  [[nodiscard]] result<void> deliver_inline(const actor_ref& a, bool on);
  void watch_peers(peer_listener listener);
  std::vector<peer_info> peers() const;
  fabric_stats stats() const;
  std::string node_of(const actor_ref& ref) const;

  // -- used by proxies (any thread) -------------------------------------------------
  /// Forwards a mailbox element that was enqueued to a proxy.
  void forward(const std::shared_ptr<peer_state>& peer, const wire_ref& target,
               caf::mailbox_element_ptr x);
  /// Asks the peer to link/unlink `local` with its actor `target`.
  void send_link(const std::shared_ptr<peer_state>& peer, const wire_ref& target,
                 caf::abstract_actor* local, bool link);
  /// The proxy for `ref` (created on first use), or the local actor when
  /// `ref` is on this node. Null for actor 0 or a dead local actor.
  caf::strong_actor_ptr resolve(const wire_ref& ref);
  /// The wire ref of an actor handle (local ones are registered so that
  /// messages addressed to them can be delivered).
  wire_ref ref_of(const caf::strong_actor_ptr& p);
  const message_types& types() const noexcept { return types_; }

  /// Called by inline_unit: run `job` on the progress thread or hand it
  /// to CAF's scheduler.
  void exec_later(caf::resumable* job);

private:
  friend class fabric;
  struct counters {
    std::atomic<uint64_t> envelopes_sent{0}, envelopes_received{0}, frames_sent{0},
        frames_received{0}, bulk_sent{0}, bulk_received{0}, bytes_sent{0},
        bytes_received{0}, dropped_malformed{0}, dropped_unauthenticated{0},
        dropped_unknown_type{0}, dropped_no_receiver{0}, dropped_overloaded{0},
        auth_failures{0}, peers_lost{0}, inline_runs{0}, inline_demoted{0};
  };

  // progress thread
  void run();
  /// Runs the actors queued for the progress thread (a bounded number of
  /// runs per turn); true when it ran any.
  bool run_inline();
  /// An error when called on the progress thread, where a blocking call
  /// would wait for the very thread it blocks.
  [[nodiscard]] result<void> not_on_progress_thread(std::string_view what) const;
  void post(std::function<void()> task);
  void wake(const std::shared_ptr<peer_state>& p);
  void flush(const std::shared_ptr<peer_state>& p);
  /// Moves the current batch (if any) to the end of the queue; p.mu held.
  static void seal_batch(peer_state& p);
  /// What peers() reports about `p`.
  static peer_info info_of(const peer_state& p);
  /// ucp_ep_create with peer error handling reported to on_endpoint_error.
  ucs_status_t create_endpoint(ucp_ep_params_t& ep, peer_state& p);
  void on_connection_request(ucp_conn_request_h req);
  void on_endpoint_error(peer_state* p, ucs_status_t st);
  ucs_status_t on_am(unsigned id, const void* header, size_t header_len, void* data,
                     size_t len, const ucp_am_recv_param_t* param);
  void on_handshake(const std::shared_ptr<peer_state>& p,
                    std::span<const std::byte> frame);
  void peer_up(const std::shared_ptr<peer_state>& p);
  /// Tells the peer listeners (progress thread; `why` empty when up).
  void notify_peer_event(const peer_info& info, const std::string& why);
  /// `graceful` flushes what was sent before closing (a rejecting verdict).
  void peer_down(const std::shared_ptr<peer_state>& p, const std::string& why,
                 bool graceful = false);
  void send_handshake(const std::shared_ptr<peer_state>& p, const handshake_message& m);
  void send_credit(const std::shared_ptr<peer_state>& p, bool force = false);
  void drain(const std::shared_ptr<peer_state>& p);
  void deliver_frame(const std::shared_ptr<peer_state>& p,
                     std::span<const std::byte> frame, std::vector<char>* bulk);
  void deliver(const std::shared_ptr<peer_state>& p, const envelope_view& e,
               std::vector<char>* bulk);
  void serve_node_request(const std::shared_ptr<peer_state>& p, const envelope_view& e,
                          caf::message content);
  void watch_local(const std::shared_ptr<peer_state>& p, uint64_t aid);

  // any thread
  /// Encodes and queues one envelope for `p`. `content` elements from
  /// `first` on are the payload.
  queue_result send(const std::shared_ptr<peer_state>& p, envelope_header h,
                    const caf::message& content, std::string_view tenant,
                    std::string* failure = nullptr);
  /// Answers request `mid` of local `sender` with an error, locally.
  void fail_locally(const caf::strong_actor_ptr& sender, caf::message_id mid,
                    runtime::errc e, std::string message);
  /// Sends an error response for a request that came from `p`.
  void reply_error(const std::shared_ptr<peer_state>& p, const envelope_view& e,
                   runtime::errc code, std::string message);
  std::shared_ptr<peer_state> peer_by_id(uint64_t node_id) const;
  std::shared_ptr<peer_state> peer_by_name(std::string_view name) const;
  /// Request/response to the node service of a peer (actor 0).
  result<caf::message> node_request(std::string_view node_name, caf::message msg,
                                    std::chrono::nanoseconds timeout);
  void kill_proxies_of(uint64_t node_id, const caf::error& reason);
  void kill_proxy(const wire_ref& ref, const caf::error& reason);

  node& node_;
  transport_config cfg_;
  message_types types_;
  cluster_secrets secrets_;
  local_identity me_;
  uint64_t node_id_ = 0;
  uint64_t serial_ = 0; ///< unique per fabric in this process (never 0)
  decode_limits limits_;
  std::shared_ptr<spdlog::logger> log_;
  counters c_;

  std::unique_ptr<ucx::worker> worker_;
  ucp_listener_h listener_ = nullptr;
  std::string listen_address_;
  // Arguments of UCX callbacks, owned here (freed when the worker is gone).
  std::vector<std::unique_ptr<void, void (*)(void*)>> am_args_;
  std::vector<std::unique_ptr<void, void (*)(void*)>> err_args_;
  std::thread thread_;
  std::atomic<std::thread::id> progress_tid_{}; ///< the progress thread's id
  std::atomic<bool> running_{false};
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> work_posted_{false}; ///< tasks_ or ready_ may hold something
  // Inline delivery (progress thread only, after start).
  std::unique_ptr<inline_unit> unit_;
  std::deque<caf::resumable*> runnable_;           ///< each holds one reference
  std::unordered_set<caf::actor_id> marked_;       ///< deliver_inline'd actors
  std::unordered_set<caf::actor_id> demoted_;      ///< too slow: scheduler only
  std::unordered_map<caf::actor_id, int> strikes_; ///< runs over budget in a row

  mutable std::mutex mu_;
  std::vector<std::function<void()>> tasks_;       // guarded by mu_
  std::vector<std::shared_ptr<peer_state>> ready_; // guarded by mu_
  std::unordered_map<uint64_t, std::shared_ptr<peer_state>>
      by_id_; // guarded by mu_ (up peers)
  std::unordered_map<ucp_ep_h, std::shared_ptr<peer_state>> by_ep_; // guarded by mu_
  std::vector<peer_info> history_; // guarded by mu_ (lost peers)
  std::unordered_map<std::string, spawn_factory> spawnables_; // guarded by mu_
  std::vector<peer_listener> listeners_;                      // guarded by mu_

  struct ref_hash {
    size_t operator()(const wire_ref& r) const noexcept {
      return std::hash<uint64_t>{}(r.node * 31 + r.actor) ^ r.incarnation;
    }
  };
  mutable std::mutex proxies_mu_;
  std::unordered_map<wire_ref, caf::weak_actor_ptr, ref_hash>
      proxies_; // guarded by proxies_mu_
};

} // namespace troupe::transport
