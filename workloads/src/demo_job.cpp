#include "troupe/workloads/demo_job.hpp"

#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/random.hpp"
#include "troupe/runtime/supervisor.hpp"

#include <cmath>
#include <fmt/format.h>
#include <ostream>
#include <thread>

namespace troupe::workloads {
namespace {

using shard_atom = caf::atom_constant<caf::atom("shard")>;
using add_atom = caf::atom_constant<caf::atom("add")>;
using total_atom = caf::atom_constant<caf::atom("total")>;

/// Hits inside the unit quarter circle among `samples` seeded points.
uint64_t count_hits(uint64_t seed, uint64_t shard, uint64_t samples) {
  uint64_t state = seed * 0x9e3779b97f4a7c15ULL + shard + 1;
  uint64_t hits = 0;
  for (uint64_t i = 0; i < samples; ++i) {
    double x = unit_double(state);
    double y = unit_double(state);
    hits += (x * x + y * y <= 1.0) ? 1 : 0;
  }
  return hits;
}

std::string worker_name(uint32_t i) {
  return "gpu-worker-" + std::to_string(i);
}

/// One worker: registers its name, computes shards. `crash_shard` makes the
/// first attempt at that shard fail (fault injection for the demo).
class shard_worker final : public actor {
public:
  shard_worker(caf::actor_config& cfg, uint32_t index, uint64_t seed, uint64_t samples,
               int64_t crash_shard, std::shared_ptr<std::atomic<bool>> crashed)
      : actor(cfg), index_(index), seed_(seed), samples_(samples),
        crash_shard_(crash_shard), crashed_(std::move(crashed)) {}

  const char* name() const override { return "shard_worker"; }

