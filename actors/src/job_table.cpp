#include "troupe/actors/job_table.hpp"

#include "troupe/actors/errc.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace troupe::actors {

const char* to_string(job_state s) noexcept {
  switch (s) {
  case job_state::pending:
    return "pending";
  case job_state::running:
    return "running";
  case job_state::succeeded:
    return "succeeded";
  case job_state::failed:
    return "failed";
  case job_state::cancelled:
    return "cancelled";
  }
  return "?";
}

const char* to_string(replica_state s) noexcept {
  switch (s) {
  case replica_state::pending:
    return "pending";
  case replica_state::starting:
    return "starting";
  case replica_state::running:
    return "running";
  case replica_state::backoff:
    return "backoff";
  case replica_state::succeeded:
    return "succeeded";
  case replica_state::failed:
    return "failed";
  case replica_state::cancelled:
    return "cancelled";
  }
  return "?";
}

bool is_final(replica_state s) noexcept {
  return s == replica_state::succeeded || s == replica_state::failed ||
         s == replica_state::cancelled;
}

bool is_final(job_state s) noexcept {
  return s == job_state::succeeded || s == job_state::failed || s == job_state::cancelled;
}

namespace {

bool holds_process(replica_state s) noexcept {
  return s == replica_state::starting || s == replica_state::running;
}

/// A command for replica `r` of `job` on its node, its current launch.
job_command replica_command(job_command::kind what, const std::string& job,
                            const replica_record& r) {
  job_command c;
  c.what = what;
  c.job = job;
  c.replica = r.index;
  c.generation = r.generation;
  c.node = r.node;
  return c;
}

} // namespace

bool may_use_spot(const job_record& j) noexcept {
  return j.spec.spot_tolerant && (!j.spot || j.spot->allowed);
}

result<job_table::submitted> job_table::submit(job_spec spec, const std::string& tenant,
                                               time_point now,
                                               std::vector<job_command>& out,
                                               std::optional<spot_admission> spot) {
  if (tenant.empty()) return error{errc::invalid_argument, "a job needs a tenant"};
  if (!spec.idempotency_key.empty()) {
    auto it = idempotency_.find({tenant, spec.idempotency_key});
    if (it != idempotency_.end()) return submitted{it->second, false};
  }
  spec.labels.tenant = tenant;
  job_record j;
  j.id = "j-" + std::to_string(next_job_++);
  j.tenant = tenant;
  j.submitted = now;
  for (uint32_t i = 0; i < spec.replicas; ++i) {
    replica_record r;
    r.index = i;
    j.replicas.push_back(std::move(r));
  }
  j.spec = std::move(spec);
  j.spot = std::move(spot);
  out.push_back(place_command(j, std::nullopt));
  if (!j.spec.idempotency_key.empty())
    idempotency_[{tenant, j.spec.idempotency_key}] = j.id;
  auto id = j.id;
  dirty_.insert(id);
  jobs_.emplace(id, std::move(j));
  return submitted{id, true};
}

void job_table::on_request(const std::string& job, std::optional<uint32_t> replica,
                           uint64_t request_id) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return;
  for (auto& r : it->second.replicas) {
    if (r.state != replica_state::pending) continue;
    if (replica && r.index != *replica) continue;
    r.request = request_id;
  }
  dirty_.insert(job);
}

void job_table::on_placed(uint64_t request_id, uint64_t allocation,
                          const std::vector<placed_bundle>& bundles, time_point now,
                          std::vector<job_command>& out) {
  job_record* owner = nullptr;
  std::vector<replica_record*> waiting;
  for (auto& [id, j] : jobs_) {
    for (auto& r : j.replicas)
      if (r.state == replica_state::pending && r.request == request_id) {
        owner = &j;
        waiting.push_back(&r);
      }
    if (owner != nullptr) break;
  }
  if (owner == nullptr) {
    // Nobody waits for it (cancelled meanwhile, or a request from before a
    // crash that never reached the table): give the capacity back.
    for (auto& b : bundles) {
      job_command c;
      c.what = job_command::kind::release_bundle;
      c.allocation = allocation;
      c.bundle = b.bundle;
      out.push_back(std::move(c));
    }
    return;
  }
  for (auto& b : bundles) {
    // A gang request's bundle i is replica i; a single replica's request
    // has one bundle (0) for that replica.
    replica_record* r = nullptr;
    if (waiting.size() == 1 && bundles.size() == 1)
      r = waiting[0];
    else
      for (auto* w : waiting)
        if (w->index == b.bundle) r = w;
    if (r == nullptr) {
      job_command c;
      c.what = job_command::kind::release_bundle;
      c.allocation = allocation;
      c.bundle = b.bundle;
      out.push_back(std::move(c));
      continue;
    }
    r->request = 0;
    r->allocation = allocation;
    r->bundle = b.bundle;
    r->node = b.node;
    r->gpus = b.gpus;
    launch(*owner, *r, now, out);
  }
  update_job(*owner, now);
  dirty_.insert(owner->id);
}

