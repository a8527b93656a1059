// job_spec <-> JSON. Decoding reads what a user submitted: outside input,
// bounded before parsing (size, depth) and checked field by field.

#include "troupe/actors/job_spec.hpp"

#include "json_input.hpp"
#include "troupe/actors/errc.hpp"

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

namespace troupe::actors {
namespace {

using nlohmann::json;

constexpr size_t max_name_bytes = 63;
constexpr size_t max_label_bytes = 128;
constexpr size_t max_env_name_bytes = 256;
constexpr size_t max_path_bytes = 4096;
constexpr size_t max_key_bytes = 128;
constexpr uint32_t max_gpus = 1024;
constexpr uint64_t max_cpu_milli = uint64_t{1} << 30;
constexpr uint64_t max_memory_mib = uint64_t{1} << 32; // 4 PiB
constexpr int64_t max_priority = 1000000;
constexpr uint32_t max_restarts_limit = 1000000;

struct decode_error {
  std::string what;
};

// -- text helpers -------------------------------------------------------------

/// Optimal string alignment distance (Levenshtein plus transpositions).
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i)
    d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j)
    d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

template <class Range>
std::string did_you_mean(std::string_view word, const Range& candidates) {
  if (word.empty() || word.size() > detail::max_quoted_bytes) return {};
  const size_t limit = std::clamp<size_t>(word.size() / 3, 1, 3);
  std::string_view best;
  size_t best_distance = limit + 1;
  for (std::string_view c : candidates) {
    auto dist = edit_distance(word, c);
    if (dist < best_distance) {
      best_distance = dist;
      best = c;
    }
  }
  return best.empty() ? std::string{} : " (did you mean '" + std::string{best} + "'?)";
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

// -- the reader ---------------------------------------------------------------

/// Reads one JSON object, naming fields by their path in errors and
/// rejecting keys it does not know.
class reader {
public:
  reader(const json& v, std::string path, std::initializer_list<std::string_view> keys)
      : obj_(v), path_(std::move(path)) {
    if (!obj_.is_object())
      throw decode_error{path_ + ": expected an object, got " +
                         detail::describe_json(obj_)};
    for (const auto& [k, _] : obj_.items()) {
      if (std::find(keys.begin(), keys.end(), std::string_view{k}) != keys.end())
        continue;
      throw decode_error{path_ + "." +
                         (k.size() > detail::max_quoted_bytes || has_control(k)
                              ? detail::quote_for_error(k)
                              : k) +
                         ": unknown key" + did_you_mean(k, keys)};
    }
  }

  std::string at(std::string_view key) const { return path_ + "." + std::string{key}; }

  [[noreturn]] static void fail(const std::string& where, std::string_view expected,
                                const json& got) {
    throw decode_error{where + ": expected " + std::string{expected} + ", got " +
                       detail::describe_json(got)};
  }

  const json* find(std::string_view key) const {
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }

  const json& field(std::string_view key) const {
    if (auto* v = find(key)) return *v;
    throw decode_error{at(key) + ": missing"};
  }

private:
  const json& obj_;
  std::string path_;
};

int64_t check_int(const json& v, const std::string& where, int64_t min, int64_t max) {
  std::string expected =
      "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!v.is_number_integer()) reader::fail(where, expected, v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(max))
    reader::fail(where, expected, v);
  auto x = v.get<int64_t>();
  if (x < min || x > max) reader::fail(where, expected, v);
  return x;
}

std::string check_string(const json& v, const std::string& where, size_t max_bytes,
                         bool allow_empty, bool allow_control = false) {
  std::string expected = std::string{allow_empty ? "a string" : "a non-empty string"} +
                         " of at most " + std::to_string(max_bytes) + " bytes" +
                         (allow_control ? "" : " without control characters");
  if (!v.is_string()) reader::fail(where, expected, v);
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > max_bytes || (s.empty() && !allow_empty))
    reader::fail(where, expected, v);
  if (!allow_control && has_control(s)) reader::fail(where, expected, v);
  if (s.find('\0') != std::string::npos) reader::fail(where, expected + ", no NUL", v);
  return s;
}

