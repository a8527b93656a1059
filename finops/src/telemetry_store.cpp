#include "troupe/finops/telemetry_store.hpp"

#include "troupe/finops/errc.hpp"

#include <algorithm>
#include <optional>
#include <string_view>

namespace troupe::finops {
namespace {

constexpr std::string_view cf_raw = "telemetry_raw";
constexpr std::string_view cf_minute = "telemetry_minute";
constexpr std::string_view cf_hour = "telemetry_hour";
constexpr std::string_view cf_meta = "telemetry_meta";

constexpr std::string_view meta_horizons_key = "h";
constexpr char meta_gpu_tag = 'g';

constexpr uint64_t minute_ms = 60'000;
constexpr uint64_t hour_ms = 3'600'000;
// The store scans by key prefix only. A range scan seeks to the block of
// 2^24 ms (about 4.7 h) holding its start, then reads aligned blocks as
// large as fit (2^32, 2^40... ms, whole bytes of the time), so it lands close
// to its start instead of walking (and skipping the erased entries of)
// everything before it.
constexpr unsigned block_shift = 24;
// Erasures go to the store in batches of this many.
constexpr size_t erase_batch_ops = 8192;

std::string_view cf_of(telemetry_tier t) noexcept {
  switch (t) {
  case telemetry_tier::raw:
    return cf_raw;
  case telemetry_tier::minute:
    return cf_minute;
  case telemetry_tier::hour:
    return cf_hour;
  }
  return cf_raw;
}

uint64_t to_ms(time_point t) noexcept {
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return ms < 0 ? 0 : static_cast<uint64_t>(ms);
}

time_point from_ms(uint64_t ms) noexcept {
  return time_point{std::chrono::milliseconds{static_cast<int64_t>(ms)}};
}

uint64_t ms_of(duration d) noexcept {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms < 0 ? 0 : static_cast<uint64_t>(ms);
}

uint64_t floor_to(uint64_t ms, uint64_t unit) noexcept {
  return ms - ms % unit;
}

uint64_t sub_sat(uint64_t a, uint64_t b) noexcept {
  return a > b ? a - b : 0;
}

// Big-endian integer codec.
template <class Int> void put_be(std::string& out, Int v) {
  for (int i = static_cast<int>(sizeof(Int)) - 1; i >= 0; --i)
    out += static_cast<char>(static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i)));
}

template <class Int> Int get_be(std::string_view in, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(Int); ++i)
    v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  return static_cast<Int>(v);
}

std::string gpu_prefix(const gpu_ref& g) {
  std::string out;
  out += static_cast<char>(static_cast<uint8_t>(g.node.size()));
  out += g.node;
  put_be<uint32_t>(out, g.index);
  return out;
}

std::optional<gpu_ref> decode_gpu_prefix(std::string_view p) {
  if (p.empty()) return std::nullopt;
  size_t len = static_cast<uint8_t>(p[0]);
  if (p.size() != 1 + len + 4) return std::nullopt;
  return gpu_ref{std::string{p.substr(1, len)}, get_be<uint32_t>(p, 1 + len)};
}

error corrupted(std::string_view what, std::string_view key) {
  std::string hex;
  static constexpr char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < key.size() && i < 48; ++i) {
    auto c = static_cast<uint8_t>(key[i]);
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return error{errc::corrupted,
               "telemetry store: " + std::string{what} + " (key " + hex + ")"};
}

constexpr size_t raw_value_size = 17;
constexpr size_t agg_value_size = 41;

std::string encode_raw(const gpu_sample& s) {
  std::string v;
  v.reserve(raw_value_size);
  put_be<uint64_t>(v, s.allocation.value());
  put_be<uint8_t>(v, static_cast<uint8_t>(s.utilisation_pct));
  put_be<uint32_t>(v, static_cast<uint32_t>(s.memory_used_mib));
  put_be<uint32_t>(v, s.power_mw);
  return v;
}

std::string encode_agg(const sample_summary& s) {
  std::string v;
  v.reserve(agg_value_size);
  put_be<uint32_t>(v, static_cast<uint32_t>(s.samples));
  put_be<uint64_t>(v, s.utilisation_sum);
  put_be<uint8_t>(v, static_cast<uint8_t>(s.utilisation_max));
  put_be<uint32_t>(v, static_cast<uint32_t>(s.busy_samples));
  put_be<uint64_t>(v, s.memory_sum_mib);
  put_be<uint32_t>(v, static_cast<uint32_t>(s.memory_max_mib));
  put_be<uint64_t>(v, s.power_sum_mw);
  put_be<uint32_t>(v, s.power_max_mw);
  return v;
}

