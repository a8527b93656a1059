#pragma once
/// Showback ledger arithmetic: GPU time and money of every allocation, split
/// into used and idle, by tenant, label and period, applied exactly once.
///
/// Plain code over plain data: no actors, no I/O, no clock. The FinOps actor
/// persists `ledger_state` (to_json / ledger_state_from_json) in its store;
/// the simulator and the tests use it in memory.
///
/// Units and rounding (every figure is an integer, never floating point):
/// - Time is troupe's `time_point` (nanoseconds). Usage is counted in
///   GPU-milliseconds: an instant `t` counts as `floor_ms(t)`, the whole
///   milliseconds since the clock's epoch rounded toward minus infinity.
/// - Usage of `gpu_milli` thousandths of a GPU (8 GPUs = 8000) held from
///   `start` to `t` is cumulative:
///     usage(t) = floor(gpu_milli * (floor_ms(t) - floor_ms(start)) / 1000)
///   and the usage of a piece [a, b) of the allocation is usage(b) -
///   usage(a). The pieces of any split of an interval therefore sum to the
///   usage of the whole, exactly (the sum telescopes). For whole GPUs no
///   rounding happens at all beyond floor_ms.
/// - Money is `micro_usd` (int64 micro-dollars); prices are per GPU-hour
///   (3,600,000 GPU-ms). Each allocation carries a remainder: applying
///   `gpu_ms` at `price` charges floor((gpu_ms * price + r) / 3600000) and
///   keeps the new remainder r. Whatever the split, the order of the pieces,
///   or a price change between pieces, the money charged to an allocation
///   is always floor(sum of gpu_ms * price / 3600000): the parts cost
///   exactly what the whole costs. Intermediates are 128-bit.
/// - Used versus idle (OpenCost's allocated versus used): each entry says
///   how many of its GPU-ms were used (utilisation x time, computed by the
///   meter); its used cost is floor(cost * used_gpu_ms / gpu_ms) and its
///   idle cost is the rest, so used + idle = cost for every entry.
/// - Periods: an entry belongs to the period that holds its start; entries
///   must not cross a period boundary (`split_by_period` and
///   `allocation_meter` cut them).

#include "troupe/finops/errc.hpp"
#include "troupe/finops/types.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/strong_id.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::finops {

/// GPU-milliseconds in one GPU-hour.
inline constexpr int64_t gpu_ms_per_gpu_hour = 3'600'000;

