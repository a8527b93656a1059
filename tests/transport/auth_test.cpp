#include "troupe/runtime/errc.hpp"
#include "troupe/transport/auth.hpp"

#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace troupe::transport;

namespace {

using bytes = std::vector<std::byte>;

bytes fixed_nonce(uint8_t seed) {
  bytes b(nonce_bytes);
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = static_cast<std::byte>(seed + i * 3);
  return b;
}

const std::string secret_a = "0123456789abcdef-secret-A";
const std::string secret_b = "fedcba9876543210-secret-B";

local_identity client_id() {
  return {"node-client", 11, "10.0.0.1:7000"};
}
local_identity server_id() {
  return {"node-server", 22, "10.0.0.2:7000"};
}

/// Sends a handshake message through the wire format, as the fabric does.
template <class T> T over_wire(const T& m) {
  auto back = decode_handshake(encode_handshake(m), {});
  REQUIRE(back.ok());
  REQUIRE(std::holds_alternative<T>(*back));
  return std::get<T>(std::move(*back));
}

/// Where a handshake ended.
struct outcome {
  troupe::error server_error; ///< from on_hello or on_proof
  troupe::error client_error; ///< from on_hello_ack or on_verdict
  bool done = false;          ///< both sides succeeded
};

/// Runs one full handshake; the server sends a rejecting verdict when the
/// client's proof fails, and the client sees it.
outcome run(client_handshake& c, server_handshake& s) {
  outcome o;
  auto ack = s.on_hello(over_wire(c.start()));
  if (!ack) {
    o.server_error = ack.err();
    return o;
  }
  auto pr = c.on_hello_ack(over_wire(*ack));
  if (!pr) {
    o.client_error = pr.err();
    return o;
  }
  auto checked = s.on_proof(over_wire(*pr));
  verdict v{checked.ok(), checked.ok() ? "" : checked.err().message()};
  if (!checked) o.server_error = checked.err();
  auto fin = c.on_verdict(over_wire(v));
  if (!fin) o.client_error = fin.err();
  o.done = checked.ok() && fin.ok();
  return o;
}

outcome run(cluster_secrets client, cluster_secrets server) {
  client_handshake c(client_id(), std::move(client), fixed_nonce(1));
  server_handshake s(server_id(), std::move(server), fixed_nonce(2));
  return run(c, s);
}

bytes hex(std::string_view h) {
  bytes b;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    b.push_back(
        static_cast<std::byte>(std::stoi(std::string{h.substr(i, 2)}, nullptr, 16)));
  return b;
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span{s.data(), s.size()});
}

} // namespace

