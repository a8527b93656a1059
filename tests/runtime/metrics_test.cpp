#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/metrics_server.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <netinet/in.h>
#include <optional>
#include <signal.h>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using troupe::metrics::counter;
using troupe::metrics::gauge;
using troupe::metrics::histogram;
using troupe::metrics::metrics_server;
using troupe::metrics::registry;
using troupe::runtime::errc;

namespace {

constexpr int increments_per_thread = 200000;

/// Runs fn on two threads at once and waits for both.
void on_two_threads(const std::function<void()>& fn) {
  std::thread a{fn};
  std::thread b{fn};
  a.join();
  b.join();
}

/// Runs fn in a forked child. Returns what the child wrote to stderr when it
/// died of SIGABRT, nullopt when it exited in any other way.
std::optional<std::string> abort_message(const std::function<void()>& fn) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGABRT, SIG_DFL); // not doctest's crash reporter
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    fn();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0)
    text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) return text;
  return std::nullopt;
}

/// The first executable called `name` on PATH, or "" when there is none.
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return {};
  std::string dirs = path;
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

struct command_result {
  int exit_code = -1; // -1 when it did not exit normally
  std::string output; // stdout and stderr
};

/// Runs `promtool check metrics` with `exposition` on its stdin.
command_result promtool_check(const std::string& promtool,
                              const std::string& exposition) {
  auto file = std::filesystem::temp_directory_path() /
              ("troupe_metrics_test_" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream out(file, std::ios::binary);
    out << exposition;
    REQUIRE(out.good());
  }
  std::string cmd = "'" + promtool + "' check metrics < '" + file.string() + "' 2>&1";
  command_result r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[512];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
    r.output.append(buf, n);
  int status = ::pclose(pipe);
  std::filesystem::remove(file);
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

struct http_reply {
  int status = 0;
  std::string headers; // status line and headers, CRLF-separated
  std::string body;
};

/// Connects to 127.0.0.1:port; -1 (errno set) when refused.
int connect_local(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

/// A minimal HTTP/1.1 GET with "Connection: close", read to EOF.
http_reply http_get(uint16_t port, const std::string& path) {
  int fd = connect_local(port);
  REQUIRE(fd >= 0);
  std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string raw;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0)
    raw.append(buf, static_cast<size_t>(n));
  ::close(fd);
  http_reply reply;
  size_t split = raw.find("\r\n\r\n");
  REQUIRE(split != std::string::npos);
  reply.headers = raw.substr(0, split + 2);
  reply.body = raw.substr(split + 4);
  REQUIRE(raw.starts_with("HTTP/1.1 "));
  reply.status = std::stoi(raw.substr(9, 3));
  return reply;
}

} // namespace

