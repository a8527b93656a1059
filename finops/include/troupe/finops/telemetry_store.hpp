#pragma once
/// GPU telemetry time series in the runtime's RocksDB store, with
/// downsampling tiers and a bounded size.
///
/// Three tiers, each in its own column family:
/// - `raw` (`telemetry_raw`): every sample, kept `raw_retention` (6 h);
/// - `minute` (`telemetry_minute`): one `sample_summary` per GPU, minute and
///   allocation, kept `minute_retention` (14 d);
/// - `hour` (`telemetry_hour`): the same per hour, kept `hour_retention`
///   (180 d).
/// plus `telemetry_meta` (per-GPU roll-up marks, the tiers' horizons).
///
/// The caller drives time: `append` writes raw samples; `compact(now)` rolls
/// every complete minute since the last roll-up into the minute tier, every
/// complete hour into the hour tier (from the minute tier, so an hour equals
/// the merge of its minutes equals the merge of its raw samples: the sums
/// are integers), and then erases the oldest data of each tier: raw samples
/// before floor_minute(now - raw_retention), minutes before
/// floor_hour(now - minute_retention), hours before
/// floor_hour(now - hour_retention). Roll-up happens before erasure and each
/// step is one atomic write batch, so a crash between steps loses nothing.
/// Samples older than their GPU's last roll-up are refused (they would
/// never reach the coarser tiers).
///
/// Queries pick the finest tier available for each instant: raw from the
/// raw horizon on, minutes between the minute horizon and the raw horizon,
/// hours before that. Horizons are those of the last `compact` (before the
/// first one everything is raw). An aggregate point is returned when its
/// bucket starts inside the window.
///
/// Key encoding (bytewise order = GPU, then time order; integers big-endian):
///   gpu prefix   = u8 node length, node bytes, u32 gpu index      (5+L bytes)
///   raw key      = gpu prefix, u64 ms since the clock's epoch     (13+L)
///   raw value    = u64 allocation, u8 util %, u32 memory MiB, u32 power mW (17)
///   agg key      = gpu prefix, u64 bucket start ms, u64 allocation (21+L)
///   agg value    = u32 samples, u64 util sum, u8 util max, u32 busy samples,
///                  u64 memory sum, u32 memory max, u64 power sum,
///                  u32 power max                                   (41)
/// A sample's uuid is not stored (node and index name the GPU). Times are
/// floored to the millisecond; a second sample of a GPU in the
/// same millisecond replaces the first. The store scans by key prefix, so a
/// range scan seeks with a prefix of the time (blocks of 2^24 ms, about
/// 4.7 h, then larger aligned blocks); each GPU's range in each tier ends
/// with an empty fence entry (all-ones time), so no scan walks into the
/// next GPU's erased entries. A query reads about what it returns, plus the
/// erased entries of at most one 2^24 ms block.
///
/// Size: with node names of L = 16 bytes, 46 bytes per raw sample and 78 per
/// minute or hour entry (key + value, before RocksDB's own per-entry
/// overhead of about 8-20 bytes and block compression), plus per GPU three
/// fences and one meta entry (about 110 bytes). One GPU held by one
/// allocation at a time holds at most `entry_bound` entries per tier:
/// raw (raw_retention + 1 min + I) / interval + 1, minute
/// (minute_retention + 1 h) / 1 min, hour hour_retention / 1 h + 1, where I
/// is the time between compactions. At the defaults (6 h, 14 d, 180 d),
/// 10 s samples and hourly compaction: 2,527 x 46 + 20,220 x 78 +
/// 4,321 x 78 = 2,030,440 bytes ~= 2.0 MB per GPU, so N GPUs take about
/// 2.0 MB x N (1,000 GPUs: 2.0 GB; 10,000: 20 GB). Compacting daily
/// instead raises the raw bound to 10,807 samples (+381 kB per GPU). Each change
/// of allocation inside a minute or hour adds one entry for that bucket.
///
/// Ownership and threads: a `telemetry_store` borrows the `runtime::store`
/// (which must outlive it and have been opened with `column_families()`);
/// it is not thread-safe: one owner (the FinOps actor's store thread, the
/// simulator, a test). With `sync_writes` false (the default) telemetry
/// survives a process crash but not a power loss: it is measurement, not
/// accounting (the ledger keeps the money).

