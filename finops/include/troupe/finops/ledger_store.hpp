#pragma once
/// The durable showback ledger: allocations, their meters and the ledger in
/// the runtime's RocksDB store, applied exactly once across crashes.
///
/// Units and rounding: those of ledger.hpp, unchanged. Usage is counted in
/// int64 GPU-milliseconds by the cumulative rule (an instant counts as its
/// whole milliseconds rounded toward minus infinity; `gpu_milli` thousandths
/// of a GPU held from `start` to `t` is floor(gpu_milli * (floor_ms(t) -
/// floor_ms(start)) / 1000) GPU-ms), so the entries of an allocation always
/// sum to cumulative_gpu_ms(gpu_milli, start, metered_until), however its
/// life was cut into advances, periods and restarts. Money is micro-USD with
/// the per-allocation remainder of `charge`. A utilisation is clamped to
/// [0, 1] (NaN reads as 0) when an operation is accepted and stored as that
/// exact double, so an entry re-derived after a crash has the used GPU-ms of
/// the entry the interrupted call would have made.
///
/// Layout (two column families, see `column_families()`):
/// - `finops_allocations`: one record per allocation, key "a/" + 16 hex
///   digits of the id, a JSON value with the spec (tenant, labels,
///   gpu_milli, start, price history), its end once ended, the meter's
///   position (`metered_until`, `next_sequence`) and the journal of the
///   operation in progress (`target`, `utilisation`).
/// - `finops_ledger`: "meta" (schema version and period); per applied entry
///   "e/" + allocation + "/" + sequence (hex) with the entry and what it
///   cost; per allocation the account "c/" + allocation (applied sequences,
///   money remainder, totals); per aggregation row "r/" + the row's key
///   (period, tenant, team, project, env) with its totals.
///
/// Two writes per operation, the allocation write and the ledger write:
/// 1. The allocation write: the allocation record with the operation
///    journaled in it (`target` = where the meter must get to, with the
///    utilisation to use; an end also sets `end`). One sync put.
/// 2. The ledger write, once per entry the meter makes from `metered_until`
///    to `target` (one per period crossed): one atomic batch that puts the
///    entry, the allocation's account, the entry's row, and the allocation
///    record with the meter moved past the entry (`metered_until` = the
///    entry's end, `next_sequence` + 1).
/// Recovery rule: `open` loads the records and, for every allocation whose
/// `metered_until` is short of its `target`, rebuilds its meter at
/// (`metered_until`, `next_sequence`) and applies the rest of the journaled
/// operation exactly as step 2 would have. Because an entry and the meter
/// position that covers it are written in one batch, the ledger holds
/// entry (a, s) exactly when the record's next_sequence is > s: a crash
/// before a batch loses nothing (the journal re-derives it), a crash after
/// it counts nothing twice (the meter has moved on), and a crash before the
/// allocation write leaves no trace of the operation (the caller repeats
/// it). `open` also checks that each account holds exactly sequences [0,
/// next_sequence) and the allocation's cumulative GPU-ms up to
/// metered_until, and that the accounts and rows agree (corrupted otherwise).
///
/// Every operation is idempotent, so a restarted head may replay the
/// allocation events it is unsure of: starting an allocation again with the
/// same spec, advancing to a time already metered, repeating a price change
/// or an end, are accepted and change nothing.
///
/// Ownership and threads: a `ledger_store` borrows the `runtime::store`
/// (which must outlive it and have been opened with `column_families()`) and
/// keeps the ledger in memory as well. It is not thread-safe: one owner (the
/// FinOps actor's store thread, a test). Writes are sync by default (this is
/// money); they block the calling thread on fsync. After a failed write the
/// memory and the disk may differ, so every later call returns that error:
/// reopen to recover.

#include "troupe/finops/errc.hpp"
#include "troupe/finops/ledger.hpp"
#include "troupe/finops/types.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/store.hpp"
#include "troupe/runtime/strong_id.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace troupe::finops {

/// Where a ledger_store calls its fault hook (tests kill the process there).
enum class ledger_fault_point : uint8_t {
  /// An operation was accepted and will write; nothing of it is written yet.
  before_allocation_write,
  /// The allocation record with the journaled operation is durable; its
  /// ledger writes are not (the gap between the allocation write and the
  /// ledger write).
  after_allocation_write,
  /// One entry's ledger batch is durable; more entries of the same
  /// operation may follow.
  after_ledger_batch,
};

/// "before_allocation_write", "after_allocation_write", "after_ledger_batch".
const char* to_string(ledger_fault_point p) noexcept;

/// How to open a ledger_store.
struct ledger_store_options {
  /// The ledger's aggregation period (entries never cross one). Fixed when
  /// the ledger is created: opening it later with another is invalid_argument.
  duration period = std::chrono::hours{1};
  /// fsync every write (see store.hpp).
  bool sync_writes = true;
  /// Test only: called at each fault point with the allocation concerned
  /// and whether `open` is recovering. Unset in production.
  std::function<void(ledger_fault_point, allocation_id, bool recovering)> fault_hook{};
};

/// What an allocation is: set when it starts, never changed.
struct allocation_spec {
  allocation_id id{0};
  std::string tenant = "default";
  labels cost_labels;    ///< team, project, env, ...
  int64_t gpu_milli = 0; ///< thousandths of a GPU held (8 GPUs = 8000)
  time_point start{};
  micro_usd price_per_gpu_hour{0};
  friend bool operator==(const allocation_spec&, const allocation_spec&) = default;
};

