#include "troupe/runtime/actor.hpp"

#include "node_system_config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"

#include <chrono>

namespace troupe {
namespace {

const steady_clock_source fallback_clock;

/// Restores the actor's current mailbox element and span context on exit,
/// also when a handler throws.
struct consume_guard {
  caf::local_actor* self;
  caf::mailbox_element* element;
  ~consume_guard() { self->current_mailbox_element(element); }
};

} // namespace

actor::actor(caf::actor_config& cfg) : super(cfg) {
  services_ = services_of(home_system());
  // CAF 0.17 answers a message no handler takes with unexpected_message,
  // sent to its sender also when the message was one-way; and a handler's
  // value for a one-way message goes back to the sender as a one-way
  // message. Together: B tells A, A's handler returns a value, B has no
  // handler for it, B's "unexpected_message" reaches A as an error message,
  // and CAF's default error handler ends A. So: requesters still get
  // unexpected_message, one-way senders get nothing back, and an error
  // message saying that something was unexpected is dropped, not fatal.
  // Subclasses may set their own handlers.
  set_default_handler(
      [](caf::scheduled_actor* self, caf::message_view& m) -> caf::result<caf::message> {
        logging::get("runtime")->debug("actor {}: nothing handles {}", self->name(),
                                       caf::to_string(m.copy_content_to_message()));
        return answer_unhandled(self);
      });
  set_error_handler([](caf::scheduled_actor* self, caf::error& e) {
    if (e == caf::sec::unexpected_message || e == caf::sec::unexpected_response) {
      logging::get("runtime")->debug("actor {}: dropped an error message: {}",
                                     self->name(), caf::to_string(e));
      return;
    }
    self->quit(std::move(e)); // CAF's default
  });
}

actor::~actor() = default;

caf::result<caf::message> actor::answer_unhandled(caf::scheduled_actor* self) {
  if (self->current_message_id().is_request()) return caf::sec::unexpected_message;
  return caf::message{};
}

const troupe::clock& actor::clock() const noexcept {
  return services_ != nullptr ? services_->clock() : fallback_clock;
}

result<void> actor::register_as(std::string name) {
  if (services_ == nullptr)
    return error{runtime::errc::unavailable, "actor is not running on a troupe node"};
  return services_->register_name(std::move(name), self_ref());
}

result<actor_ref> actor::lookup(std::string_view name) const {
  if (services_ == nullptr)
    return error{runtime::errc::unavailable, "actor is not running on a troupe node"};
  return services_->lookup(name);
}

void actor::on_drain() {
  quit(caf::exit_reason::user_shutdown);
}

void actor::init_instruments() {
  instruments_ready_ = true;
  if (services_ == nullptr) return;
  metrics_ = &services_->metrics_for(name());
  sample_every_ = std::max<uint32_t>(1, services_->latency_sample_every());
  sample_countdown_ = 1;
}

caf::invoke_message_result actor::consume(caf::mailbox_element& x) {
  if (!instruments_ready_) init_instruments();
  auto& content = x.content();
  bool traced = false;
  switch (content.size()) {
  case 1:
    if (content.match_element<drain_atom>(0) && !x.mid.is_response()) {
      on_drain();
      return caf::invoke_message_result::consumed;
    }
    break;
  case 2:
    traced =
        content.match_element<span_context>(0) && content.match_element<caf::message>(1);
    break;
  default:
    break;
  }
  if (metrics_ == nullptr) return traced ? consume_traced(x) : super::consume(x);
  // Latency and mailbox depth are sampled every `sample_every_` messages; the
  // handled counter counts every message.
  bool sample = --sample_countdown_ == 0;
  std::chrono::steady_clock::time_point start;
  if (sample) {
    sample_countdown_ = sample_every_;
    start = std::chrono::steady_clock::now();
  }
  caf::invoke_message_result res;
  try {
    res = traced ? consume_traced(x) : super::consume(x);
  } catch (...) {
    metrics_->failed->inc();
    throw;
  }
  if (res == caf::invoke_message_result::consumed) {
    metrics_->handled->inc();
    if (sample) {
      auto elapsed = std::chrono::steady_clock::now() - start;
      metrics_->handler_seconds->observe(std::chrono::duration<double>(elapsed).count());
      auto depth = static_cast<double>(mailbox().size());
      metrics_->mailbox_depth->add(depth - last_depth_);
      last_depth_ = depth;
    }
  }
  return res;
}

caf::invoke_message_result actor::consume_traced(caf::mailbox_element& x) {
  auto& content = x.content();
  span_context ctx = content.get_as<span_context>(0);
  uint64_t parent = ctx.span_id;
  tracer* tr = services_ != nullptr ? &services_->tracer() : nullptr;
  if (ctx.sampled && tr != nullptr) ctx.span_id = tr->next_span_id();
  auto inner = content.get_as<caf::message>(1);
  auto element = caf::make_mailbox_element(x.sender, x.mid, x.stages, std::move(inner));
  consume_guard restore{this, &x};
  const span_context* prev_ctx = current_ctx_;
  current_ctx_ = &ctx;
  span_scope scope{&ctx};
  int64_t start = ctx.sampled ? unix_now_ns() : 0;
  caf::invoke_message_result res;
  auto finish = [&](span_status status, std::string message) {
    current_ctx_ = prev_ctx;
    if (!ctx.sampled || tr == nullptr) return;
    span_record s;
    s.trace_hi = ctx.trace_hi;
    s.trace_lo = ctx.trace_lo;
    s.span_id = ctx.span_id;
    s.parent_span_id = parent;
    s.name = name();
    s.kind = x.mid.is_request() ? span_kind::server : span_kind::consumer;
    s.start_unix_ns = start;
    s.end_unix_ns = unix_now_ns();
    s.status = status;
    s.status_message = std::move(message);
    s.attributes.emplace_back("actor.id", std::to_string(id()));
    if (element->content().size() > 0) {
      auto head = element->content().stringify(0);
      if (head.size() > 64) head.resize(64);
      s.attributes.emplace_back("message.head", std::move(head));
    }
    if (!ctx.tenant.empty()) s.attributes.emplace_back("tenant", ctx.tenant);
    tr->record(std::move(s));
  };
  try {
    res = super::consume(*element);
  } catch (const std::exception& e) {
    finish(span_status::error, e.what());
    throw;
  } catch (...) {
    finish(span_status::error, "unknown exception");
    throw;
  }
  if (res == caf::invoke_message_result::consumed)
    finish(span_status::ok, {});
  else
    current_ctx_ = prev_ctx;
  return res;
}

} // namespace troupe
