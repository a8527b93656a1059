#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"
#include "troupe/sim/report.hpp"

#include <algorithm>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace troupe;
using namespace troupe::sim;

namespace {

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_v = std::numeric_limits<double>::infinity();

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

/// A fresh scratch directory for this process, removed by the destructor.
struct scratch_dir {
  std::filesystem::path path;
  scratch_dir() {
    path = std::filesystem::temp_directory_path() /
           ("troupe_report_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct command_result {
  int exit_code = -1; // -1 when it did not exit normally
  std::string output; // stdout and stderr
};

/// Writes `text` to `dir`/`name` and runs `xmllint --noout` on it.
command_result xmllint_check(const std::string& xmllint, const scratch_dir& dir,
                             const std::string& name, const std::string& text) {
  std::string file = (dir.path / name).string();
  REQUIRE(write_text_file(file, text).ok());
  std::string cmd = "'" + xmllint + "' --noout '" + file + "' 2>&1";
  command_result r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[512];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
    r.output.append(buf, n);
  int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

size_t count(const std::string& haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size()))
    ++n;
  return n;
}

/// The "points" attributes of every polyline, each as (x, y) pixel pairs.
std::vector<std::vector<std::pair<double, double>>> polylines(const std::string& svg) {
  std::vector<std::vector<std::pair<double, double>>> out;
  constexpr std::string_view key = "points=\"";
  for (size_t at = svg.find(key); at != std::string::npos; at = svg.find(key, at + 1)) {
    size_t begin = at + key.size();
    size_t end = svg.find('"', begin);
    std::istringstream in(svg.substr(begin, end - begin));
    std::vector<std::pair<double, double>> pts;
    std::string pair;
    while (in >> pair) {
      size_t comma = pair.find(',');
      pts.emplace_back(std::stod(pair.substr(0, comma)),
                       std::stod(pair.substr(comma + 1)));
    }
    out.push_back(std::move(pts));
  }
  return out;
}

/// The texts of the tick labels of class `cls` ("x-tick" or "y-tick").
std::vector<double> tick_labels(const std::string& svg, std::string_view cls) {
  std::vector<double> out;
  std::string key = "class=\"" + std::string(cls) + "\"";
  for (size_t at = svg.find(key); at != std::string::npos; at = svg.find(key, at + 1)) {
    size_t begin = svg.find('>', at) + 1;
    size_t end = svg.find('<', begin);
    out.push_back(std::stod(svg.substr(begin, end - begin)));
  }
  return out;
}

/// True when `step` is 1, 2 or 5 x 10^k (within rounding).
bool round_step(double step) {
  if (!(step > 0)) return false;
  double k = std::floor(std::log10(step) + 1e-9);
  double m = step / std::pow(10.0, k);
  for (double want : {1.0, 2.0, 5.0, 10.0})
    if (std::abs(m - want) < 1e-6) return true;
  return false;
}

/// Checks that `values` are 5 to 8 equally spaced multiples of a round step
/// (`step`, or the first difference when 0).
void check_round_ticks(const std::vector<double>& values, double step = 0) {
  INFO("ticks: ", values.size());
  REQUIRE(values.size() >= 5);
  REQUIRE(values.size() <= 8);
  if (step == 0) step = values[1] - values[0];
  CHECK(round_step(step));
  double magnitude = std::max(std::abs(values.front()), std::abs(values.back()));
  double slack = 8 * std::numeric_limits<double>::epsilon() * magnitude;
  for (size_t i = 0; i < values.size(); ++i) {
    double q = values[i] / step;
    CHECK(std::abs(q - std::round(q)) < 1e-6);
    if (i > 0) CHECK(std::abs((values[i] - values[i - 1]) - step) <= slack + 1e-9 * step);
  }
}

series make_series(std::string name, std::vector<double> x, std::vector<double> y) {
  return series{std::move(name), std::move(x), std::move(y)};
}

/// 100k points of a noisy ramp with one upward and one downward spike.
series spiky_series() {
  series s{"spiky", {}, {}};
  uint64_t state = 42;
  for (size_t i = 0; i < 100000; ++i) {
    s.x.push_back(static_cast<double>(i));
    s.y.push_back(static_cast<double>(i) * 1e-4 + unit_double(state));
  }
  s.y[54321] = 1000;
  s.y[77777] = -500;
  return s;
}

} // namespace

TEST_SUITE("sim.report") {
  TEST_CASE(
      "format_number prints fixed decimals, spelled-out specials and no negative zero") {
    CHECK(format_number(3.14159) == "3.14");
    CHECK(format_number(3.14159, 0) == "3");
    CHECK(format_number(3.14159, 4) == "3.1416");
    CHECK(format_number(-2.5) == "-2.50");
    CHECK(format_number(1234567.891, 1) == "1234567.9");
    CHECK(format_number(1e20, 0) == "100000000000000000000");
    CHECK(format_number(0.0) == "0.00");
    CHECK(format_number(-0.0) == "0.00");
    CHECK(format_number(-0.0, 0) == "0");
    CHECK(format_number(-0.001) == "0.00");
    CHECK(format_number(-0.004, 2) == "0.00");
    CHECK(format_number(-0.006, 2) == "-0.01");
    CHECK(format_number(nan_v) == "nan");
    CHECK(format_number(-nan_v) == "nan");
    CHECK(format_number(inf_v) == "inf");
    CHECK(format_number(-inf_v) == "-inf");
    CHECK(format_number(std::numeric_limits<double>::max(), 17).size() == 309 + 1 + 17);
    // Locale-independent: a comma locale does not change the separator.
    if (std::setlocale(LC_NUMERIC, "de_DE.UTF-8") != nullptr) {
      CHECK(format_number(1.5) == "1.50");
      std::setlocale(LC_NUMERIC, "C");
    }
    auto msg = abort_message([] { (void)format_number(1, 18); });
    REQUIRE(msg.has_value());
    CHECK(msg->find("digits") != std::string::npos);
  }

  TEST_CASE("render_table aligns numbers right and text left under a title and a rule") {
    summary_table t{"Policies",
                    {"policy", "GPUs allocated", "frag", "note", "p99"},
                    {{"FGD", "91.20%", "3", "", "nan"},
                     {"best-fit", "88.5%", "12.25", "spiky", ""},
                     {"café", "100%", "-1", "a\tb", "7"}}};
    const std::string want = "Policies\n"
                             "policy    GPUs allocated   frag  note   p99\n"
                             "-------------------------------------------\n"
                             "FGD               91.20%      3         nan\n"
                             "best-fit           88.5%  12.25  spiky\n"
                             "café                100%     -1  a b      7\n";
    CHECK(render_table(t) == want);

    summary_table untitled{"", {"a", "b"}, {}};
    CHECK(render_table(untitled) == "a  b\n----\n");
  }

  TEST_CASE("a row whose cell count differs from the columns is a bug") {
    summary_table t{"t", {"a", "b"}, {{"1", "2"}, {"3"}}};
    auto msg = abort_message([&] { (void)render_table(t); });
    REQUIRE(msg.has_value());
    CHECK(msg->find("cell count") != std::string::npos);
    msg = abort_message([&] { (void)render_table_json(t); });
    REQUIRE(msg.has_value());
    CHECK(msg->find("cell count") != std::string::npos);
  }

  TEST_CASE("render_table_json keeps column order and turns numeric cells into numbers") {
    summary_table t{"ignored",
                    {"policy", "allocated", "frag", "note", "jobs"},
                    {{"FGD", "91.20%", "3", "", "1e3"},
                     {"best \"fit\"", "88.5", "-0.25", "nan", "007"}}};
    const std::string want = "[\n"
                             "  {\n"
                             "    \"policy\": \"FGD\",\n"
                             "    \"allocated\": \"91.20%\",\n"
                             "    \"frag\": 3,\n"
                             "    \"note\": \"\",\n"
                             "    \"jobs\": 1000.0\n"
                             "  },\n"
                             "  {\n"
                             "    \"policy\": \"best \\\"fit\\\"\",\n"
                             "    \"allocated\": 88.5,\n"
                             "    \"frag\": -0.25,\n"
                             "    \"note\": \"nan\",\n"
                             "    \"jobs\": 7\n"
                             "  }\n"
                             "]\n";
    CHECK(render_table_json(t) == want);
    CHECK(render_table_json(summary_table{"", {"a"}, {}}) == "[]\n");
    // Invalid UTF-8 does not throw; it is replaced.
    summary_table bad{"", {"a"}, {{"x\xffy"}}};
    CHECK(render_table_json(bad) == "[\n  {\n    \"a\": \"x\xEF\xBF\xBDy\"\n  }\n]\n");
  }

  TEST_CASE(
      "render_series_csv writes one long table with quoted names and trimmed numbers") {
    chart a{"alloc", "A", "x", "y", {}};
    a.lines.push_back(make_series("FGD, v2", {0, 0.5, 1}, {1.25, nan_v, 1.0 / 3}));
    a.lines.push_back(make_series("say \"hi\"", {2}, {-inf_v}));
    chart b{"frag,rate", "B", "x", "y", {}};
    b.lines.push_back(make_series("bf", {1e6, -0.0000001}, {2.0000001, 100}));
    CHECK(render_series_csv({a, b}) == "chart,series,x,y\n"
                                       "alloc,\"FGD, v2\",0,1.25\n"
                                       "alloc,\"FGD, v2\",0.5,nan\n"
                                       "alloc,\"FGD, v2\",1,0.333333\n"
                                       "alloc,\"say \"\"hi\"\"\",2,-inf\n"
                                       "\"frag,rate\",bf,1000000,2\n"
                                       "\"frag,rate\",bf,0,100\n");
    CHECK(render_series_csv({}) == "chart,series,x,y\n");
  }

  TEST_CASE("nice_ticks gives 5 to 8 ticks at round values covering the range") {
    const std::vector<std::pair<double, double>> ranges = {
        {0, 1},     {0, 14.2},       {0, 100},      {-3.7, 12.1}, {5, 5},
        {0, 0},     {1e9, 1e9 + 1},  {-1e-6, 3e-6}, {0, 7.2},     {1e-300, 1e-300},
        {0, 1e300}, {-1e300, 1e300}, {-250, -249},  {0.1, 0.7},   {123456, 123457}};
    for (auto range : ranges) {
      auto [lo, hi] = range;
      CAPTURE(range.first); // plain names: clang 14 cannot capture bindings
      CAPTURE(range.second);
      axis_ticks t = nice_ticks(lo, hi);
      check_round_ticks(t.values, t.step);
      CHECK(t.lo <= lo);
      CHECK(t.hi >= hi);
      CHECK(t.values.size() == t.labels.size());
      CHECK(t.lo == t.values.front());
      CHECK(t.hi == t.values.back());
    }
    // Random ranges of every scale.
    seeded_rng rng(7);
    for (int i = 0; i < 2000; ++i) {
      double scale = std::pow(10.0, static_cast<double>(rng.below(24)) - 12);
      double a = (rng.unit() * 2 - 1) * scale;
      double b = a + rng.unit() * scale * (rng.below(2) == 0 ? 1 : 1e-3);
      CAPTURE(a);
      CAPTURE(b);
      axis_ticks t = nice_ticks(a, b);
      check_round_ticks(t.values, t.step);
      CHECK(t.lo <= a);
      CHECK(t.hi >= b);
    }
    axis_ticks pct = nice_ticks(0, 100);
    CHECK(pct.labels == std::vector<std::string>{"0", "20", "40", "60", "80", "100"});
    axis_ticks small = nice_ticks(0, 0.7);
    CHECK(small.labels ==
          std::vector<std::string>{"0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"});
    axis_ticks big = nice_ticks(0, 3e9);
    CHECK(big.labels.back() == "3e+09");
  }

  TEST_CASE("thin_series keeps first, last and every spike within max_points") {
    series s = spiky_series();
    series t = thin_series(s, 2000);
    CHECK(t.name == "spiky");
    REQUIRE(t.x.size() == t.y.size());
    CHECK(t.x.size() <= 2000);
    CHECK(t.x.size() >= 1900);
    CHECK(t.x.front() == 0);
    CHECK(t.x.back() == 99999);
    CHECK(std::is_sorted(t.x.begin(), t.x.end()));
    CHECK(std::find(t.x.begin(), t.x.end(), 54321.0) != t.x.end());
    CHECK(*std::max_element(t.y.begin(), t.y.end()) == 1000);
    CHECK(*std::min_element(t.y.begin(), t.y.end()) == -500);

    // Short series come back as they were; tiny limits count as 4.
    series few = make_series("few", {1, 2, 3}, {3, 1, 2});
    series same = thin_series(few, 2);
    CHECK(same.x == few.x);
    CHECK(same.y == few.y);
    CHECK(thin_series(s, 0).x.size() <= 4);

    // A run of NaN stays one gap with points on both sides.
    series gappy{"gappy", {}, {}};
    for (size_t i = 0; i < 10000; ++i) {
      gappy.x.push_back(static_cast<double>(i));
      gappy.y.push_back(i >= 5000 && i < 5010 ? nan_v : static_cast<double>(i % 7));
    }
    series g = thin_series(gappy, 2000);
    auto gap =
        std::find_if(g.y.begin(), g.y.end(), [](double v) { return std::isnan(v); });
    REQUIRE(gap != g.y.end());
    CHECK(std::count_if(g.y.begin(), g.y.end(), [](double v) { return std::isnan(v); }) ==
          1);
    CHECK(gap != g.y.begin());
    CHECK(gap + 1 != g.y.end());
  }

  TEST_CASE("render_svg writes well-formed XML for normal, empty, single-point, gappy, "
            "hostile and huge charts") {
    std::string xmllint = find_on_path("xmllint");
    INFO("PATH=", std::getenv("PATH") ? std::getenv("PATH") : "(unset)");
    REQUIRE_MESSAGE(!xmllint.empty(),
                    "xmllint is not on PATH (Debian: apt install libxml2-utils)");
    scratch_dir dir;

    // The check must be able to fail.
    command_result broken = xmllint_check(xmllint, dir, "broken.svg", "<svg><g></svg>\n");
    INFO("xmllint on broken input: ", broken.output);
    REQUIRE(broken.exit_code != 0);

    std::vector<std::pair<std::string, chart>> charts;
    chart normal{"gpu_allocation",
                 "GPU allocation vs arrived demand",
                 "arrived GPU demand (% of capacity)",
                 "GPUs allocated (%)",
                 {}};
    normal.lines.push_back(make_series("FGD", {0, 25, 50, 75, 100}, {0, 24, 48, 70, 88}));
    normal.lines.push_back(
        make_series("best-fit", {0, 25, 50, 75, 100}, {0, 23, 45, 62, 80}));
    charts.emplace_back("normal", normal);
    charts.emplace_back("empty", chart{"empty", "Nothing yet", "x", "y", {}});
    chart no_points{"no_points", "No points", "x", "y", {}};
    no_points.lines.push_back(make_series("FGD", {}, {}));
    no_points.lines.push_back(make_series("all nan", {1, 2}, {nan_v, inf_v}));
    charts.emplace_back("no_points", no_points);
    chart one{"one", "One point", "x", "y", {}};
    one.lines.push_back(make_series("FGD", {3}, {42}));
    charts.emplace_back("one", one);
    chart gappy{"gappy", "NaN in the middle", "x", "y", {}};
    gappy.lines.push_back(
        make_series("FGD", {0, 1, 2, 3, 4, 5}, {1, 2, nan_v, 4, inf_v, 6}));
    charts.emplace_back("gappy", gappy);
    chart flat{"flat", "All equal", "x", "y", {}};
    flat.lines.push_back(make_series("zero", {0, 1, 2}, {0, 0, 0}));
    charts.emplace_back("flat", flat);
    chart hostile{"id with <&> spaces",
                  "a \"<&>'\" title\x01 with \xff bytes",
                  "x <axis> & \"more\"",
                  "y's \xed\xa0\x80 label",
                  {}};
    hostile.lines.push_back(make_series("<script>alert('x')</script> & a very long name "
                                        "that goes on and on",
                                        {0, 1}, {1, 2}));
    charts.emplace_back("hostile", hostile);
    chart huge{"huge", "100k points", "t", "v", {}};
    huge.lines.push_back(spiky_series());
    charts.emplace_back("huge", huge);
    chart many{"many", "Twelve series, fixed y range", "x", "y", {}};
    for (int i = 0; i < 12; ++i)
      many.lines.push_back(make_series("s" + std::to_string(i), {0, 1, 2},
                                       {-5.0 * i, 1e30, static_cast<double>(i)}));
    many.y_min = -10;
    many.y_max = 10;
    charts.emplace_back("many", many);

    for (const auto& chart : charts) {
      const auto& [name, c] = chart;
      CAPTURE(chart.first); // a plain name: clang 14 cannot capture a binding
      std::string svg = render_svg(c);
      command_result r = xmllint_check(xmllint, dir, name + ".svg", svg);
      INFO("xmllint: ", r.output);
      CHECK(r.exit_code == 0);
      CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
      CHECK(svg.size() < 200000);
      if (name != "empty" && name != "no_points") {
        check_round_ticks(tick_labels(svg, "x-tick"));
        check_round_ticks(tick_labels(svg, "y-tick"));
      }
    }

    std::string empty = render_svg(charts[1].second);
    CHECK(empty.find(">no data<") != std::string::npos);
    CHECK(empty.find("<polyline") == std::string::npos);
    CHECK(render_svg(no_points).find(">no data<") != std::string::npos);

    std::string single = render_svg(one);
    CHECK(count(single, "<circle") == 1);
    CHECK(single.find("<polyline") == std::string::npos);

    // The NaN and the inf break the line: [0,1], a lone dot at 3, a lone dot at 5.
    std::string g = render_svg(gappy);
    CHECK(count(g, "<polyline") == 1);
    CHECK(count(g, "<circle") == 2);

    std::string h = render_svg(hostile);
    CHECK(h.find("a &quot;&lt;&amp;&gt;&apos;&quot; title\xEF\xBF\xBD with \xEF\xBF\xBD "
                 "bytes") != std::string::npos);
    CHECK(h.find("<script>") == std::string::npos);
    CHECK(h.find("&lt;script&gt;") != std::string::npos);

    std::string m = render_svg(many);
    CHECK(count(m, "stroke-dasharray") == 8); // series 8..11: line and legend
    CHECK(tick_labels(m, "y-tick").front() == -10);
    CHECK(tick_labels(m, "y-tick").back() == 10);
  }

  TEST_CASE("render_svg thins 100k points to max_points and keeps the spike") {
    chart c{"huge", "100k points", "t", "v", {}};
    c.lines.push_back(spiky_series());
    std::string svg = render_svg(c, 720, 420, 2000);
    auto lines = polylines(svg);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].size() <= 2000);
    CHECK(lines[0].size() >= 1900);
    // The spike to 1000 is the highest point on the y axis (smallest pixel
    // y), and the axis reaches at least 1000.
    std::vector<double> yt = tick_labels(svg, "y-tick");
    CHECK(yt.back() >= 1000);
    CHECK(yt.front() <= -500);
    auto top = std::min_element(lines[0].begin(), lines[0].end(),
                                [](auto a, auto b) { return a.second < b.second; });
    auto bottom = std::max_element(lines[0].begin(), lines[0].end(),
                                   [](auto a, auto b) { return a.second < b.second; });
    // 1000 and -500 on a 0..1000 / -500 axis sit at distinct extremes far
    // from the noise band near 0.
    double zero_band = lines[0].front().second;
    CHECK(zero_band - top->second > 100);
    CHECK(bottom->second - zero_band > 50);
  }

  TEST_CASE("render_svg gives the same bytes for the same chart") {
    chart c{"same", "Same", "x", "y", {}};
    c.lines.push_back(spiky_series());
    c.lines.push_back(make_series("b", {0, 50000, 99999}, {0.5, nan_v, 0.25}));
    chart copy = c;
    std::string a = render_svg(c);
    CHECK(a == render_svg(c));
    CHECK(a == render_svg(copy));
    CHECK(a != render_svg(c, 800, 420));
  }

  TEST_CASE("write_text_file replaces the file whole and names the path on failure") {
    scratch_dir dir;
    std::string path = (dir.path / "report.txt").string();
    REQUIRE(write_text_file(path, "a longer first version\n").ok());
    CHECK(read_all(path) == "a longer first version\n");
    REQUIRE(write_text_file(path, "short\n").ok());
    CHECK(read_all(path) == "short\n");
    CHECK(!std::filesystem::exists(path + ".tmp"));
    REQUIRE(write_text_file(path, "").ok());
    CHECK(std::filesystem::file_size(path) == 0);

    std::string missing = (dir.path / "no" / "such" / "dir.txt").string();
    auto r = write_text_file(missing, "x");
    REQUIRE(!r.ok());
    CHECK(r.err().is(runtime::errc::io_error));
    CHECK(r.err().message().find(missing) != std::string::npos);
    CHECK(r.err().message().find("No such file or directory") != std::string::npos);
  }

  TEST_CASE("progress_bar draws nothing when disabled") {
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    {
      progress_bar bar("sim", 1000, false, f);
      for (uint64_t i = 0; i <= 1000; ++i)
        bar.update(i);
      bar.finish();
    }
    CHECK(std::ftell(f) == 0);
    std::fclose(f);
  }

  TEST_CASE(
      "progress_bar redraws at most once per percent and ends with 100% and a newline") {
    auto content = [](std::FILE* f) {
      std::string text;
      std::rewind(f);
      char buf[4096];
      size_t n = 0;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
        text.append(buf, n);
      return text;
    };
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    {
      progress_bar bar("replaying trace", 1000000, true, f);
      for (uint64_t i = 1; i <= 1000000; ++i)
        bar.update(i);
      bar.update(3); // going back does not redraw
      bar.finish();
      bar.finish(); // idempotent
      bar.update(5);
    } // the destructor's finish writes nothing more
    std::string text = content(f);
    std::fclose(f);
    CHECK(count(text, "\r") == 101);
    CHECK(count(text, "\n") == 1);
    CHECK(text.rfind("\r[....................]   0%  replaying trace", 0) == 0);
    CHECK(text.find("\r[#########...........]  45%  replaying trace") !=
          std::string::npos);
    const std::string end = "\r[####################] 100%  replaying trace\n";
    REQUIRE(text.size() >= end.size());
    CHECK(text.substr(text.size() - end.size()) == end);

    // The destructor finishes a bar nobody finished; a total of 0 is done.
    f = std::tmpfile();
    REQUIRE(f != nullptr);
    {
      progress_bar bar("", 0, true, f);
      bar.update(7);
    }
    CHECK(content(f) == "\r[####################] 100%\n");
    std::fclose(f);

    // Overshooting the total is clamped.
    f = std::tmpfile();
    REQUIRE(f != nullptr);
    {
      progress_bar bar("x", 10, true, f);
      bar.update(25);
      CHECK(content(f) ==
            "\r[....................]   0%  x\r[####################] 100%  x");
    }
    CHECK(content(f) ==
          "\r[....................]   0%  x\r[####################] 100%  x\n");
    std::fclose(f);
  }
}
