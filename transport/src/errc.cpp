#include "troupe/transport/wire.hpp"

#include <string>

namespace troupe::transport {
namespace {

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "transport"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
    case errc::ok:
      return "ok";
    case errc::malformed:
      return "malformed";
    case errc::too_large:
      return "too_large";
    case errc::protocol_mismatch:
      return "protocol_mismatch";
    case errc::auth_failed:
      return "auth_failed";
    case errc::unknown_type:
      return "unknown_type";
    case errc::unreachable:
      return "unreachable";
    case errc::ucx_error:
      return "ucx_error";
    }
    return "unknown(" + std::to_string(code) + ")";
  }
};

} // namespace

const std::error_category& transport_category() noexcept {
  static const category instance;
  return instance;
}

} // namespace troupe::transport
