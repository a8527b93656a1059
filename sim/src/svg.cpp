// SVG line charts for the simulator's reports, written by hand: a few
// dozen elements, fixed number formatting, no library.

#include "troupe/sim/report.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>

namespace troupe::sim {

namespace {

/// 10^k, exact where the double can hold it, the same bits everywhere.
double power_of_ten(int k) {
  double p = 1;
  for (int i = 0; i < std::abs(k); ++i)
    p *= 10;
  return p;
}

/// m x 10^k for an integer m, rounded once.
double scaled(int64_t m, int k) {
  return k >= 0 ? static_cast<double>(m) * power_of_ten(k)
                : static_cast<double>(m) / power_of_ten(-k);
}

/// A tick label: fixed decimals for everyday magnitudes, the shortest
/// round-trip form ("2e+07", "5e-08") beyond them.
std::string tick_label(double v, int exponent) {
  if (v == 0) return "0";
  if (exponent >= 7 || exponent <= -7) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    return std::string(buf, end);
  }
  return format_number(v, std::max(0, -exponent));
}

bool finite_point(const series& s, size_t i) {
  return std::isfinite(s.x[i]) && std::isfinite(s.y[i]);
}

/// Appends `s` to `out` as XML character data or attribute text: & < > " '
/// escaped; invalid UTF-8, control characters, U+FFFE and U+FFFF (none of
/// which XML allows) replaced by U+FFFD.
void append_xml_text(std::string& out, std::string_view s) {
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\t':
      case '\n':
      case '\r':
        out += ' ';
        break;
      default:
        if (c < 0x20)
          out += replacement;
        else
          out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    }
    bool valid = len > 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) valid = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (valid) {
      bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
      bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
      valid = !overlong && !surrogate && cp <= 0x10FFFF && cp != 0xFFFE && cp != 0xFFFF;
    }
    if (!valid) {
      out += replacement;
      ++i;
      continue;
    }
    out.append(s.substr(i, len));
    i += len;
  }
}

std::string xml_text(std::string_view s) {
  std::string out;
  append_xml_text(out, s);
  return out;
}

/// Code points in `s` (a width estimate for layout).
size_t code_points(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

/// `s` cut to at most `max` code points, an ellipsis marking the cut.
std::string shorten(std::string_view s, size_t max) {
  if (code_points(s) <= max) return std::string(s);
  size_t seen = 0;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (seen == max - 1) break;
      ++seen;
    }
  }
  return std::string(s.substr(0, i)) + "\xE2\x80\xA6";
}

/// Coordinates in the SVG: 2 fixed decimals, held within +-1e5 so a point
/// far outside a fixed y range still prints short (it is clipped anyway).
std::string coord(double v) {
  return format_number(std::clamp(v, -1e5, 1e5), 2);
}

// Okabe & Ito's colour-blind-friendly palette, yellow last (weak on white).
constexpr std::array<std::string_view, 8> palette = {"#0072B2", "#D55E00", "#009E73",
                                                     "#CC79A7", "#E69F00", "#56B4E9",
                                                     "#000000", "#F0E442"};
constexpr std::array<std::string_view, 4> dashes = {"", "6 3", "2 3", "8 3 2 3"};

constexpr double char_width = 7;    // px per character at font-size 12, roughly
constexpr size_t legend_chars = 30; // longer names are shortened

} // namespace