TEST_SUITE("transport.auth") {
  TEST_CASE("hmac_sha256 matches RFC 4231 test case 2") {
    const auto mac =
        hmac_sha256(as_bytes("Jefe"), as_bytes("what do ya want for nothing?"));
    CHECK(bytes(mac.begin(), mac.end()) ==
          hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
  }

  TEST_CASE("constant_time_equal compares contents and sizes") {
    const bytes a = hex("00112233");
    CHECK(constant_time_equal(a, hex("00112233")));
    CHECK_FALSE(constant_time_equal(a, hex("00112234")));
    CHECK_FALSE(constant_time_equal(a, hex("001122")));
    CHECK_FALSE(constant_time_equal(a, hex("0011223344")));
    CHECK(constant_time_equal({}, {}));
  }

  TEST_CASE("random_bytes gives fresh bytes of the asked size") {
    auto a = random_bytes(nonce_bytes);
    auto b = random_bytes(nonce_bytes);
    CHECK(a.size() == nonce_bytes);
    CHECK(a != b);
    CHECK(random_bytes(0).empty());
  }

  TEST_CASE("cluster secrets need 16 bytes") {
    CHECK(cluster_secrets{secret_a, ""}.validate().ok());
    CHECK(cluster_secrets{secret_a, secret_b}.validate().ok());
    auto short_current = cluster_secrets{"short", ""}.validate();
    REQUIRE_FALSE(short_current.ok());
    CHECK(short_current.err().is(troupe::runtime::errc::invalid_argument));
    CHECK(short_current.err().message().find("current") != std::string::npos);
    CHECK_FALSE(cluster_secrets{"", ""}.validate().ok());
    CHECK_FALSE(cluster_secrets{secret_a, "short"}.validate().ok());
  }

  TEST_CASE("both sides succeed with the same secret and learn each other") {
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto o = run(c, s);
    CHECK(o.done);
    CHECK_FALSE(o.server_error);
    CHECK_FALSE(o.client_error);
    CHECK(c.peer().node_name == "node-server");
    CHECK(c.peer().node_id == node_id_of("node-server"));
    CHECK(c.peer().incarnation == 22);
    CHECK(c.peer().version == protocol_version);
    CHECK(c.peer().listen_address == "10.0.0.2:7000");
    CHECK(s.peer().node_name == "node-client");
    CHECK(s.peer().node_id == node_id_of("node-client"));
    CHECK(s.peer().incarnation == 11);
    CHECK(s.peer().version == protocol_version);
    CHECK(s.peer().listen_address == "10.0.0.1:7000");
  }

  TEST_CASE("a wrong secret is detected by the client and by the server") {
    // The client checks the server's MAC first, so a mismatched pair is
    // stopped at the client.
    auto o = run({secret_a, ""}, {secret_b, ""});
    CHECK_FALSE(o.done);
    REQUIRE(o.client_error);
    CHECK(o.client_error.is(errc::auth_failed));
    CHECK(o.client_error.message().find("server node-server") != std::string::npos);

    // A client that skips the check (or lies) is stopped by the server: the
    // server detects a bad client proof.
    client_handshake good(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto ack = s.on_hello(good.start());
    REQUIRE(ack.ok());
    client_handshake liar(client_id(), {secret_b, secret_a}, fixed_nonce(1));
    auto forged = liar.on_hello_ack(*ack); // accepts via next, proves with secret_b
    REQUIRE(forged.ok());
    auto checked = s.on_proof(*forged);
    REQUIRE_FALSE(checked.ok());
    CHECK(checked.err().is(errc::auth_failed));
    CHECK(checked.err().message().find("client node-client") != std::string::npos);
    // ... and the client learns of the rejection from the verdict.
    auto fin = liar.on_verdict({false, checked.err().message()});
    REQUIRE_FALSE(fin.ok());
    CHECK(fin.err().is(errc::auth_failed));
    CHECK(fin.err().message().find("rejected") != std::string::npos);
  }

  TEST_CASE("a missing or garbage proof is rejected") {
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    REQUIRE(s.on_hello(c.start()).ok());
    CHECK(s.on_proof(proof{}).err().is(errc::auth_failed));
    CHECK(s.on_proof(proof{bytes(mac_bytes)}).err().is(errc::auth_failed));
    server_handshake fresh(server_id(), {secret_a, ""}, fixed_nonce(2));
    CHECK(fresh.on_proof(proof{bytes(mac_bytes)}).err().is(errc::auth_failed));
  }

  TEST_CASE("rotation: current and next are both accepted, either way round") {
    // Step 1: the new secret B is deployed as `next` on some nodes.
    CHECK(run({secret_a, secret_b}, {secret_a, ""}).done);
    CHECK(run({secret_a, ""}, {secret_a, secret_b}).done);
    // Step 2: nodes switch to current = B, next = A one by one.
    CHECK(run({secret_b, secret_a}, {secret_a, secret_b})
              .done); // client current = server next
    CHECK(run({secret_a, secret_b}, {secret_b, secret_a})
              .done); // server current = client next
    CHECK(run({secret_b, secret_a}, {secret_b, ""}).done);
    // Step 3: A is dropped; a node still proving with A is refused.
    CHECK(run({secret_b, ""}, {secret_b, ""}).done);
    auto stale_client = run({secret_a, ""}, {secret_b, ""});
    CHECK_FALSE(stale_client.done);
    auto o = run({secret_b, ""}, {secret_a, secret_b}); // server proves with A
    CHECK_FALSE(o.done);
    CHECK(o.client_error.is(errc::auth_failed));
  }

  TEST_CASE("a proof replayed from another connection fails") {
    // Connection 1, observed by an attacker.
    client_handshake c1(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s1(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto ack1 = s1.on_hello(c1.start());
    REQUIRE(ack1.ok());
    auto proof1 = c1.on_hello_ack(*ack1);
    REQUIRE(proof1.ok());
    REQUIRE(s1.on_proof(*proof1).ok());

    // Connection 2: same hello replayed, the server picks a new nonce; the
    // old proof does not match it.
    server_handshake s2(server_id(), {secret_a, ""}, fixed_nonce(3));
    auto ack2 = s2.on_hello(c1.start());
    REQUIRE(ack2.ok());
    CHECK(ack2->mac != ack1->mac);
    auto replayed = s2.on_proof(*proof1);
    REQUIRE_FALSE(replayed.ok());
    CHECK(replayed.err().is(errc::auth_failed));

    // Replaying an old hello_ack to a client with a new nonce fails as well.
    client_handshake c2(client_id(), {secret_a, ""}, fixed_nonce(4));
    auto old_ack = c2.on_hello_ack(*ack1);
    REQUIRE_FALSE(old_ack.ok());
    CHECK(old_ack.err().is(errc::auth_failed));
  }

  TEST_CASE("reflection: the server's own MAC is not a client proof") {
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto ack = s.on_hello(c.start());
    REQUIRE(ack.ok());
    auto reflected = s.on_proof(proof{ack->mac});
    REQUIRE_FALSE(reflected.ok());
    CHECK(reflected.err().is(errc::auth_failed));
  }

  TEST_CASE("a tampered version range or identity breaks the MACs") {
    // An on-path attacker lowers the client's offered maximum: the server's
    // MAC covers what it received, the client checks what it sent.
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto h = c.start();
    h.version_min = 0;
    auto ack = s.on_hello(h);
    REQUIRE(ack.ok());
    auto r = c.on_hello_ack(*ack);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::auth_failed));

    // A changed incarnation in the hello_ack is caught too.
    client_handshake c2(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s2(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto ack2 = s2.on_hello(c2.start());
    REQUIRE(ack2.ok());
    ack2->incarnation += 1;
    CHECK(c2.on_hello_ack(*ack2).err().is(errc::auth_failed));
  }

  TEST_CASE("no common protocol version gives a clear protocol_mismatch") {
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto h = c.start();
    h.node_name = "b";
    h.node_id = node_id_of("b");
    h.version_min = 2;
    h.version_max = 3;
    auto r = s.on_hello(h);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::protocol_mismatch));
    CHECK(r.err().message() ==
          "peer b speaks troupe protocol 2..3, this node speaks 1..1");

    // A server choosing a version the client does not speak.
    auto ack = s.on_hello(c.start());
    REQUIRE(ack.ok());
    ack->version = 7;
    auto cr = c.on_hello_ack(*ack);
    REQUIRE_FALSE(cr.ok());
    CHECK(cr.err().is(errc::protocol_mismatch));
    CHECK(cr.err().message().find("7") != std::string::npos);
  }

  TEST_CASE("the highest common version is chosen") {
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto h = c.start();
    h.version_max = 9; // a newer client also speaks ours
    auto ack = s.on_hello(h);
    REQUIRE(ack.ok());
    CHECK(ack->version == protocol_version);
    CHECK(s.peer().version == protocol_version);
  }

  TEST_CASE("a node id that is not the id of the name is refused") {
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto h = c.start();
    h.node_id ^= 1;
    auto r = s.on_hello(h);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(troupe::runtime::errc::invalid_argument));
    CHECK(r.err().message().find("node-client") != std::string::npos);

    auto ack = s.on_hello(c.start());
    REQUIRE(ack.ok());
    ack->node_name = "someone-else";
    CHECK(c.on_hello_ack(*ack).err().is(troupe::runtime::errc::invalid_argument));
  }

  TEST_CASE("a node connecting to itself is refused on both sides") {
    // Server side: the hello claims the server's own id.
    client_handshake self_client(server_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto r = s.on_hello(self_client.start());
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(troupe::runtime::errc::invalid_argument));
    CHECK(r.err().message().find("own id") != std::string::npos);

    // Client side: the hello_ack claims the client's own id.
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    server_handshake mirror(client_id(), {secret_a, ""}, fixed_nonce(2));
    auto h = c.start();
    h.node_name = "other";
    h.node_id = node_id_of("other");
    auto ack = mirror.on_hello(h);
    REQUIRE(ack.ok());
    auto cr = c.on_hello_ack(*ack);
    REQUIRE_FALSE(cr.ok());
    CHECK(cr.err().is(troupe::runtime::errc::invalid_argument));
  }

  TEST_CASE("a bad nonce in the hello is refused") {
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    auto h = c.start();
    h.nonce.pop_back();
    CHECK(s.on_hello(h).err().is(troupe::runtime::errc::invalid_argument));
  }

  TEST_CASE("out-of-order steps are refused") {
    client_handshake c(client_id(), {secret_a, ""}, fixed_nonce(1));
    CHECK(c.on_verdict({true, ""}).err().is(errc::auth_failed));
    server_handshake s(server_id(), {secret_a, ""}, fixed_nonce(2));
    auto ack = s.on_hello(c.start());
    REQUIRE(ack.ok());
    REQUIRE(c.on_hello_ack(*ack).ok());
    CHECK(c.on_hello_ack(*ack).err().is(errc::auth_failed));
    CHECK_FALSE(s.on_hello(c.start()).ok());
  }
}
