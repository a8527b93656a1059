/// troupe's own trace format (docs/TRACE-FORMAT.md): CSV with a header row,
/// or JSON lines; the same fields, checks and defaults in both.
#include "csv.hpp"
#include "json_util.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/sim/trace.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <limits>
#include <optional>

namespace troupe::sim {

using nlohmann::json;
using runtime::errc;

namespace {

constexpr uint64_t max_trace_ms = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(max_trace_time).count());
/// A job asks for at most this many GPUs in all (its bundles are made one
/// by one, so a typo must not make billions of them).
constexpr uint64_t max_job_gpus = 100'000;
constexpr uint64_t u64_max = std::numeric_limits<uint64_t>::max();

// --- the fields ---------------------------------------------------------------

enum class fid : uint8_t {
  kind,
  name,
  submit_ms,
  run_time_ms,
  gpus,
  gpu_milli,
  gpus_per_bundle,
  gpu_models,
  cpu_milli,
  memory_mib,
  tenant,
  priority,
  preemptible,
  spot_tolerant,
  qos,
  gpu_model,
  gpu_memory_mib,
  none, ///< a problem of the whole row, not of one field
};
constexpr size_t field_count = static_cast<size_t>(fid::none);

enum class ftype : uint8_t { text, u64, i32, boolean, models };

struct field_def {
  fid id;
  std::string_view name;
  ftype type;
  bool job;     ///< job rows may have it
  bool node;    ///< node rows may have it
  uint64_t max; ///< for u64 fields
};

/// In the order the writers use.
constexpr std::array<field_def, field_count> fields = {{
    {fid::kind, "kind", ftype::text, true, true, 0},
    {fid::name, "name", ftype::text, true, true, 0},
    {fid::submit_ms, "submit_ms", ftype::u64, true, false, max_trace_ms},
    {fid::run_time_ms, "run_time_ms", ftype::u64, true, false, max_trace_ms},
    {fid::gpus, "gpus", ftype::u64, true, true, max_job_gpus},
    {fid::gpu_milli, "gpu_milli", ftype::u64, true, false, 999},
    {fid::gpus_per_bundle, "gpus_per_bundle", ftype::u64, true, false,
     placement::max_gpus_per_node},
    {fid::gpu_models, "gpu_models", ftype::models, true, false, 0},
    {fid::cpu_milli, "cpu_milli", ftype::u64, true, true, u64_max},
    {fid::memory_mib, "memory_mib", ftype::u64, true, true, u64_max},
    {fid::tenant, "tenant", ftype::text, true, false, 0},
    {fid::priority, "priority", ftype::i32, true, false, 0},
    {fid::preemptible, "preemptible", ftype::boolean, true, false, 0},
    {fid::spot_tolerant, "spot_tolerant", ftype::boolean, true, false, 0},
    {fid::qos, "qos", ftype::text, true, false, 0},
    {fid::gpu_model, "gpu_model", ftype::text, false, true, 0},
    {fid::gpu_memory_mib, "gpu_memory_mib", ftype::u64, false, true, u64_max},
}};

constexpr bool fields_in_enum_order() {
  for (size_t i = 0; i < fields.size(); ++i)
    if (static_cast<size_t>(fields[i].id) != i) return false;
  return true;
}
static_assert(fields_in_enum_order(), "def() indexes fields by fid");

constexpr const field_def& def(fid f) {
  return fields[static_cast<size_t>(f)];
}

const field_def* find_field(std::string_view name) {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

bool extension_key(std::string_view name) {
  return name.starts_with("x_");
}

std::string known_names() {
  std::string out;
  for (const auto& f : fields) {
    if (!out.empty()) out += ',';
    out += f.name;
  }
  return out;
}

/// A field's value once read, whatever the format.
struct value {
  uint64_t u = 0;
  int64_t i = 0;
  bool b = false;
  std::string s;
  std::vector<std::string> list;
};

void set(trace_job& j, fid f, value&& v) {
  switch (f) {
  case fid::name:
    j.name = std::move(v.s);
    break;
  case fid::submit_ms:
    j.submit = std::chrono::milliseconds(v.u);
    break;
  case fid::run_time_ms:
    j.run_time = std::chrono::milliseconds(v.u);
    break;
  case fid::gpus:
    j.gpus = static_cast<uint32_t>(v.u);
    break;
  case fid::gpu_milli:
    j.gpu_milli = static_cast<uint32_t>(v.u);
    break;
  case fid::gpus_per_bundle:
    j.gpus_per_bundle = static_cast<uint32_t>(v.u);
    break;
  case fid::gpu_models:
    j.gpu_models = std::move(v.list);
    break;
  case fid::cpu_milli:
    j.cpu_milli = v.u;
    break;
  case fid::memory_mib:
    j.memory_mib = v.u;
    break;
  case fid::tenant:
    j.tenant = std::move(v.s);
    break;
  case fid::priority:
    j.priority = static_cast<int32_t>(v.i);
    break;
  case fid::preemptible:
    j.preemptible = v.b;
    break;
  case fid::spot_tolerant:
    j.spot_tolerant = v.b;
    break;
  case fid::qos:
    j.qos = std::move(v.s);
    break;
  default:
    break;
  }
}

void set(trace_node& n, fid f, value&& v) {
  switch (f) {
  case fid::name:
    n.name = std::move(v.s);
    break;
  case fid::gpus:
    n.gpus = static_cast<uint32_t>(v.u);
    break;
  case fid::cpu_milli:
    n.cpu_milli = v.u;
    break;
  case fid::memory_mib:
    n.memory_mib = v.u;
    break;
  case fid::gpu_model:
    n.gpu_model = std::move(v.s);
    break;
  case fid::gpu_memory_mib:
    n.gpu_memory_mib = v.u;
    break;
  default:
    break;
  }
}

// --- checks shared by the readers and save ------------------------------------

/// RFC 3629 UTF-8 (what nlohmann::json reads and writes).
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

struct problem {
  fid field = fid::none;
  std::string what;
};

std::optional<problem> check_text(fid f, std::string_view s, bool may_be_empty) {
  if (!may_be_empty && s.empty()) return problem{f, "must not be empty"};
  if (!valid_utf8(s)) return problem{f, "not valid UTF-8"};
  return std::nullopt;
}

std::optional<problem> check_time(fid f, duration d) {
  if (d.count() < 0) return problem{f, "negative time"};
  if (d > max_trace_time) return problem{f, "more than 100 years"};
  if (d % std::chrono::milliseconds(1) != duration{0})
    return problem{f, "not a whole number of milliseconds"};
  return std::nullopt;
}

std::optional<problem> check_job(const trace_job& j) {
  if (auto p = check_text(fid::name, j.name, false)) return p;
  if (auto p = check_time(fid::submit_ms, j.submit)) return p;
  if (auto p = check_time(fid::run_time_ms, j.run_time)) return p;
  if (j.gpus > max_job_gpus)
    return problem{fid::gpus, std::to_string(j.gpus) + " GPUs is more than " +
                                  std::to_string(max_job_gpus) + " for one job"};
  if (j.gpu_milli > 999)
    return problem{fid::gpu_milli, "a share of one GPU is 1..999 milli-GPU, got " +
                                       std::to_string(j.gpu_milli)};
  if (j.gpu_milli > 0 && j.gpus > 0)
    return problem{
        fid::gpu_milli,
        "a share of one GPU (gpu_milli) and whole GPUs (gpus) exclude each other"};
  if (j.gpus_per_bundle > placement::max_gpus_per_node)
    return problem{fid::gpus_per_bundle,
                   std::to_string(j.gpus_per_bundle) +
                       " GPUs per bundle is more than a node has (" +
                       std::to_string(placement::max_gpus_per_node) + ")"};
  if (j.gpus_per_bundle == 0 && j.gpus > placement::max_gpus_per_node)
    return problem{fid::gpus,
                   std::to_string(j.gpus) +
                       " GPUs on one node (gpus_per_bundle 0) is more than a node "
                       "has (" +
                       std::to_string(placement::max_gpus_per_node) + ")"};
  for (const auto& m : j.gpu_models) {
    if (m.empty()) return problem{fid::gpu_models, "empty GPU model name"};
    if (m.find('|') != std::string::npos)
      return problem{fid::gpu_models, "a GPU model name may not contain '|'"};
    if (!valid_utf8(m)) return problem{fid::gpu_models, "not valid UTF-8"};
  }
  if (auto p = check_text(fid::tenant, j.tenant, false)) return p;
  if (auto p = check_text(fid::qos, j.qos, true)) return p;
  if (j.gpus == 0 && j.gpu_milli == 0 && j.cpu_milli == 0 && j.memory_mib == 0)
    return problem{fid::none, "the job asks for nothing (no GPU, CPU or memory)"};
  return std::nullopt;
}

std::optional<problem> check_node(const trace_node& n) {
  if (auto p = check_text(fid::name, n.name, false)) return p;
  if (n.gpus > placement::max_gpus_per_node)
    return problem{fid::gpus, std::to_string(n.gpus) +
                                  " GPUs is more than a node may have (" +
                                  std::to_string(placement::max_gpus_per_node) + ")"};
  if (n.gpus > 0 && n.gpu_model.empty())
    return problem{fid::gpu_model, "a node with GPUs needs a model"};
  if (auto p = check_text(fid::gpu_model, n.gpu_model, true)) return p;
  return std::nullopt;
}

// --- reading ------------------------------------------------------------------

enum class row_kind : uint8_t { job, node };

/// "job" or "node"; nullopt otherwise.
std::optional<row_kind> parse_kind(std::string_view s) {
  if (s == "job") return row_kind::job;
  if (s == "node") return row_kind::node;
  return std::nullopt;
}

constexpr std::string_view kind_error = "expected \"job\" or \"node\"";

/// What is wrong with field `f` on a row of kind `k`, if it does not apply.
std::optional<std::string> not_for(const field_def& f, row_kind k) {
  if (k == row_kind::job && !f.job) return "only node rows have this field";
  if (k == row_kind::node && !f.node) return "only job rows have this field";
  return std::nullopt;
}

std::string shown(std::string_view s) {
  constexpr size_t max_shown = 40;
  std::string out = "\"";
  out.append(s.substr(0, max_shown));
  if (s.size() > max_shown) out += "...";
  return out + '"';
}

std::string expected_u64(const field_def& f) {
  if (f.max == u64_max) return "expected an unsigned integer";
  return "expected an unsigned integer up to " + std::to_string(f.max);
}

/// Reads a CSV field's text as the field's type; a message when it is not.
std::optional<std::string> from_text(const field_def& f, std::string_view s, value& v) {
  switch (f.type) {
  case ftype::text:
    v.s = std::string(s);
    return std::nullopt;
  case ftype::u64: {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v.u);
    if (ec != std::errc{} || p != s.data() + s.size() || v.u > f.max)
      return expected_u64(f) + ", got " + shown(s);
    return std::nullopt;
  }
  case ftype::i32: {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v.i);
    if (ec != std::errc{} || p != s.data() + s.size() ||
        v.i < std::numeric_limits<int32_t>::min() ||
        v.i > std::numeric_limits<int32_t>::max())
      return "expected a 32-bit integer, got " + shown(s);
    return std::nullopt;
  }
  case ftype::boolean:
    if (s == "true" || s == "1") {
      v.b = true;
    } else if (s == "false" || s == "0") {
      v.b = false;
    } else {
      return "expected true, false, 1 or 0, got " + shown(s);
    }
    return std::nullopt;
  case ftype::models:
    for (size_t at = 0;;) {
      auto bar = s.find('|', at);
      auto part = s.substr(at, bar == std::string_view::npos ? s.npos : bar - at);
      if (part.empty())
        return "expected GPU models separated by '|' with no empty one, got " + shown(s);
      v.list.emplace_back(part);
      if (bar == std::string_view::npos) break;
      at = bar + 1;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

/// Reads a JSON value as the field's type; a message when it is not.
std::optional<std::string> from_json(const field_def& f, const json& j, value& v) {
  switch (f.type) {
  case ftype::text:
    if (!j.is_string()) return "expected a string, got " + json_util::shown(j);
    v.s = j.get<std::string>();
    return std::nullopt;
  case ftype::u64: {
    bool good = false;
    if (j.is_number_unsigned()) {
      v.u = j.get<uint64_t>();
      good = v.u <= f.max;
    } else if (j.is_number_integer() && j.get<int64_t>() == 0) {
      v.u = 0; // -0
      good = true;
    }
    if (!good) return expected_u64(f) + ", got " + json_util::shown(j);
    return std::nullopt;
  }
  case ftype::i32:
    if (!j.is_number_integer() ||
        (j.is_number_unsigned() &&
         j.get<uint64_t>() > uint64_t{std::numeric_limits<int32_t>::max()}) ||
        (!j.is_number_unsigned() &&
         (j.get<int64_t>() < std::numeric_limits<int32_t>::min() ||
          j.get<int64_t>() > std::numeric_limits<int32_t>::max())))
      return "expected a 32-bit integer, got " + json_util::shown(j);
    v.i = j.is_number_unsigned() ? static_cast<int64_t>(j.get<uint64_t>())
                                 : j.get<int64_t>();
    return std::nullopt;
  case ftype::boolean:
    if (!j.is_boolean()) return "expected true or false, got " + json_util::shown(j);
    v.b = j.get<bool>();
    return std::nullopt;
  case ftype::models:
    if (!j.is_array())
      return "expected an array of GPU model names, got " + json_util::shown(j);
    for (const auto& m : j) {
      if (!m.is_string())
        return "expected an array of GPU model names, got " + json_util::shown(j);
      v.list.push_back(m.get<std::string>());
    }
    return std::nullopt;
  }
  return std::nullopt;
}

/// How many jobs to reserve for `text`: one reservation instead of a copy
/// at each doubling (twice as fast on a million rows). Rows are lines at
/// most; at most one per 16 bytes (a typical row is longer) so that a file
/// of blank lines cannot reserve gigabytes.
size_t reservation(std::string_view text) {
  return std::min(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')),
                  text.size() / 16);
}

/// Collects the rows of one file into a trace.
struct builder {
  trace out;
  void add(trace_job&& j) { out.jobs.push_back(std::move(j)); }
  void add(trace_node&& n) { out.nodes.push_back(std::move(n)); }
  trace finish() && {
    auto by_submit = [](const trace_job& a, const trace_job& b) {
      return a.submit < b.submit;
    };
    // Files written by troupe are sorted already: skip the sort's copy.
    if (!std::is_sorted(out.jobs.begin(), out.jobs.end(), by_submit))
      std::stable_sort(out.jobs.begin(), out.jobs.end(), by_submit);
    return std::move(out);
  }
};

// --- writing ------------------------------------------------------------------

uint64_t whole_ms(duration d) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

std::string join_models(const std::vector<std::string>& models) {
  std::string out;
  for (const auto& m : models) {
    if (!out.empty()) out += '|';
    out += m;
  }
  return out;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return false;
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  return static_cast<bool>(f);
}

} // namespace

result<trace> parse_troupe_csv(std::string_view text, std::string_view source) {
  // Column index of each field (npos: absent); x_ columns are skipped.
  std::array<size_t, field_count> col;
  col.fill(std::string::npos);
  std::vector<const field_def*> by_col;
  auto on_header = [&](const csv::table& t) -> result<void> {
    const auto& header = t.header();
    by_col.assign(header.size(), nullptr);
    for (size_t c = 0; c < header.size(); ++c) {
      const auto& name = header[c];
      auto at = [&] { return std::string(source) + ":1:" + std::to_string(c + 1); };
      if (extension_key(name)) continue;
      const auto* f = find_field(name);
      if (!f)
        return error{errc::invalid_argument,
                     at() + " (" + name + "): unknown column (known: " + known_names() +
                         "; prefix extra columns with x_)"};
      if (col[static_cast<size_t>(f->id)] != std::string::npos)
        return error{errc::invalid_argument,
                     at() + " (" + name + "): column appears twice"};
      col[static_cast<size_t>(f->id)] = c;
      by_col[c] = f;
    }
    if (auto n = t.column("name"); !n) return n.err();
    return ok();
  };

  builder b;
  b.out.source = std::string(source);
  b.out.jobs.reserve(reservation(text));
  auto on_row = [&](const csv::table& t, const csv::row& r) -> result<void> {
    const size_t width = t.header().size();
    if (r.fields.size() != width)
      return t.fail(r, std::min(r.fields.size(), width),
                    "the row has " + std::to_string(r.fields.size()) +
                        " fields, the header " + std::to_string(width));
    row_kind k = row_kind::job;
    const size_t kind_col = col[static_cast<size_t>(fid::kind)];
    if (kind_col != std::string::npos && !r.fields[kind_col].empty()) {
      auto pk = parse_kind(r.fields[kind_col]);
      if (!pk)
        return t.fail(r, kind_col,
                      std::string(kind_error) + ", got " + shown(r.fields[kind_col]));
      k = *pk;
    }
    trace_job j;
    trace_node n;
    std::array<bool, field_count> seen{};
    for (size_t c = 0; c < width; ++c) {
      const auto* f = by_col[c];
      if (!f || f->id == fid::kind || r.fields[c].empty()) continue;
      if (auto why = not_for(*f, k)) return t.fail(r, c, *why + "; leave it empty");
      value v;
      if (auto why = from_text(*f, r.fields[c], v)) return t.fail(r, c, *why);
      seen[static_cast<size_t>(f->id)] = true;
      if (k == row_kind::job) {
        set(j, f->id, std::move(v));
      } else {
        set(n, f->id, std::move(v));
      }
    }
    auto required = [&](fid f) -> std::optional<error> {
      if (seen[static_cast<size_t>(f)]) return std::nullopt;
      auto c = col[static_cast<size_t>(f)];
      if (c != std::string::npos) return t.fail(r, c, "required, but empty");
      return error{errc::invalid_argument,
                   std::string(source) + ":" + std::to_string(r.line) + ": column \"" +
                       std::string(def(f).name) + "\" is required and missing"};
    };
    if (auto e = required(fid::name)) return *e;
    if (k == row_kind::job)
      if (auto e = required(fid::submit_ms)) return *e;
    auto p = k == row_kind::job ? check_job(j) : check_node(n);
    if (p) {
      auto c =
          p->field == fid::none ? std::string::npos : col[static_cast<size_t>(p->field)];
      if (c != std::string::npos) return t.fail(r, c, p->what);
      return error{errc::invalid_argument,
                   std::string(source) + ":" + std::to_string(r.line) + ": " + p->what};
    }
    if (k == row_kind::job) {
      b.add(std::move(j));
    } else {
      b.add(std::move(n));
    }
    return ok();
  };
  if (auto r = csv::table::scan(text, source, on_header, on_row); !r) return r.err();
  return std::move(b).finish();
}

result<trace> parse_troupe_jsonl(std::string_view text, std::string_view source) {
  builder b;
  b.out.source = std::string(source);
  b.out.jobs.reserve(reservation(text));
  uint64_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto at = [&] { return std::string(source) + ":" + std::to_string(line_no); };
    auto fail = [&](std::string_view key, const std::string& what) {
      return error{errc::invalid_argument,
                   at() + (key.empty() ? std::string() : " (" + std::string(key) + ")") +
                       ": " + what};
    };
    json obj;
    size_t byte = 0;
    std::string why;
    if (!json_util::parse_strict(line, obj, byte, why))
      return error{errc::invalid_argument,
                   at() + (byte ? ":" + std::to_string(byte) : std::string()) +
                       ": invalid JSON: " + why};
    if (!obj.is_object())
      return fail("", std::string("expected a JSON object, got ") + obj.type_name());
    row_kind k = row_kind::job;
    if (auto it = obj.find("kind"); it != obj.end()) {
      auto pk =
          it->is_string() ? parse_kind(it->get_ref<const std::string&>()) : std::nullopt;
      if (!pk)
        return fail("kind", std::string(kind_error) + ", got " + json_util::shown(*it));
      k = *pk;
    }
    trace_job j;
    trace_node n;
    std::array<bool, field_count> seen{};
    for (const auto& [key, val] : obj.items()) {
      if (extension_key(key)) continue;
      const auto* f = find_field(key);
      if (!f)
        return fail(key, "unknown key (known: " + known_names() +
                             "; prefix extra keys with x_)");
      if (f->id == fid::kind) continue;
      if (auto w = not_for(*f, k)) return fail(key, *w);
      value v;
      if (auto w = from_json(*f, val, v)) return fail(key, *w);
      seen[static_cast<size_t>(f->id)] = true;
      if (k == row_kind::job) {
        set(j, f->id, std::move(v));
      } else {
        set(n, f->id, std::move(v));
      }
    }
    if (!seen[static_cast<size_t>(fid::name)])
      return fail("name", "required, but missing");
    if (k == row_kind::job && !seen[static_cast<size_t>(fid::submit_ms)])
      return fail("submit_ms", "required, but missing");
    auto p = k == row_kind::job ? check_job(j) : check_node(n);
    if (p)
      return fail(p->field == fid::none ? std::string_view{} : def(p->field).name,
                  p->what);
    if (k == row_kind::job) {
      b.add(std::move(j));
    } else {
      b.add(std::move(n));
    }
  }
  return std::move(b).finish();
}

result<trace> load_troupe_trace(const std::string& path) {
  bool is_csv = path.ends_with(".csv");
  if (!is_csv && !path.ends_with(".jsonl"))
    return error{errc::invalid_argument,
                 path + ": unknown trace format: expected a .csv or .jsonl file"};
  auto text = csv::read_file(path);
  if (!text) return text.err();
  return is_csv ? parse_troupe_csv(*text, path) : parse_troupe_jsonl(*text, path);
}

result<void> check_troupe_trace(const trace& t) {
  for (size_t i = 0; i < t.nodes.size(); ++i)
    if (auto p = check_node(t.nodes[i]))
      return error{errc::invalid_argument,
                   "node " + std::to_string(i) + " (" + t.nodes[i].name + ")" +
                       (p->field == fid::none ? std::string()
                                              : " " + std::string(def(p->field).name)) +
                       ": " + p->what};
  for (size_t i = 0; i < t.jobs.size(); ++i) {
    if (auto p = check_job(t.jobs[i]))
      return error{errc::invalid_argument,
                   "job " + std::to_string(i) + " (" + t.jobs[i].name + ")" +
                       (p->field == fid::none ? std::string()
                                              : " " + std::string(def(p->field).name)) +
                       ": " + p->what};
    if (i > 0 && t.jobs[i].submit < t.jobs[i - 1].submit)
      return error{errc::invalid_argument, "job " + std::to_string(i) + " (" +
                                               t.jobs[i].name +
                                               "): jobs are not sorted by submit time"};
  }
  return ok();
}

result<void> save_troupe_trace(const trace& t, const std::string& path) {
  bool is_csv = path.ends_with(".csv");
  if (!is_csv && !path.ends_with(".jsonl"))
    return error{errc::invalid_argument,
                 path + ": unknown trace format: expected a .csv or .jsonl file"};
  if (auto c = check_troupe_trace(t); !c)
    return error{errc::invalid_argument, path + ": cannot save: " + c.err().message()};
  if (!write_file(path, is_csv ? to_troupe_csv(t) : to_troupe_jsonl(t)))
    return error{errc::io_error, path + ": cannot write"};
  return ok();
}

std::string to_troupe_csv(const trace& t) {
  const bool with_nodes = !t.nodes.empty();
  std::string out;
  out.reserve(64 * (t.jobs.size() + t.nodes.size() + 1));
  auto num = [&](uint64_t v) {
    char buf[24];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
  };
  bool first = true;
  for (const auto& f : fields) {
    if (!with_nodes && (f.id == fid::kind || !f.job)) continue;
    if (!first) out += ',';
    out += f.name;
    first = false;
  }
  out += '\n';
  for (const auto& n : t.nodes) {
    for (const auto& f : fields) {
      if (f.id != fid::kind) out += ',';
      switch (f.id) {
      case fid::kind:
        out += "node";
        break;
      case fid::name:
        out += csv::quote(n.name);
        break;
      case fid::gpus:
        num(n.gpus);
        break;
      case fid::cpu_milli:
        num(n.cpu_milli);
        break;
      case fid::memory_mib:
        num(n.memory_mib);
        break;
      case fid::gpu_model:
        out += csv::quote(n.gpu_model);
        break;
      case fid::gpu_memory_mib:
        num(n.gpu_memory_mib);
        break;
      default:
        break;
      }
    }
    out += '\n';
  }
  for (const auto& j : t.jobs) {
    bool first_field = true;
    for (const auto& f : fields) {
      if (!with_nodes && (f.id == fid::kind || !f.job)) continue;
      if (!first_field) out += ',';
      first_field = false;
      switch (f.id) {
      case fid::kind:
        out += "job";
        break;
      case fid::name:
        out += csv::quote(j.name);
        break;
      case fid::submit_ms:
        num(whole_ms(j.submit));
        break;
      case fid::run_time_ms:
        num(whole_ms(j.run_time));
        break;
      case fid::gpus:
        num(j.gpus);
        break;
      case fid::gpu_milli:
        num(j.gpu_milli);
        break;
      case fid::gpus_per_bundle:
        num(j.gpus_per_bundle);
        break;
      case fid::gpu_models:
        out += csv::quote(join_models(j.gpu_models));
        break;
      case fid::cpu_milli:
        num(j.cpu_milli);
        break;
      case fid::memory_mib:
        num(j.memory_mib);
        break;
      case fid::tenant:
        out += csv::quote(j.tenant);
        break;
      case fid::priority:
        out += std::to_string(j.priority);
        break;
      case fid::preemptible:
        out += j.preemptible ? "true" : "false";
        break;
      case fid::spot_tolerant:
        out += j.spot_tolerant ? "true" : "false";
        break;
      case fid::qos:
        out += csv::quote(j.qos);
        break;
      default:
        break; // node-only columns stay empty
      }
    }
    out += '\n';
  }
  return out;
}

std::string to_troupe_jsonl(const trace& t) {
  using ojson = nlohmann::ordered_json;
  std::string out;
  auto line = [&](const ojson& o) {
    out += o.dump(-1, ' ', false, ojson::error_handler_t::replace);
    out += '\n';
  };
  for (const auto& n : t.nodes) {
    ojson o;
    o["kind"] = "node";
    o["name"] = n.name;
    o["gpus"] = n.gpus;
    o["cpu_milli"] = n.cpu_milli;
    o["memory_mib"] = n.memory_mib;
    if (!n.gpu_model.empty()) o["gpu_model"] = n.gpu_model;
    if (n.gpu_memory_mib != 0) o["gpu_memory_mib"] = n.gpu_memory_mib;
    line(o);
  }
  const trace_job defaults;
  for (const auto& j : t.jobs) {
    // Keys left out take their defaults (docs/TRACE-FORMAT.md).
    ojson o;
    o["name"] = j.name;
    o["submit_ms"] = whole_ms(j.submit);
    o["run_time_ms"] = whole_ms(j.run_time);
    if (j.gpus != 0) o["gpus"] = j.gpus;
    if (j.gpu_milli != 0) o["gpu_milli"] = j.gpu_milli;
    if (j.gpus_per_bundle != 0) o["gpus_per_bundle"] = j.gpus_per_bundle;
    if (!j.gpu_models.empty()) o["gpu_models"] = j.gpu_models;
    if (j.cpu_milli != 0) o["cpu_milli"] = j.cpu_milli;
    if (j.memory_mib != 0) o["memory_mib"] = j.memory_mib;
    if (j.tenant != defaults.tenant) o["tenant"] = j.tenant;
    if (j.priority != 0) o["priority"] = j.priority;
    if (j.preemptible) o["preemptible"] = true;
    if (j.spot_tolerant) o["spot_tolerant"] = true;
    if (!j.qos.empty()) o["qos"] = j.qos;
    line(o);
  }
  return out;
}

} // namespace troupe::sim
