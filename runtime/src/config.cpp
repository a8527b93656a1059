#include "troupe/runtime/config.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>
#include <toml++/toml.h>
#include <unistd.h> // environ

namespace troupe {

namespace {

using std::chrono::nanoseconds;

/// Largest config file load_file reads; anything bigger is not a config.
constexpr std::uintmax_t max_file_bytes = 16u << 20;
/// At most this many problems are listed; the rest are counted.
constexpr std::size_t max_reported_errors = 100;
/// Values and keys are cut to this many bytes in messages.
constexpr std::size_t max_quoted_bytes = 64;

[[noreturn]] void declaration_bug(const std::string& what) {
  std::fprintf(stderr, "troupe: bad config schema declaration: %s\n", what.c_str());
  std::abort();
}

// -- text helpers -------------------------------------------------------------

/// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong encodings, surrogates and values past U+10FFFF are invalid.
  static constexpr std::array<std::uint32_t, 5> min_cp{0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void append_hex_escape(std::string& out, unsigned char c) {
  static constexpr char digits[] = "0123456789abcdef";
  out += "\\x";
  out += digits[c >> 4];
  out += digits[c & 0xF];
}

/// `s` in double quotes for an error message: control characters and
/// invalid UTF-8 escaped, cut after max_quoted_bytes with "...".
std::string quote(std::string_view s) {
  std::string out = "\"";
  std::size_t i = 0;
  while (i < s.size()) {
    if (i >= max_quoted_bytes) {
      out += "\"...";
      return out;
    }
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\r':
      out += "\\r";
      break;
    default:
      if (c < 0x20 || c == 0x7F) {
        append_hex_escape(out, c);
      } else if (c >= 0x80) {
        auto n = utf8_sequence_length(s, i);
        if (n == 0) {
          append_hex_escape(out, c);
        } else {
          out.append(s.substr(i, n));
          i += n;
          continue;
        }
      } else {
        out += static_cast<char>(c);
      }
    }
    ++i;
  }
  out += '"';
  return out;
}

/// A key segment as the user would write it: bare when it can be, quoted
/// otherwise.
std::string key_text(std::string_view key) {
  bool bare = !key.empty() && key.size() <= max_quoted_bytes &&
              std::all_of(key.begin(), key.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '_' || c == '-';
              });
  return bare ? std::string{key} : quote(key);
}

std::string join_key(std::string_view path, std::string_view key) {
  if (path.empty()) return key_text(key);
  std::string out{path};
  out += '.';
  out += key_text(key);
  return out;
}

std::string to_lower(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string to_upper(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

/// Optimal string alignment distance (Levenshtein plus transpositions).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i)
    d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j)
    d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

/// The candidate closest to `word` (ignoring case), if close enough to be a
/// plausible typo.
std::optional<std::string> closest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  if (word.empty() || word.size() > max_quoted_bytes) return std::nullopt;
  const auto lower = to_lower(word);
  const std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    auto dist = edit_distance(lower, to_lower(c));
    if (dist < best_distance) {
      best_distance = dist;
      best = c;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word,
                         const std::vector<std::string>& candidates) {
  auto best = closest(word, candidates);
  return best ? " (did you mean '" + *best + "'?)" : std::string{};
}

// -- numbers and durations ----------------------------------------------------

/// Shortest text that reads back as `d`: "0.2", "2", "1e-05", "nan".
std::string real_text(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  std::array<char, 64> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), d);
  TROUPE_ASSERT(ec == std::errc{}, "to_chars(double) failed");
  return std::string(buf.data(), end);
}

/// real_text that TOML reads as a float, never as an integer: "2.0".
std::string toml_real_text(double d) {
  auto s = real_text(d);
  if (s.find_first_of(".ein") == std::string::npos) s += ".0";
  return s;
}

struct duration_unit {
  std::string_view name;
  std::int64_t ns;
};

// Longest names first so "ms" is not read as "m" followed by "s".
constexpr std::array<duration_unit, 7> duration_units{{
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000}, // µs
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
}};

