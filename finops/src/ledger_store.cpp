#include "troupe/finops/ledger_store.hpp"

#include "ledger_json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>

namespace troupe::finops {
namespace {

using json = nlohmann::json;
using ledger_json::field;
using ledger_json::int_field;
using ledger_json::totals_json;
using ledger_json::uint_field;

constexpr std::string_view cf_allocations = "finops_allocations";
constexpr std::string_view cf_ledger = "finops_ledger";
constexpr std::string_view meta_key = "meta";
constexpr int store_schema_version = 1;
/// The version of ledger_state's JSON (ledger_io.cpp) that `load` assembles
/// from the account and row records.
constexpr int ledger_json_version = 1;

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string allocation_key(allocation_id id) {
  return "a/" + hex16(id.value());
}
std::string account_key(allocation_id id) {
  return "c/" + hex16(id.value());
}
std::string entry_prefix(allocation_id id) {
  return "e/" + hex16(id.value()) + "/";
}
std::string entry_key(allocation_id id, uint64_t seq) {
  return entry_prefix(id) + hex16(seq);
}
std::string row_key(const ledger_key& k) {
  return "r/" +
         json::array({k.period_start_ms, k.tenant, k.team, k.project, k.env}).dump();
}

int64_t ns_of(time_point t) {
  return t.time_since_epoch().count();
}
time_point at_ns(int64_t ns) {
  return time_point{duration{ns}};
}

double clamp_utilisation(double u) {
  if (std::isnan(u) || u < 0) return 0;
  return u > 1 ? 1 : u;
}

std::string label_or_empty(const labels& l, std::string_view key) {
  auto it = l.find(key);
  return it == l.end() ? std::string{} : it->second;
}

// -- decoding helpers: throw std::runtime_error saying what and where ----------

std::string string_field(const json& obj, const char* key, const std::string& where) {
  const auto& v = field(obj, key, where);
  if (!v.is_string()) throw std::runtime_error(where + "." + key + ": expected a string");
  return v.get<std::string>();
}

labels labels_field(const json& obj, const char* key, const std::string& where) {
  const auto& v = field(obj, key, where);
  if (!v.is_object())
    throw std::runtime_error(where + "." + key + ": expected an object");
  labels out;
  for (const auto& [k, s] : v.items()) {
    if (!s.is_string())
      throw std::runtime_error(where + "." + key + "." + k + ": expected a string");
    out.emplace(k, s.get<std::string>());
  }
  return out;
}

json parse(std::string_view text, const std::string& where) {
  try {
    json j = json::parse(text.begin(), text.end());
    if (!j.is_object()) throw std::runtime_error(where + ": expected a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw std::runtime_error(where + ": " + e.what());
  }
}

// -- allocation records --------------------------------------------------------

std::string encode_allocation(const ledger_allocation& a) {
  json prices = json::array();
  for (const auto& c : a.price_changes)
    prices.push_back(json::array({ns_of(c.from), c.price.value()}));
  json j{{"v", store_schema_version},
         {"id", a.spec.id.value()},
         {"tenant", a.spec.tenant},
         {"labels", a.spec.cost_labels},
         {"gpu_milli", a.spec.gpu_milli},
         {"start_ns", ns_of(a.spec.start)},
         {"price", a.spec.price_per_gpu_hour.value()},
         {"price_changes", std::move(prices)},
         {"end_ns", a.end ? json(ns_of(*a.end)) : json(nullptr)},
         {"metered_ns", ns_of(a.metered_until)},
         {"next_seq", a.next_sequence},
         {"target_ns", ns_of(a.target)},
         {"util", a.utilisation}};
  return j.dump();
}

ledger_allocation decode_allocation(std::string_view key, std::string_view value) {
  const std::string where = "allocation record " + std::string{key};
  json j = parse(value, where);
  if (int_field(j, "v", where) != store_schema_version)
    throw std::runtime_error(where + ".v: expected " +
                             std::to_string(store_schema_version));
  ledger_allocation a;
  a.spec.id = allocation_id{uint_field(j, "id", where)};
  if (allocation_key(a.spec.id) != key)
    throw std::runtime_error(where + ".id: " + std::to_string(a.spec.id.value()) +
                             " does not match the key");
  a.spec.tenant = string_field(j, "tenant", where);
  a.spec.cost_labels = labels_field(j, "labels", where);
  a.spec.gpu_milli = int_field(j, "gpu_milli", where);
  a.spec.start = at_ns(int_field(j, "start_ns", where));
  a.spec.price_per_gpu_hour = micro_usd{int_field(j, "price", where)};
  if (a.spec.tenant.empty() || a.spec.gpu_milli < 0 ||
      a.spec.price_per_gpu_hour.value() < 0)
    throw std::runtime_error(where + ": empty tenant, negative gpu_milli or price");
  const auto& prices = field(j, "price_changes", where);
  if (!prices.is_array())
    throw std::runtime_error(where + ".price_changes: expected an array");
  for (const auto& p : prices) {
    if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() ||
        !p[1].is_number_integer() || p[1].get<int64_t>() < 0)
      throw std::runtime_error(where + ".price_changes: expected [from_ns, price >= 0]");
    a.price_changes.push_back(
        {at_ns(p[0].get<int64_t>()), micro_usd{p[1].get<int64_t>()}});
  }
  const auto& end = field(j, "end_ns", where);
  if (!end.is_null()) {
    if (!end.is_number_integer())
      throw std::runtime_error(where + ".end_ns: expected an integer or null");
    a.end = at_ns(end.get<int64_t>());
  }
  a.metered_until = at_ns(int_field(j, "metered_ns", where));
  a.next_sequence = uint_field(j, "next_seq", where);
  a.target = at_ns(int_field(j, "target_ns", where));
  const auto& util = field(j, "util", where);
  if (!util.is_number()) throw std::runtime_error(where + ".util: expected a number");
  a.utilisation = util.get<double>();
  if (!(a.utilisation >= 0 && a.utilisation <= 1))
    throw std::runtime_error(where + ".util: expected 0..1");
  if (a.metered_until < a.spec.start || a.target < a.metered_until ||
      (a.end && a.target > *a.end))
    throw std::runtime_error(where + ": expected start <= metered <= target <= end");
  for (size_t i = 0; i < a.price_changes.size(); ++i) {
    const auto from = a.price_changes[i].from;
    if (from < a.spec.start || from > a.metered_until ||
        (i > 0 && from < a.price_changes[i - 1].from))
      throw std::runtime_error(
          where + ".price_changes: out of order or outside [start, metered]");
  }
  return a;
}

// -- ledger records ------------------------------------------------------------

std::string encode_entry(const usage_entry& e, const usage_totals& charged) {
  json j{{"a", e.allocation.value()},
         {"s", e.sequence},
         {"tenant", e.tenant},
         {"labels", e.cost_labels},
         {"start_ns", ns_of(e.span.start)},
         {"end_ns", ns_of(e.span.end)},
         {"gpu_ms", e.gpu_ms},
         {"used_gpu_ms", e.used_gpu_ms},
         {"price", e.price_per_gpu_hour.value()},
         {"cost", charged.cost.value()},
         {"used_cost", charged.used_cost.value()}};
  return j.dump();
}

usage_entry decode_entry(std::string_view key, std::string_view value) {
  const std::string where = "ledger entry " + std::string{key};
  json j = parse(value, where);
  usage_entry e;
  e.allocation = allocation_id{uint_field(j, "a", where)};
  e.sequence = uint_field(j, "s", where);
  if (entry_key(e.allocation, e.sequence) != key)
    throw std::runtime_error(where + ": allocation and sequence do not match the key");
  e.tenant = string_field(j, "tenant", where);
  e.cost_labels = labels_field(j, "labels", where);
  e.span = {at_ns(int_field(j, "start_ns", where)), at_ns(int_field(j, "end_ns", where))};
  e.gpu_ms = int_field(j, "gpu_ms", where);
  e.used_gpu_ms = int_field(j, "used_gpu_ms", where);
  e.price_per_gpu_hour = micro_usd{int_field(j, "price", where)};
  return e;
}

std::string encode_account(allocation_id id, const allocation_account& a) {
  // The shape of an account in ledger_state's JSON (ledger_io.cpp), so `load`
  // can hand the records to ledger_state_from_json and get its checks.
  return json{{"id", id.value()},
              {"below", a.applied_below},
              {"above", a.applied_above},
              {"rem", a.remainder},
              {"t", totals_json(a.totals)}}
      .dump();
}

error corrupted(const std::string& what) {
  return error{errc::corrupted, "ledger store: " + what};
}

} // namespace

const char* to_string(ledger_fault_point p) noexcept {
  switch (p) {
  case ledger_fault_point::before_allocation_write:
    return "before_allocation_write";
  case ledger_fault_point::after_allocation_write:
    return "after_allocation_write";
  case ledger_fault_point::after_ledger_batch:
    return "after_ledger_batch";
  }
  return "?";
}

micro_usd ledger_allocation::current_price() const noexcept {
  return price_changes.empty() ? spec.price_per_gpu_hour : price_changes.back().price;
}

std::vector<std::string> ledger_store::column_families() {
  return {std::string{cf_allocations}, std::string{cf_ledger}};
}

ledger_store::ledger_store(runtime::store& db, ledger_store_options options)
    : db_(&db), options_(std::move(options)), state_(options_.period) {}

ledger_store::~ledger_store() = default;

result<std::unique_ptr<ledger_store>> ledger_store::open(runtime::store& db,
                                                         ledger_store_options options) {
  if (options.period.count() <= 0)
    return error{errc::invalid_argument, "ledger store: the period must be positive"};
  auto have = db.column_families();
  for (const auto& cf : column_families())
    if (std::find(have.begin(), have.end(), cf) == have.end())
      return error{errc::invalid_argument, "ledger store: the store at " + db.path() +
                                               " was opened without column family " + cf};
  std::unique_ptr<ledger_store> ls{new ledger_store(db, std::move(options))};
  if (auto r = ls->load(); !r) return std::move(r).err();
  return ls;
}

result<void> ledger_store::load() {
  // The period, fixed at creation.
  auto meta = db_->get(cf_ledger, meta_key);
  if (!meta) return std::move(meta).err();
  const bool fresh = !*meta;
  if (!fresh) {
    try {
      const json m = parse(**meta, "ledger meta");
      if (int_field(m, "v", "ledger meta") != store_schema_version)
        throw std::runtime_error("ledger meta.v: expected " +
                                 std::to_string(store_schema_version));
      const int64_t period = int_field(m, "period_ns", "ledger meta");
      if (period != options_.period.count())
        return error{errc::invalid_argument,
                     "ledger store: the ledger's period is " + std::to_string(period) +
                         " ns, opened with " + std::to_string(options_.period.count()) +
                         " ns"};
    } catch (const std::exception& e) {
      return corrupted(e.what());
    }
  }

  // Allocations, accounts and rows. Decoding errors stop the scan.
  std::optional<error> bad;
  auto scan_json = [&](std::string_view cf, std::string_view prefix, auto&& each) {
    return db_->scan(cf, prefix, [&](std::string_view k, std::string_view v) {
      try {
        each(k, v);
        return true;
      } catch (const std::exception& e) {
        bad = corrupted(e.what());
        return false;
      }
    });
  };
  auto r = scan_json(cf_allocations, "a/", [&](std::string_view k, std::string_view v) {
    auto a = decode_allocation(k, v);
    allocations_.emplace(a.spec.id, std::move(a));
  });
  if (!r) return r;
  if (bad) return *bad;
  json accounts = json::array();
  r = scan_json(cf_ledger, "c/", [&](std::string_view k, std::string_view v) {
    json a = parse(v, "ledger account " + std::string{k});
    const auto id = uint_field(a, "id", "ledger account " + std::string{k});
    if (account_key(allocation_id{id}) != k)
      throw std::runtime_error("ledger account " + std::string{k} +
                               ": the id does not match the key");
    accounts.push_back(std::move(a));
  });
  if (!r) return r;
  if (bad) return *bad;
  json rows = json::array();
  r = scan_json(cf_ledger, "r/", [&](std::string_view k, std::string_view v) {
    const std::string where = "ledger row " + std::string{k};
    json row;
    try {
      row = json::parse(k.substr(2));
      row.push_back(json::parse(v));
    } catch (const json::exception& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
    rows.push_back(std::move(row));
  });
  if (!r) return r;
  if (bad) return *bad;
  if (fresh) {
    // A new ledger: nothing may be here yet.
    if (!allocations_.empty() || !accounts.empty() || !rows.empty())
      return corrupted("allocation or ledger records but no meta record");
    const json m{{"v", store_schema_version}, {"period_ns", options_.period.count()}};
    if (auto w = db_->put(cf_ledger, meta_key, m.dump(), {.sync = options_.sync_writes});
        !w)
      return w;
  }
  const json doc{{"version", ledger_json_version},
                 {"period_ns", options_.period.count()},
                 {"accounts", std::move(accounts)},
                 {"rows", std::move(rows)}};
  auto state = ledger_state_from_json(doc.dump());
  if (!state) return corrupted(state.err().message());
  state_ = std::move(state).value();

  // The accounts must be exactly what the meters' positions say.
  for (const auto& [id, a] : allocations_) {
    const std::string where = "allocation " + std::to_string(id.value()) + ": ";
    auto it = state_.accounts().find(id);
    if (it == state_.accounts().end()) {
      if (a.next_sequence != 0)
        return corrupted(where + "next sequence " + std::to_string(a.next_sequence) +
                         " but no account");
      continue;
    }
    const auto& acct = it->second;
    if (acct.applied_below != a.next_sequence || !acct.applied_above.empty())
      return corrupted(where + "the account applied sequences below " +
                       std::to_string(acct.applied_below) + " (and " +
                       std::to_string(acct.applied_above.size()) +
                       " more) but the meter is at sequence " +
                       std::to_string(a.next_sequence));
    const int64_t metered =
        cumulative_gpu_ms(a.spec.gpu_milli, a.spec.start, a.metered_until);
    if (acct.totals.gpu_ms != metered)
      return corrupted(where + "the account holds " + std::to_string(acct.totals.gpu_ms) +
                       " GPU-ms but the meter has metered " + std::to_string(metered));
  }
  for (const auto& [id, acct] : state_.accounts())
    if (!allocations_.contains(id))
      return corrupted("account of allocation " + std::to_string(id.value()) +
                       " without an allocation record");

  // The recovery rule: finish every journaled operation.
  recovery_.allocations = allocations_.size();
  for (auto& [id, a] : allocations_) {
    if (a.target <= a.metered_until) continue;
    ++recovery_.resumed;
    if (auto s = settle(a, true); !s) return s;
  }
  return {};
}

result<void> ledger_store::check_failed() const {
  if (failed_)
    return error{failed_->code(), "ledger store: an earlier write failed (reopen the "
                                  "ledger to recover): " +
                                      failed_->message()};
  return {};
}

void ledger_store::fault(ledger_fault_point p, allocation_id id, bool recovering) const {
  if (options_.fault_hook) options_.fault_hook(p, id, recovering);
}

result<void> ledger_store::put_allocation(const ledger_allocation& a) {
  auto r = db_->put(cf_allocations, allocation_key(a.spec.id), encode_allocation(a),
                    {.sync = options_.sync_writes});
  if (!r) failed_ = r.err();
  return r;
}

result<void> ledger_store::journal(ledger_allocation& a, ledger_allocation next) {
  const auto id = a.spec.id;
  fault(ledger_fault_point::before_allocation_write, id, false);
  if (auto r = put_allocation(next); !r) return r;
  a = std::move(next);
  fault(ledger_fault_point::after_allocation_write, id, false);
  return {};
}

result<void> ledger_store::settle(ledger_allocation& a, bool recovering) {
  if (a.target <= a.metered_until) return {};
  const auto id = a.spec.id;
  allocation_meter meter{
      id,           a.spec.tenant,     a.spec.cost_labels, a.spec.gpu_milli,
      a.spec.start, a.current_price(), options_.period};
  meter.resume(a.metered_until, a.next_sequence);
  for (const auto& e : meter.advance(a.target, a.utilisation)) {
    auto before_it = state_.accounts().find(id);
    const usage_totals before =
        before_it == state_.accounts().end() ? usage_totals{} : before_it->second.totals;
    auto applied = state_.apply(e);
    if (!applied || *applied != apply_outcome::applied) {
      // Our own meter made the entry and the load checks hold: a bug or a
      // record changed behind our back. Stop writing.
      failed_ = applied ? corrupted("entry (" + std::to_string(id.value()) + ", " +
                                    std::to_string(e.sequence) + ") applied twice")
                        : applied.err();
      return *failed_;
    }
    const auto& acct = state_.accounts().at(id);
    usage_totals charged;
    charged.cost = micro_usd{acct.totals.cost.value() - before.cost.value()};
    charged.used_cost =
        micro_usd{acct.totals.used_cost.value() - before.used_cost.value()};
    const ledger_key k{floor_ms(period_start(e.span.start, options_.period)), e.tenant,
                       label_or_empty(e.cost_labels, ledger_label_keys[0]),
                       label_or_empty(e.cost_labels, ledger_label_keys[1]),
                       label_or_empty(e.cost_labels, ledger_label_keys[2])};
    a.metered_until = e.span.end;
    a.next_sequence = e.sequence + 1;

    runtime::write_batch batch;
    batch.put(cf_ledger, entry_key(id, e.sequence), encode_entry(e, charged));
    batch.put(cf_ledger, account_key(id), encode_account(id, acct));
    batch.put(cf_ledger, row_key(k), totals_json(state_.rows().at(k)).dump());
    batch.put(cf_allocations, allocation_key(id), encode_allocation(a));
    if (auto w = db_->write(std::move(batch), {.sync = options_.sync_writes}); !w) {
      failed_ = w.err();
      return w;
    }
    if (recovering) ++recovery_.entries;
    fault(ledger_fault_point::after_ledger_batch, id, recovering);
  }
  return {};
}

result<void> ledger_store::start(const allocation_spec& spec) {
  if (auto f = check_failed(); !f) return f;
  const std::string where = "allocation " + std::to_string(spec.id.value()) + ": ";
  if (spec.tenant.empty()) return error{errc::invalid_argument, where + "empty tenant"};
  if (spec.gpu_milli < 0)
    return error{errc::invalid_argument,
                 where + "negative gpu_milli " + std::to_string(spec.gpu_milli)};
  if (spec.price_per_gpu_hour.value() < 0)
    return error{errc::invalid_argument,
                 where + "negative price " + format_usd(spec.price_per_gpu_hour)};
  if (auto it = allocations_.find(spec.id); it != allocations_.end()) {
    if (it->second.spec == spec) return {};
    return error{errc::conflict, where + "started before with another spec"};
  }
  ledger_allocation a;
  a.spec = spec;
  a.metered_until = spec.start;
  a.target = spec.start;
  fault(ledger_fault_point::before_allocation_write, spec.id, false);
  if (auto r = put_allocation(a); !r) return r;
  allocations_.emplace(spec.id, std::move(a));
  fault(ledger_fault_point::after_allocation_write, spec.id, false);
  return {};
}

result<void> ledger_store::advance(allocation_id id, time_point until,
                                   double utilisation) {
  if (auto f = check_failed(); !f) return f;
  auto it = allocations_.find(id);
  if (it == allocations_.end())
    return error{errc::not_found,
                 "allocation " + std::to_string(id.value()) + ": unknown"};
  auto& a = it->second;
  if (until <= a.metered_until) return {};
  if (a.end)
    return error{errc::conflict, "allocation " + std::to_string(id.value()) +
                                     ": advance to " + std::to_string(floor_ms(until)) +
                                     " ms past its end at " +
                                     std::to_string(floor_ms(*a.end)) + " ms"};
  ledger_allocation next = a;
  next.target = until;
  next.utilisation = clamp_utilisation(utilisation);
  if (auto r = journal(a, std::move(next)); !r) return r;
  return settle(a, false);
}

result<void> ledger_store::set_price(allocation_id id, time_point at, micro_usd price) {
  if (auto f = check_failed(); !f) return f;
  const std::string where = "allocation " + std::to_string(id.value()) + ": ";
  if (price.value() < 0)
    return error{errc::invalid_argument, where + "negative price " + format_usd(price)};
  auto it = allocations_.find(id);
  if (it == allocations_.end()) return error{errc::not_found, where + "unknown"};
  auto& a = it->second;
  const price_change change{at, price};
  if (std::find(a.price_changes.begin(), a.price_changes.end(), change) !=
      a.price_changes.end())
    return {};
  if (a.end) return error{errc::conflict, where + "price change after its end"};
  if (at != a.metered_until)
    return error{errc::conflict, where + "price change at " +
                                     std::to_string(floor_ms(at)) +
                                     " ms, but it is metered until " +
                                     std::to_string(floor_ms(a.metered_until)) +
                                     " ms (advance to the change first)"};
  ledger_allocation next = a;
  next.price_changes.push_back(change);
  return journal(a, std::move(next));
}

result<void> ledger_store::end(allocation_id id, time_point at, double utilisation) {
  if (auto f = check_failed(); !f) return f;
  const std::string where = "allocation " + std::to_string(id.value()) + ": ";
  auto it = allocations_.find(id);
  if (it == allocations_.end()) return error{errc::not_found, where + "unknown"};
  auto& a = it->second;
  if (a.end) {
    if (*a.end == at) return {};
    return error{errc::conflict, where + "ended at " + std::to_string(floor_ms(*a.end)) +
                                     " ms, not " + std::to_string(floor_ms(at)) + " ms"};
  }
  if (at < a.metered_until)
    return error{errc::conflict, where + "end at " + std::to_string(floor_ms(at)) +
                                     " ms before what is metered (" +
                                     std::to_string(floor_ms(a.metered_until)) + " ms)"};
  ledger_allocation next = a;
  next.end = at;
  next.target = at;
  next.utilisation = clamp_utilisation(utilisation);
  if (auto r = journal(a, std::move(next)); !r) return r;
  return settle(a, false);
}

result<std::vector<usage_entry>> ledger_store::entries(allocation_id id) const {
  std::vector<usage_entry> out;
  std::optional<error> bad;
  auto r =
      db_->scan(cf_ledger, entry_prefix(id), [&](std::string_view k, std::string_view v) {
        try {
          out.push_back(decode_entry(k, v));
          return true;
        } catch (const std::exception& e) {
          bad = corrupted(e.what());
          return false;
        }
      });
  if (!r) return std::move(r).err();
  if (bad) return *bad;
  return out;
}

result<void> ledger_store::verify() const {
  ledger_state replay{options_.period};
  std::optional<error> bad;
  // Keys sort by allocation, then sequence: each allocation's entries are
  // re-applied in the order they were first applied.
  auto r = db_->scan(cf_ledger, "e/", [&](std::string_view k, std::string_view v) {
    try {
      auto applied = replay.apply(decode_entry(k, v));
      if (!applied) {
        bad = corrupted(std::string{k} + ": " + applied.err().message());
        return false;
      }
      return true;
    } catch (const std::exception& e) {
      bad = corrupted(e.what());
      return false;
    }
  });
  if (!r) return r;
  if (bad) return *bad;
  if (!(replay == state_))
    return corrupted("the stored entries re-applied (" +
                     std::to_string(replay.total().entries) + " entries, " +
                     std::to_string(replay.total().gpu_ms) +
                     " GPU-ms) do not give the ledger's totals (" +
                     std::to_string(state_.total().entries) + " entries, " +
                     std::to_string(state_.total().gpu_ms) + " GPU-ms)");
  return {};
}

} // namespace troupe::finops
