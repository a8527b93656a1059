// Ledger serialisation (JSON) and the report renderers.

#include "ledger_json.hpp"
#include "troupe/finops/ledger.hpp"

#include <exception>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <tuple>

namespace troupe::finops {
namespace {

using json = nlohmann::json;
using ledger_json::field;
using ledger_json::int_field;
using ledger_json::totals_json;
using ledger_json::uint_field;

constexpr int ledger_schema_version = 1;

/// Reads what totals_json wrote; throws std::runtime_error saying what is
/// wrong.
usage_totals totals_from(const json& j, const std::string& where) {
  if (!j.is_array() || j.size() != 5)
    throw std::runtime_error(where + ": expected [gpu_ms, used_gpu_ms, cost, used_cost, "
                                     "entries]");
  for (const auto& v : j)
    if (!v.is_number_integer()) throw std::runtime_error(where + ": expected integers");
  usage_totals t;
  t.gpu_ms = j[0].get<int64_t>();
  t.used_gpu_ms = j[1].get<int64_t>();
  t.cost = micro_usd{j[2].get<int64_t>()};
  t.used_cost = micro_usd{j[3].get<int64_t>()};
  t.entries = j[4].get<int64_t>();
  if (t.gpu_ms < 0 || t.used_gpu_ms < 0 || t.used_gpu_ms > t.gpu_ms || t.entries < 0 ||
      t.cost.value() < 0 || t.used_cost.value() < 0 ||
      t.used_cost.value() > t.cost.value())
    throw std::runtime_error(where + ": inconsistent totals");
  return t;
}

bool same_totals(const usage_totals& a, const usage_totals& b) {
  return a == b;
}

// -- renderers ----------------------------------------------------------------

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

/// gpu_ms as hours with three decimals, rounded half up (display only).
std::string gpu_hours_text(int64_t gpu_ms) {
  // 1 thousandth of an hour = 3600 ms.
  const int64_t thousandths = (gpu_ms + 1800) / 3600;
  std::string frac = std::to_string(thousandths % 1000);
  frac.insert(0, 3 - frac.size(), '0');
  return std::to_string(thousandths / 1000) + "." + frac;
}

} // namespace

std::string to_json(const ledger_state& s) {
  json accounts = json::array();
  for (const auto& [id, a] : s.accounts()) {
    accounts.push_back(json{{"id", id.value()},
                            {"below", a.applied_below},
                            {"above", a.applied_above},
                            {"rem", a.remainder},
                            {"t", totals_json(a.totals)}});
  }
  json rows = json::array();
  for (const auto& [k, t] : s.rows()) {
    rows.push_back(json::array(
        {k.period_start_ms, k.tenant, k.team, k.project, k.env, totals_json(t)}));
  }
  json doc{{"version", ledger_schema_version},
           {"period_ns", s.period().count()},
           {"accounts", std::move(accounts)},
           {"rows", std::move(rows)}};
  return doc.dump();
}

result<ledger_state> ledger_state_from_json(std::string_view text) {
  try {
    json doc = json::parse(text.begin(), text.end());
    const std::string top = "ledger";
    if (!doc.is_object()) throw std::runtime_error(top + ": expected an object");
    if (int_field(doc, "version", top) != ledger_schema_version)
      throw std::runtime_error(top + ".version: expected " +
                               std::to_string(ledger_schema_version));
    const int64_t period = int_field(doc, "period_ns", top);
    if (period <= 0) throw std::runtime_error(top + ".period_ns: expected > 0");
    ledger_state s{duration{period}};

    const auto& accounts = field(doc, "accounts", top);
    if (!accounts.is_array())
      throw std::runtime_error(top + ".accounts: expected an array");
    usage_totals from_accounts;
    for (size_t i = 0; i < accounts.size(); ++i) {
      const std::string where = top + ".accounts[" + std::to_string(i) + "]";
      const auto& a = accounts[i];
      if (!a.is_object()) throw std::runtime_error(where + ": expected an object");
      const allocation_id id{uint_field(a, "id", where)};
      allocation_account acct;
      acct.applied_below = uint_field(a, "below", where);
      const auto& above = field(a, "above", where);
      if (!above.is_array())
        throw std::runtime_error(where + ".above: expected an array");
      for (const auto& v : above) {
        if (!v.is_number_unsigned())
          throw std::runtime_error(where + ".above: expected non-negative integers");
        const auto seq = v.get<uint64_t>();
        // Compacted on apply: anything at or below applied_below cannot be here.
        if (seq <= acct.applied_below || !acct.applied_above.insert(seq).second)
          throw std::runtime_error(where + ".above: sequence " + std::to_string(seq) +
                                   " is covered by below or repeated");
      }
      acct.remainder = int_field(a, "rem", where);
      if (acct.remainder < 0 || acct.remainder >= gpu_ms_per_gpu_hour)
        throw std::runtime_error(where + ".rem: expected 0..3599999");
      acct.totals = totals_from(field(a, "t", where), where + ".t");
      const auto applied =
          static_cast<int64_t>(acct.applied_below + acct.applied_above.size());
      if (acct.totals.entries != applied)
        throw std::runtime_error(where + ": " + std::to_string(acct.totals.entries) +
                                 " entries but " + std::to_string(applied) +
                                 " sequence numbers applied");
      if (!s.accounts_.emplace(id, std::move(acct)).second)
        throw std::runtime_error(where + ": allocation " + std::to_string(id.value()) +
                                 " repeated");
      from_accounts.add(s.accounts_.at(id).totals);
    }

    const auto& rows = field(doc, "rows", top);
    if (!rows.is_array()) throw std::runtime_error(top + ".rows: expected an array");
    usage_totals from_rows;
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string where = top + ".rows[" + std::to_string(i) + "]";
      const auto& r = rows[i];
      if (!r.is_array() || r.size() != 6 || !r[0].is_number_integer() ||
          !r[1].is_string() || !r[2].is_string() || !r[3].is_string() ||
          !r[4].is_string())
        throw std::runtime_error(
            where + ": expected [period_start_ms, tenant, team, project, env, totals]");
      ledger_key k{r[0].get<int64_t>(), r[1].get<std::string>(), r[2].get<std::string>(),
                   r[3].get<std::string>(), r[4].get<std::string>()};
      auto t = totals_from(r[5], where + "[5]");
      from_rows.add(t);
      if (!s.rows_.emplace(std::move(k), t).second)
        throw std::runtime_error(where + ": key repeated");
    }
    if (!same_totals(from_accounts, from_rows))
      throw std::runtime_error(top + ": the accounts and the rows do not add up to the "
                                     "same totals");
    return s;
  } catch (const std::exception& e) {
    return error{errc::corrupted, std::string{"ledger state: "} + e.what()};
  }
}

