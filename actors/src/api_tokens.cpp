#include "troupe/actors/api_tokens.hpp"

#include "troupe/actors/errc.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sstream>
#include <utility>

namespace troupe::actors {
namespace {

constexpr std::string_view digest_prefix = "sha256:";

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<token_digest> parse_hex_digest(std::string_view hex) {
  token_digest out{};
  if (hex.size() != out.size() * 2) return std::nullopt;
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(hex[2 * i]);
    int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return out;
}

/// The fields of one line, split at spaces and tabs.
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
      ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t')
      ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::string base64url(const unsigned char* data, std::size_t n) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += alphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

} // namespace

token_digest digest_token(std::string_view token) {
  token_digest out{};
  unsigned int len = 0;
  // EVP_Digest with SHA-256 cannot fail short of memory exhaustion.
  int ok =
      EVP_Digest(token.data(), token.size(), out.data(), &len, EVP_sha256(), nullptr);
  TROUPE_ASSERT(ok == 1 && len == out.size(), "EVP_Digest(SHA-256) failed");
  return out;
}

std::string to_hex(const token_digest& digest) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (uint8_t b : digest) {
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

bool valid_tenant_name(std::string_view tenant) noexcept {
  if (tenant.empty() || tenant.size() > 63) return false;
  for (char c : tenant) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

result<api_tokens> api_tokens::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return error{errc::unavailable,
                 "cannot read tokens file " + path + ": " + std::strerror(errno)};
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return error{errc::unavailable, "cannot read tokens file " + path};
  return parse(text.str(), path);
}

result<api_tokens> api_tokens::parse(std::string_view text, std::string_view source) {
  api_tokens out;
  std::vector<std::size_t> line_of; // line of each entry, for duplicate errors
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string where = std::string(source) + ":" + std::to_string(line_no) + ": ";
    const auto fail = [&](const std::string& what) {
      return error{errc::invalid_argument, where + what};
    };
    for (char c : line) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
        return fail("control character in line");
    }
    auto fields = split_fields(line);
    if (fields.empty() || fields[0].front() == '#') continue;

    // The first field must be a digest. Never quote it back: a line that is
    // not a digest may well be a plaintext token pasted by mistake.
    std::string_view first = fields[0];
    if (first.substr(0, digest_prefix.size()) != digest_prefix) {
      return fail("expected \"sha256:<64 hex digits>\" first (store the digest printed "
                  "when the token was minted, never the token itself)");
    }
    auto digest = parse_hex_digest(first.substr(digest_prefix.size()));
    if (!digest) return fail("expected \"sha256:\" followed by 64 hex digits");

    caller who;
    bool have_tenant = false;
    for (std::size_t i = 1; i < fields.size(); ++i) {
      std::string_view f = fields[i];
      if (f == "admin") {
        if (who.admin) return fail("\"admin\" given twice");
        who.admin = true;
      } else if (f.substr(0, 7) == "tenant=") {
        if (have_tenant) return fail("tenant= given twice");
        std::string_view t = f.substr(7);
        if (!valid_tenant_name(t)) {
          return fail("tenant: expected a name of [A-Za-z0-9._-], 1..63 bytes");
        }
        who.tenant = std::string(t);
        have_tenant = true;
      } else if (f.front() == '#') {
        break; // trailing comment
      } else {
        return fail("field " + std::to_string(i + 1) +
                    ": expected tenant=<name> or admin");
      }
    }
    if (!have_tenant) return fail("missing tenant=<name>");
    for (std::size_t i = 0; i < out.entries_.size(); ++i) {
      if (out.entries_[i].digest == *digest) {
        return fail("the same token digest as line " + std::to_string(line_of[i]));
      }
    }
    out.entries_.push_back({*digest, std::move(who)});
    line_of.push_back(line_no);
  }
  return out;
}

result<void> api_tokens::add(const token_digest& digest, caller who) {
  if (!valid_tenant_name(who.tenant)) {
    return error{errc::invalid_argument,
                 "tenant: expected a name of [A-Za-z0-9._-], 1..63 bytes"};
  }
  for (const auto& e : entries_) {
    if (e.digest == digest) return error{errc::invalid_argument, "token already present"};
  }
  entries_.push_back({digest, std::move(who)});
  return ok();
}

std::optional<caller> api_tokens::authenticate(std::string_view token) const {
  const token_digest presented = digest_token(token);
  const entry* found = nullptr;
  for (const auto& e : entries_) {
    // Every digest is compared in full, matching or not.
    bool same = CRYPTO_memcmp(e.digest.data(), presented.data(), presented.size()) == 0;
    if (same && found == nullptr) found = &e;
  }
  if (found == nullptr) return std::nullopt;
  return found->who;
}

result<minted_token> mint_api_token(std::string_view tenant, bool admin) {
  if (!valid_tenant_name(tenant)) {
    return error{errc::invalid_argument,
                 "tenant: expected a name of [A-Za-z0-9._-], 1..63 bytes"};
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return error{errc::unavailable, "no secure randomness (OpenSSL RAND_bytes failed)"};
  }
  minted_token out;
  out.token = "trp_" + base64url(raw, sizeof raw);
  OPENSSL_cleanse(raw, sizeof raw);
  out.line = std::string(digest_prefix) + to_hex(digest_token(out.token)) +
             " tenant=" + std::string(tenant) + (admin ? " admin" : "");
  return out;
}

} // namespace troupe::actors
