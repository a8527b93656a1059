#include "troupe/runtime/errc.hpp"
#include "troupe/transport/wire.hpp"

#include <cstring>
#include <doctest/doctest.h>
#include <memory>
#include <string>
#include <vector>

using namespace troupe::transport;

namespace {

using bytes = std::vector<std::byte>;

bytes payload_of(size_t n, unsigned seed = 1) {
  bytes b(n);
  for (size_t i = 0; i < n; ++i)
    b[i] = static_cast<std::byte>((i * 131 + seed * 7) & 0xff);
  return b;
}

envelope_header full_header(uint64_t k = 0) {
  envelope_header h;
  h.sender = {0x1111 + k, 0x2222 + k, 0x3333 + k};
  h.receiver = {0x4444 + k, 0x5555 + k, 0x6666 + k};
  h.kind = envelope_kind::request;
  h.correlation = 0xfeedface12345678 + k;
  h.trace_hi = 0x0123456789abcdef;
  h.trace_lo = 0xfedcba9876543210 + k;
  h.span_id = 0xabad1dea + k;
  h.sampled = true;
  h.bulk_size = 0;
  return h;
}

bool same_header(const envelope_header& a, const envelope_header& b) {
  return a.sender == b.sender && a.receiver == b.receiver && a.kind == b.kind &&
         a.correlation == b.correlation && a.trace_hi == b.trace_hi &&
         a.trace_lo == b.trace_lo && a.span_id == b.span_id && a.sampled == b.sampled &&
         a.bulk_size == b.bulk_size;
}

struct decoded {
  envelope_header header;
  std::vector<uint64_t> types;
  std::string tenant;
  bytes payload;
};

troupe::result<size_t> decode_all(std::span<const std::byte> frame,
                                  std::vector<decoded>& out,
                                  const decode_limits& limits = {}) {
  return decode_frame(frame, limits, [&](const envelope_view& v) {
    out.push_back({v.header,
                   {v.types().begin(), v.types().end()},
                   std::string{v.tenant},
                   {v.payload.begin(), v.payload.end()}});
  });
}

// Little-endian word access into a frame, for hand-built and patched input.
uint64_t word_at(const bytes& b, size_t word) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = v << 8 | static_cast<uint8_t>(b[word * 8 + i]);
  return v;
}
void set_word(bytes& b, size_t word, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    b[word * 8 + i] = static_cast<std::byte>(v >> (8 * i));
}
bytes words(std::initializer_list<uint64_t> ws) {
  bytes b(ws.size() * 8);
  size_t i = 0;
  for (uint64_t w : ws)
    set_word(b, i++, w);
  return b;
}

// Cap'n Proto pointers (encoding spec): struct and list pointers.
uint64_t struct_ptr(int32_t offset, uint16_t data_words, uint16_t ptrs) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(offset) << 2)) |
         static_cast<uint64_t>(data_words) << 32 | static_cast<uint64_t>(ptrs) << 48;
}
uint64_t list_ptr(int32_t offset, unsigned elem_size, uint32_t count) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(offset) << 2) | 1) |
         static_cast<uint64_t>(elem_size | count << 3) << 32;
}
uint64_t far_ptr(uint32_t landing_word, uint32_t segment) {
  return static_cast<uint64_t>(landing_word) << 3 | 2 |
         static_cast<uint64_t>(segment) << 32;
}
/// Segment table for one segment of `n` words.
uint64_t one_segment(uint32_t n) {
  return static_cast<uint64_t>(n) << 32;
}

// Envelope layout of protocol version 1 (6 data words, 5 pointers) in a
// one-segment message: word 0 table, word 1 root pointer, words 2-7 data,
// words 8-12 pointers (sender, receiver, typeIds, payload, tenant).
constexpr size_t env_data = 2;
constexpr size_t env_ptrs = 8;

bytes one_envelope(const envelope_header& h, std::span<const uint64_t> types = {},
                   std::string_view tenant = {},
                   std::span<const std::byte> payload = {}) {
  frame_writer w;
  w.append(h, types, tenant, payload);
  return w.bytes();
}

} // namespace

