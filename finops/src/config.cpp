#include "troupe/finops/config.hpp"

#include "troupe/finops/errc.hpp"

#include <cmath>
#include <optional>

namespace troupe::finops {
namespace {

using namespace std::chrono_literals;

void declare_class(config_schema<finops_config>& s, class_section finops_config::*member,
                   const char* name, const char* what, double threshold,
                   std::chrono::nanoseconds window, std::chrono::nanoseconds warm_up,
                   std::chrono::nanoseconds grace) {
  using cs = class_section;
  s.section(std::string{"finops."} + name, member,
            std::string{"Idle detection for "} + what + ".")
      .real("utilisation_threshold", &cs::utilisation_threshold, threshold, {0.0, 1.0},
            "A GPU under this utilisation (0..1) counts as idle.")
      .duration("window", &cs::window, window, duration_range{1s, 24h * 30},
                "Idle this long (every GPU under the threshold): notify the owner.")
      .duration("warm_up", &cs::warm_up, warm_up, duration_range{0s, 24h * 7},
                "Samples this soon after the allocation starts are ignored.")
      .duration("grace", &cs::grace, grace, duration_range{0s, 24h * 7},
                "From the notice to the reclaim, unless utilisation recovers.");
}

int64_t permille(double fraction) {
  return static_cast<int64_t>(std::llround(fraction * 1000.0));
}

} // namespace

config_schema<finops_config> finops_config_schema() {
  using fs = finops_section;
  config_schema<finops_config> s;
  s.section("finops", &finops_config::finops,
            "FinOps: idle reclaim, spot capacity and showback budgets.")
      .boolean("dry_run", &fs::dry_run, true,
               "Only report what idle reclaim would do and save; reclaim nothing.")
      .string_list("exempt_labels", &fs::exempt_labels, {},
                   "Allocations with any of these labels (key=value) are never "
                   "reclaimed.")
      .real("spot_max_share", &fs::spot_max_share, 0.5, {0.0, 1.0},
            "Largest share (0..1) of a tenant's GPUs that may run on spot.")
      .duration("spot_checkpoint_interval", &fs::spot_checkpoint_interval, 30min,
                duration_range{1s, 24h * 7},
                "Spot work must checkpoint at least this often.")
      .string("spot_notice_file", &fs::spot_notice_file, "",
              "A file the node's cloud agent writes with the deadline of a spot "
              "preemption notice (ms since the epoch or YYYY-MM-DDTHH:MM:SSZ); the node "
              "agent forwards each new deadline to the head; \"{node}\" stands for the "
              "node's name. Empty: none.")
      .one_of("spot_notice_cloud", &fs::spot_notice_cloud, "",
              {"", "aws", "gcp", "azure"},
              "Poll this cloud's instance metadata for spot preemption notices "
              "(AWS spot/instance-action, GCE preempted, Azure Scheduled Events); "
              "\"\": none. Not together with spot_notice_file.")
      .string("spot_notice_endpoint", &fs::spot_notice_endpoint, "",
              "The metadata service as http://HOST[:PORT]; empty: the cloud's "
              "(169.254.169.254, metadata.google.internal).")
      .string("spot_notice_vm", &fs::spot_notice_vm, "",
              "Azure: the VM name a Preempt event must name; empty: any event; "
              "\"{node}\" stands for the node's name.")
      .duration("spot_notice_margin", &fs::spot_notice_margin, 10s,
                duration_range{0s, 1h},
                "A checkpoint must end this long before a spot node's deadline.")
      .real("budget_warn_fraction", &fs::budget_warn_fraction, 0.8, {0.0, 1.0},
            "Warn a tenant once its spend reaches this share of its budget.")
      .integer("budget_block_below_priority", &fs::budget_block_below_priority, 0,
               {-1'000'000, 1'000'000},
               "Over budget, new work below this priority is blocked.")
      .string_list("budgets", &fs::budgets, {},
                   "Per tenant, \"tenant=USD\": the spend allowed per budget_period "
                   "(e.g. \"acme=5000\"); tenants not listed have no budget.")
      .duration("budget_period", &fs::budget_period, 24h * 30,
                duration_range{1min, 24h * 366},
                "The budget window (a whole number of ledger periods, aligned to the "
                "Unix epoch, UTC).")
      .duration("ledger_period", &fs::ledger_period, 1h, duration_range{1min, 24h * 31},
                "Showback aggregation period.");
  declare_class(s, &finops_config::training, "training", "training jobs", 0.05, 30min,
                15min, 30min);
  declare_class(s, &finops_config::serving, "serving", "inference services", 0.02, 1h,
                10min, 1h);
  declare_class(s, &finops_config::interactive, "interactive",
                "interactive sessions (notebooks)", 0.05, 1h, 5min, 30min);
  declare_class(s, &finops_config::eval, "eval", "evaluation jobs", 0.05, 20min, 10min,
                15min);
  s.check([](const finops_config& c) -> std::optional<std::string> {
    std::string problems;
    for (size_t i = 0; i < c.finops.exempt_labels.size(); ++i) {
      auto e = parse_exemption(c.finops.exempt_labels[i]);
      if (!e)
        problems += (problems.empty() ? "" : "; ") +
                    std::string{"finops.exempt_labels["} + std::to_string(i) +
                    "]: " + e.err().message();
    }
    if (auto b = to_budgets(c); !b)
      problems += (problems.empty() ? "" : "; ") + b.err().message();
    if (!c.finops.spot_notice_file.empty() && !c.finops.spot_notice_cloud.empty())
      problems += (problems.empty() ? "" : "; ") +
                  std::string{"finops.spot_notice_cloud: not together with "
                              "spot_notice_file (one notice source per node)"};
    if (const auto& e = c.finops.spot_notice_endpoint;
        !e.empty() && e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0)
      problems +=
          (problems.empty() ? "" : "; ") +
          std::string{
              "finops.spot_notice_endpoint: expected http://HOST[:PORT], got \""} +
          e.substr(0, 64) + "\"";
    if (c.finops.ledger_period.count() > 0 &&
        c.finops.budget_period % c.finops.ledger_period != std::chrono::nanoseconds{0})
      problems += (problems.empty() ? "" : "; ") +
                  std::string{"finops.budget_period: must be a whole number of "
                              "ledger_period"};
    if (problems.empty()) return std::nullopt;
    return problems;
  });
  return s;
}

result<idle_policy> to_idle_policy(const finops_config& c) {
  idle_policy p;
  p.dry_run = c.finops.dry_run;
  auto set = [&](workload_class cls, const class_section& s) {
    auto& cp = p.of(cls);
    cp.utilisation_threshold = s.utilisation_threshold;
    cp.window = s.window;
    cp.warm_up = s.warm_up;
    cp.grace = s.grace;
  };
  set(workload_class::training, c.training);
  set(workload_class::serving, c.serving);
  set(workload_class::interactive, c.interactive);
  set(workload_class::eval, c.eval);
  for (const auto& text : c.finops.exempt_labels) {
    auto e = parse_exemption(text);
    if (!e) return std::move(e).err();
    p.exemptions.push_back(std::move(*e));
  }
  if (auto v = p.validate(); !v) return std::move(v).err();
  return p;
}

spot_policy to_spot_policy(const finops_config& c) {
  spot_policy p;
  p.max_spot_share_permille = permille(c.finops.spot_max_share);
  p.max_checkpoint_interval = c.finops.spot_checkpoint_interval;
  p.notice_margin = c.finops.spot_notice_margin;
  return p;
}

result<std::map<std::string, tenant_budget, std::less<>>>
to_budgets(const finops_config& c) {
  std::map<std::string, tenant_budget, std::less<>> out;
  for (size_t i = 0; i < c.finops.budgets.size(); ++i) {
    const auto& text = c.finops.budgets[i];
    auto where = "finops.budgets[" + std::to_string(i) + "]: ";
    auto eq = text.find('=');
    if (eq == 0 || eq == std::string::npos)
      return error{errc::invalid_argument,
                   where + "expected tenant=USD (e.g. acme=5000), got \"" +
                       text.substr(0, 64) + "\""};
    auto tenant = text.substr(0, eq);
    auto limit = parse_usd(std::string_view{text}.substr(eq + 1));
    if (!limit) return error{errc::invalid_argument, where + limit.err().message()};
    if (!out.emplace(tenant, to_budget(c, *limit)).second)
      return error{errc::invalid_argument,
                   where + "a second budget for tenant \"" + tenant + "\""};
  }
  return out;
}

tenant_budget to_budget(const finops_config& c, micro_usd limit) {
  tenant_budget b;
  b.limit = limit;
  b.warn_permille = permille(c.finops.budget_warn_fraction);
  b.block_below_priority = c.finops.budget_block_below_priority;
  return b;
}

} // namespace troupe::finops