series thin_series(const series& s, size_t max_points) {
  TROUPE_ASSERT(s.x.size() == s.y.size(), "series: x and y differ in length");
  max_points = std::max<size_t>(max_points, 4);
  const size_t n = s.x.size();
  if (n <= max_points) return s;
  series out;
  out.name = s.name;
  auto keep = [&](size_t i) {
    bool gap = !finite_point(s, i);
    if (gap && !out.x.empty() &&
        !(std::isfinite(out.x.back()) && std::isfinite(out.y.back())))
      return; // one gap marker between two kept points is enough
    out.x.push_back(s.x[i]);
    out.y.push_back(s.y[i]);
  };
  keep(0);
  const size_t buckets = (max_points - 2) / 2;
  const size_t interior = n - 2;
  for (size_t b = 0; b < buckets; ++b) {
    size_t begin = 1 + b * interior / buckets;
    size_t end = 1 + (b + 1) * interior / buckets;
    size_t lo = SIZE_MAX, hi = SIZE_MAX, gap = SIZE_MAX;
    for (size_t i = begin; i < end; ++i) {
      if (!finite_point(s, i)) {
        if (gap == SIZE_MAX) gap = i;
        continue;
      }
      if (lo == SIZE_MAX || s.y[i] < s.y[lo]) lo = i;
      if (hi == SIZE_MAX || s.y[i] > s.y[hi]) hi = i;
    }
    std::array<size_t, 3> kept = {lo, hi, gap};
    std::sort(kept.begin(), kept.end());
    for (size_t k = 0; k < kept.size(); ++k)
      if (kept[k] != SIZE_MAX && (k == 0 || kept[k] != kept[k - 1])) keep(kept[k]);
  }
  keep(n - 1);
  return out;
}

axis_ticks nice_ticks(double lo, double hi) {
  TROUPE_ASSERT(std::isfinite(lo) && std::isfinite(hi) && lo <= hi,
                "nice_ticks: the range must be finite with lo <= hi");
  lo = std::clamp(lo, -1e300, 1e300);
  hi = std::clamp(hi, -1e300, 1e300);
  double mid = lo / 2 + hi / 2;
  double span = hi - lo;
  if (!(span > std::abs(mid) * 1e-9) || span < 1e-200) {
    double half = std::abs(mid) >= 1e-200 ? std::abs(mid) * 0.1 : 1.0;
    lo = mid - half;
    hi = mid + half;
    span = hi - lo;
  }
  // The smallest 1/2/5 x 10^k step giving at most 7 intervals; starting an
  // order of magnitude below span/7 makes the first candidates too fine.
  static constexpr std::array<int, 3> mantissas = {1, 2, 5};
  int k = static_cast<int>(std::floor(std::log10(span / 7))) - 1;
  axis_ticks t;
  int64_t first = 0, last = 0;
  int mantissa = 1;
  for (bool found = false; !found; ++k) {
    for (int m : mantissas) {
      double step = scaled(m, k);
      auto a = static_cast<int64_t>(std::floor(lo / step));
      auto b = static_cast<int64_t>(std::ceil(hi / step));
      if (b - a <= 7) {
        first = a;
        last = b;
        mantissa = m;
        t.exponent = k;
        t.step = step;
        found = true;
        break;
      }
    }
  }
  // A 2 -> 5 step can leave 3 intervals: widen to 4, away from zero.
  for (bool up = true; last - first < 4; up = !up) {
    if (first >= 0 || (up && last > 0))
      ++last;
    else
      --first;
  }
  for (int64_t i = first; i <= last; ++i) {
    double v = scaled(i * mantissa, t.exponent);
    t.values.push_back(v);
    t.labels.push_back(tick_label(v, t.exponent));
  }
  t.lo = t.values.front();
  t.hi = t.values.back();
  return t;
}

