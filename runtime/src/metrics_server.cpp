#include "troupe/runtime/metrics_server.hpp"

#include "troupe/runtime/http_server.hpp"

#include <httplib.h>
#include <string>
#include <utility>

namespace troupe::metrics {
namespace {

constexpr const char* exposition_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

} // namespace

struct metrics_server::impl {
  std::unique_ptr<http::server> server;
};

metrics_server::metrics_server(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

metrics_server::~metrics_server() {
  stop();
}

result<std::unique_ptr<metrics_server>>
metrics_server::start(const registry& reg, std::string bind_address, uint16_t port) {
  auto s =
      http::server::start(std::move(bind_address), port, [&reg](httplib::Server& srv) {
        srv.Get("/metrics", [&reg](const httplib::Request&, httplib::Response& res) {
          res.set_content(reg.expose(), exposition_content_type);
        });
      });
  if (!s) return std::move(s).err();
  auto p = std::make_unique<impl>();
  p->server = std::move(*s);
  return std::unique_ptr<metrics_server>(new metrics_server(std::move(p)));
}

uint16_t metrics_server::port() const noexcept {
  return impl_->server->port();
}

const std::string& metrics_server::bind_address() const noexcept {
  return impl_->server->bind_address();
}

void metrics_server::stop() {
  if (impl_->server) impl_->server->stop();
}

} // namespace troupe::metrics
