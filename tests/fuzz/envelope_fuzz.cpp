// libFuzzer target: the transport's frame and handshake decoders
// (troupe/transport/wire.hpp) must return envelopes or an error for any
// input, never crash, hang, throw or read out of bounds; whatever decodes
// must encode and decode back to the same fields.
//
// The whole input is one frame, given to decode_frame (as is, and from an
// unaligned copy) and to decode_handshake, with the default limits.

#include "troupe/transport/wire.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace troupe::transport;

struct owned_envelope {
  envelope_header header;
  std::vector<uint64_t> types;
  std::string tenant;
  std::vector<std::byte> payload;

  bool operator==(const owned_envelope& o) const {
    const auto& a = header;
    const auto& b = o.header;
    return a.sender == b.sender && a.receiver == b.receiver && a.kind == b.kind &&
           a.correlation == b.correlation && a.trace_hi == b.trace_hi &&
           a.trace_lo == b.trace_lo && a.span_id == b.span_id && a.sampled == b.sampled &&
           a.bulk_size == b.bulk_size && types == o.types && tenant == o.tenant &&
           payload == o.payload;
  }
};

troupe::result<size_t> decode_owned(std::span<const std::byte> frame,
                                    std::vector<owned_envelope>& out) {
  return decode_frame(frame, decode_limits{}, [&](const envelope_view& v) {
    // Views must lie inside the frame.
    if (!v.payload.empty() &&
        (v.payload.data() < frame.data() ||
         v.payload.data() + v.payload.size() > frame.data() + frame.size()))
      __builtin_trap();
    if (v.type_count > max_type_ids) __builtin_trap();
    out.push_back({v.header,
                   {v.types().begin(), v.types().end()},
                   std::string{v.tenant},
                   {v.payload.begin(), v.payload.end()}});
  });
}

void check_frame(std::span<const std::byte> in) {
  std::vector<owned_envelope> got;
  auto r = decode_owned(in, got);
  if (r.ok() && *r != got.size()) __builtin_trap();
  if (!r.ok() && r.err().message().empty()) __builtin_trap(); // errors say what
  // The same bytes at an unaligned address decode the same way.
  if (!in.empty()) {
    auto copy = std::make_unique<std::byte[]>(in.size() + 1);
    std::memcpy(copy.get() + 1, in.data(), in.size());
    std::vector<owned_envelope> again;
    auto r2 = decode_owned({copy.get() + 1, in.size()}, again);
    if (r2.ok() != r.ok() || !(again == got)) __builtin_trap();
    if (!r.ok() && r2.err().code() != r.err().code()) __builtin_trap();
  }
  if (!r.ok()) return;
  // Re-encode what decoded; it must decode to the same envelopes.
  frame_writer w;
  for (const auto& e : got)
    w.append(e.header, e.types, e.tenant, e.payload);
  std::vector<owned_envelope> back;
  auto r3 = decode_owned(w.bytes(), back);
  if (!r3.ok() || !(back == got)) __builtin_trap();
}

bool same(const handshake_message& a, const handshake_message& b) {
  if (a.index() != b.index()) return false;
  if (auto* x = std::get_if<hello>(&a)) {
    auto& y = std::get<hello>(b);
    return x->version_min == y.version_min && x->version_max == y.version_max &&
           x->node_name == y.node_name && x->node_id == y.node_id &&
           x->incarnation == y.incarnation && x->nonce == y.nonce &&
           x->listen_address == y.listen_address;
  }
  if (auto* x = std::get_if<hello_ack>(&a)) {
    auto& y = std::get<hello_ack>(b);
    return x->version == y.version && x->node_name == y.node_name &&
           x->node_id == y.node_id && x->incarnation == y.incarnation &&
           x->nonce == y.nonce && x->mac == y.mac &&
           x->listen_address == y.listen_address;
  }
  if (auto* x = std::get_if<proof>(&a)) return x->mac == std::get<proof>(b).mac;
  auto& x = std::get<verdict>(a);
  auto& y = std::get<verdict>(b);
  return x.accepted == y.accepted && x.reason == y.reason;
}

void check_handshake(std::span<const std::byte> in) {
  auto r = decode_handshake(in, decode_limits{});
  if (!r.ok()) {
    if (r.err().message().empty()) __builtin_trap();
    return;
  }
  auto back = decode_handshake(encode_handshake(*r), decode_limits{});
  if (!back.ok() || !same(*r, *back)) __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> in{reinterpret_cast<const std::byte*>(data), size};
  check_frame(in);
  check_handshake(in);
  return 0;
}