/// "5s", "250ms", "1h", "0s": the largest unit that divides `d` exactly.
std::string duration_text(nanoseconds d) {
  auto ns = d.count();
  if (ns == 0) return "0s";
  static constexpr std::array<duration_unit, 6> by_size{{
      {"h", 3'600'000'000'000},
      {"m", 60'000'000'000},
      {"s", 1'000'000'000},
      {"ms", 1'000'000},
      {"us", 1'000},
      {"ns", 1},
  }};
  for (const auto& u : by_size)
    if (ns % u.ns == 0) return std::to_string(ns / u.ns) + std::string{u.name};
  return std::to_string(ns) + "ns";
}

enum class duration_problem { none, malformed, negative, too_large };

/// Parses one or more <number><unit> groups ("1h30m", "1.5s", "250ms").
/// Fractions below a nanosecond are truncated.
duration_problem parse_duration(std::string_view s, nanoseconds& out) {
  __extension__ using u128 = unsigned __int128;
  constexpr u128 limit = static_cast<u128>(nanoseconds::max().count());
  if (s.empty()) return duration_problem::malformed;
  if (s.front() == '-') return duration_problem::negative;
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  u128 total = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_digit(s[i])) return duration_problem::malformed;
    u128 whole = 0;
    bool too_large = false;
    for (; i < s.size() && is_digit(s[i]); ++i) {
      whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
      if (whole > limit) { // keep reading the digits, then report
        too_large = true;
        whole = limit + 1;
      }
    }
    u128 frac_num = 0;
    u128 frac_den = 1;
    if (i < s.size() && s[i] == '.') {
      ++i;
      if (i >= s.size() || !is_digit(s[i])) return duration_problem::malformed;
      for (; i < s.size() && is_digit(s[i]); ++i) {
        if (frac_den < 1'000'000'000'000'000'000ULL) { // keep 18 digits
          frac_num = frac_num * 10 + static_cast<unsigned>(s[i] - '0');
          frac_den *= 10;
        }
      }
    }
    const duration_unit* unit = nullptr;
    for (const auto& u : duration_units) {
      if (s.substr(i).starts_with(u.name) &&
          (unit == nullptr || u.name.size() > unit->name.size()))
        unit = &u;
    }
    if (unit == nullptr) return duration_problem::malformed;
    i += unit->name.size();
    if (too_large) return duration_problem::too_large;
    const auto unit_ns = static_cast<u128>(unit->ns);
    total += whole * unit_ns + frac_num * unit_ns / frac_den;
    if (total > limit) return duration_problem::too_large;
  }
  out = nanoseconds{static_cast<std::int64_t>(total)};
  return duration_problem::none;
}

// -- field checks -------------------------------------------------------------

bool full_range(const int_range& r) {
  return r.min == std::numeric_limits<std::int64_t>::min() &&
         r.max == std::numeric_limits<std::int64_t>::max();
}

bool full_range(const real_range& r) {
  return r.min == -std::numeric_limits<double>::max() &&
         r.max == std::numeric_limits<double>::max();
}

bool full_range(const duration_range& r) {
  return r.min == nanoseconds::zero() && r.max == nanoseconds::max();
}

std::string join_choices(const std::vector<std::string>& choices) {
  std::string out;
  for (const auto& c : choices) {
    if (!out.empty()) out += '|';
    out += c;
  }
  return out;
}

/// What a field accepts, for "expected <this>, got ...".
std::string describe(const field_decl& f) {
  switch (f.kind) {
  case field_kind::string:
    return "string";
  case field_kind::boolean:
    return "boolean";
  case field_kind::integer:
    if (full_range(f.ints)) return "integer";
    return "integer in [" + std::to_string(f.ints.min) + ", " +
           std::to_string(f.ints.max) + "]";
  case field_kind::real:
    if (full_range(f.reals)) return "finite number";
    return "number in [" + real_text(f.reals.min) + ", " + real_text(f.reals.max) + "]";
  case field_kind::duration: {
    std::string out = "duration";
    if (!full_range(f.durations))
      out += " in [" + duration_text(f.durations.min) + ", " +
             duration_text(f.durations.max) + "]";
    return out + " like \"250ms\", \"5s\" or \"2m\" (units ns, us, ms, s, m, h)";
  }
  case field_kind::one_of:
    return "one of " + join_choices(f.choices);
  case field_kind::string_list:
    return "array of strings";
  }
  return "value";
}

/// Short description for comments in rendered TOML.
std::string describe_briefly(const field_decl& f) {
  if (f.kind == field_kind::duration) {
    if (full_range(f.durations)) return "duration";
    return "duration in [" + duration_text(f.durations.min) + ", " +
           duration_text(f.durations.max) + "]";
  }
  return describe(f);
}

/// Whether a value of the right type also meets the field's constraints.
bool within_constraints(const field_decl& f, const field_value& v) {
  switch (f.kind) {
  case field_kind::integer: {
    auto i = std::get<std::int64_t>(v);
    return i >= f.ints.min && i <= f.ints.max;
  }
  case field_kind::real: {
    auto d = std::get<double>(v);
    return std::isfinite(d) && d >= f.reals.min && d <= f.reals.max;
  }
  case field_kind::duration: {
    auto d = std::get<nanoseconds>(v);
    return d >= f.durations.min && d <= f.durations.max;
  }
  case field_kind::one_of: {
    const auto& s = std::get<std::string>(v);
    return std::find(f.choices.begin(), f.choices.end(), s) != f.choices.end();
  }
  default:
    return true;
  }
}

/// A conversion result: a value or the text after "key: ".
struct conversion {
  std::optional<field_value> value;
  std::string problem;
};

conversion rejected(const field_decl& f, const std::string& got,
                    const std::string& note = {}) {
  return {std::nullopt, "expected " + describe(f) + ", got " + got + note};
}

/// Checks a value of the right type against the field's constraints;
/// `got` is how the raw input is shown in the message.
conversion constrained(const field_decl& f, field_value v, const std::string& got) {
  if (within_constraints(f, v)) return {std::move(v), {}};
  std::string note;
  if (f.kind == field_kind::one_of)
    note = did_you_mean(std::get<std::string>(v), f.choices);
  return rejected(f, got, note);
}

/// Converts duration text from a file or the environment.
conversion duration_from_text(const field_decl& f, std::string_view text) {
  nanoseconds d{};
  switch (parse_duration(text, d)) {
  case duration_problem::none:
    return constrained(f, field_value{d}, quote(text));
  case duration_problem::malformed:
    return rejected(f, quote(text));
  case duration_problem::negative:
    return rejected(f, quote(text), " (negative)");
  case duration_problem::too_large:
    return rejected(f, quote(text), " (too large)");
  }
  return rejected(f, quote(text));
}

// -- TOML values --------------------------------------------------------------

/// "string \"abc\"", "integer 5", "array", ... for type mismatches.
std::string describe_node(const toml::node& n) {
  switch (n.type()) {
  case toml::node_type::string:
    return "string " + quote(n.as_string()->get());
  case toml::node_type::integer:
    return "integer " + std::to_string(n.as_integer()->get());
  case toml::node_type::floating_point:
    return "float " + toml_real_text(n.as_floating_point()->get());
  case toml::node_type::boolean:
    return std::string{"boolean "} + (n.as_boolean()->get() ? "true" : "false");
  case toml::node_type::array:
    return "array";
  case toml::node_type::table:
    return "table";
  case toml::node_type::date:
    return "date";
  case toml::node_type::time:
    return "time";
  case toml::node_type::date_time:
    return "date-time";
  case toml::node_type::none:
    break;
  }
  return "nothing";
}

conversion from_toml(const field_decl& f, const toml::node& n) {
  switch (f.kind) {
  case field_kind::string:
    if (auto* s = n.as_string()) return {field_value{s->get()}, {}};
    break;
  case field_kind::boolean:
    if (auto* b = n.as_boolean()) return {field_value{b->get()}, {}};
    break;
  case field_kind::integer:
    if (auto* i = n.as_integer())
      return constrained(f, field_value{i->get()}, std::to_string(i->get()));
    break;
  case field_kind::real:
    if (auto* d = n.as_floating_point())
      return constrained(f, field_value{d->get()}, real_text(d->get()));
    if (auto* i = n.as_integer())
      return constrained(f, field_value{static_cast<double>(i->get())},
                         std::to_string(i->get()));
    break;
  case field_kind::duration:
    if (auto* s = n.as_string()) return duration_from_text(f, s->get());
    if (n.is_integer() || n.is_floating_point())
      return rejected(f, describe_node(n), " (write it with a unit, e.g. \"5s\")");
    break;
  case field_kind::one_of:
    if (auto* s = n.as_string())
      return constrained(f, field_value{s->get()}, quote(s->get()));
    break;
  case field_kind::string_list:
    if (auto* a = n.as_array()) {
      std::vector<std::string> out;
      for (std::size_t k = 0; k < a->size(); ++k) {
        auto* s = a->get(k)->as_string();
        if (s == nullptr)
          return rejected(f, "array whose element " + std::to_string(k) + " is " +
                                 describe_node(*a->get(k)));
        out.push_back(s->get());
      }
      return {field_value{std::move(out)}, {}};
    }
    break;
  }
  return rejected(f, describe_node(n));
}

// -- environment values -------------------------------------------------------

template <class T> std::optional<T> parse_number(std::string_view s) {
  T value{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return value;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

conversion from_env(const field_decl& f, std::string_view text) {
  const auto got = quote(text);
  switch (f.kind) {
  case field_kind::string:
    if (!is_valid_utf8(text)) return {std::nullopt, "expected UTF-8 text, got " + got};
    return {field_value{std::string{text}}, {}};
  case field_kind::boolean:
    if (text == "true" || text == "1") return {field_value{true}, {}};
    if (text == "false" || text == "0") return {field_value{false}, {}};
    return {std::nullopt, "expected boolean (true, false, 1 or 0), got " + got};
  case field_kind::integer:
    if (auto i = parse_number<std::int64_t>(text))
      return constrained(f, field_value{*i}, got);
    return rejected(f, got);
  case field_kind::real:
    if (auto d = parse_number<double>(text)) return constrained(f, field_value{*d}, got);
    return rejected(f, got);
  case field_kind::duration:
    return duration_from_text(f, text);
  case field_kind::one_of:
    return constrained(f, field_value{std::string{text}}, got);
  case field_kind::string_list: {
    if (!is_valid_utf8(text))
      return {std::nullopt, "expected comma-separated UTF-8 strings, got " + got};
    std::vector<std::string> out;
    if (!trim(text).empty()) {
      std::size_t start = 0;
      while (true) {
        auto comma = text.find(',', start);
        out.emplace_back(trim(text.substr(start, comma - start)));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
    }
    return {field_value{std::move(out)}, {}};
  }
  }
  return rejected(f, got);
}

// -- rendering ----------------------------------------------------------------

/// A TOML basic string. Invalid UTF-8 becomes U+FFFD, which TOML can hold.
std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    default:
      if (c < 0x20 || c == 0x7F) {
        std::array<char, 8> buf{};
        std::snprintf(buf.data(), buf.size(), "\\u%04x", c);
        out += buf.data();
      } else if (c >= 0x80) {
        auto n = utf8_sequence_length(s, i);
        if (n == 0) {
          out += "\\uFFFD";
          ++i;
        } else {
          out.append(s.substr(i, n));
          i += n;
        }
        continue;
      } else {
        out += static_cast<char>(c);
      }
    }
    ++i;
  }
  out += '"';
  return out;
}

std::string toml_value_text(const field_value& v) {
  struct visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return toml_real_text(d); }
    std::string operator()(const std::string& s) const { return toml_string(s); }
    std::string operator()(nanoseconds d) const { return toml_string(duration_text(d)); }
    std::string operator()(const std::vector<std::string>& l) const {
      std::string out = "[";
      for (std::size_t k = 0; k < l.size(); ++k) {
        if (k > 0) out += ", ";
        out += toml_string(l[k]);
      }
      return out + "]";
    }
  };
  return std::visit(visitor{}, v);
}