TEST_SUITE("transport.wire") {
  TEST_CASE("node ids are FNV-1a 64 of the name") {
    CHECK(node_id_of("") == 0xcbf29ce484222325ULL);
    CHECK(node_id_of("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(node_id_of("foobar") == 0x85944171f73967e8ULL);
    CHECK(node_id_of("node-1") != node_id_of("node-2"));
  }

  TEST_CASE("an envelope with every field set round-trips") {
    const auto h = full_header();
    const std::vector<uint64_t> types{7, 0xffffffffffffffff, 42};
    const auto payload = payload_of(1000);
    frame_writer w;
    w.append(h, types, "tenant-a", payload);
    CHECK(w.count() == 1);
    CHECK(w.size() % 8 == 0);
    std::vector<decoded> out;
    auto n = decode_all(w.bytes(), out);
    REQUIRE(n.ok());
    CHECK(*n == 1);
    REQUIRE(out.size() == 1);
    CHECK(same_header(out[0].header, h));
    CHECK(out[0].types == types);
    CHECK(out[0].tenant == "tenant-a");
    CHECK(out[0].payload == payload);
  }

  TEST_CASE("every kind, empty payloads, zero refs and bulk sizes round-trip") {
    frame_writer w;
    std::vector<envelope_header> sent;
    for (uint16_t k = 0; k <= static_cast<uint16_t>(envelope_kind::credit); ++k) {
      envelope_header h = k % 2 ? full_header(k) : envelope_header{};
      h.kind = static_cast<envelope_kind>(k);
      h.bulk_size = k * 1000003ULL;
      if (k == 4) h.receiver = {}; // anonymous parts are omitted on the wire
      sent.push_back(h);
      w.append(h, {}, {}, {});
    }
    std::vector<decoded> out;
    auto n = decode_all(w.bytes(), out);
    REQUIRE(n.ok());
    REQUIRE(out.size() == sent.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      CHECK(same_header(out[i].header, sent[i]));
      CHECK(out[i].payload.empty());
      CHECK(out[i].types.empty());
      CHECK(out[i].tenant.empty());
    }
  }

  TEST_CASE("many envelopes of varied sizes in one frame arrive in order") {
    frame_writer w;
    constexpr size_t count = 500;
    for (size_t i = 0; i < count; ++i) {
      std::vector<uint64_t> types(i % (max_type_ids + 1), i);
      auto payload = payload_of((i * 37) % 700, static_cast<unsigned>(i));
      w.append(full_header(i), types, std::string(i % 9, 't'), payload);
    }
    CHECK(w.count() == count);
    std::vector<decoded> out;
    auto n = decode_all(w.bytes(), out);
    REQUIRE(n.ok());
    CHECK(*n == count);
    REQUIRE(out.size() == count);
    for (size_t i = 0; i < count; ++i) {
      CHECK(same_header(out[i].header, full_header(i)));
      CHECK(out[i].types == std::vector<uint64_t>(i % (max_type_ids + 1), i));
      CHECK(out[i].tenant == std::string(i % 9, 't'));
      CHECK(out[i].payload == payload_of((i * 37) % 700, static_cast<unsigned>(i)));
    }
    // clear() starts a new frame.
    w.clear();
    CHECK(w.empty());
    CHECK(w.size() == 0);
    w.append(full_header(), {}, {}, {});
    out.clear();
    CHECK(decode_all(w.bytes(), out).value() == 1);
  }

  TEST_CASE("max_type_ids type ids and a payload at the limit decode") {
    std::vector<uint64_t> types(max_type_ids);
    for (size_t i = 0; i < types.size(); ++i)
      types[i] = i * 0x9e3779b97f4a7c15ULL;
    decode_limits limits;
    limits.max_payload_bytes = 4096;
    limits.max_tenant_bytes = 5;
    auto frame = one_envelope(full_header(), types, "12345", payload_of(4096));
    std::vector<decoded> out;
    REQUIRE(decode_all(frame, out, limits).ok());
    CHECK(out[0].types == types);
    CHECK(out[0].payload.size() == 4096);
  }

  TEST_CASE("views point into the caller's frame, aligned or not") {
    const auto payload = payload_of(64);
    auto frame = one_envelope(full_header(), {}, "ten", payload);
    for (size_t shift : {0, 1, 3}) {
      auto storage = std::make_unique<std::byte[]>(frame.size() + 8);
      std::byte* at = storage.get() + shift;
      std::memcpy(at, frame.data(), frame.size());
      int seen = 0;
      auto n = decode_frame({at, frame.size()}, {}, [&](const envelope_view& v) {
        ++seen;
        CHECK(v.payload.data() >= at);
        CHECK(v.payload.data() + v.payload.size() <= at + frame.size());
        CHECK(bytes(v.payload.begin(), v.payload.end()) == payload);
        CHECK(reinterpret_cast<const std::byte*>(v.tenant.data()) >= at);
        CHECK(v.tenant == "ten");
      });
      REQUIRE(n.ok());
      CHECK(seen == 1);
    }
  }

  TEST_CASE("a large payload is carried inline") {
    const auto payload = payload_of(3 << 20);
    auto frame = one_envelope(full_header(), {}, {}, payload);
    std::vector<decoded> out;
    REQUIRE(decode_all(frame, out).ok());
    CHECK(out[0].payload == payload);
  }

  TEST_CASE("a message of several segments (far pointers) decodes") {
    // Segment 0 holds only a far pointer to a landing pad in segment 1,
    // followed there by the Envelope (kind request, correlation 77).
    auto frame =
        words({uint64_t{1} | uint64_t{1} << 32, 12, far_ptr(0, 1), struct_ptr(0, 6, 5),
               /* data */ 1, 77, 0, 0, 0, 0, /* pointers */ 0, 0, 0, 0, 0});
    std::vector<decoded> out;
    auto n = decode_all(frame, out);
    REQUIRE(n.ok());
    REQUIRE(out.size() == 1);
    CHECK(out[0].header.kind == envelope_kind::request);
    CHECK(out[0].header.correlation == 77);
    CHECK(out[0].header.sender == wire_ref{});
  }

  TEST_CASE("every handshake message round-trips") {
    hello h{1, 3, "node-a", node_id_of("node-a"), 99, payload_of(32, 1), "10.0.0.1:7000"};
    hello_ack a{2,
                "node-b",
                node_id_of("node-b"),
                100,
                payload_of(32, 2),
                payload_of(32, 3),
                "10.0.0.2:7000"};
    proof p{payload_of(32, 4)};
    verdict v{false, "wrong secret"};
    verdict yes{true, ""};
    for (const handshake_message& m : std::vector<handshake_message>{h, a, p, v, yes}) {
      auto frame = encode_handshake(m);
      auto back = decode_handshake(frame, {});
      REQUIRE(back.ok());
      REQUIRE(back->index() == m.index());
      if (auto* x = std::get_if<hello>(&*back)) {
        CHECK(x->version_min == h.version_min);
        CHECK(x->version_max == h.version_max);
        CHECK(x->node_name == h.node_name);
        CHECK(x->node_id == h.node_id);
        CHECK(x->incarnation == h.incarnation);
        CHECK(x->nonce == h.nonce);
        CHECK(x->listen_address == h.listen_address);
      } else if (auto* y = std::get_if<hello_ack>(&*back)) {
        CHECK(y->version == a.version);
        CHECK(y->node_name == a.node_name);
        CHECK(y->node_id == a.node_id);
        CHECK(y->incarnation == a.incarnation);
        CHECK(y->nonce == a.nonce);
        CHECK(y->mac == a.mac);
        CHECK(y->listen_address == a.listen_address);
      } else if (auto* z = std::get_if<proof>(&*back)) {
        CHECK(z->mac == p.mac);
      } else {
        auto& w = std::get<verdict>(*back);
        auto& orig = std::get<verdict>(m);
        CHECK(w.accepted == orig.accepted);
        CHECK(w.reason == orig.reason);
      }
    }
  }

  TEST_CASE("envelopes before a malformed message are delivered") {
    frame_writer w;
    for (int i = 0; i < 3; ++i)
      w.append(full_header(i), {}, {}, payload_of(10));
    bytes frame = w.bytes();
    const size_t bad_at = frame.size();
    auto tail = words({one_segment(100), 0});
    frame.insert(frame.end(), tail.begin(), tail.end());
    std::vector<decoded> out;
    auto n = decode_all(frame, out);
    REQUIRE_FALSE(n.ok());
    CHECK(n.err().is(errc::malformed));
    CHECK(n.err().message().find("message 3 at byte " + std::to_string(bad_at)) !=
          std::string::npos);
    REQUIRE(out.size() == 3);
    for (int i = 0; i < 3; ++i)
      CHECK(same_header(out[i].header, full_header(i)));
  }

  TEST_CASE("hostile frames are rejected with the right error, never a crash") {
    struct hostile {
      std::string name;
      bytes frame;
      errc expected;
      decode_limits limits{};
    };
    std::vector<hostile> table;
    auto good = one_envelope(full_header(), std::vector<uint64_t>(max_type_ids, 5), "t",
                             payload_of(8));
    // Sanity of the layout the patches below rely on.
    REQUIRE(word_at(good, 0) == one_segment(static_cast<uint32_t>(good.size() / 8 - 1)));
    REQUIRE(word_at(good, 1) == struct_ptr(0, 6, 5));
    REQUIRE((word_at(good, env_ptrs + 2) >> 32) == (max_type_ids << 3 | 5));

    table.push_back({"empty frame", {}, errc::malformed});
    table.push_back({"half a segment table", bytes(4), errc::malformed});
    table.push_back({"segment count 2^32", words({0xffffffff, 0}), errc::too_large});
    table.push_back(
        {"segment count 17", words({16, 0, 0, 0, 0, 0, 0, 0, 0}), errc::too_large});
    table.push_back({"three segments, table cut short", words({2}), errc::malformed});
    table.push_back(
        {"segment 0 of zero words", words({one_segment(0)}), errc::malformed});
    table.push_back(
        {"segment beyond the frame", words({one_segment(100), 0, 0}), errc::malformed});
    table.push_back({"second segment beyond the frame",
                     words({1 | uint64_t{1} << 32, 5, struct_ptr(0, 0, 0)}),
                     errc::malformed});
    {
      bytes cut(good.begin(), good.end() - 8);
      table.push_back({"truncated segment", cut, errc::malformed});
      bytes odd(good.begin(), good.end() - 3);
      table.push_back({"frame not a whole number of words", odd, errc::malformed});
    }
    table.push_back({"garbage words",
                     words({one_segment(4), ~uint64_t{0}, 0xdeadbeefdeadbeef,
                            0x0123456789abcdef, 0xfedcba9876543210}),
                     errc::malformed});
    table.push_back({"root pointer pointing at itself",
                     words({one_segment(2), struct_ptr(-1, 6, 5), 0}), errc::malformed});
    table.push_back({"far pointer landing on itself",
                     words({one_segment(1), far_ptr(0, 0)}), errc::malformed});
    table.push_back({"far pointer to a missing segment",
                     words({one_segment(1), far_ptr(0, 7)}), errc::malformed});
    {
      // An envelope whose sender points back at the envelope: no loop is
      // followed, but nesting is bounded; with nesting_limit 1 even one
      // level below the root is refused.
      decode_limits shallow;
      shallow.nesting_limit = 1;
      table.push_back({"nesting deeper than the limit", good, errc::malformed, shallow});
    }
    {
      // typeIds: a list of 2^29-1 void elements (no bytes on the wire).
      auto bomb = good;
      set_word(bomb, env_ptrs + 2, list_ptr(0, 0, (1u << 29) - 1));
      table.push_back({"void list claiming 2^29 elements", bomb, errc::too_large});
      // payload: a byte list claiming 2^29-1 bytes.
      auto big = good;
      set_word(big, env_ptrs + 3, list_ptr(0, 2, (1u << 29) - 1));
      table.push_back({"byte list claiming 2^29 bytes", big, errc::malformed});
      // typeIds: a struct list whose tag claims 2^29 zero-sized elements.
      auto tagged =
          words({one_segment(1 + 11 + 1), struct_ptr(0, 6, 5), 0, 0, 0, 0, 0, 0, 0, 0,
                 list_ptr(2, 7, 0), 0, 0,
                 /* tag */ struct_ptr(static_cast<int32_t>((1u << 29) - 1), 0, 0)});
      table.push_back(
          {"struct list tag claiming 2^29 elements", tagged, errc::too_large});
    }
    {
      decode_limits tight;
      tight.traversal_limit_words = 8;
      auto frame = one_envelope(full_header(), {}, {}, payload_of(1024));
      table.push_back({"traversal over the limit", frame, errc::too_large, tight});
    }
    {
      decode_limits small;
      small.max_payload_bytes = 7;
      table.push_back({"payload over the limit", good, errc::too_large, small});
      table.push_back({"tenant over the limit",
                       one_envelope(full_header(), {}, std::string(257, 'x'), {}),
                       errc::too_large});
      auto many = good;
      set_word(many, env_ptrs + 2,
               (word_at(good, env_ptrs + 2) & 0xffffffff) | uint64_t{(17 << 3) | 5}
                                                                << 32);
      table.push_back({"17 type ids", many, errc::too_large});
      auto bulk = full_header();
      bulk.bulk_size = (uint64_t{16} << 30) + 1;
      table.push_back({"bulk size over the limit", one_envelope(bulk), errc::too_large});
      decode_limits tiny;
      tiny.max_frame_bytes = 64;
      table.push_back({"frame over max_frame_bytes",
                       one_envelope(full_header(), {}, {}, payload_of(100)),
                       errc::too_large, tiny});
    }
    {
      auto kind = good;
      set_word(kind, env_data, (word_at(kind, env_data) & ~uint64_t{0xffff}) | 11);
      table.push_back({"unknown kind 11", kind, errc::malformed});
      set_word(kind, env_data, word_at(kind, env_data) | 0xffff);
      table.push_back({"unknown kind 65535", kind, errc::malformed});
    }
    {
      auto small_root = good;
      set_word(small_root, 1, struct_ptr(0, 5, 5));
      table.push_back(
          {"root struct smaller than an Envelope", small_root, errc::malformed});
    }
    // Handshake messages are not envelopes.
    table.push_back(
        {"a hello given to decode_frame",
         encode_handshake(hello{1, 1, "a", node_id_of("a"), 1, payload_of(32), ""}),
         errc::malformed});
    table.push_back({"a verdict given to decode_frame",
                     encode_handshake(verdict{true, ""}), errc::malformed});

    for (auto& t : table) {
      CAPTURE(t.name);
      int delivered = 0;
      auto n =
          decode_frame(t.frame, t.limits, [&](const envelope_view&) { ++delivered; });
      REQUIRE_FALSE(n.ok());
      CHECK(n.err().is(t.expected));
      CHECK_FALSE(n.err().message().empty());
      CHECK(delivered == 0);
    }
  }

  TEST_CASE("hostile handshake frames are rejected with the right error") {
    struct hostile {
      std::string name;
      bytes frame;
      errc expected;
      decode_limits limits{};
    };
    std::vector<hostile> table;
    const hello h{1, 1, "node-a", node_id_of("node-a"), 7, payload_of(32), "host:1"};
    table.push_back({"empty frame", {}, errc::malformed});
    {
      auto short_nonce = h;
      short_nonce.nonce.resize(31);
      table.push_back(
          {"hello with a 31-byte nonce", encode_handshake(short_nonce), errc::malformed});
      auto no_nonce = h;
      no_nonce.nonce.clear();
      table.push_back(
          {"hello without a nonce", encode_handshake(no_nonce), errc::malformed});
      auto long_name = h;
      long_name.node_name = std::string(1025, 'n');
      table.push_back({"node name over the text limit", encode_handshake(long_name),
                       errc::too_large});
      table.push_back({"hello_ack with a 33-byte mac",
                       encode_handshake(hello_ack{1, "b", node_id_of("b"), 1,
                                                  payload_of(32), payload_of(33), ""}),
                       errc::malformed});
      table.push_back(
          {"proof with an empty mac", encode_handshake(proof{}), errc::malformed});
      table.push_back({"verdict with a long reason",
                       encode_handshake(verdict{false, std::string(2000, 'r')}),
                       errc::too_large});
    }
    {
      auto trailing = encode_handshake(h);
      trailing.resize(trailing.size() + 8);
      table.push_back({"hello with trailing bytes", trailing, errc::malformed});
      auto two = encode_handshake(h);
      auto again = encode_handshake(proof{payload_of(32)});
      two.insert(two.end(), again.begin(), again.end());
      table.push_back({"two handshake messages in one frame", two, errc::malformed});
      auto cut = encode_handshake(h);
      cut.resize(cut.size() - 8);
      table.push_back({"truncated hello", cut, errc::malformed});
      auto which = encode_handshake(verdict{true, ""});
      // Root HandshakeMessage at word 2 (table, root pointer): union tag 4.
      set_word(which, 2, 4);
      table.push_back({"unknown handshake union member", which, errc::malformed});
      decode_limits tiny;
      tiny.max_frame_bytes = 16;
      table.push_back(
          {"frame over max_frame_bytes", encode_handshake(h), errc::too_large, tiny});
    }
    // Envelopes of every kind are not handshake messages.
    for (uint16_t k = 0; k <= static_cast<uint16_t>(envelope_kind::credit); ++k) {
      auto e = full_header();
      e.kind = static_cast<envelope_kind>(k);
      table.push_back(
          {"an envelope given to decode_handshake", one_envelope(e), errc::malformed});
      envelope_header anonymous;
      anonymous.kind = e.kind;
      table.push_back({"an anonymous envelope given to decode_handshake",
                       one_envelope(anonymous), errc::malformed});
    }
    for (auto& t : table) {
      CAPTURE(t.name);
      auto r = decode_handshake(t.frame, t.limits);
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(t.expected));
      CHECK_FALSE(r.err().message().empty());
    }
  }
}
