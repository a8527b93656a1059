// `troupe cost` (the showback report: a table, CSV or JSON, grouped by
// period and labels, over a window), `troupe audit` (the FinOps actor's
// audit log), `troupe mig-advice` and `troupe spot-notice` (tell the head a
// node's spot capacity goes away): the head's HTTP API (docs/API.md,
// /v1/costs, /v1/finops/audit, /v1/finops/mig-advice,
// /v1/nodes/{node}/spot-notice).

#include "cost_cmds.hpp"

#include "api_client.hpp"
#include "troupe/finops/ledger.hpp"

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

namespace troupe::tools {
namespace {

using json = nlohmann::json;

struct cost_opts {
  std::string group = "period,tenant";
  std::string from;
  std::string to;
  std::string tenant;
  bool csv = false;
};

/// A time for --from/--to: ms since the Unix epoch, or a UTC date
/// YYYY-MM-DD with an optional THH:MM[:SS].
std::optional<int64_t> parse_time_ms(const std::string& s) {
  int64_t ms = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), ms);
  if (ec == std::errc{} && end == s.data() + s.size())
    return ms >= 0 ? std::optional{ms} : std::nullopt;
  std::tm tm{};
  std::istringstream in{s};
  in >> std::get_time(&tm, "%Y-%m-%d");
  if (in.fail()) return std::nullopt;
  if (in.peek() == 'T') {
    in.get();
    in >> std::get_time(&tm, "%H:%M");
    if (in.fail()) return std::nullopt;
    if (in.peek() == ':') {
      in.get();
      int sec = -1;
      in >> sec;
      if (in.fail() || sec < 0 || sec > 60) return std::nullopt;
      tm.tm_sec = sec;
    }
  }
  if (in.peek() != std::char_traits<char>::eof()) return std::nullopt;
  auto t = ::timegm(&tm);
  if (t < 0) return std::nullopt;
  return int64_t{t} * 1000;
}

std::string utc_text(int64_t ms) {
  std::time_t t = ms / 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

/// GPU-ms as GPU-hours with three decimals, rounded half up (display only).
std::string hours_text(int64_t gpu_ms) {
  int64_t thousandths = (gpu_ms + 1'800) / 3'600;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%03lld",
                static_cast<long long>(thousandths / 1000),
                static_cast<long long>(thousandths % 1000));
  return buf;
}

int run_cost(api_opts o, const cost_opts& c) {
  if (!resolve(o, "cost")) return 2;
  std::string path = "/v1/costs?group=" + c.group;
  for (auto [flag, text] : {std::pair{"from", &c.from}, {"to", &c.to}}) {
    if (text->empty()) continue;
    auto ms = parse_time_ms(*text);
    if (!ms) {
      std::cerr
          << "troupe cost: --" << flag
          << ": expected YYYY-MM-DD[THH:MM[:SS]] (UTC) or ms since the epoch, got \""
          << *text << "\"\n";
      return 2;
    }
    path += std::string{"&"} + flag + "_ms=" + std::to_string(*ms);
  }
  if (!c.tenant.empty()) path += "&tenant=" + c.tenant;
  if (c.csv) {
    auto text = call_text(o, "cost", "GET", path + "&format=csv");
    if (!text) return 1;
    std::cout << *text;
    return 0;
  }
  auto j = call(o, "cost", "GET", path);
  if (!j) return 1;
  if (o.json_out) {
    std::cout << j->dump(2) << '\n';
    return 0;
  }
  // Only the columns grouped by, then the figures.
  std::vector<std::string> keys;
  for (auto k : {"period", "tenant", "team", "project", "env"})
    if (("," + c.group + ",").find(std::string{","} + k + ",") != std::string::npos)
      keys.emplace_back(k);
  auto cell = [](const json& row, const std::string& key) {
    if (key == "period")
      return row.contains("period_start_ms") && row["period_start_ms"].is_number()
                 ? utc_text(row["period_start_ms"].get<int64_t>())
                 : std::string{};
    auto v = row.value(key, std::string{});
    return v.empty() ? std::string{"-"} : v;
  };
  // Rows and the total alike from their integer fields (GPU-ms, micro-USD).
  auto line = [&](const json& row, const std::vector<std::string>& label) {
    for (size_t i = 0; i < keys.size(); ++i)
      std::cout << std::left << std::setw(keys[i] == "period" ? 18 : 14) << label[i];
    auto usd = [&](const char* k) {
      return finops::format_usd(micro_usd{row.value(k, int64_t{0})});
    };
    std::cout << std::right << std::setw(12)
              << hours_text(row.value("gpu_ms", int64_t{0})) << std::setw(14)
              << usd("cost_micro_usd") << std::setw(14) << usd("used_cost_micro_usd")
              << std::setw(14) << usd("idle_cost_micro_usd") << '\n';
  };
  for (auto& k : keys) {
    std::string h = k;
    for (auto& ch : h)
      ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    std::cout << std::left << std::setw(k == "period" ? 18 : 14)
              << (k == "period" ? "PERIOD (UTC)" : h);
  }
  std::cout << std::right << std::setw(12) << "GPU-HOURS" << std::setw(14) << "COST $"
            << std::setw(14) << "USED $" << std::setw(14) << "IDLE $" << '\n';
  for (auto& row : (*j)["rows"]) {
    std::vector<std::string> label;
    for (auto& k : keys)
      label.push_back(cell(row, k));
    line(row, label);
  }
  if (j->contains("total") && !keys.empty()) {
    std::vector<std::string> label(keys.size(), "");
    label[0] = "TOTAL";
    line((*j)["total"], label);
  }
  return 0;
}

int run_audit(api_opts o, uint64_t after, uint32_t limit) {
  if (!resolve(o, "audit")) return 2;
  auto j = call(o, "audit", "GET",
                "/v1/finops/audit?after=" + std::to_string(after) +
                    "&limit=" + std::to_string(limit));
  if (!j) return 1;
  if (o.json_out) {
    std::cout << j->dump(2) << '\n';
    return 0;
  }
  for (auto& r : (*j)["records"]) {
    // Every record names its action and reason; the rest as key=value.
    std::cout << r.value("seq", uint64_t{0}) << ' ' << r.value("action", "?");
    for (auto& [k, v] : r.items())
      if (k != "seq" && k != "action")
        std::cout << ' ' << k << '=' << (v.is_string() ? v.get<std::string>() : v.dump());
    std::cout << '\n';
  }
  return 0;
}

int run_mig_advice(api_opts o) {
  if (!resolve(o, "mig-advice")) return 2;
  auto j = call(o, "mig-advice", "GET", "/v1/finops/mig-advice");
  if (!j) return 1;
  if (o.json_out) {
    std::cout << j->dump(2) << '\n';
    return 0;
  }
  if ((*j)["pools"].empty())
    std::cout << "no serving replica holding a whole GPU has reported its memory yet\n";
  for (auto& p : (*j)["pools"]) {
    if (p.contains("error")) {
      std::cout << p.value("gpu_model", "?") << ": " << p.value("error", "") << '\n';
      continue;
    }
    std::cout << p.value("gpu_model", "?") << ": " << p.value("summary", "") << '\n';
    int gpu = 0;
    for (auto& g : p["layout"]) {
      std::cout << "  MIG GPU " << gpu++ << ":";
      for (auto& i : g["instances"])
        std::cout << ' ' << i.value("profile", "") << '@' << i.value("start", 0) << '='
                  << i.value("replica", "");
      std::cout << '\n';
    }
    if (!p["whole_gpu"].empty()) {
      std::cout << "  whole GPUs:";
      for (auto& r : p["whole_gpu"])
        std::cout << ' ' << r.get<std::string>();
      std::cout << '\n';
    }
  }
  return 0;
}

int run_spot_notice(api_opts o, const std::string& node, uint32_t deadline_s) {
  if (!resolve(o, "spot-notice")) return 2;
  auto j =
      call(o, "spot-notice", "POST",
           "/v1/nodes/" + node + "/spot-notice?deadline_s=" + std::to_string(deadline_s));
  if (!j) return 1;
  if (o.json_out) {
    std::cout << j->dump(2) << '\n';
    return 0;
  }
  std::cout << node << ": " << (*j)["steps"].size() << " step(s), "
            << j->value("gpus_to_reschedule", int64_t{0}) << " GPU(s) to reschedule, "
            << j->value("lost_gpu_ms", int64_t{0}) << " GPU-ms of work lost\n";
  for (auto& s : (*j)["steps"])
    std::cout << "  " << s.dump() << '\n';
  return 0;
}

} // namespace