std::string render_svg(const chart& c, uint32_t width, uint32_t height,
                       size_t max_points) {
  const double w = std::max<uint32_t>(width, 240);
  const double h = std::max<uint32_t>(height, 160);
  const bool fixed_y = c.y_min != 0 || c.y_max != 0;
  if (fixed_y)
    TROUPE_ASSERT(std::isfinite(c.y_min) && std::isfinite(c.y_max) && c.y_min < c.y_max,
                  "chart: a fixed y range must be finite with y_min < y_max");

  // Data range over every drawable point.
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = 0, y_hi = 0;
  bool any = false;
  for (const auto& s : c.lines) {
    TROUPE_ASSERT(s.x.size() == s.y.size(), "series: x and y differ in length");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!finite_point(s, i)) continue;
      any = true;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
    }
  }
  axis_ticks xt, yt;
  if (any) {
    xt = nice_ticks(x_lo, x_hi);
    if (fixed_y)
      yt = nice_ticks(c.y_min, c.y_max);
    else
      yt = nice_ticks(y_lo, y_hi == y_lo ? y_lo + 1 : y_hi);
  }

  // Layout.
  size_t y_label_chars = 0;
  for (const auto& l : yt.labels)
    y_label_chars = std::max(y_label_chars, l.size());
  size_t legend_name_chars = 0;
  for (const auto& s : c.lines)
    legend_name_chars =
        std::max(legend_name_chars, code_points(shorten(s.name, legend_chars)));
  const double top = 44;
  const double bottom = 50;
  const double left =
      std::max(50.0, 34 + char_width * static_cast<double>(y_label_chars));
  const double legend_w =
      c.lines.empty()
          ? 0
          : std::min(w / 4, 36 + char_width * static_cast<double>(legend_name_chars));
  const double right = 16 + legend_w;
  const double pw = std::max(40.0, w - left - right);
  const double ph = std::max(40.0, h - top - bottom);
  auto px = [&](double x) { return left + (x - xt.lo) / (xt.hi - xt.lo) * pw; };
  auto py = [&](double y) { return top + ph - (y - yt.lo) / (yt.hi - yt.lo) * ph; };

  std::string clip_id = "troupe-plot-";
  for (char ch : c.id)
    clip_id += std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' ? ch : '_';

  std::string out;
  out.reserve(16384);
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + coord(w) +
         "\" height=\"" + coord(h) + "\" viewBox=\"0 0 " + coord(w) + " " + coord(h) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  if (!c.title.empty()) out += "<title>" + xml_text(c.title) + "</title>\n";
  out += "<defs><clipPath id=\"" + clip_id + "\"><rect x=\"" + coord(left) + "\" y=\"" +
         coord(top) + "\" width=\"" + coord(pw) + "\" height=\"" + coord(ph) +
         "\"/></clipPath></defs>\n";
  out +=
      "<rect width=\"" + coord(w) + "\" height=\"" + coord(h) + "\" fill=\"#ffffff\"/>\n";
  if (!c.title.empty())
    out += "<text x=\"" + coord(w / 2) +
           "\" y=\"26\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">" +
           xml_text(c.title) + "</text>\n";

  if (any) {
    // Grid, tick marks and tick labels.
    std::string grid = "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
    std::string marks = "<g stroke=\"#333333\" stroke-width=\"1\">\n";
    std::string labels = "<g fill=\"#333333\">\n";
    for (size_t i = 0; i < xt.values.size(); ++i) {
      std::string x = coord(px(xt.values[i]));
      grid += "<line x1=\"" + x + "\" y1=\"" + coord(top) + "\" x2=\"" + x + "\" y2=\"" +
              coord(top + ph) + "\"/>\n";
      marks += "<line x1=\"" + x + "\" y1=\"" + coord(top + ph) + "\" x2=\"" + x +
               "\" y2=\"" + coord(top + ph + 5) + "\"/>\n";
      labels += "<text class=\"x-tick\" x=\"" + x + "\" y=\"" + coord(top + ph + 18) +
                "\" text-anchor=\"middle\">" + xt.labels[i] + "</text>\n";
    }
    for (size_t i = 0; i < yt.values.size(); ++i) {
      std::string y = coord(py(yt.values[i]));
      grid += "<line x1=\"" + coord(left) + "\" y1=\"" + y + "\" x2=\"" +
              coord(left + pw) + "\" y2=\"" + y + "\"/>\n";
      marks += "<line x1=\"" + coord(left - 5) + "\" y1=\"" + y + "\" x2=\"" +
               coord(left) + "\" y2=\"" + y + "\"/>\n";
      labels += "<text class=\"y-tick\" x=\"" + coord(left - 8) + "\" y=\"" +
                coord(py(yt.values[i]) + 4) + "\" text-anchor=\"end\">" + yt.labels[i] +
                "</text>\n";
    }
    out += grid + "</g>\n" + marks + "</g>\n" + labels + "</g>\n";

    // The lines, clipped to the plot.
    out += "<g clip-path=\"url(#" + clip_id +
           ")\" fill=\"none\" stroke-width=\"1.5\" stroke-linejoin=\"round\">\n";
    for (size_t si = 0; si < c.lines.size(); ++si) {
      std::string_view colour = palette[si % palette.size()];
      std::string_view dash = dashes[(si / palette.size()) % dashes.size()];
      series thin = thin_series(c.lines[si], max_points);
      std::vector<std::string> run;
      auto flush = [&] {
        if (run.size() == 1) {
          size_t comma = run[0].find(',');
          out += "<circle cx=\"" + run[0].substr(0, comma) + "\" cy=\"" +
                 run[0].substr(comma + 1) + "\" r=\"2.5\" fill=\"" + std::string(colour) +
                 "\" stroke=\"none\"/>\n";
        } else if (run.size() > 1) {
          out += "<polyline stroke=\"" + std::string(colour) + "\"";
          if (!dash.empty()) out += " stroke-dasharray=\"" + std::string(dash) + "\"";
          out += " points=\"";
          for (size_t i = 0; i < run.size(); ++i) {
            if (i > 0) out += ' ';
            out += run[i];
          }
          out += "\"/>\n";
        }
        run.clear();
      };
      for (size_t i = 0; i < thin.x.size(); ++i) {
        if (!finite_point(thin, i)) {
          flush();
          continue;
        }
        run.push_back(coord(px(thin.x[i])) + "," + coord(py(thin.y[i])));
      }
      flush();
    }
    out += "</g>\n";
  } else {
    out += "<text x=\"" + coord(left + pw / 2) + "\" y=\"" + coord(top + ph / 2) +
           "\" text-anchor=\"middle\" fill=\"#666666\">no data</text>\n";
  }

  // Frame and axis labels.
  out += "<rect x=\"" + coord(left) + "\" y=\"" + coord(top) + "\" width=\"" + coord(pw) +
         "\" height=\"" + coord(ph) + "\" fill=\"none\" stroke=\"#333333\"/>\n";
  if (!c.x_label.empty())
    out += "<text x=\"" + coord(left + pw / 2) + "\" y=\"" + coord(h - 10) +
           "\" text-anchor=\"middle\">" + xml_text(c.x_label) + "</text>\n";
  if (!c.y_label.empty()) {
    std::string cx = "16";
    std::string cy = coord(top + ph / 2);
    out += "<text x=\"" + cx + "\" y=\"" + cy + "\" transform=\"rotate(-90 " + cx + " " +
           cy + ")\" text-anchor=\"middle\">" + xml_text(c.y_label) + "</text>\n";
  }

  // Legend, right of the plot.
  if (!c.lines.empty()) {
    out += "<g font-size=\"12\">\n";
    const double lx = left + pw + 14;
    for (size_t si = 0; si < c.lines.size(); ++si) {
      std::string_view colour = palette[si % palette.size()];
      std::string_view dash = dashes[(si / palette.size()) % dashes.size()];
      double ly = top + 10 + 18 * static_cast<double>(si);
      out += "<line x1=\"" + coord(lx) + "\" y1=\"" + coord(ly) + "\" x2=\"" +
             coord(lx + 20) + "\" y2=\"" + coord(ly) + "\" stroke=\"" +
             std::string(colour) + "\" stroke-width=\"2\"";
      if (!dash.empty()) out += " stroke-dasharray=\"" + std::string(dash) + "\"";
      out += "/>\n<text x=\"" + coord(lx + 26) + "\" y=\"" + coord(ly + 4) + "\">" +
             xml_text(shorten(c.lines[si].name, legend_chars)) + "</text>\n";
    }
    out += "</g>\n";
  }
  out += "</svg>\n";
  return out;
}

} // namespace troupe::sim