bool check_bool(const json& v, const std::string& where) {
  if (!v.is_boolean()) reader::fail(where, "true or false", v);
  return v.get<bool>();
}

duration check_duration(const json& v, const std::string& where, duration min,
                        duration max) {
  std::string expected =
      "a duration in [" + format_duration(min) + ", " + format_duration(max) +
      "] such as \"2h30m\", \"90s\" or \"500ms\", or an integer of seconds";
  duration d{0};
  if (v.is_number_integer()) {
    if (!v.is_number_unsigned() && v.get<int64_t>() < 0) reader::fail(where, expected, v);
    auto secs = v.get<uint64_t>();
    if (secs > static_cast<uint64_t>(
                   std::chrono::duration_cast<std::chrono::seconds>(max).count()))
      reader::fail(where, expected, v);
    d = std::chrono::seconds{secs};
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    auto parsed = s.size() > 64 ? std::nullopt : parse_duration(s);
    if (!parsed) reader::fail(where, expected, v);
    d = *parsed;
  } else {
    reader::fail(where, expected, v);
  }
  if (d < min || d > max) reader::fail(where, expected, v);
  return d;
}

template <class Enum, class Parse>
Enum check_enum(const json& v, const std::string& where,
                std::initializer_list<std::string_view> names, Parse parse) {
  std::string expected = "one of ";
  for (auto n : names)
    expected += (expected.size() > 7 ? "|" : "") + std::string{n};
  if (!v.is_string()) reader::fail(where, expected, v);
  const auto& s = v.get_ref<const std::string&>();
  if (auto e = parse(s)) return *e;
  throw decode_error{where + ": expected " + expected + ", got " +
                     detail::quote_for_error(s) + did_you_mean(s, names)};
}

std::map<std::string, std::string, std::less<>>
check_string_map(const json& v, const std::string& where, size_t max_entries,
                 size_t max_key, size_t max_value, bool env_names, bool values_control) {
  if (!v.is_object() || v.size() > max_entries)
    reader::fail(where,
                 "an object of at most " + std::to_string(max_entries) + " entries", v);
  std::map<std::string, std::string, std::less<>> out;
  for (const auto& [k, val] : v.items()) {
    bool ok = !k.empty() && k.size() <= max_key && !has_control(k);
    if (ok && env_names) {
      ok = !(k[0] >= '0' && k[0] <= '9');
      for (char c : k)
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_');
    }
    if (!ok)
      throw decode_error{where + ": key " + detail::quote_for_error(k) + ": expected " +
                         (env_names ? "a variable name [A-Za-z_][A-Za-z0-9_]*"
                                    : "a non-empty key without control characters") +
                         " of at most " + std::to_string(max_key) + " bytes"};
    out.emplace(k, check_string(val, where + "." + k, max_value, true, values_control));
  }
  return out;
}

// -- the sections -------------------------------------------------------------

replica_resources decode_resources(const json& v, const std::string& path) {
  reader r{v, path, {"gpus", "gpu_model", "cpu_milli", "memory_mib"}};
  replica_resources out;
  if (auto* x = r.find("gpus"))
    out.gpus = static_cast<uint32_t>(check_int(*x, r.at("gpus"), 0, max_gpus));
  if (auto* x = r.find("gpu_model"))
    out.gpu_model = check_string(*x, r.at("gpu_model"), max_label_bytes, true);
  if (auto* x = r.find("cpu_milli"))
    out.cpu_milli =
        static_cast<uint64_t>(check_int(*x, r.at("cpu_milli"), 0, max_cpu_milli));
  if (auto* x = r.find("memory_mib"))
    out.memory_mib =
        static_cast<uint64_t>(check_int(*x, r.at("memory_mib"), 0, max_memory_mib));
  return out;
}

