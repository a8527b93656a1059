#pragma once
/// What the simulator reports, and how: time series and summary tables as
/// plain data, rendered as an aligned text table for people, JSON for
/// programs, CSV for spreadsheets and SVG line charts (written by us, valid
/// XML) for people who would rather look than read. Every renderer is
/// deterministic: the same data gives the same bytes (fixed number
/// formatting, no locale, no wall time), which the simulator's
/// byte-identical reports rely on.

#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::sim {

/// One line of a chart: y over x (same length; x ascending).
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
  /// Optional fixed y range; both 0: from the data (0 included).
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

/// `v` with `digits` decimals, '.' as separator whatever the locale;
/// "nan"/"inf" spelled out.
std::string format_number(double v, int digits = 2);

/// An aligned text table: title line, header, rule, rows; text columns left
/// aligned and numeric columns right aligned. Each row must have as many
/// cells as there are columns (a bug otherwise).
std::string render_table(const summary_table& t);

/// The table as a JSON array of objects keyed by column (cells that parse
/// as numbers become numbers), pretty-printed with 2 spaces.
std::string render_table_json(const summary_table& t);

/// The charts' series as one long CSV: `chart,series,x,y` with a header
/// row, charts and series in the given order, numbers with up to 6
/// significant decimals.
std::string render_series_csv(const std::vector<chart>& charts);

/// An SVG line chart (self-contained, valid XML, text escaped): axes with
/// ticks at round values, labels, a legend, one colour per series from a
/// fixed palette; long series are thinned to at most `max_points` points
/// per line without dropping the first, last, minimum or maximum.
std::string render_svg(const chart& c, uint32_t width = 720, uint32_t height = 420,
                       size_t max_points = 2000);

/// Writes `text` to `path` (replacing it); io_error naming the path.
[[nodiscard]] result<void> write_text_file(const std::string& path,
                                           std::string_view text);

/// A progress bar for long runs, drawn on `out` (stderr by default) only
/// when `enabled` (the CLI enables it when stderr is a terminal): redraws
/// at most every 1/100 of the total, ends with a newline from `finish`.
/// Never writes to the report outputs, so reports stay byte-identical.
class progress_bar {
public:
  progress_bar(std::string label, uint64_t total, bool enabled, std::FILE* out = stderr);
  ~progress_bar();
  progress_bar(const progress_bar&) = delete;
  progress_bar& operator=(const progress_bar&) = delete;
  /// Sets the amount done (clamped to the total).
  void update(uint64_t done);
  /// Draws 100% and a newline (once; the destructor calls it).
  void finish();

private:
  void draw();
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  uint64_t drawn_step_ = UINT64_MAX;
  bool enabled_;
  bool finished_ = false;
  std::FILE* out_;
};

} // namespace troupe::sim
