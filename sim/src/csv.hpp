#pragma once
/// A small CSV reader for trace loaders (private to sim/): RFC 4180 quoting
/// ("a,b" and "" inside quotes), CRLF or LF line ends, a header row whose
/// columns are looked up by name, and typed field access whose errors name
/// the source, line and column: `philly.csv:17:3 (num_gpus): expected an
/// unsigned integer, got "x"`.

#include "troupe/runtime/result.hpp"

#include <cstdint>
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

  /// "source:line:col (name): what" as an invalid_argument error.
  error fail(const row& r, size_t col, std::string_view what) const;

private:
  std::string source_;
  std::vector<std::string> header_;
  std::vector<row> rows_;
};

/// Reads a whole file; io_error naming the path when it cannot.
[[nodiscard]] result<std::string> read_file(const std::string& path);

/// Quotes `s` for a CSV field when it needs it.
std::string quote(std::string_view s);

} // namespace troupe::sim::csv
