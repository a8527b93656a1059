#include "troupe/runtime/metrics.hpp"

#include "troupe/runtime/result.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>
#include <variant>

namespace troupe::metrics {
namespace {

bool is_name_start(char c, bool allow_colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (allow_colon && c == ':');
}

bool is_name_char(char c, bool allow_colon) {
  return is_name_start(c, allow_colon) || (c >= '0' && c <= '9');
}

/// [a-zA-Z_:][a-zA-Z0-9_:]* (metric names) or [a-zA-Z_][a-zA-Z0-9_]* (labels).
bool is_valid_name(std::string_view name, bool allow_colon) {
  if (name.empty() || !is_name_start(name.front(), allow_colon)) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return is_name_char(c, allow_colon); });
}

bool is_valid_label_name(std::string_view name) {
  return is_valid_name(name, false) && !name.starts_with("__");
}

/// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one
/// (truncated, overlong, a surrogate or above U+10FFFF), as Go's
/// utf8.ValidString (which Prometheus applies to label values) decides.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF; // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0; // no overlongs
    if (b0 == 0xED) hi = 0x9F; // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90; // no overlongs
    if (b0 == 0xF4) hi = 0x8F; // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return len;
}

/// s with every byte that does not start a valid UTF-8 sequence replaced by
/// U+FFFD, so that one bad label value cannot make a whole scrape unparsable.
std::string to_valid_utf8(std::string s) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) break;
    i += n;
  }
  if (i == s.size()) return s; // the common case: nothing to replace
  std::string out(s, 0, i);
  while (i < s.size()) {
    std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  return out;
}

/// Writes v as Prometheus' Go clients do (strconv.FormatFloat(v, 'g', -1,
/// 64)): the shortest digits that round-trip, in scientific notation only
/// when the decimal exponent is < -4 or >= 6 (0.0001, 2.5e-05, 123456,
/// 1.234567e+06), and NaN, +Inf, -Inf. Matching them matters for `le`: it is
/// a string label, so 1e-04 and 0.0001 would be different series.
void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  TROUPE_ASSERT(sci.ec == std::errc{}, "to_chars(double) failed");
  std::string_view text(buf, static_cast<std::size_t>(sci.ptr - buf));
  std::size_t e = text.find('e');
  TROUPE_ASSERT(e != std::string_view::npos, "to_chars(scientific) without exponent");
  const char* exp_begin = buf + e + 1;
  if (*exp_begin == '+') ++exp_begin;
  int exponent = 0;
  auto parsed = std::from_chars(exp_begin, sci.ptr, exponent);
  TROUPE_ASSERT(parsed.ec == std::errc{}, "bad exponent from to_chars");
  if (exponent < -4 || exponent >= 6) {
    out += text;
    return;
  }
  auto fixed = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  TROUPE_ASSERT(fixed.ec == std::errc{}, "to_chars(double) failed");
  out.append(buf, fixed.ptr);
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  TROUPE_ASSERT(ec == std::errc{}, "to_chars(uint64_t) failed");
  out.append(buf, end);
}

/// Label values escape backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
    case '\\':
      out += "\\\\";
      break;
    case '"':
      out += "\\\"";
      break;
    case '\n':
      out += "\\n";
      break;
    default:
      out += c;
    }
  }
}

/// HELP text escapes backslash and newline.
void append_help(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    default:
      out += c;
    }
  }
}

/// `{a="x",b="y"}`, with `le="<le>"` last when le is given; nothing when
/// there are no labels at all.
void append_labels(std::string& out, const labels& ls, const std::string* le = nullptr) {
  if (ls.empty() && le == nullptr) return;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : ls) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    append_label_value(out, value);
    out += '"';
  }
  if (le != nullptr) {
    if (!first) out += ',';
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
}

void append_sample(std::string& out, std::string_view name, std::string_view suffix,
                   const labels& ls, const std::string* le = nullptr) {
  out += name;
  out += suffix;
  append_labels(out, ls, le);
  out += ' ';
}

/// Drops a trailing +Inf (that bucket is implicit) and aborts unless the
/// remaining bounds are strictly ascending and free of NaN.
void normalize_bounds(std::vector<double>& bounds) {
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) {
    bounds.pop_back();
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    TROUPE_ASSERT(!std::isnan(bounds[i]), "histogram bound is NaN");
    TROUPE_ASSERT(i == 0 || bounds[i - 1] < bounds[i],
                  "histogram bounds must be strictly ascending");
  }
}

} // namespace

// ---------------------------------------------------------------------------
// histogram

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)) {
  normalize_bounds(bounds_);
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
}

histogram::~histogram() = default;

