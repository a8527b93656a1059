// Node authentication: mutual HMAC-SHA256 challenge-response (auth.hpp).
//
// Both MACs are HMAC-SHA256 under a cluster secret over one unambiguous
// byte string (every field fixed width little-endian or length-prefixed):
//
//   u8 len, label        "troupe-auth/server" or "troupe-auth/client"
//   u16 version          the version the server chose
//   u16 offered_min      the client's offered range (hello), so a
//   u16 offered_max      downgrade by an on-path attacker breaks the MACs
//   u64 client node id, u64 client incarnation
//   u64 server node id, u64 server incarnation
//   u8 len, client nonce
//   u8 len, server nonce
//
// The server proves itself first (in hello_ack) and the client second (in
// proof), each with its `current` secret; each side accepts `current` or
// `next`. The nonces make every MAC specific to one connection and the
// labels to one direction, so neither replay nor reflection works.

#include "troupe/transport/auth.hpp"

#include "troupe/runtime/errc.hpp"

#include <cstdio>
#include <cstdlib>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string_view>
#include <utility>

namespace troupe::transport {

mac_t hmac_sha256(std::span<const std::byte> key, std::span<const std::byte> data) {
  mac_t out{};
  unsigned len = 0;
  static const unsigned char empty = 0; // OpenSSL wants a non-null key
  const void* k = key.empty() ? static_cast<const void*>(&empty) : key.data();
  const auto* d =
      data.empty() ? &empty : reinterpret_cast<const unsigned char*>(data.data());
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()), d, data.size(),
           reinterpret_cast<unsigned char*>(out.data()), &len) == nullptr ||
      len != out.size()) {
    std::fprintf(stderr, "troupe: HMAC-SHA256 failed in OpenSSL\n");
    std::abort();
  }
  return out;
}

bool constant_time_equal(std::span<const std::byte> a,
                         std::span<const std::byte> b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::vector<std::byte> random_bytes(size_t n) {
  std::vector<std::byte> out(n);
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                          static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "troupe: OpenSSL RAND_bytes failed: no secure randomness\n");
    std::abort();
  }
  return out;
}

std::string random_hex(size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (auto x : random_bytes(n)) {
    s += digits[std::to_integer<unsigned>(x) >> 4];
    s += digits[std::to_integer<unsigned>(x) & 15];
  }
  return s;
}

result<void> cluster_secrets::validate() const {
  if (current.size() < 16)
    return error{runtime::errc::invalid_argument,
                 "cluster secret: the current secret has " +
                     std::to_string(current.size()) + " bytes, at least 16 are required"};
  if (!next.empty() && next.size() < 16)
    return error{runtime::errc::invalid_argument,
                 "cluster secret: the next secret has " + std::to_string(next.size()) +
                     " bytes, at least 16 are required (or leave it empty)"};
  return ok();
}

