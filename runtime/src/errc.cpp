#include "troupe/runtime/errc.hpp"

#include <string>

namespace troupe {

std::string error::to_string() const {
  if (!code_) return "ok";
  std::string out = code_.category().name();
  out += '.';
  out += code_.message();
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

} // namespace troupe

namespace troupe::runtime {
namespace {

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "runtime"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
    case errc::ok:
      return "ok";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::not_found:
      return "not_found";
    case errc::already_exists:
      return "already_exists";
    case errc::timeout:
      return "timeout";
    case errc::overloaded:
      return "overloaded";
    case errc::disconnected:
      return "disconnected";
    case errc::unavailable:
      return "unavailable";
    case errc::io_error:
      return "io_error";
    case errc::corrupted:
      return "corrupted";
    case errc::stopped:
      return "stopped";
    case errc::actor_failed:
      return "actor_failed";
    case errc::internal:
      return "internal";
    }
    return "unknown(" + std::to_string(code) + ")";
  }
};

} // namespace

const std::error_category& runtime_category() noexcept {
  static const category instance;
  return instance;
}

} // namespace troupe::runtime

// -- CAF errors -----------------------------------------------------------------

#include "troupe/runtime/caf_error.hpp"

namespace troupe {

caf::error to_caf_error(runtime::errc e, std::string message) {
  return caf::error{static_cast<uint8_t>(e), caf_error_category,
                    caf::make_message(std::move(message))};
}

error from_caf_error(const caf::error& e, std::string_view what) {
  std::string prefix{what};
  if (!e) return error{runtime::errc::internal, prefix + ": empty error"};
  if (e.category() == caf_error_category) {
    std::string msg;
    if (e.context().size() == 1 && e.context().match_element<std::string>(0))
      msg = e.context().get_as<std::string>(0);
    else if (!e.context().empty())
      msg = caf::to_string(e.context());
    return error{static_cast<runtime::errc>(e.code()),
                 msg.empty() ? prefix : prefix + ": " + msg};
  }
  if (e == caf::sec::request_timeout)
    return error{runtime::errc::timeout, prefix + ": no answer in time"};
  if (e == caf::sec::request_receiver_down || e == caf::sec::invalid_argument)
    return error{runtime::errc::actor_failed,
                 prefix + ": receiver is gone (" + caf::to_string(e) + ")"};
  return error{runtime::errc::actor_failed, prefix + ": " + caf::to_string(e)};
}

} // namespace troupe
