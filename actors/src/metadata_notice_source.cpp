#include "troupe/actors/metadata_notice_source.hpp"

#include "troupe/actors/errc.hpp"
#include "troupe/actors/finops_actor.hpp"

#include <httplib.h>

namespace troupe::actors {

namespace {

/// The config with its defaults filled in: the cloud's endpoint, the wall clock.
metadata_notice_config resolved(metadata_notice_config c) {
  if (c.endpoint.empty()) c.endpoint = finops::default_metadata_endpoint(c.cloud);
  if (!c.now) c.now = finops_wall_now;
  return c;
}

} // namespace

struct metadata_notice_source::impl {
  metadata_notice_config cfg;
  std::string origin; ///< "aws metadata at http://...", for errors
  finops::cloud_notice_reader reader;
  httplib::Client http;
  std::string token;             ///< AWS session token ("" none yet)
  time_point token_renew_at{};   ///< renewed past this
  time_point token_expires_at{}; ///< usable until this, if renewal fails

  explicit impl(metadata_notice_config c)
      : cfg(resolved(std::move(c))), origin(std::string{finops::to_string(cfg.cloud)} +
                                            " metadata at " + cfg.endpoint),
        reader(cfg.cloud, cfg.vm), http(cfg.endpoint) {
    auto secs = [](std::chrono::milliseconds ms) {
      return std::make_pair(static_cast<time_t>(ms.count() / 1000),
                            static_cast<time_t>(ms.count() % 1000 * 1000));
    };
    auto [cs, cus] = secs(cfg.connect_timeout);
    auto [rs, rus] = secs(cfg.read_timeout);
    http.set_connection_timeout(cs, cus);
    http.set_read_timeout(rs, rus);
    http.set_write_timeout(rs, rus);
    // The metadata service is local: no proxy, and nothing to follow.
    http.set_follow_location(false);
  }

  result<void> fetch_token(time_point now) {
    httplib::Headers h{
        {finops::aws_token_ttl_header, std::to_string(finops::aws_token_ttl_seconds)}};
    auto r = http.Put(finops::aws_token_path, h, "", "text/plain");
    if (!r)
      return error{errc::unavailable,
                   origin + ": no session token: " + httplib::to_string(r.error())};
    if (r->status != 200 || r->body.empty() ||
        r->body.size() > finops::max_metadata_body_bytes)
      return error{errc::unavailable,
                   origin + ": no session token: HTTP " + std::to_string(r->status)};
    token = r->body;
    // Renew well before it expires.
    token_renew_at = now + std::chrono::seconds{finops::aws_token_ttl_seconds / 2};
    token_expires_at = now + std::chrono::seconds{finops::aws_token_ttl_seconds};
    return {};
  }

  result<std::optional<time_point>> poll() {
    const auto now = cfg.now();
    const auto req = finops::notice_request(cfg.cloud);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (cfg.cloud == finops::notice_cloud::aws &&
          (token.empty() || now >= token_renew_at))
        if (auto t = fetch_token(now); !t) {
          // A renewal that fails keeps the old token while it is valid.
          if (token.empty() || now >= token_expires_at) return std::move(t).err();
        }
      httplib::Headers h(req.headers.begin(), req.headers.end());
      if (cfg.cloud == finops::notice_cloud::aws)
        h.emplace(finops::aws_token_header, token);
      std::string body;
      bool over = false;
      auto r = http.Get(req.path, h, [&](const char* data, size_t n) {
        if (body.size() + n > finops::max_metadata_body_bytes) {
          over = true;
          return false;
        }
        body.append(data, n);
        return true;
      });
      if (over)
        return error{errc::invalid_argument,
                     origin + ": " + req.path + ": an answer over " +
                         std::to_string(finops::max_metadata_body_bytes) + " bytes"};
      if (!r)
        return error{errc::unavailable,
                     origin + ": " + req.path + ": " + httplib::to_string(r.error())};
      if (cfg.cloud == finops::notice_cloud::aws && r->status == 401 && attempt == 0) {
        token.clear(); // expired or revoked: a new one, once
        continue;
      }
      return reader.on_response(r->status, body, now);
    }
    return error{errc::unavailable, origin + ": the session token was refused"};
  }
};

metadata_notice_source::metadata_notice_source(metadata_notice_config cfg)
    : impl_(std::make_unique<impl>(std::move(cfg))) {}

metadata_notice_source::~metadata_notice_source() = default;

result<std::optional<time_point>> metadata_notice_source::poll() {
  return impl_->poll();
}

} // namespace troupe::actors