void histogram::observe(double v) noexcept {
  std::size_t i = bounds_.size(); // +Inf, also for NaN
  if (!std::isnan(v)) {
    i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                 bounds_.begin());
  }
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> histogram::cumulative_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

uint64_t histogram::count() const noexcept {
  uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
  }
  return total;
}

std::vector<double> histogram::exponential_buckets(double start, double factor,
                                                   int count) {
  TROUPE_ASSERT(start > 0 && std::isfinite(start),
                "exponential_buckets: start must be > 0");
  TROUPE_ASSERT(factor > 1 && std::isfinite(factor),
                "exponential_buckets: factor must be > 1");
  TROUPE_ASSERT(count >= 1, "exponential_buckets: count must be >= 1");
  std::vector<double> out;
  out.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    double exact = start * std::pow(factor, i);
    char buf[64];
    auto [end, ec] =
        std::to_chars(buf, buf + sizeof(buf), exact, std::chars_format::general, 15);
    TROUPE_ASSERT(ec == std::errc{}, "to_chars(double) failed");
    double rounded = exact;
    auto parsed = std::from_chars(buf, end, rounded);
    TROUPE_ASSERT(parsed.ec == std::errc{}, "from_chars(double) failed");
    TROUPE_ASSERT(std::isfinite(rounded), "exponential_buckets: bound overflows double");
    out.push_back(rounded);
  }
  return out;
}

std::vector<double> histogram::default_latency_buckets() {
  return {1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
          5e-3, 1e-2,   2.5e-2, 5e-2, 0.1,    0.25, 0.5,  1.0,    2.5,  5.0,  10.0};
}

// ---------------------------------------------------------------------------
// registry

using callback_fn = std::function<double()>;

struct registry::series {
  labels given; // in the caller's order, values made valid UTF-8
  std::variant<std::monostate, counter, gauge, histogram, callback_fn> metric;
};

struct registry::family {
  std::string name;
  std::string help;
  metric_type type;
  std::vector<double> bounds;                 // histograms only
  std::vector<std::unique_ptr<series>> order; // registration order
  std::map<labels, series*> by_labels;        // key: labels sorted by name
};

registry::registry() = default;
registry::~registry() = default;

registry::series& registry::find_or_add(metric_type type, std::string_view name,
                                        std::string_view help, labels l,
                                        std::vector<double>* bounds,
                                        callback_fn* callback) {
  TROUPE_ASSERT(is_valid_name(name, true), ("invalid metric name '" + std::string(name) +
                                            "': expected [a-zA-Z_:][a-zA-Z0-9_:]*")
                                               .c_str());
  TROUPE_ASSERT(type != metric_type::counter || name.ends_with("_total"),
                ("counter '" + std::string(name) + "' must end with _total").c_str());
  for (auto& [label_name, value] : l) {
    TROUPE_ASSERT(is_valid_label_name(label_name),
                  ("metric '" + std::string(name) + "': invalid label name '" +
                   label_name + "': expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __")
                      .c_str());
    TROUPE_ASSERT(
        type != metric_type::histogram || label_name != "le",
        ("histogram '" + std::string(name) + "': label name 'le' is reserved").c_str());
    value = to_valid_utf8(std::move(value));
  }
  if (bounds != nullptr) normalize_bounds(*bounds);
  labels key = l;
  std::sort(key.begin(), key.end());
  for (std::size_t i = 1; i < key.size(); ++i) {
    TROUPE_ASSERT(
        key[i - 1].first != key[i].first,
        ("metric '" + std::string(name) + "': label '" + key[i].first + "' given twice")
            .c_str());
  }

  std::lock_guard<std::mutex> guard{mu_};
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto fam = std::make_unique<family>();
    fam->name = std::string(name);
    fam->help = std::string(help);
    fam->type = type;
    if (bounds != nullptr) fam->bounds = *bounds;
    it = families_.emplace(fam->name, std::move(fam)).first;
  }
  family& fam = *it->second;
  TROUPE_ASSERT(fam.type == type, ("metric '" + std::string(name) +
                                   "' is already registered with another type")
                                      .c_str());
  TROUPE_ASSERT(fam.help == help, ("metric '" + std::string(name) +
                                   "' is already registered with other help text")
                                      .c_str());

  TROUPE_ASSERT(bounds == nullptr || *bounds == fam.bounds,
                ("histogram '" + std::string(name) +
                 "' is already registered with other bucket bounds")
                    .c_str());

  auto found = fam.by_labels.find(key);
  if (found != fam.by_labels.end()) {
    series& s = *found->second;
    TROUPE_ASSERT(callback == nullptr && !std::holds_alternative<callback_fn>(s.metric),
                  ("gauge '" + std::string(name) +
                   "' with these labels is already registered as a callback gauge")
                      .c_str());
    return s;
  }

  auto s = std::make_unique<series>();
  s->given = std::move(l);
  switch (type) {
  case metric_type::counter:
    s->metric.emplace<counter>();
    break;
  case metric_type::gauge:
    if (callback != nullptr) {
      s->metric.emplace<callback_fn>(std::move(*callback));
    } else {
      s->metric.emplace<gauge>();
    }
    break;
  case metric_type::histogram:
    s->metric.emplace<histogram>(std::move(*bounds));
    break;
  }
  series* raw = s.get();
  fam.order.push_back(std::move(s));
  fam.by_labels.emplace(std::move(key), raw);
  return *raw;
}