job_labels decode_labels(const json& v, const std::string& path,
                         const job_spec_limits& lim) {
  reader r{v, path, {"tenant", "team", "project", "env", "custom"}};
  job_labels out;
  if (auto* x = r.find("tenant"))
    out.tenant = check_string(*x, r.at("tenant"), max_label_bytes, true);
  if (auto* x = r.find("team"))
    out.team = check_string(*x, r.at("team"), max_label_bytes, true);
  if (auto* x = r.find("project"))
    out.project = check_string(*x, r.at("project"), max_label_bytes, true);
  if (auto* x = r.find("env"))
    out.env = check_string(*x, r.at("env"), max_label_bytes, true);
  if (auto* x = r.find("custom"))
    out.custom = check_string_map(*x, r.at("custom"), lim.max_labels, max_key_bytes,
                                  max_label_bytes, false, false);
  return out;
}

checkpoint_hook decode_checkpoint(const json& v, const std::string& path) {
  reader r{v, path, {"signal", "timeout", "interval"}};
  checkpoint_hook out;
  if (auto* x = r.find("signal")) {
    const std::string where = r.at("signal");
    std::string expected =
        "a signal name: "
        "SIGHUP|SIGINT|SIGQUIT|SIGUSR1|SIGUSR2|SIGTERM|SIGCONT|SIGWINCH|SIGPWR";
    if (!x->is_string()) reader::fail(where, expected, *x);
    auto sig = parse_signal_name(x->get_ref<const std::string&>());
    if (!sig) reader::fail(where, expected, *x);
    out.signal = *sig;
  } else {
    out.signal = SIGUSR1;
  }
  if (auto* x = r.find("timeout"))
    out.timeout = check_duration(*x, r.at("timeout"), std::chrono::milliseconds{1},
                                 std::chrono::hours{24});
  if (auto* x = r.find("interval"))
    out.interval = check_duration(*x, r.at("interval"), std::chrono::seconds{1},
                                  std::chrono::hours{24 * 7});
  return out;
}

restart_policy decode_restart(const json& v, const std::string& path) {
  reader r{v, path, {"policy", "max_restarts", "backoff"}};
  restart_policy out;
  if (auto* x = r.find("policy"))
    out.mode = check_enum<restart_mode>(
        *x, r.at("policy"), {"never", "on-failure", "always"}, parse_restart_mode);
  if (auto* x = r.find("max_restarts")) {
    if (out.mode == restart_mode::never)
      throw decode_error{r.at("max_restarts") + ": not allowed with policy \"never\""};
    out.max_restarts =
        static_cast<uint32_t>(check_int(*x, r.at("max_restarts"), 0, max_restarts_limit));
  } else if (out.mode == restart_mode::on_failure) {
    out.max_restarts = 3;
  }
  if (auto* x = r.find("backoff")) {
    reader b{*x, r.at("backoff"), {"initial", "max", "multiplier", "reset_after"}};
    auto& bo = out.backoff;
    if (auto* y = b.find("initial"))
      bo.initial =
          check_duration(*y, b.at("initial"), duration{0}, std::chrono::hours{24});
    if (auto* y = b.find("max"))
      bo.max = check_duration(*y, b.at("max"), duration{0}, std::chrono::hours{24});
    if (auto* y = b.find("multiplier"))
      bo.multiplier = static_cast<uint32_t>(check_int(*y, b.at("multiplier"), 1, 16));
    if (auto* y = b.find("reset_after"))
      bo.reset_after = check_duration(*y, b.at("reset_after"), duration{0},
                                      std::chrono::hours{24 * 30});
    if (bo.max < bo.initial)
      throw decode_error{b.at("max") + ": " + format_duration(bo.max) +
                         " is less than initial " + format_duration(bo.initial)};
  }
  return out;
}

