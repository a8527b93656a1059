#pragma once
/// What the simulator reports, and how: time series and summary tables as
/// plain data, rendered as an aligned text table for people, JSON for
/// programs, CSV for spreadsheets and SVG line charts (written by us, valid
/// XML) for people who would rather look than read. Every renderer is
/// deterministic: the same data gives the same bytes (fixed number
/// formatting, no locale, no wall time), which the simulator's
/// byte-identical reports rely on.

#include "troupe/runtime/result.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::sim {

/// One line of a chart: y over x (same length, a bug otherwise; x
/// ascending). A point whose x or y is NaN or infinite is not drawn and
/// breaks the line there.
struct series {
  std::string name; ///< legend entry, e.g. "FGD"
  std::vector<double> x;
  std::vector<double> y;
};

/// One chart: lines that share axes.
struct chart {
  std::string id;      ///< file-name friendly, e.g. "gpu_allocation"
  std::string title;   ///< e.g. "GPU allocation vs arrived demand"
  std::string x_label; ///< e.g. "arrived GPU demand (% of capacity)"
  std::string y_label; ///< e.g. "GPUs allocated (%)"
  std::vector<series> lines;
  /// Optional fixed y range (finite, y_min < y_max, a bug otherwise; the
  /// axis is widened to the nearest ticks and points outside are clipped);
  /// both 0: from the data (0 included).
  double y_min = 0;
  double y_max = 0;
};

/// A summary table: one row per policy (or run), one column per figure.
/// Cells are already formatted text (see `format_number`).
struct summary_table {
  std::string title;
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
};

/// `v` with `digits` decimals (0..17, a bug otherwise), '.' as separator
/// whatever the locale; "nan", "inf" and "-inf" spelled out; a value that
/// rounds to zero never gets a minus sign ("0.00", not "-0.00").
std::string format_number(double v, int digits = 2);

/// An aligned text table: title line (when there is a title), header, a rule
/// of '-', rows; columns two spaces apart, no trailing spaces. A column is
/// numeric, and right aligned with its header, when each of its non-empty
/// cells is a number (a trailing '%' allowed, "nan"/"inf" count); other
/// columns are left aligned. Widths count UTF-8 code points; control
/// characters in cells are shown as spaces. Each row must have as many
/// cells as there are columns (a bug otherwise).
std::string render_table(const summary_table& t);

/// The table as a JSON array of objects keyed by column, keys in column
/// order (column names must be distinct, a bug otherwise): cells that are
/// finite numbers become JSON numbers (integers stay integers), every other
/// cell ("45%", "nan", text) stays a string. Pretty-printed with 2 spaces,
/// ending with a newline; invalid UTF-8 is replaced by U+FFFD.
std::string render_table_json(const summary_table& t);

/// The charts' series as one long CSV: `chart,series,x,y` with a header
/// row (chart = the chart's id), charts and series in the given order,
/// numbers with up to 6 decimals (trailing zeros dropped: "2", "0.125",
/// "nan").
std::string render_series_csv(const std::vector<chart>& charts);

/// An SVG line chart (self-contained, valid XML with the SVG namespace, text
/// escaped, invalid UTF-8 and control characters replaced): background,
/// plot frame, axes with 5-8 ticks at round values (1, 2 or 5 x 10^k) and
/// their labels, axis labels, title, a legend, one colour per series from a
/// fixed colour-blind-friendly palette (Okabe-Ito; dashed past the eighth
/// series). Long series are thinned with `thin_series(s, max_points)`; a
/// run of one point between gaps is drawn as a dot; a chart without points
/// says "no data". Sizes below 240 x 160 are raised to that, `max_points`
/// below 4 to 4. Coordinates have 2 fixed decimals, so the same chart gives
/// the same bytes.
std::string render_svg(const chart& c, uint32_t width = 720, uint32_t height = 420,
                       size_t max_points = 2000);

/// `s` thinned for drawing: unchanged when it has at most `max_points`
/// points (`max_points` below 4 counts as 4); otherwise the first and last
/// points and, in each of (max_points - 2) / 2 runs of consecutive points,
/// the one with the smallest and the one with the largest y, in their
/// original order, so spikes stay visible. A run holding NaN or infinite
/// points also keeps one of them (at most one between two kept points), so
/// gaps stay gaps; those do not count as points.
series thin_series(const series& s, size_t max_points);

/// Ticks of an axis: `count` values lo, lo + step, ..., hi where step is
/// 1, 2 or 5 x 10^exponent.
struct axis_ticks {
  double lo = 0;
  double hi = 1;
  double step = 1;
  int exponent = 0; ///< step = mantissa x 10^exponent
  std::vector<double> values;
  std::vector<std::string> labels; ///< values formatted for the axis
};

/// Round ticks covering [lo, hi] (finite, lo <= hi, a bug otherwise):
/// 5 to 8 ticks at multiples of a 1/2/5 x 10^k step, the axis widened to
/// the outer ticks. A range too narrow for its magnitude (lo == hi, or a
/// relative span below 1e-9) is first widened around its middle.
axis_ticks nice_ticks(double lo, double hi);

/// Writes `text` to `path` (replacing it) through `path` + ".tmp", synced
/// and renamed over `path`, so a crash never leaves half a file;
/// io_error naming the path and the system's reason.
[[nodiscard]] result<void> write_text_file(const std::string& path,
                                           std::string_view text);

/// A progress bar for long runs, drawn on `out` (stderr by default) only
/// when `enabled` (the CLI enables it when stderr is a terminal) as
/// "\r[#########...........]  45%  label": a 20-character bar, the whole
/// percent done, the label. It is drawn on construction and redrawn only
/// when the whole percent grows, so at most 101 times however often
/// `update` is called; `finish` ends it with 100% and a newline. Never
/// writes to the report outputs, so reports stay byte-identical.
class progress_bar {
public:
  progress_bar(std::string label, uint64_t total, bool enabled, std::FILE* out = stderr);
  ~progress_bar();
  progress_bar(const progress_bar&) = delete;
  progress_bar& operator=(const progress_bar&) = delete;
  /// Sets the amount done (clamped to the total; ignored after `finish`).
  void update(uint64_t done);
  /// Draws 100% and a newline (once; the destructor calls it).
  void finish();

private:
  void draw();
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  uint64_t drawn_step_ = UINT64_MAX; ///< percent last drawn; UINT64_MAX: none
  bool enabled_;
  bool finished_ = false;
  std::FILE* out_;
};

} // namespace troupe::sim
