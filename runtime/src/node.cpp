#include "troupe/runtime/node.hpp"

#include "node_system_config.hpp"
#include "troupe/runtime/caf_error.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/metrics_server.hpp"

#include <algorithm>
#include <caf/scheduler/test_coordinator.hpp>
#include <thread>

namespace troupe {
namespace {

/// The node's clock: CAF's actor clock (the test scheduler's clock in tests,
/// the steady clock otherwise). Set once the actor system exists.
class actor_system_clock final : public clock {
public:
  void attach(caf::actor_system* sys) noexcept { sys_ = sys; }
  time_point now() const noexcept override {
    return sys_ != nullptr ? sys_->clock().now() : std::chrono::steady_clock::now();
  }

private:
  caf::actor_system* sys_ = nullptr;
};

} // namespace

// -- node_services --------------------------------------------------------------

node_services::node_services(metrics::registry& reg, troupe::tracer& tr,
                             const troupe::clock& clk, uint32_t latency_sample_every)
    : registry_(reg), tracer_(tr), clock_(clk), sample_every_(latency_sample_every) {}

const actor_metrics& node_services::metrics_for(std::string_view kind) {
  std::lock_guard<std::mutex> guard{mu_};
  auto i = kinds_.find(kind);
  if (i != kinds_.end()) return *i->second;
  metrics::labels l{{"kind", std::string{kind}}};
  auto m = std::make_unique<actor_metrics>();
  m->handled = &registry_.get_counter("troupe_actor_messages_handled_total",
                                      "Messages handled by actors of a kind", l);
  m->failed = &registry_.get_counter("troupe_actor_handler_failures_total",
                                     "Message handlers of a kind that threw", l);
  m->mailbox_depth =
      &registry_.get_gauge("troupe_actor_mailbox_depth",
                           "Messages waiting in the mailboxes of actors of a kind", l);
  m->handler_seconds = &registry_.get_histogram(
      "troupe_actor_handler_seconds", "Time to handle one message (sampled)",
      metrics::histogram::default_latency_buckets(), l);
  auto& ref = *m;
  kinds_.emplace(std::string{kind}, std::move(m));
  return ref;
}

result<void> node_services::register_name(std::string name, const actor_ref& ref) {
  if (name.empty()) return error{runtime::errc::invalid_argument, "actor name is empty"};
  if (!ref) return error{runtime::errc::invalid_argument, "cannot register an empty ref"};
  {
    std::lock_guard<std::mutex> guard{mu_};
    auto [it, inserted] = names_.emplace(name, ref);
    if (!inserted)
      return error{runtime::errc::already_exists, "name '" + name +
                                                      "' is taken by actor " +
                                                      std::to_string(it->second.id())};
  }
  // Remove the entry when the actor ends. The node outlives its actors.
  auto id = ref.id();
  ref.handle()->attach_functor([this, name, id] { unregister(name, id); });
  return ok();
}

result<actor_ref> node_services::lookup(std::string_view name) const {
  std::lock_guard<std::mutex> guard{mu_};
  auto i = names_.find(name);
  if (i == names_.end())
    return error{runtime::errc::not_found, "no actor named '" + std::string{name} + "'"};
  return i->second;
}

void node_services::unregister(const std::string& name, uint64_t id) {
  std::lock_guard<std::mutex> guard{mu_};
  auto i = names_.find(name);
  if (i != names_.end() && i->second.id() == id) names_.erase(i);
}

std::vector<std::string> node_services::names() const {
  std::lock_guard<std::mutex> guard{mu_};
  std::vector<std::string> out;
  for (auto& [k, v] : names_)
    out.push_back(k);
  return out;
}

// -- test_driver ------------------------------------------------------------------

size_t test_driver::run() {
  return sched_.run();
}
bool test_driver::run_once() {
  return sched_.try_run_once();
}
size_t test_driver::advance_time(duration d) {
  return sched_.advance_time(std::chrono::duration_cast<caf::timespan>(d));
}

void test_driver::run_until_idle(duration limit) {
  auto& clk = sched_.clock();
  auto start = clk.now();
  for (;;) {
    sched_.run();
    if (!clk.has_pending_timeout()) return;
    auto next = clk.schedule().begin()->first;
    if (next - start > limit) return;
    clk.trigger_timeout();
  }
}

// -- node ---------------------------------------------------------------------------

struct node::shared_state {
  std::mutex mu;
  std::vector<actor_ref> top_level;  // guarded by mu; in spawn order
  std::vector<std::string> failures; // guarded by mu
};

node::node(node_config cfg)
    : config_(std::move(cfg)), shared_(std::make_shared<shared_state>()) {}

result<std::unique_ptr<node>> node::start(node_config cfg) {
  std::unique_ptr<node> n{new node(std::move(cfg))};
  if (auto r = n->init(); !r.ok()) return std::move(r).err();
  return n;
}

result<void> node::init() {
  logging::settings ls;
  ls.level = std::string{to_string(config_.log.level)};
  ls.file = config_.log.file;
  ls.pattern = config_.log.pattern;
  if (auto r = logging::configure(ls); !r.ok()) return r;
  log_ = logging::get("runtime");

  auto clk = std::make_unique<actor_system_clock>();
  auto* clk_ptr = clk.get();
  clock_ = std::move(clk);
  registry_ = std::make_unique<metrics::registry>();

  std::unique_ptr<span_sink> sink;
  if (!config_.trace.export_path.empty()) {
    auto s = otlp_json_file_sink::open(config_.trace.export_path, config_.node.name);
    if (!s.ok()) return std::move(s).err();
    sink = std::move(*s);
  }
  tracer_ = std::make_unique<troupe::tracer>(
      config_.trace.sampling_ratio, static_cast<size_t>(config_.trace.queue_capacity),
      std::move(sink));
  services_ = std::make_unique<node_services>(
      *registry_, *tracer_, *clock_,
      static_cast<uint32_t>(config_.metrics.latency_sample_every));
  auto* tr = tracer_.get();
  registry_->register_callback_gauge(
      "troupe_trace_spans_dropped", "Spans dropped because the export queue was full", {},
      [tr] { return static_cast<double>(tr->dropped()); });
  registry_->register_callback_gauge(
      "troupe_trace_spans_exported", "Spans written by the trace exporter", {},
      [tr] { return static_cast<double>(tr->exported()); });

  auto cc = std::make_unique<node_system_config>();
  cc->services = services_.get();
  cc->add_message_type<span_context>("troupe::span_context");
  cc->add_message_type<std::vector<std::string>>("std::vector<std::string>");
  cc->add_error_category(caf_error_category,
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           error e{static_cast<runtime::errc>(code),
                                   ctx.size() == 1 && ctx.match_element<std::string>(0)
                                       ? ctx.get_as<std::string>(0)
                                       : caf::to_string(ctx)};
                           return e.to_string();
                         });
  cc->set("scheduler.policy",
          caf::atom_from_string(std::string{to_string(config_.scheduler.policy)}));
  if (config_.scheduler.threads > 0)
    cc->set("scheduler.max-threads", static_cast<size_t>(config_.scheduler.threads));
  if (config_.scheduler.busy_poll)
    cc->set("work-stealing.moderate-poll-attempts", size_t{0});
  cc->set("logger.verbosity", caf::atom("quiet"));
  cc->set("logger.console", caf::atom("none"));
  caf_config_ = std::move(cc);
  system_ = std::make_unique<caf::actor_system>(*caf_config_);
  clk_ptr->attach(system_.get());
  if (config_.scheduler.policy == scheduler_policy::testing)
    test_ = std::make_unique<test_driver>(
        dynamic_cast<caf::scheduler::test_coordinator&>(system_->scheduler()));

