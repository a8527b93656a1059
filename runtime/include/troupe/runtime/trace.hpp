#pragma once
/// OpenTelemetry-style tracing for actor message handling.
///
/// A `span_context` (trace id, span id, sampled flag, tenant) rides in front
/// of a message's payload when troupe sends it (see actor.hpp), so the spans
/// that handling a request causes across actors form one tree. A `tracer`
/// decides sampling, makes ids and hands finished spans to a bounded export
/// queue drained by one background thread into a `span_sink` (OTLP-JSON lines
/// file, or memory for tests). A full queue drops spans and counts them; it
/// never blocks an actor.

#include "troupe/runtime/result.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace troupe {

/// Identity of one span within one trace, plus what travels with it.
struct span_context {
  uint64_t trace_hi = 0; ///< trace id, high 64 bits
  uint64_t trace_lo = 0; ///< trace id, low 64 bits; 0/0 = no trace
  uint64_t span_id = 0;  ///< the span that sent the message (parent of the next)
  bool sampled = false;  ///< whether spans of this trace are recorded
  std::string tenant;    ///< tenant identity for attribution; may be empty

  bool valid() const noexcept { return trace_hi != 0 || trace_lo != 0; }
  /// 32 lower-case hex digits, or "" when there is no trace.
  std::string trace_id_hex() const;
  /// 16 lower-case hex digits.
  std::string span_id_hex() const;

  friend bool operator==(const span_context&, const span_context&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, span_context& x) {
  return f(x.trace_hi, x.trace_lo, x.span_id, x.sampled, x.tenant);
}

enum class span_kind : uint8_t {
  internal = 1,
  server = 2,
  client = 3,
  producer = 4,
  consumer = 5
};
enum class span_status : uint8_t { unset = 0, ok = 1, error = 2 };

/// A finished span, as exported.
struct span_record {
  uint64_t trace_hi = 0;
  uint64_t trace_lo = 0;
  uint64_t span_id = 0;
  uint64_t parent_span_id = 0; ///< 0 for a root span
  std::string name;
  span_kind kind = span_kind::internal;
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  span_status status = span_status::unset;
  std::string status_message;
  std::vector<std::pair<std::string, std::string>> attributes;
};

/// Where exported spans go. Called from the tracer's export thread only.
class span_sink {
public:
  virtual ~span_sink() = default;
  /// Writes one batch; errors are counted by the tracer, not thrown.
  virtual result<void> write(const std::vector<span_record>& batch) = 0;
  virtual result<void> flush() { return ok(); }
};

/// Writes each batch as one OTLP-JSON line (an ExportTraceServiceRequest, as
/// the OpenTelemetry collector's file exporter does).
class otlp_json_file_sink final : public span_sink {
public:
  /// Opens (appends to) `path`; io_error when it cannot be opened.
  static result<std::unique_ptr<otlp_json_file_sink>>
  open(const std::filesystem::path& path, std::string service_name);
  ~otlp_json_file_sink() override;
  result<void> write(const std::vector<span_record>& batch) override;
  result<void> flush() override;

private:
  otlp_json_file_sink(std::FILE* f, std::string service_name);
  std::FILE* file_;
  std::string service_name_;
};

/// Keeps spans in memory: for tests. Thread-safe.
class memory_span_sink final : public span_sink {
public:
  result<void> write(const std::vector<span_record>& batch) override;
  std::vector<span_record> spans() const;

private:
  mutable std::mutex mu_;
  std::vector<span_record> spans_; // guarded by mu_
};

/// Encodes a batch as one OTLP-JSON document (no trailing newline).
std::string to_otlp_json(const std::vector<span_record>& batch,
                         const std::string& service_name);

/// Sampling, ids and the bounded export queue. Thread-safe.
class tracer {
public:
  /// `sampling_ratio` in [0, 1]; `sink` may be null (spans are then dropped
  /// after counting). `seed` seeds the id generator (0 = from the OS).
  tracer(double sampling_ratio, size_t queue_capacity, std::unique_ptr<span_sink> sink,
         uint64_t seed = 0);
  ~tracer();
  tracer(const tracer&) = delete;
  tracer& operator=(const tracer&) = delete;

  double sampling_ratio() const noexcept { return ratio_; }
  /// True when any span could be sampled (ratio > 0).
  bool enabled() const noexcept { return ratio_ > 0.0; }

  /// Starts a new trace; sampled according to the ratio (decided from the
  /// trace id, as OpenTelemetry's TraceIdRatioBased sampler does).
  span_context new_root(std::string tenant = {});
  /// A new span id in the same trace as `parent`.
  span_context child_of(const span_context& parent);
  uint64_t next_span_id() noexcept;

  /// Queues a finished span for export; drops (and counts) when full.
  void record(span_record span);
  /// Blocks until every span queued so far has been written and flushed.
  void flush();

  uint64_t recorded() const noexcept { return recorded_.load(std::memory_order_relaxed); }
  uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  uint64_t exported() const noexcept { return exported_.load(std::memory_order_relaxed); }
  uint64_t export_errors() const noexcept {
    return export_errors_.load(std::memory_order_relaxed);
  }

private:
  void run();
  uint64_t next_id() noexcept;

  /// Spans per exporter write; a full batch wakes the exporter at once.
  static constexpr size_t export_batch = 512;
  /// Otherwise the exporter writes what has queued at this interval.
  static constexpr std::chrono::milliseconds export_interval{50};

  const double ratio_;
  const uint64_t threshold_; // sampled when trace_lo < threshold_ (or ratio 1)
  const size_t capacity_;
  std::unique_ptr<span_sink> sink_;
  std::atomic<uint64_t> id_state_;
  std::atomic<uint64_t> recorded_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> export_errors_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable flushed_cv_;
  std::deque<span_record> queue_; // guarded by mu_
  uint64_t enqueued_seq_ = 0;     // guarded by mu_
  uint64_t written_seq_ = 0;      // guarded by mu_
  bool stop_ = false;             // guarded by mu_
  int flush_waiters_ = 0;         // guarded by mu_
  std::thread thread_;
};

/// The span context of the message the current thread is handling, or null.
/// Set by troupe actors around each traced message; read by logging.
const span_context* current_span() noexcept;

/// Sets the current thread's span context for the scope of this object.
class span_scope {
public:
  explicit span_scope(const span_context* ctx) noexcept;
  ~span_scope();
  span_scope(const span_scope&) = delete;
  span_scope& operator=(const span_scope&) = delete;

private:
  const span_context* prev_;
};

/// Wall-clock nanoseconds since the Unix epoch (span timestamps only).
int64_t unix_now_ns() noexcept;

} // namespace troupe