job_spec decode(const json& doc, const job_spec_limits& lim) {
  reader r{doc,
           "job",
           {"name", "command", "replicas", "min_replicas", "env", "working_dir",
            "resources", "class", "priority", "preemptible", "spot_tolerant", "labels",
            "time_limit", "checkpoint", "restart", "idempotency_key"}};
  job_spec s;
  {
    const std::string where = r.at("name");
    const json& v = r.field("name");
    std::string expected =
        "a name of 1 to " + std::to_string(max_name_bytes) + " characters [A-Za-z0-9._-]";
    if (!v.is_string()) reader::fail(where, expected, v);
    const auto& n = v.get_ref<const std::string&>();
    if (n.empty() || n.size() > max_name_bytes ||
        !std::all_of(n.begin(), n.end(), is_name_char))
      reader::fail(where, expected, v);
    s.name = n;
  }
  {
    const std::string where = r.at("command");
    const json& v = r.field("command");
    if (v.is_string()) {
      s.shell = true;
      s.command.push_back(check_string(v, where, lim.max_arg_bytes, false, true));
      if (s.command[0].find_first_not_of(" \t\n") == std::string::npos)
        reader::fail(where, "a non-blank shell command", v);
    } else if (v.is_array()) {
      if (v.empty() || v.size() > lim.max_args)
        reader::fail(where,
                     "a list of 1 to " + std::to_string(lim.max_args) + " arguments", v);
      for (size_t i = 0; i < v.size(); ++i)
        s.command.push_back(check_string(v[i], where + "[" + std::to_string(i) + "]",
                                         lim.max_arg_bytes, i != 0, true));
    } else {
      reader::fail(where, "a list of arguments or a shell command string", v);
    }
  }
  if (auto* x = r.find("replicas"))
    s.replicas =
        static_cast<uint32_t>(check_int(*x, r.at("replicas"), 1, lim.max_replicas));
  if (auto* x = r.find("min_replicas"))
    s.min_replicas =
        static_cast<uint32_t>(check_int(*x, r.at("min_replicas"), 1, s.replicas));
  if (auto* x = r.find("env"))
    s.env = check_string_map(*x, r.at("env"), lim.max_env, max_env_name_bytes,
                             lim.max_env_value_bytes, true, true);
  if (auto* x = r.find("working_dir")) {
    s.working_dir = check_string(*x, r.at("working_dir"), max_path_bytes, true);
    if (!s.working_dir.empty() && s.working_dir[0] != '/')
      reader::fail(r.at("working_dir"), "an absolute path", *x);
  }
  if (auto* x = r.find("resources"))
    s.resources = decode_resources(*x, r.at("resources"));
  if (auto* x = r.find("class"))
    s.kind = check_enum<job_class>(
        *x, r.at("class"), {"training", "serving", "interactive", "eval", "batch"},
        parse_job_class);
  if (auto* x = r.find("priority"))
    s.priority = static_cast<int32_t>(
        check_int(*x, r.at("priority"), -max_priority, max_priority));
  if (auto* x = r.find("preemptible"))
    s.preemptible = check_bool(*x, r.at("preemptible"));
  if (auto* x = r.find("spot_tolerant"))
    s.spot_tolerant = check_bool(*x, r.at("spot_tolerant"));
  if (auto* x = r.find("labels")) s.labels = decode_labels(*x, r.at("labels"), lim);
  if (auto* x = r.find("time_limit"))
    s.time_limit = check_duration(*x, r.at("time_limit"), std::chrono::seconds{1},
                                  std::chrono::hours{24 * 365});
  if (auto* x = r.find("checkpoint"))
    s.checkpoint = decode_checkpoint(*x, r.at("checkpoint"));
  if (auto* x = r.find("restart")) s.restart = decode_restart(*x, r.at("restart"));
  if (auto* x = r.find("idempotency_key")) {
    s.idempotency_key = check_string(*x, r.at("idempotency_key"), max_label_bytes, false);
  }
  return s;
}

struct signal_entry {
  std::string_view name;
  int number;
};
const std::array<signal_entry, 9>& signal_table() {
  static const std::array<signal_entry, 9> table = {{{"SIGHUP", SIGHUP},
                                                     {"SIGINT", SIGINT},
                                                     {"SIGQUIT", SIGQUIT},
                                                     {"SIGUSR1", SIGUSR1},
                                                     {"SIGUSR2", SIGUSR2},
                                                     {"SIGTERM", SIGTERM},
                                                     {"SIGCONT", SIGCONT},
                                                     {"SIGWINCH", SIGWINCH},
                                                     {"SIGPWR", SIGPWR}}};
  return table;
}

} // namespace

// -- enums --------------------------------------------------------------------

