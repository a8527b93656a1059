#include "troupe/transport/device_buffer.hpp"

#include "troupe/runtime/errc.hpp"
#include "troupe/transport/message_types.hpp"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#ifdef TROUPE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace troupe::transport {

namespace {

using rerr = runtime::errc;

constexpr size_t max_buffer_bytes = size_t{1} << 40;

#ifdef TROUPE_HAVE_CUDA
error cuda_error(cudaError_t e, const std::string& what) {
  return error{rerr::internal, what + ": " + cudaGetErrorString(e)};
}
#endif

/// Page-locked (CUDA) or plain (simulated) host buffers for staging,
/// pooled by power-of-two size class: at most `per_class` free buffers per
/// class and `max_pooled` bytes in all.
class staging_pool {
public:
  static staging_pool& get() {
    static auto* pool = new staging_pool; // never destroyed: buffers may outlive main
    return *pool;
  }

  result<std::shared_ptr<void>> acquire(memory_kind kind, size_t bytes) {
    size_t cls = std::bit_ceil(std::max<size_t>(bytes, size_t{64} << 10));
    {
      std::lock_guard<std::mutex> g{mu_};
      ++acquired_;
      auto& free = free_[{kind, cls}];
      if (!free.empty()) {
        void* p = free.back();
        free.pop_back();
        pooled_ -= cls;
        ++reused_;
        return wrap(kind, cls, p);
      }
    }
    void* p = nullptr;
    if (kind == memory_kind::cuda) {
#ifdef TROUPE_HAVE_CUDA
      if (auto e = cudaHostAlloc(&p, cls, cudaHostAllocPortable); e != cudaSuccess)
        return cuda_error(e, "cudaHostAlloc(" + std::to_string(cls) + ")");
#else
      return error{rerr::unavailable, "this build has no CUDA"};
#endif
    } else {
      p = std::aligned_alloc(4096, cls);
      if (p == nullptr)
        return error{rerr::internal,
                     "no memory for a " + std::to_string(cls) + "-byte staging buffer"};
    }
    return wrap(kind, cls, p);
  }

  staging_stats stats() {
    std::lock_guard<std::mutex> g{mu_};
    return {acquired_, reused_, pooled_};
  }

private:
  static constexpr size_t per_class = 4;
  static constexpr uint64_t max_pooled = uint64_t{256} << 20;

  std::shared_ptr<void> wrap(memory_kind kind, size_t cls, void* p) {
    return {p, [this, kind, cls](void* q) { release(kind, cls, q); }};
  }

  void release(memory_kind kind, size_t cls, void* p) {
    {
      std::lock_guard<std::mutex> g{mu_};
      auto& free = free_[{kind, cls}];
      if (free.size() < per_class && pooled_ + cls <= max_pooled) {
        free.push_back(p);
        pooled_ += cls;
        return;
      }
    }
    if (kind == memory_kind::cuda) {
#ifdef TROUPE_HAVE_CUDA
      (void)cudaFreeHost(p);
#endif
    } else {
      std::free(p);
    }
  }

  std::mutex mu_;
  std::map<std::pair<memory_kind, size_t>, std::vector<void*>> free_; // guarded by mu_
  uint64_t acquired_ = 0;                                             // guarded by mu_
  uint64_t reused_ = 0;                                               // guarded by mu_
  uint64_t pooled_ = 0;                                               // guarded by mu_
};

result<void> check_range(size_t size, size_t offset, size_t n) {
  if (offset > size || n > size - offset)
    return error{rerr::invalid_argument,
                 "copy of " + std::to_string(n) + " bytes at offset " +
                     std::to_string(offset) + " exceeds the " + std::to_string(size) +
                     "-byte device buffer"};
  return ok();
}

} // namespace

std::string to_string(memory_kind k) {
  return k == memory_kind::cuda ? "cuda" : "simulated";
}

bool cuda_built() noexcept {
#ifdef TROUPE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() noexcept {
#ifdef TROUPE_HAVE_CUDA
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
  }();
  return count;
#else
  return 0;
#endif
}

