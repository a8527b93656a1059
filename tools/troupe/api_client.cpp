#include "api_client.hpp"

#include "troupe/actors/local_cluster.hpp"

#include <cstdlib>
#include <httplib.h>
#include <iostream>

namespace troupe::tools {

using json = nlohmann::json;

bool resolve(api_opts& o, const char* who) {
  if (o.token.empty())
    if (const char* t = std::getenv("TROUPE_TOKEN")) o.token = t;
  if (o.url.empty() || o.token.empty()) {
    auto c = actors::read_local_cluster(o.dir);
    if (c) {
      if (o.url.empty()) o.url = c->api_url;
      if (o.token.empty()) o.token = c->admin_token;
    }
  }
  if (o.url.empty()) {
    std::cerr << "troupe " << who
              << ": no API URL: give --url, or --dir of a local cluster "
              << "(troupe up)\n";
    return false;
  }
  return true;
}

std::optional<std::string> call_text(const api_opts& o, const char* who,
                                     const std::string& method, const std::string& path,
                                     const std::string& body) {
  httplib::Client cli(o.url);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(30);
  httplib::Headers h{{"Authorization", "Bearer " + o.token}};
  httplib::Result r = method == "GET"
                          ? cli.Get(path.c_str(), h)
                          : cli.Post(path.c_str(), h, body, "application/json");
  if (!r) {
    std::cerr << "troupe " << who << ": cannot reach " << o.url << ": "
              << httplib::to_string(r.error()) << '\n';
    return std::nullopt;
  }
  if (r->status >= 300) {
    auto j = json::parse(r->body, nullptr, false);
    std::cerr << "troupe " << who << ": HTTP " << r->status;
    if (!j.is_discarded() && j.contains("error"))
      std::cerr << " " << j["error"].value("code", "") << ": "
                << j["error"].value("message", "");
    std::cerr << '\n';
    return std::nullopt;
  }
  return std::move(r->body);
}

std::optional<json> call(const api_opts& o, const char* who, const std::string& method,
                         const std::string& path, const std::string& body) {
  auto text = call_text(o, who, method, path, body);
  if (!text) return std::nullopt;
  auto j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) {
    std::cerr << "troupe " << who << ": unreadable answer\n";
    return std::nullopt;
  }
  return j;
}

void add_api_options(CLI::App* c, api_opts& o) {
  c->add_option("--dir", o.dir, "A local cluster's directory (troupe up): URL and token");
  c->add_option("--url", o.url, "The head's API, e.g. http://head:8470");
  c->add_option("--token", o.token, "Bearer token (default: $TROUPE_TOKEN, or --dir's)");
  c->add_flag("--json", o.json_out, "JSON instead of a table");
}

} // namespace troupe::tools