void job_table::launch(job_record& j, replica_record& r, time_point now,
                       std::vector<job_command>& out) {
  r.generation = next_generation_++;
  r.state = replica_state::starting;
  r.pid = 0;
  r.started = now;
  r.reason.clear();
  r.last_checkpoint = {};
  r.checkpoint_asked = {};
  r.checkpoint_failed = {};
  auto c = replica_command(job_command::kind::launch, j.id, r);
  c.allocation = r.allocation;
  c.bundle = r.bundle;
  out.push_back(std::move(c));
  dirty_.insert(j.id);
}

replica_record* job_table::replica_of(const std::string& job, uint32_t replica,
                                      uint64_t generation) {
  auto it = jobs_.find(job);
  if (it == jobs_.end() || replica >= it->second.replicas.size()) return nullptr;
  auto& r = it->second.replicas[replica];
  if (r.generation != generation) return nullptr;
  return &r;
}

void job_table::on_checkpoint(const std::string& job, uint32_t replica,
                              uint64_t generation, bool confirmed, time_point now) {
  auto* r = replica_of(job, replica, generation);
  if (r == nullptr) return;
  if (confirmed)
    r->last_checkpoint = now;
  else if (r->checkpoint_asked != time_point{})
    r->checkpoint_failed = now; // a periodic ask failed: retry an interval on
  r->checkpoint_asked = {};
  dirty_.insert(job);
}

void job_table::on_started(const std::string& job, uint32_t replica, uint64_t generation,
                           int32_t pid, time_point now) {
  auto* r = replica_of(job, replica, generation);
  if (r == nullptr || r->state != replica_state::starting) return;
  r->state = replica_state::running;
  r->pid = pid;
  auto& j = jobs_.find(job)->second;
  update_job(j, now);
  dirty_.insert(job);
}

void job_table::on_launch_failed(const std::string& job, uint32_t replica,
                                 uint64_t generation, const std::string& why,
                                 time_point now, std::vector<job_command>& out) {
  auto* r = replica_of(job, replica, generation);
  if (r == nullptr || !holds_process(r->state)) return;
  auto& j = jobs_.find(job)->second;
  end_replica(j, *r, replica_exit::exited(127), false, now, out);
  r->reason = "launch failed: " + why + (r->reason.empty() ? "" : "; " + r->reason);
}

void job_table::on_exited(const std::string& job, uint32_t replica, uint64_t generation,
                          const replica_exit& how, time_point now,
                          std::vector<job_command>& out) {
  auto* r = replica_of(job, replica, generation);
  if (r == nullptr) return;
  if (r->state == replica_state::cancelled) {
    r->last_exit = how;
    r->pid = 0;
    dirty_.insert(job);
    return;
  }
  if (!holds_process(r->state)) return;
  end_replica(jobs_.find(job)->second, *r, how, false, now, out);
}

void job_table::release(replica_record& r, std::vector<job_command>& out) {
  if (r.allocation == 0) return;
  job_command c;
  c.what = job_command::kind::release_bundle;
  c.allocation = r.allocation;
  c.bundle = r.bundle;
  out.push_back(std::move(c));
  r.allocation = 0;
}

void job_table::cancel_replica(const job_record& j, replica_record& r, time_point now,
                               std::vector<job_command>& out) {
  if (holds_process(r.state)) {
    out.push_back(replica_command(job_command::kind::stop, j.id, r));
  }
  r.state = replica_state::cancelled;
  r.request = 0;
  r.ended = now;
  release(r, out);
}

void job_table::place_again(job_record& j, replica_record& r,
                            std::vector<job_command>& out) {
  r.state = replica_state::pending;
  r.node.clear();
  r.gpus.clear();
  r.pid = 0;
  out.push_back(place_command(j, r.index));
}

