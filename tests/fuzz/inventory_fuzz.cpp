// libFuzzer target: the node inventory decoder (troupe/actors/inventory.hpp),
// which reads what a node reports when it joins, must return an inventory or
// an invalid_argument error naming where ("inventory: ...") for any input,
// never crash, hang or throw; whatever decodes must encode to text that
// decodes to an equal inventory.

#include "troupe/actors/errc.hpp"
#include "troupe/actors/inventory.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto inv = troupe::actors::decode_inventory(text);
  if (!inv.ok()) {
    const auto& e = inv.err();
    if (!e.is(troupe::actors::errc::invalid_argument)) __builtin_trap();
    if (e.message().rfind("inventory", 0) != 0) __builtin_trap(); // says where
    return 0;
  }
  auto back = troupe::actors::decode_inventory(troupe::actors::encode_inventory(*inv));
  if (!back.ok() || !(*back == *inv)) __builtin_trap();
  return 0;
}