// Decodes one entry of `tier` whose key starts with a gpu prefix of
// `prefix_len` bytes.
// Raw entries count as busy at `busy_threshold_pct`.
result<telemetry_point> decode_point(telemetry_tier tier, const gpu_ref& gpu,
                                     size_t prefix_len, std::string_view key,
                                     std::string_view value,
                                     uint32_t busy_threshold_pct) {
  telemetry_point p;
  p.tier = tier;
  p.gpu = gpu;
  if (tier == telemetry_tier::raw) {
    if (key.size() != prefix_len + 8 || value.size() != raw_value_size)
      return corrupted("raw entry of the wrong size", key);
    p.at = from_ms(get_be<uint64_t>(key, prefix_len));
    p.allocation = allocation_id{get_be<uint64_t>(value, 0)};
    gpu_sample s;
    s.utilisation_pct = get_be<uint8_t>(value, 8);
    s.memory_used_mib = get_be<uint32_t>(value, 9);
    s.power_mw = get_be<uint32_t>(value, 13);
    if (s.utilisation_pct > 100 || s.memory_used_mib > max_sample_memory_mib ||
        s.power_mw > max_sample_power_mw)
      return corrupted("raw entry out of range", key);
    p.summary.add(s, busy_threshold_pct);
    return p;
  }
  if (key.size() != prefix_len + 16 || value.size() != agg_value_size)
    return corrupted("aggregate entry of the wrong size", key);
  p.at = from_ms(get_be<uint64_t>(key, prefix_len));
  p.allocation = allocation_id{get_be<uint64_t>(key, prefix_len + 8)};
  auto& s = p.summary;
  s.samples = get_be<uint32_t>(value, 0);
  s.utilisation_sum = get_be<uint64_t>(value, 4);
  s.utilisation_max = get_be<uint8_t>(value, 12);
  s.busy_samples = get_be<uint32_t>(value, 13);
  s.memory_sum_mib = get_be<uint64_t>(value, 17);
  s.memory_max_mib = get_be<uint32_t>(value, 25);
  s.power_sum_mw = get_be<uint64_t>(value, 29);
  s.power_max_mw = get_be<uint32_t>(value, 37);
  if (s.busy_samples > s.samples || s.utilisation_max > 100 ||
      s.utilisation_sum > s.samples * 100)
    return corrupted("aggregate entry out of range", key);
  return p;
}

// Visits the entries of one GPU in `cf` whose time lies in [begin, end), in
// time order, until `visit` returns false. `visit(time_ms, key, value)`.
// Each GPU's key range ends with a fence entry (time 2^64-1, see
// `fence_key`), so a scan that runs off the GPU's last entry stops there
// instead of walking the next GPU's erased entries.
template <class Visit>
result<void> scan_range(runtime::store& db, std::string_view cf,
                        const std::string& prefix, uint64_t begin, uint64_t end,
                        Visit&& visit) {
  if (end <= begin) return ok();
  bool stop = false;
  auto on_entry = [&](std::string_view key, std::string_view value) {
    if (key.size() < prefix.size() + 8) return true; // too short to be ours
    uint64_t t = get_be<uint64_t>(key, prefix.size());
    if (t < begin) return true;
    if (t >= end || !visit(t, key, value)) {
      stop = true;
      return false;
    }
    return true;
  };
  // Blocks in units of 2^block_shift ms: [cur, last].
  uint64_t cur = begin >> block_shift;
  const uint64_t last = (end - 1) >> block_shift;
  while (!stop) {
    // The largest byte-aligned block starting at `cur` that ends by `last`.
    unsigned extra = 0; // extra bits beyond block_shift
    while (extra + 8 <= 64 - block_shift) {
      const unsigned next = extra + 8;
      const uint64_t size = next >= 64 ? 0 : uint64_t{1} << next;
      if (next == 64 - block_shift) {
        if (cur != 0 || last != (~uint64_t{0} >> block_shift)) break;
      } else if (cur % size != 0 || cur + size - 1 > last) {
        break;
      }
      extra = next;
    }
    const unsigned shift = block_shift + extra;
    std::string p = prefix;
    if (shift < 64) {
      std::string t;
      put_be<uint64_t>(t, (cur << block_shift));
      p.append(t, 0, 8 - shift / 8);
    }
    if (auto r = db.scan(cf, p, on_entry); !r) return r;
    const uint64_t step = uint64_t{1} << extra;
    if (shift >= 64 || last - cur < step) break;
    cur += step;
  }
  return ok();
}

