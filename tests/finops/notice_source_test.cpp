// Spot notice sources (notice_source.hpp): the notice file's parser against
// a table of hostile texts, and the file source following a file that a
// cloud agent writes, changes, breaks and removes.

#include "troupe/finops/errc.hpp"
#include "troupe/finops/notice_source.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace troupe::finops;
using troupe::time_point;

namespace {

time_point ms(int64_t v) {
  return time_point{std::chrono::milliseconds{v}};
}

struct temp_file {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("troupe-notice-" + std::to_string(::getpid()));
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  void write(const std::string& text) {
    // Size or mtime must change for the source to notice: sleep past the
    // file system's timestamp granularity when the size stays the same.
    std::this_thread::sleep_for(10ms);
    std::ofstream{path, std::ios::trunc} << text;
  }
};

} // namespace

TEST_SUITE("finops.notice_source") {
  TEST_CASE("notice files: ms since the epoch or RFC 3339 UTC, comments, none") {
    CHECK(*parse_notice("", "f") == std::nullopt);
    CHECK(*parse_notice("# nothing yet\n\n", "f") == std::nullopt);
    CHECK(*parse_notice("1796690000000\n", "f") == ms(1'796'690'000'000));
    CHECK(*parse_notice("  1796690000000  # AWS said so\r\n", "f") ==
          ms(1'796'690'000'000));
    // 2026-12-08T01:30:00Z = 1796693400 s.
    CHECK(*parse_notice("2026-12-08T01:30:00Z", "f") == ms(1'796'693'400'000));
    CHECK(*parse_notice("2026-12-08T01:30:00.250Z\n", "f") == ms(1'796'693'400'250));
    CHECK(*parse_notice("2026-12-08T01:30:00.123456789Z", "f") == ms(1'796'693'400'123));
    CHECK(*parse_notice("1970-01-01T00:00:00Z", "f") == ms(0));
  }

  TEST_CASE("hostile notice files are refused with file and line") {
    struct row {
      std::string text;
      std::string expected;
    };
    for (const auto& r : std::vector<row>{
             {"soon", "n.txt:1: expected a deadline"},
             {"-5", "n.txt:1: expected a deadline"},
             {"1e12", "n.txt:1:"},
             {"99999999999999999999999", "n.txt:1:"},
             {"1796690000000\n1796690000001", "n.txt:2: a second deadline"},
             {"# c\n2026-12-08 01:30:00Z", "n.txt:2:"},
             {"2026-12-08T01:30:00", "n.txt:1:"},       // no zone
             {"2026-12-08T01:30:00+01:00", "n.txt:1:"}, // only UTC
             {"2026-02-31T00:00:00Z", "n.txt:1:"},      // no such day
             {"2026-13-01T00:00:00Z", "n.txt:1:"},
             {"2026-12-08T25:00:00Z", "n.txt:1:"},
             {"2026-12-08T01:30:00.Z", "n.txt:1:"},
             {"2026-12-08T01:30:00.12345678901Z", "n.txt:1:"},
             {"1969-12-31T23:59:59Z", "n.txt:1:"},
             {"20261208T013000Z", "n.txt:1:"},
             {std::string("17966\0"
                          "90000000",
                          14),
              "n.txt:1:"},
             {std::string(max_notice_file_bytes + 1, '1'), "over the limit"},
         }) {
      CAPTURE(r.text.substr(0, 40));
      auto got = parse_notice(r.text, "n.txt");
      REQUIRE_FALSE(got.ok());
      CHECK(got.err().is(errc::invalid_argument));
      CHECK_MESSAGE(got.err().message().find(r.expected) != std::string::npos,
                    got.err().message());
    }
  }

  TEST_CASE(
      "a file source follows its file: missing, written, changed, broken, removed") {
    temp_file f;
    file_notice_source src{f.path};
    auto none = src.poll();
    REQUIRE(none.ok());
    CHECK(*none == std::nullopt); // no file: no notice
    f.write("1796690000000\n");
    auto first = src.poll();
    REQUIRE(first.ok());
    CHECK(*first == ms(1'796'690'000'000));
    auto again = src.poll(); // unchanged: the same notice
    REQUIRE(again.ok());
    CHECK(*again == ms(1'796'690'000'000));
    f.write("2026-12-08T01:30:00Z\n");
    auto second = src.poll();
    REQUIRE(second.ok());
    CHECK(*second == ms(1'796'693'400'000));
    f.write("whenever\n");
    auto bad = src.poll();
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().message().find(f.path.string() + ":1:") != std::string::npos);
    CHECK_FALSE(src.poll().ok()); // still broken until it changes
    f.write("# withdrawn\n");
    auto withdrawn = src.poll();
    REQUIRE(withdrawn.ok());
    CHECK(*withdrawn == std::nullopt);
    f.write("1796690000000\n");
    REQUIRE(src.poll().ok());
    std::filesystem::remove(f.path);
    auto removed = src.poll();
    REQUIRE(removed.ok());
    CHECK(*removed == std::nullopt);
  }
}
