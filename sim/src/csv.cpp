#include "csv.hpp"

#include "troupe/runtime/errc.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace troupe::sim::csv {

using runtime::errc;

namespace {

std::string shown(std::string_view s) {
  constexpr size_t max_shown = 40;
  std::string out = "\"";
  out.append(s.substr(0, max_shown));
  if (s.size() > max_shown) out += "...";
  out += '"';
  return out;
}

} // namespace

result<void> table::scan_rows(std::string_view text, table& t,
                              const std::function<result<void>()>& on_header,
                              const std::function<result<void>(row&)>& on_row) {
  // A UTF-8 byte order mark (spreadsheets write one) is not part of the
  // first column's name.
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  row cur;
  std::string field;
  uint64_t line = 1;
  bool in_quotes = false;
  bool quoted = false;      // the current field started with a quote
  bool row_started = false; // any character of this row seen
  bool have_header = false;
  uint64_t quote_line = 0;
  auto end_field = [&] {
    cur.fields.push_back(std::move(field));
    field.clear();
    quoted = false;
  };
  auto end_row = [&]() -> result<void> {
    bool blank = cur.fields.empty() && field.empty() && !quoted;
    end_field();
    row_started = false;
    if (blank) {
      cur.fields.clear();
      return ok();
    }
    if (!have_header) {
      t.header_ = std::move(cur.fields);
      have_header = true;
      if (auto r = on_header(); !r) return r;
    } else if (auto r = on_row(cur); !r) {
      return r;
    }
    cur.fields.clear(); // keeps its capacity unless on_row took it
    return ok();
  };
  auto fail = [&](uint64_t at_line, std::string_view what) {
    return error{errc::invalid_argument, t.source_ + ":" + std::to_string(at_line) + ":" +
                                             std::to_string(cur.fields.size() + 1) +
                                             ": " + std::string(what)};
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (!row_started) {
      cur.line = line;
      row_started = true;
    }
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    switch (c) {
    case ',':
      end_field();
      break;
    case '"':
      if (!field.empty() || quoted) return fail(line, "quote inside an unquoted field");
      in_quotes = true;
      quoted = true;
      quote_line = line;
      break;
    case '\r':
      if (i + 1 < text.size() && text[i + 1] == '\n') break; // CRLF
      field += c;
      break;
    case '\n':
      if (auto r = end_row(); !r) return r;
      ++line;
      break;
    default:
      if (quoted) return fail(line, "text after a closing quote");
      field += c;
    }
  }
  if (in_quotes)
    return error{errc::invalid_argument, t.source_ + ":" + std::to_string(quote_line) +
                                             ": unterminated quoted field"};
  if (row_started)
    if (auto r = end_row(); !r) return r;
  if (!have_header)
    return error{errc::invalid_argument,
                 t.source_ + ": empty file: expected a header row"};
  return ok();
}

result<table> table::parse(std::string_view text, std::string_view source) {
  table t;
  t.source_ = std::string(source);
  auto r = scan_rows(
      text, t, [] { return ok(); },
      [&](row& r) -> result<void> {
        t.rows_.push_back(std::move(r));
        return ok();
      });
  if (!r) return r.err();
  return t;
}

result<void>
table::scan(std::string_view text, std::string_view source,
            const std::function<result<void>(const table&)>& on_header,
            const std::function<result<void>(const table&, const row&)>& on_row) {
  table t;
  t.source_ = std::string(source);
  return scan_rows(
      text, t, [&] { return on_header(t); }, [&](row& r) { return on_row(t, r); });
}

std::optional<size_t> table::find_column(std::string_view name) const {
  for (size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == name) return i;
  return std::nullopt;
}

result<size_t> table::column(std::string_view name) const {
  if (auto i = find_column(name)) return *i;
  std::string have;
  for (const auto& h : header_) {
    if (!have.empty()) have += ',';
    have += h;
  }
  return error{errc::invalid_argument, source_ + ":1: missing column \"" +
                                           std::string(name) + "\" (header: " + have +
                                           ")"};
}

error table::fail(const row& r, size_t col, std::string_view what) const {
  // A column past the header has no name to show.
  std::string name = col < header_.size() ? " (" + header_[col] + ")" : std::string();
  return error{errc::invalid_argument, source_ + ":" + std::to_string(r.line) + ":" +
                                           std::to_string(col + 1) + name + ": " +
                                           std::string(what)};
}

result<std::string_view> table::text(const row& r, size_t col) const {
  if (col >= r.fields.size())
    return fail(r, col,
                "missing field: the row has " + std::to_string(r.fields.size()) +
                    " fields, the header " + std::to_string(header_.size()));
  return std::string_view(r.fields[col]);
}

result<uint64_t> table::u64(const row& r, size_t col) const {
  auto t = text(r, col);
  if (!t) return t.err();
  uint64_t v = 0;
  auto s = *t;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size())
    return fail(r, col, "expected an unsigned integer, got " + shown(s));
  return v;
}

result<int64_t> table::i64(const row& r, size_t col) const {
  auto t = text(r, col);
  if (!t) return t.err();
  int64_t v = 0;
  auto s = *t;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size())
    return fail(r, col, "expected an integer, got " + shown(s));
  return v;
}

result<double> table::number(const row& r, size_t col) const {
  auto t = text(r, col);
  if (!t) return t.err();
  double v = 0;
  auto s = *t;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || !std::isfinite(v))
    return fail(r, col, "expected a number, got " + shown(s));
  return v;
}

result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return error{errc::io_error, path + ": cannot open"};
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return error{errc::io_error, path + ": read failed"};
  return std::move(ss).str();
}

std::string quote(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

} // namespace troupe::sim::csv
