#pragma once
// The payload checksum both processes of tests/transport/multiprocess.cpp
// compute (the test and peer_main.cpp): 8 bytes per step, so a 1 GiB
// buffer takes well under a second.

#include <cstdint>
#include <cstring>
#include <vector>

namespace troupe::test {

inline uint64_t checksum(const std::vector<char>& v) {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  size_t i = 0;
  for (; i + 8 <= v.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, v.data() + i, 8);
    h = (h ^ w) * 0x100000001B3ull;
  }
  for (; i < v.size(); ++i)
    h = (h ^ static_cast<uint8_t>(v[i])) * 0x100000001B3ull;
  return h ^ v.size();
}

} // namespace troupe::test
