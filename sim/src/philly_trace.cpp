/// Loader of the Microsoft Philly job trace (the Pollux artifact's subset)
/// and the Helios artifact's node counts per virtual cluster.
#include "csv.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/sim/trace.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>

namespace troupe::sim {

using runtime::errc;

namespace {

/// Philly's servers as the simulated cluster has them. Philly mixed 8-GPU
/// servers of P100 (16 GB) and P40 (24 GB) GPUs (Jeon et al., ATC'19); the
/// job file does not say which a job ran on, so every node gets one model:
/// "P100", the more common one, which topology_from_nodes already knows.
/// CPU and memory are those of a DGX-1-class 8-GPU server (2 x 20 cores,
/// 80 hardware threads, 512 GiB); the trace's jobs ask for neither.
constexpr uint32_t philly_gpus_per_node = 8;
constexpr std::string_view philly_gpu_model = "P100";
constexpr uint64_t philly_gpu_memory_mib = 16 * 1024;
constexpr uint64_t philly_cpu_milli = 80'000;
constexpr uint64_t philly_memory_mib = 512 * 1024;

/// At most this many nodes per virtual cluster (Philly's largest had a few
/// hundred): a typo must not make millions of nodes.
constexpr uint64_t max_vc_nodes = 10'000;

constexpr int64_t ms_per_s = 1000;
constexpr int64_t max_trace_ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(max_trace_time).count();

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known
/// era-based "days from civil" computation; no time zone, no locale).
constexpr int64_t days_from_civil(int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);                // [0, 399]
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; // [0, 365]
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           // [0, 146096]
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);
static_assert(days_from_civil(2017, 9, 4) == 17413);

constexpr bool leap_year(int64_t y) noexcept {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

constexpr unsigned days_in_month(int64_t y, unsigned m) noexcept {
  constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/// Seconds since 1970-01-01 00:00:00 UTC of "YYYY-MM-DD HH:MM:SS", or a
/// message saying what is wrong.
std::optional<int64_t> parse_timestamp(std::string_view s, std::string& why) {
  constexpr std::string_view shape = "YYYY-MM-DD HH:MM:SS";
  auto digits = [&](size_t at, size_t n) -> std::optional<unsigned> {
    unsigned v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + static_cast<unsigned>(s[i] - '0');
    }
    return v;
  };
  bool shaped = s.size() == shape.size() && s[4] == '-' && s[7] == '-' && s[10] == ' ' &&
                s[13] == ':' && s[16] == ':';
  auto y = shaped ? digits(0, 4) : std::nullopt;
  auto mo = shaped ? digits(5, 2) : std::nullopt;
  auto d = shaped ? digits(8, 2) : std::nullopt;
  auto h = shaped ? digits(11, 2) : std::nullopt;
  auto mi = shaped ? digits(14, 2) : std::nullopt;
  auto se = shaped ? digits(17, 2) : std::nullopt;
  if (!y || !mo || !d || !h || !mi || !se) {
    why = "expected a time \"YYYY-MM-DD HH:MM:SS\"";
    return std::nullopt;
  }
  if (*mo < 1 || *mo > 12) {
    why = "month " + std::to_string(*mo) + " is not 1..12";
    return std::nullopt;
  }
  if (*d < 1 || *d > days_in_month(*y, *mo)) {
    why = "day " + std::to_string(*d) + " is not in month " + std::to_string(*mo) +
          " of " + std::to_string(*y);
    return std::nullopt;
  }
  if (*h > 23 || *mi > 59 || *se > 59) {
    why = "time of day out of range (00:00:00..23:59:59)";
    return std::nullopt;
  }
  return days_from_civil(*y, *mo, *d) * 86'400 + *h * 3600 + *mi * 60 + *se;
}

/// Non-negative decimal seconds ("66.0", "12", "0.0005") as milliseconds,
/// rounded half up on the fourth decimal; nullopt when not such a number or
/// longer than max_trace_time.
std::optional<int64_t> parse_seconds_as_ms(std::string_view s) {
  auto dot = s.find('.');
  auto whole = s.substr(0, dot);
  auto frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && frac.empty()))
    return std::nullopt;
  int64_t ms = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') return std::nullopt;
    ms = ms * 10 + (c - '0');
    if (ms > max_trace_ms / ms_per_s) return std::nullopt;
  }
  ms *= ms_per_s;
  int64_t scale = 100;
  bool round_up = false;
  for (size_t i = 0; i < frac.size(); ++i) {
    char c = frac[i];
    if (c < '0' || c > '9') return std::nullopt;
    if (i < 3) {
      ms += (c - '0') * scale;
      scale /= 10;
    } else if (i == 3) {
      round_up = c >= '5';
    }
  }
  if (round_up) ++ms;
  if (ms > max_trace_ms) return std::nullopt;
  return ms;
}