result<device_buffer> device_buffer::allocate(memory_kind kind, int device,
                                              size_t bytes) {
  if (device < 0)
    return error{rerr::invalid_argument, "device index " + std::to_string(device)};
  if (bytes > max_buffer_bytes)
    return error{rerr::invalid_argument,
                 "device buffer of " + std::to_string(bytes) + " bytes (limit 1 TiB)"};
  device_buffer b;
  b.kind_ = kind;
  b.device_ = device;
  b.size_ = bytes;
  if (kind == memory_kind::simulated) {
    // Never null, also for 0 bytes, so that an allocated buffer is not empty.
    b.mem_ = std::shared_ptr<void>(::operator new(std::max<size_t>(bytes, 1)),
                                   [](void* p) { ::operator delete(p); });
    return b;
  }
#ifdef TROUPE_HAVE_CUDA
  int count = cuda_device_count();
  if (device >= count)
    return error{rerr::unavailable, "no CUDA device " + std::to_string(device) + " (" +
                                        std::to_string(count) + " present)"};
  if (auto e = cudaSetDevice(device); e != cudaSuccess)
    return cuda_error(e, "cudaSetDevice");
  void* p = nullptr;
  if (auto e = cudaMalloc(&p, std::max<size_t>(bytes, 1)); e != cudaSuccess)
    return cuda_error(e, "cudaMalloc(" + std::to_string(bytes) + ")");
  b.mem_ = std::shared_ptr<void>(p, [device](void* q) {
    (void)cudaSetDevice(device);
    (void)cudaFree(q);
  });
  return b;
#else
  return error{
      rerr::unavailable,
      "this build has no CUDA (configure with a CUDA toolkit in /usr/local/cuda)"};
#endif
}

result<void> device_buffer::copy_from_host(std::span<const std::byte> src,
                                           size_t offset) {
  if (empty()) return error{rerr::invalid_argument, "copy into an empty device buffer"};
  if (auto r = check_range(size_, offset, src.size()); !r) return r;
  if (src.empty()) return ok();
  auto* dst = static_cast<char*>(mem_.get()) + offset;
  if (kind_ == memory_kind::simulated) {
    std::memcpy(dst, src.data(), src.size());
    return ok();
  }
#ifdef TROUPE_HAVE_CUDA
  if (auto e = cudaSetDevice(device_); e != cudaSuccess)
    return cuda_error(e, "cudaSetDevice");
  if (auto e = cudaMemcpy(dst, src.data(), src.size(), cudaMemcpyHostToDevice);
      e != cudaSuccess)
    return cuda_error(e, "cudaMemcpy to device");
  return ok();
#else
  return error{rerr::unavailable, "this build has no CUDA"};
#endif
}

result<void> device_buffer::copy_to_host(std::span<std::byte> dst, size_t offset) const {
  if (empty()) return error{rerr::invalid_argument, "copy from an empty device buffer"};
  if (auto r = check_range(size_, offset, dst.size()); !r) return r;
  if (dst.empty()) return ok();
  const auto* src = static_cast<const char*>(mem_.get()) + offset;
  if (kind_ == memory_kind::simulated) {
    std::memcpy(dst.data(), src, dst.size());
    return ok();
  }
#ifdef TROUPE_HAVE_CUDA
  if (auto e = cudaSetDevice(device_); e != cudaSuccess)
    return cuda_error(e, "cudaSetDevice");
  if (auto e = cudaMemcpy(dst.data(), src, dst.size(), cudaMemcpyDeviceToHost);
      e != cudaSuccess)
    return cuda_error(e, "cudaMemcpy to host");
  return ok();
#else
  return error{rerr::unavailable, "this build has no CUDA"};
#endif
}

result<staged_bytes> stage_for_send(const device_buffer& b, bool direct) {
  staged_bytes out;
  out.size = b.size();
  if (b.empty()) return error{rerr::invalid_argument, "sending an empty device buffer"};
  if (direct && b.kind() == memory_kind::cuda) {
    out.data = static_cast<const char*>(b.data());
    out.device = true;
    return out;
  }
  auto mem = staging_pool::get().acquire(b.kind(), b.size());
  if (!mem) return std::move(mem).err();
  std::shared_ptr<void> owner = std::move(*mem);
  auto* host = static_cast<std::byte*>(owner.get());
  if (auto r = b.copy_to_host({host, b.size()}); !r) return std::move(r).err();
  out.data = reinterpret_cast<const char*>(host);
  out.owner = std::move(owner);
  return out;
}

staging_stats staging_pool_stats() noexcept {
  return staging_pool::get().stats();
}

// -- wire codec ---------------------------------------------------------------------

