// The HTTP API's token table: the tokens file against hostile input (a
// table of rows, each with the error it must give, none quoting what may be
// a plaintext token), digests, authentication and minting.

#include "troupe/actors/api_tokens.hpp"
#include "troupe/actors/errc.hpp"

#include <cstdio>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

using namespace troupe::actors;

namespace {

const std::string digest_a(64, 'a');
const std::string digest_b(64, 'b');

struct bad_file {
  const char* what;
  std::string text;
  std::string error; ///< expected in the message, after "tokens:"
};

} // namespace

TEST_SUITE("api_tokens") {
  TEST_CASE("digests are SHA-256 in lowercase hex") {
    // FIPS 180-2 test vector for "abc".
    CHECK(to_hex(digest_token("abc")) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(to_hex(digest_token("")) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  }

  TEST_CASE("a tokens file maps digests to tenants and admin flags") {
    const std::string text = "# troupe API tokens\n"
                             "\n"
                             "sha256:" +
                             to_hex(digest_token("alpha")) + " tenant=acme\n" +
                             "  sha256:" + to_hex(digest_token("root")) +
                             "\tadmin tenant=ops   # the operators\r\n" +
                             "sha256:" + std::string(64, 'C') + " tenant=globex.ml-2_x";
    auto tokens = api_tokens::parse(text, "tokens");
    REQUIRE_MESSAGE(tokens.ok(), tokens.err().to_string());
    CHECK(tokens->size() == 3);
    auto a = tokens->authenticate("alpha");
    REQUIRE(a);
    CHECK(*a == caller{"acme", false});
    auto r = tokens->authenticate("root");
    REQUIRE(r);
    CHECK(*r == caller{"ops", true});
    CHECK_FALSE(tokens->authenticate("alpha "));
    CHECK_FALSE(tokens->authenticate(""));
    CHECK_FALSE(tokens->authenticate("ALPHA"));
  }

  TEST_CASE("hostile tokens files fail naming file:line and never quote a token") {
    const std::string secret = "trp_ThisIsAPlaintextTokenPastedByMistake0123456";
    const std::vector<bad_file> rows = {
        {"plaintext token", secret + " tenant=acme",
         "tokens:1: expected \"sha256:<64 hex digits>\" first"},
        {"plaintext token alone", "\n" + secret, "tokens:2: expected \"sha256:"},
        {"short digest", "sha256:abc tenant=acme",
         "tokens:1: expected \"sha256:\" followed"},
        {"long digest", "sha256:" + digest_a + "a tenant=acme", "followed by 64 hex"},
        {"non-hex digest", "sha256:" + std::string(63, 'a') + "g tenant=acme",
         "followed by 64 hex"},
        {"other algorithm", "sha512:" + digest_a + " tenant=acme", "expected \"sha256:"},
        {"no tenant", "sha256:" + digest_a, "tokens:1: missing tenant=<name>"},
        {"admin but no tenant", "sha256:" + digest_a + " admin", "missing tenant"},
        {"empty tenant", "sha256:" + digest_a + " tenant=", "tenant: expected a name"},
        {"tenant with slash", "sha256:" + digest_a + " tenant=a/b", "tenant: expected"},
        {"tenant too long", "sha256:" + digest_a + " tenant=" + std::string(64, 'x'),
         "1..63 bytes"},
        {"two tenants", "sha256:" + digest_a + " tenant=a tenant=b",
         "tenant= given twice"},
        {"admin twice", "sha256:" + digest_a + " tenant=a admin admin",
         "\"admin\" given twice"},
        {"unknown field holding a token", "sha256:" + digest_a + " tenant=a " + secret,
         "tokens:1: field 3: expected tenant=<name> or admin"},
        {"duplicate digest",
         "sha256:" + digest_a + " tenant=a\n# x\nsha256:" + std::string(64, 'A') +
             " tenant=b",
         "tokens:3: the same token digest as line 1"},
        {"control character", "sha256:" + digest_a + " tenant=a\x01",
         "control character"},
        {"NUL byte",
         std::string("sha256:") + digest_a + " tenant=a" + std::string(1, '\0'),
         "control character"},
        {"fine line then bad line", "sha256:" + digest_b + " tenant=b\nadmin",
         "tokens:2:"},
    };
    for (const auto& row : rows) {
      CAPTURE(row.what);
      auto parsed = api_tokens::parse(row.text, "tokens");
      REQUIRE_FALSE(parsed.ok());
      CHECK(parsed.err().is(errc::invalid_argument));
      CHECK(parsed.err().message().find(row.error) != std::string::npos);
      CHECK(parsed.err().message().find(secret) == std::string::npos);
      CHECK(parsed.err().message().find("ThisIsAPlaintext") == std::string::npos);
    }
  }

  TEST_CASE("load_file reads a file and names it in errors") {
    auto dir = std::filesystem::temp_directory_path() /
               ("troupe-tokens-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto path = (dir / "tokens").string();
    {
      std::ofstream out(path);
      out << "sha256:" << to_hex(digest_token("t1")) << " tenant=acme\nbogus\n";
    }
    auto bad = api_tokens::load_file(path);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().message().rfind(path + ":2: ", 0) == 0);
    {
      std::ofstream out(path);
      out << "sha256:" << to_hex(digest_token("t1")) << " tenant=acme\n";
    }
    auto good = api_tokens::load_file(path);
    REQUIRE(good.ok());
    CHECK(good->authenticate("t1"));
    auto missing = api_tokens::load_file((dir / "nope").string());
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.err().is(errc::unavailable));
    CHECK(missing.err().message().find("nope") != std::string::npos);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("minted tokens are random, well formed and authenticate through their line") {
    std::set<std::string> seen;
    std::vector<std::pair<std::string, caller>> minted;
    std::string file;
    for (int i = 0; i < 20; ++i) {
      caller who{i % 2 ? "acme" : "ops", i % 2 == 0};
      auto m = mint_api_token(who.tenant, who.admin);
      REQUIRE(m.ok());
      CHECK(m->token.size() == 4 + 43);
      CHECK(m->token.rfind("trp_", 0) == 0);
      CHECK(m->token.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789-_",
                4) == std::string::npos);
      CHECK(m->line.find(m->token) == std::string::npos); // the line holds no token
      CHECK(seen.insert(m->token).second);
      minted.emplace_back(m->token, who);
      file += m->line + "\n";
    }
    auto tokens = api_tokens::parse(file, "minted");
    REQUIRE_MESSAGE(tokens.ok(), tokens.err().to_string());
    CHECK(tokens->size() == 20);
    for (const auto& [token, who] : minted)
      CHECK(tokens->authenticate(token) == who);
    auto bad = mint_api_token("no spaces", false);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().is(errc::invalid_argument));
  }

  TEST_CASE("add refuses duplicates and bad tenants") {
    api_tokens t;
    REQUIRE(t.add(digest_token("x"), {"acme", false}).ok());
    CHECK_FALSE(t.add(digest_token("x"), {"other", true}).ok());
    CHECK_FALSE(t.add(digest_token("y"), {"", false}).ok());
    CHECK(t.authenticate("x") == caller{"acme", false});
  }
}