  if (config_.metrics.enabled) {
    auto srv = metrics::metrics_server::start(
        *registry_, config_.metrics.bind, static_cast<uint16_t>(config_.metrics.port));
    if (!srv.ok()) return std::move(srv).err();
    metrics_server_ = std::move(*srv);
    log_->info("metrics at http://{}:{}/metrics", config_.metrics.bind,
               metrics_server_->port());
  }
  log_->debug("node {} started (scheduler {}, sampling {})", config_.node.name,
              to_string(config_.scheduler.policy), config_.trace.sampling_ratio);
  return ok();
}

node::~node() {
  stop();
}

uint16_t node::metrics_port() const noexcept {
  return metrics_server_ ? metrics_server_->port() : 0;
}

actor_ref node::track(actor_ref ref) {
  if (!ref) return ref;
  {
    std::lock_guard<std::mutex> guard{shared_->mu};
    shared_->top_level.push_back(ref);
  }
  std::weak_ptr<shared_state> weak = shared_;
  auto id = ref.id();
  auto log = log_;
  auto* self = ref.handle().operator->();
  self->attach_functor([weak, id, log](const caf::error& reason) {
    auto st = weak.lock();
    if (!st) return;
    std::lock_guard<std::mutex> guard{st->mu};
    if (reason && reason != caf::exit_reason::normal &&
        reason != caf::exit_reason::user_shutdown) {
      auto what = "actor " + std::to_string(id) + " exited: " + caf::to_string(reason);
      log->error("top-level {}", what);
      st->failures.push_back(std::move(what));
    }
  });
  return ref;
}

actor_ref node::spawn(std::string kind, function_actor::init_fn fn) {
  return track(actor_ref{system_->spawn<function_actor>(std::move(fn), std::move(kind))});
}

actor_ref node::spawn_supervisor(supervisor_spec spec) {
  return track(troupe::spawn_supervisor(*system_, std::move(spec)));
}