/// A price change: `price` per GPU-hour from `from` on.
struct price_change {
  time_point from{};
  micro_usd price{0};
  friend bool operator==(const price_change&, const price_change&) = default;
};

/// An allocation as the ledger_store keeps it.
struct ledger_allocation {
  allocation_spec spec;
  /// Price changes after the start, in time order.
  std::vector<price_change> price_changes;
  std::optional<time_point> end; ///< set by `end`
  time_point metered_until{}; ///< the meter's position: usage before it is in the ledger
  uint64_t next_sequence = 0; ///< the next entry's sequence number
  /// The journaled operation: the meter must get to `target` with
  /// `utilisation`. Equal to metered_until when nothing is pending.
  time_point target{};
  double utilisation = 0;

  /// The price in force at metered_until.
  micro_usd current_price() const noexcept;
  friend bool operator==(const ledger_allocation&, const ledger_allocation&) = default;
};

/// What `open` found and did.
struct ledger_recovery {
  uint64_t allocations = 0; ///< allocation records loaded
  uint64_t resumed = 0;     ///< allocations with a journaled operation to finish
  uint64_t entries = 0;     ///< entries re-derived and applied by the recovery
};

/// The durable ledger over a borrowed `runtime::store`.
class ledger_store {
public:
  /// Column families the runtime store must be opened with.
  [[nodiscard]] static std::vector<std::string> column_families();

  /// Loads the ledger in `db` (creating it when empty) and finishes any
  /// operation a crash interrupted (the recovery rule above).
  /// invalid_argument for a store opened without `column_families()`, a
  /// period that is not positive or differs from the stored one; corrupted
  /// (saying which record and what is wrong) when a record does not decode
  /// or the records disagree; the store's errors when reading or writing
  /// fails.
  [[nodiscard]] static result<std::unique_ptr<ledger_store>>
  open(runtime::store& db, ledger_store_options options = {});

  ~ledger_store();
  ledger_store(const ledger_store&) = delete;
  ledger_store& operator=(const ledger_store&) = delete;

  /// Records a new allocation (nothing metered yet). The same spec again is
  /// accepted and changes nothing; another spec under a known id is
  /// conflict; invalid_argument for an empty tenant, negative gpu_milli or
  /// price.
  [[nodiscard]] result<void> start(const allocation_spec& spec);

  /// Meters the allocation up to `until` with `utilisation` (0..1) as the
  /// used share, and applies the entries. `until` at or before
  /// metered_until changes nothing. not_found for an unknown id; conflict
  /// past an ended allocation's end.
  [[nodiscard]] result<void> advance(allocation_id id, time_point until,
                                     double utilisation);

  /// Changes the price from `at` on; `at` must be the allocation's
  /// metered_until (advance to it first). The same change again is accepted
  /// and changes nothing. not_found, conflict (another time, or ended),
  /// invalid_argument (negative price).
  [[nodiscard]] result<void> set_price(allocation_id id, time_point at, micro_usd price);

  /// Meters the allocation up to `at` with `utilisation` and closes it. The
  /// same end again is accepted and changes nothing. not_found; conflict
  /// for another end, or `at` before metered_until.
  [[nodiscard]] result<void> end(allocation_id id, time_point at, double utilisation);

  /// The ledger (totals, accounts, rows for reports and budgets).
  [[nodiscard]] const ledger_state& state() const noexcept { return state_; }
  /// Every allocation by id.
  [[nodiscard]] const std::map<allocation_id, ledger_allocation>&
  allocations() const noexcept {
    return allocations_;
  }
  /// What `open` recovered.
  [[nodiscard]] const ledger_recovery& recovery() const noexcept { return recovery_; }

  /// The applied entries of one allocation, from the store, in sequence
  /// order. corrupted when a record does not decode.
  [[nodiscard]] result<std::vector<usage_entry>> entries(allocation_id id) const;

  /// Re-applies every stored entry to a fresh ledger_state and checks it
  /// equals `state()` (O(entries); for tests and audits). corrupted when
  /// it does not, saying where.
  [[nodiscard]] result<void> verify() const;

private:
  ledger_store(runtime::store& db, ledger_store_options options);
  [[nodiscard]] result<void> load();
  [[nodiscard]] result<void> check_failed() const;
  [[nodiscard]] result<void> put_allocation(const ledger_allocation& a);
  /// The allocation write (step 1 of the file comment): `next` replaces
  /// `a` on disk, then in memory, between the two fault points.
  [[nodiscard]] result<void> journal(ledger_allocation& a, ledger_allocation next);
  /// Applies the journaled operation of `a` (step 2 of the file comment).
  [[nodiscard]] result<void> settle(ledger_allocation& a, bool recovering);
  void fault(ledger_fault_point p, allocation_id id, bool recovering) const;

  runtime::store* db_; // borrowed; outlives *this
  ledger_store_options options_;
  ledger_state state_;
  std::map<allocation_id, ledger_allocation> allocations_;
  ledger_recovery recovery_;
  std::optional<error> failed_; ///< a write failed: memory may differ from disk
};

} // namespace troupe::finops
