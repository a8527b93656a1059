#pragma once
/// HTTP endpoint serving a metrics registry to Prometheus.

#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace troupe::metrics {

/// Serves `GET /metrics` (Prometheus text format 0.0.4) from a registry on a
/// thread of its own; every other path answers 404.
///
/// The registry is borrowed: it must outlive the server. Stopping (stop() or
/// the destructor) closes the listening socket and joins the server's
/// threads; it must not be called from a scrape (that is, from inside a
/// registry callback gauge).
class metrics_server {
public:
  /// Binds `bind_address:port` (port 0 picks a free port) and starts
  /// serving. Returns errc::unavailable when the address cannot be resolved
  /// or bound, e.g. "cannot listen on 127.0.0.1:80: Permission denied".
  /// The port is bound exclusively: a second server on a taken port fails.
  [[nodiscard]] static result<std::unique_ptr<metrics_server>>
  start(const registry& reg, std::string bind_address, uint16_t port);

  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;
  ~metrics_server();

  /// The bound port (the chosen one when started with port 0).
  uint16_t port() const noexcept;

  const std::string& bind_address() const noexcept;

  /// Stops accepting, finishes requests in progress and joins the server
  /// threads. Idempotent.
  void stop();

private:
  struct impl;
  explicit metrics_server(std::unique_ptr<impl> p);

  std::unique_ptr<impl> impl_;
};

} // namespace troupe::metrics
