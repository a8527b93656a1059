#pragma once
/// Node authentication: mutual HMAC-SHA256 challenge-response over a
/// cluster secret (OpenSSL), as plain state machines with no I/O.
///
///   client                                server
///     hello{versions, id, nonce_c}  ->
///                                   <-  hello_ack{version, id, nonce_s,
///                                                 mac_s = HMAC(k, server-label, ...)}
///     proof{mac_c = HMAC(k, client-label, ...)} ->
///                                   <-  verdict{accepted | reason}
///
/// Both MACs cover the protocol version, both node ids and incarnations and
/// both nonces, each under its own direction label, so a MAC from one
/// connection or one direction is useless in any other. Comparisons are
/// constant time (CRYPTO_memcmp). Up to two secrets are accepted at once
/// (rotation: deploy the new secret as `next`, then make it `current`); a
/// node proves itself with `current`. The fabric is authenticated, not
/// encrypted: see docs/TRANSPORT.md for the threat model.

#include "troupe/runtime/result.hpp"
#include "troupe/transport/wire.hpp"

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace troupe::transport {

inline constexpr size_t nonce_bytes = 32;
inline constexpr size_t mac_bytes = 32;

using mac_t = std::array<std::byte, mac_bytes>;

/// HMAC-SHA256 of `data` under `key`.
[[nodiscard]] mac_t hmac_sha256(std::span<const std::byte> key,
                                std::span<const std::byte> data);
/// Constant-time equality (false when sizes differ).
[[nodiscard]] bool constant_time_equal(std::span<const std::byte> a,
                                       std::span<const std::byte> b) noexcept;
/// `n` bytes from OpenSSL's CSPRNG.
[[nodiscard]] std::vector<std::byte> random_bytes(size_t n);
/// `n` random bytes as 2n lower-case hex digits (a fresh cluster secret).
[[nodiscard]] std::string random_hex(size_t n);

/// The secrets a node accepts. `current` is required (at least 16 bytes);
/// `next` is optional and also accepted during a rotation.
struct cluster_secrets {
  std::string current;
  std::string next;
  /// invalid_argument when `current` is shorter than 16 bytes.
  [[nodiscard]] result<void> validate() const;
};

/// Who this node is, for the handshake.
struct local_identity {
  std::string node_name;
  uint64_t incarnation = 0;
  std::string listen_address; ///< "host:port" or empty
};

/// Who the peer turned out to be (valid once the handshake succeeded).
struct peer_identity {
  std::string node_name;
  uint64_t node_id = 0;
  uint64_t incarnation = 0;
  uint16_t version = 0;
  std::string listen_address;
};

/// The connecting side.
class client_handshake {
public:
  /// `nonce` must be nonce_bytes long (tests pass a fixed one; the fabric
  /// passes random_bytes(nonce_bytes)).
  client_handshake(local_identity me, cluster_secrets secrets,
                   std::vector<std::byte> nonce);
  /// The first message.
  [[nodiscard]] hello start() const;
  /// Checks the server's version choice and proof. Errors: protocol_mismatch
  /// (version outside our range), auth_failed (MAC matches no accepted
  /// secret), invalid_argument (peer claims our own node id).
  [[nodiscard]] result<proof> on_hello_ack(const hello_ack& ack);
  /// The server's decision: auth_failed (with its reason) when rejected.
  [[nodiscard]] result<void> on_verdict(const verdict& v);
  const peer_identity& peer() const noexcept { return peer_; }

private:
  local_identity me_;
  cluster_secrets secrets_;
  std::vector<std::byte> nonce_;
  peer_identity peer_;
  std::vector<std::byte> server_nonce_;
  bool acked_ = false;
};

/// The accepting side.
class server_handshake {
public:
  server_handshake(local_identity me, cluster_secrets secrets,
                   std::vector<std::byte> nonce);
  /// Picks the highest common version and answers with our proof. Errors:
  /// protocol_mismatch (no common version; the message says both ranges),
  /// invalid_argument (bad nonce, node id that does not match the name, or
  /// our own node id).
  [[nodiscard]] result<hello_ack> on_hello(const hello& h);
  /// Checks the client's proof; auth_failed when it matches no accepted
  /// secret (or no hello came first).
  [[nodiscard]] result<void> on_proof(const proof& p);
  const peer_identity& peer() const noexcept { return peer_; }

private:
  local_identity me_;
  cluster_secrets secrets_;
  std::vector<std::byte> nonce_;
  peer_identity peer_;
  std::vector<std::byte> client_nonce_;
  uint16_t offered_min_ = 0; ///< the client's version range (covered by the MACs)
  uint16_t offered_max_ = 0;
  bool helloed_ = false;
};

} // namespace troupe::transport
