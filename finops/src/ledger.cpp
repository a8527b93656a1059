#include "troupe/finops/ledger.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace troupe::finops {
namespace {

using i128 = __int128;

int64_t checked(i128 v, const char* what) {
  TROUPE_ASSERT(v >= std::numeric_limits<int64_t>::min() &&
                    v <= std::numeric_limits<int64_t>::max(),
                what);
  return static_cast<int64_t>(v);
}

/// Floor division for a positive divisor.
i128 floor_div(i128 a, i128 b) {
  i128 q = a / b;
  if ((a % b) != 0 && a < 0) --q;
  return q;
}

std::string label_or_empty(const labels& l, std::string_view key) {
  auto it = l.find(key);
  return it == l.end() ? std::string{} : it->second;
}

std::string ms_text(time_point t) {
  return std::to_string(floor_ms(t)) + " ms";
}

} // namespace

int64_t cumulative_gpu_ms(int64_t gpu_milli, time_point start, time_point t) {
  TROUPE_ASSERT(gpu_milli >= 0, "negative gpu_milli");
  const int64_t ms = floor_ms(t) - floor_ms(start);
  if (ms <= 0) return 0;
  return checked(i128{gpu_milli} * ms / 1000, "GPU-ms overflow");
}

micro_usd charge(int64_t gpu_ms, micro_usd price, int64_t& remainder) {
  TROUPE_ASSERT(gpu_ms >= 0 && price.value() >= 0, "negative usage or price");
  TROUPE_ASSERT(remainder >= 0 && remainder < gpu_ms_per_gpu_hour, "bad remainder");
  const i128 n = i128{gpu_ms} * price.value() + remainder;
  remainder = static_cast<int64_t>(n % gpu_ms_per_gpu_hour);
  return micro_usd{checked(n / gpu_ms_per_gpu_hour, "money overflow")};
}

micro_usd cost_of(int64_t gpu_ms, micro_usd price) {
  int64_t r = 0;
  return charge(gpu_ms, price, r);
}

micro_usd share_of(micro_usd cost, int64_t part, int64_t whole) {
  if (whole == 0) return micro_usd{0};
  return micro_usd{
      checked(floor_div(i128{cost.value()} * part, whole), "money share overflow")};
}

std::string format_usd(micro_usd m) {
  const int64_t v = m.value();
  // Work in unsigned so INT64_MIN has a magnitude.
  const uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  std::string frac = std::to_string(mag % 1'000'000);
  frac.insert(0, 6 - frac.size(), '0');
  return (v < 0 ? "-" : "") + std::to_string(mag / 1'000'000) + "." + frac;
}

result<micro_usd> parse_usd(std::string_view text) {
  auto bad = [&](const std::string& why) -> result<micro_usd> {
    return error{errc::invalid_argument,
                 "amount \"" + std::string{text.substr(0, 64)} + "\": " + why};
  };
  if (text.empty()) return bad("empty");
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  constexpr int64_t max_usd = 1'000'000'000'000;
  size_t i = 0;
  int64_t whole = 0;
  for (; i < text.size() && digit(text[i]); ++i) {
    whole = whole * 10 + (text[i] - '0');
    if (whole > max_usd) return bad("more than 10^12 USD");
  }
  if (i == 0) return bad("expected digits, as in 120 or 99.50");
  int64_t frac = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    size_t digits = 0;
    for (; i < text.size() && digit(text[i]); ++i, ++digits) {
      if (digits == 6) return bad("more than six fractional digits");
      frac = frac * 10 + (text[i] - '0');
    }
    if (digits == 0) return bad("expected digits after the point");
    for (; digits < 6; ++digits)
      frac *= 10;
  }
  if (i != text.size()) return bad("expected digits and at most one point");
  return micro_usd{whole * 1'000'000 + frac};
}

std::vector<interval> split_by_period(interval whole, duration period) {
  TROUPE_ASSERT(period.count() > 0, "period must be positive");
  std::vector<interval> out;
  time_point at = whole.start;
  while (at < whole.end) {
    time_point next = period_start(at, period) + period;
    if (next > whole.end) next = whole.end;
    out.push_back({at, next});
    at = next;
  }
  return out;
}

