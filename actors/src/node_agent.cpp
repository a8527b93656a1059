#include "troupe/actors/node_agent.hpp"

#include "ticker.hpp"
#include "troupe/actors/finops_actor.hpp"
#include "troupe/actors/process.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/node.hpp"

#include <caf/all.hpp>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

namespace troupe::actors {

bool valid_job_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 64 || id == "." || id == "..") return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

namespace {

using tick_atom = caf::atom_constant<caf::atom("ag_tick")>;
using rerr = runtime::errc;

struct replica_key {
  std::string job;
  uint32_t replica = 0;
  auto operator<=>(const replica_key&) const = default;
};

class node_agent final : public actor {
public:
  node_agent(caf::actor_config& cfg, node_agent_config c)
      : actor(cfg), cfg_(std::move(c)), log_(logging::get("agent")) {}

  const char* name() const override { return "node_agent"; }

  void on_exit() override {
    // The supervisor's destructor SIGKILLs whatever still runs: a node
    // that stops takes its replicas with it (the head restarts them).
    procs_.reset();
    actor::on_exit();
  }

  behavior make_behavior() override {
    procs_ = std::make_unique<process_supervisor>();
    detail::start_ticker(caf::actor_cast<caf::actor_addr>(this), cfg_.poll_interval,
                         tick_atom::value);
    return {
        [this](agent_attach_atom, const caf::actor& manager) {
          manager_ = manager;
          return report();
        },
        [this](agent_launch_atom, const std::string& text) { start_replica(text); },
        [this](agent_stop_atom, const std::string& job, uint32_t replica,
               uint64_t generation) { stop(job, replica, generation); },
        [this](agent_log_atom, const std::string& job, uint32_t replica, uint8_t stream,
               uint64_t offset, uint32_t max_bytes) -> caf::result<std::string> {
          return read_log(job, replica, stream, offset, max_bytes);
        },
        [this](agent_checkpoint_atom, const std::string& job, uint32_t replica,
               uint64_t generation, int32_t signal, uint64_t timeout_ms) {
          checkpoint(job, replica, generation, signal, timeout_ms);
        },
        [this](tick_atom) {
          poll();
          sample_telemetry();
          poll_notices();
        },
    };
  }

private:
  struct running {
    uint64_t generation = 0;
    pid_t pid = 0;
    duration grace = std::chrono::seconds{10};
  };

  std::string log_path(const std::string& job, uint32_t replica, bool err) const {
    return cfg_.jobs_dir + "/" + job + "/replica-" + std::to_string(replica) +
           (err ? ".err" : ".out");
  }

  void emit(nlohmann::json ev) {
    ev["node"] = cfg_.node_name;
    if (manager_) send(manager_, agent_event_atom::value, ev.dump());
  }

  std::string report() const {
    nlohmann::json run = nlohmann::json::array();
    for (auto& [k, r] : running_)
      run.push_back({{"job", k.job},
                     {"replica", k.replica},
                     {"generation", r.generation},
                     {"pid", r.pid}});
    nlohmann::json ex = nlohmann::json::array();
    for (auto& e : exits_)
      ex.push_back(e);
    return nlohmann::json{{"node", cfg_.node_name}, {"running", run}, {"exited", ex}}
        .dump();
  }

  void start_replica(const std::string& text) {
    nlohmann::json l;
    std::string job;
    uint32_t replica = 0;
    uint64_t generation = 0;
    auto fail = [&](const std::string& why) {
      log_->warn("agent: launch of {} replica {} failed: {}", job, replica, why);
      emit({{"kind", "launch_failed"},
            {"job", job},
            {"replica", replica},
            {"generation", generation},
            {"why", why}});
    };
    launch_spec spec;
    try {
      l = nlohmann::json::parse(text);
      job = l.at("job").get<std::string>();
      replica = l.at("replica").get<uint32_t>();
      generation = l.at("generation").get<uint64_t>();
      if (!valid_job_id(job)) return fail("invalid job id");
      spec.argv = l.at("argv").get<std::vector<std::string>>();
      for (auto& [k, v] : l.at("env").items())
        spec.env[k] = v.get<std::string>();
      spec.working_dir = l.value("working_dir", std::string{});
      std::vector<std::string> gpus;
      for (auto& g : l.value("gpus", nlohmann::json::array()))
        gpus.push_back(std::to_string(g.get<uint32_t>()));
      spec.visible_devices = std::move(gpus);
    } catch (const nlohmann::json::exception& e) {
      return fail(std::string{"malformed launch: "} + e.what());
    }
    replica_key key{job, replica};
    if (auto it = running_.find(key); it != running_.end()) {
      if (it->second.generation >= generation) return; // a repeat: already started
      // An older generation still runs: it must not overlap the new one.
      (void)procs_->stop(it->second.pid, duration{0}, clock().now());
    }
    std::error_code ec;
    std::filesystem::create_directories(cfg_.jobs_dir + "/" + job, ec);
    if (ec) return fail("cannot create the job's log directory: " + ec.message());
    if (spec.working_dir.empty()) spec.working_dir = cfg_.jobs_dir + "/" + job;
    for (const char* keep : {"PATH", "HOME", "LANG", "TMPDIR"})
      if (!spec.env.count(keep))
        if (const char* v = std::getenv(keep)) spec.env[keep] = v;
    spec.env["TROUPE_JOB_ID"] = job;
    spec.env["TROUPE_REPLICA"] = std::to_string(replica);
    spec.env["TROUPE_NODE"] = cfg_.node_name;
    spec.stdout_path = log_path(job, replica, false);
    spec.stderr_path = log_path(job, replica, true);
    spec.exec_helper = cfg_.exec_helper;
    spec.checkpoint_done_path = done_path(job, replica);
    auto pid = procs_->launch(spec);
    if (!pid.ok()) return fail(pid.err().message());
    running r;
    r.generation = generation;
    r.pid = *pid;
    r.grace = std::chrono::milliseconds{l.value("grace_ms", int64_t{10000})};
    running_[key] = r;
    by_pid_[*pid] = key;
    log_->info("agent: started {} replica {} (generation {}) as pid {}", job, replica,
               generation, *pid);
    emit({{"kind", "started"},
          {"job", job},
          {"replica", replica},
          {"generation", generation},
          {"pid", *pid}});
  }

