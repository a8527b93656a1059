#include "troupe/runtime/trace.hpp"

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/random.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

namespace troupe {
namespace {

thread_local const span_context* tls_current = nullptr;

std::string hex64(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

uint64_t ratio_threshold(double ratio) {
  if (!(ratio > 0.0)) return 0;
  if (ratio >= 1.0) return UINT64_MAX;
  return static_cast<uint64_t>(std::ldexp(ratio, 64));
}

} // namespace

std::string span_context::trace_id_hex() const {
  if (!valid()) return {};
  return hex64(trace_hi) + hex64(trace_lo);
}

std::string span_context::span_id_hex() const {
  return hex64(span_id);
}

const span_context* current_span() noexcept {
  return tls_current;
}

span_scope::span_scope(const span_context* ctx) noexcept : prev_(tls_current) {
  tls_current = ctx;
}

span_scope::~span_scope() {
  tls_current = prev_;
}

int64_t unix_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// -- OTLP JSON ----------------------------------------------------------------

std::string to_otlp_json(const std::vector<span_record>& batch,
                         const std::string& service_name) {
  using nlohmann::json;
  json spans = json::array();
  for (const auto& s : batch) {
    json attrs = json::array();
    for (const auto& [k, v] : s.attributes)
      attrs.push_back({{"key", k}, {"value", {{"stringValue", v}}}});
    json span = {
        {"traceId", hex64(s.trace_hi) + hex64(s.trace_lo)},
        {"spanId", hex64(s.span_id)},
        {"name", s.name},
        {"kind", static_cast<int>(s.kind)},
        {"startTimeUnixNano", std::to_string(s.start_unix_ns)},
        {"endTimeUnixNano", std::to_string(s.end_unix_ns)},
        {"attributes", std::move(attrs)},
        {"status", {{"code", static_cast<int>(s.status)}}},
    };
    if (s.parent_span_id != 0) span["parentSpanId"] = hex64(s.parent_span_id);
    if (!s.status_message.empty()) span["status"]["message"] = s.status_message;
    spans.push_back(std::move(span));
  }
  json doc = {
      {"resourceSpans",
       json::array({{{"resource",
                      {{"attributes",
                        json::array({{{"key", "service.name"},
                                      {"value", {{"stringValue", service_name}}}}})}}},
                     {"scopeSpans", json::array({{{"scope", {{"name", "troupe"}}},
                                                  {"spans", spans}}})}}})}};
  // Replace invalid UTF-8 rather than throw: span names and attributes may
  // carry user data.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

result<std::unique_ptr<otlp_json_file_sink>>
otlp_json_file_sink::open(const std::filesystem::path& path, std::string service_name) {
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr)
    return error{runtime::errc::io_error,
                 "cannot open trace export file '" + path.string() + "'"};
  return std::unique_ptr<otlp_json_file_sink>(
      new otlp_json_file_sink(f, std::move(service_name)));
}

otlp_json_file_sink::otlp_json_file_sink(std::FILE* f, std::string service_name)
    : file_(f), service_name_(std::move(service_name)) {}

otlp_json_file_sink::~otlp_json_file_sink() {
  std::fclose(file_);
}

result<void> otlp_json_file_sink::write(const std::vector<span_record>& batch) {
  auto line = to_otlp_json(batch, service_name_);
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size())
    return error{runtime::errc::io_error, "short write to trace export file"};
  return ok();
}

result<void> otlp_json_file_sink::flush() {
  if (std::fflush(file_) != 0)
    return error{runtime::errc::io_error, "cannot flush trace export file"};
  return ok();
}

result<void> memory_span_sink::write(const std::vector<span_record>& batch) {
  std::lock_guard<std::mutex> guard{mu_};
  spans_.insert(spans_.end(), batch.begin(), batch.end());
  return ok();
}

std::vector<span_record> memory_span_sink::spans() const {
  std::lock_guard<std::mutex> guard{mu_};
  return spans_;
}

// -- tracer -------------------------------------------------------------------

tracer::tracer(double sampling_ratio, size_t queue_capacity,
               std::unique_ptr<span_sink> sink, uint64_t seed)
    : ratio_(sampling_ratio), threshold_(ratio_threshold(sampling_ratio)),
      capacity_(queue_capacity == 0 ? 1 : queue_capacity), sink_(std::move(sink)),
      id_state_(seed != 0
                    ? seed
                    : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {
  thread_ = std::thread([this] { run(); });
}

tracer::~tracer() {
  {
    std::lock_guard<std::mutex> guard{mu_};
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t tracer::next_id() noexcept {
  uint64_t state = id_state_.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed);
  uint64_t id = splitmix64(state);
  return id == 0 ? 1 : id;
}

uint64_t tracer::next_span_id() noexcept {
  return next_id();
}

span_context tracer::new_root(std::string tenant) {
  span_context ctx;
  ctx.trace_hi = next_id();
  ctx.trace_lo = next_id();
  ctx.span_id = next_id();
  ctx.sampled = threshold_ == UINT64_MAX || ctx.trace_lo < threshold_;
  ctx.tenant = std::move(tenant);
  return ctx;
}

span_context tracer::child_of(const span_context& parent) {
  span_context ctx = parent;
  ctx.span_id = next_id();
  return ctx;
}

void tracer::record(span_record span) {
  recorded_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (queue_.size() >= capacity_ || stop_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(span));
    ++enqueued_seq_;
    // Wake the exporter only for a full batch; otherwise it wakes on its own
    // timer. A wake-up per span would cost a futex call per message.
    if (queue_.size() < export_batch) return;
  }
  cv_.notify_one();
}

void tracer::flush() {
  std::unique_lock<std::mutex> guard{mu_};
  auto target = enqueued_seq_;
  ++flush_waiters_;
  cv_.notify_one();
  flushed_cv_.wait(guard, [&] { return written_seq_ >= target || stop_; });
  --flush_waiters_;
}

void tracer::run() {
  std::vector<span_record> batch;
  std::unique_lock<std::mutex> guard{mu_};
  for (;;) {
    cv_.wait_for(guard, export_interval, [&] {
      return stop_ || queue_.size() >= export_batch ||
             (flush_waiters_ > 0 && !queue_.empty());
    });
    if (queue_.empty()) {
      if (stop_) break;
      flushed_cv_.notify_all();
      continue;
    }
    batch.clear();
    while (!queue_.empty() && batch.size() < export_batch) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    guard.unlock();
    if (sink_ != nullptr) {
      auto w = sink_->write(batch);
      auto f = sink_->flush();
      if (!w.ok() || !f.ok())
        export_errors_.fetch_add(1, std::memory_order_relaxed);
      else
        exported_.fetch_add(batch.size(), std::memory_order_relaxed);
    }
    guard.lock();
    written_seq_ += batch.size();
    flushed_cv_.notify_all();
  }
  flushed_cv_.notify_all();
}

} // namespace troupe
