#pragma once
/// Node configuration of the embedded runtime and the schema binder that
/// loads it.
///
/// A configuration is plain data (`node_config`). Its TOML layout, defaults,
/// limits and docs live in a `config_schema`, which binds each `[section] key`
/// to a member of the target struct. Loading parses TOML, validates every key
/// against the schema (reporting all problems, each with file:line and the
/// dotted key), then applies `TROUPE_<SECTION>_<KEY>` environment overrides
/// validated by the same rules. Other modules (placement, transport, finops)
/// declare their sections with their own `config_schema` and load them from
/// the same document through a `config_binder`.
///
/// Nothing here reads the process environment or the clock: the environment
/// is passed in as an `env_map`; `snapshot_environment()` is for mains.

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/result.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace troupe {

// -- environment --------------------------------------------------------------

/// Environment variables, name to value. Only `TROUPE_*` names matter.
using env_map = std::map<std::string, std::string, std::less<>>;

/// Copies the `TROUPE_*` variables of the running process. For mains only;
/// library code takes an `env_map` so tests can pass their own.
[[nodiscard]] env_map snapshot_environment();

// -- schema -------------------------------------------------------------------

/// What a field accepts in TOML and in the environment.
enum class field_kind {
  string,      ///< TOML string; env: taken verbatim (must be UTF-8)
  boolean,     ///< TOML boolean; env: true, false, 1 or 0
  integer,     ///< TOML integer within [min, max] (ports are 0..65535)
  real,        ///< TOML float or integer within [min, max]; never NaN
  duration,    ///< string such as "250ms", "5s", "2m" or "1h30m"
  one_of,      ///< string from a fixed list, case-sensitive
  string_list, ///< TOML array of strings; env: comma-separated
};

/// A validated field value on its way between TOML or the environment and
/// the target struct. Integers travel as int64, enums as their names.
using field_value = std::variant<bool, std::int64_t, double, std::string,
                                 std::chrono::nanoseconds, std::vector<std::string>>;

/// Inclusive bounds of an integer field.
struct int_range {
  std::int64_t min = std::numeric_limits<std::int64_t>::min();
  std::int64_t max = std::numeric_limits<std::int64_t>::max();
};

/// Inclusive bounds of a real field.
struct real_range {
  double min = -std::numeric_limits<double>::max();
  double max = std::numeric_limits<double>::max();
};

/// Inclusive bounds of a duration field. Durations are never negative.
struct duration_range {
  std::chrono::nanoseconds min = std::chrono::nanoseconds::zero();
  std::chrono::nanoseconds max = std::chrono::nanoseconds::max();
};

/// Type-erased declaration of one field: what `config_schema` builds and the
/// loader reads. `store` and `fetch` take a pointer to the schema's target
/// struct; they are only ever called with one.
struct field_decl {
  std::string section; ///< dotted section name, e.g. "metrics"
  std::string key;     ///< key inside the section, e.g. "port"
  std::string doc;     ///< one or two sentences for the example file
  field_kind kind = field_kind::string;
  int_range ints;                   ///< integer only
  real_range reals;                 ///< real only
  duration_range durations;         ///< duration only
  std::vector<std::string> choices; ///< one_of only
  field_value default_value;
  std::function<void(void*, const field_value&)> store;
  std::function<field_value(const void*)> fetch;

  /// "metrics.port".
  [[nodiscard]] std::string dotted_key() const;
  /// "TROUPE_METRICS_PORT": upper case, dots to underscores.
  [[nodiscard]] std::string env_name() const;
};

/// A section header and the sentence that documents it.
struct section_decl {
  std::string name;
  std::string doc;
};

/// Type-erased schema: sections and fields in declaration order plus
/// whole-config checks that run after all fields are applied.
struct schema_decl {
  std::vector<section_decl> sections;
  std::vector<field_decl> fields;
  /// Each returns a message when the (fully loaded) target is inconsistent.
  std::vector<std::function<std::optional<std::string>(const void*)>> checks;
};

namespace config_detail {

/// Adds a section; aborts on a malformed or duplicate name (a bug).
void add_section(schema_decl& schema, section_decl section);
/// Adds a field; aborts on a malformed or duplicate key or a default that
/// breaks its own constraints (a bug).
void add_field(schema_decl& schema, field_decl field);
/// Renders the target as commented TOML.
[[nodiscard]] std::string render_toml(const schema_decl& schema, const void* target);

} // namespace config_detail

/// Declares how one config struct maps to TOML sections and keys.
///
/// ```cpp
/// config_schema<my_config> s;
/// s.section("metrics", &my_config::metrics, "Prometheus endpoint.")
///   .boolean("enabled", &metrics_section::enabled, true, "Serve metrics.")
///   .port("port", &metrics_section::port, 0, "TCP port; 0 picks one.");
/// ```
///
/// Declaration mistakes (bad names, a default outside its own range) are
/// bugs and abort at declaration time. A schema is immutable once built and
/// cheap to copy.
template <class Config> class config_schema {
public:
  /// Declares the fields of one section, bound to `Config::*member`.
  /// Returned by `section()`; valid while its schema is alive.
  template <class Section> class section_ref {
  public:
    section_ref(config_schema* schema, Section Config::*member, std::string name)
        : schema_(schema), member_(member), name_(std::move(name)) {}

    /// A free-form string.
    section_ref& string(std::string key, std::string Section::*field, std::string def,
                        std::string doc) {
      return add(
          std::move(key), field_kind::string, field, field_value{std::move(def)},
          std::move(doc), [](const field_value& v) { return std::get<std::string>(v); },
          [](const std::string& s) { return field_value{s}; });
    }

    /// true or false.
    section_ref& boolean(std::string key, bool Section::*field, bool def,
                         std::string doc) {
      return add(
          std::move(key), field_kind::boolean, field, field_value{def}, std::move(doc),
          [](const field_value& v) { return std::get<bool>(v); },
          [](bool b) { return field_value{b}; });
    }

    /// An integer in `range`, stored in any integral member type that can
    /// hold the whole range.
    template <class Int>
    section_ref& integer(std::string key, Int Section::*field,
                         std::type_identity_t<Int> def, int_range range,
                         std::string doc) {
      static_assert(std::is_integral_v<Int> && !std::is_same_v<Int, bool>,
                    "integer fields bind to integral members");
      TROUPE_ASSERT(std::in_range<Int>(range.min) && std::in_range<Int>(range.max),
                    "integer range does not fit the member type");
      TROUPE_ASSERT(std::in_range<std::int64_t>(def),
                    "integer default does not fit int64");
      return add(
          std::move(key), field_kind::integer, field,
          field_value{static_cast<std::int64_t>(def)}, std::move(doc),
          [](const field_value& v) {
            return static_cast<Int>(std::get<std::int64_t>(v));
          },
          [](Int i) { return field_value{static_cast<std::int64_t>(i)}; },
          [range](field_decl& f) { f.ints = range; });
    }

    /// A TCP/UDP port, 0..65535.
    section_ref& port(std::string key, std::uint16_t Section::*field, std::uint16_t def,
                      std::string doc) {
      return integer(std::move(key), field, def, int_range{0, 65535}, std::move(doc));
    }

    /// A finite real number in `range`.
    section_ref& real(std::string key, double Section::*field, double def,
                      real_range range, std::string doc) {
      return add(
          std::move(key), field_kind::real, field, field_value{def}, std::move(doc),
          [](const field_value& v) { return std::get<double>(v); },
          [](double d) { return field_value{d}; },
          [range](field_decl& f) { f.reals = range; });
    }

    /// A non-negative duration written with units ("250ms", "5s", "1h30m").
    section_ref& duration(std::string key, std::chrono::nanoseconds Section::*field,
                          std::chrono::nanoseconds def, std::string doc) {
      return duration(std::move(key), field, def, duration_range{}, std::move(doc));
    }

    /// A duration in `range`.
    section_ref& duration(std::string key, std::chrono::nanoseconds Section::*field,
                          std::chrono::nanoseconds def, duration_range range,
                          std::string doc) {
      return add(
          std::move(key), field_kind::duration, field, field_value{def}, std::move(doc),
          [](const field_value& v) { return std::get<std::chrono::nanoseconds>(v); },
          [](std::chrono::nanoseconds d) { return field_value{d}; },
          [range](field_decl& f) { f.durations = range; });
    }

    /// One name out of `choices`, stored as the matching enum value.
    template <class Enum>
    section_ref&
    one_of(std::string key, Enum Section::*field, std::type_identity_t<Enum> def,
           std::vector<std::pair<std::string, Enum>> choices, std::string doc) {
      std::vector<std::string> names;
      std::string def_name;
      for (const auto& [name, value] : choices) {
        names.push_back(name);
        if (value == def) def_name = name;
      }
      TROUPE_ASSERT(!def_name.empty(), "enum default is not among the choices");
      auto to_enum = [choices](const field_value& v) {
        const auto& name = std::get<std::string>(v);
        for (const auto& [n, value] : choices)
          if (n == name) return value;
        TROUPE_ASSERT(false, "validated enum name has no value");
        return Enum{};
      };
      auto to_name = [choices](Enum e) {
        for (const auto& [n, value] : choices)
          if (value == e) return field_value{n};
        return field_value{std::string{"<invalid>"}};
      };
      return add(std::move(key), field_kind::one_of, field, field_value{def_name},
                 std::move(doc), std::move(to_enum), std::move(to_name),
                 [names = std::move(names)](field_decl& f) { f.choices = names; });
    }

    /// One name out of `choices`, stored as the string itself.
    section_ref& one_of(std::string key, std::string Section::*field, std::string def,
                        std::vector<std::string> choices, std::string doc) {
      return add(
          std::move(key), field_kind::one_of, field, field_value{std::move(def)},
          std::move(doc), [](const field_value& v) { return std::get<std::string>(v); },
          [](const std::string& s) { return field_value{s}; },
          [choices = std::move(choices)](field_decl& f) { f.choices = choices; });
    }

    /// A list of strings.
    section_ref& string_list(std::string key, std::vector<std::string> Section::*field,
                             std::vector<std::string> def, std::string doc) {
      return add(
          std::move(key), field_kind::string_list, field, field_value{std::move(def)},
          std::move(doc),
          [](const field_value& v) { return std::get<std::vector<std::string>>(v); },
          [](const std::vector<std::string>& l) { return field_value{l}; });
    }

  private:
    template <class T, class ToMember, class FromMember,
              class Constrain = void (*)(field_decl&)>
    section_ref& add(
        std::string key, field_kind kind, T Section::*field, field_value def,
        std::string doc, ToMember to_member, FromMember from_member,
        Constrain constrain = [](field_decl&) {}) {
      field_decl f;
      f.section = name_;
      f.key = std::move(key);
      f.doc = std::move(doc);
      f.kind = kind;
      f.default_value = std::move(def);
      constrain(f);
      auto outer = member_;
      f.store = [outer, field, to_member](void* target, const field_value& v) {
        (static_cast<Config*>(target)->*outer).*field = to_member(v);
      };
      f.fetch = [outer, field, from_member](const void* target) {
        return from_member((static_cast<const Config*>(target)->*outer).*field);
      };
      config_detail::add_field(schema_->decl_, std::move(f));
      return *this;
    }

    config_schema* schema_;
    Section Config::*member_;
    std::string name_;
  };

  /// Declares section `name` (dotted for nested tables, e.g. "transport.ucx")
  /// bound to `member`; add its fields through the returned reference.
  template <class Section>
  section_ref<Section> section(std::string name, Section Config::*member,
                               std::string doc) {
    config_detail::add_section(decl_, section_decl{name, std::move(doc)});
    return section_ref<Section>{this, member, std::move(name)};
  }

  /// Adds a whole-config consistency check, run after all fields (file and
  /// environment) are applied. `check` returns a message such as
  /// "supervision: backoff_initial (10s) exceeds backoff_max (5s)" when the
  /// config is inconsistent, nothing when it is fine.
  void check(std::function<std::optional<std::string>(const Config&)> fn) {
    decl_.checks.push_back([fn = std::move(fn)](const void* target) {
      return fn(*static_cast<const Config*>(target));
    });
  }

  /// A value-initialised Config with every declared default applied.
  [[nodiscard]] Config defaults() const {
    Config out{};
    for (const auto& f : decl_.fields)
      f.store(&out, f.default_value);
    return out;
  }

  /// Defaults, then `toml` (named `source_name` in errors), then `env`.
  /// Fails with invalid_argument listing every problem found.
  [[nodiscard]] result<Config> load_string(std::string_view toml,
                                           std::string_view source_name,
                                           const env_map& env) const;

  /// Like load_string, reading `path`. Fails with not_found or io_error
  /// when the file cannot be read.
  [[nodiscard]] result<Config> load_file(const std::filesystem::path& path,
                                         const env_map& env) const;

  /// Renders `config` as TOML with each key documented; load_string reads
  /// it back to an equal config.
  [[nodiscard]] std::string to_toml(const Config& config) const {
    return config_detail::render_toml(decl_, &config);
  }

  /// The declarations, for tools that list or document settings.
  [[nodiscard]] const schema_decl& decl() const noexcept { return decl_; }

private:
  schema_decl decl_;
};

/// Loads several schemas, each bound to its own target, from one TOML
/// document and one environment. Keys are checked against the union of all
/// bound schemas, so modules can share one file without tripping each
/// other's unknown-key errors.
///
/// Schemas and targets are borrowed: they must outlive the binder. Targets
/// should hold their defaults before loading; on error they hold an
/// unspecified mix of old and new values (load into scratch copies).
class config_binder {
public:
  /// Binds `schema` to `target`. Two bound schemas declaring the same
  /// section is a bug and aborts.
  template <class Config>
  config_binder& bind(const config_schema<Config>& schema, Config& target) {
    return bind_erased(schema.decl(), &target);
  }

  /// Type-erased bind; `target` must be the struct `schema` was built for.
  config_binder& bind_erased(const schema_decl& schema, void* target);

  /// Validates and applies `toml` (named `source_name` in errors), then the
  /// `TROUPE_*` variables of `env`. Fails with invalid_argument whose message
  /// lists every problem on its own line: syntax errors as
  /// "file:line:column: ...", others as "file:line: section.key: ..." or
  /// "env TROUPE_SECTION_KEY: ...". Never throws.
  [[nodiscard]] result<void>
  load_string(std::string_view toml, std::string_view source_name, const env_map& env);

  /// Like load_string, reading `path`; fails with not_found or io_error when
  /// it cannot be read.
  [[nodiscard]] result<void> load_file(const std::filesystem::path& path,
                                       const env_map& env);

private:
  struct binding {
    const schema_decl* schema;
    void* target;
  };
  std::vector<binding> bindings_;
};

template <class Config>
result<Config> config_schema<Config>::load_string(std::string_view toml,
                                                  std::string_view source_name,
                                                  const env_map& env) const {
  Config out = defaults();
  config_binder binder;
  binder.bind(*this, out);
  if (auto r = binder.load_string(toml, source_name, env); !r) return std::move(r).err();
  return out;
}

template <class Config>
result<Config> config_schema<Config>::load_file(const std::filesystem::path& path,
                                                const env_map& env) const {
  Config out = defaults();
  config_binder binder;
  binder.bind(*this, out);
  if (auto r = binder.load_file(path, env); !r) return std::move(r).err();
  return out;
}

// -- node configuration -------------------------------------------------------

/// CAF scheduler policy.
enum class scheduler_policy { sharing, stealing, testing };

/// Minimum log severity; `off` disables logging.
enum class log_level { trace, debug, info, warn, error, off };

/// "sharing", "stealing", "testing".
[[nodiscard]] std::string_view to_string(scheduler_policy p) noexcept;
/// "trace", "debug", "info", "warn", "error", "off".
[[nodiscard]] std::string_view to_string(log_level l) noexcept;

/// [node]: identity of this process.
struct node_section {
  std::string name = "troupe-local";
  std::string tenant = "default";
  bool operator==(const node_section&) const = default;
};

/// [scheduler]: CAF actor scheduler.
struct scheduler_section {
  std::uint32_t threads = 0; ///< 0 = CAF's default (hardware concurrency)
  scheduler_policy policy = scheduler_policy::stealing;
  bool busy_poll = false; ///< later caf.work-stealing.moderate-poll-attempts
  bool operator==(const scheduler_section&) const = default;
};

/// [log]
struct log_section {
  log_level level = log_level::info;
  std::string file;    ///< empty = stderr
  std::string pattern; ///< empty = built-in pattern
  bool operator==(const log_section&) const = default;
};

/// [metrics]: Prometheus endpoint.
struct metrics_section {
  bool enabled = true;
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0; ///< 0 = pick a free port
  std::uint32_t latency_sample_every = 16;
  bool operator==(const metrics_section&) const = default;
};

/// [trace]: message tracing.
struct trace_section {
  double sampling_ratio = 0.0;
  std::string export_path; ///< empty = no export
  std::uint32_t queue_capacity = 65536;
  bool operator==(const trace_section&) const = default;
};

/// [supervision]: restart budget and backoff of supervised actors.
struct supervision_section {
  std::uint32_t max_restarts = 3;
  std::chrono::nanoseconds max_period = std::chrono::seconds{5};
  std::chrono::nanoseconds backoff_initial = std::chrono::milliseconds{10};
  std::chrono::nanoseconds backoff_max = std::chrono::seconds{5};
  double backoff_multiplier = 2.0;
  double backoff_jitter = 0.2;
  std::uint64_t seed = 0;
  bool operator==(const supervision_section&) const = default;
};

/// [store]: durable store.
struct store_section {
  std::string path; ///< empty = no store
  bool sync_writes = true;
  bool operator==(const store_section&) const = default;
};

/// [shutdown]
struct shutdown_section {
  std::chrono::nanoseconds timeout = std::chrono::seconds{5};
  bool operator==(const shutdown_section&) const = default;
};

/// Configuration of one embedded runtime node. Plain data; the member
/// initialisers equal the schema defaults (`default_config()`).
struct node_config {
  node_section node;
  scheduler_section scheduler;
  log_section log;
  metrics_section metrics;
  trace_section trace;
  supervision_section supervision;
  store_section store;
  shutdown_section shutdown;
  bool operator==(const node_config&) const = default;
};

/// The schema of `node_config`: every section, key, default, limit and doc.
/// Built on each call (no global state); bind it next to other modules'
/// schemas with a `config_binder`.
[[nodiscard]] config_schema<node_config> node_config_schema();

/// Every default of `node_config`.
[[nodiscard]] node_config default_config();

/// Loads `path` over the defaults, then applies `env` overrides. Fails with
/// invalid_argument listing every problem, or not_found/io_error.
[[nodiscard]] result<node_config> load_config_file(const std::filesystem::path& path,
                                                   const env_map& env);

/// Loads TOML text named `source_name` in errors over the defaults, then
/// applies `env` overrides. Fails with invalid_argument listing every
/// problem.
[[nodiscard]] result<node_config> load_config_string(std::string_view toml,
                                                     std::string_view source_name,
                                                     const env_map& env);

/// Renders `config` as documented TOML that loads back to an equal config.
[[nodiscard]] std::string to_toml(const node_config& config);

} // namespace troupe
