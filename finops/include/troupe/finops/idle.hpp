#pragma once
/// Idle detection and reclaim: the policy that finds allocations whose GPUs
/// sit idle, tells their owners, and after a grace period reclaims them.
///
/// Plain code over plain data: no actors, no I/O, no clock. The caller (the
/// FinOps actor, the cluster simulator, a test) feeds utilisation samples
/// and the current time; the detector answers with actions, each with the
/// reason it was taken, in time order.
///
/// The rule, per allocation (thresholds per workload class):
/// - Samples taken before `start + warm_up` are ignored (loading data,
///   compiling kernels and filling caches look idle but are not).
/// - A sample is *idle* when every GPU of the allocation is under the class's
///   utilisation threshold (the busiest GPU decides: one busy GPU keeps the
///   whole gang alive). Otherwise it is *busy*.
/// - An idle run starts at its first idle sample and is broken by a busy
///   sample or by a gap between samples longer than the window (missing
///   telemetry never counts as idle). The allocation is idle once its run
///   spans at least `window` (last idle sample - first idle sample).
/// - Then: notify the owner; if neither a busy sample nor a gap arrives
///   within `grace`, reclaim when the grace ends. A busy sample after the
///   notice cancels the pending reclaim (recovery), as does a gap; the rule
///   starts over. A reclaim due at the time of a sample fires before that
///   sample is looked at. When the grace ends more than `window` after the
///   last sample, that silence is a gap too: the reclaim is cancelled, not
///   fired.
/// - Allocations carrying an exempt label (key=value, exact match) are never
///   acted on.
///
/// Reclaim depends on the class: training is checkpointed and evicted,
/// serving is scaled down to its minimum replicas, interactive sessions are
/// released, eval jobs are evicted.
///
/// Dry run: the same actions are produced, marked `dry_run`, and nothing is
/// meant to be done with them. After a would-be reclaim the detector keeps
/// following the allocation and counts every further idle GPU-millisecond
/// (until a busy sample, a gap, or untrack) as what the reclaim would have
/// saved; `savings()` sums them, priced with the showback rounding rule
/// (ledger.hpp).
///
/// Cost: observe() is O(GPUs of the sample) plus O(log n) when a reclaim is
/// scheduled; advance() is O(log n) per reclaim due. A tick over 10,000 GPUs
/// is a linear pass over their samples.

#include "troupe/finops/types.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/strong_id.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe::finops {

/// What an allocation runs; decides the idle thresholds and the reclaim.
enum class workload_class : uint8_t { training, serving, interactive, eval };
inline constexpr size_t workload_class_count = 4;

/// "training", "serving", "interactive", "eval".
const char* to_string(workload_class c) noexcept;
/// The class named `s`, or nullopt.
std::optional<workload_class> parse_workload_class(std::string_view s) noexcept;

/// Idle thresholds of one workload class.
struct class_policy {
  /// A GPU under this utilisation (0..1, the fraction of time a kernel ran,
  /// as NVML reports it divided by 100) counts as idle.
  double utilisation_threshold = 0.05;
  duration window = std::chrono::minutes{30}; ///< idle this long: notify
  duration warm_up =
      std::chrono::minutes{10}; ///< samples before start + warm_up are ignored
  duration grace = std::chrono::minutes{30}; ///< notice to reclaim

  friend bool operator==(const class_policy&, const class_policy&) = default;
};

/// An allocation with this label (key and value equal) is never reclaimed.
struct label_exemption {
  std::string key;
  std::string value;

  friend bool operator==(const label_exemption&, const label_exemption&) = default;
};

/// Parses "key=value" (key non-empty, no second '='); invalid_argument
/// naming the problem otherwise.
[[nodiscard]] result<label_exemption> parse_exemption(std::string_view text);

/// The whole idle policy.
struct idle_policy {
  std::array<class_policy, workload_class_count> classes{};
  std::vector<label_exemption> exemptions;
  bool dry_run = false;

  const class_policy& of(workload_class c) const noexcept {
    return classes[static_cast<size_t>(c)];
  }
  class_policy& of(workload_class c) noexcept { return classes[static_cast<size_t>(c)]; }
  /// invalid_argument listing every bad value (threshold outside [0, 1] or
  /// NaN, negative durations, an exemption with an empty key).
  [[nodiscard]] result<void> validate() const;
};

/// An allocation the detector follows.
struct tracked_allocation {
  allocation_id id{0};
  workload_class cls = workload_class::training;
  time_point start{};
  uint32_t gpus = 1; ///< GPUs held: what a reclaim frees
  micro_usd price_per_gpu_hour{0};
  std::string owner; ///< who is notified (tenant or user)
  labels allocation_labels;
};

/// One utilisation sample of one allocation: per-GPU utilisation in [0, 1]
/// at `at`. The span is borrowed for the call only.
struct utilisation_sample {
  allocation_id allocation{0};
  time_point at{};
  std::span<const double> gpu_utilisation;
};

/// What the detector asks for.
enum class idle_action_kind : uint8_t {
  notify_owner,          ///< tell the owner the allocation is idle and will be reclaimed
  cancel_reclaim,        ///< utilisation recovered: the pending reclaim is off
  checkpoint_and_evict,  ///< training: checkpoint (workload confirms), then evict
  scale_to_min_replicas, ///< serving: scale down to the minimum replicas
  release,               ///< interactive: release the session
  evict,                 ///< eval: evict
};

