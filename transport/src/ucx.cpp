#include "ucx.hpp"

#include "troupe/runtime/errc.hpp"
#include "troupe/transport/wire.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <regex>
#include <string>

namespace troupe::transport::ucx {

error to_error(ucs_status_t st, std::string_view what) {
  return error{errc::ucx_error, std::string{what} + ": " + ucs_status_string(st)};
}

result<sockaddr_storage> parse_address(std::string_view address, socklen_t& len) {
  std::string host;
  std::string port;
  if (!address.empty() && address.front() == '[') {
    auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':')
      return error{runtime::errc::invalid_argument,
                   "address \"" + std::string{address} + "\": expected [v6]:port"};
    host = std::string{address.substr(1, close - 1)};
    port = std::string{address.substr(close + 2)};
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
      return error{runtime::errc::invalid_argument,
                   "address \"" + std::string{address} + "\": expected host:port"};
    host = std::string{address.substr(0, colon)};
    port = std::string{address.substr(colon + 1)};
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || end == nullptr || *end != '\0' || p < 0 || p > 65535)
    return error{runtime::errc::invalid_argument,
                 "address \"" + std::string{address} + "\": port must be 0..65535"};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0 || !res)
    return error{runtime::errc::invalid_argument,
                 "address \"" + std::string{address} + "\": " + gai_strerror(rc)};
  sockaddr_storage out{};
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  len = static_cast<socklen_t>(res->ai_addrlen);
  freeaddrinfo(res);
  return out;
}

std::string format_address(const sockaddr_storage& sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return std::string{buf} + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&sa);
    inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof buf);
    return "[" + std::string{buf} + "]:" + std::to_string(ntohs(in->sin6_port));
  }
  return "?";
}

result<std::unique_ptr<worker>> worker::create(const context_options& o) {
  // (ucp_config_modify does not reach these transport-level settings, so
  // they go into the environment, without overriding what is set there.)
  // (Only when shared memory may be used: UCX warns on stdout about set
  // variables that no transport reads.)
  bool may_use_shm = o.transports.empty() ||
                     o.transports.find("shm") != std::string::npos ||
                     o.transports.find("sysv") != std::string::npos ||
                     o.transports.find("posix") != std::string::npos ||
                     o.transports.find("all") != std::string::npos;
  if (o.shared_memory && may_use_shm) {
    ::setenv("UCX_SYSV_ERROR_HANDLING", "y", 0);
    ::setenv("UCX_POSIX_ERROR_HANDLING", "y", 0);
  }
  // A listener on a fixed port (a restarted head) must bind again at once,
  // while the old process's connections sit in TIME_WAIT.
  ::setenv("UCX_TCP_CM_REUSEADDR", "y", 0);
  ucp_config_t* config = nullptr;
  if (auto st = ucp_config_read(nullptr, nullptr, &config); st != UCS_OK)
    return to_error(st, "ucp_config_read");
  auto modify = [&](const char* name, const char* value) -> result<void> {
    if (auto st = ucp_config_modify(config, name, value); st != UCS_OK)
      return to_error(st, std::string{"UCX setting "} + name + "=" + value);
    return ok();
  };
  if (!o.transports.empty())
    if (auto r = modify("TLS", o.transports.c_str()); !r) {
      ucp_config_release(config);
      return std::move(r).err();
    }
  // With peer error handling UCX 1.13 refuses shared memory transports
  // unless told they may be used; the environment still wins when set.
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
  params.name = "troupe";
  std::unique_ptr<worker> w{new worker{}};
  auto st = ucp_init(&params, config, &w->ctx_);
  ucp_config_release(config);
  if (st != UCS_OK) return to_error(st, "ucp_init");
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = o.multi_thread ? UCS_THREAD_MODE_MULTI : UCS_THREAD_MODE_SINGLE;
  if (st = ucp_worker_create(w->ctx_, &wp, &w->w_); st != UCS_OK)
    return to_error(st, "ucp_worker_create");
  if (st = ucp_worker_get_efd(w->w_, &w->efd_); st != UCS_OK)
    return to_error(st, "ucp_worker_get_efd");
  ucp_worker_attr_t wa{};
  wa.field_mask = UCP_WORKER_ATTR_FIELD_MAX_AM_HEADER;
  if (ucp_worker_query(w->w_, &wa) == UCS_OK) w->max_am_header_ = wa.max_am_header;
  ucp_context_attr_t ca{};
  ca.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  if (ucp_context_query(w->ctx_, &ca) == UCS_OK)
    w->cuda_ = (ca.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
  return w;
}

worker::~worker() {
  if (w_ != nullptr) ucp_worker_destroy(w_);
  if (ctx_ != nullptr) ucp_cleanup(ctx_);
}

void worker::close_endpoint(ucp_ep_h ep, bool force) {
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  ucs_status_ptr_t req = ucp_ep_close_nbx(ep, &p);
  if (req == nullptr || UCS_PTR_IS_ERR(req)) return;
  // Bounded: a graceful close of a dead peer could wait for its timeout.
  for (int i = 0; i < 1000000 && ucp_request_check_status(req) == UCS_INPROGRESS; ++i)
    ucp_worker_progress(w_);
  ucp_request_free(req);
}

std::vector<std::string> endpoint_transports(ucp_ep_h ep) {
  char* buf = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&buf, &size);
  if (f == nullptr) return {};
  ucp_ep_print_info(ep, f);
  std::fclose(f);
  std::string text{buf, size};
  std::free(buf);
  // Lines look like "#   lane[0]:  3:tcp/lo.0 md[1]  ...": take "tcp/lo"
  // (the part before the interface index), once per distinct transport.
  std::vector<std::string> out;
  static const std::regex lane{
      R"(lane\[\d+\]:\s+\d+:([A-Za-z0-9_]+/[A-Za-z0-9_:.-]+?)(\.\d+)?\s)"};
  for (std::sregex_iterator it{text.begin(), text.end(), lane}, end; it != end; ++it) {
    std::string name = (*it)[1];
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

} // namespace troupe::transport::ucx
