#pragma once
/// The bearer tokens of the head's HTTP API: each maps to a tenant and an
/// admin flag. Only SHA-256 digests of tokens are kept (in memory and in the
/// tokens file); a presented token is hashed and compared in constant time
/// against every stored digest, so neither plaintext tokens nor timing say
/// which tokens exist.
///
/// The tokens file (docs/API.md), one token a line:
///
///   # comment lines and blank lines are ignored
///   sha256:<64 lowercase or uppercase hex digits> tenant=<name> [admin]
///
/// Fields are separated by spaces or tabs and may come in any order after
/// the digest; a tenant name is [A-Za-z0-9._-], 1..63 bytes. Errors name
/// `file:line` and never quote a field that might be a plaintext token.
/// mint_api_token() makes a new token and the line to store for it.
#include "troupe/actors/control_plane.hpp"
#include "troupe/runtime/result.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::actors {

/// A SHA-256 digest of a token.
using token_digest = std::array<uint8_t, 32>;

/// SHA-256 of `token`.
[[nodiscard]] token_digest digest_token(std::string_view token);
/// Lowercase hex of a digest (64 characters).
[[nodiscard]] std::string to_hex(const token_digest& digest);

/// Whether `tenant` is a valid tenant name: [A-Za-z0-9._-], 1..63 bytes.
[[nodiscard]] bool valid_tenant_name(std::string_view tenant) noexcept;

class api_tokens {
public:
  /// Reads a tokens file. Errors: unavailable (cannot read the file),
  /// invalid_argument naming `path:line` (a malformed line, a duplicate
  /// digest).
  [[nodiscard]] static result<api_tokens> load_file(const std::string& path);
  /// Parses the text of a tokens file; `source` names it in errors.
  [[nodiscard]] static result<api_tokens> parse(std::string_view text,
                                                std::string_view source);

  /// Adds one token by its digest. invalid_argument for a bad tenant name
  /// or a digest already present.
  [[nodiscard]] result<void> add(const token_digest& digest, caller who);

  /// Who `token` belongs to, or nullopt. Compares the token's digest with
  /// every stored digest in constant time (the loop never stops early).
  [[nodiscard]] std::optional<caller> authenticate(std::string_view token) const;

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

private:
  struct entry {
    token_digest digest;
    caller who;
  };
  std::vector<entry> entries_;
};

/// A new token and what to store for it.
struct minted_token {
  std::string token; ///< "trp_" + 43 base64url characters (256 random bits)
  std::string line;  ///< the tokens-file line: "sha256:<hex> tenant=<t>[ admin]"
};

/// Mints a token from OpenSSL's RAND_bytes for `tenant`. invalid_argument for
/// a bad tenant name, unavailable when no secure randomness is to be had.
[[nodiscard]] result<minted_token> mint_api_token(std::string_view tenant, bool admin);

} // namespace troupe::actors
