#include "troupe/runtime/http_server.hpp"

#include "troupe/runtime/errc.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <httplib.h>
#include <netdb.h>
#include <string>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <utility>

namespace troupe::http {
namespace {

/// Why `address` cannot be resolved for listening, or "" when it can. Done
/// before handing the address to cpp-httplib, whose bind reports only a bool.
std::string resolve_problem(const std::string& address, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) {
    return rc == EAI_SYSTEM ? std::system_category().message(errno) : ::gai_strerror(rc);
  }
  ::freeaddrinfo(found);
  return {};
}

/// cpp-httplib's default socket options set SO_REUSEPORT on Linux, which lets
/// a second server bind a port that is already listening and silently share
/// its connections. SO_REUSEADDR alone still allows a quick restart while old
/// connections sit in TIME_WAIT, but makes a taken port fail with EADDRINUSE.
void exclusive_socket_options(int sock) {
  int yes = 1;
  ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

} // namespace

std::string endpoint(const std::string& address, uint16_t port) {
  std::string out =
      address.find(':') == std::string::npos ? address : "[" + address + "]";
  out += ':';
  out += std::to_string(port);
  return out;
}

struct server::impl {
  impl(std::string address, std::unique_ptr<httplib::Server> server)
      : bind_address(std::move(address)), srv_ptr(std::move(server)) {}
  std::string bind_address;
  uint16_t port = 0;
  std::unique_ptr<httplib::Server> srv_ptr; // an httplib::SSLServer for HTTPS
  httplib::Server& srv = *srv_ptr;
  std::thread thread;                // runs srv.listen_after_bind(); joined by stop()
  std::atomic<bool> finished{false}; // set by `thread` when listening ends
};

server::server(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

server::~server() {
  stop();
}

result<std::unique_ptr<server>> server::start(std::string bind_address, uint16_t port,
                                              const routes_fn& routes, int threads) {
  return listen(std::make_unique<impl>(std::move(bind_address),
                                       std::make_unique<httplib::Server>()),
                port, routes, threads);
}

result<std::unique_ptr<server>> server::start_tls(std::string bind_address, uint16_t port,
                                                  const tls_files& tls,
                                                  const routes_fn& routes, int threads) {
  auto ssl =
      std::make_unique<httplib::SSLServer>(tls.cert_file.c_str(), tls.key_file.c_str());
  if (!ssl->is_valid()) {
    return error{runtime::errc::invalid_argument,
                 "cannot load the TLS certificate " + tls.cert_file + " and key " +
                     tls.key_file + " (missing, unreadable, not PEM, or not a pair)"};
  }
  return listen(std::make_unique<impl>(std::move(bind_address), std::move(ssl)), port,
                routes, threads);
}

result<std::unique_ptr<server>> server::listen(std::unique_ptr<impl> p, uint16_t port,
                                               const routes_fn& routes, int threads) {
  const auto failure = [&](const std::string& reason) {
    return error{runtime::errc::unavailable,
                 "cannot listen on " + endpoint(p->bind_address, port) + ": " + reason};
  };
  if (std::string problem = resolve_problem(p->bind_address, port); !problem.empty()) {
    return failure(problem);
  }
  httplib::Server& srv = p->srv;
  srv.set_socket_options(exclusive_socket_options);
  srv.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(std::max(1, threads)));
  };
  // stop() waits for idle keep-alive connections; keep that wait short.
  srv.set_keep_alive_timeout(1);
  if (routes) routes(srv);

  errno = 0;
  int bound = port == 0 ? srv.bind_to_any_port(p->bind_address)
                        : (srv.bind_to_port(p->bind_address, port) ? port : -1);
  int bind_errno = errno; // left by the failing bind() or listen() inside httplib
  if (bound <= 0) {
    return failure(bind_errno != 0 ? std::system_category().message(bind_errno)
                                   : std::string("bind failed"));
  }
  p->port = static_cast<uint16_t>(bound);

  impl* raw = p.get();
  raw->thread = std::thread([raw] {
    raw->srv.listen_after_bind();
    raw->finished = true;
  });
  // httplib's stop() is a no-op until the accept loop runs, so a stop() that
  // came first would leave the thread listening forever: wait for the loop.
  while (!raw->srv.is_running() && !raw->finished) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!raw->srv.is_running()) {
    raw->thread.join();
    return failure("the accept loop ended at once");
  }
  return std::unique_ptr<server>(new server(std::move(p)));
}

uint16_t server::port() const noexcept {
  return impl_->port;
}

const std::string& server::bind_address() const noexcept {
  return impl_->bind_address;
}

void server::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->srv.stop();
  impl_->thread.join();
}

} // namespace troupe::http