std::string node_name(const std::string& vc, uint64_t i, uint64_t count) {
  auto num = std::to_string(i);
  size_t width = std::max<size_t>(2, std::to_string(count - 1).size());
  return vc + "-n" + std::string(width - std::min(width, num.size()), '0') + num;
}

} // namespace

result<vc_node_counts> parse_philly_vc_nodes(std::string_view text,
                                             std::string_view source) {
  auto t = csv::table::parse(text, source);
  if (!t) return t.err();
  auto vc = t->column("vc");
  if (!vc) return vc.err();
  auto num = t->column("node num");
  if (!num) return num.err();
  vc_node_counts out;
  for (const auto& r : t->rows()) {
    auto name = t->text(r, *vc);
    if (!name) return name.err();
    if (name->empty()) return t->fail(r, *vc, "empty virtual cluster name");
    auto n = t->u64(r, *num);
    if (!n) return n.err();
    if (*n == 0) return t->fail(r, *num, "a virtual cluster needs at least 1 node");
    if (*n > max_vc_nodes)
      return t->fail(r, *num,
                     std::to_string(*n) + " nodes is more than " +
                         std::to_string(max_vc_nodes) + " per virtual cluster");
    if (!out.emplace(std::string(*name), static_cast<uint32_t>(*n)).second)
      return t->fail(r, *vc,
                     "virtual cluster \"" + std::string(*name) + "\" listed twice");
  }
  return out;
}