// -- declaration checks -------------------------------------------------------

bool is_name(std::string_view s) {
  if (s.empty() || s.front() < 'a' || s.front() > 'z') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool is_section_name(std::string_view s) {
  while (true) {
    auto dot = s.find('.');
    if (!is_name(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

std::string env_prefix(std::string_view section) {
  std::string out = "TROUPE_" + to_upper(section);
  std::replace(out.begin(), out.end(), '.', '_');
  return out + "_";
}

// -- loading ------------------------------------------------------------------

/// Problems found while loading, kept in file-line order.
class problem_list {
public:
  explicit problem_list(std::string_view source) : source_(source) {}

  /// "source:line: key: what" (line 0 = unknown).
  void at(std::uint32_t line, std::string_view key, std::string_view what) {
    std::string text{source_};
    if (line > 0) text += ':' + std::to_string(line);
    text += ": ";
    text += key;
    text += ": ";
    text += what;
    add(line, std::move(text));
  }

  /// Text that already says where it comes from.
  void add(std::uint64_t order, std::string text) {
    entries_.push_back({order, std::move(text)});
  }

  bool empty() const noexcept { return entries_.empty(); }

  /// All problems, one per line, sorted by file line (env and checks last).
  error to_error() {
    std::stable_sort(entries_.begin(), entries_.end(),
                     [](const auto& a, const auto& b) { return a.order < b.order; });
    std::string text;
    std::size_t shown = std::min(entries_.size(), max_reported_errors);
    for (std::size_t k = 0; k < shown; ++k) {
      if (k > 0) text += '\n';
      text += entries_[k].text;
    }
    if (entries_.size() > shown)
      text += "\n... and " + std::to_string(entries_.size() - shown) + " more problems";
    return error{runtime::errc::invalid_argument, std::move(text)};
  }

  static constexpr std::uint64_t env_order = std::uint64_t{1} << 40;
  static constexpr std::uint64_t check_order = std::uint64_t{1} << 41;

private:
  struct entry {
    std::uint64_t order;
    std::string text;
  };
  std::string_view source_;
  std::vector<entry> entries_;
};

/// The one place toml++ failures become troupe problems. toml++ throws
/// parse_error when built with TOML_EXCEPTIONS and returns it otherwise.
std::optional<toml::table> parse_document(std::string_view text, std::string_view source,
                                          problem_list& problems) {
  auto report = [&](const toml::parse_error& e) {
    const auto& where = e.source().begin;
    std::string msg{source};
    msg += ':' + std::to_string(where.line) + ':' + std::to_string(where.column) + ": " +
           std::string{e.description()};
    problems.add(where.line, std::move(msg));
  };
#if TOML_EXCEPTIONS
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    report(e);
    return std::nullopt;
  }
#else
  auto parsed = toml::parse(text, source);
  if (parsed) return std::move(parsed).table();
  report(parsed.error());
  return std::nullopt;
#endif
}

struct bound_field {
  const field_decl* decl;
  void* target;
};

/// Lookup tables over every bound schema for one load.
struct binding_index {
  /// Every declared section, with its fields in declaration order.
  std::map<std::string, std::vector<bound_field>, std::less<>> sections;
  /// Proper prefixes of dotted section names ("transport" of "transport.ucx").
  std::set<std::string, std::less<>> parents;
  std::map<std::string, bound_field, std::less<>> by_env;
  /// "TROUPE_METRICS_" -> "metrics".
  std::vector<std::pair<std::string, std::string>> env_prefixes;
  std::vector<std::pair<const std::function<std::optional<std::string>(const void*)>*,
                        const void*>>
      checks;
};

class loader {
public:
  loader(const binding_index& index, std::string_view source)
      : index_(index), source_(source), problems_(source) {}

  void load_toml(std::string_view text) {
    if (auto doc = parse_document(text, source_, problems_)) walk(*doc, "");
  }

  void load_env(const env_map& env) {
    for (const auto& [name, value] : env) {
      if (!name.starts_with("TROUPE_")) continue;
      if (auto it = index_.by_env.find(name); it != index_.by_env.end()) {
        auto c = from_env(*it->second.decl, value);
        if (c.value)
          it->second.decl->store(it->second.target, *c.value);
        else
          problems_.add(problem_list::env_order, "env " + name + ": " + c.problem);
        continue;
      }
      // Unknown: an error when it names a known section (a typo), ignored
      // otherwise (another tool's or an unbound module's variable).
      const std::string* section = nullptr;
      std::size_t best = 0;
      for (const auto& [prefix, sec] : index_.env_prefixes) {
        if (name.starts_with(prefix) && prefix.size() > best) {
          best = prefix.size();
          section = &sec;
        }
      }
      if (section == nullptr) continue;
      std::vector<std::string> names;
      for (const auto& bf : index_.sections.at(*section))
        names.push_back(bf.decl->env_name());
      std::string what = "env " + key_text(name) + ": unknown setting";
      if (auto hint = closest(name, names)) what += " (did you mean " + *hint + "?)";
      problems_.add(problem_list::env_order, std::move(what));
    }
  }

  void run_checks() {
    for (const auto& [check, target] : index_.checks) {
      if (auto msg = (*check)(target))
        problems_.add(problem_list::check_order, std::string{source_} + ": " + *msg);
    }
  }

  problem_list& problems() noexcept { return problems_; }

private:
  void walk(const toml::table& table, const std::string& path) {
    const std::vector<bound_field>* fields = nullptr;
    if (auto it = index_.sections.find(path); it != index_.sections.end())
      fields = &it->second;
    for (auto&& [k, node] : table) {
      const std::string_view key = k.str();
      auto line = k.source().begin.line;
      if (line == 0) line = node.source().begin.line;
      std::string child = path.empty() ? std::string{key} : path + "." + std::string{key};
      if (fields != nullptr) {
        auto f = std::find_if(fields->begin(), fields->end(),
                              [&](const bound_field& bf) { return bf.decl->key == key; });
        if (f != fields->end()) {
          auto c = from_toml(*f->decl, node);
          if (c.value)
            f->decl->store(f->target, *c.value);
          else
            problems_.at(line, child, c.problem);
          continue;
        }
      }
      if (index_.sections.contains(child) || index_.parents.contains(child)) {
        if (auto* sub = node.as_table())
          walk(*sub, child);
        else
          problems_.at(line, child,
                       "expected section [" + child + "], got " + describe_node(node));
        continue;
      }
      // Unknown: suggest a sibling key or section.
      std::vector<std::string> candidates;
      if (fields != nullptr)
        for (const auto& bf : *fields)
          candidates.push_back(bf.decl->key);
      auto add_children = [&](const auto& names) {
        for (const auto& name : names) {
          std::string_view rest = name;
          if (!path.empty()) {
            if (!rest.starts_with(path + ".")) continue;
            rest.remove_prefix(path.size() + 1);
          }
          if (rest.find('.') == std::string_view::npos) candidates.emplace_back(rest);
        }
      };
      std::vector<std::string> section_names;
      for (const auto& [name, _] : index_.sections)
        section_names.push_back(name);
      add_children(section_names);
      add_children(index_.parents);
      bool is_section = fields == nullptr && node.is_table();
      problems_.at(line, join_key(path, key),
                   std::string{is_section ? "unknown section" : "unknown key"} +
                       did_you_mean(key, candidates));
    }
  }

  const binding_index& index_;
  std::string_view source_;
  problem_list problems_;
};

binding_index
make_index(const std::vector<std::pair<const schema_decl*, void*>>& bindings) {
  binding_index index;
  for (const auto& [schema, target] : bindings) {
    for (const auto& s : schema->sections) {
      index.sections[s.name];
      index.env_prefixes.emplace_back(env_prefix(s.name), s.name);
      for (auto dot = s.name.find('.'); dot != std::string::npos;
           dot = s.name.find('.', dot + 1))
        index.parents.insert(s.name.substr(0, dot));
    }
    for (const auto& f : schema->fields) {
      bound_field bf{&f, target};
      index.sections[f.section].push_back(bf);
      index.by_env.emplace(f.env_name(), bf);
    }
    for (const auto& c : schema->checks)
      index.checks.emplace_back(&c, target);
  }
  return index;
}

} // namespace

// -- public: environment ------------------------------------------------------

env_map snapshot_environment() {
  env_map out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry{*e};
    if (!entry.starts_with("TROUPE_")) continue;
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return out;
}

// -- public: schema -----------------------------------------------------------

std::string field_decl::dotted_key() const {
  return section + "." + key;
}

std::string field_decl::env_name() const {
  return env_prefix(section) + to_upper(key);
}

namespace config_detail {

void add_section(schema_decl& schema, section_decl section) {
  if (!is_section_name(section.name))
    declaration_bug("section name '" + section.name +
                    "' must be lower-case [a-z][a-z0-9_]* segments joined by dots");
  for (const auto& s : schema.sections)
    if (s.name == section.name)
      declaration_bug("section [" + section.name + "] declared twice");
  for (const auto& f : schema.fields)
    if (f.dotted_key() == section.name)
      declaration_bug("section [" + section.name + "] collides with a key");
  schema.sections.push_back(std::move(section));
}

void add_field(schema_decl& schema, field_decl field) {
  const auto name = field.dotted_key();
  if (!is_name(field.key))
    declaration_bug("key '" + name + "' must be lower-case [a-z][a-z0-9_]*");
  bool known_section =
      std::any_of(schema.sections.begin(), schema.sections.end(),
                  [&](const section_decl& s) { return s.name == field.section; });
  if (!known_section) declaration_bug("key '" + name + "' has no section");
  for (const auto& s : schema.sections)
    if (s.name == name) declaration_bug("key '" + name + "' collides with a section");
  for (const auto& f : schema.fields) {
    if (f.dotted_key() == name) declaration_bug("key '" + name + "' declared twice");
    if (f.env_name() == field.env_name())
      declaration_bug("keys '" + f.dotted_key() + "' and '" + name +
                      "' share env variable " + f.env_name());
  }
  if (field.kind == field_kind::integer && field.ints.min > field.ints.max)
    declaration_bug("key '" + name + "' has an empty integer range");
  if (field.kind == field_kind::real && !(field.reals.min <= field.reals.max))
    declaration_bug("key '" + name + "' has an empty real range");
  if (field.kind == field_kind::duration && (field.durations.min < nanoseconds::zero() ||
                                             field.durations.min > field.durations.max))
    declaration_bug("key '" + name + "' has a bad duration range");
  if (field.kind == field_kind::one_of && field.choices.empty())
    declaration_bug("key '" + name + "' has no choices");
  if (!within_constraints(field, field.default_value))
    declaration_bug("default of '" + name + "' (" + toml_value_text(field.default_value) +
                    ") breaks its own " + describe(field));
  schema.fields.push_back(std::move(field));
}

std::string render_toml(const schema_decl& schema, const void* target) {
  std::string out;
  for (const auto& s : schema.sections) {
    if (!out.empty()) out += '\n';
    if (!s.doc.empty()) out += "# " + s.doc + "\n";
    out += "[" + s.name + "]\n";
    for (const auto& f : schema.fields) {
      if (f.section != s.name) continue;
      if (!f.doc.empty()) out += "# " + f.doc + "\n";
      out += "# " + describe_briefly(f) + "; default " +
             toml_value_text(f.default_value) + "; env " + f.env_name() + "\n";
      out += f.key + " = " + toml_value_text(f.fetch(target)) + "\n";
    }
  }
  return out;
}

} // namespace config_detail

// -- public: binder -----------------------------------------------------------

config_binder& config_binder::bind_erased(const schema_decl& schema, void* target) {
  TROUPE_ASSERT(target != nullptr, "config_binder::bind: null target");
  for (const auto& b : bindings_) {
    for (const auto& mine : schema.sections)
      for (const auto& theirs : b.schema->sections)
        if (mine.name == theirs.name)
          declaration_bug("section [" + mine.name + "] bound twice");
    for (const auto& mine : schema.fields)
      for (const auto& theirs : b.schema->fields)
        if (mine.env_name() == theirs.env_name())
          declaration_bug("keys '" + mine.dotted_key() + "' and '" + theirs.dotted_key() +
                          "' share env variable " + mine.env_name());
  }
  bindings_.push_back({&schema, target});
  return *this;
}

result<void> config_binder::load_string(std::string_view toml,
                                        std::string_view source_name,
                                        const env_map& env) {
  try {
    std::vector<std::pair<const schema_decl*, void*>> bindings;
    for (const auto& b : bindings_)
      bindings.emplace_back(b.schema, b.target);
    const auto index = make_index(bindings);
    loader load{index, source_name};
    load.load_toml(toml);
    load.load_env(env);
    // Whole-config checks only make sense once every field is valid.
    if (load.problems().empty()) load.run_checks();
    if (!load.problems().empty()) return load.problems().to_error();
    return ok();
  } catch (const std::exception& e) {
    return error{runtime::errc::internal,
                 std::string{source_name} + ": loading config failed: " + e.what()};
  }
}

result<void> config_binder::load_file(const std::filesystem::path& path,
                                      const env_map& env) {
  const std::string name = path.string();
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st))
    return error{runtime::errc::not_found, name + ": no such config file"};
  if (!std::filesystem::is_regular_file(st))
    return error{runtime::errc::invalid_argument, name + ": not a regular file"};
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return error{runtime::errc::io_error, name + ": " + ec.message()};
  if (size > max_file_bytes)
    return error{runtime::errc::invalid_argument,
                 name + ": " + std::to_string(size) +
                     " bytes is too large for a config file (limit " +
                     std::to_string(max_file_bytes) + ")"};
  std::ifstream in{path, std::ios::binary};
  if (!in) return error{runtime::errc::io_error, name + ": cannot open for reading"};
  std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  if (in.bad()) return error{runtime::errc::io_error, name + ": read failed"};
  return load_string(text, name, env);
}

// -- public: node configuration -----------------------------------------------

std::string_view to_string(scheduler_policy p) noexcept {
  switch (p) {
  case scheduler_policy::sharing:
    return "sharing";
  case scheduler_policy::stealing:
    return "stealing";
  case scheduler_policy::testing:
    return "testing";
  }
  return "?";
}

std::string_view to_string(log_level l) noexcept {
  switch (l) {
  case log_level::trace:
    return "trace";
  case log_level::debug:
    return "debug";
  case log_level::info:
    return "info";
  case log_level::warn:
    return "warn";
  case log_level::error:
    return "error";
  case log_level::off:
    return "off";
  }
  return "?";
}

config_schema<node_config> node_config_schema() {
  using namespace std::chrono_literals;
  using sp = scheduler_policy;
  using ll = log_level;
  config_schema<node_config> s;
  s.section("node", &node_config::node, "Identity of this node.")
      .string("name", &node_section::name, "troupe-local",
              "Node name shown in logs, metrics and traces.")
      .string("tenant", &node_section::tenant, "default",
              "Tenant that owns this node, for quotas and cost attribution.");
  s.section("scheduler", &node_config::scheduler, "CAF actor scheduler.")
      .integer("threads", &scheduler_section::threads, 0, {0, 1024},
               "Worker threads; 0 = CAF's default (one per hardware thread).")
      .one_of("policy", &scheduler_section::policy, sp::stealing,
              {{"sharing", sp::sharing},
               {"stealing", sp::stealing},
               {"testing", sp::testing}},
              "Work sharing, work stealing, or the deterministic test "
              "coordinator.")
      .boolean("busy_poll", &scheduler_section::busy_poll, false,
               "Poll idle queues aggressively before sleeping: lower latency, "
               "more CPU.");
  s.section("log", &node_config::log, "Logging.")
      .one_of("level", &log_section::level, ll::info,
              {{"trace", ll::trace},
               {"debug", ll::debug},
               {"info", ll::info},
               {"warn", ll::warn},
               {"error", ll::error},
               {"off", ll::off}},
              "Minimum severity written; off disables logging.")
      .string("file", &log_section::file, "", "Log file path; empty = stderr.")
      .string("pattern", &log_section::pattern, "",
              "spdlog pattern; empty = the built-in pattern.");
  s.section("metrics", &node_config::metrics, "Prometheus metrics endpoint.")
      .boolean("enabled", &metrics_section::enabled, true, "Serve metrics over HTTP.")
      .string("bind", &metrics_section::bind, "127.0.0.1",
              "Address the metrics endpoint listens on.")
      .port("port", &metrics_section::port, 0, "TCP port; 0 = pick a free one.")
      .integer("latency_sample_every", &metrics_section::latency_sample_every, 16,
               {1, 1'000'000},
               "Time one message in every N per actor into the handler latency histogram "
               "and update the mailbox depth gauge (message counts are always exact).");
  s.section("trace", &node_config::trace, "Message tracing.")
      .real("sampling_ratio", &trace_section::sampling_ratio, 0.0, {0.0, 1.0},
            "Fraction of messages traced; 0 = off.")
      .string("export_path", &trace_section::export_path, "",
              "File traces are exported to; empty = no export.")
      .integer("queue_capacity", &trace_section::queue_capacity, 65536, {1, 10'000'000},
               "Spans buffered before new ones are dropped.");
  s.section("supervision", &node_config::supervision,
            "Restart budget and backoff of supervised actors.")
      .integer("max_restarts", &supervision_section::max_restarts, 3, {0, 1'000'000},
               "Restarts allowed within max_period before the supervisor "
               "gives up.")
      .duration("max_period", &supervision_section::max_period, 5s,
                "Window in which max_restarts is counted.")
      .duration("backoff_initial", &supervision_section::backoff_initial, 10ms,
                "Delay before the first restart.")
      .duration("backoff_max", &supervision_section::backoff_max, 5s,
                "Upper bound of the restart delay.")
      .real("backoff_multiplier", &supervision_section::backoff_multiplier, 2.0,
            {1.0, 100.0}, "Factor the delay grows by after each restart.")
      .real("backoff_jitter", &supervision_section::backoff_jitter, 0.2, {0.0, 1.0},
            "Random spread of each delay, as a fraction of it.")
      .integer("seed", &supervision_section::seed, 0,
               {0, std::numeric_limits<std::int64_t>::max()},
               "Seed of the jitter generator, for reproducible runs.");
  s.section("store", &node_config::store, "Durable store.")
      .string("path", &store_section::path, "",
              "Directory of the store; empty = no store.")
      .boolean("sync_writes", &store_section::sync_writes, true,
               "fsync each write before acknowledging it.");
  s.section("shutdown", &node_config::shutdown, "Shutdown.")
      .duration("timeout", &shutdown_section::timeout, 5s,
                "Time actors get to finish before the node stops anyway.");
  s.check([](const node_config& c) -> std::optional<std::string> {
    const auto& sv = c.supervision;
    if (sv.backoff_initial <= sv.backoff_max) return std::nullopt;
    return "supervision.backoff_initial (" + duration_text(sv.backoff_initial) +
           ") exceeds supervision.backoff_max (" + duration_text(sv.backoff_max) + ")";
  });
  return s;
}

node_config default_config() {
  return node_config_schema().defaults();
}

result<node_config> load_config_file(const std::filesystem::path& path,
                                     const env_map& env) {
  return node_config_schema().load_file(path, env);
}

result<node_config> load_config_string(std::string_view toml,
                                       std::string_view source_name, const env_map& env) {
  return node_config_schema().load_string(toml, source_name, env);
}

std::string to_toml(const node_config& config) {
  return node_config_schema().to_toml(config);
}

} // namespace troupe
