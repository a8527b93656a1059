#pragma once
/// Traces the simulator replays: a node list (optional) and jobs with their
/// arrival, run time and demand, loaded from the real traces in
/// `shared/data/traces` (Alibaba GPU-sharing "openb", Microsoft Philly, AWS
/// spot) or from troupe's own trace format (docs/TRACE-FORMAT.md), which
/// other traces convert to. Loaders are boundary code: every malformed row
/// is an invalid_argument naming the file, line and column; nothing is
/// dropped silently (skipped rows are counted in `warnings`).

#include "troupe/placement/request.hpp"
#include "troupe/placement/topology.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/strong_id.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::sim {

/// The longest submit time and run time a loader accepts: 100 years (of
/// 365.25 days), so that submit + run time always fits the nanosecond clock.
inline constexpr duration max_trace_time = std::chrono::hours(24 * 36525);

/// One machine of a trace's node list.
struct trace_node {
  std::string name;
  uint64_t cpu_milli = 0;
  uint64_t memory_mib = 0;
  uint32_t gpus = 0;
  std::string gpu_model;       ///< empty when the node has no GPU
  uint64_t gpu_memory_mib = 0; ///< 0: unknown (a default per model is used)
  friend bool operator==(const trace_node&, const trace_node&) = default;
};

/// One job of a trace: a gang of `bundle_count()` bundles (one pod of the
/// Alibaba trace is one bundle; a Philly job of 16 GPUs on 8-GPU nodes is
/// two bundles of 8).
struct trace_job {
  std::string name;
  duration submit{0};   ///< arrival, from the start of the trace
  duration run_time{0}; ///< how long it runs once started; 0: never ends
  /// Whole GPUs in total (0 with a share or for a CPU-only job).
  uint32_t gpus = 0;
  /// 1..999: a share of one GPU (then `gpus` is 0).
  uint32_t gpu_milli = 0;
  /// Whole GPUs per bundle: `gpus` split into bundles of at most this many
  /// (one node each); 0: all on one node.
  uint32_t gpus_per_bundle = 0;
  std::vector<std::string> gpu_models; ///< allowed GPU models; empty: any
  uint64_t cpu_milli = 0;              ///< per bundle
  uint64_t memory_mib = 0;             ///< per bundle
  std::string tenant = "default";      ///< Philly: the virtual cluster
  int32_t priority = 0;
  bool preemptible = false;
  bool spot_tolerant = false;
  std::string qos; ///< the trace's class label, if any (e.g. Alibaba LS/BE)

  /// How many bundles the job asks for (at least 1).
  uint32_t bundle_count() const noexcept;
  friend bool operator==(const trace_job&, const trace_job&) = default;
};

/// A loaded trace.
struct trace {
  std::string source;                ///< file name(s) it came from
  std::vector<trace_node> nodes;     ///< empty when the trace has no node list
  std::vector<trace_job> jobs;       ///< sorted by submit time (stable)
  std::vector<std::string> warnings; ///< rows or groups skipped, and why
};

/// Multiplies every job's submit time by `factor` (> 0): below 1 the same
/// jobs arrive faster (a heavier load on the same cluster), above 1 slower.
/// Times stay whole milliseconds (rounded to nearest). invalid_argument for
/// a factor that is not a positive finite number.
[[nodiscard]] result<void> scale_arrivals(trace& t, double factor);

/// The gang request of `j` (strategy pack; bundles as `bundle_count`;
/// priority, preemptible, spot tolerance, tenant and runtime estimate from
/// the job; `submitted` = `origin` + submit).
placement::gang_request to_gang_request(const trace_job& j, placement::request_id id,
                                        time_point origin = time_point{});

/// A cluster topology with one node per `trace_node`, `nodes_per_rack` to a
/// rack (one NVLink island per node, GPU memory from `gpu_memory_mib` or a
/// default for the model). invalid_argument if a node is malformed.
[[nodiscard]] result<placement::cluster_topology>
topology_from_nodes(const std::vector<trace_node>& nodes, uint32_t nodes_per_rack = 16);

// --- Alibaba GPU-sharing trace (cluster-trace-gpu-v2023, "openb") ---------

/// Reads `sn,cpu_milli,memory_mib,gpu,model` rows (header required, columns
/// by name, extra columns ignored). `source` names the text in errors.
[[nodiscard]] result<std::vector<trace_node>>
parse_alibaba_nodes(std::string_view text, std::string_view source);
[[nodiscard]] result<std::vector<trace_node>> load_alibaba_nodes(const std::string& path);

/// Reads `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,...,
/// creation_time,deletion_time,...` rows: `gpu_milli` is per GPU (< 1000
/// with `num_gpu` = 1: a share; 1000: whole GPUs); `gpu_spec` lists allowed
/// models separated by '|'; submit = creation_time, run time = deletion -
/// creation (seconds). Jobs sorted by creation time.
[[nodiscard]] result<trace> parse_alibaba_pods(std::string_view text,
                                               std::string_view source);
[[nodiscard]] result<trace> load_alibaba_pods(const std::string& path);

// --- Microsoft Philly job trace (Pollux artifact subset) -------------------

/// Node counts per virtual cluster (`vc,node num`).
using vc_node_counts = std::map<std::string, uint32_t, std::less<>>;
[[nodiscard]] result<vc_node_counts> parse_philly_vc_nodes(std::string_view text,
                                                           std::string_view source);