  behavior make_behavior() override {
    if (auto r = register_as(worker_name(index_)); !r.ok())
      quit(caf::make_error(caf::sec::runtime_error, r.err().to_string()));
    return {[this](shard_atom, uint64_t shard) -> caf::result<uint64_t> {
      if (static_cast<int64_t>(shard) == crash_shard_ && !crashed_->exchange(true)) {
        quit(caf::make_error(caf::sec::runtime_error,
                             "injected fault: worker crashed on shard " +
                                 std::to_string(shard)));
        return caf::make_error(caf::sec::runtime_error, "worker crashed");
      }
      return count_hits(seed_, shard, samples_);
    }};
  }

private:
  uint32_t index_;
  uint64_t seed_;
  uint64_t samples_;
  int64_t crash_shard_;
  std::shared_ptr<std::atomic<bool>> crashed_;
};

/// Sums hits and samples.
class aggregator final : public actor {
public:
  using actor::actor;
  const char* name() const override { return "aggregator"; }
  behavior make_behavior() override {
    if (auto r = register_as("aggregator"); !r.ok())
      quit(caf::make_error(caf::sec::runtime_error, r.err().to_string()));
    return {
        [this](add_atom, uint64_t hits, uint64_t samples) {
          hits_ += hits;
          samples_ += samples;
        },
        [this](total_atom) { return caf::make_message(hits_, samples_); },
    };
  }

private:
  uint64_t hits_ = 0;
  uint64_t samples_ = 0;
};

} // namespace

double reference_estimate(const demo_options& opt) {
  uint64_t hits = 0;
  for (uint64_t s = 0; s < opt.shards; ++s)
    hits += count_hits(opt.seed, s, opt.samples_per_shard);
  return 4.0 * static_cast<double>(hits) /
         static_cast<double>(opt.shards * opt.samples_per_shard);
}

result<demo_report> run_demo(node& n, const demo_options& opt, std::ostream& out) {
  if (opt.workers == 0 || opt.shards == 0 || opt.samples_per_shard == 0)
    return error{runtime::errc::invalid_argument,
                 "demo: workers, shards and samples must be > 0"};
  auto crashed = std::make_shared<std::atomic<bool>>(false);
  auto pool = n.make_supervisor_spec("worker-pool", restart_strategy::one_for_one);
  for (uint32_t i = 0; i < opt.workers; ++i)
    pool.children.push_back(worker<shard_worker>(worker_name(i), restart_type::permanent,
                                                 i, opt.seed, opt.samples_per_shard,
                                                 opt.crash_shard, crashed));
  auto root = n.make_supervisor_spec("demo", restart_strategy::one_for_one);
  root.children.push_back(child_spec{
      "aggregator",
      [](caf::actor_system& sys) { return actor_ref{sys.spawn<aggregator>()}; },
      restart_type::permanent});
  root.children.push_back(supervisor_child("worker-pool", pool));
  n.spawn_supervisor(root);
  out << fmt::format("troupe demo: {} workers, {} shards x {} samples (seed {})\n",
                     opt.workers, opt.shards, opt.samples_per_shard, opt.seed);

  // Wait until every worker has registered.
  for (uint32_t i = 0; i < opt.workers; ++i) {
    for (int tries = 0; !n.lookup(worker_name(i)).ok(); ++tries) {
      if (tries > 5000)
        return error{runtime::errc::timeout, "demo: workers did not start"};
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
  }
  auto agg = n.lookup("aggregator");
  if (!agg.ok()) return std::move(agg).err();
  auto agg_worker = *agg;

  demo_report rep;
  for (uint64_t shard = 0; shard < opt.shards; ++shard) {
    auto target = worker_name(static_cast<uint32_t>(shard % opt.workers));
    for (int attempt = 0;; ++attempt) {
      auto ref = n.lookup(target);
      if (!ref.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
        if (attempt > 5000)
          return error{runtime::errc::timeout, "demo: " + target + " is gone"};
        continue;
      }
      auto hits =
          n.request<uint64_t>(*ref, std::chrono::seconds{30}, shard_atom::value, shard);
      if (hits.ok()) {
        n.tell(agg_worker, add_atom::value, *hits, opt.samples_per_shard);
        ++rep.shards_done;
        if ((shard + 1) % std::max<uint64_t>(1, opt.shards / 8) == 0)
          out << fmt::format("  shard {:>3}/{} done on {}\n", shard + 1, opt.shards,
                             target);
        break;
      }
      ++rep.retries;
      out << fmt::format(
          "  shard {} failed on {} ({}); the supervisor restarts it, retrying\n", shard,
          target, hits.err().message());
      if (attempt > 100) return std::move(hits).err();
      // The crashed worker's name disappears, then the restarted one
      // registers again; lookup above waits for it.
      std::this_thread::sleep_for(std::chrono::milliseconds{2});
    }
  }
  auto total = n.request_message(agg_worker, std::chrono::seconds{30},
                                 caf::make_message(total_atom::value));
  if (!total.ok()) return std::move(total).err();
  auto hits = total->get_as<uint64_t>(0);
  rep.samples = total->get_as<uint64_t>(1);
  rep.pi_estimate = 4.0 * static_cast<double>(hits) / static_cast<double>(rep.samples);
  auto text = n.metrics().expose();
  auto restarts = n.metrics()
                      .get_counter("troupe_supervisor_restarts_total",
                                   "Restarts performed by a supervisor",
                                   {{"supervisor", "worker-pool"}})
                      .value();
  rep.restarts = restarts;
  out << fmt::format(
      "pi ~= {:.6f} from {} samples ({} shards, {} retried, {} restarts)\n",
      rep.pi_estimate, rep.samples, rep.shards_done, rep.retries, rep.restarts);
  if (opt.print_metrics) {
    out << "\n# metrics (Prometheus text format)\n";
    std::string line;
    for (char c : text) {
      if (c != '\n') {
        line += c;
        continue;
      }
      if (line.rfind("troupe_actor_messages_handled_total", 0) == 0 ||
          line.rfind("troupe_supervisor_", 0) == 0 ||
          line.rfind("troupe_actor_handler_seconds_count", 0) == 0)
        out << line << '\n';
      line.clear();
    }
  }
  return rep;
}

} // namespace troupe::workloads
