#include "troupe/runtime/logging.hpp"

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/trace.hpp"

#include <mutex>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <vector>

namespace troupe::logging {
namespace {

/// `%*`: "trace=<32 hex> " while a traced message is handled, else nothing.
class trace_flag final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const span_context* ctx = current_span();
    if (ctx == nullptr || !ctx->valid()) return;
    auto id = ctx->trace_id_hex();
    static constexpr std::string_view prefix = "trace=";
    dest.append(prefix.data(), prefix.data() + prefix.size());
    dest.append(id.data(), id.data() + id.size());
    dest.push_back(' ');
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<trace_flag>();
  }
};

// Process-wide logging state: spdlog's logger registry is itself global, so
// the module loggers and their shared sink are configured once per process.
struct state {
  std::mutex mu;
  spdlog::sink_ptr sink;                                 // guarded by mu
  spdlog::level::level_enum level = spdlog::level::info; // guarded by mu
  std::string pattern = default_pattern;                 // guarded by mu
  std::vector<std::shared_ptr<spdlog::logger>> loggers;  // guarded by mu
};

state& global() {
  static state s;
  return s;
}

std::unique_ptr<spdlog::pattern_formatter> make_formatter(const std::string& pattern) {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<trace_flag>('*').set_pattern(pattern);
  return f;
}

void apply(state& s, spdlog::logger& l) {
  l.sinks().clear();
  l.sinks().push_back(s.sink);
  l.set_level(s.level);
  l.set_formatter(make_formatter(s.pattern));
}

} // namespace

result<void> configure(const settings& in) {
  auto lvl = spdlog::level::from_str(in.level);
  if (lvl == spdlog::level::off && in.level != "off")
    return error{runtime::errc::invalid_argument,
                 "log.level: expected one of trace|debug|info|warn|error|off, got \"" +
                     in.level + "\""};
  spdlog::sink_ptr sink;
  try {
    if (in.file.empty())
      sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    else
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(in.file);
  } catch (const spdlog::spdlog_ex& e) {
    return error{runtime::errc::io_error, "log.file: " + std::string{e.what()}};
  }
  auto& s = global();
  std::lock_guard<std::mutex> guard{s.mu};
  s.sink = std::move(sink);
  s.level = lvl;
  s.pattern = in.pattern.empty() ? default_pattern : in.pattern;
  for (auto& l : s.loggers)
    apply(s, *l);
  return ok();
}

void flush() {
  auto& s = global();
  std::lock_guard<std::mutex> guard{s.mu};
  for (auto& l : s.loggers)
    l->flush();
}

std::shared_ptr<spdlog::logger> get(std::string_view module) {
  auto& s = global();
  std::lock_guard<std::mutex> guard{s.mu};
  for (auto& l : s.loggers)
    if (l->name() == module) return l;
  if (!s.sink) s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto l = std::make_shared<spdlog::logger>(std::string{module});
  apply(s, *l);
  s.loggers.push_back(l);
  return l;
}

} // namespace troupe::logging