  void stop(const std::string& job, uint32_t replica, uint64_t generation) {
    auto it = running_.find(replica_key{job, replica});
    if (it == running_.end() || it->second.generation != generation) return;
    if (auto r = procs_->stop(it->second.pid, it->second.grace, clock().now()); !r.ok())
      log_->warn("agent: stop of {} replica {}: {}", job, replica, r.err().to_string());
  }

  std::string done_path(const std::string& job, uint32_t replica) const {
    return cfg_.jobs_dir + "/" + job + "/replica-" + std::to_string(replica) +
           ".checkpointed";
  }

  void checkpoint(const std::string& job, uint32_t replica, uint64_t generation,
                  int32_t signal, uint64_t timeout_ms) {
    nlohmann::json ev = {{"kind", "checkpoint_timed_out"},
                         {"job", job},
                         {"replica", replica},
                         {"generation", generation}};
    auto it = running_.find(replica_key{job, replica});
    if (it == running_.end() || it->second.generation != generation) {
      ev["why"] = "not running here";
      return emit(std::move(ev));
    }
    auto r = procs_->checkpoint(it->second.pid, signal, done_path(job, replica),
                                std::chrono::milliseconds{timeout_ms}, clock().now());
    if (!r.ok()) {
      log_->warn("agent: checkpoint of {} replica {}: {}", job, replica,
                 r.err().to_string());
      ev["why"] = r.err().message();
      return emit(std::move(ev));
    }
    log_->info("agent: {} replica {} asked to checkpoint (signal {})", job, replica,
               signal);
  }

  /// Forwards each new spot notice deadline of this node to the head.
  void poll_notices() {
    if (!cfg_.notices) return;
    auto now = clock().now();
    if (last_notice_poll_ && now - *last_notice_poll_ < cfg_.telemetry_interval) return;
    last_notice_poll_ = now;
    auto n = cfg_.notices->poll();
    if (!n.ok()) {
      if (n.err().message() != notice_error_)
        log_->warn("agent: spot notice: {}", n.err().message());
      notice_error_ = n.err().message();
      return;
    }
    notice_error_.clear();
    if (!*n || *n == forwarded_deadline_) return;
    auto sink = cfg_.telemetry_sink ? cfg_.telemetry_sink() : std::nullopt;
    if (!sink) {
      log_->warn("agent: a spot notice for {} and no FinOps actor to tell; retrying",
                 cfg_.node_name);
      return;
    }
    auto deadline_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>((*n)->time_since_epoch())
            .count();
    log_->warn("agent: spot notice: {} goes at {} ms since the epoch; telling the head",
               cfg_.node_name, deadline_ms);
    // A request, so the FinOps actor's answer (its plan) comes back as a
    // response this agent expects (a reply to a one-way message bounces
    // back to the replier as an unexpected_message error).
    request(*sink, std::chrono::seconds{30}, fo_notice_atom::value,
            nlohmann::json{{"node", cfg_.node_name}, {"deadline_ms", deadline_ms}}.dump())
        .then(
            [this](const std::string& plan) {
              log_->info("agent: the head planned the spot notice: {}",
                         plan.substr(0, 200));
            },
            [this](caf::error& e) {
              log_->warn("agent: the head did not answer the spot notice: {}",
                         caf::to_string(e));
            });
    forwarded_deadline_ = *n;
  }

