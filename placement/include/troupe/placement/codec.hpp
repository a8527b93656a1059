#pragma once
/// JSON encoding of placement requests and allocations: what the placement
/// actor stores in the durable store and what the HTTP API will serve.
/// Decoding is a parser of outside input: every malformed document gives an
/// invalid_argument error that names the field, never a crash.

#include "troupe/placement/request.hpp"
#include "troupe/runtime/result.hpp"

#include <string>
#include <string_view>

namespace troupe::placement {

std::string encode(const gang_request& r);
std::string encode(const allocation& a);

[[nodiscard]] result<gang_request> decode_request(std::string_view json);
[[nodiscard]] result<allocation> decode_allocation(std::string_view json);

} // namespace troupe::placement
