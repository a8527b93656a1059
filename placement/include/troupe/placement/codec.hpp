#pragma once
/// JSON encoding of placement requests and allocations: what the placement
/// actor stores in the durable store and what the HTTP API will serve.
/// Decoding is a parser of outside input: every malformed document gives an
/// invalid_argument error that names the field, never a crash.

#include "troupe/placement/request.hpp"
#include "troupe/placement/topology.hpp"
#include "troupe/runtime/result.hpp"

#include <string>
#include <string_view>

namespace troupe::placement {

std::string encode(const gang_request& r);
std::string encode(const allocation& a);
/// A node's spec (without its rack, which the topology it joins decides).
std::string encode(const node_spec& n);

[[nodiscard]] result<gang_request> decode_request(std::string_view json);
[[nodiscard]] result<allocation> decode_allocation(std::string_view json);
/// Bounded: at most max_gpus_per_node GPUs and 256 labels; the rack is 0.
[[nodiscard]] result<node_spec> decode_node_spec(std::string_view json);

} // namespace troupe::placement
