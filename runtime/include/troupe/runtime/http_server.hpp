#pragma once
/// An HTTP server (cpp-httplib) on a thread of its own: the metrics
/// endpoint and the head's HTTP API are both built on it. Routes are set by
/// the caller on the httplib::Server before it starts listening (include
/// <httplib.h> and link troupe::httplib to write them).
#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace httplib {
class Server;
}

namespace troupe::http {

class server {
public:
  using routes_fn = std::function<void(httplib::Server&)>;

  /// Binds `bind_address:port` (0 picks a free port) exclusively, calls
  /// `routes` on the server, and serves with `threads` worker threads.
  /// Errors: unavailable ("cannot listen on 127.0.0.1:80: Permission
  /// denied", an unresolvable address, a taken port).
  [[nodiscard]] static result<std::unique_ptr<server>> start(std::string bind_address,
                                                             uint16_t port,
                                                             const routes_fn& routes,
                                                             int threads = 2);

  /// A PEM certificate chain and its private key, for HTTPS.
  struct tls_files {
    std::string cert_file;
    std::string key_file;
  };
  /// As start(), serving HTTPS (OpenSSL) with `tls`. Errors as start(), and
  /// invalid_argument when the certificate or the key cannot be loaded.
  [[nodiscard]] static result<std::unique_ptr<server>>
  start_tls(std::string bind_address, uint16_t port, const tls_files& tls,
            const routes_fn& routes, int threads = 2);

  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server();

  [[nodiscard]] uint16_t port() const noexcept;
  [[nodiscard]] const std::string& bind_address() const noexcept;
  /// Stops accepting, finishes requests in progress, joins the threads.
  /// Idempotent; must not be called from a handler.
  void stop();

private:
  struct impl;
  explicit server(std::unique_ptr<impl> p);
  static result<std::unique_ptr<server>> listen(std::unique_ptr<impl> p, uint16_t port,
                                                const routes_fn& routes, int threads);
  std::unique_ptr<impl> impl_;
};

/// "127.0.0.1:9090" or "[::1]:9090".
[[nodiscard]] std::string endpoint(const std::string& address, uint16_t port);

} // namespace troupe::http
