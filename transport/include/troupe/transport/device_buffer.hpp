#pragma once
/// GPU memory in messages.
///
/// A `device_buffer` is a block of device memory that can be an element of
/// a message to a remote actor. The fabric moves it in one of two ways:
/// - GPU direct: when UCX reports CUDA memory support (`fabric::gpu_direct`),
///   the device pointer is handed to UCX as CUDA memory (GPUDirect RDMA
///   where the hardware allows).
/// - Staged: otherwise the sender copies the buffer into pinned host memory
///   (a pool of page-locked buffers, reused), sends that, and the receiver
///   copies what arrives into a fresh buffer on its own device.
/// Either way the receiving actor gets a `device_buffer` on its node's
/// device: the same device index when the node has it, device 0 otherwise.
///
/// Two kinds of memory: `cuda` (built when a CUDA toolkit was found, used
/// when a device is present) and `simulated`: host memory standing in for
/// the memory of a simulated GPU, so CPU-only nodes (CI, laptops, the
/// simulated GPUs of a node's inventory) run the same code paths, staging
/// included. Debian's UCX has no CUDA support, so only the staged path runs
/// there; the GPU check (scripts/gpu-check.sh) runs the cuda kind on a
/// machine with a GPU.
///
/// Buffers are shared, not copied, when a message is copied: the memory
/// lives while any message or handle refers to it. Not thread-safe for
/// concurrent writes (like any buffer).
#include "troupe/runtime/result.hpp"

#include <caf/meta/type_name.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace troupe::transport {

enum class memory_kind : uint8_t {
  simulated = 0, ///< host memory standing in for a simulated GPU's
  cuda = 1,      ///< CUDA device memory
};

[[nodiscard]] std::string to_string(memory_kind k);

class device_buffer {
public:
  device_buffer() = default;

  /// `bytes` of memory of `kind` on device `device`. Errors:
  /// invalid_argument (negative device, size over 1 TiB), unavailable (no
  /// CUDA in this build, no such device), internal (the CUDA call failed).
  [[nodiscard]] static result<device_buffer> allocate(memory_kind kind, int device,
                                                      size_t bytes);

  [[nodiscard]] memory_kind kind() const noexcept { return kind_; }
  [[nodiscard]] int device() const noexcept { return device_; }
  [[nodiscard]] size_t size() const noexcept { return size_; }
  /// The device pointer (a host pointer for `simulated`); null when empty.
  [[nodiscard]] void* data() const noexcept { return mem_ ? mem_.get() : nullptr; }
  [[nodiscard]] bool empty() const noexcept { return mem_ == nullptr; }

  /// Copies `src` into the buffer at `offset`. Errors: invalid_argument
  /// (out of range), internal (CUDA).
  [[nodiscard]] result<void> copy_from_host(std::span<const std::byte> src,
                                            size_t offset = 0);
  /// Copies `dst.size()` bytes from `offset` into `dst`.
  [[nodiscard]] result<void> copy_to_host(std::span<std::byte> dst,
                                          size_t offset = 0) const;

  /// For CAF's to_string: kind, device and size (the fabric has its own
  /// wire codec, which also moves the contents).
  template <class Inspector> friend auto inspect(Inspector& f, device_buffer& x) {
    auto kind = static_cast<uint8_t>(x.kind_);
    auto size = static_cast<uint64_t>(x.size_);
    return f(caf::meta::type_name("device_buffer"), kind, x.device_, size);
  }

private:
  memory_kind kind_ = memory_kind::simulated;
  int device_ = 0;
  size_t size_ = 0;
  std::shared_ptr<void> mem_;
};

/// Number of CUDA devices this process can use: 0 when built without CUDA,
/// without a driver, or without a GPU.
[[nodiscard]] int cuda_device_count() noexcept;
/// Whether this build has CUDA code (a toolkit was found at configure time).
[[nodiscard]] bool cuda_built() noexcept;

/// A host copy of a device buffer for sending: page-locked memory from a
/// pool (simulated buffers are host memory already and are not copied).
struct staged_bytes {
  const char* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> owner; ///< keeps `data` alive; returns it to the pool
  bool device = false;               ///< `data` is device memory (GPU direct)
};

/// Stages `b` for sending (see above); with `direct` a CUDA buffer is
/// passed as device memory instead. Errors: internal (CUDA copy failed).
[[nodiscard]] result<staged_bytes> stage_for_send(const device_buffer& b, bool direct);

/// Pinned staging pool figures, for tests and `troupe info`.
struct staging_stats {
  uint64_t acquired = 0;     ///< staging buffers handed out
  uint64_t reused = 0;       ///< of those, taken from the pool
  uint64_t pooled_bytes = 0; ///< bytes held by free pooled buffers now
};
[[nodiscard]] staging_stats staging_pool_stats() noexcept;

} // namespace troupe::transport