#include "troupe/finops/telemetry.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/store.hpp"

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace troupe::finops {

/// The resolution of a stored point.
enum class telemetry_tier : uint8_t { raw, minute, hour };

/// "raw", "minute", "hour".
const char* to_string(telemetry_tier t) noexcept;

/// Retention of each tier and how samples are judged busy.
struct telemetry_store_options {
  duration raw_retention = std::chrono::hours{6};
  duration minute_retention = std::chrono::hours{24 * 14};
  duration hour_retention = std::chrono::hours{24 * 180};
  /// A sample at or above this utilisation counts as busy in the aggregates.
  uint32_t busy_threshold_pct = 5;
  /// fsync every write (see store.hpp); off by default.
  bool sync_writes = false;

  /// invalid_argument when a retention is under a minute, raw > minute >
  /// hour ordering is broken (raw <= minute <= hour is required), or the
  /// threshold is over 100.
  [[nodiscard]] result<void> validate() const;
};

/// Most entries one GPU can hold in `tier` when one allocation holds it at
/// a time, samples come every `sample_interval` and `compact` runs every
/// `compact_every` (the bound right before a compaction).
[[nodiscard]] uint64_t entry_bound(const telemetry_store_options& o, telemetry_tier tier,
                                   duration sample_interval, duration compact_every);

/// One GPU of the cluster.
struct gpu_ref {
  std::string node;
  uint32_t index = 0;
  friend auto operator<=>(const gpu_ref&, const gpu_ref&) = default;
  friend bool operator==(const gpu_ref&, const gpu_ref&) = default;
};

/// One stored point: a raw sample (summary of one sample) or the summary of
/// a minute or hour bucket of one GPU and one allocation.
struct telemetry_point {
  telemetry_tier tier = telemetry_tier::raw;
  gpu_ref gpu;
  time_point at{}; ///< sample time, or bucket start (ms resolution)
  allocation_id allocation{0};
  sample_summary summary;
  friend bool operator==(const telemetry_point&, const telemetry_point&) = default;
};

/// Where each tier's data starts (set by `compact`; the clock's epoch
/// before the first one).
struct telemetry_horizons {
  time_point raw_from{};
  time_point minute_from{};
  time_point hour_from{};
  friend bool operator==(const telemetry_horizons&, const telemetry_horizons&) = default;
};

/// What one `compact` did.
struct compact_stats {
  uint64_t minutes_written = 0;
  uint64_t hours_written = 0;
  uint64_t raw_erased = 0;
  uint64_t minutes_erased = 0;
  uint64_t hours_erased = 0;
};

/// The telemetry time series over a borrowed `runtime::store`.
class telemetry_store {
public:
  /// Column families the runtime store must be opened with.
  [[nodiscard]] static std::vector<std::string> column_families();

  /// Reads the GPUs and horizons already stored in `db`. invalid_argument
  /// for bad options or a store opened without `column_families()`,
  /// corrupted when the metadata does not decode, the store's errors when
  /// reading fails.
  [[nodiscard]] static result<std::unique_ptr<telemetry_store>>
  open(runtime::store& db, telemetry_store_options options = {});

  /// Writes raw samples in one batch. invalid_argument (nothing written)
  /// when a sample does not validate or is older than its GPU's last
  /// roll-up or the raw horizon; the store's errors when writing fails.
  [[nodiscard]] result<void> append(std::span<const gpu_sample> samples);

  /// Rolls up complete minutes and hours up to `now` and erases what is
  /// past each tier's retention (see the file comment). `now` earlier than
  /// a previous call's only rolls up nothing new. Errors: the store's.
  [[nodiscard]] result<compact_stats> compact(time_point now);

  /// Points of one GPU in `window`, finest tier available, in time order.
  [[nodiscard]] result<std::vector<telemetry_point>> query_gpu(const gpu_ref& gpu,
                                                               time_window window) const;

  /// Points of one allocation (every GPU it had samples on) in `window`,
  /// finest tier available, ordered by GPU, then time. Reads every known
  /// GPU's points in the window: O(points in the window).
  // TODO(perf): an index by allocation when queries by allocation get hot.
  [[nodiscard]] result<std::vector<telemetry_point>>
  query_allocation(allocation_id allocation, time_window window) const;

  /// The summary of everything `query_allocation` returns.
  [[nodiscard]] result<sample_summary> summarise_allocation(allocation_id allocation,
                                                            time_window window) const;

  /// Points of one GPU in one tier only (inspection and tests).
  [[nodiscard]] result<std::vector<telemetry_point>>
  read_tier(telemetry_tier tier, const gpu_ref& gpu, time_window window) const;

  /// Number of entries in a tier, over every known GPU. O(entries).
  [[nodiscard]] result<uint64_t> count(telemetry_tier tier) const;

  /// GPUs that ever had samples, in key order.
  [[nodiscard]] std::vector<gpu_ref> gpus() const;

  [[nodiscard]] const telemetry_horizons& horizons() const noexcept { return horizons_; }
  [[nodiscard]] const telemetry_store_options& options() const noexcept {
    return options_;
  }

private:
  struct gpu_marks {
    gpu_ref gpu;
    uint64_t minute_mark = 0; ///< raw samples before this (ms) are rolled up
    uint64_t hour_mark = 0;   ///< minute entries before this (ms) are rolled up
    uint64_t last = 0;        ///< latest raw sample (ms)
  };

  telemetry_store(runtime::store& db, telemetry_store_options options);
  /// Where the GPU's entries in tier `t` end (exclusive, ms).
  static uint64_t data_end(const gpu_marks& m, telemetry_tier t) noexcept;

  runtime::store* db_; // borrowed; outlives *this
  telemetry_store_options options_;
  telemetry_horizons horizons_;
  telemetry_horizons erased_;             ///< each tier is erased up to here
  std::map<std::string, gpu_marks> gpus_; ///< by encoded gpu prefix
};

} // namespace troupe::finops
