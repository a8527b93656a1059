# troupe wire format, protocol version 1 (docs/TRANSPORT.md).
#
# Every UCX active message between two troupe nodes carries Cap'n Proto
# messages in the standard flat-array framing (segment table, then
# segments). Before a peer is authenticated only the handshake structs are
# accepted; after, a frame holds one or more Envelopes back to back.
#
# Compatibility rules: fields are only ever added (new ordinals), never
# renumbered or retyped; a change that old nodes cannot ignore safely bumps
# `protocolVersion`, and the handshake rejects a peer whose version range
# does not overlap ours with a clear error.

@0x8d1ca92e0c72f095;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("troupe::transport::wire");

const protocolVersion :UInt16 = 1;
const minProtocolVersion :UInt16 = 1;

# An actor somewhere in the cluster. `node` is the 64-bit id of the node's
# name (FNV-1a), `incarnation` tells restarts of one node apart, `actor` is
# the actor's id on its node; actor 0 is "nobody" (an anonymous sender).
struct ActorRef {
  node @0 :UInt64;
  incarnation @1 :UInt64;
  actor @2 :UInt64;
}

# What an envelope asks of the receiving node.
enum Kind {
  message @0;       # deliver payload to `receiver` (fire and forget)
  request @1;       # deliver; the answer comes back as `response`
  response @2;      # the answer to request `correlation`
  down @3;          # `sender` ended (payload: reason); for monitors/links
  exit @4;          # exit signal from linked `sender` to `receiver`
  link @5;          # link `sender` (on the sending node) with `receiver`
  unlink @6;
  monitor @7;       # tell the sending node when `receiver` ends
  demonitor @8;
  unknownType @9;   # receiver could not decode type `typeIds[0]`
  credit @10;       # receiver grants `correlation` more bytes of window
}

struct Envelope {
  sender @0 :ActorRef;
  receiver @1 :ActorRef;
  kind @2 :Kind;
  # CAF message id of a request/response (its integer value), 0 otherwise.
  correlation @3 :UInt64;
  # Stable message-type ids (transport::message_types), one per element of
  # the payload, in order.
  typeIds @4 :List(UInt64);
  # Elements serialized one after another (CAF binary format).
  payload @5 :Data;
  # Trace context (W3C-style ids); traceHi = traceLo = 0 means none.
  traceHi @6 :UInt64;
  traceLo @7 :UInt64;
  spanId @8 :UInt64;
  sampled @9 :Bool;
  tenant @10 :Text;
  # When non-zero the payload is not inline: this many bytes follow as a
  # rendezvous transfer of the same active message (large payloads).
  bulkSize @11 :UInt64;
}

# -- node handshake (mutual HMAC-SHA256 challenge-response) --------------------

# Client -> server, first message on a new endpoint.
struct Hello {
  versionMin @0 :UInt16;
  versionMax @1 :UInt16;
  nodeName @2 :Text;
  nodeId @3 :UInt64;
  incarnation @4 :UInt64;
  nonce @5 :Data;            # 32 random bytes
  listenAddress @6 :Text;    # host:port others can reach this node at
}

# Server -> client: the server's identity, its nonce, and its proof.
struct HelloAck {
  version @0 :UInt16;        # the version both will speak
  nodeName @1 :Text;
  nodeId @2 :UInt64;
  incarnation @3 :UInt64;
  nonce @4 :Data;
  mac @5 :Data;              # HMAC-SHA256, see transport/src/auth.cpp
  listenAddress @6 :Text;
}

# Client -> server: the client's proof.
struct Proof {
  mac @0 :Data;
}

# Server -> client: accepted (or not, with the reason).
struct Verdict {
  accepted @0 :Bool;
  reason @1 :Text;
}

# One handshake step; the endpoint closes after a rejecting Verdict.
struct HandshakeMessage {
  union {
    hello @0 :Hello;
    helloAck @1 :HelloAck;
    proof @2 :Proof;
    verdict @3 :Verdict;
  }
}