/// Reads `timestamp,duration,num_gpus,gpu_time,cluster` rows (timestamp
/// "YYYY-MM-DD HH:MM:SS", UTC; duration in seconds, rounded to the
/// millisecond; `gpu_time` is ignored). Jobs are sorted by time (the file is
/// not); submit counts from the earliest row; tenant = the virtual cluster;
/// name "philly-<line>"; whole GPUs in bundles of at most 8 (Philly's 8-GPU
/// nodes). Skipped with one warning per cluster and cause (count of jobs):
/// jobs of a virtual cluster that `vc_nodes` does not list, jobs asking for
/// more GPUs than their cluster has, jobs of duration 0 (run time 0 means
/// "never ends" here). An empty cluster, 0 GPUs or a bad timestamp is an
/// error. The node list has 8-GPU nodes named "<vc>-nNN", `vc_nodes[vc]` per
/// cluster (see philly_trace.cpp for the GPU model and node sizes).
[[nodiscard]] result<trace> parse_philly(std::string_view text, std::string_view source,
                                         const vc_node_counts& vc_nodes);
[[nodiscard]] result<trace> load_philly(const std::string& jobs_path,
                                        const std::string& vc_nodes_path);

// --- AWS spot traces ("Can't Be Late", skypilot-org/spot-traces) -----------

/// `{"metadata":{"gap_seconds":N},"data":[k0,k1,...]}`: how many instances
/// were available (availability/) or alive (preemption/) at each tick.
struct spot_trace {
  std::string source;
  duration tick{0};
  std::vector<uint32_t> counts;
  /// The file's optional "prices" (one per tick, as in the file: USD per
  /// instance-hour in the shipped preemption trace), in micro-USD rounded to
  /// the nearest; empty when the file has none.
  std::vector<micro_usd> prices;
};
[[nodiscard]] result<spot_trace> parse_spot_trace(std::string_view text,
                                                  std::string_view source);
[[nodiscard]] result<spot_trace> load_spot_trace(const std::string& path);

// --- troupe trace format (docs/TRACE-FORMAT.md) -----------------------------

/// CSV (header row, columns by name) or JSON lines (one object per job, or
/// per node with "kind":"node"), chosen by the extension (.csv / .jsonl).
/// Times in integer milliseconds; unknown columns or keys are errors unless
/// prefixed `x_`; jobs sorted by submit time (stable). Errors name the file,
/// line and column (CSV) or key (JSON lines).
[[nodiscard]] result<trace> parse_troupe_csv(std::string_view text,
                                             std::string_view source);
[[nodiscard]] result<trace> parse_troupe_jsonl(std::string_view text,
                                               std::string_view source);
[[nodiscard]] result<trace> load_troupe_trace(const std::string& path);
/// Writes `t` in the format the extension of `path` names; a file written
/// and read back gives an equal trace.
[[nodiscard]] result<void> save_troupe_trace(const trace& t, const std::string& path);
/// Whether `t` can be written in troupe's format and read back equal: every
/// job and node passes the loader's checks (non-empty names, times in whole
/// milliseconds within `max_trace_time`, valid UTF-8, ...). invalid_argument
/// naming the first bad job or node and field otherwise.
[[nodiscard]] result<void> check_troupe_trace(const trace& t);
/// The text of `t` in troupe's format. A trace that fails
/// `check_troupe_trace` still renders (sub-millisecond parts are dropped,
/// invalid UTF-8 replaced) but may not load back; `save_troupe_trace`
/// refuses it instead.
std::string to_troupe_csv(const trace& t);
std::string to_troupe_jsonl(const trace& t);

// --- synthetic traces for scale tests ---------------------------------------

/// Parameters of a synthetic trace.
struct synthetic_trace {
  uint64_t jobs = 10'000;
  /// Poisson arrivals at this mean rate (jobs per hour).
  double arrivals_per_hour = 600;
  /// Log-normal run times: median and sigma of the underlying normal,
  /// cut at `max_run_time` (heavy tail, as in Philly and Helios).
  duration median_run_time = std::chrono::minutes(30);
  double run_time_sigma = 1.8;
  duration max_run_time = std::chrono::hours(24 * 7);
  /// GPU-count mix: (whole GPUs, weight); a 0 entry stands for a share of
  /// one GPU (`share_milli`).
  std::vector<std::pair<uint32_t, double>> gpu_mix = {{1, 0.55}, {2, 0.12},  {4, 0.12},
                                                      {8, 0.15}, {16, 0.04}, {32, 0.02}};
  uint32_t share_milli = 500;
  uint32_t gpus_per_bundle = 8;
  uint32_t tenants = 8; ///< tenants "t0".."tN-1", Zipf-like popularity
  uint64_t seed = 1;
};
/// A trace of `p.jobs` jobs named "job-<i>": the first submitted at 0, then
/// exponential gaps; run times rounded to the millisecond (at least 1 ms);
/// no node list. Deterministic: the same parameters give the same trace
/// (troupe::seeded_rng, no std:: distributions, whose output differs
/// between standard libraries; only log, exp, sqrt, sin and cos of the C
/// library, whose last-bit differences could move a rounded millisecond in
/// rare cases on another platform).
/// invalid_argument naming every bad parameter (no jobs, non-positive rate,
/// ...).
[[nodiscard]] result<trace> generate_trace(const synthetic_trace& p);

} // namespace troupe::sim
