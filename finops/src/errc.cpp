#include "troupe/finops/errc.hpp"

#include <string>

namespace troupe::finops {
namespace {

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "finops"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
    case errc::ok:
      return "ok";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::not_found:
      return "not_found";
    case errc::conflict:
      return "conflict";
    case errc::corrupted:
      return "corrupted";
    }
    return "unknown(" + std::to_string(code) + ")";
  }
};

} // namespace

const std::error_category& finops_category() noexcept {
  static const category instance;
  return instance;
}

} // namespace troupe::finops