result<trace> parse_philly(std::string_view text, std::string_view source,
                           const vc_node_counts& vc_nodes) {
  auto t = csv::table::parse(text, source);
  if (!t) return t.err();
  auto ts = t->column("timestamp");
  auto dur = t->column("duration");
  auto gpus = t->column("num_gpus");
  auto vc = t->column("cluster");
  for (auto* c : {&ts, &dur, &gpus, &vc})
    if (!*c) return c->err();
  for (const auto& [name, count] : vc_nodes)
    if (count > max_vc_nodes)
      return error{errc::invalid_argument,
                   std::string(source) + ": node counts: virtual cluster " + name +
                       " has " + std::to_string(count) + " nodes, more than " +
                       std::to_string(max_vc_nodes)};

  struct row_job {
    int64_t start_s;
    trace_job job;
  };
  // Jobs skipped, per cause and cluster (std::map: warnings in a fixed order).
  std::map<std::string, uint64_t, std::less<>> unlisted, zero_duration;
  struct too_big {
    uint64_t jobs = 0;
    uint64_t largest = 0;
  };
  std::map<std::string, too_big, std::less<>> oversized;

  std::vector<row_job> kept;
  kept.reserve(t->rows().size());
  std::optional<int64_t> first_s, last_s; // earliest and latest row
  const size_t fields = t->header().size();
  for (const auto& r : t->rows()) {
    if (r.fields.size() > fields)
      return t->fail(r, fields,
                     "the row has " + std::to_string(r.fields.size()) +
                         " fields, the header " + std::to_string(fields));
    auto when = t->text(r, *ts);
    if (!when) return when.err();
    std::string why;
    auto start = parse_timestamp(*when, why);
    if (!start) return t->fail(r, *ts, why + ", got \"" + std::string(*when) + "\"");
    auto d = t->text(r, *dur);
    if (!d) return d.err();
    auto ms = parse_seconds_as_ms(*d);
    if (!ms)
      return t->fail(r, *dur,
                     "expected non-negative seconds (at most 100 years) like \"66.0\", "
                     "got \"" +
                         std::string(*d) + "\"");
    auto g = t->u64(r, *gpus);
    if (!g) return g.err();
    if (*g == 0) return t->fail(r, *gpus, "a Philly job needs at least 1 GPU");
    auto cluster = t->text(r, *vc);
    if (!cluster) return cluster.err();
    if (cluster->empty()) return t->fail(r, *vc, "empty virtual cluster");

    first_s = first_s ? std::min(*first_s, *start) : *start;
    last_s = last_s ? std::max(*last_s, *start) : *start;
    if (*last_s - *first_s > max_trace_ms / ms_per_s)
      return t->fail(r, *ts, "the trace spans more than 100 years");

    auto it = vc_nodes.find(*cluster);
    if (it == vc_nodes.end()) {
      ++unlisted[std::string(*cluster)];
      continue;
    }
    uint64_t capacity = uint64_t{it->second} * philly_gpus_per_node;
    if (*g > capacity) {
      auto& o = oversized[std::string(*cluster)];
      ++o.jobs;
      o.largest = std::max(o.largest, *g);
      continue;
    }
    if (*ms == 0) {
      ++zero_duration[std::string(*cluster)];
      continue;
    }
    trace_job j;
    j.name = "philly-" + std::to_string(r.line);
    j.run_time = std::chrono::milliseconds(*ms);
    j.gpus = static_cast<uint32_t>(*g);
    j.gpus_per_bundle = philly_gpus_per_node;
    j.tenant = std::string(*cluster);
    kept.push_back({*start, std::move(j)});
  }
  std::stable_sort(kept.begin(), kept.end(), [](const row_job& a, const row_job& b) {
    return a.start_s < b.start_s;
  });

  trace out;
  out.source = std::string(source);
  out.jobs.reserve(kept.size());
  for (auto& k : kept) {
    k.job.submit = std::chrono::seconds(k.start_s - *first_s);
    out.jobs.push_back(std::move(k.job));
  }
  for (const auto& [name, n] : unlisted)
    out.warnings.push_back("virtual cluster " + name + ": " + std::to_string(n) +
                           " jobs skipped: the node list has no node count for it");
  for (const auto& [name, o] : oversized)
    out.warnings.push_back(
        "virtual cluster " + name + ": " + std::to_string(o.jobs) +
        " jobs skipped: they ask for more GPUs (up to " + std::to_string(o.largest) +
        ") than its " + std::to_string(vc_nodes.find(name)->second) + " nodes have (" +
        std::to_string(vc_nodes.find(name)->second * philly_gpus_per_node) +
        ") and could never run");
  for (const auto& [name, n] : zero_duration)
    out.warnings.push_back(
        "virtual cluster " + name + ": " + std::to_string(n) +
        " jobs skipped: duration 0 (a run time of 0 means never ends)");
  for (const auto& [name, count] : vc_nodes)
    for (uint32_t i = 0; i < count; ++i) {
      trace_node n;
      n.name = node_name(name, i, count);
      n.cpu_milli = philly_cpu_milli;
      n.memory_mib = philly_memory_mib;
      n.gpus = philly_gpus_per_node;
      n.gpu_model = std::string(philly_gpu_model);
      n.gpu_memory_mib = philly_gpu_memory_mib;
      out.nodes.push_back(std::move(n));
    }
  return out;
}

result<trace> load_philly(const std::string& jobs_path,
                          const std::string& vc_nodes_path) {
  auto nodes_text = csv::read_file(vc_nodes_path);
  if (!nodes_text) return nodes_text.err();
  auto nodes = parse_philly_vc_nodes(*nodes_text, vc_nodes_path);
  if (!nodes) return nodes.err();
  auto text = csv::read_file(jobs_path);
  if (!text) return text.err();
  auto t = parse_philly(*text, jobs_path, *nodes);
  if (!t) return t.err();
  t->source = jobs_path + " + " + vc_nodes_path;
  return t;
}

} // namespace troupe::sim
