#pragma once
/// Strong types for identifiers and money: a `node_id` is not a `job_id`, and
/// neither is a bare integer.
///
///   using node_id = strong_id<uint32_t, struct node_id_tag>;
///   using micro_usd = strong_id<int64_t, struct micro_usd_tag>;

#include <compare>
#include <cstddef>
#include <functional>
#include <ostream>

namespace troupe {

template <class T, class Tag> class strong_id {
public:
  using value_type = T;
  constexpr strong_id() = default;
  constexpr explicit strong_id(T v) noexcept : v_(v) {}
  constexpr T value() const noexcept { return v_; }
  friend constexpr auto operator<=>(const strong_id&, const strong_id&) = default;
  friend std::ostream& operator<<(std::ostream& os, const strong_id& x) {
    return os << x.v_;
  }

private:
  T v_{};
};

/// Money as integer micro-units of a US dollar: never floating point.
using micro_usd = strong_id<int64_t, struct micro_usd_tag>;

} // namespace troupe

template <class T, class Tag> struct std::hash<troupe::strong_id<T, Tag>> {
  size_t operator()(const troupe::strong_id<T, Tag>& x) const noexcept {
    return std::hash<T>{}(x.value());
  }
};