std::vector<report_row> make_report(const ledger_state& s, const report_grouping& g,
                                    time_point from, time_point to,
                                    std::string_view only_tenant) {
  const int64_t from_ms =
      from == time_point::min() ? std::numeric_limits<int64_t>::min() : floor_ms(from);
  const int64_t to_ms =
      to == time_point::max() ? std::numeric_limits<int64_t>::max() : floor_ms(to);
  std::map<std::tuple<int64_t, std::string, std::string, std::string, std::string>,
           usage_totals>
      grouped;
  for (const auto& [k, t] : s.rows()) {
    if (k.period_start_ms < from_ms || k.period_start_ms >= to_ms) continue;
    if (!only_tenant.empty() && k.tenant != only_tenant) continue;
    grouped[{g.period ? k.period_start_ms : -1, g.tenant ? k.tenant : "",
             g.team ? k.team : "", g.project ? k.project : "", g.env ? k.env : ""}]
        .add(t);
  }
  std::vector<report_row> out;
  out.reserve(grouped.size());
  for (auto& [k, t] : grouped) {
    out.push_back(report_row{std::get<0>(k), std::get<1>(k), std::get<2>(k),
                             std::get<3>(k), std::get<4>(k), t});
  }
  return out;
}

std::string render_csv(const std::vector<report_row>& rows) {
  std::string out = "period_start_ms,tenant,team,project,env,gpu_ms,used_gpu_ms,idle_gpu_"
                    "ms,gpu_hours,cost_usd,used_cost_usd,idle_cost_usd,entries\n";
  for (const auto& r : rows) {
    const auto& t = r.totals;
    out += (r.period_start_ms < 0 ? std::string{} : std::to_string(r.period_start_ms)) +
           ',' + csv_field(r.tenant) + ',' + csv_field(r.team) + ',' +
           csv_field(r.project) + ',' + csv_field(r.env) + ',' +
           std::to_string(t.gpu_ms) + ',' + std::to_string(t.used_gpu_ms) + ',' +
           std::to_string(t.idle_gpu_ms()) + ',' + gpu_hours_text(t.gpu_ms) + ',' +
           format_usd(t.cost) + ',' + format_usd(t.used_cost) + ',' +
           format_usd(t.idle_cost()) + ',' + std::to_string(t.entries) + '\n';
  }
  return out;
}

std::string render_json(const std::vector<report_row>& rows) {
  json out = json::array();
  for (const auto& r : rows) {
    const auto& t = r.totals;
    json row{{"tenant", r.tenant},
             {"team", r.team},
             {"project", r.project},
             {"env", r.env},
             {"gpu_ms", t.gpu_ms},
             {"used_gpu_ms", t.used_gpu_ms},
             {"idle_gpu_ms", t.idle_gpu_ms()},
             {"gpu_hours", gpu_hours_text(t.gpu_ms)},
             {"cost_usd", format_usd(t.cost)},
             {"used_cost_usd", format_usd(t.used_cost)},
             {"idle_cost_usd", format_usd(t.idle_cost())},
             {"cost_micro_usd", t.cost.value()},
             {"used_cost_micro_usd", t.used_cost.value()},
             {"idle_cost_micro_usd", t.idle_cost().value()},
             {"entries", t.entries}};
    row["period_start_ms"] =
        r.period_start_ms < 0 ? json(nullptr) : json(r.period_start_ms);
    out.push_back(std::move(row));
  }
  return out.dump();
}

} // namespace troupe::finops
