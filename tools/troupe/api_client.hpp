#pragma once
// What the CLI's API commands share: where the head's HTTP API is and the
// bearer token (flags, $TROUPE_TOKEN, or a local cluster's directory), and
// one request that prints the API's error and returns nothing on failure.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace troupe::tools {

struct api_opts {
  std::string dir = "/tmp/troupe-local";
  std::string url;
  std::string token;
  bool json_out = false;
};

/// Fills the API's URL and token: flags, then TROUPE_TOKEN, then the local
/// cluster's directory. False (and a message naming `who`) without a URL.
bool resolve(api_opts& o, const char* who);

/// The body of a successful (status < 300) GET or POST to the API; on
/// failure prints "troupe WHO: ..." with the API's error and returns nullopt.
std::optional<std::string> call_text(const api_opts& o, const char* who,
                                     const std::string& method, const std::string& path,
                                     const std::string& body = {});
/// call_text's body as JSON (nullopt, with a message, when unreadable).
std::optional<nlohmann::json> call(const api_opts& o, const char* who,
                                   const std::string& method, const std::string& path,
                                   const std::string& body = {});

/// --dir, --url, --token, --json.
void add_api_options(CLI::App* c, api_opts& o);

} // namespace troupe::tools