time_point period_start(time_point t, duration period) {
  TROUPE_ASSERT(period.count() > 0, "period must be positive");
  const i128 ns = t.time_since_epoch().count();
  return time_point{
      duration{static_cast<int64_t>(floor_div(ns, period.count()) * period.count())}};
}

int64_t used_gpu_ms(int64_t gpu_ms, double utilisation) {
  if (std::isnan(utilisation) || utilisation < 0) utilisation = 0;
  if (utilisation > 1) utilisation = 1;
  const auto ppm = static_cast<int64_t>(std::llround(utilisation * 1e6));
  return checked(i128{gpu_ms} * ppm / 1'000'000, "used GPU-ms overflow");
}

// -- allocation_meter ---------------------------------------------------------

allocation_meter::allocation_meter(allocation_id id, std::string tenant,
                                   labels cost_labels, int64_t gpu_milli,
                                   time_point start, micro_usd price_per_gpu_hour,
                                   duration period)
    : id_(id), tenant_(std::move(tenant)), labels_(std::move(cost_labels)),
      gpu_milli_(gpu_milli), start_(start), until_(start), price_(price_per_gpu_hour),
      period_(period) {
  TROUPE_ASSERT(gpu_milli >= 0, "negative gpu_milli");
  TROUPE_ASSERT(period.count() > 0, "period must be positive");
}

std::vector<usage_entry> allocation_meter::advance(time_point until, double utilisation) {
  std::vector<usage_entry> out;
  if (until <= until_) return out;
  for (const auto& piece : split_by_period({until_, until}, period_)) {
    const int64_t cum = cumulative_gpu_ms(gpu_milli_, start_, piece.end);
    usage_entry e;
    e.allocation = id_;
    e.sequence = sequence_++;
    e.tenant = tenant_;
    e.cost_labels = labels_;
    e.span = piece;
    e.gpu_ms = cum - metered_;
    e.used_gpu_ms = used_gpu_ms(e.gpu_ms, utilisation);
    e.price_per_gpu_hour = price_;
    metered_ = cum;
    out.push_back(std::move(e));
  }
  until_ = until;
  return out;
}

void allocation_meter::resume(time_point until, uint64_t next_sequence) {
  TROUPE_ASSERT(until >= start_, "resume before the allocation's start");
  until_ = until;
  sequence_ = next_sequence;
  metered_ = cumulative_gpu_ms(gpu_milli_, start_, until);
}

// -- ledger_state -------------------------------------------------------------

void usage_totals::add(const usage_totals& o) noexcept {
  gpu_ms += o.gpu_ms;
  used_gpu_ms += o.used_gpu_ms;
  cost = micro_usd{cost.value() + o.cost.value()};
  used_cost = micro_usd{used_cost.value() + o.used_cost.value()};
  entries += o.entries;
}

ledger_state::ledger_state(duration period) : period_(period) {
  TROUPE_ASSERT(period.count() > 0, "ledger period must be positive");
}

bool ledger_state::applied(allocation_id a, uint64_t sequence) const {
  auto it = accounts_.find(a);
  if (it == accounts_.end()) return false;
  return sequence < it->second.applied_below ||
         it->second.applied_above.contains(sequence);
}

