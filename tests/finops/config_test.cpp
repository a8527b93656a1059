#include "troupe/finops/config.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using troupe::config_binder;
using troupe::env_map;
using troupe::micro_usd;
using namespace troupe::finops;

namespace {

struct hostile_case {
  std::string what;
  std::string toml;
  env_map env;
  std::vector<std::string> expected;
};

std::vector<hostile_case> hostile_cases() {
  return {
      {"threshold above 1",
       "[finops.training]\nutilisation_threshold = 1.5\n",
       {},
       {"finops.toml:2: finops.training.utilisation_threshold: expected number in [0, "
        "1], got 1.5"}},
      {"NaN threshold",
       "[finops.serving]\nutilisation_threshold = nan\n",
       {},
       {"finops.toml:2: finops.serving.utilisation_threshold:", "got nan"}},
      {"window under a second",
       "[finops.eval]\nwindow = \"10ms\"\n",
       {},
       {"finops.toml:2: finops.eval.window:"}},
      {"negative grace",
       "[finops.interactive]\ngrace = \"-5m\"\n",
       {},
       {"finops.toml:2: finops.interactive.grace:", "(negative)"}},
      {"grace without unit",
       "[finops.training]\ngrace = 30\n",
       {},
       {"finops.toml:2: finops.training.grace:", "got integer 30"}},
      {"dry_run as a string",
       "[finops]\ndry_run = \"yes\"\n",
       {},
       {"finops.toml:2: finops.dry_run: expected boolean, got string \"yes\""}},
      {"exemption without '='",
       "[finops]\nexempt_labels = [\"ok=1\", \"noequals\"]\n",
       {},
       {"finops.exempt_labels[1]", "expected key=value"}},
      {"exemption with an empty key",
       "[finops]\nexempt_labels = [\"=v\"]\n",
       {},
       {"finops.exempt_labels[0]", "empty label key"}},
      {"exemption list of numbers",
       "[finops]\nexempt_labels = [1, 2]\n",
       {},
       {"finops.toml:2: finops.exempt_labels:"}},
      {"spot share above 1",
       "[finops]\nspot_max_share = 2\n",
       {},
       {"finops.toml:2: finops.spot_max_share: expected number in [0, 1], got 2"}},
      {"priority out of range",
       "[finops]\nbudget_block_below_priority = 99999999999\n",
       {},
       {"finops.toml:2: finops.budget_block_below_priority:"}},
      {"ledger period of a second",
       "[finops]\nledger_period = \"1s\"\n",
       {},
       {"finops.toml:2: finops.ledger_period:"}},
      {"budget without '='",
       "[finops]\nbudgets = [\"acme=10\", \"globex\"]\n",
       {},
       {"finops.budgets[1]", "expected tenant=USD"}},
      {"budget without a tenant",
       "[finops]\nbudgets = [\"=10\"]\n",
       {},
       {"finops.budgets[0]", "expected tenant=USD"}},
      {"negative budget",
       "[finops]\nbudgets = [\"acme=-5\"]\n",
       {},
       {"finops.budgets[0]", "expected digits"}},
      {"budget with seven decimals",
       "[finops]\nbudgets = [\"acme=1.0000001\"]\n",
       {},
       {"finops.budgets[0]", "more than six fractional digits"}},
      {"budget in exponent form",
       "[finops]\nbudgets = [\"acme=1e6\"]\n",
       {},
       {"finops.budgets[0]", "expected digits and at most one point"}},
      {"two budgets for one tenant",
       "[finops]\nbudgets = [\"acme=10\", \"acme=20\"]\n",
       {},
       {"finops.budgets[1]", "a second budget for tenant \"acme\""}},
      {"budget window not whole ledger periods",
       "[finops]\nledger_period = \"1h\"\nbudget_period = \"90m\"\n",
       {},
       {"finops.budget_period: must be a whole number of ledger_period"}},
      {"unknown cloud for spot notices",
       "[finops]\nspot_notice_cloud = \"oracle\"\n",
       {},
       {"finops.spot_notice_cloud", "aws"}},
      {"two spot notice sources",
       "[finops]\nspot_notice_cloud = \"aws\"\nspot_notice_file = \"/run/n\"\n",
       {},
       {"finops.spot_notice_cloud: not together with spot_notice_file"}},
      {"metadata endpoint without a scheme",
       "[finops]\nspot_notice_cloud = \"gcp\"\nspot_notice_endpoint = \"10.0.0.1:80\"\n",
       {},
       {"finops.spot_notice_endpoint: expected http://HOST[:PORT], got \"10.0.0.1:80\""}},
      {"unknown class",
       "[finops.batch]\nwindow = \"1h\"\n",
       {},
       {"finops.toml:1: finops.batch: unknown"}},
      {"misspelt key",
       "[finops.training]\nwindw = \"1h\"\n",
       {},
       {"finops.toml:2: finops.training.windw: unknown key (did you mean 'window'?)"}},
      {"a class as a value",
       "[finops]\ntraining = 5\n",
       {},
       {"finops.toml:2: finops.training:"}},
      {"bad environment boolean",
       "",
       {{"TROUPE_FINOPS_DRY_RUN", "maybe"}},
       {"env TROUPE_FINOPS_DRY_RUN:"}},
      {"bad environment duration",
       "",
       {{"TROUPE_FINOPS_TRAINING_WINDOW", "soon"}},
       {"env TROUPE_FINOPS_TRAINING_WINDOW:"}},
      {"misspelt environment variable",
       "",
       {{"TROUPE_FINOPS_DRYRUN", "true"}},
       {"env TROUPE_FINOPS_DRYRUN: unknown setting"}},
      {"garbage bytes",
       std::string("[finops]\n\x01\xff\xfe = 1\n"),
       {},
       {"finops.toml:"}},
  };
}

} // namespace