job_command job_table::place_command(const job_record& j,
                                     std::optional<uint32_t> replica) {
  job_command c;
  c.what = job_command::kind::place;
  c.job = j.id;
  c.replica = replica;
  c.request = to_placement_request(j.spec, replica);
  c.request.spot_tolerant = c.request.cheapest_first = may_use_spot(j);
  if (j.spec.time_limit.count() > 0) c.request.runtime_estimate = j.spec.time_limit;
  return c;
}

void job_table::place_unacknowledged(std::vector<job_command>& out) const {
  for (auto& [id, j] : jobs_) {
    if (is_final(j.state)) continue;
    auto waits = [](const replica_record& r) {
      return r.state == replica_state::pending && r.request == 0;
    };
    if (j.started == time_point{} &&
        std::all_of(j.replicas.begin(), j.replicas.end(), waits)) {
      out.push_back(place_command(j, std::nullopt));
      continue;
    }
    for (auto& r : j.replicas)
      if (waits(r)) out.push_back(place_command(j, r.index));
  }
}

void job_table::end_replica(job_record& j, replica_record& r, const replica_exit& how,
                            bool node_lost, time_point now,
                            std::vector<job_command>& out) {
  dirty_.insert(j.id);
  r.last_exit = how;
  r.ended = now;
  r.pid = 0;
  if (j.state == job_state::cancelled) {
    r.state = replica_state::cancelled;
    release(r, out);
    return;
  }
  auto d = decide_restart(j.spec.restart, how, r.restarts, now - r.started);
  if (d.action == restart_action::give_up) {
    r.state = how.succeeded() ? replica_state::succeeded : replica_state::failed;
    release(r, out);
  } else {
    if (d.counts) ++r.restarts;
    if (node_lost) {
      release(r, out);
      place_again(j, r, out);
    } else if (d.action == restart_action::restart_now) {
      launch(j, r, now, out);
    } else {
      r.state = replica_state::backoff;
      r.restart_at = now + d.delay;
    }
  }
  r.reason = how.to_string() + ": " + d.reason; // after launch, which clears it
  update_job(j, now);
}

void job_table::on_node_down(const std::string& node, time_point now,
                             std::vector<job_command>& out) {
  for (auto& [id, j] : jobs_) {
    if (is_final(j.state)) continue;
    for (auto& r : j.replicas)
      if (r.node == node && (holds_process(r.state) || r.state == replica_state::backoff))
        end_replica(j, r, replica_exit::node_lost(), true, now, out);
  }
}

void job_table::reconcile(const std::string& node,
                          const std::vector<reported_replica>& running, time_point now,
                          std::vector<job_command>& out) {
  std::set<std::pair<std::string, uint32_t>> seen;
  for (auto& rep : running) {
    auto* r = replica_of(rep.job, rep.replica, rep.generation);
    if (r != nullptr && r->node == node && holds_process(r->state)) {
      seen.insert({rep.job, rep.replica});
      if (r->state == replica_state::starting || r->pid != rep.pid) {
        r->state = replica_state::running;
        r->pid = rep.pid;
        auto& j = jobs_.find(rep.job)->second;
        update_job(j, now);
        dirty_.insert(rep.job);
      }
      continue;
    }
    // Stale: reassigned while the node was away, cancelled, or unknown.
    job_command c;
    c.what = job_command::kind::stop;
    c.job = rep.job;
    c.replica = rep.replica;
    c.generation = rep.generation;
    c.node = node;
    out.push_back(std::move(c));
  }
  for (auto& [id, j] : jobs_) {
    if (is_final(j.state)) continue;
    for (auto& r : j.replicas)
      if (r.node == node && holds_process(r.state) && !seen.count({id, r.index}))
        // The node does not run it (lost while the head was away, or its
        // launch never arrived): it ended without a known status.
        end_replica(j, r, replica_exit::node_lost(), false, now, out);
  }
}

result<void> job_table::cancel(const std::string& job, time_point now,
                               std::vector<job_command>& out) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return error{errc::not_found, "no job " + job};
  auto& j = it->second;
  if (is_final(j.state)) return {};
  j.state = job_state::cancelled;
  j.reason = "cancelled";
  j.ended = now;
  for (auto& r : j.replicas) {
    if (is_final(r.state)) continue;
    cancel_replica(j, r, now, out);
  }
  dirty_.insert(job);
  return {};
}

