#include "troupe/placement/topology_config.hpp"

#include "troupe/placement/errc.hpp"
#include "troupe/placement/mig.hpp"
#include "troupe/runtime/errc.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <toml++/toml.h>
#include <utility>
#include <vector>

namespace troupe::placement {
namespace {

/// Largest topology file load_topology_file reads.
constexpr std::uintmax_t max_file_bytes = 16u << 20;
/// At most this many problems are listed; the rest are counted.
constexpr size_t max_reported_problems = 100;
/// Strings are cut to this many bytes in messages.
constexpr size_t max_quoted_bytes = 64;

constexpr int64_t max_price_usd = 1'000'000; // per GPU-hour; anything above is a typo

// -- text ---------------------------------------------------------------------

/// `s` in double quotes for a message: quotes, backslashes and control bytes
/// escaped, cut after max_quoted_bytes.
std::string quote(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == max_quoted_bytes) return out + "\"...";
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + '"';
}

std::string real_text(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  std::array<char, 64> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), d);
  if (ec != std::errc{}) return "?";
  std::string s(buf.data(), end);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

/// What the user wrote, for "got ...": strings quoted, numbers as written,
/// containers by kind.
std::string describe(const toml::node& n) {
  switch (n.type()) {
  case toml::node_type::string:
    return quote(*n.value<std::string_view>());
  case toml::node_type::integer:
    return std::to_string(*n.value<int64_t>());
  case toml::node_type::floating_point:
    return real_text(*n.value<double>());
  case toml::node_type::boolean:
    return *n.value<bool>() ? "true" : "false";
  case toml::node_type::table:
    return "a table";
  case toml::node_type::array:
    return "an array";
  case toml::node_type::date:
  case toml::node_type::time:
  case toml::node_type::date_time:
    return "a date/time";
  case toml::node_type::none:
    break;
  }
  return "nothing";
}

