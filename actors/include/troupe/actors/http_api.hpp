#pragma once
/// The head's HTTP/JSON API under /v1 (docs/API.md, docs/openapi.yaml),
/// written against control_plane: routing, bearer-token authentication,
/// strict validation of paths, query parameters and bodies, and the mapping
/// of errors to HTTP statuses with a JSON body
/// {"error": {"code": "...", "message": "..."}}.
///
/// http_api::handle() is the whole request path but streaming, over plain
/// request and response values (no sockets: tests and the fuzz target call
/// it directly); install_routes() puts it on an httplib::Server, adding the
/// streaming of followed logs; api_server runs it on a troupe::http::server,
/// over HTTPS when a certificate is given.
///
/// Tenancy: the control plane answers not_found for another tenant's job;
/// the HTTP layer also turns a forbidden on a job route into not_found, so
/// a job id never tells whether it exists for someone else.
#include "troupe/actors/api_tokens.hpp"
#include "troupe/actors/control_plane.hpp"
#include "troupe/runtime/http_server.hpp"
#include "troupe/runtime/result.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace httplib {
class Server;
}

namespace troupe::actors {

/// Who may read GET /v1/metrics.
enum class metrics_access : uint8_t {
  open,      ///< anyone who reaches the port (a scraper without credentials)
  any_token, ///< any valid bearer token
  admin,     ///< admin tokens only (the default: metrics name tenants and nodes)
};

struct api_options {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 8470; ///< 0 picks a free port
  int threads = 8;      ///< worker threads (each followed log holds one)
  /// Largest request body; larger ones get 413 before they are read whole.
  std::size_t max_body_bytes = 1 << 20;
  /// Socket read and write timeouts of one request (a slow client is cut).
  std::chrono::seconds read_timeout{10};
  std::chrono::seconds write_timeout{10};
  metrics_access metrics = metrics_access::admin;
  /// Log following: at most `max_follows` at once (429 beyond, and always
  /// fewer than `threads`), each for at most `max_follow_time`, polling the
  /// control plane every `follow_poll` and writing an empty chunk every
  /// `follow_heartbeat` without news (to notice clients that went away).
  int max_follows = 4;
  std::chrono::milliseconds max_follow_time{std::chrono::minutes{10}};
  std::chrono::milliseconds follow_poll{250};
  std::chrono::milliseconds follow_heartbeat{std::chrono::seconds{5}};
  /// Most bytes of log in one response or one streamed chunk.
  uint32_t log_chunk_bytes = 64 * 1024;
  /// HTTPS when both are set (PEM files); plain HTTP when both are empty.
  std::string tls_cert_file;
  std::string tls_key_file;
};

/// One request as the API sees it (what install_routes takes from httplib).
struct api_request {
  std::string method; ///< "GET", "POST", ...
  std::string path;   ///< percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query; ///< decoded, in order
  std::vector<std::string> authorization; ///< every Authorization header value
  std::string content_type;               ///< "" when absent
  std::string body;
};

/// A followed log: what install_routes streams after the first chunk.
struct log_follow {
  caller who;
  std::string job_id;
  uint32_t replica = 0;
  log_stream stream = log_stream::stdout_log;
  uint64_t offset = 0; ///< where `first` starts
  log_chunk first;     ///< already read; streaming starts with it
};

/// The answer to one request.
struct api_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers; ///< extra headers
  /// Set for GET .../logs?follow=1 that found the log: the body is then a
  /// stream of log chunks, one JSON object a line (application/x-ndjson).
  std::optional<log_follow> follow;
};

/// The HTTP status and error code string ("not_found") for an error of any
/// module: actors::errc and runtime::errc map to 4xx/5xx (docs/API.md);
/// anything else is 500 "internal".
[[nodiscard]] std::pair<int, std::string> http_status_of(const error& e);

/// {"error": {"code": code, "message": message}} as JSON text.
[[nodiscard]] std::string error_body(std::string_view code, std::string_view message);

/// A log chunk as its JSON object {"data", "offset", "next_offset",
/// "finished"}; bytes that are not UTF-8 become U+FFFD in "data" (the
/// offsets stay exact).
[[nodiscard]] std::string log_chunk_json(const log_chunk& chunk, uint64_t offset);

/// The API over one control plane and token table; both must outlive it.
/// Thread-safe: handle() may run on many threads at once (the control
/// plane must be thread-safe too).
class http_api {
public:
  http_api(control_plane& plane, const api_tokens& tokens, api_options options);
  http_api(const http_api&) = delete;
  http_api& operator=(const http_api&) = delete;
  ~http_api();

  /// Answers one request (every route; a followed log only up to its first
  /// chunk, see api_response::follow). Never throws for any input.
  [[nodiscard]] api_response handle(const api_request& request);

  /// Routes every request of `srv` to this API, with JSON bodies for
  /// httplib's own errors (413, malformed requests) and for exceptions, the
  /// body limit and timeouts of the options, and log streaming. This API
  /// must outlive the server's listening.
  void install_routes(httplib::Server& srv);

  /// Ends every log follow in progress and refuses new ones (before the
  /// server stops, so that stopping does not wait for them).
  void shutdown();

  /// Log follows streaming now.
  [[nodiscard]] int active_follows() const noexcept { return follows_.load(); }

  [[nodiscard]] const api_options& options() const noexcept { return options_; }

private:
  /// Streams the rest of a followed log to `write` until the log finishes,
  /// the follow time is up, shutdown() is called or a write fails.
  /// Returns false when a write failed (the client went away).
  template <class Write> bool stream_follow(const log_follow& follow, Write&& write);

  control_plane& plane_;
  const api_tokens& tokens_;
  const api_options options_;
  std::atomic<int> follows_{0};
  std::mutex mu_; // guards stopping_ (with cv_ for wake-ups)
  std::condition_variable cv_;
  bool stopping_ = false; // guarded by mu_
};

/// http_api on its own troupe::http::server.
class api_server {
public:
  /// Checks the options (invalid_argument), then listens on
  /// options.bind_address:options.port, over HTTPS when a certificate is
  /// set. Errors as troupe::http::server::start and start_tls. `plane` and
  /// `tokens` must outlive the server.
  [[nodiscard]] static result<std::unique_ptr<api_server>>
  start(control_plane& plane, const api_tokens& tokens, api_options options);

  api_server(const api_server&) = delete;
  api_server& operator=(const api_server&) = delete;
  ~api_server();

  [[nodiscard]] uint16_t port() const noexcept { return server_->port(); }
  [[nodiscard]] bool tls() const noexcept { return tls_; }
  [[nodiscard]] http_api& api() noexcept { return *api_; }
  /// Ends log follows, stops accepting, finishes requests in progress.
  /// Idempotent; must not be called from a handler.
  void stop();

private:
  api_server() = default;
  std::unique_ptr<http_api> api_;
  std::unique_ptr<http::server> server_;
  bool tls_ = false;
};

/// Checks api_options: invalid_argument naming the option.
[[nodiscard]] result<void> validate(const api_options& options);

} // namespace troupe::actors