result<uint32_t> job_table::scale_down(const std::string& job, uint32_t keep,
                                       const std::string& reason, time_point now,
                                       std::vector<job_command>& out) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return error{errc::not_found, "no job " + job};
  auto& j = it->second;
  if (is_final(j.state)) return error{errc::conflict, "job " + job + " has ended"};
  if (!j.spec.min_replicas)
    return error{errc::conflict, "job " + job + " has no min_replicas: it is not scaled"};
  if (keep < *j.spec.min_replicas)
    return error{errc::conflict, "job " + job + " may not go below " +
                                     std::to_string(*j.spec.min_replicas) + " replicas"};
  uint32_t stopped = 0;
  for (auto& r : j.replicas) {
    if (r.index < keep || is_final(r.state)) continue;
    cancel_replica(j, r, now, out);
    ++stopped;
  }
  if (stopped > 0) {
    j.reason = "scaled down to " + std::to_string(keep) + ": " + reason;
    dirty_.insert(job);
  }
  return stopped;
}

void job_table::fail(const std::string& job, const std::string& reason, time_point now,
                     std::vector<job_command>& out) {
  auto it = jobs_.find(job);
  if (it == jobs_.end() || is_final(it->second.state)) return;
  (void)cancel(job, now, out);
  it->second.state = job_state::failed;
  it->second.reason = reason;
}

void job_table::tick(time_point now, std::vector<job_command>& out) {
  for (auto& [id, j] : jobs_) {
    if (is_final(j.state)) continue;
    if (j.spec.time_limit.count() > 0 && j.started != time_point{} &&
        now >= j.started + j.spec.time_limit) {
      fail(id, "time limit of " + format_duration(j.spec.time_limit) + " reached", now,
           out);
      continue;
    }
    for (auto& r : j.replicas)
      if (r.state == replica_state::backoff && now >= r.restart_at)
        launch(j, r, now, out);
    if (!j.spec.checkpoint || j.spec.checkpoint->interval <= duration{0}) continue;
    for (auto& r : j.replicas) {
      if (r.state != replica_state::running) continue;
      if (r.checkpoint_asked != time_point{}) {
        if (now <
            r.checkpoint_asked + j.spec.checkpoint->timeout + checkpoint_answer_grace)
          continue;
        r.checkpoint_asked = {}; // the answer was lost: a failure
        r.checkpoint_failed = now;
      }
      if (now < std::max({r.started, r.last_checkpoint, r.checkpoint_failed}) +
                    j.spec.checkpoint->interval)
        continue;
      r.checkpoint_asked = now;
      out.push_back(replica_command(job_command::kind::checkpoint, id, r));
      dirty_.insert(id);
    }
  }
}

void job_table::update_job(job_record& j, time_point now) {
  if (is_final(j.state)) return;
  bool all_final = true, all_ok = true, any_running = false;
  const replica_record* failed = nullptr;
  for (auto& r : j.replicas) {
    all_final &= is_final(r.state);
    if (r.state != replica_state::succeeded) all_ok = false;
    if (r.state == replica_state::failed && failed == nullptr) failed = &r;
    any_running |= r.state == replica_state::running;
  }
  if (all_final) {
    j.state = all_ok ? job_state::succeeded : job_state::failed;
    j.ended = now;
    if (failed != nullptr)
      j.reason = "replica " + std::to_string(failed->index) + " " + failed->reason;
  } else if (any_running && j.state == job_state::pending) {
    j.state = job_state::running;
    if (j.started == time_point{}) j.started = now;
  }
  dirty_.insert(j.id);
}

