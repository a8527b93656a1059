// Device buffers: allocation, copies, the staging pool and the wire codec's
// hostile cases. The simulated kind runs everywhere; the CUDA cases run
// only where a GPU is present (scripts/gpu-check.sh on the GPU machine).

#include "troupe/runtime/errc.hpp"
#include "troupe/transport/device_buffer.hpp"
#include "troupe/transport/message_types.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <numeric>
#include <vector>

using troupe::runtime::errc;
using namespace troupe::transport;

namespace {

std::vector<std::byte> pattern(size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return v;
}

void round_trip(memory_kind kind) {
  auto b = device_buffer::allocate(kind, 0, 1 << 20);
  REQUIRE_MESSAGE(b.ok(), b.err().to_string());
  CHECK(b->size() == size_t{1} << 20);
  CHECK(b->kind() == kind);
  CHECK_FALSE(b->empty());
  auto in = pattern(b->size(), 7);
  REQUIRE(b->copy_from_host(in).ok());
  std::vector<std::byte> out(b->size());
  REQUIRE(b->copy_to_host(out).ok());
  CHECK(out == in);
  // Partial copies at an offset.
  std::vector<std::byte> part(100);
  REQUIRE(b->copy_to_host(part, 1000).ok());
  CHECK(std::equal(part.begin(), part.end(), in.begin() + 1000));
  // Out of range: a clear error, nothing written.
  auto bad = b->copy_from_host(in, 1);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.err().is(errc::invalid_argument));
  CHECK(b->copy_to_host(std::span<std::byte>{out.data(), 16}, b->size() - 8)
            .err()
            .is(errc::invalid_argument));
  // Staging: a host copy with the same bytes, from the pool the second time.
  auto before = staging_pool_stats();
  {
    auto s = stage_for_send(*b, false);
    REQUIRE_MESSAGE(s.ok(), s.err().to_string());
    CHECK_FALSE(s->device);
    REQUIRE(s->size == b->size());
    CHECK(std::memcmp(s->data, in.data(), in.size()) == 0);
  }
  auto s2 = stage_for_send(*b, false);
  REQUIRE(s2.ok());
  auto after = staging_pool_stats();
  CHECK(after.acquired == before.acquired + 2);
  CHECK(after.reused >= before.reused + 1);
}

} // namespace

TEST_CASE("simulated device buffers: copies, bounds, staging pool") {
  round_trip(memory_kind::simulated);
  auto empty = device_buffer{};
  CHECK(empty.empty());
  std::vector<std::byte> one(1);
  CHECK(empty.copy_to_host(one).err().is(errc::invalid_argument));
  CHECK(stage_for_send(empty, false).err().is(errc::invalid_argument));
  CHECK(device_buffer::allocate(memory_kind::simulated, -1, 10)
            .err()
            .is(errc::invalid_argument));
  CHECK(device_buffer::allocate(memory_kind::simulated, 0, size_t{1} << 41)
            .err()
            .is(errc::invalid_argument));
  auto zero = device_buffer::allocate(memory_kind::simulated, 3, 0);
  REQUIRE(zero.ok());
  CHECK_FALSE(zero->empty());
  CHECK(zero->device() == 3);
  // Copies share the memory.
  auto a = device_buffer::allocate(memory_kind::simulated, 0, 64);
  REQUIRE(a.ok());
  device_buffer alias = *a;
  CHECK(alias.data() == a->data());
}

TEST_CASE("CUDA device buffers (only where a GPU is present)") {
  MESSAGE("cuda built: " << cuda_built() << ", devices: " << cuda_device_count());
  if (cuda_device_count() == 0) {
    auto b = device_buffer::allocate(memory_kind::cuda, 0, 1024);
    REQUIRE_FALSE(b.ok());
    CHECK(b.err().is(errc::unavailable));
    MESSAGE("no CUDA device: " << b.err().to_string());
    return;
  }
  round_trip(memory_kind::cuda);
  auto missing = device_buffer::allocate(memory_kind::cuda, cuda_device_count(), 16);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.err().is(errc::unavailable));
}

TEST_CASE("device_buffer codec: hostile frames are errors, never allocations") {
  auto types = message_types::defaults();
  const element_codec* c = types.find(type_id_of("troupe.device_buffer"));
  REQUIRE(c != nullptr);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};

  // A valid element round-trips through save/load.
  auto b = device_buffer::allocate(memory_kind::simulated, 1, 300);
  REQUIRE(b.ok());
  auto in = pattern(300, 3);
  REQUIRE(b->copy_from_host(in).ok());
  auto msg = caf::make_message(*b);
  std::vector<char> buf;
  {
    caf::binary_serializer sink{sys, buf};
    REQUIRE_FALSE(c->save(sink, msg, 0));
  }
  {
    caf::binary_deserializer src{sys, buf};
    caf::message_builder mb;
    REQUIRE_FALSE(c->load(src, mb));
    auto out = mb.move_to_message();
    REQUIRE(out.match_element<device_buffer>(0));
    const auto& got = out.get_as<device_buffer>(0);
    CHECK(got.size() == 300);
    CHECK(got.device() == 1);
    CHECK(got.data() != b->data());
    std::vector<std::byte> back(300);
    REQUIRE(got.copy_to_host(back).ok());
    CHECK(back == in);
  }

  struct hostile {
    const char* what;
    uint8_t kind;
    int32_t device;
    uint64_t size;
    size_t bytes; // actually present
  };
  const hostile cases[] = {
      {"unknown memory kind", 9, 0, 4, 4},
      {"negative device", 0, -1, 4, 4},
      {"size larger than the frame", 0, 0, 1000, 10},
      {"absurd size", 0, 0, uint64_t{1} << 62, 16},
      {"truncated bytes", 0, 0, 64, 63},
  };
  for (const auto& h : cases) {
    CAPTURE(h.what);
    std::vector<char> frame;
    {
      caf::binary_serializer sink{sys, frame};
      auto kind = h.kind;
      auto device = h.device;
      auto size = h.size;
      REQUIRE_FALSE(sink(kind, device, size));
      frame.resize(frame.size() + h.bytes, 'x');
    }
    caf::binary_deserializer src{sys, frame};
    caf::message_builder mb;
    CHECK(c->load(src, mb));
    CHECK(mb.size() == 0);
  }
  // A bulk transfer whose size differs from the announced one.
  {
    std::vector<char> header;
    caf::binary_serializer sink{sys, header};
    REQUIRE_FALSE(c->save_bulk_header(sink, msg, 0));
    caf::binary_deserializer src{sys, header};
    caf::message_builder mb;
    CHECK(c->append_bytes(src, std::vector<char>(299), mb));
    CHECK(mb.size() == 0);
  }
  // GPU memory sent to a node without a GPU: a clear error.
  if (cuda_device_count() == 0) {
    std::vector<char> frame;
    caf::binary_serializer sink{sys, frame};
    uint8_t kind = 1;
    int32_t device = 0;
    uint64_t size = 4;
    REQUIRE_FALSE(sink(kind, device, size));
    frame.resize(frame.size() + 4);
    caf::binary_deserializer src{sys, frame};
    caf::message_builder mb;
    auto err = c->load(src, mb);
    REQUIRE(err);
    CHECK(caf::to_string(err).find("no CUDA device") != std::string::npos);
  }
}
