#include "troupe/actors/errc.hpp"

#include <string>

namespace troupe::actors {
namespace {

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "actors"; }
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
    case errc::unavailable:
      return "unavailable";
    case errc::unauthorized:
      return "unauthorized";
    case errc::forbidden:
      return "forbidden";
    case errc::exhausted:
      return "exhausted";
    }
    return "unknown(" + std::to_string(code) + ")";
  }
};

} // namespace

const std::error_category& actors_category() noexcept {
  static const category instance;
  return instance;
}

} // namespace troupe::actors
