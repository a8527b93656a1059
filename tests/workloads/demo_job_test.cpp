#include "troupe/workloads/demo_job.hpp"

#include <doctest/doctest.h>
#include <sstream>

namespace {

std::unique_ptr<troupe::node> make_node() {
  auto cfg = troupe::default_config();
  cfg.scheduler.threads = 2;
  cfg.metrics.enabled = false;
  cfg.log.level = troupe::log_level::off;
  auto n = troupe::node::start(cfg);
  REQUIRE(n.ok());
  return std::move(*n);
}

} // namespace

TEST_SUITE("demo job") {
  TEST_CASE("the demo survives an injected worker crash and gets the exact answer") {
    auto n = make_node();
    troupe::workloads::demo_options opt;
    opt.workers = 3;
    opt.shards = 12;
    opt.samples_per_shard = 2000;
    opt.crash_shard = 4;
    std::ostringstream out;
    auto rep = troupe::workloads::run_demo(*n, opt, out);
    REQUIRE_MESSAGE(rep.ok(), (rep.ok() ? "" : rep.err().to_string()));
    CHECK(rep->shards_done == 12);
    CHECK(rep->retries == 1);
    CHECK(rep->restarts == 1);
    CHECK(rep->samples == 12 * 2000);
    CHECK(rep->pi_estimate == troupe::workloads::reference_estimate(opt));
    CHECK(out.str().find("supervisor restarts it") != std::string::npos);
    n->stop();
    CHECK(n->failures().empty());
  }

  TEST_CASE("without a crash nothing is retried or restarted") {
    auto n = make_node();
    troupe::workloads::demo_options opt;
    opt.workers = 2;
    opt.shards = 6;
    opt.samples_per_shard = 1000;
    opt.crash_shard = -1;
    std::ostringstream out;
    auto rep = troupe::workloads::run_demo(*n, opt, out);
    REQUIRE(rep.ok());
    CHECK(rep->retries == 0);
    CHECK(rep->restarts == 0);
    CHECK(rep->pi_estimate == troupe::workloads::reference_estimate(opt));
  }

  TEST_CASE("invalid options are rejected") {
    auto n = make_node();
    troupe::workloads::demo_options opt;
    opt.workers = 0;
    std::ostringstream out;
    auto rep = troupe::workloads::run_demo(*n, opt, out);
    REQUIRE_FALSE(rep.ok());
    CHECK(rep.err().is(troupe::runtime::errc::invalid_argument));
  }
}
