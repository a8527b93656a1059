// libFuzzer target: the job-spec decoder (troupe/actors/job_spec.hpp) must
// return a spec or an invalid_argument error naming where ("job..." ) for
// any input, never crash, hang or throw; whatever decodes must encode to
// text that decodes to an equal spec and encodes to the same text again.

#include "troupe/actors/errc.hpp"
#include "troupe/actors/job_spec.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto spec = troupe::actors::decode_job_spec(text);
  if (!spec.ok()) {
    const auto& e = spec.err();
    if (!e.is(troupe::actors::errc::invalid_argument)) __builtin_trap();
    if (e.message().rfind("job", 0) != 0) __builtin_trap(); // names the field path
    return 0;
  }
  if (spec->name.empty() || spec->command.empty() || spec->replicas == 0)
    __builtin_trap();
  auto encoded = troupe::actors::encode_job_spec(*spec);
  auto back = troupe::actors::decode_job_spec(encoded);
  if (!back.ok() || !(*back == *spec)) __builtin_trap();
  if (troupe::actors::encode_job_spec(*back) != encoded) __builtin_trap();
  return 0;
}
