// The wire format: envelopes and handshake messages as Cap'n Proto flat
// arrays, and bounded decoding of frames from the network.
//
// Decoding validates each message's segment table itself before Cap'n Proto
// sees the bytes, then reads through capnp::FlatArrayMessageReader with the
// traversal and nesting limits of `decode_limits`. Cap'n Proto reports bad
// input by throwing kj::Exception; `to_error` below is the one place that
// turns it into a troupe::error.
//
// Cap'n Proto is not self-describing: any struct can be read as any other.
// So that an envelope frame is never mistaken for a handshake message (or
// the reverse), every struct we decode must be at least as large as its
// protocol-version-1 layout; fields are only ever added (wire.capnp), so a
// genuine message from any peer we can talk to always is.

#include "troupe/transport/wire.hpp"

#include "schema/wire.capnp.h"

#include <algorithm>
#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <kj/exception.h>
#include <memory>
#include <string>
#include <utility>

namespace troupe::transport {

uint64_t node_id_of(std::string_view node_name) noexcept {
  uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a 64 offset basis
  for (char c : node_name) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL; // FNV-1a 64 prime
  }
  return h;
}

namespace {

namespace w = troupe::transport::wire;
constexpr size_t word_bytes = sizeof(capnp::word);

static_assert(w::PROTOCOL_VERSION == protocol_version,
              "wire.capnp and wire.hpp disagree");
static_assert(w::MIN_PROTOCOL_VERSION == min_protocol_version,
              "wire.capnp and wire.hpp disagree");
static_assert(static_cast<uint16_t>(w::Kind::CREDIT) ==
                  static_cast<uint16_t>(envelope_kind::credit),
              "wire.capnp Kind and envelope_kind disagree");
constexpr uint16_t max_kind = static_cast<uint16_t>(envelope_kind::credit);

/// Longest Data/Text a Cap'n Proto list can hold (29-bit element count).
constexpr size_t max_capnp_list = (size_t{1} << 29) - 1;

constexpr size_t words_for(size_t bytes) {
  return (bytes + word_bytes - 1) / word_bytes;
}

template <class T> constexpr size_t struct_words() {
  return size_t{T::_capnpPrivate::dataWordSize} + T::_capnpPrivate::pointerCount;
}

uint32_t load_le32(const std::byte* p) noexcept {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

void store_le32(std::byte* p, uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<std::byte>(v >> (8 * i));
}

[[noreturn]] void encode_bug(const kj::Exception& e) {
  // Encoding our own well-formed values cannot fail; if it does, it is a bug.
  std::fprintf(stderr, "troupe: wire encode failed: %s\n", e.getDescription().cStr());
  std::abort();
}

// -- decoding helpers ---------------------------------------------------------------

/// "message 2 at byte 48" (the position used in every decode error).
std::string where(size_t index, size_t offset) {
  return "message " + std::to_string(index) + " at byte " + std::to_string(offset);
}

/// The one conversion of Cap'n Proto's exceptions into troupe errors.
error to_error(const kj::Exception& e, size_t index, size_t offset) {
  std::string what = e.getDescription().cStr();
  bool limit = what.find("traversal limit") != std::string::npos;
  return error{limit ? errc::too_large : errc::malformed,
               where(index, offset) + ": " + (limit ? "" : "invalid Cap'n Proto data: ") +
                   what};
}

/// A frame's bytes as 8-byte aligned words: the frame itself when it is
/// aligned (the usual case), else an aligned copy.
class aligned_frame {
public:
  explicit aligned_frame(std::span<const std::byte> frame) : original_(frame) {
    if (reinterpret_cast<uintptr_t>(frame.data()) % alignof(capnp::word) == 0) {
      bytes_ = frame.data();
    } else {
      copy_ = std::make_unique<capnp::word[]>(words_for(frame.size()));
      std::memcpy(copy_.get(), frame.data(), frame.size());
      bytes_ = reinterpret_cast<const std::byte*>(copy_.get());
    }
  }
  const std::byte* data() const noexcept { return bytes_; }
  size_t size() const noexcept { return original_.size(); }
  /// `p` (inside the aligned bytes) as the same position in the original frame.
  const std::byte* to_original(const std::byte* p) const noexcept {
    return original_.data() + (p - bytes_);
  }

private:
  std::span<const std::byte> original_;
  const std::byte* bytes_ = nullptr;
  std::unique_ptr<capnp::word[]> copy_;
};

/// Validates the segment table of the message at `offset` and returns its
/// words (table and segments) or an error naming what was wrong.
result<kj::ArrayPtr<const capnp::word>> message_at(const aligned_frame& f, size_t offset,
                                                   size_t index,
                                                   const decode_limits& limits) {
  const size_t remaining = f.size() - offset;
  if (remaining < word_bytes)
    return error{errc::malformed, where(index, offset) + ": truncated segment table (" +
                                      std::to_string(remaining) + " bytes left)"};
  const std::byte* p = f.data() + offset;
  const uint64_t segments = uint64_t{load_le32(p)} + 1;
  if (segments > limits.max_segments)
    return error{errc::too_large, where(index, offset) + ": " + std::to_string(segments) +
                                      " segments (limit " +
                                      std::to_string(limits.max_segments) + ")"};
  const size_t table_bytes = (segments / 2 + 1) * word_bytes;
  if (table_bytes > remaining)
    return error{errc::malformed, where(index, offset) + ": truncated segment table (" +
                                      std::to_string(segments) + " segments need " +
                                      std::to_string(table_bytes) + " bytes, " +
                                      std::to_string(remaining) + " left)"};
  const uint64_t room_words = (remaining - table_bytes) / word_bytes;
  uint64_t total_words = 0;
  for (uint64_t s = 0; s < segments; ++s) {
    const uint32_t size = load_le32(p + 4 + 4 * s);
    if (s == 0 && size == 0)
      return error{errc::malformed,
                   where(index, offset) + ": segment 0 is empty (no root pointer)"};
    total_words += size;
    if (total_words > room_words)
      return error{
          errc::malformed,
          where(index, offset) + ": segment " + std::to_string(s) + " of " +
              std::to_string(size) + " words extends past the end of the frame (" +
              std::to_string(room_words) + " words left after the segment table)"};
  }
  return kj::ArrayPtr<const capnp::word>(reinterpret_cast<const capnp::word*>(p),
                                         table_bytes / word_bytes + total_words);
}

/// True when `s` is at least as large as T's protocol-version-1 layout.
template <class T> bool has_layout(capnp::AnyStruct::Reader s) {
  return s.getDataSection().size() >=
             size_t{T::_capnpPrivate::dataWordSize} * word_bytes &&
         s.getPointerSection().size() >= T::_capnpPrivate::pointerCount;
}

capnp::ReaderOptions reader_options(const decode_limits& limits) {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = limits.traversal_limit_words;
  o.nestingLimit = limits.nesting_limit;
  return o;
}

wire_ref from_wire(w::ActorRef::Reader r) {
  return {r.getNode(), r.getIncarnation(), r.getActor()};
}

/// Decodes one envelope into `v` (views into the aligned frame); returns
/// an error, or none. Every field of `v` is overwritten (`v` is reused for
/// the messages of a frame: envelope_view is large, so no copies of it).
/// Throws kj::Exception for bad Cap'n Proto data; the caller converts it.
error read_envelope(capnp::MessageReader& reader, const decode_limits& limits,
                    size_t index, size_t offset, envelope_view& v) {
  auto any = reader.getRoot<capnp::AnyStruct>();
  if (!has_layout<w::Envelope>(any))
    return error{errc::malformed,
                 where(index, offset) + ": root is not an Envelope (struct too small)"};
  auto e = any.as<w::Envelope>();
  const auto kind = static_cast<uint16_t>(e.getKind());
  if (kind > max_kind)
    return error{errc::malformed, where(index, offset) + ": unknown envelope kind " +
                                      std::to_string(kind)};
  v.header.kind = static_cast<envelope_kind>(kind);
  v.header.bulk_size = e.getBulkSize();
  if (v.header.bulk_size > limits.max_bulk_bytes)
    return error{errc::too_large, where(index, offset) + ": bulk size " +
                                      std::to_string(v.header.bulk_size) +
                                      " bytes (limit " +
                                      std::to_string(limits.max_bulk_bytes) + ")"};
  auto types = e.getTypeIds();
  if (types.size() > max_type_ids)
    return error{errc::too_large, where(index, offset) + ": " +
                                      std::to_string(types.size()) + " type ids (limit " +
                                      std::to_string(max_type_ids) + ")"};
  auto payload = e.getPayload();
  if (payload.size() > limits.max_payload_bytes)
    return error{errc::too_large, where(index, offset) + ": payload of " +
                                      std::to_string(payload.size()) + " bytes (limit " +
                                      std::to_string(limits.max_payload_bytes) + ")"};
  auto tenant = e.getTenant();
  if (tenant.size() > limits.max_tenant_bytes)
    return error{errc::too_large, where(index, offset) + ": tenant of " +
                                      std::to_string(tenant.size()) + " bytes (limit " +
                                      std::to_string(limits.max_tenant_bytes) + ")"};
  v.type_count = types.size();
  for (size_t i = 0; i < v.type_count; ++i)
    v.type_ids[i] = types[static_cast<unsigned>(i)];
  v.payload = {reinterpret_cast<const std::byte*>(payload.begin()), payload.size()};
  v.tenant = {tenant.begin(), tenant.size()};
  v.header.sender = from_wire(e.getSender()); // absent: all zero
  v.header.receiver = from_wire(e.getReceiver());
  v.header.correlation = e.getCorrelation();
  v.header.trace_hi = e.getTraceHi();
  v.header.trace_lo = e.getTraceLo();
  v.header.span_id = e.getSpanId();
  v.header.sampled = e.getSampled();
  return {};
}

// -- encoding helpers ---------------------------------------------------------------

/// A MessageBuilder whose first segment is a zeroed region at the end of a
/// frame buffer, so an envelope is built in place. Further segments (only
/// when the size estimate was short) come from the heap.
class in_place_builder final : public capnp::MessageBuilder {
public:
  explicit in_place_builder(kj::ArrayPtr<capnp::word> first) : first_(first) {}
  kj::ArrayPtr<capnp::word> allocateSegment(unsigned minimum) override {
    if (!first_taken_ && minimum <= first_.size()) {
      first_taken_ = true;
      return first_;
    }
    auto seg = kj::heapArray<capnp::word>(std::max<size_t>(minimum, 1024));
    std::memset(seg.begin(), 0, seg.size() * word_bytes);
    auto ptr = seg.asPtr();
    more_.push_back(kj::mv(seg));
    return ptr;
  }
  const capnp::word* first() const noexcept { return first_.begin(); }

private:
  kj::ArrayPtr<capnp::word> first_;
  bool first_taken_ = false;
  std::vector<kj::Array<capnp::word>> more_;
};

void set_ref(w::ActorRef::Builder b, const wire_ref& r) {
  b.setNode(r.node);
  b.setIncarnation(r.incarnation);
  b.setActor(r.actor);
}

template <class Builder> void set_text(Builder&& init, std::string_view s) {
  // init(size) allocates size + 1 zeroed bytes (the NUL is already there).
  if (s.empty()) return;
  auto t = init(static_cast<unsigned>(s.size()));
  std::memcpy(t.begin(), s.data(), s.size());
}

template <class Builder> void set_data(Builder&& init, std::span<const std::byte> d) {
  if (d.empty()) return;
  auto t = init(static_cast<unsigned>(d.size()));
  std::memcpy(t.begin(), d.data(), d.size());
}

} // namespace

// -- frame_writer -------------------------------------------------------------------

void frame_writer::append(const envelope_header& h, std::span<const uint64_t> type_ids,
                          std::string_view tenant, std::span<const std::byte> payload) {
  TROUPE_ASSERT(type_ids.size() <= max_type_ids, "more type ids than max_type_ids");
  TROUPE_ASSERT(payload.size() <= max_capnp_list,
                "inline payload over 512 MiB: send it as a bulk transfer");
  TROUPE_ASSERT(tenant.size() < max_capnp_list, "tenant over 512 MiB");
  const bool sender = h.sender != wire_ref{};
  const bool receiver = h.receiver != wire_ref{};
  // Exact size of the single segment: root pointer, Envelope, its parts.
  const size_t words = 1 + struct_words<w::Envelope>() +
                       (sender + receiver) * struct_words<w::ActorRef>() +
                       type_ids.size() + words_for(payload.size()) +
                       (tenant.empty() ? 0 : words_for(tenant.size() + 1));
  const size_t start = buf_.size();
  // Segment table (one segment: count-1 = 0, then the size) and the segment,
  // zeroed as Cap'n Proto requires.
  buf_.resize(start + word_bytes + words * word_bytes);
  auto* first = reinterpret_cast<capnp::word*>(buf_.data() + start + word_bytes);
  size_t used_words = 0;
  try {
    in_place_builder b(kj::arrayPtr(first, words));
    auto e = b.initRoot<w::Envelope>();
    if (sender) set_ref(e.initSender(), h.sender);
    if (receiver) set_ref(e.initReceiver(), h.receiver);
    e.setKind(static_cast<w::Kind>(h.kind));
    e.setCorrelation(h.correlation);
    if (!type_ids.empty()) {
      auto t = e.initTypeIds(static_cast<unsigned>(type_ids.size()));
      for (size_t i = 0; i < type_ids.size(); ++i)
        t.set(static_cast<unsigned>(i), type_ids[i]);
    }
    set_data([&](unsigned n) { return e.initPayload(n); }, payload);
    e.setTraceHi(h.trace_hi);
    e.setTraceLo(h.trace_lo);
    e.setSpanId(h.span_id);
    e.setSampled(h.sampled);
    set_text([&](unsigned n) { return e.initTenant(n); }, tenant);
    e.setBulkSize(h.bulk_size);

    auto segments = b.getSegmentsForOutput();
    if (segments.size() == 1 && segments[0].begin() == b.first()) {
      used_words = segments[0].size();
    } else {
      // The estimate was short (never expected): write the general form.
      auto flat = capnp::messageToFlatArray(segments);
      buf_.resize(start + flat.size() * word_bytes);
      std::memcpy(buf_.data() + start, flat.begin(), flat.size() * word_bytes);
      ++count_;
      return;
    }
  } catch (const kj::Exception& e) {
    encode_bug(e);
  }
  std::memset(buf_.data() + start, 0, 4); // segment count - 1 = 0
  store_le32(buf_.data() + start + 4, static_cast<uint32_t>(used_words));
  buf_.resize(start + word_bytes + used_words * word_bytes);
  ++count_;
}

// -- decode_frame -------------------------------------------------------------------

result<size_t>
decode_frame(std::span<const std::byte> frame, const decode_limits& limits,
             const std::function<void(const envelope_view&)>& on_envelope) {
  if (frame.size() > limits.max_frame_bytes)
    return error{errc::too_large, "frame of " + std::to_string(frame.size()) +
                                      " bytes (limit " +
                                      std::to_string(limits.max_frame_bytes) + ")"};
  if (frame.empty()) return error{errc::malformed, "empty frame"};
  const aligned_frame f(frame);
  const auto options = reader_options(limits);
  size_t offset = 0;
  size_t index = 0;
  envelope_view v;
  while (offset < f.size()) {
    auto words = message_at(f, offset, index, limits);
    if (!words) return std::move(words).err();
    error failed;
    try {
      capnp::FlatArrayMessageReader reader(*words, options);
      failed = read_envelope(reader, limits, index, offset, v);
    } catch (const kj::Exception& e) {
      failed = to_error(e, index, offset);
    }
    if (failed) return failed;
    // Views into an aligned copy point back into the caller's frame.
    if (!v.payload.empty())
      v.payload = {f.to_original(v.payload.data()), v.payload.size()};
    if (!v.tenant.empty())
      v.tenant = {reinterpret_cast<const char*>(
                      f.to_original(reinterpret_cast<const std::byte*>(v.tenant.data()))),
                  v.tenant.size()};
    on_envelope(v);
    offset += words->size() * word_bytes;
    ++index;
  }
  return index;
}

// -- handshake ----------------------------------------------------------------------

namespace {

std::vector<std::byte> to_bytes(capnp::Data::Reader d) {
  const auto* p = reinterpret_cast<const std::byte*>(d.begin());
  return {p, p + d.size()};
}

struct handshake_reader {
  const decode_limits& limits;