// The last key of a GPU's range in a tier: its prefix and all-ones time
// (and allocation). Written with the GPU's first samples; never decoded.
std::string fence_key(const std::string& prefix, telemetry_tier t) {
  return prefix + std::string(t == telemetry_tier::raw ? 8 : 16, '\xff');
}

std::string encode_marks(uint64_t minute_mark, uint64_t hour_mark, uint64_t last) {
  std::string v;
  put_be<uint64_t>(v, minute_mark);
  put_be<uint64_t>(v, hour_mark);
  put_be<uint64_t>(v, last);
  return v;
}

// The horizons, then how far each tier was erased (48 bytes).
std::string encode_horizons(const telemetry_horizons& h,
                            const telemetry_horizons& erased) {
  std::string v;
  for (const auto* x : {&h, &erased}) {
    put_be<uint64_t>(v, to_ms(x->raw_from));
    put_be<uint64_t>(v, to_ms(x->minute_from));
    put_be<uint64_t>(v, to_ms(x->hour_from));
  }
  return v;
}

time_point tier_from(const telemetry_horizons& h, telemetry_tier t) noexcept {
  switch (t) {
  case telemetry_tier::raw:
    return h.raw_from;
  case telemetry_tier::minute:
    return h.minute_from;
  case telemetry_tier::hour:
    return h.hour_from;
  }
  return h.raw_from;
}

} // namespace

const char* to_string(telemetry_tier t) noexcept {
  switch (t) {
  case telemetry_tier::raw:
    return "raw";
  case telemetry_tier::minute:
    return "minute";
  case telemetry_tier::hour:
    return "hour";
  }
  return "?";
}

result<void> telemetry_store_options::validate() const {
  std::string problems;
  auto add = [&](const std::string& p) {
    problems += (problems.empty() ? "" : "; ") + p;
  };
  if (raw_retention < std::chrono::minutes{1}) add("raw_retention under a minute");
  if (minute_retention < std::chrono::minutes{1}) add("minute_retention under a minute");
  if (hour_retention < std::chrono::minutes{1}) add("hour_retention under a minute");
  if (raw_retention > minute_retention) add("raw_retention longer than minute_retention");
  if (minute_retention > hour_retention)
    add("minute_retention longer than hour_retention");
  if (busy_threshold_pct > 100)
    add("busy_threshold_pct " + std::to_string(busy_threshold_pct) + " over 100");
  if (!problems.empty())
    return error{errc::invalid_argument, "telemetry store options: " + problems};
  return ok();
}

uint64_t entry_bound(const telemetry_store_options& o, telemetry_tier tier,
                     duration sample_interval, duration compact_every) {
  switch (tier) {
  case telemetry_tier::raw: {
    // Kept from floor_minute(last compaction - retention), plus what arrived
    // since that compaction.
    const uint64_t span = ms_of(o.raw_retention) + minute_ms + ms_of(compact_every);
    return span / std::max<uint64_t>(1, ms_of(sample_interval)) + 1;
  }
  case telemetry_tier::minute:
    // [floor_hour(c - retention), floor_minute(c)) at the last compaction c.
    return (ms_of(o.minute_retention) + hour_ms) / minute_ms;
  case telemetry_tier::hour:
    return ms_of(o.hour_retention) / hour_ms + 1;
  }
  return 0;
}

uint64_t telemetry_store::data_end(const gpu_marks& m, telemetry_tier t) noexcept {
  switch (t) {
  case telemetry_tier::raw:
    return m.last + 1;
  case telemetry_tier::minute:
    return m.minute_mark;
  case telemetry_tier::hour:
    return m.hour_mark;
  }
  return 0;
}

std::vector<std::string> telemetry_store::column_families() {
  return {std::string{cf_raw}, std::string{cf_minute}, std::string{cf_hour},
          std::string{cf_meta}};
}

telemetry_store::telemetry_store(runtime::store& db, telemetry_store_options options)
    : db_(&db), options_(options) {}