supervisor_spec node::make_supervisor_spec(std::string name,
                                           restart_strategy strategy) const {
  supervisor_spec s;
  s.name = std::move(name);
  s.strategy = strategy;
  s.intensity.max_restarts = static_cast<uint32_t>(config_.supervision.max_restarts);
  s.intensity.period = config_.supervision.max_period;
  s.backoff.initial = config_.supervision.backoff_initial;
  s.backoff.max = config_.supervision.backoff_max;
  s.backoff.multiplier = config_.supervision.backoff_multiplier;
  s.backoff.jitter = config_.supervision.backoff_jitter;
  s.backoff.seed = static_cast<uint64_t>(config_.supervision.seed);
  return s;
}

void node::tell_message(const actor_ref& to, caf::message msg) {
  if (tracer_->enabled()) {
    auto ctx = tracer_->new_root();
    if (ctx.sampled) {
      int64_t now = unix_now_ns();
      span_record s;
      s.trace_hi = ctx.trace_hi;
      s.trace_lo = ctx.trace_lo;
      s.span_id = ctx.span_id;
      s.name = "tell";
      s.kind = span_kind::producer;
      s.start_unix_ns = now;
      s.end_unix_ns = now;
      s.status = span_status::ok;
      tracer_->record(std::move(s));
      caf::anon_send(to.handle(), ctx, std::move(msg));
      return;
    }
  }
  caf::anon_send(to.handle(), std::move(msg));
}

result<caf::message> node::request_message(const actor_ref& to, duration timeout,
                                           caf::message msg, std::string tenant) {
  if (test_)
    return error{runtime::errc::invalid_argument,
                 "node::request blocks and cannot run under the testing scheduler"};
  if (!to) return error{runtime::errc::invalid_argument, "request to an empty actor ref"};
  std::optional<span_context> ctx;
  if (tracer_->enabled() || !tenant.empty()) {
    ctx = tracer_->new_root(std::move(tenant));
    if (!ctx->sampled && ctx->tenant.empty()) ctx.reset();
  }
  int64_t start = ctx ? unix_now_ns() : 0;
  caf::scoped_actor self{*system_};
  result<caf::message> out = error{runtime::errc::internal, "no answer"};
  auto req = ctx ? self->request(to.handle(), timeout, *ctx, std::move(msg))
                 : self->request(to.handle(), timeout, std::move(msg));
  req.receive([&](caf::error& e) { out = from_caf_error(e, "request"); },
              caf::others >> [&](caf::message_view& x) -> caf::result<caf::message> {
                out = x.move_content_to_message();
                return caf::message{};
              });
  if (ctx && ctx->sampled) {
    span_record s;
    s.trace_hi = ctx->trace_hi;
    s.trace_lo = ctx->trace_lo;
    s.span_id = ctx->span_id;
    s.name = "request";
    s.kind = span_kind::client;
    s.start_unix_ns = start;
    s.end_unix_ns = unix_now_ns();
    s.status = out.ok() ? span_status::ok : span_status::error;
    if (!out.ok()) s.status_message = out.err().to_string();
    if (!ctx->tenant.empty()) s.attributes.emplace_back("tenant", ctx->tenant);
    tracer_->record(std::move(s));
  }
  return out;
}

result<void> node::register_name(std::string name, const actor_ref& ref) {
  return services_->register_name(std::move(name), ref);
}

result<actor_ref> node::lookup(std::string_view name) const {
  return services_->lookup(name);
}

std::vector<std::string> node::failures() const {
  std::lock_guard<std::mutex> guard{shared_->mu};
  return shared_->failures;
}

void node::await_all_actors_done() {
  if (test_) {
    test_->run_until_idle();
    return;
  }
  system_->await_all_actors_done();
}

void node::stop() {
  if (stopped_ || !system_) return;
  stopped_ = true;
  std::vector<actor_ref> actors;
  {
    std::lock_guard<std::mutex> guard{shared_->mu};
    actors = shared_->top_level;
  }
  auto timeout = config_.shutdown.timeout;
  for (auto it = actors.rbegin(); it != actors.rend(); ++it) {
    const auto& a = it->handle();
    if (test_) {
      caf::anon_send(a, drain_atom::value);
      test_->run_until_idle(timeout);
      continue;
    }
    caf::scoped_actor self{*system_};
    self->monitor(a);
    self->send(a, drain_atom::value);
    bool done = false;
    self->receive(
        [&](caf::down_msg&) { done = true; },
        caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(timeout)) >>
            [&] {});
    if (!done) {
      log_->warn("actor {} did not stop within {} ms, killing it", a.id(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
      self->send_exit(a, caf::exit_reason::kill);
      self->receive([&](caf::down_msg&) {});
    }
  }
  if (test_) {
    test_->run_until_idle();
  } else {
    system_->await_all_actors_done();
  }
  tracer_->flush();
  if (metrics_server_) metrics_server_->stop();
  log_->debug("node {} stopped", config_.node.name);
  logging::flush();
}

} // namespace troupe
