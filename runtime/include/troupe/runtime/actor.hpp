#pragma once
/// troupe actors: CAF event-based actors with metrics, tracing and a drain
/// stop built in.
///
/// Every troupe actor derives from `troupe::actor` (class-based) or is a
/// function `behavior(actor&)` (function-based). Sending through the actor's
/// `tell`/`request`/`delegate` carries the current span context and tenant
/// to the receiver, so the spans of one request form one tree. Each handled
/// message updates the node's per-kind metrics.

#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/runtime/trace.hpp"

#include <caf/all.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace troupe {

namespace metrics {
class counter;
class gauge;
class histogram;
} // namespace metrics

class node_services;

/// A message handler set; CAF's behavior.
using behavior = caf::behavior;

/// Asks an actor to stop after the messages already in its mailbox
/// ("drain"). Supervisors stop their children in reverse start order first.
using drain_atom = caf::atom_constant<caf::atom("tr_drain")>;

/// A reference to an actor. Today always local; the transport issue makes it
/// location-transparent (node id + actor id) without changing this API.
class actor_ref {
public:
  actor_ref() = default;
  explicit actor_ref(caf::actor handle) : handle_(std::move(handle)) {}
  const caf::actor& handle() const noexcept { return handle_; }
  /// The actor's id on its node (0 for an empty ref).
  uint64_t id() const noexcept { return handle_ ? handle_.id() : 0; }
  explicit operator bool() const noexcept { return static_cast<bool>(handle_); }
  friend bool operator==(const actor_ref& a, const actor_ref& b) noexcept {
    return a.handle_ == b.handle_;
  }

private:
  caf::actor handle_;
};

/// Per-actor-kind instruments, owned by the node's metrics registry.
struct actor_metrics {
  metrics::counter* handled = nullptr;
  metrics::counter* failed = nullptr;
  metrics::gauge* mailbox_depth = nullptr;
  metrics::histogram* handler_seconds = nullptr;
};

class actor;

namespace detail {

/// Restores an actor's span context around a response continuation.
template <class F, class... Args>
auto with_context(actor* self, std::optional<span_context> ctx, F f,
                  caf::detail::type_list<Args...>);

} // namespace detail

/// Response handle returned by `actor::request`: `then` continuations run
/// with the span context that was current when the request was sent.
template <class Handle> class traced_response {
public:
  traced_response(actor* self, std::optional<span_context> ctx, Handle h)
      : self_(self), ctx_(std::move(ctx)), handle_(std::move(h)) {}

  template <class F> void then(F f) {
    if (ctx_)
      handle_.then(wrap(std::move(f)));
    else
      handle_.then(std::move(f)); // nothing to restore: no wrapper cost
  }
  template <class F, class OnError> void then(F f, OnError g) {
    if (ctx_)
      handle_.then(wrap(std::move(f)), wrap(std::move(g)));
    else
      handle_.then(std::move(f), std::move(g));
  }

  /// Like then, but no other message is handled before the answer (or the
  /// error) arrives: for answers that must be seen before messages the
  /// same peer sent earlier.
  template <class F, class OnError> void await(F f, OnError g) {
    if (ctx_)
      handle_.await(wrap(std::move(f)), wrap(std::move(g)));
    else
      handle_.await(std::move(f), std::move(g));
  }

private:
  template <class F> auto wrap(F f) {
    using args = typename caf::detail::get_callable_trait<F>::arg_types;
    return detail::with_context(self_, ctx_, std::move(f), args{});
  }
  actor* self_;
  std::optional<span_context> ctx_;
  Handle handle_;
};

/// Base class of every troupe actor.
class actor : public caf::event_based_actor {
public:
  using super = caf::event_based_actor;

  explicit actor(caf::actor_config& cfg);
  ~actor() override;

  /// A ref to this actor.
  actor_ref self_ref() { return actor_ref{caf::actor_cast<caf::actor>(this)}; }

  /// Sends `xs...` to `to`, carrying the current span context.
  template <class... Ts> void tell(const actor_ref& to, Ts&&... xs) {
    if (auto* ctx = outgoing_context())
      super::send(to.handle(), *ctx, caf::make_message(std::forward<Ts>(xs)...));
    else
      super::send(to.handle(), std::forward<Ts>(xs)...);
  }