std::string range_text(int64_t lo, int64_t hi) {
  return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

// -- problems -----------------------------------------------------------------

/// Problems found in one load, each tied to a line so they print in
/// document order (toml++ tables iterate by key, not by position).
class problem_list {
public:
  explicit problem_list(std::string_view source) : source_(source) {}

  /// `source:line: key: expected <expected>, got <got>`.
  void at(size_t line, std::string_view key, std::string_view expected,
          std::string_view got) {
    add(line, std::string{source_} + ':' + std::to_string(line) + ": " +
                  std::string{key} + ": expected " + std::string{expected} + ", got " +
                  std::string{got});
  }
  void add(size_t line, std::string text) { entries_.push_back({line, std::move(text)}); }
  bool empty() const noexcept { return entries_.empty(); }

  error to_error() {
    std::stable_sort(entries_.begin(), entries_.end(),
                     [](const entry& a, const entry& b) { return a.line < b.line; });
    std::string msg;
    size_t shown = std::min(entries_.size(), max_reported_problems);
    for (size_t i = 0; i < shown; ++i) {
      if (i != 0) msg += '\n';
      msg += entries_[i].text;
    }
    if (entries_.size() > shown)
      msg += "\n... and " + std::to_string(entries_.size() - shown) + " more problems";
    return error{errc::invalid_argument, std::move(msg)};
  }

private:
  struct entry {
    size_t line;
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
    problems.add(where.line, std::string{source} + ':' + std::to_string(where.line) +
                                 ':' + std::to_string(where.column) +
                                 ": TOML syntax error: " + std::string{e.description()});
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

// -- reading one table --------------------------------------------------------

/// One TOML table being read: typed getters that report what is wrong with
/// `path.key` at the key's line, and a final check for keys nobody read.
class table_reader {
public:
  table_reader(problem_list& problems, const toml::table& table, std::string path,
               size_t line)
      : problems_(problems), table_(table), path_(std::move(path)), line_(line) {
    if (line_ == 0) line_ = table.source().begin.line;
    if (line_ == 0) line_ = 1;
  }

  const std::string& path() const noexcept { return path_; }
  size_t line() const noexcept { return line_; }
  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string{key} : path_ + "." + std::string{key};
  }

  /// The line of `key`, or of the table when it is absent.
  size_t line_of(std::string_view key) const {
    auto it = table_.find(key);
    if (it == table_.end()) return line_;
    size_t l = it->first.source().begin.line;
    if (l == 0) l = it->second.source().begin.line;
    return l == 0 ? line_ : l;
  }

  /// The node at `key` (marked as read), or null; reports it when required.
  const toml::node* take(std::string_view key, bool required, std::string_view expected) {
    used_.emplace_back(key);
    const toml::node* n = table_.get(key);
    if (n == nullptr && required) problems_.at(line_, key_path(key), expected, "nothing");
    return n;
  }

  void wrong(std::string_view key, std::string_view expected, std::string_view got) {
    problems_.at(line_of(key), key_path(key), expected, got);
  }

  std::optional<int64_t> integer(std::string_view key, int64_t lo, int64_t hi,
                                 bool required) {
    const std::string expected = "an integer in " + range_text(lo, hi);
    const toml::node* n = take(key, required, expected);
    if (n == nullptr) return std::nullopt;
    auto v = n->value_exact<int64_t>();
    if (!n->is_integer() || !v || *v < lo || *v > hi) {
      wrong(key, expected, describe(*n));
      return std::nullopt;
    }
    return v;
  }

  std::optional<double> real(std::string_view key, double lo, double hi, bool required,
                             bool lo_open = false) {
    const std::string expected = std::string{"a number in "} + (lo_open ? "(" : "[") +
                                 real_text(lo) + ", " + real_text(hi) + "]";
    const toml::node* n = take(key, required, expected);
    if (n == nullptr) return std::nullopt;
    std::optional<double> v;
    if (n->is_floating_point()) v = n->value_exact<double>();
    if (n->is_integer()) v = static_cast<double>(*n->value_exact<int64_t>());
    if (!v || std::isnan(*v) || *v < lo || *v > hi || (lo_open && *v == lo)) {
      wrong(key, expected, describe(*n));
      return std::nullopt;
    }
    return v;
  }

  /// A non-empty string of at most `max_len` bytes.
  std::optional<std::string> text(std::string_view key, bool required,
                                  size_t max_len = 253) {
    const std::string expected =
        "a non-empty string of at most " + std::to_string(max_len) + " bytes";
    const toml::node* n = take(key, required, expected);
    if (n == nullptr) return std::nullopt;
    auto v = n->value_exact<std::string>();
    if (!n->is_string() || !v || v->empty() || v->size() > max_len) {
      wrong(key, expected, describe(*n));
      return std::nullopt;
    }
    return v;
  }

  template <class Enum, size_t N>
  std::optional<Enum>
  one_of(std::string_view key,
         const std::array<std::pair<std::string_view, Enum>, N>& choices, bool required) {
    std::string expected = "one of ";
    for (size_t i = 0; i < N; ++i) {
      if (i != 0) expected += '|';
      expected += choices[i].first;
    }
    const toml::node* n = take(key, required, expected);
    if (n == nullptr) return std::nullopt;
    if (auto s = n->value_exact<std::string_view>(); s && n->is_string())
      for (const auto& [name, value] : choices)
        if (name == *s) return value;
    wrong(key, expected, describe(*n));
    return std::nullopt;
  }

  std::optional<micro_usd> price(std::string_view key, bool required) {
    static constexpr std::string_view expected =
        "a decimal string such as \"2.50\" (non-negative, at most 6 fractional digits, "
        "no exponent)";
    const toml::node* n = take(key, required, expected);
    if (n == nullptr) return std::nullopt;
    if (n->is_string()) {
      auto p = parse_price(*n->value_exact<std::string_view>());
      if (p) return *p;
    }
    wrong(key, expected, describe(*n));
    return std::nullopt;
  }

  /// The sub-table at `key`, or null (reported when present but not a table).
  const toml::table* table(std::string_view key, bool required,
                           std::string_view expected) {
    const toml::node* n = take(key, required, expected);
    if (n == nullptr) return nullptr;
    if (const auto* t = n->as_table()) return t;
    wrong(key, expected, describe(*n));
    return nullptr;
  }

  /// Reports every key that no getter asked for.
  void finish() {
    for (auto&& [k, n] : table_) {
      if (std::find(used_.begin(), used_.end(), k.str()) != used_.end()) continue;
      std::string known;
      for (const auto& u : used_)
        known += (known.empty() ? "" : "|") + u;
      problems_.at(line_of(k.str()), key_path(k.str()), "a known key (" + known + ")",
                   "unknown key");
    }
  }

private:
  problem_list& problems_;
  const toml::table& table_;
  std::string path_;
  size_t line_;
  std::vector<std::string> used_;
};

/// The tables of a top-level array of tables such as [[racks]].
std::vector<std::pair<const toml::table*, std::string>>
array_of_tables(table_reader& top, std::string_view key, problem_list& problems) {
  std::vector<std::pair<const toml::table*, std::string>> out;
  const std::string expected = "an array of tables ([[" + std::string{key} + "]])";
  const toml::node* n = top.take(key, false, expected);
  if (n == nullptr) return out;
  const auto* arr = n->as_array();
  if (arr == nullptr) {
    top.wrong(key, expected, describe(*n));
    return out;
  }
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string path = std::string{key} + "[" + std::to_string(i) + "]";
    const auto& elem = (*arr)[i];
    if (const auto* t = elem.as_table()) {
      out.emplace_back(t, std::move(path));
    } else {
      size_t line = elem.source().begin.line;
      problems.at(line == 0 ? top.line_of(key) : line, path, "a table", describe(elem));
    }
  }
  return out;
}

// -- the topology -------------------------------------------------------------

constexpr std::array<std::pair<std::string_view, capacity_type>, 3> capacity_choices{{
    {"on_demand", capacity_type::on_demand},
    {"reserved", capacity_type::reserved},
    {"spot", capacity_type::spot},
}};

constexpr std::array<std::pair<std::string_view, gpu_sharing>, 3> sharing_choices{{
    {"whole", gpu_sharing::whole},
    {"mig", gpu_sharing::mig},
    {"time_sliced", gpu_sharing::time_sliced},
}};

class topology_loader {
public:
  explicit topology_loader(std::string_view source) : problems_(source) {}

  problem_list& problems() noexcept { return problems_; }

  std::optional<cluster_topology> load(const toml::table& doc) {
    table_reader top{problems_, doc, "", 1};
    auto racks = array_of_tables(top, "racks", problems_);
    auto groups = array_of_tables(top, "node_groups", problems_);
    auto nodes = array_of_tables(top, "nodes", problems_);
    const toml::table* gen =
        top.table("generate", false, "a table of generated_cluster fields ([generate])");
    top.finish();

    cluster_topology topo;
    if (gen != nullptr) {
      if (!racks.empty() || !groups.empty() || !nodes.empty()) {
        problems_.at(top.line_of("generate"), "generate",
                     "either [generate] or [[racks]] with [[node_groups]]/[[nodes]]",
                     "both");
        return std::nullopt;
      }
      return generate(*gen, top.line_of("generate"));
    }
    if (racks.empty()) {
      problems_.at(1, "racks", "at least one [[racks]] table (or a [generate] table)",
                   "no racks");
      return std::nullopt;
    }
    if (groups.empty() && nodes.empty()) {
      problems_.at(1, "nodes", "at least one [[node_groups]] or [[nodes]] table",
                   "no nodes");
    }
    for (const auto& [t, path] : racks)
      read_rack(*t, path, topo);
    for (const auto& [t, path] : groups)
      read_nodes(*t, path, true, topo);
    for (const auto& [t, path] : nodes)
      read_nodes(*t, path, false, topo);
    if (!problems_.empty()) return std::nullopt;
    return topo;
  }

private:
  void read_rack(const toml::table& t, const std::string& path, cluster_topology& topo) {
    table_reader r{problems_, t, path, 0};
    rack_spec rack;
    auto name = r.text("name", true);
    auto spine = r.integer("spine", 0, 1'000'000, true);
    auto over = r.real("uplink_oversubscription", 1.0, 1000.0, false);
    r.finish();
    if (name) {
      if (auto it = rack_lines_.find(*name); it != rack_lines_.end()) {
        r.wrong("name",
                "a unique rack name (first used at line " + std::to_string(it->second) +
                    ")",
                quote(*name));
      } else {
        rack_lines_.emplace(*name, r.line_of("name"));
        rack_index_.emplace(*name, static_cast<uint32_t>(topo.racks.size()));
      }
      rack.name = *name;
    }
    if (spine) rack.spine = static_cast<uint32_t>(*spine);
    if (over) rack.uplink_oversubscription = *over;
    topo.racks.push_back(std::move(rack));
  }

  /// One [[node_groups]] (`group`) or [[nodes]] entry.
  void read_nodes(const toml::table& t, const std::string& path, bool group,
                  cluster_topology& topo) {
    table_reader r{problems_, t, path, 0};
    std::optional<std::string> name;
    std::optional<int64_t> count = 1;
    if (group) {
      name = r.text("prefix", true, 200);
      count = r.integer("count", 1, static_cast<int64_t>(max_config_nodes), true);
    } else {
      name = r.text("name", true);
    }
    node_spec proto;
    bool ok = name.has_value() && count.has_value();
    if (auto rack = r.text("rack", true)) {
      if (auto it = rack_index_.find(*rack); it != rack_index_.end()) {
        proto.rack = it->second;
      } else {
        std::string known;
        size_t listed = 0;
        for (const auto& [n, line] : rack_lines_) {
          if (++listed > 8) {
            known += "|...";
            break;
          }
          known += (known.empty() ? "" : "|") + n;
        }
        r.wrong("rack", "the name of a [[racks]] entry (" + known + ")", quote(*rack));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto c = r.one_of("capacity", capacity_choices, false)) proto.capacity = *c;
    if (auto v = r.integer("cpu_millicores", 0, 100'000'000, true))
      proto.cpu_milli = static_cast<uint64_t>(*v);
    else
      ok = false;
    if (auto v = r.integer("memory_mib", 0, int64_t{1} << 40, true))
      proto.memory_mib = static_cast<uint64_t>(*v);
    else
      ok = false;
    if (auto v = r.real("nic_gbps", 0.0, 100'000.0, false, true)) proto.nic_gbps = *v;
    if (const auto* labels = r.table("labels", false, "a table of string labels"))
      ok = read_labels(*labels, r.key_path("labels"), r.line_of("labels"), proto) && ok;
    if (const auto* gpus = r.table("gpus", false, "a table describing the node's GPUs"))
      ok = read_gpus(*gpus, r.key_path("gpus"), r.line_of("gpus"), proto) && ok;
    // A GPU node without a price would silently cost nothing in the ledger.
    if (auto p = r.price("price_per_gpu_hour_usd", !proto.gpus.empty()))
      proto.price_per_gpu_hour = *p;
    else if (!proto.gpus.empty())
      ok = false;
    r.finish();
    if (!ok) return;

    const std::string name_key = r.key_path(group ? "prefix" : "name");
    const size_t name_line = r.line_of(group ? "prefix" : "name");
    if (total_nodes_ + static_cast<size_t>(*count) > max_config_nodes) {
      r.wrong(group ? "count" : "name",
              "at most " + std::to_string(max_config_nodes) + " nodes in all",
              std::to_string(total_nodes_ + static_cast<size_t>(*count)) +
                  " nodes up to here");
      total_nodes_ = max_config_nodes + 1; // report once
      return;
    }
    total_nodes_ += static_cast<size_t>(*count);
    for (int64_t i = 0; i < *count; ++i) {
      node_spec n = proto;
      n.name = group ? *name + std::to_string(i) : *name;
      if (auto [it, fresh] = node_lines_.emplace(n.name, name_line); !fresh) {
        problems_.at(name_line, name_key,
                     "unique node names (" + quote(n.name) + " is also defined at line " +
                         std::to_string(it->second) + ")",
                     "a duplicate");
        return; // one report per entry is enough
      }
      topo.nodes.push_back(std::move(n));
    }
  }

  bool read_labels(const toml::table& t, const std::string& path, size_t line,
                   node_spec& node) {
    bool ok = true;
    table_reader r{problems_, t, path, line};
    for (auto&& [k, v] : t) {
      if (k.str().empty() || k.str().size() > 63) {
        problems_.at(r.line_of(k.str()), path, "label names of 1 to 63 bytes",
                     quote(k.str()));
        ok = false;
        continue;
      }
      if (auto s = r.text(k.str(), true)) {
        node.node_labels[std::string{k.str()}] = *s;
      } else {
        ok = false;
      }
    }
    return ok;
  }

  bool read_gpus(const toml::table& t, const std::string& path, size_t line,
                 node_spec& node) {
    table_reader r{problems_, t, path, line};
    auto count = r.integer("count", 0, static_cast<int64_t>(max_gpus_per_node), true);
    auto model = r.text("model", true, 64);
    auto memory = r.integer("memory_mib", 1, int64_t{1} << 24, true);
    auto domains =
        r.integer("nvlink_domains", 1, static_cast<int64_t>(max_gpus_per_node), false);
    auto sharing = r.one_of("sharing", sharing_choices, false);
    std::optional<int64_t> replicas;
    if (sharing == gpu_sharing::time_sliced)
      replicas = r.integer("time_slice_replicas", 1, 1000, true);
    r.finish();
    bool ok = count && model && memory;
    if (sharing == gpu_sharing::mig && model && mig_profiles_for(*model) == nullptr) {
      std::string known;
      for (const auto& m : mig_models())
        known += (known.empty() ? "" : "|") + m;
      r.wrong("sharing",
              "whole or time_sliced for model " + quote(*model) + " (MIG needs one of " +
                  known + ")",
              "\"mig\"");
      ok = false;
    }
    uint32_t n_domains = domains ? static_cast<uint32_t>(*domains) : 1;
    if (count && *count > 0 && domains && *count % *domains != 0) {
      r.wrong("nvlink_domains",
              "a divisor of gpus.count (" + std::to_string(*count) + ")",
              std::to_string(*domains));
      ok = false;
    }
    if (!ok) return false;
    const auto n = static_cast<uint32_t>(*count);
    const uint32_t per_domain = std::max<uint32_t>(1, n / n_domains);
    for (uint32_t g = 0; g < n; ++g) {
      gpu_spec gpu;
      gpu.model = *model;
      gpu.memory_mib = static_cast<uint64_t>(*memory);
      gpu.nvlink_domain = g / per_domain;
      gpu.pcie_switch = g / 2;
      gpu.numa_node = g < n / 2 ? 0 : 1;
      gpu.nic_rail = g;
      gpu.sharing = sharing.value_or(gpu_sharing::whole);
      gpu.time_slice_replicas = replicas ? static_cast<uint32_t>(*replicas) : 1;
      node.gpus.push_back(std::move(gpu));
    }
    return true;
  }

  std::optional<cluster_topology> generate(const toml::table& t, size_t line) {
    table_reader r{problems_, t, "generate", line};
    generated_cluster p;
    const auto max_n = static_cast<int64_t>(max_config_nodes);
    const auto max_g = static_cast<int64_t>(max_gpus_per_node);
    auto racks = r.integer("racks", 1, max_n, false);
    auto per_rack = r.integer("nodes_per_rack", 1, max_n, false);
    if (racks) p.racks = static_cast<uint32_t>(*racks);
    if (per_rack) p.nodes_per_rack = static_cast<uint32_t>(*per_rack);
    if (auto v = r.integer("gpus_per_node", 0, max_g, false))
      p.gpus_per_node = static_cast<uint32_t>(*v);
    if (auto v = r.integer("nvlink_domains_per_node", 1, max_g, false))
      p.nvlink_domains_per_node = static_cast<uint32_t>(*v);
    if (auto v = r.text("gpu_model", false, 64)) p.gpu_model = *v;
    if (auto v = r.integer("gpu_memory_mib", 1, int64_t{1} << 24, false))
      p.gpu_memory_mib = static_cast<uint64_t>(*v);
    if (auto v = r.integer("cpu_milli", 0, 100'000'000, false))
      p.cpu_milli = static_cast<uint64_t>(*v);
    if (auto v = r.integer("memory_mib", 0, int64_t{1} << 40, false))
      p.memory_mib = static_cast<uint64_t>(*v);
    if (auto v = r.integer("racks_per_spine", 0, max_n, false))
      p.racks_per_spine = static_cast<uint32_t>(*v);
    if (auto v = r.real("spot_fraction", 0.0, 1.0, false)) p.spot_fraction = *v;
    if (auto v = r.price("on_demand_price", false)) p.on_demand_price = *v;
    if (auto v = r.price("spot_price", false)) p.spot_price = *v;
    if (auto v = r.integer("seed", 0, std::numeric_limits<int64_t>::max(), false))
      p.seed = static_cast<uint64_t>(*v);
    r.finish();
    const uint64_t total = uint64_t{p.racks} * p.nodes_per_rack;
    if (total > max_config_nodes)
      r.wrong("nodes_per_rack",
              "racks * nodes_per_rack of at most " + std::to_string(max_config_nodes),
              std::to_string(p.racks) + " * " + std::to_string(p.nodes_per_rack) + " = " +
                  std::to_string(total));
    if (!problems_.empty()) return std::nullopt;
    return generate_cluster(p);
  }

  problem_list problems_;
  std::map<std::string, size_t, std::less<>> rack_lines_;   // name -> line
  std::map<std::string, uint32_t, std::less<>> rack_index_; // name -> index
  std::map<std::string, size_t, std::less<>> node_lines_;   // name -> line
  size_t total_nodes_ = 0;
};

} // namespace

result<micro_usd> parse_price(std::string_view s) {
  auto bad = [&](std::string_view why) -> result<micro_usd> {
    return error{errc::invalid_argument, quote(s) + ": " + std::string{why}};
  };
  if (s.empty()) return bad("empty price");
  if (s.front() == '-') return bad("negative price");
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0;
  int64_t whole = 0;
  for (; i < s.size() && digit(s[i]); ++i) {
    whole = whole * 10 + (s[i] - '0');
    if (whole > max_price_usd) return bad("price above " + std::to_string(max_price_usd));
  }
  if (i == 0) return bad("expected digits");
  int64_t frac = 0;
  int digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    for (; i < s.size() && digit(s[i]); ++i, ++digits) {
      if (digits == 6) return bad("more than 6 fractional digits");
      frac = frac * 10 + (s[i] - '0');
    }
    if (digits == 0) return bad("expected digits after '.'");
  }
  if (i != s.size()) return bad("unexpected character");
  for (; digits < 6; ++digits)
    frac *= 10;
  return micro_usd{whole * 1'000'000 + frac};
}

result<cluster_topology> load_topology_string(std::string_view toml,
                                              std::string_view source_name) {
  try {
    topology_loader loader{source_name};
    auto doc = parse_document(toml, source_name, loader.problems());
    if (!doc) return loader.problems().to_error();
    auto topo = loader.load(*doc);
    if (!topo) return loader.problems().to_error();
    // Backstop: everything validate() checks is also checked above with a
    // line number, so this only fires if the two drift apart.
    if (auto v = topo->validate(); !v) {
      std::string msg;
      std::string_view rest = v.err().message();
      while (!rest.empty()) {
        auto nl = rest.find('\n');
        if (!msg.empty()) msg += '\n';
        msg += std::string{source_name} + ": " + std::string{rest.substr(0, nl)};
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
      }
      return error{errc::invalid_argument, std::move(msg)};
    }
    return std::move(*topo);
  } catch (const std::exception& e) {
    return error{errc::invalid_argument,
                 std::string{source_name} + ": loading topology failed: " + e.what()};
  }
}

result<cluster_topology> load_topology_file(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st))
    return error{errc::not_found, name + ": no such topology file"};
  if (!std::filesystem::is_regular_file(st))
    return error{errc::invalid_argument, name + ": not a regular file"};
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return error{runtime::errc::io_error, name + ": " + ec.message()};
  if (size > max_file_bytes)
    return error{errc::invalid_argument,
                 name + ": " + std::to_string(size) +
                     " bytes is too large for a topology file (limit " +
                     std::to_string(max_file_bytes) + ")"};
  std::ifstream in{path, std::ios::binary};
  if (!in) return error{runtime::errc::io_error, name + ": cannot open for reading"};
  std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  if (in.bad()) return error{runtime::errc::io_error, name + ": read failed"};
  return load_topology_string(text, name);
}

} // namespace troupe::placement