  result<std::string> text(capnp::Text::Reader t, const char* field) const {
    if (t.size() > limits.max_text_bytes)
      return error{errc::too_large, std::string{"handshake "} + field + " of " +
                                        std::to_string(t.size()) + " bytes (limit " +
                                        std::to_string(limits.max_text_bytes) + ")"};
    return std::string{t.begin(), t.size()};
  }

  static result<std::vector<std::byte>> exact(capnp::Data::Reader d, const char* field) {
    if (d.size() != 32)
      return error{errc::malformed, std::string{"handshake "} + field + " of " +
                                        std::to_string(d.size()) +
                                        " bytes (must be exactly 32)"};
    return to_bytes(d);
  }

  template <class T>
  static result<void> layout(capnp::AnyStruct::Reader s, const char* what) {
    if (!has_layout<T>(s))
      return error{errc::malformed, std::string{"handshake "} + what +
                                        " is too small for its protocol layout"};
    return ok();
  }

  result<handshake_message> read(w::HandshakeMessage::Reader m) const {
    switch (m.which()) {
    case w::HandshakeMessage::HELLO: {
      auto r = m.getHello();
      if (auto l = layout<w::Hello>(r, "hello"); !l) return std::move(l).err();
      hello h;
      h.version_min = r.getVersionMin();
      h.version_max = r.getVersionMax();
      h.node_id = r.getNodeId();
      h.incarnation = r.getIncarnation();
      auto name = text(r.getNodeName(), "node name");
      if (!name) return std::move(name).err();
      auto nonce = exact(r.getNonce(), "nonce");
      if (!nonce) return std::move(nonce).err();
      auto addr = text(r.getListenAddress(), "listen address");
      if (!addr) return std::move(addr).err();
      h.node_name = std::move(*name);
      h.nonce = std::move(*nonce);
      h.listen_address = std::move(*addr);
      return handshake_message{std::move(h)};
    }
    case w::HandshakeMessage::HELLO_ACK: {
      auto r = m.getHelloAck();
      if (auto l = layout<w::HelloAck>(r, "hello_ack"); !l) return std::move(l).err();
      hello_ack a;
      a.version = r.getVersion();
      a.node_id = r.getNodeId();
      a.incarnation = r.getIncarnation();
      auto name = text(r.getNodeName(), "node name");
      if (!name) return std::move(name).err();
      auto nonce = exact(r.getNonce(), "nonce");
      if (!nonce) return std::move(nonce).err();
      auto mac = exact(r.getMac(), "mac");
      if (!mac) return std::move(mac).err();
      auto addr = text(r.getListenAddress(), "listen address");
      if (!addr) return std::move(addr).err();
      a.node_name = std::move(*name);
      a.nonce = std::move(*nonce);
      a.mac = std::move(*mac);
      a.listen_address = std::move(*addr);
      return handshake_message{std::move(a)};
    }
    case w::HandshakeMessage::PROOF: {
      auto r = m.getProof();
      if (auto l = layout<w::Proof>(r, "proof"); !l) return std::move(l).err();
      auto mac = exact(r.getMac(), "mac");
      if (!mac) return std::move(mac).err();
      return handshake_message{proof{std::move(*mac)}};
    }
    case w::HandshakeMessage::VERDICT: {
      auto r = m.getVerdict();
      if (auto l = layout<w::Verdict>(r, "verdict"); !l) return std::move(l).err();
      auto reason = text(r.getReason(), "reason");
      if (!reason) return std::move(reason).err();
      return handshake_message{verdict{r.getAccepted(), std::move(*reason)}};
    }
    }
    return error{errc::malformed, "unknown handshake message kind " +
                                      std::to_string(static_cast<unsigned>(m.which()))};
  }
};

} // namespace

std::vector<std::byte> encode_handshake(const handshake_message& m) {
  try {
    capnp::MallocMessageBuilder b(256);
    auto root = b.initRoot<w::HandshakeMessage>();
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, hello>) {
            auto r = root.initHello();
            r.setVersionMin(v.version_min);
            r.setVersionMax(v.version_max);
            set_text([&](unsigned n) { return r.initNodeName(n); }, v.node_name);
            r.setNodeId(v.node_id);
            r.setIncarnation(v.incarnation);
            set_data([&](unsigned n) { return r.initNonce(n); }, v.nonce);
            set_text([&](unsigned n) { return r.initListenAddress(n); },
                     v.listen_address);
          } else if constexpr (std::is_same_v<T, hello_ack>) {
            auto r = root.initHelloAck();
            r.setVersion(v.version);
            set_text([&](unsigned n) { return r.initNodeName(n); }, v.node_name);
            r.setNodeId(v.node_id);
            r.setIncarnation(v.incarnation);
            set_data([&](unsigned n) { return r.initNonce(n); }, v.nonce);
            set_data([&](unsigned n) { return r.initMac(n); }, v.mac);
            set_text([&](unsigned n) { return r.initListenAddress(n); },
                     v.listen_address);
          } else if constexpr (std::is_same_v<T, proof>) {
            auto r = root.initProof();
            set_data([&](unsigned n) { return r.initMac(n); }, v.mac);
          } else {
            auto r = root.initVerdict();
            r.setAccepted(v.accepted);
            set_text([&](unsigned n) { return r.initReason(n); }, v.reason);
          }
        },
        m);
    auto flat = capnp::messageToFlatArray(b);
    auto bytes = flat.asBytes();
    const auto* p = reinterpret_cast<const std::byte*>(bytes.begin());
    return {p, p + bytes.size()};
  } catch (const kj::Exception& e) {
    encode_bug(e);
  }
}