const char* to_string(job_class c) noexcept {
  switch (c) {
  case job_class::training:
    return "training";
  case job_class::serving:
    return "serving";
  case job_class::interactive:
    return "interactive";
  case job_class::eval:
    return "eval";
  case job_class::batch:
    return "batch";
  }
  return "batch";
}

std::optional<job_class> parse_job_class(std::string_view s) noexcept {
  for (auto c : {job_class::training, job_class::serving, job_class::interactive,
                 job_class::eval, job_class::batch})
    if (s == to_string(c)) return c;
  return std::nullopt;
}

// -- durations and signals ----------------------------------------------------

std::optional<duration> parse_duration(std::string_view s) noexcept {
  using namespace std::chrono;
  struct unit {
    std::string_view name;
    int64_t ms;
  };
  static constexpr std::array<unit, 5> units = {
      {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}}};
  if (s.empty()) return std::nullopt;
  constexpr int64_t max_ms =
      int64_t{9000000000000000} / 1000000 * 1000; // ~285 years in ns
  int64_t total_ms = 0;
  size_t next_unit = 0; // units must come in descending order, each once
  size_t i = 0;
  while (i < s.size()) {
    int64_t value = 0;
    size_t digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (++digits > 15) return std::nullopt;
      value = value * 10 + (s[i] - '0');
      ++i;
    }
    if (digits == 0) return std::nullopt;
    size_t end = i;
    while (end < s.size() && s[end] >= 'a' && s[end] <= 'z')
      ++end;
    auto name = s.substr(i, end - i);
    size_t k = next_unit;
    while (k < units.size() && units[k].name != name)
      ++k;
    if (k == units.size()) return std::nullopt;
    next_unit = k + 1;
    if (value > max_ms / units[k].ms) return std::nullopt;
    total_ms += value * units[k].ms;
    if (total_ms > max_ms) return std::nullopt;
    i = end;
  }
  return duration_cast<duration>(milliseconds{total_ms});
}

std::string format_duration(duration d) {
  using namespace std::chrono;
  int64_t ms = duration_cast<milliseconds>(d).count();
  if (ms <= 0) return "0s";
  std::string out;
  for (auto [name, size] : {std::pair<const char*, int64_t>{"d", 86400000},
                            {"h", 3600000},
                            {"m", 60000},
                            {"s", 1000},
                            {"ms", 1}}) {
    if (ms >= size) {
      out += std::to_string(ms / size) + name;
      ms %= size;
    }
  }
  return out;
}

std::optional<int> parse_signal_name(std::string_view s) noexcept {
  for (const auto& e : signal_table())
    if (s == e.name || s == e.name.substr(3)) return e.number;
  return std::nullopt;
}

std::string signal_name(int signal) {
  for (const auto& e : signal_table())
    if (e.number == signal) return std::string{e.name};
  if (const char* abbrev = sigabbrev_np(signal)) return "SIG" + std::string{abbrev};
  return "SIG" + std::to_string(signal);
}

// -- the spec -----------------------------------------------------------------

std::vector<std::string> job_spec::argv() const {
  if (!shell) return command;
  return {"/bin/sh", "-c", command.empty() ? std::string{} : command.front()};
}

result<job_spec> decode_job_spec(std::string_view text, const job_spec_limits& limits) {
  if (text.size() > limits.max_bytes)
    return error{errc::invalid_argument,
                 "job: document of " + std::to_string(text.size()) +
                     " bytes is over the limit of " + std::to_string(limits.max_bytes)};
  if (detail::json_nesting_depth(text, limits.max_depth) > limits.max_depth)
    return error{errc::invalid_argument, "job: nested deeper than " +
                                             std::to_string(limits.max_depth) +
                                             " levels"};
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return error{errc::invalid_argument, "job: not valid JSON"};
  try {
    return decode(doc, limits);
  } catch (const decode_error& e) {
    return error{errc::invalid_argument, e.what};
  } catch (const json::exception& e) {
    return error{errc::invalid_argument, std::string{"job: "} + e.what()};
  }
}