result<std::unique_ptr<telemetry_store>>
telemetry_store::open(runtime::store& db, telemetry_store_options options) {
  if (auto v = options.validate(); !v) return std::move(v).err();
  auto have = db.column_families();
  for (const auto& cf : column_families())
    if (std::find(have.begin(), have.end(), cf) == have.end())
      return error{errc::invalid_argument, "telemetry store: the store at " + db.path() +
                                               " was opened without column family " + cf};
  std::unique_ptr<telemetry_store> ts{new telemetry_store(db, options)};
  std::optional<error> bad;
  auto r = db.scan(cf_meta, "", [&](std::string_view key, std::string_view value) {
    if (key == meta_horizons_key) {
      if (value.size() != 48) {
        bad = corrupted("horizons of the wrong size", key);
        return false;
      }
      ts->horizons_.raw_from = from_ms(get_be<uint64_t>(value, 0));
      ts->horizons_.minute_from = from_ms(get_be<uint64_t>(value, 8));
      ts->horizons_.hour_from = from_ms(get_be<uint64_t>(value, 16));
      ts->erased_.raw_from = from_ms(get_be<uint64_t>(value, 24));
      ts->erased_.minute_from = from_ms(get_be<uint64_t>(value, 32));
      ts->erased_.hour_from = from_ms(get_be<uint64_t>(value, 40));
      return true;
    }
    if (!key.empty() && key[0] == meta_gpu_tag) {
      auto g = decode_gpu_prefix(key.substr(1));
      if (!g || value.size() != 24) {
        bad = corrupted("GPU marks do not decode", key);
        return false;
      }
      ts->gpus_[std::string{key.substr(1)}] =
          gpu_marks{*g, get_be<uint64_t>(value, 0), get_be<uint64_t>(value, 8),
                    get_be<uint64_t>(value, 16)};
      return true;
    }
    bad = corrupted("unknown metadata key", key);
    return false;
  });
  if (!r) return std::move(r).err();
  if (bad) return std::move(*bad);
  return ts;
}

result<void> telemetry_store::append(std::span<const gpu_sample> samples) {
  const uint64_t raw_from = to_ms(horizons_.raw_from);
  runtime::write_batch batch;
  // GPUs this batch touches: their marks, with `last` moved forward.
  std::map<std::string, gpu_marks> touched;
  for (const auto& s : samples) {
    if (auto v = validate(s); !v) return std::move(v).err();
    std::string prefix = gpu_prefix(gpu_ref{s.node, s.gpu_index});
    const uint64_t t = to_ms(s.at);
    auto tt = touched.find(prefix);
    if (tt == touched.end()) {
      auto it = gpus_.find(prefix);
      gpu_marks m = it == gpus_.end() ? gpu_marks{gpu_ref{s.node, s.gpu_index}, 0, 0, 0}
                                      : it->second;
      tt = touched.emplace(prefix, std::move(m)).first;
    }
    auto& m = tt->second;
    if (t < m.minute_mark || t < raw_from)
      return error{errc::invalid_argument,
                   "telemetry store: sample of " + s.node + "/" +
                       std::to_string(s.gpu_index) + " at " + std::to_string(t) +
                       " ms is older than what was already rolled up (" +
                       std::to_string(std::max(m.minute_mark, raw_from)) + " ms)"};
    m.last = std::max(m.last, t);
    std::string key = prefix;
    put_be<uint64_t>(key, t);
    batch.put(cf_raw, key, encode_raw(s));
  }
  if (batch.empty()) return ok();
  for (const auto& [prefix, m] : touched) {
    auto it = gpus_.find(prefix);
    if (it == gpus_.end())
      for (auto tier :
           {telemetry_tier::raw, telemetry_tier::minute, telemetry_tier::hour})
        batch.put(cf_of(tier), fence_key(prefix, tier), "");
    if (it == gpus_.end() || it->second.last != m.last)
      batch.put(cf_meta, std::string(1, meta_gpu_tag) + prefix,
                encode_marks(m.minute_mark, m.hour_mark, m.last));
  }
  if (auto w = db_->write(std::move(batch), runtime::write_options{options_.sync_writes});
      !w)
    return w;
  for (auto& [prefix, m] : touched)
    gpus_[prefix] = std::move(m);
  return ok();
}

