#pragma once
/// A small CSV reader for trace loaders (private to sim/): RFC 4180 quoting
/// ("a,b" and "" inside quotes), CRLF or LF line ends, a leading UTF-8 byte
/// order mark ignored, a header row whose
/// columns are looked up by name, and typed field access whose errors name
/// the source, line and column: `philly.csv:17:3 (num_gpus): expected an
/// unsigned integer, got "x"`.

#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::sim::csv {

/// One data row: its fields and where it was.
struct row {
  std::vector<std::string> fields;
  uint64_t line = 0; ///< 1-based line of the row's first character
};

/// A parsed table: the header's names and the data rows (blank lines are
/// skipped).
class table {
public:
  /// Parses `text`. invalid_argument for an unterminated quote, a quote
  /// inside an unquoted field, or a missing header.
  [[nodiscard]] static result<table> parse(std::string_view text,
                                           std::string_view source);
  /// Parses `text` one row at a time without keeping the rows (for large
  /// files): `on_header` gets a table holding the header (and no rows)
  /// once it is read, `on_row` that table and each data row in turn; the
  /// first error either returns stops the scan and is returned. Errors as
  /// `parse`.
  [[nodiscard]] static result<void>
  scan(std::string_view text, std::string_view source,
       const std::function<result<void>(const table&)>& on_header,
       const std::function<result<void>(const table&, const row&)>& on_row);

  const std::vector<std::string>& header() const noexcept { return header_; }
  const std::vector<row>& rows() const noexcept { return rows_; }
  const std::string& source() const noexcept { return source_; }

  /// The index of column `name`, or invalid_argument naming the missing
  /// column and the header found.
  [[nodiscard]] result<size_t> column(std::string_view name) const;
  /// The index of column `name` if present.
  std::optional<size_t> find_column(std::string_view name) const;

  /// Field access with errors that say where: the field at `col` of `r`,
  /// or invalid_argument when the row is too short.
  [[nodiscard]] result<std::string_view> text(const row& r, size_t col) const;
  [[nodiscard]] result<uint64_t> u64(const row& r, size_t col) const;
  [[nodiscard]] result<int64_t> i64(const row& r, size_t col) const;
  /// A finite decimal number (e.g. "66.0").
  [[nodiscard]] result<double> number(const row& r, size_t col) const;

  /// "source:line:col (name): what" as an invalid_argument error (without
  /// "(name)" for a column past the header).
  error fail(const row& r, size_t col, std::string_view what) const;

private:
  [[nodiscard]] static result<void>
  scan_rows(std::string_view text, table& t,
            const std::function<result<void>()>& on_header,
            const std::function<result<void>(row&)>& on_row);

  std::string source_;
  std::vector<std::string> header_;
  std::vector<row> rows_;
};

/// Reads a whole file; io_error naming the path when it cannot.
[[nodiscard]] result<std::string> read_file(const std::string& path);

/// Quotes `s` for a CSV field when it needs it.
std::string quote(std::string_view s);

} // namespace troupe::sim::csv