  void sample_telemetry() {
    if (!cfg_.telemetry) return;
    auto now = clock().now();
    if (last_sample_ && now - *last_sample_ < cfg_.telemetry_interval) return;
    last_sample_ = now;
    auto samples = cfg_.telemetry->sample(finops_wall_now());
    if (!samples.ok()) {
      log_->warn("agent: GPU telemetry: {}", samples.err().to_string());
      return;
    }
    if (samples->empty()) return;
    if (sink_ && ++sends_ % 30 == 0) sink_.reset();
    if (!sink_ && cfg_.telemetry_sink) {
      // A failed lookup may have blocked a while: not again for 10 samples.
      if (skip_lookups_ > 0) {
        --skip_lookups_;
        return;
      }
      sink_ = cfg_.telemetry_sink();
      if (!sink_) skip_lookups_ = 10;
    }
    if (!sink_) return;
    tell(*sink_, fo_samples_atom::value, encode_samples(*samples));
  }

  void poll() {
    auto events = procs_->poll(clock().now());
    // Checkpoint events first: an exit in the same batch forgets the pid.
    for (auto& ev : events) {
      if (ev.what != process_event::kind::checkpoint_confirmed &&
          ev.what != process_event::kind::checkpoint_timed_out)
        continue;
      auto k = by_pid_.find(ev.pid);
      if (k == by_pid_.end()) continue;
      auto it = running_.find(k->second);
      if (it == running_.end()) continue;
      bool ok = ev.what == process_event::kind::checkpoint_confirmed;
      log_->info("agent: {} replica {} checkpoint {}", k->second.job, k->second.replica,
                 ok ? "confirmed" : "timed out");
      emit({{"kind", ok ? "checkpoint_confirmed" : "checkpoint_timed_out"},
            {"job", k->second.job},
            {"replica", k->second.replica},
            {"generation", it->second.generation}});
    }
    for (auto& ev : events) {
      if (ev.what != process_event::kind::exited) continue;
      auto k = by_pid_.find(ev.pid);
      if (k == by_pid_.end()) continue;
      auto key = k->second;
      by_pid_.erase(k);
      auto it = running_.find(key);
      if (it == running_.end() || it->second.pid != ev.pid) continue;
      nlohmann::json e = {{"kind", "exited"},
                          {"job", key.job},
                          {"replica", key.replica},
                          {"generation", it->second.generation},
                          {"how", to_string(ev.exit.how)},
                          {"code", ev.exit.code}};
      running_.erase(it);
      log_->info("agent: {} replica {} {}", key.job, key.replica, ev.exit.to_string());
      exits_.push_back(e);
      if (exits_.size() > 1000) exits_.pop_front();
      emit(std::move(e));
    }
  }

  caf::result<std::string> read_log(const std::string& job, uint32_t replica,
                                    uint8_t stream, uint64_t offset, uint32_t max_bytes) {
    if (!valid_job_id(job) || stream > 1)
      return caf::make_error(caf::sec::invalid_argument, "invalid job id or stream");
    max_bytes = std::min<uint32_t>(max_bytes, 1u << 20);
    std::ifstream in(log_path(job, replica, stream == 1), std::ios::binary);
    bool runs = running_.count(replica_key{job, replica}) != 0;
    std::string data;
    if (in) {
      in.seekg(0, std::ios::end);
      auto size = static_cast<uint64_t>(std::max<std::streamoff>(in.tellg(), 0));
      if (offset < size) {
        data.resize(std::min<uint64_t>(size - offset, max_bytes));
        in.seekg(static_cast<std::streamoff>(offset));
        in.read(data.data(), static_cast<std::streamsize>(data.size()));
        data.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
      }
      bool at_end = offset + data.size() >= size;
      return nlohmann::json{
          {"data", data}, {"next", offset + data.size()}, {"finished", !runs && at_end}}
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    return nlohmann::json{{"data", ""}, {"next", offset}, {"finished", !runs}}.dump();
  }

  node_agent_config cfg_;
  std::unique_ptr<process_supervisor> procs_;
  caf::actor manager_;
  std::map<replica_key, running> running_;
  std::map<pid_t, replica_key> by_pid_;
  std::deque<nlohmann::json> exits_;
  std::optional<time_point> last_sample_;
  std::optional<time_point> last_notice_poll_;
  std::optional<time_point> forwarded_deadline_; ///< the last notice told to the head
  std::string notice_error_;                     ///< logged once per distinct error
  std::optional<actor_ref> sink_;                ///< the FinOps actor samples go to
  uint64_t sends_ = 0;
  int skip_lookups_ = 0;
  std::shared_ptr<spdlog::logger> log_;
};

} // namespace

result<actor_ref> start_node_agent(node& n, node_agent_config cfg) {
  if (cfg.jobs_dir.empty())
    return error{rerr::invalid_argument, "the node agent needs a jobs directory"};
  std::error_code ec;
  std::filesystem::create_directories(cfg.jobs_dir, ec);
  if (ec)
    return error{rerr::invalid_argument,
                 "cannot create jobs directory " + cfg.jobs_dir + ": " + ec.message()};
  if (n.lookup(agent_actor_name).ok())
    return error{rerr::already_exists, "this node already runs a node agent"};
  auto ref =
      n.adopt(actor_ref{n.system().spawn<node_agent, caf::detached>(std::move(cfg))});
  if (auto r = n.register_name(agent_actor_name, ref); !r) return std::move(r).err();
  return ref;
}

} // namespace troupe::actors
