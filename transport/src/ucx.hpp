#pragma once
/// Thin RAII over the UCX 1.13 objects the fabric uses, and the one place
/// where `ucs_status_t` becomes a troupe error. Progress-thread only, except
/// `signal()` and sends on a multi-threaded worker.

#include "troupe/runtime/result.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <ucp/api/ucp.h>
#include <vector>

namespace troupe::transport::ucx {

/// transport.ucx_error with `what` and UCX's status string.
[[nodiscard]] error to_error(ucs_status_t st, std::string_view what);

/// Parses "host:port" (IPv4 or a name resolvable on this machine, or
/// "[v6]:port") into a sockaddr. invalid_argument when it is not one.
[[nodiscard]] result<sockaddr_storage> parse_address(std::string_view address,
                                                     socklen_t& len);
/// "host:port" of a sockaddr.
[[nodiscard]] std::string format_address(const sockaddr_storage& sa);

struct context_options {
  std::string transports; ///< UCX_TLS, "" = UCX default
  bool shared_memory = true;
  bool multi_thread = false; ///< other threads send on the worker too
};

/// A UCP context and one worker (with wake-up support).
class worker {
public:
  [[nodiscard]] static result<std::unique_ptr<worker>> create(const context_options& o);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  ucp_context_h context() const noexcept { return ctx_; }
  ucp_worker_h get() const noexcept { return w_; }
  int event_fd() const noexcept { return efd_; }
  /// Max header bytes of an active message.
  size_t max_am_header() const noexcept { return max_am_header_; }
  /// Whether the context can access CUDA memory (GPUDirect).
  bool cuda_memory() const noexcept { return cuda_; }

  /// Wakes the progress thread from any thread.
  void signal() noexcept { ucp_worker_signal(w_); }

  /// Closes `ep` (forcefully when `force`) and progresses until done.
  void close_endpoint(ucp_ep_h ep, bool force);

private:
  worker() = default;
  ucp_context_h ctx_ = nullptr;
  ucp_worker_h w_ = nullptr;
  int efd_ = -1;
  size_t max_am_header_ = 0;
  bool cuda_ = false;
};

/// The transports an endpoint's lanes use ("tcp/lo", "sysv/memory", ...),
/// from ucp_ep_print_info (UCX 1.13 has no query for them).
[[nodiscard]] std::vector<std::string> endpoint_transports(ucp_ep_h ep);

} // namespace troupe::transport::ucx
