// libFuzzer target: the node config loader (TOML text plus TROUPE_*
// environment overrides) must return a value or an error for any input,
// never crash, hang or throw.
//
// Input layout: bytes up to the first 0x00 are the TOML document; the rest
// is a list of NAME=VALUE environment entries separated by 0x01.

#include "troupe/runtime/config.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto cut = in.find('\0');
  std::string_view toml = in.substr(0, cut);
  troupe::env_map env;
  if (cut != std::string_view::npos) {
    std::string_view rest = in.substr(cut + 1);
    while (!rest.empty()) {
      auto end = rest.find('\x01');
      auto entry = rest.substr(0, end);
      auto eq = entry.find('=');
      if (eq != std::string_view::npos)
        env[std::string{entry.substr(0, eq)}] = std::string{entry.substr(eq + 1)};
      if (end == std::string_view::npos) break;
      rest = rest.substr(end + 1);
    }
  }
  auto r = troupe::load_config_string(toml, "fuzz.toml", env);
  if (r.ok()) {
    // Whatever loads must render and load back to the same config.
    auto again = troupe::load_config_string(troupe::to_toml(*r), "roundtrip.toml", {});
    if (!again.ok() || !(*again == *r)) __builtin_trap();
  } else if (r.err().message().empty()) {
    __builtin_trap(); // every error says what was wrong
  }
  return 0;
}