result<apply_outcome> ledger_state::apply(const usage_entry& e) {
  if (applied(e.allocation, e.sequence)) return apply_outcome::duplicate;
  const std::string where = "ledger entry (allocation " +
                            std::to_string(e.allocation.value()) + ", sequence " +
                            std::to_string(e.sequence) + "): ";
  auto bad = [&](std::string what) -> result<apply_outcome> {
    return error{errc::invalid_argument, where + what};
  };
  if (e.gpu_ms < 0) return bad("negative gpu_ms " + std::to_string(e.gpu_ms));
  if (e.used_gpu_ms < 0 || e.used_gpu_ms > e.gpu_ms)
    return bad("used_gpu_ms " + std::to_string(e.used_gpu_ms) + " outside [0, gpu_ms " +
               std::to_string(e.gpu_ms) + "]");
  if (e.price_per_gpu_hour.value() < 0)
    return bad("negative price " + format_usd(e.price_per_gpu_hour));
  if (e.span.end < e.span.start)
    return bad("span ends (" + ms_text(e.span.end) + ") before it starts (" +
               ms_text(e.span.start) + ")");
  const time_point p = period_start(e.span.start, period_);
  if (e.span.end > p + period_)
    return bad("span crosses the period boundary at " + ms_text(p + period_));
  if (e.tenant.empty()) return bad("empty tenant");

  auto& acct = accounts_[e.allocation];
  usage_totals t;
  t.gpu_ms = e.gpu_ms;
  t.used_gpu_ms = e.used_gpu_ms;
  t.cost = charge(e.gpu_ms, e.price_per_gpu_hour, acct.remainder);
  t.used_cost = share_of(t.cost, e.used_gpu_ms, e.gpu_ms);
  t.entries = 1;
  acct.totals.add(t);
  if (e.sequence == acct.applied_below) {
    ++acct.applied_below;
    while (!acct.applied_above.empty() &&
           *acct.applied_above.begin() == acct.applied_below) {
      acct.applied_above.erase(acct.applied_above.begin());
      ++acct.applied_below;
    }
  } else {
    acct.applied_above.insert(e.sequence);
  }
  ledger_key k{floor_ms(p), e.tenant, label_or_empty(e.cost_labels, ledger_label_keys[0]),
               label_or_empty(e.cost_labels, ledger_label_keys[1]),
               label_or_empty(e.cost_labels, ledger_label_keys[2])};
  rows_[std::move(k)].add(t);
  return apply_outcome::applied;
}

usage_totals ledger_state::total() const {
  usage_totals t;
  for (const auto& [k, row] : rows_)
    t.add(row);
  return t;
}

usage_totals ledger_state::tenant_period(std::string_view tenant, time_point t) const {
  const int64_t p = floor_ms(period_start(t, period_));
  usage_totals out;
  auto it = rows_.lower_bound(ledger_key{p, std::string{tenant}, "", "", ""});
  for (;
       it != rows_.end() && it->first.period_start_ms == p && it->first.tenant == tenant;
       ++it)
    out.add(it->second);
  return out;
}

// -- budgets ------------------------------------------------------------------

micro_usd budget_spend(const ledger_state& s, std::string_view tenant, time_point t,
                       duration window) {
  TROUPE_ASSERT(window.count() > 0, "budget window must be positive");
  const time_point from = period_start(t, window);
  micro_usd spent{0};
  for (const auto& r :
       make_report(s, {.period = false, .tenant = true}, from, from + window, tenant))
    spent = micro_usd{spent.value() + r.totals.cost.value()};
  return spent;
}

const char* to_string(budget_status s) noexcept {
  switch (s) {
  case budget_status::ok:
    return "ok";
  case budget_status::warn:
    return "warn";
  case budget_status::exceeded:
    return "exceeded";
  }
  return "?";
}

budget_decision check_budget(const tenant_budget& budget, micro_usd spent,
                             int32_t priority) {
  budget_decision d;
  const int64_t limit = budget.limit.value();
  if (limit <= 0) {
    d.reason = "no budget set";
    return d;
  }
  const std::string of = format_usd(spent) + " of " + format_usd(budget.limit) + " USD";
  if (spent.value() >= limit) {
    d.status = budget_status::exceeded;
    d.admit = priority >= budget.block_below_priority;
    d.reason =
        "budget exceeded: spent " + of +
        (d.admit ? "; priority " + std::to_string(priority) + " still admitted"
                 : "; new work below priority " +
                       std::to_string(budget.block_below_priority) + " is blocked");
    return d;
  }
  if (i128{spent.value()} * 1000 >= i128{limit} * budget.warn_permille) {
    d.status = budget_status::warn;
    d.reason = "budget warning: spent " + of + " (warn at " +
               std::to_string(budget.warn_permille / 10) + "." +
               std::to_string(budget.warn_permille % 10) + "%)";
    return d;
  }
  d.reason = "within budget: spent " + of;
  return d;
}

} // namespace troupe::finops