result<compact_stats> telemetry_store::compact(time_point now) {
  compact_stats stats;
  const uint64_t now_ms = to_ms(now);
  const runtime::write_options wo{options_.sync_writes};
  const uint32_t threshold = options_.busy_threshold_pct;

  // 1. Roll-ups, one atomic batch per GPU and tier: the `from` tier's
  //    entries in [begin, end) summed into `bucket`-wide entries of the next
  //    tier, written with the GPU's new marks. Returns the entries written.
  auto roll_up = [&](const std::string& prefix, const gpu_marks& marks,
                     telemetry_tier from, telemetry_tier to, uint64_t begin, uint64_t end,
                     uint64_t bucket, std::string new_marks) -> result<uint64_t> {
    std::map<std::pair<uint64_t, uint64_t>, sample_summary> buckets;
    std::optional<error> bad;
    auto r = scan_range(
        *db_, cf_of(from), prefix, begin, end,
        [&](uint64_t t, std::string_view key, std::string_view value) {
          auto p = decode_point(from, marks.gpu, prefix.size(), key, value, threshold);
          if (!p) {
            bad = std::move(p).err();
            return false;
          }
          buckets[{floor_to(t, bucket), p->allocation.value()}].merge(p->summary);
          return true;
        });
    if (!r) return std::move(r).err();
    if (bad) return std::move(*bad);
    runtime::write_batch batch;
    for (const auto& [k, sum] : buckets) {
      std::string key = prefix;
      put_be<uint64_t>(key, k.first);
      put_be<uint64_t>(key, k.second);
      batch.put(cf_of(to), key, encode_agg(sum));
    }
    batch.put(cf_meta, std::string(1, meta_gpu_tag) + prefix, new_marks);
    if (auto w = db_->write(std::move(batch), wo); !w) return std::move(w).err();
    return static_cast<uint64_t>(buckets.size());
  };
  for (auto& [prefix, marks] : gpus_) {
    const uint64_t minute_end = floor_to(now_ms, minute_ms);
    if (minute_end > marks.minute_mark) {
      auto n = roll_up(prefix, marks, telemetry_tier::raw, telemetry_tier::minute,
                       marks.minute_mark, std::min(minute_end, marks.last + 1), minute_ms,
                       encode_marks(minute_end, marks.hour_mark, marks.last));
      if (!n) return std::move(n).err();
      stats.minutes_written += *n;
      marks.minute_mark = minute_end;
    }
    const uint64_t hour_end = floor_to(marks.minute_mark, hour_ms);
    if (hour_end > marks.hour_mark) {
      auto n = roll_up(prefix, marks, telemetry_tier::minute, telemetry_tier::hour,
                       marks.hour_mark, hour_end, hour_ms,
                       encode_marks(marks.minute_mark, hour_end, marks.last));
      if (!n) return std::move(n).err();
      stats.hours_written += *n;
      marks.hour_mark = hour_end;
    }
  }

  // 2. New horizons (never moving back), made durable before the erasures
  //    so queries never look for erased data. How far each tier was erased
  //    is recorded after the erasures, so a crash in between is finished
  //    by the next compact.
  telemetry_horizons h = horizons_;
  h.raw_from = std::max(
      h.raw_from,
      from_ms(floor_to(sub_sat(now_ms, ms_of(options_.raw_retention)), minute_ms)));
  h.minute_from = std::max(
      h.minute_from,
      from_ms(floor_to(sub_sat(now_ms, ms_of(options_.minute_retention)), hour_ms)));
  h.hour_from = std::max(
      h.hour_from,
      from_ms(floor_to(sub_sat(now_ms, ms_of(options_.hour_retention)), hour_ms)));
  if (!(h == horizons_)) {
    if (auto w = db_->put(cf_meta, meta_horizons_key, encode_horizons(h, erased_), wo);
        !w)
      return std::move(w).err();
    horizons_ = h;
  }
  if (erased_ == horizons_) return stats;

  // 3. Erase what is past each tier's horizon.
  runtime::write_batch batch;
  auto flush = [&]() -> result<void> {
    if (batch.empty()) return ok();
    runtime::write_batch b;
    std::swap(b, batch);
    return db_->write(std::move(b), wo);
  };
  struct tier_cut {
    telemetry_tier tier;
    uint64_t from;
    uint64_t before;
    uint64_t* counter;
  };
  const tier_cut cuts[] = {
      {telemetry_tier::raw, to_ms(erased_.raw_from), to_ms(horizons_.raw_from),
       &stats.raw_erased},
      {telemetry_tier::minute, to_ms(erased_.minute_from), to_ms(horizons_.minute_from),
       &stats.minutes_erased},
      {telemetry_tier::hour, to_ms(erased_.hour_from), to_ms(horizons_.hour_from),
       &stats.hours_erased},
  };
  for (const auto& cut : cuts) {
    for (const auto& [prefix, marks] : gpus_) {
      std::vector<std::string> keys;
      // Everything before `from` went at an earlier compact; starting there
      // spares walking over those erased entries.
      auto r = scan_range(*db_, cf_of(cut.tier), prefix, cut.from,
                          std::min(cut.before, data_end(marks, cut.tier)),
                          [&](uint64_t, std::string_view key, std::string_view) {
                            keys.emplace_back(key);
                            return true;
                          });
      if (!r) return std::move(r).err();
      for (auto& k : keys) {
        batch.erase(cf_of(cut.tier), k);
        ++*cut.counter;
        if (batch.size() >= erase_batch_ops)
          if (auto w = flush(); !w) return std::move(w).err();
      }
    }
  }
  if (auto w = flush(); !w) return std::move(w).err();
  if (auto w =
          db_->put(cf_meta, meta_horizons_key, encode_horizons(horizons_, horizons_), wo);
      !w)
    return std::move(w).err();
  erased_ = horizons_;
  return stats;
}