namespace {

constexpr std::string_view server_label = "troupe-auth/server";
constexpr std::string_view client_label = "troupe-auth/client";

/// What both MACs of one handshake cover.
struct transcript {
  uint16_t version = 0;
  uint16_t offered_min = 0;
  uint16_t offered_max = 0;
  uint64_t client_id = 0;
  uint64_t client_incarnation = 0;
  uint64_t server_id = 0;
  uint64_t server_incarnation = 0;
  std::span<const std::byte> client_nonce;
  std::span<const std::byte> server_nonce;
};

class mac_input {
public:
  void bytes(std::span<const std::byte> b) {
    // Nonces are nonce_bytes long (checked before); the u8 prefix keeps the
    // encoding unambiguous anyway.
    buf_.push_back(static_cast<std::byte>(b.size()));
    buf_.insert(buf_.end(), b.begin(), b.end());
  }
  void text(std::string_view s) { bytes(std::as_bytes(std::span{s.data(), s.size()})); }
  template <class U> void le(U v) {
    for (size_t i = 0; i < sizeof(U); ++i)
      buf_.push_back(static_cast<std::byte>(v >> (8 * i)));
  }
  std::span<const std::byte> data() const noexcept { return buf_; }

private:
  std::vector<std::byte> buf_;
};

mac_t compute_mac(std::string_view secret, std::string_view label, const transcript& t) {
  mac_input in;
  in.text(label);
  in.le(t.version);
  in.le(t.offered_min);
  in.le(t.offered_max);
  in.le(t.client_id);
  in.le(t.client_incarnation);
  in.le(t.server_id);
  in.le(t.server_incarnation);
  in.bytes(t.client_nonce);
  in.bytes(t.server_nonce);
  return hmac_sha256(std::as_bytes(std::span{secret.data(), secret.size()}), in.data());
}

/// True when `mac` is the MAC under `current` or (when set) `next`. Both
/// are always computed and compared, so timing does not tell which matched.
bool accepted(const cluster_secrets& s, std::string_view label, const transcript& t,
              std::span<const std::byte> mac) {
  const mac_t a = compute_mac(s.current, label, t);
  const bool by_current = constant_time_equal(a, mac);
  bool by_next = false;
  if (!s.next.empty()) by_next = constant_time_equal(compute_mac(s.next, label, t), mac);
  return by_current || by_next;
}

std::string range(uint16_t lo, uint16_t hi) {
  return std::to_string(lo) + ".." + std::to_string(hi);
}

} // namespace

// -- client -------------------------------------------------------------------------

client_handshake::client_handshake(local_identity me, cluster_secrets secrets,
                                   std::vector<std::byte> nonce)
    : me_(std::move(me)), secrets_(std::move(secrets)), nonce_(std::move(nonce)) {
  TROUPE_ASSERT(nonce_.size() == nonce_bytes, "client nonce must be nonce_bytes long");
}

hello client_handshake::start() const {
  hello h;
  h.version_min = min_protocol_version;
  h.version_max = protocol_version;
  h.node_name = me_.node_name;
  h.node_id = node_id_of(me_.node_name);
  h.incarnation = me_.incarnation;
  h.nonce = nonce_;
  h.listen_address = me_.listen_address;
  return h;
}

result<proof> client_handshake::on_hello_ack(const hello_ack& ack) {
  if (acked_)
    return error{errc::auth_failed,
                 "server " + ack.node_name + " sent a second hello_ack"};
  if (ack.version < min_protocol_version || ack.version > protocol_version)
    return error{errc::protocol_mismatch,
                 "peer " + ack.node_name + " chose troupe protocol " +
                     std::to_string(ack.version) + ", this node speaks " +
                     range(min_protocol_version, protocol_version)};
  if (ack.node_id != node_id_of(ack.node_name))
    return error{runtime::errc::invalid_argument,
                 "peer " + ack.node_name + " claims node id " +
                     std::to_string(ack.node_id) + ", which is not the id of its name"};
  const uint64_t my_id = node_id_of(me_.node_name);
  if (ack.node_id == my_id)
    return error{runtime::errc::invalid_argument,
                 "peer " + ack.node_name + " claims this node's own id " +
                     std::to_string(my_id) + " (connected to itself?)"};
  if (ack.nonce.size() != nonce_bytes || ack.mac.size() != mac_bytes)
    return error{errc::auth_failed, "server " + ack.node_name + " sent a " +
                                        std::to_string(ack.nonce.size()) +
                                        "-byte nonce and a " +
                                        std::to_string(ack.mac.size()) + "-byte MAC"};
  transcript t{ack.version,     min_protocol_version, protocol_version, my_id,
               me_.incarnation, ack.node_id,          ack.incarnation,  nonce_,
               ack.nonce};
  if (!accepted(secrets_, server_label, t, ack.mac))
    return error{
        errc::auth_failed,
        "server " + ack.node_name + " (" + ack.listen_address +
            ") failed authentication: its proof matches no accepted cluster secret"};
  peer_ = {ack.node_name, ack.node_id, ack.incarnation, ack.version, ack.listen_address};
  server_nonce_ = ack.nonce;
  acked_ = true;
  const mac_t mine = compute_mac(secrets_.current, client_label, t);
  return proof{{mine.begin(), mine.end()}};
}

