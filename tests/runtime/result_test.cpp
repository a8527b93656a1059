#include "troupe/runtime/errc.hpp"

#include <doctest/doctest.h>
#include <string>

using troupe::error;
using troupe::result;
using troupe::runtime::errc;

TEST_SUITE("result") {
  TEST_CASE("a result holds either a value or an error with module and message") {
    result<int> good = 42;
    CHECK(good.ok());
    CHECK(*good == 42);
    result<int> bad = error{errc::invalid_argument, "config.toml:3: x: expected int"};
    CHECK_FALSE(bad.ok());
    CHECK(bad.err().is(errc::invalid_argument));
    CHECK(bad.err().to_string() ==
          "runtime.invalid_argument: config.toml:3: x: expected int");
    CHECK(bad.value_or(7) == 7);
  }

  TEST_CASE("result<void> is ok by default and carries an error otherwise") {
    result<void> r = troupe::ok();
    CHECK(r.ok());
    result<void> e = error{errc::timeout, "no answer in 10ms"};
    CHECK_FALSE(e.ok());
    CHECK(e.err().is(errc::timeout));
    CHECK_FALSE(e.err().is(errc::overloaded));
  }
}