  /// Sends a request; the answer (or a timeout error) reaches the `then`
  /// continuation, which runs with this request's span context.
  template <class... Ts> auto request(const actor_ref& to, duration timeout, Ts&&... xs) {
    using handle_t =
        decltype(super::request(to.handle(), timeout, std::forward<Ts>(xs)...));
    if (auto* ctx = outgoing_context()) {
      span_context copy = *ctx;
      return traced_response<handle_t>{
          this, copy,
          super::request(to.handle(), timeout, copy,
                         caf::make_message(std::forward<Ts>(xs)...))};
    }
    return traced_response<handle_t>{
        this, std::nullopt,
        super::request(to.handle(), timeout, std::forward<Ts>(xs)...)};
  }

  /// Forwards the current request to `to`; `to` answers the original sender.
  template <class... Ts>
  caf::delegated<caf::message> delegate(const actor_ref& to, Ts&&... xs) {
    if (auto* ctx = outgoing_context())
      super::delegate(to.handle(), *ctx, caf::make_message(std::forward<Ts>(xs)...));
    else
      super::delegate(to.handle(), std::forward<Ts>(xs)...);
    return {};
  }

  /// The span context of the message being handled, or null.
  const span_context* current_context() const noexcept { return current_ctx_; }

  /// The node's clock (driven by the test scheduler in tests).
  const troupe::clock& clock() const noexcept;

  /// Registers this actor under `name` on its node; already_exists if taken.
  [[nodiscard]] result<void> register_as(std::string name);
  /// Looks up a named actor on this node; not_found if absent.
  [[nodiscard]] result<actor_ref> lookup(std::string_view name) const;

  /// The node services this actor runs with, or null on a plain CAF system.
  node_services* services() const noexcept { return services_; }

  /// Sets the span context continuations run under (used by traced_response).
  void restore_context(const span_context* ctx) noexcept { current_ctx_ = ctx; }

  /// Kind label for metrics and spans; defaults to CAF's `name()`.
  const char* name() const override { return "actor"; }

protected:
  caf::invoke_message_result consume(caf::mailbox_element& x) override;

  /// The answer to a message nothing handles (the default handler's, for
  /// subclasses that set their own to log): a request gets
  /// unexpected_message, a one-way message nothing (see actor.cpp).
  static caf::result<caf::message> answer_unhandled(caf::scheduled_actor* self);

  /// Called for a drain request after earlier messages were handled.
  /// Default: quit with `user_shutdown`.
  virtual void on_drain();

private:
  /// Context to send with outgoing messages, or null when nothing to carry.
  const span_context* outgoing_context() const noexcept {
    return current_ctx_ != nullptr &&
                   (current_ctx_->sampled || !current_ctx_->tenant.empty())
               ? current_ctx_
               : nullptr;
  }
  void init_instruments();
  caf::invoke_message_result consume_traced(caf::mailbox_element& x);

  node_services* services_ = nullptr;
  const actor_metrics* metrics_ = nullptr;
  bool instruments_ready_ = false;
  uint32_t sample_every_ = 1;
  uint32_t sample_countdown_ = 1;
  double last_depth_ = 0;
  const span_context* current_ctx_ = nullptr;
};

/// A function-based actor: the function makes the initial behavior.
class function_actor final : public actor {
public:
  using init_fn = std::function<behavior(actor&)>;
  function_actor(caf::actor_config& cfg, init_fn fn, std::string kind)
      : actor(cfg), fn_(std::move(fn)), kind_(std::move(kind)) {}
  behavior make_behavior() override { return fn_(*this); }
  const char* name() const override { return kind_.c_str(); }

private:
  init_fn fn_;
  std::string kind_;
};

namespace detail {

template <class F, class... Args>
auto with_context(actor* self, std::optional<span_context> ctx, F f,
                  caf::detail::type_list<Args...>) {
  return [self, ctx = std::move(ctx), f = std::move(f)](Args... xs) mutable {
    const span_context* prev = self->current_context();
    self->restore_context(ctx ? &*ctx : nullptr);
    span_scope scope{ctx ? &*ctx : nullptr};
    struct restore {
      actor* s;
      const span_context* p;
      ~restore() { s->restore_context(p); }
    } guard{self, prev};
    return f(std::forward<Args>(xs)...);
  };
}

} // namespace detail

} // namespace troupe