result<void> client_handshake::on_verdict(const verdict& v) {
  if (!acked_) return error{errc::auth_failed, "verdict before the server proved itself"};
  if (!v.accepted)
    return error{errc::auth_failed,
                 "server " + peer_.node_name + " rejected this node: " + v.reason};
  return ok();
}

// -- server -------------------------------------------------------------------------

server_handshake::server_handshake(local_identity me, cluster_secrets secrets,
                                   std::vector<std::byte> nonce)
    : me_(std::move(me)), secrets_(std::move(secrets)), nonce_(std::move(nonce)) {
  TROUPE_ASSERT(nonce_.size() == nonce_bytes, "server nonce must be nonce_bytes long");
}

result<hello_ack> server_handshake::on_hello(const hello& h) {
  if (helloed_)
    return error{runtime::errc::invalid_argument,
                 "peer " + h.node_name + " sent a second hello"};
  if (h.nonce.size() != nonce_bytes)
    return error{runtime::errc::invalid_argument,
                 "peer " + h.node_name + " sent a " + std::to_string(h.nonce.size()) +
                     "-byte nonce (must be " + std::to_string(nonce_bytes) + ")"};
  if (h.node_id != node_id_of(h.node_name))
    return error{runtime::errc::invalid_argument,
                 "peer " + h.node_name + " claims node id " + std::to_string(h.node_id) +
                     ", which is not the id of its name"};
  const uint64_t my_id = node_id_of(me_.node_name);
  if (h.node_id == my_id)
    return error{runtime::errc::invalid_argument,
                 "peer " + h.node_name + " claims this node's own id " +
                     std::to_string(my_id) + " (connected to itself?)"};
  const uint16_t lo = std::max(h.version_min, min_protocol_version);
  const uint16_t hi = std::min(h.version_max, protocol_version);
  if (lo > hi)
    return error{errc::protocol_mismatch,
                 "peer " + h.node_name + " speaks troupe protocol " +
                     range(h.version_min, h.version_max) + ", this node speaks " +
                     range(min_protocol_version, protocol_version)};
  peer_ = {h.node_name, h.node_id, h.incarnation, hi, h.listen_address};
  client_nonce_ = h.nonce;
  offered_min_ = h.version_min;
  offered_max_ = h.version_max;
  helloed_ = true;

  hello_ack ack;
  ack.version = hi;
  ack.node_name = me_.node_name;
  ack.node_id = my_id;
  ack.incarnation = me_.incarnation;
  ack.nonce = nonce_;
  ack.listen_address = me_.listen_address;
  transcript t{hi,    h.version_min,   h.version_max, h.node_id, h.incarnation,
               my_id, me_.incarnation, client_nonce_, nonce_};
  const mac_t mine = compute_mac(secrets_.current, server_label, t);
  ack.mac.assign(mine.begin(), mine.end());
  return ack;
}

result<void> server_handshake::on_proof(const proof& p) {
  if (!helloed_) return error{errc::auth_failed, "proof before hello"};
  transcript t{peer_.version,   offered_min_,      offered_max_,
               peer_.node_id,   peer_.incarnation, node_id_of(me_.node_name),
               me_.incarnation, client_nonce_,     nonce_};
  if (p.mac.size() != mac_bytes || !accepted(secrets_, client_label, t, p.mac))
    return error{
        errc::auth_failed,
        "client " + peer_.node_name + " (" + peer_.listen_address +
            ") failed authentication: its proof matches no accepted cluster secret"};
  return ok();
}

} // namespace troupe::transport
