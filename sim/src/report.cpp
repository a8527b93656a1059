#include "troupe/sim/report.hpp"

#include "csv.hpp"
#include "troupe/runtime/errc.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <system_error>
#include <unistd.h>

namespace troupe::sim {

using runtime::errc;

std::string format_number(double v, int digits) {
  TROUPE_ASSERT(digits >= 0 && digits <= 17, "format_number: digits outside 0..17");
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // The largest double has 309 integer digits; 17 decimals, sign and point.
  char buf[400];
  auto [end, ec] =
      std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, digits);
  TROUPE_ASSERT(ec == std::errc{}, "format_number: buffer too small");
  std::string out(buf, end);
  if (out.front() == '-' &&
      out.find_first_not_of("0.", 1) == std::string::npos) // "-0.00": no sign
    out.erase(0, 1);
  return out;
}

namespace {

/// True when `s` is a whole number as std::from_chars reads it ("12",
/// "-1.5", "1e3", "nan", "inf"), not "" or "12 " or "+1".
bool parses_as_double(std::string_view s, double* out = nullptr) {
  if (s.empty()) return false;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size()) return false;
  if (out != nullptr) *out = v;
  return true;
}

/// A number in a table cell: a double, optionally followed by one '%'.
bool numeric_cell(std::string_view s) {
  if (!s.empty() && s.back() == '%') s.remove_suffix(1);
  return parses_as_double(s);
}

/// UTF-8 code points in `s` (bytes that are not continuation bytes).
size_t display_width(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

/// `s` with ASCII control characters as spaces, so a cell stays on its line.
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = ' ';
  }
  return out;
}

void check_row_sizes(const summary_table& t) {
  for (const auto& row : t.rows)
    TROUPE_ASSERT(row.size() == t.columns.size(),
                  "summary_table: a row's cell count differs from the columns");
}

/// `v` with 6 decimals, trailing zeros (and a bare '.') dropped.
std::string csv_number(double v) {
  std::string s = format_number(v, 6);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0')
      s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

} // namespace

std::string render_table(const summary_table& t) {
  check_row_sizes(t);
  const size_t ncols = t.columns.size();
  std::vector<std::string> header(ncols);
  std::vector<std::vector<std::string>> cells(t.rows.size(),
                                              std::vector<std::string>(ncols));
  std::vector<size_t> width(ncols, 0);
  std::vector<bool> numeric(ncols, false);
  for (size_t c = 0; c < ncols; ++c) {
    header[c] = printable(t.columns[c]);
    width[c] = display_width(header[c]);
    bool any = false;
    bool all = true;
    for (size_t r = 0; r < t.rows.size(); ++r) {
      const std::string& cell = t.rows[r][c];
      cells[r][c] = printable(cell);
      width[c] = std::max(width[c], display_width(cells[r][c]));
      if (cell.empty()) continue;
      any = true;
      all = all && numeric_cell(cell);
    }
    numeric[c] = any && all;
  }

  std::string out;
  auto add_line = [&](const std::vector<std::string>& line) {
    std::string text;
    for (size_t c = 0; c < ncols; ++c) {
      if (c > 0) text += "  ";
      size_t pad = width[c] - display_width(line[c]);
      if (numeric[c]) text.append(pad, ' ');
      text += line[c];
      if (!numeric[c]) text.append(pad, ' ');
    }
    while (!text.empty() && text.back() == ' ')
      text.pop_back();
    out += text;
    out += '\n';
  };
  if (!t.title.empty()) {
    out += printable(t.title);
    out += '\n';
  }
  add_line(header);
  size_t total = 0;
  for (size_t c = 0; c < ncols; ++c)
    total += width[c] + (c > 0 ? 2 : 0);
  out.append(total, '-');
  out += '\n';
  for (const auto& row : cells)
    add_line(row);
  return out;
}

std::string render_table_json(const summary_table& t) {
  check_row_sizes(t);
  for (size_t a = 0; a < t.columns.size(); ++a)
    for (size_t b = a + 1; b < t.columns.size(); ++b)
      TROUPE_ASSERT(t.columns[a] != t.columns[b],
                    "render_table_json: two columns have the same name");
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const auto& row : t.rows) {
    nlohmann::ordered_json obj = nlohmann::ordered_json::object();
    for (size_t c = 0; c < t.columns.size(); ++c) {
      const std::string& cell = row[c];
      int64_t i = 0;
      double d = 0;
      auto [ptr, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), i);
      if (!cell.empty() && ec == std::errc{} && ptr == cell.data() + cell.size())
        obj[t.columns[c]] = i;
      else if (parses_as_double(cell, &d) && std::isfinite(d))
        obj[t.columns[c]] = d;
      else
        obj[t.columns[c]] = cell;
    }
    rows.push_back(std::move(obj));
  }
  return rows.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
         "\n";
}

std::string render_series_csv(const std::vector<chart>& charts) {
  std::string out = "chart,series,x,y\n";
  for (const auto& c : charts) {
    std::string chart_field = csv::quote(c.id);
    for (const auto& s : c.lines) {
      TROUPE_ASSERT(s.x.size() == s.y.size(), "series: x and y differ in length");
      std::string prefix = chart_field + "," + csv::quote(s.name) + ",";
      for (size_t i = 0; i < s.x.size(); ++i) {
        out += prefix;
        out += csv_number(s.x[i]);
        out += ',';
        out += csv_number(s.y[i]);
        out += '\n';
      }
    }
  }
  return out;
}

result<void> write_text_file(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  auto fail = [&](const std::string& what, int err) {
    return error{errc::io_error,
                 what + " " + path + ": " +
                     std::error_code(err, std::generic_category()).message()};
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("cannot write", errno);
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail("cannot write", err);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail("cannot sync", err);
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail("cannot write", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail("cannot replace", err);
  }
  return ok();
}

// --- progress_bar -----------------------------------------------------------

namespace {
constexpr size_t bar_width = 20;
} // namespace

progress_bar::progress_bar(std::string label, uint64_t total, bool enabled,
                           std::FILE* out)
    : label_(std::move(label)), total_(total), enabled_(enabled), out_(out) {
  if (enabled_) draw();
}

progress_bar::~progress_bar() {
  finish();
}

void progress_bar::update(uint64_t done) {
  if (finished_) return;
  done_ = std::min(done, total_);
  if (enabled_) draw();
}

void progress_bar::finish() {
  if (finished_) return;
  done_ = total_;
  if (enabled_) {
    draw();
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  finished_ = true;
}

void progress_bar::draw() {
  uint64_t step = 100;
  if (total_ > 0) {
    if (done_ <= UINT64_MAX / 100)
      step = done_ * 100 / total_;
    else // done_ * 100 would overflow; done_ / (total_ / 100) is close enough
      step = std::min<uint64_t>(100, done_ / (total_ / 100));
  }
  if (drawn_step_ != UINT64_MAX && step <= drawn_step_) return;
  drawn_step_ = step;
  size_t filled = static_cast<size_t>(step) * bar_width / 100;
  std::string line = "\r[";
  line.append(filled, '#');
  line.append(bar_width - filled, '.');
  line += ']';
  char pct[8];
  std::snprintf(pct, sizeof(pct), "%4u%%", static_cast<unsigned>(step));
  line += pct;
  if (!label_.empty()) {
    line += "  ";
    line += label_;
  }
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
}

} // namespace troupe::sim
