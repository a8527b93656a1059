#pragma once
/// troupe's own seeded pseudo-random numbers (SplitMix64): the same seed
/// gives the same sequence on every platform and standard library, which
/// the simulator's byte-identical reports and seeded tests rely on. Not for
/// cryptography.

#include <cstdint>

namespace troupe {

/// Advances `state` and returns the next 64-bit value.
constexpr uint64_t splitmix64(uint64_t& state) noexcept {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A uniform double in [0, 1) from the next value of `state`.
constexpr double unit_double(uint64_t& state) noexcept {
  return static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
}

/// A small seeded generator object.
class seeded_rng {
public:
  explicit constexpr seeded_rng(uint64_t seed) noexcept : state_(seed) {}
  constexpr uint64_t next() noexcept { return splitmix64(state_); }
  /// Uniform in [0, n); n must be > 0.
  constexpr uint64_t below(uint64_t n) noexcept { return next() % n; }
  constexpr double unit() noexcept { return unit_double(state_); }

private:
  uint64_t state_;
};

} // namespace troupe