counter& registry::get_counter(std::string_view name, std::string_view help, labels l) {
  return std::get<counter>(
      find_or_add(metric_type::counter, name, help, std::move(l), nullptr, nullptr)
          .metric);
}

gauge& registry::get_gauge(std::string_view name, std::string_view help, labels l) {
  return std::get<gauge>(
      find_or_add(metric_type::gauge, name, help, std::move(l), nullptr, nullptr).metric);
}

histogram& registry::get_histogram(std::string_view name, std::string_view help,
                                   std::vector<double> upper_bounds, labels l) {
  return std::get<histogram>(find_or_add(metric_type::histogram, name, help, std::move(l),
                                         &upper_bounds, nullptr)
                                 .metric);
}

void registry::register_callback_gauge(std::string_view name, std::string_view help,
                                       labels l, std::function<double()> fn) {
  TROUPE_ASSERT(static_cast<bool>(fn), "register_callback_gauge: empty function");
  find_or_add(metric_type::gauge, name, help, std::move(l), nullptr, &fn);
}

std::string registry::expose() const {
  // Families and series are never removed and their names, help, bounds and
  // callbacks never change, so copying pointers under the lock is enough;
  // values are read (and callbacks run) after it is released.
  std::vector<std::pair<const family*, std::vector<const series*>>> snapshot;
  {
    std::lock_guard<std::mutex> guard{mu_};
    snapshot.reserve(families_.size());
    for (const auto& [name, fam] : families_) {
      std::vector<const series*> ss;
      ss.reserve(fam->order.size());
      for (const auto& s : fam->order)
        ss.push_back(s.get());
      snapshot.emplace_back(fam.get(), std::move(ss));
    }
  }

  std::string out;
  out.reserve(snapshot.size() * 128);
  std::vector<std::string> le_labels;
  for (const auto& [fam, ss] : snapshot) {
    out += "# HELP ";
    out += fam->name;
    out += ' ';
    append_help(out, fam->help);
    out += "\n# TYPE ";
    out += fam->name;
    switch (fam->type) {
    case metric_type::counter:
      out += " counter\n";
      break;
    case metric_type::gauge:
      out += " gauge\n";
      break;
    case metric_type::histogram:
      out += " histogram\n";
      break;
    }
    if (fam->type == metric_type::histogram) {
      le_labels.clear();
      for (double b : fam->bounds) {
        le_labels.emplace_back();
        append_double(le_labels.back(), b);
      }
      le_labels.emplace_back("+Inf");
    }
    for (const series* s : ss) {
      if (const auto* c = std::get_if<counter>(&s->metric)) {
        append_sample(out, fam->name, "", s->given);
        append_uint(out, c->value());
      } else if (const auto* g = std::get_if<gauge>(&s->metric)) {
        append_sample(out, fam->name, "", s->given);
        append_double(out, g->value());
      } else if (const auto* fn = std::get_if<callback_fn>(&s->metric)) {
        append_sample(out, fam->name, "", s->given);
        append_double(out, (*fn)());
      } else if (const auto* h = std::get_if<histogram>(&s->metric)) {
        // Relaxed reads: under concurrent observe() the sum may be off from
        // the counts by the observations in flight (the counts agree).
        double sum = h->sum();
        std::vector<uint64_t> cumulative = h->cumulative_counts();
        for (std::size_t i = 0; i < cumulative.size(); ++i) {
          append_sample(out, fam->name, "_bucket", s->given, &le_labels[i]);
          append_uint(out, cumulative[i]);
          out += '\n';
        }
        append_sample(out, fam->name, "_sum", s->given);
        append_double(out, sum);
        out += '\n';
        append_sample(out, fam->name, "_count", s->given);
        append_uint(out, cumulative.back());
      }
      out += '\n';
    }
  }
  return out;
}

} // namespace troupe::metrics