void add_cost_commands(CLI::App& app, std::function<int()>& run) {
  auto o = std::make_shared<api_opts>();
  auto c = std::make_shared<cost_opts>();
  auto* cost = app.add_subcommand(
      "cost", "Showback: GPU-hours and cost (used and idle) by period and labels");
  add_api_options(cost, *o);
  cost->add_option("--group", c->group,
                   "Comma-separated: period, tenant, team, project, env");
  cost->add_option("--from", c->from,
                   "Periods starting at or after (YYYY-MM-DD[THH:MM[:SS]] UTC, or ms)");
  cost->add_option("--to", c->to, "Periods starting before");
  cost->add_option("--tenant", c->tenant, "One tenant's rows (admins)");
  cost->add_flag("--csv", c->csv, "CSV (RFC 4180) instead of a table");
  cost->callback([&run, o, c] { run = [o, c] { return run_cost(*o, *c); }; });

  auto after = std::make_shared<uint64_t>(0);
  auto limit = std::make_shared<uint32_t>(100);
  auto* audit = app.add_subcommand(
      "audit", "The FinOps audit log: idle notices, reclaims, spot notices (admins)");
  add_api_options(audit, *o);
  audit->add_option("--after", *after, "Records after this sequence number");
  audit->add_option("--limit", *limit, "How many")->check(CLI::Range(1, 1000));
  audit->callback([&run, o, after, limit] {
    run = [o, after, limit] { return run_audit(*o, *after, *limit); };
  });

  auto* mig = app.add_subcommand(
      "mig-advice",
      "MIG layouts that would hold the serving replicas on fewer GPUs (admins)");
  add_api_options(mig, *o);
  mig->callback([&run, o] { run = [o] { return run_mig_advice(*o); }; });

  auto node = std::make_shared<std::string>();
  auto deadline = std::make_shared<uint32_t>(120);
  auto* notice = app.add_subcommand(
      "spot-notice",
      "A node's spot capacity goes away: checkpoint and move its work (admins)");
  add_api_options(notice, *o);
  notice->add_option("node", *node, "Node name")->required();
  notice->add_option("--deadline", *deadline, "Seconds until the capacity goes away")
      ->check(CLI::Range(0, 86400));
  notice->callback([&run, o, node, deadline] {
    run = [o, node, deadline] { return run_spot_notice(*o, *node, *deadline); };
  });
}

} // namespace troupe::tools
