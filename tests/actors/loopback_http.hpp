#pragma once
// An HTTP server of the test's own on a free loopback port (cpp-httplib),
// for fakes of outside services: register handlers on `server`, then
// start(); the destructor stops it.

#include <chrono>
#include <doctest/doctest.h>
#include <httplib.h>
#include <string>
#include <thread>

namespace troupe::actors::testing {

struct loopback_http {
  httplib::Server server;
  std::thread thread;
  int port = 0;

  void start() {
    port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    thread = std::thread{[this] { server.listen_after_bind(); }};
    // stop() before the accept loop runs would be lost.
    while (!server.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  ~loopback_http() {
    if (!thread.joinable()) return;
    server.stop();
    thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

} // namespace troupe::actors::testing
