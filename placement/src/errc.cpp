#include "troupe/placement/errc.hpp"

#include <string>

namespace troupe::placement {
namespace {

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "placement"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
    case errc::ok:
      return "ok";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::not_found:
      return "not_found";
    case errc::unschedulable:
      return "unschedulable";
    case errc::insufficient:
      return "insufficient";
    case errc::conflict:
      return "conflict";
    }
    return "unknown(" + std::to_string(code) + ")";
  }
};

} // namespace

const std::error_category& placement_category() noexcept {
  static const category instance;
  return instance;
}

} // namespace troupe::placement
