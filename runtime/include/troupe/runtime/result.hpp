#pragma once
/// troupe's error convention.
///
/// Every module has one `enum class errc` registered as a std::error_code enum
/// with its own category ("runtime", "transport", ...). A recoverable failure
/// is a value: `troupe::error` carries the code plus a human message that says
/// what was wrong and where. `troupe::result<T>` is either a T or an error.
/// Bugs (broken invariants) abort via TROUPE_ASSERT instead.
///
/// Error codes say what the caller should do: `overloaded` (back off),
/// `disconnected` (reconnect), `invalid_argument` (fix the input),
/// `unavailable` (fall back), `timeout` (retry or give up).

#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace troupe {

/// A recoverable error: a code from some module's errc plus a message.
class error {
public:
  error() = default;
  error(std::error_code code, std::string message)
      : code_(code), message_(std::move(message)) {}
  template <class Enum, class = std::enable_if_t<std::is_error_code_enum_v<Enum>>>
  error(Enum e, std::string message) // NOLINT(google-explicit-constructor)
      : code_(make_error_code(e)), message_(std::move(message)) {}

  const std::error_code& code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  /// "runtime.invalid_argument: <message>".
  std::string to_string() const;

  /// True when this error has the given module code.
  template <class Enum, class = std::enable_if_t<std::is_error_code_enum_v<Enum>>>
  bool is(Enum e) const noexcept {
    return code_ == make_error_code(e);
  }

  explicit operator bool() const noexcept { return static_cast<bool>(code_); }

private:
  std::error_code code_;
  std::string message_;
};

/// Either a value of type T or an error. Check with `ok()` / `operator bool`
/// before `value()`; calling `value()` on an error aborts (a bug).
template <class T> class [[nodiscard]] result {
public:
  using value_type = T;

  result(T value) : data_(std::in_place_index<0>, std::move(value)) {} // NOLINT
  result(error err) : data_(std::in_place_index<1>, std::move(err)) {} // NOLINT

  bool ok() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & {
    check();
    return std::get<0>(data_);
  }
  const T& value() const& {
    check();
    return std::get<0>(data_);
  }
  T&& value() && {
    check();
    return std::get<0>(std::move(data_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const error& err() const& {
    if (ok()) std::abort();
    return std::get<1>(data_);
  }
  error&& err() && {
    if (ok()) std::abort();
    return std::get<1>(std::move(data_));
  }

  template <class U> T value_or(U&& fallback) const& {
    return ok() ? std::get<0>(data_) : static_cast<T>(std::forward<U>(fallback));
  }

private:
  void check() const {
    if (!ok()) {
      std::fprintf(stderr, "troupe: value() on error result: %s\n",
                   std::get<1>(data_).to_string().c_str());
      std::abort();
    }
  }
  std::variant<T, error> data_;
};

/// Success or an error, no value.
template <> class [[nodiscard]] result<void> {
public:
  result() = default;
  result(error err) : err_(std::move(err)) {} // NOLINT
  bool ok() const noexcept { return !err_; }
  explicit operator bool() const noexcept { return ok(); }
  const error& err() const& { return err_; }
  error&& err() && { return std::move(err_); }

private:
  error err_;
};

/// Convenience for `return ok();` in result<void> functions.
inline result<void> ok() {
  return {};
}

} // namespace troupe

/// Aborts with file, line and message when a bug (broken invariant) is found.
#define TROUPE_ASSERT(cond, msg)                                                         \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: troupe assertion failed: %s: %s\n", __FILE__,         \
                   __LINE__, #cond, msg);                                                \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)