namespace {

struct wire_header {
  uint8_t kind = 0;
  int32_t device = 0;
  uint64_t size = 0;
};

caf::error save_header(caf::serializer& sink, const device_buffer& b) {
  wire_header h{static_cast<uint8_t>(b.kind()), static_cast<int32_t>(b.device()),
                static_cast<uint64_t>(b.size())};
  return sink(h.kind, h.device, h.size);
}

caf::error load_header(caf::deserializer& src, wire_header& h) {
  if (auto err = src(h.kind, h.device, h.size)) return err;
  if (h.kind > static_cast<uint8_t>(memory_kind::cuda))
    return caf::make_error(caf::sec::invalid_argument,
                           "device_buffer: unknown memory kind " +
                               std::to_string(h.kind));
  if (h.device < 0)
    return caf::make_error(caf::sec::invalid_argument,
                           "device_buffer: device " + std::to_string(h.device));
  return caf::error{};
}

/// A buffer on this node's device for what a peer sent: the same device
/// index when this node has it, device 0 otherwise.
caf::error receive_into(const wire_header& h, const char* bytes,
                        caf::message_builder& out) {
  auto kind = static_cast<memory_kind>(h.kind);
  int device = h.device;
  if (kind == memory_kind::cuda) {
    int count = cuda_device_count();
    if (count == 0)
      return caf::make_error(caf::sec::invalid_argument,
                             "device_buffer: this node has no CUDA device to receive "
                             "GPU memory into");
    if (device >= count) device = 0;
  }
  auto b = device_buffer::allocate(kind, device, h.size);
  if (!b) return caf::make_error(caf::sec::invalid_argument, b.err().to_string());
  if (auto r = b->copy_from_host({reinterpret_cast<const std::byte*>(bytes), h.size}); !r)
    return caf::make_error(caf::sec::invalid_argument, r.err().to_string());
  out.append(std::move(*b));
  return caf::error{};
}

} // namespace

void add_device_buffer_codec(message_types& t) {
  element_codec c;
  c.name = "troupe.device_buffer";
  c.save = [](caf::serializer& sink, const caf::message& msg, size_t i) -> caf::error {
    const auto& b = msg.get_as<device_buffer>(i);
    if (auto err = save_header(sink, b)) return err;
    if (b.size() == 0) return caf::error{};
    std::vector<std::byte> host(b.size());
    if (auto r = b.copy_to_host(host); !r)
      return caf::make_error(caf::sec::runtime_error, r.err().to_string());
    return sink.apply_raw(host.size(), host.data());
  };
  c.load = [](caf::deserializer& src, caf::message_builder& out) -> caf::error {
    wire_header h;
    if (auto err = load_header(src, h)) return err;
    // Never allocate more than the frame can hold.
    if (auto* bin = dynamic_cast<caf::binary_deserializer*>(&src);
        bin == nullptr || h.size > bin->remaining())
      return caf::make_error(caf::sec::invalid_argument,
                             "device_buffer: " + std::to_string(h.size) +
                                 " bytes announced, fewer in the frame");
    std::vector<char> bytes(h.size);
    if (h.size > 0)
      if (auto err = src.apply_raw(bytes.size(), bytes.data())) return err;
    return receive_into(h, bytes.data(), out);
  };
  c.device_size = [](const caf::message& msg, size_t i) {
    return msg.get_as<device_buffer>(i).size();
  };
  c.stage = [](const caf::message& msg, size_t i, bool direct) {
    return stage_for_send(msg.get_as<device_buffer>(i), direct);
  };
  c.save_bulk_header = [](caf::serializer& sink, const caf::message& msg, size_t i) {
    return save_header(sink, msg.get_as<device_buffer>(i));
  };
  c.append_bytes = [](caf::deserializer& src, std::vector<char>&& buf,
                      caf::message_builder& out) -> caf::error {
    wire_header h;
    if (auto err = load_header(src, h)) return err;
    if (h.size != buf.size())
      return caf::make_error(caf::sec::invalid_argument,
                             "device_buffer: " + std::to_string(h.size) +
                                 " bytes announced, " + std::to_string(buf.size()) +
                                 " arrived");
    return receive_into(h, buf.data(), out);
  };
  t.add_codec(message_types::key_of<device_buffer>(), std::move(c));
}

} // namespace troupe::transport
