#pragma once
/// The wire format (transport/schema/wire.capnp) as plain C++: encoding of
/// envelopes and handshake messages into frames, and bounded decoding of
/// frames that came from the network.
///
/// A frame is the payload of one UCX active message: one or more Cap'n Proto
/// messages in the standard flat-array framing, back to back. Decoding
/// never trusts the bytes: the frame size, each message's segment table,
/// Cap'n Proto's traversal and nesting limits, the number of type ids and
/// the payload size are all bounded by `decode_limits`, and anything outside
/// them is an error value (never an exception, never a crash).
///
/// Pure code: no I/O, no actors, no clock. Thread-compatible.

#include "troupe/runtime/result.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace troupe::transport {

/// Errors of the transport module (category "transport").
enum class errc {
  ok = 0,
  malformed,         ///< a frame or message failed to decode: dropped
  too_large,         ///< a frame, message or field exceeds its limit: dropped
  protocol_mismatch, ///< the peer speaks an incompatible protocol version
  auth_failed,       ///< the peer failed (or we failed) authentication
  unknown_type,      ///< a message-type id this node has not registered
  unreachable,       ///< no route or connection to the peer
  ucx_error,         ///< UCX reported an error (message has the status)
};

const std::error_category& transport_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), transport_category()};
}

} // namespace troupe::transport

template <> struct std::is_error_code_enum<troupe::transport::errc> : std::true_type {};

namespace troupe::transport {

/// Protocol versions this build speaks (wire.capnp protocolVersion).
inline constexpr uint16_t protocol_version = 1;
inline constexpr uint16_t min_protocol_version = 1;

/// 64-bit id of a node name (FNV-1a); what envelopes carry.
[[nodiscard]] uint64_t node_id_of(std::string_view node_name) noexcept;

/// An actor somewhere in the cluster; actor 0 is "nobody".
struct wire_ref {
  uint64_t node = 0;
  uint64_t incarnation = 0;
  uint64_t actor = 0;
  friend bool operator==(const wire_ref&, const wire_ref&) = default;
};

/// wire.capnp Kind, same numbering.
enum class envelope_kind : uint16_t {
  message = 0,
  request = 1,
  response = 2,
  down = 3,
  exit = 4,
  link = 5,
  unlink = 6,
  monitor = 7,
  demonitor = 8,
  unknown_type = 9,
  credit = 10,
};

/// Most elements a message may have on the wire.
inline constexpr size_t max_type_ids = 16;

/// The fixed part of an envelope (everything except type ids and payload).
struct envelope_header {
  wire_ref sender;
  wire_ref receiver;
  envelope_kind kind = envelope_kind::message;
  uint64_t correlation = 0;
  uint64_t trace_hi = 0;
  uint64_t trace_lo = 0;
  uint64_t span_id = 0;
  bool sampled = false;
  uint64_t bulk_size = 0;
};

/// A decoded envelope. Views point into the frame it was decoded from and
/// are valid only while that frame's bytes are.
struct envelope_view {
  envelope_header header;
  std::array<uint64_t, max_type_ids> type_ids{};
  size_t type_count = 0;
  std::string_view tenant;
  std::span<const std::byte> payload;
  std::span<const uint64_t> types() const noexcept {
    return {type_ids.data(), type_count};
  }
};

/// Bounds applied to every decode of network input.
struct decode_limits {
  size_t max_frame_bytes = size_t{64} << 20;           ///< whole frame
  size_t max_payload_bytes = size_t{64} << 20;         ///< inline payload
  uint64_t max_bulk_bytes = uint64_t{16} << 30;        ///< announced rendezvous size
  size_t max_segments = 16;                            ///< per Cap'n Proto message
  uint64_t traversal_limit_words = uint64_t{16} << 20; ///< Cap'n Proto reader
  int nesting_limit = 16;                              ///< Cap'n Proto reader
  size_t max_tenant_bytes = 256;
  size_t max_text_bytes = 1024; ///< names, addresses, reasons
};

/// Appends envelopes to a growing frame buffer. Reuse one writer per
/// outgoing batch: `clear()` keeps the capacity.
class frame_writer {
public:
  /// Appends one envelope. Aborts (a bug) when more than max_type_ids types
  /// are given.
  void append(const envelope_header& h, std::span<const uint64_t> type_ids,
              std::string_view tenant, std::span<const std::byte> payload);
  const std::vector<std::byte>& bytes() const noexcept { return buf_; }
  size_t size() const noexcept { return buf_.size(); }
  size_t count() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  void clear() noexcept {
    buf_.clear();
    count_ = 0;
  }
  /// Makes room for `n` bytes (kept across clear(), not across take()).
  void reserve(size_t n) { buf_.reserve(n); }
  /// Hands the bytes over and starts an empty frame.
  std::vector<std::byte> take() noexcept {
    count_ = 0;
    return std::exchange(buf_, {});
  }

private:
  std::vector<std::byte> buf_;
  size_t count_ = 0;
};

/// Decodes every envelope of `frame` in order, calling `on_envelope` for
/// each. Stops at the first malformed message and returns its error
/// (envelopes before it were delivered); returns the count on success.
[[nodiscard]] result<size_t>
decode_frame(std::span<const std::byte> frame, const decode_limits& limits,
             const std::function<void(const envelope_view&)>& on_envelope);

// -- handshake -------------------------------------------------------------------

struct hello {
  uint16_t version_min = min_protocol_version;
  uint16_t version_max = protocol_version;
  std::string node_name;
  uint64_t node_id = 0;
  uint64_t incarnation = 0;
  std::vector<std::byte> nonce;
  std::string listen_address;
};

struct hello_ack {
  uint16_t version = protocol_version;
  std::string node_name;
  uint64_t node_id = 0;
  uint64_t incarnation = 0;
  std::vector<std::byte> nonce;
  std::vector<std::byte> mac;
  std::string listen_address;
};

struct proof {
  std::vector<std::byte> mac;
};

struct verdict {
  bool accepted = false;
  std::string reason;
};

/// One handshake step (wire.capnp HandshakeMessage).
using handshake_message = std::variant<hello, hello_ack, proof, verdict>;

/// One handshake message as a frame.
[[nodiscard]] std::vector<std::byte> encode_handshake(const handshake_message& m);

/// Decodes a handshake frame (exactly one message); bounded like
/// decode_frame, and nonces/MACs must be exactly 32 bytes.
[[nodiscard]] result<handshake_message> decode_handshake(std::span<const std::byte> frame,
                                                         const decode_limits& limits);

} // namespace troupe::transport