TEST_SUITE("metrics") {
  TEST_CASE(
      "a counter starts at zero, adds increments and sums concurrent ones exactly") {
    counter c;
    CHECK(c.value() == 0);
    c.inc();
    c.inc(41);
    CHECK(c.value() == 42);
    on_two_threads([&] {
      for (int i = 0; i < increments_per_thread; ++i)
        c.inc();
    });
    CHECK(c.value() == 42 + 2 * increments_per_thread);
  }

  TEST_CASE(
      "a gauge is set, moved by add in both directions and loses no concurrent add") {
    gauge g;
    CHECK(g.value() == 0.0);
    g.set(10.5);
    g.add(2.0);
    g.add(-4.5);
    CHECK(g.value() == 8.0);
    g.set(0.0);
    // Whole numbers below 2^53 add exactly, so any lost update would show.
    on_two_threads([&] {
      for (int i = 0; i < increments_per_thread; ++i)
        g.add(1.0);
    });
    CHECK(g.value() == 2.0 * increments_per_thread);
    g.set(-std::numeric_limits<double>::infinity());
    CHECK(g.value() == -std::numeric_limits<double>::infinity());
  }

  TEST_CASE("a histogram counts each value in the first bucket whose bound is >= it") {
    histogram h{{0.25, 1.0, 2.0}};
    CHECK(h.upper_bounds().size() == 3);
    CHECK(h.count() == 0);
    CHECK(h.cumulative_counts() == std::vector<uint64_t>{0, 0, 0, 0});
    h.observe(-3.0); // below every bound: first bucket
    h.observe(0.25); // equal to a bound: that bucket (le is inclusive)
    h.observe(0.5);
    h.observe(2.0);
    h.observe(7.0); // above every bound: +Inf
    CHECK(h.cumulative_counts() == std::vector<uint64_t>{2, 3, 4, 5});
    CHECK(h.count() == 5);
    CHECK(h.sum() == 6.75);
    h.observe(std::nan("")); // counted in +Inf only; the sum becomes NaN
    CHECK(h.cumulative_counts() == std::vector<uint64_t>{2, 3, 4, 6});
    CHECK(std::isnan(h.sum()));
  }

  TEST_CASE(
      "a histogram drops an explicit +Inf bound and keeps concurrent observations") {
    histogram h{{1.0, std::numeric_limits<double>::infinity()}};
    CHECK(h.upper_bounds().size() == 1);
    on_two_threads([&] {
      for (int i = 0; i < increments_per_thread; ++i)
        h.observe(i % 2 == 0 ? 0.5 : 4.0);
    });
    CHECK(h.cumulative_counts() ==
          std::vector<uint64_t>{increments_per_thread, 2 * increments_per_thread});
    CHECK(h.count() == 2 * increments_per_thread);
    CHECK(h.sum() == 0.5 * increments_per_thread + 4.0 * increments_per_thread);
  }

  TEST_CASE("exponential buckets grow by the factor and read as typed") {
    CHECK(histogram::exponential_buckets(1e-6, 10, 4) ==
          std::vector<double>{1e-6, 1e-5, 1e-4, 1e-3});
    CHECK(histogram::exponential_buckets(1, 2, 5) == std::vector<double>{1, 2, 4, 8, 16});
    CHECK(histogram::exponential_buckets(0.5, 3, 1) == std::vector<double>{0.5});

    auto latency = histogram::default_latency_buckets();
    REQUIRE(latency.size() >= 10);
    CHECK(latency.front() == 1e-6);
    CHECK(latency.back() == 10.0);
    CHECK(std::is_sorted(latency.begin(), latency.end()));
    CHECK(std::adjacent_find(latency.begin(), latency.end()) == latency.end());
  }

  TEST_CASE("the registry returns the same series for the same name and labels") {
    registry r;
    counter& a = r.get_counter("troupe_messages_total", "Messages.", {{"actor", "a"}});
    counter& b = r.get_counter("troupe_messages_total", "Messages.", {{"actor", "b"}});
    CHECK(&a != &b);
    CHECK(&a == &r.get_counter("troupe_messages_total", "Messages.", {{"actor", "a"}}));
    // Label order does not make another series.
    counter& ab = r.get_counter("troupe_sends_total", "Sends.", {{"x", "1"}, {"y", "2"}});
    CHECK(&ab ==
          &r.get_counter("troupe_sends_total", "Sends.", {{"y", "2"}, {"x", "1"}}));
    gauge& g = r.get_gauge("troupe_actors", "Live actors.");
    CHECK(&g == &r.get_gauge("troupe_actors", "Live actors."));
    histogram& h = r.get_histogram("troupe_handle_seconds", "Latency.", {1, 2});
    CHECK(&h == &r.get_histogram("troupe_handle_seconds", "Latency.", {1, 2}));
    // Addresses stay put while many more series are added.
    for (int i = 0; i < 1000; ++i) {
      r.get_counter("troupe_messages_total", "Messages.", {{"actor", std::to_string(i)}});
    }
    a.inc(5);
    CHECK(r.get_counter("troupe_messages_total", "Messages.", {{"actor", "a"}}).value() ==
          5);
  }

  TEST_CASE(
      "registration from two threads at once yields one series per name and labels") {
    registry r;
    on_two_threads([&] {
      for (int i = 0; i < 2000; ++i) {
        r.get_counter("troupe_race_total", "Race.", {{"n", std::to_string(i % 50)}})
            .inc();
      }
    });
    uint64_t total = 0;
    for (int i = 0; i < 50; ++i) {
      total +=
          r.get_counter("troupe_race_total", "Race.", {{"n", std::to_string(i)}}).value();
    }
    CHECK(total == 4000);
  }

  TEST_CASE("exposition of a small registry is exactly the Prometheus text format") {
    registry r;
    r.get_counter("troupe_messages_total", "Messages delivered.", {{"actor", "pong"}})
        .inc(3);
    r.get_counter("troupe_messages_total", "Messages delivered.", {{"actor", "ping"}});
    r.get_gauge("troupe_mailbox_depth", "Messages waiting.").set(2.5);
    histogram& h = r.get_histogram("troupe_handle_seconds", "Handler latency.",
                                   {0.25, 1, 10}, {{"actor", "pong"}});
    h.observe(0.25);
    h.observe(0.5);
    h.observe(40);
    int calls = 0;
    r.register_callback_gauge("troupe_uptime_seconds", "Seconds since start.", {}, [&] {
      ++calls;
      return 1e21;
    });
    r.get_gauge("troupe_nan_gauge", "Odd values.", {{"v", "nan"}}).set(std::nan(""));
    r.get_gauge("troupe_nan_gauge", "Odd values.", {{"v", "-inf"}})
        .set(-std::numeric_limits<double>::infinity());

    const std::string expected =
        "# HELP troupe_handle_seconds Handler latency.\n"
        "# TYPE troupe_handle_seconds histogram\n"
        "troupe_handle_seconds_bucket{actor=\"pong\",le=\"0.25\"} 1\n"
        "troupe_handle_seconds_bucket{actor=\"pong\",le=\"1\"} 2\n"
        "troupe_handle_seconds_bucket{actor=\"pong\",le=\"10\"} 2\n"
        "troupe_handle_seconds_bucket{actor=\"pong\",le=\"+Inf\"} 3\n"
        "troupe_handle_seconds_sum{actor=\"pong\"} 40.75\n"
        "troupe_handle_seconds_count{actor=\"pong\"} 3\n"
        "# HELP troupe_mailbox_depth Messages waiting.\n"
        "# TYPE troupe_mailbox_depth gauge\n"
        "troupe_mailbox_depth 2.5\n"
        "# HELP troupe_messages_total Messages delivered.\n"
        "# TYPE troupe_messages_total counter\n"
        "troupe_messages_total{actor=\"pong\"} 3\n"
        "troupe_messages_total{actor=\"ping\"} 0\n"
        "# HELP troupe_nan_gauge Odd values.\n"
        "# TYPE troupe_nan_gauge gauge\n"
        "troupe_nan_gauge{v=\"nan\"} NaN\n"
        "troupe_nan_gauge{v=\"-inf\"} -Inf\n"
        "# HELP troupe_uptime_seconds Seconds since start.\n"
        "# TYPE troupe_uptime_seconds gauge\n"
        "troupe_uptime_seconds 1e+21\n";
    CHECK(r.expose() == expected);
    CHECK(calls == 1);
    CHECK(registry{}.expose().empty());
  }

  TEST_CASE("a histogram without labels carries only le and the buckets are cumulative") {
    registry r;
    histogram& h = r.get_histogram("troupe_wait_seconds", "Wait.", {0.5, 2});
    h.observe(1);
    h.observe(1);
    CHECK(r.expose() == "# HELP troupe_wait_seconds Wait.\n"
                        "# TYPE troupe_wait_seconds histogram\n"
                        "troupe_wait_seconds_bucket{le=\"0.5\"} 0\n"
                        "troupe_wait_seconds_bucket{le=\"2\"} 2\n"
                        "troupe_wait_seconds_bucket{le=\"+Inf\"} 2\n"
                        "troupe_wait_seconds_sum 2\n"
                        "troupe_wait_seconds_count 2\n");
  }

  TEST_CASE("floats are written as Prometheus' Go clients write them") {
    const std::vector<std::pair<double, std::string>> table = {
        {0, "0"},
        {-0.0, "-0"},
        {1, "1"},
        {-1, "-1"},
        {2.5, "2.5"},
        {100, "100"},
        {123456, "123456"},
        {1e6, "1e+06"},
        {1234567, "1.234567e+06"},
        {0.0001, "0.0001"},
        {0.00025, "0.00025"},
        {1e-5, "1e-05"},
        {2.5e-6, "2.5e-06"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {1e21, "1e+21"},
        {5e-324, "5e-324"},
        {-1.5e300, "-1.5e+300"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    for (const auto& row : table) {
      const auto& [value, text] = row;
      CAPTURE(row.second); // a plain name: clang 14 cannot capture a binding
      registry r;
      r.get_gauge("troupe_value", "V.").set(value);
      CHECK(r.expose() ==
            "# HELP troupe_value V.\n# TYPE troupe_value gauge\ntroupe_value " + text +
                "\n");
    }
    // The default latency bounds read as a Go client writes them.
    registry r;
    r.get_histogram("troupe_latency_seconds", "L.", histogram::default_latency_buckets());
    std::string text = r.expose();
    for (const char* le : {"1e-06", "2.5e-06", "1e-05", "0.0001", "0.00025", "0.001",
                           "0.5", "1", "10", "+Inf"}) {
      CAPTURE(le);
      CHECK(text.find(std::string("{le=\"") + le + "\"} 0\n") != std::string::npos);
    }
  }

  TEST_CASE(
      "label values escape backslash, quote and newline, help escapes backslash and "
      "newline") {
    registry r;
    r.get_gauge("troupe_escape", "Line one\nback\\slash \"quoted\"",
                {{"path", "C:\\dir\\\"x\"\nnext"}, {"plain", "Zürich 東京"}})
        .set(1);
    CHECK(r.expose() == "# HELP troupe_escape Line one\\nback\\\\slash \"quoted\"\n"
                        "# TYPE troupe_escape gauge\n"
                        "troupe_escape{path=\"C:\\\\dir\\\\\\\"x\\\"\\nnext\",plain="
                        "\"Zürich 東京\"} 1\n");
  }

  TEST_CASE("label values that are not valid UTF-8 are repaired at registration") {
    registry r;
    // A stray continuation byte, a truncated sequence, an overlong '/' and
    // a UTF-16 surrogate each become U+FFFD per byte; valid text is kept.
    gauge& g = r.get_gauge("troupe_utf8", "UTF-8.",
                           {{"v", "a\x80z\xE6\x9D"
                                  "\xC0\xAF\xED\xA0\x80ö"}});
    g.set(1);
    const std::string fffd = "\xEF\xBF\xBD";
    CHECK(r.expose() == "# HELP troupe_utf8 UTF-8.\n# TYPE troupe_utf8 gauge\n"
                        "troupe_utf8{v=\"a" +
                            fffd + "z" + fffd + fffd + fffd + fffd + fffd + fffd + fffd +
                            "ö\"} 1\n");
    // The repaired value names the same series.
    CHECK(&g == &r.get_gauge("troupe_utf8", "UTF-8.",
                             {{"v", "a\x80z\xE6\x9D"
                                    "\xC0\xAF\xED\xA0\x80ö"}}));
  }

  TEST_CASE("callback gauges are evaluated at every exposition") {
    registry r;
    double depth = 3;
    r.register_callback_gauge("troupe_queue_depth", "Depth.", {{"queue", "io"}},
                              [&] { return depth; });
    CHECK(r.expose().ends_with("troupe_queue_depth{queue=\"io\"} 3\n"));
    depth = 7.25;
    CHECK(r.expose().ends_with("troupe_queue_depth{queue=\"io\"} 7.25\n"));
  }

  TEST_CASE("invalid names, clashing types and duplicate callbacks abort with the name") {
    struct bad_registration {
      const char* what;
      std::function<void(registry&)> act;
      const char* message_part;
    };
    const std::vector<bad_registration> table = {
        {"metric name starting with a digit",
         [](registry& r) { r.get_gauge("1abc", "h"); }, "invalid metric name '1abc'"},
        {"metric name with a dash", [](registry& r) { r.get_gauge("troupe-x", "h"); },
         "invalid metric name 'troupe-x'"},
        {"empty metric name", [](registry& r) { r.get_gauge("", "h"); },
         "invalid metric name ''"},
        {"counter without _total",
         [](registry& r) { r.get_counter("troupe_messages", "h"); },
         "must end with _total"},
        {"label name with a colon",
         [](registry& r) {
           r.get_gauge("troupe_x", "h", {{"a:b", "v"}});
         },
         "invalid label name 'a:b'"},
        {"reserved label name",
         [](registry& r) {
           r.get_gauge("troupe_x", "h", {{"__name", "v"}});
         },
         "invalid label name '__name'"},
        {"label given twice",
         [](registry& r) {
           r.get_gauge("troupe_x", "h", {{"a", "1"}, {"a", "2"}});
         },
         "label 'a' given twice"},
        {"le on a histogram",
         [](registry& r) {
           r.get_histogram("troupe_h", "h", {1}, {{"le", "1"}});
         },
         "'le' is reserved"},
        {"same name, other type",
         [](registry& r) {
           r.get_gauge("troupe_x_total", "h");
           r.get_counter("troupe_x_total", "h");
         },
         "'troupe_x_total' is already registered with another type"},
        {"same name, other help",
         [](registry& r) {
           r.get_gauge("troupe_x", "one");
           r.get_gauge("troupe_x", "two", {{"a", "1"}});
         },
         "other help text"},
        {"same histogram, other bounds",
         [](registry& r) {
           r.get_histogram("troupe_h", "h", {1, 2});
           r.get_histogram("troupe_h", "h", {1, 3}, {{"a", "1"}});
         },
         "other bucket bounds"},
        {"descending bounds",
         [](registry& r) {
           r.get_histogram("troupe_h", "h", {2, 1});
         },
         "strictly ascending"},
        {"callback gauge registered twice",
         [](registry& r) {
           r.register_callback_gauge("troupe_cb", "h", {}, [] { return 1.0; });
           r.register_callback_gauge("troupe_cb", "h", {}, [] { return 2.0; });
         },
         "already registered as a callback gauge"},
        {"plain gauge over a callback gauge",
         [](registry& r) {
           r.register_callback_gauge("troupe_cb", "h", {}, [] { return 1.0; });
           r.get_gauge("troupe_cb", "h");
         },
         "already registered as a callback gauge"},
        {"exponential buckets with factor 1",
         [](registry&) { histogram::exponential_buckets(1, 1, 3); },
         "factor must be > 1"},
    };
    for (const auto& bad : table) {
      CAPTURE(bad.what);
      auto message = abort_message([&] {
        registry r;
        bad.act(r);
      });
      REQUIRE(message.has_value());
      CHECK(message->find(bad.message_part) != std::string::npos);
    }
    // The harness itself: a valid registration does not abort.
    CHECK_FALSE(abort_message([] {
                  registry r;
                  r.get_counter("ok_total", "h", {{"_a", "x"}, {"b9", ""}});
                  r.get_gauge("ns:sub_metric", "h");
                }).has_value());
  }

  TEST_CASE("promtool accepts the exposition of every metric type with hostile labels") {
    std::string promtool = find_on_path("promtool");
    INFO("PATH=", std::getenv("PATH") ? std::getenv("PATH") : "(unset)");
    REQUIRE_MESSAGE(!promtool.empty(),
                    "promtool is not on PATH (Debian: apt install prometheus)");

    // The check must be able to fail: a raw quote in a label value is rejected.
    command_result broken = promtool_check(
        promtool, "# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"x\"y\"} 1\n");
    INFO("promtool on broken input: ", broken.output);
    REQUIRE(broken.exit_code != 0);

    registry r;
    const std::vector<std::string> hostile = {
        "quote\"inside",
        "back\\slash",
        "trailing\\",
        "new\nline",
        "\\n literally",
        "Zürich 東京 🚀",
        "",
        "tab\tand\rcr",
        "{curly}=,\"x\"",
        "bad\xff\xfe"
        "utf8",
        "\\\"\n\\",
    };
    int i = 0;
    for (const auto& value : hostile) {
      std::string n = std::to_string(i++);
      r.get_counter("troupe_messages_total", "Messages delivered, per actor.",
                    {{"actor", value}, {"n", n}})
          .inc(static_cast<uint64_t>(i));
      r.get_gauge("troupe_mailbox_depth", "Messages waiting.\nSecond \\ line.",
                  {{"actor", value}, {"n", n}})
          .set(i * -0.5);
      r.get_histogram("troupe_handle_seconds", "Handler latency in seconds.",
                      histogram::default_latency_buckets(), {{"actor", value}, {"n", n}})
          .observe(1e-3 * i);
    }
    histogram& sizes = r.get_histogram("troupe_message_bytes", "Message sizes in bytes.",
                                       histogram::exponential_buckets(64, 4, 8));
    sizes.observe(100);
    sizes.observe(1e9);
    r.get_gauge("troupe_odd_values", "Non-finite values.", {{"v", "nan"}})
        .set(std::nan(""));
    r.get_gauge("troupe_odd_values", "Non-finite values.", {{"v", "inf"}})
        .set(std::numeric_limits<double>::infinity());
    r.get_gauge("troupe_odd_values", "Non-finite values.", {{"v", "-inf"}})
        .set(-std::numeric_limits<double>::infinity());
    r.get_gauge("troupe_odd_values", "Non-finite values.", {{"v", "tiny"}}).set(5e-324);
    r.get_counter("troupe_big_total", "Counter near its limit.")
        .inc(std::numeric_limits<uint64_t>::max());
    r.register_callback_gauge("troupe_uptime_seconds", "Seconds since start.", {},
                              [] { return 12.5; });

    std::string exposition = r.expose();
    command_result checked = promtool_check(promtool, exposition);
    INFO("promtool output: ", checked.output);
    INFO("exposition:\n", exposition);
    CHECK(checked.exit_code == 0);
  }

  TEST_CASE("the metrics server serves /metrics, answers 404 elsewhere and stops") {
    registry r;
    counter& served =
        r.get_counter("troupe_requests_total", "Requests.", {{"path", "/a\"b"}});
    served.inc(2);
    r.get_histogram("troupe_handle_seconds", "Latency.", {0.1, 1}).observe(0.5);

    auto started = metrics_server::start(r, "127.0.0.1", 0);
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.err().to_string()));
    std::unique_ptr<metrics_server> server = std::move(started).value();
    uint16_t port = server->port();
    CHECK(port != 0);
    CHECK(server->bind_address() == "127.0.0.1");

    http_reply reply = http_get(port, "/metrics");
    CHECK(reply.status == 200);
    INFO("headers: ", reply.headers);
    CHECK(reply.headers.find(
              "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
          std::string::npos);
    CHECK(reply.body == r.expose());
    CHECK(reply.body.find("troupe_requests_total{path=\"/a\\\"b\"} 2\n") !=
          std::string::npos);

    served.inc(); // every scrape reads current values
    CHECK(http_get(port, "/metrics")
              .body.find("troupe_requests_total{path=\"/a\\\"b\"} 3\n") !=
          std::string::npos);

    CHECK(http_get(port, "/other").status == 404);
    CHECK(http_get(port, "/metrics/extra").status == 404);

    server->stop();
    server->stop(); // idempotent
    int refused = connect_local(port);
    int connect_errno = errno;
    CHECK(refused == -1);
    CHECK(connect_errno == ECONNREFUSED);

    // The port can be bound again at once, although connections we just
    // closed may linger in TIME_WAIT on it.
    auto again = metrics_server::start(r, "127.0.0.1", port);
    REQUIRE_MESSAGE(again.ok(), (again.ok() ? "" : again.err().to_string()));
    CHECK((*again)->port() == port);
    CHECK(http_get(port, "/metrics").status == 200);
  }

  TEST_CASE("a metrics server on a taken port or a foreign address reports unavailable") {
    registry r;
    r.get_gauge("troupe_up", "Up.").set(1);
    auto first = metrics_server::start(r, "127.0.0.1", 0);
    REQUIRE(first.ok());
    uint16_t port = (*first)->port();

    auto second = metrics_server::start(r, "127.0.0.1", port);
    REQUIRE_FALSE(second.ok());
    CHECK(second.err().is(errc::unavailable));
    INFO("error: ", second.err().to_string());
    CHECK(second.err().message() == "cannot listen on 127.0.0.1:" + std::to_string(port) +
                                        ": Address already in use");
    // The first server still owns the port and answers every request.
    for (int i = 0; i < 5; ++i)
      CHECK(http_get(port, "/metrics").body == r.expose());

    // 192.0.2.1 (TEST-NET-1) is never a local address.
    auto foreign = metrics_server::start(r, "192.0.2.1", 0);
    REQUIRE_FALSE(foreign.ok());
    CHECK(foreign.err().is(errc::unavailable));
    CHECK(foreign.err().message().starts_with("cannot listen on 192.0.2.1:0: "));
  }
}