std::string encode_job_spec(const job_spec& s) {
  json j;
  j["name"] = s.name;
  j["command"] = s.shell ? json(s.command.empty() ? std::string{} : s.command.front())
                         : json(s.command);
  j["replicas"] = s.replicas;
  if (s.min_replicas) j["min_replicas"] = *s.min_replicas;
  j["env"] = json::object();
  for (const auto& [k, v] : s.env)
    j["env"][k] = v;
  if (!s.working_dir.empty()) j["working_dir"] = s.working_dir;
  j["resources"] = {{"gpus", s.resources.gpus},
                    {"cpu_milli", s.resources.cpu_milli},
                    {"memory_mib", s.resources.memory_mib}};
  if (!s.resources.gpu_model.empty()) j["resources"]["gpu_model"] = s.resources.gpu_model;
  j["class"] = to_string(s.kind);
  j["priority"] = s.priority;
  j["preemptible"] = s.preemptible;
  j["spot_tolerant"] = s.spot_tolerant;
  json labels = {{"tenant", s.labels.tenant},
                 {"team", s.labels.team},
                 {"project", s.labels.project},
                 {"env", s.labels.env}};
  labels["custom"] = json::object();
  for (const auto& [k, v] : s.labels.custom)
    labels["custom"][k] = v;
  j["labels"] = std::move(labels);
  if (s.time_limit > duration{0}) j["time_limit"] = format_duration(s.time_limit);
  if (s.checkpoint) {
    j["checkpoint"] = {{"signal", signal_name(s.checkpoint->signal)},
                       {"timeout", format_duration(s.checkpoint->timeout)}};
    if (s.checkpoint->interval > duration{0})
      j["checkpoint"]["interval"] = format_duration(s.checkpoint->interval);
  }
  json restart = {{"policy", to_string(s.restart.mode)}};
  if (s.restart.mode != restart_mode::never)
    restart["max_restarts"] = s.restart.max_restarts;
  restart["backoff"] = {{"initial", format_duration(s.restart.backoff.initial)},
                        {"max", format_duration(s.restart.backoff.max)},
                        {"multiplier", s.restart.backoff.multiplier},
                        {"reset_after", format_duration(s.restart.backoff.reset_after)}};
  j["restart"] = std::move(restart);
  if (!s.idempotency_key.empty()) j["idempotency_key"] = s.idempotency_key;
  // Replace invalid UTF-8 (only a spec built in code can hold it) rather than throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// -- placement ----------------------------------------------------------------

placement::bundle to_placement_bundle(const job_spec& spec) {
  placement::bundle b;
  b.gpus = spec.resources.gpus;
  if (!spec.resources.gpu_model.empty()) b.gpu_models.push_back(spec.resources.gpu_model);
  b.cpu_milli = spec.resources.cpu_milli;
  b.memory_mib = spec.resources.memory_mib;
  // A replica that asks for nothing still takes a little CPU, so placement
  // counts it (Kubernetes' 100m default request).
  if (!b.wants_gpu() && b.cpu_milli == 0 && b.memory_mib == 0) b.cpu_milli = 100;
  return b;
}

placement::gang_request to_placement_request(const job_spec& spec,
                                             std::optional<uint32_t> replica) {
  placement::gang_request g;
  if (!spec.labels.tenant.empty()) g.tenant = spec.labels.tenant;
  for (const auto& [k, v] : spec.labels.custom)
    g.cost_labels[k] = v;
  if (!spec.labels.team.empty()) g.cost_labels["team"] = spec.labels.team;
  if (!spec.labels.project.empty()) g.cost_labels["project"] = spec.labels.project;
  if (!spec.labels.env.empty()) g.cost_labels["env"] = spec.labels.env;
  g.cost_labels["job"] = spec.name;
  g.cost_labels["class"] = to_string(spec.kind);
  uint32_t count = replica ? 1 : spec.replicas;
  g.bundles.assign(count, to_placement_bundle(spec));
  g.placement_strategy = placement::strategy::pack;
  g.priority = spec.priority;
  g.preemptible = spec.preemptible;
  g.spot_tolerant = spec.spot_tolerant;
  g.cheapest_first = spec.spot_tolerant; // spot work goes to the cheapest nodes first
  return g;
}

} // namespace troupe::actors