const job_record* job_table::find(std::string_view id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

const job_record* job_table::find_by_key(const std::string& tenant,
                                         const std::string& key) const {
  auto it = idempotency_.find({tenant, key});
  return it == idempotency_.end() ? nullptr : find(it->second);
}

std::map<uint64_t, std::pair<std::string, std::optional<uint32_t>>>
job_table::waiting() const {
  std::map<uint64_t, std::pair<std::string, std::optional<uint32_t>>> out;
  for (auto& [id, j] : jobs_)
    for (auto& r : j.replicas)
      if (r.state == replica_state::pending && r.request != 0) {
        auto [it, fresh] = out.emplace(r.request, std::make_pair(id, r.index));
        if (!fresh) it->second.second.reset(); // several replicas: the gang
      }
  return out;
}

std::optional<time_point> job_table::next_deadline() const {
  std::optional<time_point> best;
  auto consider = [&](time_point t) {
    if (!best || t < *best) best = t;
  };
  for (auto& [id, j] : jobs_) {
    if (is_final(j.state)) continue;
    if (j.spec.time_limit.count() > 0 && j.started != time_point{})
      consider(j.started + j.spec.time_limit);
    for (auto& r : j.replicas)
      if (r.state == replica_state::backoff) consider(r.restart_at);
    if (!j.spec.checkpoint || j.spec.checkpoint->interval <= duration{0}) continue;
    for (auto& r : j.replicas) {
      if (r.state != replica_state::running) continue;
      if (r.checkpoint_asked != time_point{})
        consider(r.checkpoint_asked + j.spec.checkpoint->timeout +
                 checkpoint_answer_grace);
      else
        consider(std::max({r.started, r.last_checkpoint, r.checkpoint_failed}) +
                 j.spec.checkpoint->interval);
    }
  }
  return best;
}

std::set<std::string> job_table::take_dirty() {
  std::set<std::string> out;
  out.swap(dirty_);
  return out;
}

std::string job_table::meta_json() const {
  return nlohmann::json{{"next_job", next_job_}, {"next_generation", next_generation_}}
      .dump();
}

result<void> job_table::restore_meta(std::string_view text) {
  try {
    auto j = nlohmann::json::parse(text);
    next_job_ = std::max(next_job_, j.at("next_job").get<uint64_t>());
    next_generation_ =
        std::max(next_generation_, j.at("next_generation").get<uint64_t>());
    return {};
  } catch (const nlohmann::json::exception& e) {
    return error{errc::invalid_argument, std::string{"job table counters: "} + e.what()};
  }
}

result<void> job_table::restore_job(job_record job) {
  // Counters past everything stored, whatever the meta record says.
  if (job.id.rfind("j-", 0) == 0) {
    try {
      next_job_ = std::max<uint64_t>(next_job_, std::stoull(job.id.substr(2)) + 1);
    } catch (...) {
    }
  }
  for (auto& r : job.replicas)
    next_generation_ = std::max(next_generation_, r.generation + 1);
  if (!job.spec.idempotency_key.empty())
    idempotency_[{job.tenant, job.spec.idempotency_key}] = job.id;
  auto id = job.id;
  jobs_[id] = std::move(job);
  return {};
}

// -- JSON --------------------------------------------------------------------------

namespace {

using nlohmann::json;

int64_t ns(time_point t) {
  return t.time_since_epoch().count();
}
time_point from_ns(int64_t v) {
  return time_point{duration{v}};
}

std::string rfc3339(time_point t) {
  if (t == time_point{}) return "";
  auto total_ms = ns(t) / 1'000'000;
  std::time_t secs = static_cast<std::time_t>(total_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(total_ms % 1000));
  return buf;
}

json spot_doc(const spot_admission& s) {
  return {{"allowed", s.allowed}, {"verdict", s.verdict}, {"reason", s.reason}};
}

json replica_doc(const replica_record& r, bool storage) {
  json x = {{"index", r.index},       {"state", to_string(r.state)},
            {"node", r.node},         {"generation", r.generation},
            {"restarts", r.restarts}, {"gpus", r.gpus},
            {"pid", r.pid},           {"reason", r.reason}};
  if (r.last_exit) {
    x["last_exit"] = r.last_exit->to_string();
    if (storage)
      x["exit"] = {{"how", to_string(r.last_exit->how)}, {"code", r.last_exit->code}};
  }
  if (storage) {
    x["request"] = r.request;
    x["allocation"] = r.allocation;
    x["bundle"] = r.bundle;
    x["started_ns"] = ns(r.started);
    x["ended_ns"] = ns(r.ended);
    x["restart_at_ns"] = ns(r.restart_at);
    x["last_checkpoint_ns"] = ns(r.last_checkpoint);
    x["checkpoint_asked_ns"] = ns(r.checkpoint_asked);
    x["checkpoint_failed_ns"] = ns(r.checkpoint_failed);
  } else {
    x["started"] = rfc3339(r.started);
    x["ended"] = rfc3339(r.ended);
    x["last_checkpoint"] = rfc3339(r.last_checkpoint);
  }
  return x;
}

} // namespace

std::string job_json(const job_record& j) {
  json reps = json::array();
  for (auto& r : j.replicas)
    reps.push_back(replica_doc(r, false));
  json doc = {{"id", j.id},
              {"name", j.spec.name},
              {"tenant", j.tenant},
              {"state", to_string(j.state)},
              {"reason", j.reason},
              {"submitted", rfc3339(j.submitted)},
              {"started", rfc3339(j.started)},
              {"ended", rfc3339(j.ended)},
              {"spec", json::parse(encode_job_spec(j.spec))},
              {"replicas", std::move(reps)}};
  if (j.spot) doc["spot"] = spot_doc(*j.spot);
  return doc.dump();
}

std::string encode_job(const job_record& j) {
  json reps = json::array();
  for (auto& r : j.replicas)
    reps.push_back(replica_doc(r, true));
  json doc = {{"id", j.id},
              {"tenant", j.tenant},
              {"state", to_string(j.state)},
              {"reason", j.reason},
              {"submitted_ns", ns(j.submitted)},
              {"started_ns", ns(j.started)},
              {"ended_ns", ns(j.ended)},
              {"spec", encode_job_spec(j.spec)},
              {"replicas", std::move(reps)}};
  if (j.spot) doc["spot"] = spot_doc(*j.spot);
  return doc.dump();
}

result<job_record> decode_job(std::string_view text) {
  try {
    auto d = json::parse(text);
    job_record j;
    j.id = d.at("id").get<std::string>();
    j.tenant = d.at("tenant").get<std::string>();
    auto st = d.at("state").get<std::string>();
    bool known = false;
    for (auto s : {job_state::pending, job_state::running, job_state::succeeded,
                   job_state::failed, job_state::cancelled})
      if (st == to_string(s)) {
        j.state = s;
        known = true;
      }
    if (!known) return error{errc::invalid_argument, "stored job: unknown state " + st};
    j.reason = d.at("reason").get<std::string>();
    j.submitted = from_ns(d.at("submitted_ns").get<int64_t>());
    j.started = from_ns(d.at("started_ns").get<int64_t>());
    j.ended = from_ns(d.at("ended_ns").get<int64_t>());
    auto spec = decode_job_spec(d.at("spec").get<std::string>());
    if (!spec.ok()) return std::move(spec).err();
    j.spec = std::move(*spec);
    if (auto it = d.find("spot"); it != d.end())
      j.spot = spot_admission{it->at("allowed").get<bool>(),
                              it->at("verdict").get<std::string>(),
                              it->at("reason").get<std::string>()};
    for (auto& x : d.at("replicas")) {
      replica_record r;
      r.index = x.at("index").get<uint32_t>();
      auto rs = x.at("state").get<std::string>();
      bool ok = false;
      for (auto s :
           {replica_state::pending, replica_state::starting, replica_state::running,
            replica_state::backoff, replica_state::succeeded, replica_state::failed,
            replica_state::cancelled})
        if (rs == to_string(s)) {
          r.state = s;
          ok = true;
        }
      if (!ok)
        return error{errc::invalid_argument, "stored job: unknown replica state " + rs};
      r.node = x.at("node").get<std::string>();
      r.generation = x.at("generation").get<uint64_t>();
      r.restarts = x.at("restarts").get<uint32_t>();
      r.gpus = x.at("gpus").get<std::vector<uint32_t>>();
      r.pid = x.at("pid").get<int32_t>();
      r.reason = x.at("reason").get<std::string>();
      if (x.contains("exit")) {
        auto how = x["exit"].at("how").get<std::string>();
        int code = x["exit"].at("code").get<int>();
        r.last_exit = make_replica_exit(how, code);
      }
      r.request = x.at("request").get<uint64_t>();
      r.allocation = x.at("allocation").get<uint64_t>();
      r.bundle = x.at("bundle").get<uint32_t>();
      r.started = from_ns(x.at("started_ns").get<int64_t>());
      r.ended = from_ns(x.at("ended_ns").get<int64_t>());
      r.restart_at = from_ns(x.at("restart_at_ns").get<int64_t>());
      // Stored before periodic checkpoints: none.
      r.last_checkpoint = from_ns(x.value("last_checkpoint_ns", int64_t{0}));
      r.checkpoint_asked = from_ns(x.value("checkpoint_asked_ns", int64_t{0}));
      r.checkpoint_failed = from_ns(x.value("checkpoint_failed_ns", int64_t{0}));
      j.replicas.push_back(std::move(r));
    }
    if (j.replicas.size() != j.spec.replicas)
      return error{errc::invalid_argument,
                   "stored job " + j.id + ": replica count differs"};
    return j;
  } catch (const json::exception& e) {
    return error{errc::invalid_argument, std::string{"stored job: "} + e.what()};
  }
}

} // namespace troupe::actors