TEST_SUITE("finops.config") {
  TEST_CASE("the defaults are a valid, safe policy") {
    const auto schema = finops_config_schema();
    const auto c = schema.defaults();
    CHECK(c.finops.dry_run); // nothing is reclaimed until someone says so
    CHECK(c.training.window == 30min);
    CHECK(c.serving.utilisation_threshold == doctest::Approx(0.02));
    auto idle = to_idle_policy(c);
    REQUIRE(idle.ok());
    CHECK(idle->dry_run);
    CHECK(idle->of(workload_class::eval).grace == 15min);
    auto spot = to_spot_policy(c);
    CHECK(spot.max_spot_share_permille == 500);
    CHECK(spot.validate().ok());
    auto budget = to_budget(c, micro_usd{5});
    CHECK(budget.warn_permille == 800);
    CHECK(budget.limit == micro_usd{5});
  }

  TEST_CASE("a finops section loads from TOML and the environment") {
    const auto schema = finops_config_schema();
    const std::string toml = R"([finops]
dry_run = false
exempt_labels = ["finops/exempt=true", "env=dev"]
spot_max_share = 0.25
spot_checkpoint_interval = "15m"
budget_warn_fraction = 0.9
budget_block_below_priority = 5
budgets = ["acme=5000", "globex=120.50"]
budget_period = "168h"

[finops.training]
utilisation_threshold = 0.1
window = "45m"
warm_up = "20m"
grace = "1h"
)";
    auto c = schema.load_string(toml, "finops.toml",
                                {{"TROUPE_FINOPS_SERVING_GRACE", "2h"},
                                 {"TROUPE_FINOPS_EXEMPT_LABELS", "a=b,c=d"}});
    REQUIRE(c.ok());
    CHECK_FALSE(c->finops.dry_run);
    CHECK(c->training.window == 45min);
    CHECK(c->serving.grace == 2h);
    CHECK(c->finops.exempt_labels == std::vector<std::string>{"a=b", "c=d"});
    auto idle = to_idle_policy(*c);
    REQUIRE(idle.ok());
    CHECK_FALSE(idle->dry_run);
    CHECK(idle->of(workload_class::training).utilisation_threshold ==
          doctest::Approx(0.1));
    CHECK(idle->of(workload_class::training).warm_up == 20min);
    REQUIRE(idle->exemptions.size() == 2);
    CHECK(idle->exemptions[1] == label_exemption{"c", "d"});
    auto spot = to_spot_policy(*c);
    CHECK(spot.max_spot_share_permille == 250);
    CHECK(spot.max_checkpoint_interval == 15min);
    auto budget = to_budget(*c, micro_usd{1});
    CHECK(budget.warn_permille == 900);
    CHECK(budget.block_below_priority == 5);
    CHECK(c->finops.budget_period == 168h);
    auto budgets = to_budgets(*c);
    REQUIRE(budgets.ok());
    REQUIRE(budgets->size() == 2);
    CHECK(budgets->at("acme").limit == micro_usd{5'000'000'000});
    CHECK(budgets->at("globex").limit == micro_usd{120'500'000});
    CHECK(budgets->at("globex").warn_permille == 900);
    CHECK(budgets->at("globex").block_below_priority == 5);

    // What to_toml writes loads back to the same config.
    auto again = schema.load_string(schema.to_toml(*c), "round.toml", {});
    REQUIRE(again.ok());
    CHECK(*again == *c);
  }

  TEST_CASE("the finops schema binds next to the node's in one document") {
    auto node_schema = troupe::node_config_schema();
    auto node = node_schema.defaults();
    const auto finops_schema = finops_config_schema();
    auto fin = finops_schema.defaults();
    config_binder b;
    b.bind(node_schema, node).bind(finops_schema, fin);
    auto r = b.load_string("[node]\nname = \"head\"\n[finops.eval]\nwindow = \"5m\"\n",
                           "troupe.toml", {});
    REQUIRE(r.ok());
    CHECK(node.node.name == "head");
    CHECK(fin.eval.window == 5min);
  }

  TEST_CASE("hostile finops config is rejected with file, line and key") {
    const auto schema = finops_config_schema();
    for (const auto& c : hostile_cases()) {
      CAPTURE(c.what);
      auto r = schema.load_string(c.toml, "finops.toml", c.env);
      REQUIRE_FALSE(r.ok());
      CHECK(r.err().is(troupe::runtime::errc::invalid_argument));
      for (const auto& part : c.expected) {
        CAPTURE(part);
        CAPTURE(r.err().message());
        CHECK(r.err().message().find(part) != std::string::npos);
      }
    }
  }

  TEST_CASE("a hand-built config that breaks the policy does not convert") {
    auto c = finops_config_schema().defaults();
    c.finops.exempt_labels = {"broken"};
    auto r = to_idle_policy(c);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().is(errc::invalid_argument));
    c.finops.exempt_labels.clear();
    c.eval.utilisation_threshold = -1;
    CHECK_FALSE(to_idle_policy(c).ok());
  }
}