result<handshake_message> decode_handshake(std::span<const std::byte> frame,
                                           const decode_limits& limits) {
  if (frame.size() > limits.max_frame_bytes)
    return error{errc::too_large, "handshake frame of " + std::to_string(frame.size()) +
                                      " bytes (limit " +
                                      std::to_string(limits.max_frame_bytes) + ")"};
  if (frame.empty()) return error{errc::malformed, "empty handshake frame"};
  const aligned_frame f(frame);
  auto words = message_at(f, 0, 0, limits);
  if (!words) return std::move(words).err();
  const size_t end = words->size() * word_bytes;
  if (end != f.size())
    return error{errc::malformed, "handshake frame has " +
                                      std::to_string(f.size() - end) +
                                      " trailing bytes after its message (at byte " +
                                      std::to_string(end) + ")"};
  try {
    capnp::FlatArrayMessageReader reader(*words, reader_options(limits));
    auto any = reader.getRoot<capnp::AnyStruct>();
    if (!has_layout<w::HandshakeMessage>(any))
      return error{errc::malformed,
                   where(0, 0) + ": root is not a HandshakeMessage (struct too small)"};
    return handshake_reader{limits}.read(any.as<w::HandshakeMessage>());
  } catch (const kj::Exception& e) {
    return to_error(e, 0, 0);
  }
}

} // namespace troupe::transport