/// "notify_owner", "cancel_reclaim", "checkpoint_and_evict", ...
const char* to_string(idle_action_kind k) noexcept;
/// The reclaim a class gets.
idle_action_kind reclaim_action(workload_class c) noexcept;
/// True for the four reclaim kinds.
bool is_reclaim(idle_action_kind k) noexcept;

/// One action, with the facts that led to it.
struct idle_action {
  time_point at{}; ///< when it was decided (a sample's time, or a grace deadline)
  allocation_id allocation{0};
  idle_action_kind kind = idle_action_kind::notify_owner;
  workload_class cls = workload_class::training;
  bool dry_run = false;       ///< report only: do nothing
  time_point idle_since{};    ///< first sample of the idle run
  uint32_t gpus = 0;          ///< GPUs a reclaim frees
  double max_utilisation = 0; ///< busiest GPU of the deciding sample (0 for deadlines)
  std::string owner;
  std::string reason; ///< one sentence for the owner and the audit log
};

/// One line of the audit log: when, which allocation, what, and why.
struct audit_record {
  time_point at{};
  allocation_id allocation{0};
  idle_action_kind action = idle_action_kind::notify_owner;
  bool dry_run = false;
  std::string reason;

  friend bool operator==(const audit_record&, const audit_record&) = default;
};

/// The audit record of `a`.
audit_record to_audit(const idle_action& a);
/// One JSON object on one line: {"at_ms":..,"allocation":..,"action":..,
/// "dry_run":..,"reason":..}; `at_ms` is the time since the clock's epoch.
std::string to_json_line(const audit_record& r);

/// What the would-be reclaims of a dry run would have saved so far.
struct idle_savings {
  int64_t reclaims = 0; ///< would-be reclaims
  int64_t gpu_ms = 0;   ///< idle GPU-milliseconds after them
  micro_usd cost{0};    ///< their price (showback rounding, ledger.hpp)
};

/// Follows allocations and turns their samples into idle actions.
///
/// Not thread-safe; one owner (the FinOps actor, or the simulator). The
/// policy is copied in.
class idle_detector {
public:
  /// `policy` must validate (a bug otherwise: validate config first).
  explicit idle_detector(idle_policy policy);

  const idle_policy& policy() const noexcept { return policy_; }

  /// Starts following `a`. conflict when the id is already followed,
  /// invalid_argument when it has no GPUs.
  [[nodiscard]] result<void> track(const tracked_allocation& a);
  /// Stops following an allocation (it ended or was reclaimed); a pending
  /// reclaim is dropped. Unknown ids are ignored.
  void untrack(allocation_id id);
  /// Allocations followed.
  size_t size() const noexcept { return states_.size(); }

  /// Feeds one sample. Appends to `out` the actions it causes at the
  /// sample's time (after first firing reclaims due before it, see
  /// advance). Samples of unknown allocations, samples older than the
  /// allocation's last one and samples without GPUs are ignored and counted
  /// in ignored_samples(); a utilisation that is NaN or outside [0, 1] is
  /// clamped to [0, 1] (NaN reads as busy: never reclaim on garbage).
  void observe(const utilisation_sample& s, std::vector<idle_action>& out);

  /// Fires every reclaim whose grace ends at or before `now` (or cancels it
  /// when the allocation has been silent for longer than the window),
  /// appending the actions in deadline order.
  void advance(time_point now, std::vector<idle_action>& out);

  /// One tick: advance to each sample's time as it is observed, then to
  /// `now`. Samples should be in time order (per allocation they must be).
  /// Returns the actions in time order.
  [[nodiscard]] std::vector<idle_action>
  step(time_point now, std::span<const utilisation_sample> samples);

  /// Dry-run savings so far (zero when not in dry run).
  const idle_savings& savings() const noexcept { return savings_; }
  /// Samples ignored (unknown allocation, out of order, no GPUs).
  int64_t ignored_samples() const noexcept { return ignored_; }

private:
  enum class phase : uint8_t { active, notified, reclaimed };
  struct state {
    tracked_allocation alloc;
    bool exempt = false;
    phase ph = phase::active;
    std::optional<time_point> last_sample;
    std::optional<time_point> idle_since; // first idle sample of the run
    time_point reclaim_due{};
    uint64_t generation = 0;  // bumps when a pending reclaim is cancelled
    time_point saving_from{}; // dry run: idle time after this is saved
  };
  struct due_reclaim {
    allocation_id id;
    uint64_t generation;
  };

  void fire(time_point due, state& st, std::vector<idle_action>& out);
  void count_saving(state& st, time_point from, time_point to);
  idle_action make_action(const state& st, time_point at, idle_action_kind kind,
                          double max_util, std::string reason) const;

  idle_policy policy_;
  std::unordered_map<allocation_id, state> states_;
  std::multimap<time_point, due_reclaim> due_; // pending reclaims by deadline
  idle_savings savings_;
  int64_t saving_remainder_ = 0; // money carry of savings_.cost (ledger.hpp)
  int64_t ignored_ = 0;
};

} // namespace troupe::finops