result<std::vector<telemetry_point>>
telemetry_store::read_tier(telemetry_tier tier, const gpu_ref& gpu,
                           time_window window) const {
  std::vector<telemetry_point> out;
  const std::string prefix = gpu_prefix(gpu);
  std::optional<error> bad;
  const uint32_t threshold = options_.busy_threshold_pct;
  auto known = gpus_.find(prefix);
  if (known == gpus_.end()) return out;
  const uint64_t begin = std::max(to_ms(window.begin), to_ms(tier_from(erased_, tier)));
  const uint64_t end = std::min(to_ms(window.end), data_end(known->second, tier));
  auto r = scan_range(*db_, cf_of(tier), prefix, begin, end,
                      [&](uint64_t, std::string_view key, std::string_view value) {
                        auto p =
                            decode_point(tier, gpu, prefix.size(), key, value, threshold);
                        if (!p) {
                          bad = std::move(p).err();
                          return false;
                        }
                        out.push_back(std::move(*p));
                        return true;
                      });
  if (!r) return std::move(r).err();
  if (bad) return std::move(*bad);
  return out;
}

result<std::vector<telemetry_point>>
telemetry_store::query_gpu(const gpu_ref& gpu, time_window window) const {
  if (window.end <= window.begin) return std::vector<telemetry_point>{};
  // Finest tier available at each instant: hours before the minute
  // horizon, minutes before the raw horizon, raw after.
  const time_point minute_cut =
      std::clamp(horizons_.minute_from, window.begin, window.end);
  const time_point raw_cut =
      std::max(minute_cut, std::clamp(horizons_.raw_from, window.begin, window.end));
  const time_point cuts[] = {window.begin, minute_cut, raw_cut, window.end};
  const telemetry_tier tiers[] = {telemetry_tier::hour, telemetry_tier::minute,
                                  telemetry_tier::raw};
  std::vector<telemetry_point> out;
  for (size_t i = 0; i < 3; ++i) {
    const time_point b = cuts[i];
    const time_point e = cuts[i + 1];
    if (b >= e) continue;
    auto part = read_tier(tiers[i], gpu, time_window{b, e});
    if (!part) return std::move(part).err();
    for (auto& p : *part)
      out.push_back(std::move(p));
  }
  return out;
}

result<std::vector<telemetry_point>>
telemetry_store::query_allocation(allocation_id allocation, time_window window) const {
  std::vector<telemetry_point> out;
  for (const auto& [prefix, marks] : gpus_) {
    auto part = query_gpu(marks.gpu, window);
    if (!part) return std::move(part).err();
    for (auto& p : *part)
      if (p.allocation == allocation) out.push_back(std::move(p));
  }
  return out;
}

result<sample_summary> telemetry_store::summarise_allocation(allocation_id allocation,
                                                             time_window window) const {
  auto points = query_allocation(allocation, window);
  if (!points) return std::move(points).err();
  sample_summary s;
  for (const auto& p : *points)
    s.merge(p.summary);
  return s;
}

result<uint64_t> telemetry_store::count(telemetry_tier tier) const {
  uint64_t n = 0;
  for (const auto& [prefix, marks] : gpus_) {
    auto r = scan_range(*db_, cf_of(tier), prefix, to_ms(tier_from(erased_, tier)),
                        data_end(marks, tier),
                        [&](uint64_t, std::string_view, std::string_view) {
                          ++n;
                          return true;
                        });
    if (!r) return std::move(r).err();
  }
  return n;
}

std::vector<gpu_ref> telemetry_store::gpus() const {
  std::vector<gpu_ref> out;
  out.reserve(gpus_.size());
  for (const auto& [prefix, marks] : gpus_)
    out.push_back(marks.gpu);
  return out;
}

} // namespace troupe::finops