/// Whole milliseconds since the epoch of `t`'s clock, rounded toward minus
/// infinity.
constexpr int64_t floor_ms(time_point t) noexcept {
  return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

/// GPU-ms of `gpu_milli` thousandths of a GPU from `start` to `t` (the
/// cumulative rule above); 0 when t <= start. Aborts on overflow (a bug:
/// 2^63 GPU-ms is 290 million GPU-years).
int64_t cumulative_gpu_ms(int64_t gpu_milli, time_point start, time_point t);

/// Charges `gpu_ms` at `price` per GPU-hour against `remainder` (in [0,
/// 3600000), updated): floor((gpu_ms * price + remainder) / 3600000).
/// gpu_ms and price must be non-negative (a bug otherwise).
micro_usd charge(int64_t gpu_ms, micro_usd price, int64_t& remainder);

/// The whole cost of `gpu_ms` at `price`, from a zero remainder.
micro_usd cost_of(int64_t gpu_ms, micro_usd price);

/// floor(cost * part / whole): the share of `cost` that `part` of `whole`
/// GPU-ms carries; 0 when whole is 0.
micro_usd share_of(micro_usd cost, int64_t part, int64_t whole);

/// Renders micro-USD as a decimal with six digits: 1234567 -> "1.234567",
/// -5 -> "-0.000005".
std::string format_usd(micro_usd m);
/// Reads a non-negative decimal amount of USD ("120", "0.5", "1234.567890":
/// at most six fractional digits, no sign, no exponent, at most 10^12 USD)
/// as micro-USD; invalid_argument saying what is wrong otherwise.
[[nodiscard]] result<micro_usd> parse_usd(std::string_view text);

/// A half-open time interval [start, end).
struct interval {
  time_point start{};
  time_point end{};
  friend bool operator==(const interval&, const interval&) = default;
};

/// Cuts [start, end) at every multiple of `period` (since the epoch); an
/// empty interval gives nothing. period must be positive (a bug otherwise).
std::vector<interval> split_by_period(interval whole, duration period);

/// The start of the period holding `t`.
time_point period_start(time_point t, duration period);

/// One ledger entry: a piece of one allocation's life.
struct usage_entry {
  allocation_id allocation{0};
  uint64_t sequence = 0; ///< per allocation; (allocation, sequence) is the entry's key
  std::string tenant = "default";
  labels cost_labels;      ///< team, project, env, ...
  interval span;           ///< what the entry covers (must not cross a period)
  int64_t gpu_ms = 0;      ///< allocated GPU-ms of the piece (the cumulative rule)
  int64_t used_gpu_ms = 0; ///< of those, the GPU-ms the GPUs were busy
  micro_usd price_per_gpu_hour{0};
};

/// GPU-ms used out of `gpu_ms` at `utilisation` (0..1; NaN or out of range
/// is clamped, NaN reads as 0): floor(gpu_ms * round(utilisation * 1e6) /
/// 1e6). The only place a utilisation becomes an integer.
int64_t used_gpu_ms(int64_t gpu_ms, double utilisation);

/// Cuts one allocation's life into ledger entries with consecutive
/// sequence numbers, split at period boundaries, each with its GPU-ms from
/// the cumulative rule. A value type: the actor keeps one per allocation
/// (and persists `sequence`/`metered_until` to resume after a restart).
class allocation_meter {
public:
  /// `gpu_milli`: thousandths of a GPU held (gpus * 1000 for whole GPUs).
  allocation_meter(allocation_id id, std::string tenant, labels cost_labels,
                   int64_t gpu_milli, time_point start, micro_usd price_per_gpu_hour,
                   duration period);

  /// Entries covering [metered_until(), until) with `utilisation` (0..1) as
  /// the used share; nothing when until <= metered_until().
  [[nodiscard]] std::vector<usage_entry> advance(time_point until, double utilisation);
  /// Changes the price from metered_until() on (spot prices move).
  void set_price(micro_usd price) noexcept { price_ = price; }
  /// Puts a meter rebuilt after a restart where a persisted one stopped:
  /// metered_until() becomes `until` and next_sequence() `next_sequence`;
  /// the next advance then makes exactly the entries the persisted meter
  /// would have made. `until` before the start is a bug (aborts).
  void resume(time_point until, uint64_t next_sequence);

  time_point metered_until() const noexcept { return until_; }
  uint64_t next_sequence() const noexcept { return sequence_; }
  /// GPU-ms metered so far: cumulative_gpu_ms(gpu_milli, start, metered_until).
  int64_t metered_gpu_ms() const noexcept { return metered_; }

private:
  allocation_id id_;
  std::string tenant_;
  labels labels_;
  int64_t gpu_milli_;
  time_point start_;
  time_point until_;
  micro_usd price_;
  duration period_;
  uint64_t sequence_ = 0;
  int64_t metered_ = 0;
};

/// The label keys the ledger aggregates by, besides the tenant.
inline constexpr std::array<std::string_view, 3> ledger_label_keys{"team", "project",
                                                                   "env"};

/// Totals of a set of entries.
struct usage_totals {
  int64_t gpu_ms = 0;
  int64_t used_gpu_ms = 0;
  micro_usd cost{0};
  micro_usd used_cost{0};
  int64_t entries = 0;

  int64_t idle_gpu_ms() const noexcept { return gpu_ms - used_gpu_ms; }
  micro_usd idle_cost() const noexcept {
    return micro_usd{cost.value() - used_cost.value()};
  }
  void add(const usage_totals& o) noexcept;
  friend bool operator==(const usage_totals&, const usage_totals&) = default;
};

/// The aggregation key of an entry: period start (ms since epoch), tenant,
/// and the team, project and env labels ("" when absent).
struct ledger_key {
  int64_t period_start_ms = 0;
  std::string tenant;
  std::string team;
  std::string project;
  std::string env;
  friend auto operator<=>(const ledger_key&, const ledger_key&) = default;
};

/// Per-allocation bookkeeping: which sequence numbers were applied, the
/// money remainder, and totals.
struct allocation_account {
  uint64_t applied_below = 0;       ///< every sequence < this was applied
  std::set<uint64_t> applied_above; ///< applied sequences >= applied_below
  int64_t remainder = 0;            ///< money carry, in [0, 3600000)
  usage_totals totals;
  friend bool operator==(const allocation_account&, const allocation_account&) = default;
};

/// Outcome of applying an entry.
enum class apply_outcome : uint8_t { applied, duplicate };

/// The ledger: per-allocation accounts and aggregated rows. Pure in-memory
/// state; serialise with to_json.
class ledger_state {
public:
  /// `period` is the aggregation period (e.g. 1h); must be positive.
  explicit ledger_state(duration period = std::chrono::hours{1});

  /// Applies `e` once: duplicate (and no change) when (allocation,
  /// sequence) was applied before. invalid_argument (and no change) when the
  /// entry is malformed: negative GPU-ms, used > allocated,
  /// negative price, end before start, or a span crossing a period.
  [[nodiscard]] result<apply_outcome> apply(const usage_entry& e);

  /// True when (allocation, sequence) was applied.
  bool applied(allocation_id a, uint64_t sequence) const;

  duration period() const noexcept { return period_; }
  const std::map<ledger_key, usage_totals>& rows() const noexcept { return rows_; }
  const std::map<allocation_id, allocation_account>& accounts() const noexcept {
    return accounts_;
  }
  /// Everything applied.
  usage_totals total() const;
  /// Totals of `tenant` in the period holding `t` (all of the tenant's rows
  /// of that period).
  usage_totals tenant_period(std::string_view tenant, time_point t) const;

  friend bool operator==(const ledger_state&, const ledger_state&) = default;

private:
  friend result<ledger_state> ledger_state_from_json(std::string_view);
  duration period_;
  std::map<allocation_id, allocation_account> accounts_;
  std::map<ledger_key, usage_totals> rows_;
};

/// The state as compact JSON (a schema version, the period, accounts and
/// rows); ledger_state_from_json reads it back to an equal state.
std::string to_json(const ledger_state& s);
/// Reads to_json's output; corrupted (saying what and where) for anything
/// else, including totals that do not add up.
[[nodiscard]] result<ledger_state> ledger_state_from_json(std::string_view text);

// -- budgets ------------------------------------------------------------------

/// A tenant's budget for one period.
struct tenant_budget {
  micro_usd limit{0};          ///< spend allowed per period; 0: no budget
  int64_t warn_permille = 800; ///< warn when spend reaches this share of the limit
  /// Work below this priority is "low priority": blocked once the budget is
  /// exceeded. Work at or above it still runs (and is reported).
  int32_t block_below_priority = 0;
};

enum class budget_status : uint8_t { ok, warn, exceeded };
const char* to_string(budget_status s) noexcept;

struct budget_decision {
  budget_status status = budget_status::ok;
  bool admit = true; ///< may the new work start
  std::string reason;
};

/// What `tenant` spent in the budget window holding `t`: the window is
/// `window` long (a whole number of ledger periods) and starts at a multiple
/// of it since the Unix epoch (UTC); the spend is the cost of the ledger's
/// rows whose period starts in it.
[[nodiscard]] micro_usd budget_spend(const ledger_state& s, std::string_view tenant,
                                     time_point t, duration window);

/// Whether new work of `priority` may start for a tenant that has spent
/// `spent` this period. exceeded when spent >= limit (limit > 0); warn when
/// spent * 1000 >= limit * warn_permille; admit is false only when exceeded
/// and priority < block_below_priority.
budget_decision check_budget(const tenant_budget& budget, micro_usd spent,
                             int32_t priority);

// -- reports ------------------------------------------------------------------

/// What a report groups by (any combination; none: one row with the total).
struct report_grouping {
  bool period = true;
  bool tenant = true;
  bool team = false;
  bool project = false;
  bool env = false;
};

/// One report row; fields not grouped by are empty (period_start_ms -1).
struct report_row {
  int64_t period_start_ms = -1;
  std::string tenant;
  std::string team;
  std::string project;
  std::string env;
  usage_totals totals;
  friend bool operator==(const report_row&, const report_row&) = default;
};

/// Rows of `s` whose period starts in [from, to), grouped as asked, sorted by
/// the grouping key; only tenant `only_tenant`'s when it is not empty (what a
/// tenant's own report shows, whatever the grouping).
std::vector<report_row> make_report(const ledger_state& s, const report_grouping& g,
                                    time_point from = time_point::min(),
                                    time_point to = time_point::max(),
                                    std::string_view only_tenant = {});

/// CSV with a header line: period_start_ms,tenant,team,project,env,gpu_ms,
/// used_gpu_ms,idle_gpu_ms,gpu_hours,cost_usd,used_cost_usd,idle_cost_usd,
/// entries. Text fields are quoted when they hold a comma, quote or line
/// break (RFC 4180); money has six decimals, gpu_hours three (rounded half
/// up, display only).
std::string render_csv(const std::vector<report_row>& rows);
/// A JSON array of objects with the same fields; money also as integer
/// `*_micro_usd`.
std::string render_json(const std::vector<report_row>& rows);

} // namespace troupe::finops
