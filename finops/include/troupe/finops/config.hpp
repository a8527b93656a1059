#pragma once
/// The `[finops]` configuration: idle thresholds per workload class, dry
/// run, exemptions, spot policy and budget thresholds, declared through the
/// runtime's schema binder (troupe/runtime/config.hpp) so it loads from the
/// node's TOML file and `TROUPE_FINOPS_*` variables like every other module.
///
/// ```toml
/// [finops]
/// dry_run = true
/// exempt_labels = ["finops/exempt=true"]
/// spot_max_share = 0.5
/// budgets = ["acme=5000", "globex=120.50"]   # USD per budget_period
/// budget_period = "720h"
/// [finops.training]
/// utilisation_threshold = 0.05
/// window = "30m"
/// ```

#include "troupe/finops/idle.hpp"
#include "troupe/finops/ledger.hpp"
#include "troupe/finops/spot.hpp"
#include "troupe/runtime/config.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace troupe::finops {

/// [finops.<class>]: idle thresholds of one workload class.
struct class_section {
  double utilisation_threshold = 0.05;
  std::chrono::nanoseconds window{0};
  std::chrono::nanoseconds warm_up{0};
  std::chrono::nanoseconds grace{0};
  bool operator==(const class_section&) const = default;
};

/// [finops]: the module-wide settings.
struct finops_section {
  bool dry_run = true;
  std::vector<std::string> exempt_labels; ///< "key=value"
  double spot_max_share = 0.5;
  std::chrono::nanoseconds spot_checkpoint_interval{0};
  std::chrono::nanoseconds spot_notice_margin{0};
  /// A file the node's cloud agent writes when its spot capacity is about
  /// to go (notice_source.hpp); empty: none.
  std::string spot_notice_file;
  /// The cloud whose metadata service the node agent polls for notices
  /// (cloud_notice.hpp): "" (none), "aws", "gcp" or "azure"; its endpoint
  /// ("" the cloud's) and, on Azure, the VM name its events must name.
  std::string spot_notice_cloud;
  std::string spot_notice_endpoint;
  std::string spot_notice_vm;
  double budget_warn_fraction = 0.8;
  int32_t budget_block_below_priority = 0;
  /// "tenant=USD" per budget window, e.g. "acme=5000" or "globex=120.50".
  std::vector<std::string> budgets;
  std::chrono::nanoseconds budget_period{0}; ///< the budget window (ledger periods)
  std::chrono::nanoseconds ledger_period{0};
  bool operator==(const finops_section&) const = default;
};

/// The whole FinOps configuration; `finops_config_schema().defaults()` holds
/// every default.
struct finops_config {
  finops_section finops;
  class_section training;
  class_section serving;
  class_section interactive;
  class_section eval;
  bool operator==(const finops_config&) const = default;
};

/// The schema: sections [finops], [finops.training], [finops.serving],
/// [finops.interactive], [finops.eval], with limits and docs, plus a check
/// that every exempt label reads as key=value. Built on each call (no global
/// state); bind it next to other modules' schemas with a config_binder.
[[nodiscard]] config_schema<finops_config> finops_config_schema();

/// The idle policy the config describes (a loaded config always converts;
/// invalid_argument for a hand-built one that does not validate).
[[nodiscard]] result<idle_policy> to_idle_policy(const finops_config& c);
/// The spot policy the config describes (fractions become permille,
/// rounded to nearest).
[[nodiscard]] spot_policy to_spot_policy(const finops_config& c);
/// A budget of `limit` per budget window with the config's thresholds.
[[nodiscard]] tenant_budget to_budget(const finops_config& c, micro_usd limit);
/// Every tenant's budget from `budgets` (a tenant without one has none);
/// invalid_argument naming the entry for a malformed or repeated one.
[[nodiscard]] result<std::map<std::string, tenant_budget, std::less<>>>
to_budgets(const finops_config& c);

} // namespace troupe::finops
