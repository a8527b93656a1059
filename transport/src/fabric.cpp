#include "troupe/transport/fabric.hpp"

#include "fabric_core.hpp"
#include "remote_proxy.hpp"
#include "troupe/runtime/caf_error.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/trace.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <future>
#include <malloc.h>
#include <poll.h>
#include <shared_mutex>

namespace troupe::transport {

using rerr = runtime::errc;

namespace {

std::string fmt_transports(const std::vector<std::string>& t) {
  std::string out;
  for (const auto& x : t)
    out += (out.empty() ? "" : ",") + x;
  return out.empty() ? "?" : out;
}

/// Largest batch of small envelopes sent as one active message: below the
/// shared-memory lanes' eager size (about 8 KiB in UCX 1.13), so batches go
/// eager over shared memory instead of by rendezvous over TCP.
constexpr size_t batch_seal_bytes = 7 * 1024;

/// A link counts as idle (and a send goes directly from the sender's
/// thread) when no direct send went to the peer for this long.
constexpr int64_t direct_quiet_ns = 50'000;

struct send_ctx {
  uint64_t header[1] = {0};
  std::vector<std::byte> header_bytes;
  std::vector<std::byte> frame;
  caf::message keep;
  std::shared_ptr<const void> staging; ///< a staged device buffer's host copy
};

void on_send_done(void* request, ucs_status_t, void* user_data) {
  delete static_cast<send_ctx*>(user_data);
  ucp_request_free(request);
}

/// Sends one active message; `ctx` owns header and data until UCX is done.
ucs_status_t send_am(ucp_ep_h ep, unsigned id, const void* header, size_t header_len,
                     const void* data, size_t len, uint32_t flags,
                     std::unique_ptr<send_ctx> ctx,
                     ucs_memory_type_t mem = UCS_MEMORY_TYPE_HOST) {
  ucp_request_param_t p{};
  p.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  if (mem != UCS_MEMORY_TYPE_HOST) {
    // GPU direct: UCX moves device memory itself.
    p.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMORY_TYPE;
    p.memory_type = mem;
  }
  p.flags = flags | UCP_AM_SEND_FLAG_REPLY;
  p.cb.send = on_send_done;
  p.user_data = ctx.get();
  ucs_status_ptr_t st = ucp_am_send_nbx(ep, id, header, header_len, data, len, &p);
  if (st == nullptr) return UCS_OK;
  if (UCS_PTR_IS_ERR(st)) return UCS_PTR_STATUS(st);
  (void)ctx.release(); // on_send_done deletes it
  return UCS_INPROGRESS;
}

caf::node_id caf_node_of(uint64_t node_id, uint64_t incarnation) {
  caf::node_id::default_data::host_id_type host{};
  std::memcpy(host.data(), &node_id, sizeof node_id);
  std::memcpy(host.data() + 8, &incarnation, sizeof incarnation);
  host[19] = 0x7e; // never all zero
  return caf::make_node_id(static_cast<uint32_t>(incarnation), host);
}

bool is_trace_wrapped(const caf::message& m) {
  return m.size() == 2 && m.match_element<span_context>(0) &&
         m.match_element<caf::message>(1);
}

using pending_key = std::pair<uint64_t, uint64_t>;
uint64_t pending_hash(uint64_t aid, uint64_t req) noexcept {
  return (aid * 0x9E3779B97F4A7C15ull) ^ req;
}

} // namespace

// -- remote_proxy ------------------------------------------------------------------

remote_proxy::remote_proxy(caf::actor_config& cfg, std::weak_ptr<fabric_core> core,
                           std::shared_ptr<peer_state> peer, wire_ref target)
    : caf::actor_proxy(cfg), core_(std::move(core)), peer_(std::move(peer)),
      target_(target) {}

remote_proxy::~remote_proxy() = default;

void remote_proxy::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  if (auto core = core_.lock()) {
    core->forward(peer_, target_, std::move(what));
    return;
  }
  // The fabric is gone: a request still gets an answer.
  if (what->mid.is_request() && what->sender)
    what->sender->enqueue(
        nullptr, what->mid.response_id(),
        caf::make_message(
            to_caf_error(rerr::disconnected, "the transport of this node has stopped")),
        nullptr);
}

bool remote_proxy::add_backlink(caf::abstract_actor* x) {
  if (!monitorable_actor::add_backlink(x)) return false;
  if (auto core = core_.lock()) core->send_link(peer_, target_, x, true);
  return true;
}

bool remote_proxy::remove_backlink(caf::abstract_actor* x) {
  if (!monitorable_actor::remove_backlink(x)) return false;
  if (auto core = core_.lock()) core->send_link(peer_, target_, x, false);
  return true;
}

void remote_proxy::kill_proxy(caf::execution_unit* host, caf::error reason) {
  cleanup(std::move(reason), host);
}

// -- fabric_core: set-up -----------------------------------------------------------

fabric_core::fabric_core(node& n, transport_config cfg, message_types types,
                         cluster_secrets secrets)
    : node_(n), cfg_(std::move(cfg)), types_(std::move(types)),
      secrets_(std::move(secrets)) {
  static std::atomic<uint64_t> serials{0};
  serial_ = ++serials;
  me_.node_name = n.config().node.name;
  node_id_ = node_id_of(me_.node_name);
  auto inc = random_bytes(8);
  std::memcpy(&me_.incarnation, inc.data(), 8);
  if (me_.incarnation == 0) me_.incarnation = 1;
  limits_.max_frame_bytes = static_cast<size_t>(cfg_.max_frame_bytes);
  limits_.max_payload_bytes = static_cast<size_t>(cfg_.max_frame_bytes);
  limits_.max_bulk_bytes = static_cast<uint64_t>(cfg_.max_payload_bytes);
  log_ = logging::get("transport");
}

fabric_core::~fabric_core() {
  stop();
}

std::string fabric_core::listen_address() const {
  std::lock_guard<std::mutex> g{mu_};
  return listen_address_;
}

result<void> fabric_core::start() {
  if (cfg_.keep_large_buffers) {
    // A fresh mapping per large message costs a page fault per 4 KiB (and
    // a zero fill) on every receive; buffers from the heap are reused.
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
  ucx::context_options o;
  o.transports = cfg_.transports;
  o.shared_memory = cfg_.shared_memory;
  // Busy polling keeps the worker's lock taken: direct sends would spin on it.
  if (cfg_.busy_poll) cfg_.direct_send = false;
  o.multi_thread = cfg_.direct_send;
  auto w = ucx::worker::create(o);
  if (!w) return std::move(w).err();
  worker_ = std::move(*w);

  struct am_arg {
    fabric_core* core;
    unsigned id;
  };
  static constexpr auto trampoline =
      [](void* arg, const void* header, size_t header_len, void* data, size_t len,
         const ucp_am_recv_param_t* param) -> ucs_status_t {
    auto* a = static_cast<am_arg*>(arg);
    return a->core->on_am(a->id, header, header_len, data, len, param);
  };
  for (unsigned id : {am_handshake, am_frame, am_bulk, am_credit}) {
    ucp_am_handler_param_t hp{};
    hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
    hp.id = id;
    hp.flags = UCP_AM_FLAG_WHOLE_MSG;
    hp.cb = trampoline;
    // One small arg per handler, owned by the core (freed in stop()).
    auto* arg = new am_arg{this, id};
    am_args_.emplace_back(arg, [](void* p) { delete static_cast<am_arg*>(p); });
    hp.arg = arg;
    if (auto st = ucp_worker_set_am_recv_handler(worker_->get(), &hp); st != UCS_OK)
      return ucx::to_error(st, "ucp_worker_set_am_recv_handler");
  }

  if (cfg_.listen_enabled) {
    socklen_t len = 0;
    auto sa = ucx::parse_address(cfg_.listen, len);
    if (!sa)
      return error{rerr::invalid_argument, "transport.listen: " + sa.err().message()};
    ucp_listener_params_t lp{};
    lp.field_mask =
        UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
    lp.sockaddr.addr = reinterpret_cast<const sockaddr*>(&*sa);
    lp.sockaddr.addrlen = len;
    lp.conn_handler.cb = [](ucp_conn_request_h req, void* arg) {
      static_cast<fabric_core*>(arg)->on_connection_request(req);
    };
    lp.conn_handler.arg = this;
    if (auto st = ucp_listener_create(worker_->get(), &lp, &listener_); st != UCS_OK) {
      if (st == UCS_ERR_BUSY)
        return error{rerr::unavailable,
                     "transport.listen: " + cfg_.listen + " is in use"};
      return ucx::to_error(st, "listen on " + cfg_.listen);
    }
    ucp_listener_attr_t la{};
    la.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
    if (auto st = ucp_listener_query(listener_, &la); st != UCS_OK)
      return ucx::to_error(st, "ucp_listener_query");
    std::lock_guard<std::mutex> g{mu_};
    listen_address_ = ucx::format_address(la.sockaddr);
    me_.listen_address = listen_address_;
  }
  unit_ = std::make_unique<inline_unit>(system(), *this);
  running_ = true;
  thread_ = std::thread{[this] { run(); }};
  log_->info(
      "transport: node {} listening at {} (incarnation {:016x}{}, max AM header {})",
      me_.node_name, listen_address_.empty() ? std::string{"-"} : listen_address_,
      me_.incarnation, cfg_.busy_poll ? ", busy poll" : "", worker_->max_am_header());
  return ok();
}

void fabric_core::stop() {
  if (!running_.exchange(false)) return;
  worker_->signal();
  if (thread_.joinable()) thread_.join();
  // Close every endpoint: peers see us leave (their error handler fires).
  std::vector<std::shared_ptr<peer_state>> all;
  {
    std::lock_guard<std::mutex> g{mu_};
    for (auto& [ep, p] : by_ep_)
      all.push_back(p);
  }
  for (auto& p : all)
    peer_down(p, "this node stopped its transport");
  if (listener_ != nullptr) {
    ucp_listener_destroy(listener_);
    listener_ = nullptr;
  }
  kill_proxies_of(0,
                  to_caf_error(rerr::disconnected, "the transport of this node stopped"));
  worker_.reset();
  am_args_.clear();
}

// -- progress thread ----------------------------------------------------------------

void fabric_core::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> g{mu_};
    tasks_.push_back(std::move(task));
    work_posted_.store(true, std::memory_order_release);
  }
  if (sleeping_.load()) worker_->signal();
}

void fabric_core::wake(const std::shared_ptr<peer_state>& p) {
  {
    std::lock_guard<std::mutex> g{mu_};
    ready_.push_back(p);
    work_posted_.store(true, std::memory_order_release);
  }
  if (sleeping_.load()) worker_->signal();
}

// -- inline delivery -------------------------------------------------------------

void inline_unit::exec_later(caf::resumable* job) {
  core_.exec_later(job);
}

void fabric_core::exec_later(caf::resumable* job) {
  // Only the progress thread schedules on its own unit; anything else (or
  // anything after the loop ended) goes to CAF's scheduler, which takes
  // over the reference the caller added.
  bool here = std::this_thread::get_id() == progress_tid_.load(std::memory_order_relaxed);
  if (here && running_.load(std::memory_order_relaxed) &&
      cfg_.inline_delivery != inline_mode::off &&
      job->subtype() == caf::resumable::scheduled_actor) {
    auto id = static_cast<caf::scheduled_actor*>(job)->id();
    bool pick = cfg_.inline_delivery == inline_mode::all ? !demoted_.contains(id)
                                                         : marked_.contains(id);
    if (pick) {
      runnable_.push_back(job);
      return;
    }
  }
  system().scheduler().enqueue(job);
}

bool fabric_core::run_inline() {
  if (runnable_.empty()) return false;
  // A bounded number of runs per turn, so the network is served between
  // them; actors with more work stay queued for the next turn.
  auto throughput = static_cast<size_t>(cfg_.inline_throughput);
  for (size_t runs = 0; runs < 256 && !runnable_.empty(); ++runs) {
    caf::resumable* job = runnable_.front();
    runnable_.pop_front();
    auto t0 = std::chrono::steady_clock::now();
    auto res = job->resume(unit_.get(), throughput);
    auto took = std::chrono::steady_clock::now() - t0;
    c_.inline_runs.fetch_add(1, std::memory_order_relaxed);
    // Over budget three runs in a row (one slow run may just be this
    // thread losing its core): back to the scheduler.
    bool over = took > cfg_.inline_budget;
    if (!over && !strikes_.empty())
      strikes_.erase(static_cast<caf::scheduled_actor*>(job)->id());
    if (over && ++strikes_[static_cast<caf::scheduled_actor*>(job)->id()] >= 3) {
      auto id = static_cast<caf::scheduled_actor*>(job)->id();
      strikes_.erase(id);
      if (demoted_.insert(id).second) {
        marked_.erase(id);
        c_.inline_demoted.fetch_add(1, std::memory_order_relaxed);
        log_->warn(
            "transport: actor {} ran {} us on the progress thread (budget {} us); "
            "its messages go through the scheduler from now on",
            id, std::chrono::duration_cast<std::chrono::microseconds>(took).count(),
            std::chrono::duration_cast<std::chrono::microseconds>(cfg_.inline_budget)
                .count());
      }
      if (res == caf::resumable::resume_later) {
        system().scheduler().enqueue(job);
        continue;
      }
    }
    switch (res) {
    case caf::resumable::resume_later:
      runnable_.push_back(job); // keeps its reference
      break;
    case caf::resumable::awaiting_message:
    case caf::resumable::done:
    case caf::resumable::shutdown_execution_unit:
      intrusive_ptr_release(job);
      break;
    }
  }
  return true;
}

result<void> fabric_core::not_on_progress_thread(std::string_view what) const {
  if (std::this_thread::get_id() != progress_tid_.load(std::memory_order_relaxed))
    return ok();
  return error{rerr::unavailable,
               std::string{what} +
                   " blocks, and was called from an actor running on the fabric's "
                   "progress thread (inline delivery): call it from an actor that is "
                   "not delivered inline, or from outside actors"};
}

result<void> fabric_core::deliver_inline(const actor_ref& a, bool on) {
  if (!a) return error{rerr::invalid_argument, "deliver_inline: empty actor ref"};
  auto ptr = caf::actor_cast<caf::strong_actor_ptr>(a.handle());
  if (as_proxy(ptr) != nullptr)
    return error{rerr::invalid_argument, "deliver_inline: actor " +
                                             std::to_string(ptr->id()) +
                                             " lives on another node"};
  caf::actor_id id = ptr->id();
  post([this, id, on] {
    if (!on) {
      marked_.erase(id);
    } else if (!demoted_.contains(id)) {
      marked_.insert(id);
    }
  });
  return ok();
}

void fabric_core::run() {
  progress_tid_ = std::this_thread::get_id();
  ucp_worker_h w = worker_->get();
  std::vector<std::function<void()>> tasks;
  std::vector<std::shared_ptr<peer_state>> ready;
  while (running_.load(std::memory_order_relaxed)) {
    unsigned progressed = 0;
    for (int i = 0; i < 64; ++i) {
      unsigned n = ucp_worker_progress(w);
      progressed += n;
      if (n == 0) break;
    }
    // The lock only when something was posted: a busy-polling loop would
    // otherwise take it on every turn.
    if (work_posted_.exchange(false, std::memory_order_acquire)) {
      std::lock_guard<std::mutex> g{mu_};
      tasks.swap(tasks_);
      ready.swap(ready_);
    }
    for (auto& t : tasks)
      t();
    for (auto& p : ready)
      flush(p);
    bool ran = run_inline();
    bool worked = progressed > 0 || !tasks.empty() || !ready.empty() || ran;
    tasks.clear();
    ready.clear();
    if (worked || cfg_.busy_poll) continue;
    // Sleep on the worker's event fd until UCX or a sender wakes us.
    if (ucp_worker_arm(w) == UCS_ERR_BUSY) continue;
    sleeping_.store(true);
    {
      std::lock_guard<std::mutex> g{mu_};
      if (!tasks_.empty() || !ready_.empty() || !running_.load()) {
        sleeping_.store(false);
        continue;
      }
    }
    pollfd pfd{worker_->event_fd(), POLLIN, 0};
    (void)::poll(&pfd, 1, 100);
    sleeping_.store(false);
  }
  // Actors still waiting for an inline run go to the scheduler.
  for (auto* job : runnable_)
    system().scheduler().enqueue(job);
  runnable_.clear();
}

void fabric_core::seal_batch(peer_state& p) {
  if (p.batch.empty()) return;
  out_item it;
  it.frame = p.batch.take();
  p.queue.push_back(std::move(it));
  p.batch.reserve(batch_seal_bytes + 1024);
}

peer_info fabric_core::info_of(const peer_state& p) {
  peer_info info;
  info.node_name = p.id.node_name;
  info.node_id = p.id.node_id;
  info.incarnation = p.id.incarnation;
  info.address = p.id.listen_address;
  info.remote_sockaddr = p.remote_sockaddr;
  info.outbound = p.outbound;
  info.up = p.status.load() == peer_status::up;
  info.transports = p.transports;
  info.protocol = p.id.version;
  return info;
}

void fabric_core::flush(const std::shared_ptr<peer_state>& p) {
  if (p->status.load() != peer_status::up || p->ep == nullptr) return;
  std::vector<out_item> items;
  {
    std::lock_guard<std::mutex> g{p->mu};
    seal_batch(*p);
    p->flush_pending = false;
    while (!p->queue.empty()) {
      auto n = static_cast<int64_t>(p->queue.front().bytes());
      if (p->in_flight > 0 && p->in_flight + n > cfg_.window_bytes) break;
      p->in_flight += n;
      p->queued_bytes -= n;
      p->queue.front().seq = p->send_seq++;
      items.push_back(std::move(p->queue.front()));
      p->queue.pop_front();
    }
  }
  for (auto& it : items) {
    auto ctx = std::make_unique<send_ctx>();
    uint64_t seq = it.seq;
    ucs_status_t st;
    size_t total = it.bytes();
    if (it.bulk == nullptr) {
      ctx->header[0] = seq;
      ctx->frame = std::move(it.frame);
      const void* hdr = ctx->header;
      const void* data = ctx->frame.data();
      size_t len = ctx->frame.size();
      st = send_am(p->ep, am_frame, hdr, sizeof(uint64_t), data, len, 0, std::move(ctx));
      c_.frames_sent.fetch_add(1, std::memory_order_relaxed);
    } else {
      ctx->header_bytes.resize(8 + it.frame.size());
      std::memcpy(ctx->header_bytes.data(), &seq, 8);
      std::memcpy(ctx->header_bytes.data() + 8, it.frame.data(), it.frame.size());
      ctx->keep = std::move(it.keep);
      ctx->staging = std::move(it.staging);
      const void* hdr = ctx->header_bytes.data();
      size_t hlen = ctx->header_bytes.size();
      st = send_am(p->ep, am_bulk, hdr, hlen, it.bulk, it.bulk_size,
                   UCP_AM_SEND_FLAG_RNDV, std::move(ctx),
                   it.bulk_on_device ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST);
      c_.bulk_sent.fetch_add(1, std::memory_order_relaxed);
    }
    c_.bytes_sent.fetch_add(total, std::memory_order_relaxed);
    if (UCS_STATUS_IS_ERR(st)) {
      // flush also runs inside UCX callbacks, where an endpoint must not be
      // closed: the progress loop does it.
      post([this, p, st] {
        peer_down(p, std::string{"send failed: "} + ucs_status_string(st));
      });
      return;
    }
  }
  // Blocked by the window: ask the peer for the credit it has not sent yet
  // (it credits in quarters of the window, so a remainder could otherwise
  // stay with it forever).
  bool blocked = false;
  {
    std::lock_guard<std::mutex> g{p->mu};
    blocked = !p->queue.empty();
  }
  if (blocked && !p->credit_requested) {
    p->credit_requested = true;
    auto ctx = std::make_unique<send_ctx>();
    ctx->header[0] = 0; // a grant of 0 asks for credit
    const void* hdr = ctx->header;
    (void)send_am(p->ep, am_credit, hdr, 8, nullptr, 0, 0, std::move(ctx));
  }
}

// -- handshake ---------------------------------------------------------------------

ucs_status_t fabric_core::create_endpoint(ucp_ep_params_t& ep, peer_state& p) {
  // Every endpoint reports errors of its peer to on_endpoint_error; the
  // callback's argument lives as long as the worker.
  struct err_arg {
    fabric_core* core;
    peer_state* peer;
  };
  auto arg = std::make_unique<err_arg>(err_arg{this, &p});
  ep.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  ep.err_handler.cb = [](void* a, ucp_ep_h, ucs_status_t st) {
    auto* ea = static_cast<err_arg*>(a);
    ea->core->on_endpoint_error(ea->peer, st);
  };
  ep.err_handler.arg = arg.get();
  auto st = ucp_ep_create(worker_->get(), &ep, &p.ep);
  if (st == UCS_OK)
    err_args_.emplace_back(arg.release(),
                           [](void* x) { delete static_cast<err_arg*>(x); });
  return st;
}

void fabric_core::on_connection_request(ucp_conn_request_h req) {
  auto p = std::make_shared<peer_state>();
  p->outbound = false;
  ucp_conn_request_attr_t ra{};
  ra.field_mask = UCP_CONN_REQUEST_ATTR_FIELD_CLIENT_ADDR;
  if (ucp_conn_request_query(req, &ra) == UCS_OK)
    p->remote_sockaddr = ucx::format_address(ra.client_address);
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
  ep.conn_request = req;
  if (auto st = create_endpoint(ep, *p); st != UCS_OK) {
    log_->warn("transport: cannot accept connection from {}: {}", p->remote_sockaddr,
               ucs_status_string(st));
    return;
  }
  p->server =
      std::make_unique<server_handshake>(me_, secrets_, random_bytes(nonce_bytes));
  std::lock_guard<std::mutex> g{mu_};
  by_ep_[p->ep] = p;
}

result<peer_info> fabric_core::connect(std::string_view address,
                                       std::chrono::nanoseconds timeout) {
  if (auto here = not_on_progress_thread("fabric::connect"); !here)
    return std::move(here).err();
  socklen_t len = 0;
  auto sa = ucx::parse_address(address, len);
  if (!sa) return std::move(sa).err();
  {
    std::lock_guard<std::mutex> g{mu_};
    for (auto& [id, p] : by_id_)
      if (p->id.listen_address == address && p->status.load() == peer_status::up) {
        return info_of(*p);
      }
  }
  auto done = std::make_shared<std::promise<result<void>>>();
  auto fut = done->get_future();
  auto p = std::make_shared<peer_state>();
  p->outbound = true;
  p->remote_sockaddr = std::string{address};
  std::string addr{address};
  sockaddr_storage ss = *sa;
  post([this, p, done, ss, len, addr] {
    ucp_ep_params_t ep{};
    ep.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR;
    ep.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
    ep.sockaddr.addr = reinterpret_cast<const sockaddr*>(&ss);
    ep.sockaddr.addrlen = len;
    if (auto st = create_endpoint(ep, *p); st != UCS_OK) {
      p->ep = nullptr;
      p->status = peer_status::down;
      done->set_value(error{rerr::disconnected, "connect to " + addr + ": " +
                                                    std::string{ucs_status_string(st)}});
      return;
    }
    p->client =
        std::make_unique<client_handshake>(me_, secrets_, random_bytes(nonce_bytes));
    {
      std::lock_guard<std::mutex> g{mu_};
      by_ep_[p->ep] = p;
      p->on_ready = [done](result<void> r) { done->set_value(std::move(r)); };
    }
    send_handshake(p, p->client->start());
  });
  if (fut.wait_for(timeout) != std::future_status::ready) {
    post([this, p, addr] {
      if (p->status.load() != peer_status::down)
        peer_down(p, "handshake with " + addr + " timed out");
    });
    return error{
        rerr::disconnected,
        "connect to " + std::string{address} + ": no answer within " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
            " ms"};
  }
  auto r = fut.get();
  if (!r) return std::move(r).err();
  return info_of(*p);
}

void fabric_core::send_handshake(const std::shared_ptr<peer_state>& p,
                                 const handshake_message& m) {
  if (p->ep == nullptr) return;
  auto ctx = std::make_unique<send_ctx>();
  ctx->frame = encode_handshake(m);
  const void* data = ctx->frame.data();
  size_t len = ctx->frame.size();
  auto st = send_am(p->ep, am_handshake, nullptr, 0, data, len, 0, std::move(ctx));
  if (UCS_STATUS_IS_ERR(st))
    post([this, p, st] {
      peer_down(p, std::string{"handshake send: "} + ucs_status_string(st));
    });
}

void fabric_core::on_handshake(const std::shared_ptr<peer_state>& p,
                               std::span<const std::byte> frame) {
  auto m = decode_handshake(frame, limits_);
  auto reject = [&](const error& e, bool tell) {
    c_.auth_failures.fetch_add(1, std::memory_order_relaxed);
    log_->warn("transport: rejecting peer at {}: {}", p->remote_sockaddr, e.to_string());
    if (tell) send_handshake(p, verdict{false, e.message()});
    if (p->on_ready) {
      auto cb = std::move(p->on_ready);
      p->on_ready = nullptr;
      cb(e);
    }
    // Let the verdict go out before the endpoint closes.
    p->closing = true;
    post([this, p, msg = e.to_string()] { peer_down(p, msg, true); });
    p->status = peer_status::down;
  };
  if (!m) {
    c_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
    reject(m.err(), false);
    return;
  }
  if (p->server) {
    if (auto* h = std::get_if<hello>(&*m)) {
      p->hello_seen = true;
      auto ack = p->server->on_hello(*h);
      if (!ack) return reject(ack.err(), true);
      send_handshake(p, *ack);
      return;
    }
    if (auto* pr = std::get_if<proof>(&*m)) {
      if (auto r = p->server->on_proof(*pr); !r) return reject(r.err(), true);
      p->id = p->server->peer();
      send_handshake(p, verdict{true, {}});
      peer_up(p);
      return;
    }
    return reject(
        error{rerr::invalid_argument, "unexpected handshake message from a client"},
        true);
  }
  if (p->client) {
    if (auto* a = std::get_if<hello_ack>(&*m)) {
      auto pr = p->client->on_hello_ack(*a);
      // Tell the server why, so that it logs and counts the attempt too.
      if (!pr) return reject(pr.err(), true);
      send_handshake(p, *pr);
      return;
    }
    if (auto* v = std::get_if<verdict>(&*m)) {
      if (auto r = p->client->on_verdict(*v); !r) return reject(r.err(), false);
      p->id = p->client->peer();
      peer_up(p);
      return;
    }
    return reject(
        error{rerr::invalid_argument, "unexpected handshake message from a server"},
        false);
  }
}

void fabric_core::peer_up(const std::shared_ptr<peer_state>& p) {
  p->transports = ucx::endpoint_transports(p->ep);
  std::shared_ptr<peer_state> old;
  std::function<void(result<void>)> ready;
  {
    std::lock_guard<std::mutex> g{mu_};
    auto it = by_id_.find(p->id.node_id);
    if (it != by_id_.end() && it->second != p) old = it->second;
    by_id_[p->id.node_id] = p;
    ready = std::move(p->on_ready);
    p->on_ready = nullptr;
  }
  p->status = peer_status::up;
  if (old)
    post([this, old] {
      peer_down(old, "replaced by a new connection from the same node");
    });
  log_->info("transport: peer {} up ({} {}, via {})", p->id.node_name,
             p->outbound ? "connected to" : "accepted from", p->remote_sockaddr,
             fmt_transports(p->transports));
  if (ready) ready(ok());
  notify_peer_event(info_of(*p), "");
  flush(p);
}

void fabric_core::notify_peer_event(const peer_info& info, const std::string& why) {
  std::vector<peer_listener> listeners;
  {
    std::lock_guard<std::mutex> g{mu_};
    listeners = listeners_;
  }
  for (auto& l : listeners)
    l(info, why);
}

void fabric_core::watch_peers(peer_listener listener) {
  std::lock_guard<std::mutex> g{mu_};
  listeners_.push_back(std::move(listener));
}

void fabric_core::on_endpoint_error(peer_state* raw, ucs_status_t st) {
  std::shared_ptr<peer_state> p;
  {
    std::lock_guard<std::mutex> g{mu_};
    auto it = by_ep_.find(raw->ep);
    if (it != by_ep_.end()) p = it->second;
  }
  if (!p) return;
  // Closing an endpoint from inside its error callback is not allowed.
  post([this, p, st] {
    peer_down(p, std::string{"endpoint error: "} + ucs_status_string(st));
  });
}

void fabric_core::peer_down(const std::shared_ptr<peer_state>& p, const std::string& why,
                            bool graceful) {
  auto before = p->status.exchange(peer_status::down);
  bool was_up = before == peer_status::up;
  if (before == peer_status::handshaking && p->server && p->hello_seen && !p->closing &&
      running_.load()) {
    // The client left after seeing our proof: most likely it rejected it
    // (its verdict may not have made it through the close).
    p->closing = true;
    c_.auth_failures.fetch_add(1, std::memory_order_relaxed);
    log_->warn("transport: peer at {} left during the handshake ({})", p->remote_sockaddr,
               why);
  }
  std::function<void(result<void>)> ready;
  {
    std::lock_guard<std::mutex> g{mu_};
    if (p->ep != nullptr) by_ep_.erase(p->ep);
    auto it = by_id_.find(p->id.node_id);
    if (it != by_id_.end() && it->second == p) by_id_.erase(it);
    ready = std::move(p->on_ready);
    p->on_ready = nullptr;
    if (was_up) {
      history_.push_back(info_of(*p));
    }
  }
  if (ready) ready(error{rerr::disconnected, why});
  {
    std::lock_guard<std::mutex> g{p->mu};
    p->queue.clear();
    p->batch.clear();
    p->queued_bytes = 0;
  }
  std::unordered_map<uint64_t, peer_state::pending_request> pending;
  {
    std::lock_guard<std::mutex> g{p->req_mu};
    pending.swap(p->pending);
  }
  std::string msg = "node " +
                    (p->id.node_name.empty() ? p->remote_sockaddr : p->id.node_name) +
                    " is unreachable: " + why;
  for (auto& [k, r] : pending)
    fail_locally(r.sender, r.mid, rerr::disconnected, msg);
  if (was_up) {
    c_.peers_lost.fetch_add(1, std::memory_order_relaxed);
    if (!running_.load())
      log_->info("transport: closed the connection to peer {}", p->id.node_name);
    else
      log_->warn("transport: peer {} down: {}", p->id.node_name, why);
    kill_proxies_of(p->id.node_id, to_caf_error(rerr::disconnected, msg));
    auto info = info_of(*p);
    info.up = false;
    notify_peer_event(info, why);
  }
  if (p->ep != nullptr && worker_) {
    ucp_ep_h ep = nullptr;
    {
      std::unique_lock<std::shared_mutex> g{p->ep_mu}; // no direct send in flight
      ep = std::exchange(p->ep, nullptr);
    }
    // Our own shutdown closes gracefully, so peers see us leave at once.
    worker_->close_endpoint(ep, running_.load() && !graceful);
  }
  p->reorder.clear();
}

// -- receiving ------------------------------------------------------------------------

ucs_status_t fabric_core::on_am(unsigned id, const void* header, size_t header_len,
                                void* data, size_t len,
                                const ucp_am_recv_param_t* param) {
  std::shared_ptr<peer_state> p;
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) != 0) {
    std::lock_guard<std::mutex> g{mu_};
    auto it = by_ep_.find(param->reply_ep);
    if (it != by_ep_.end()) p = it->second;
  }
  bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
  auto discard = [&] {
    if (rndv) ucp_am_data_release(worker_->get(), data);
    return UCS_OK;
  };
  if (!p || p->status.load() == peer_status::down) {
    c_.dropped_unauthenticated.fetch_add(1, std::memory_order_relaxed);
    return discard();
  }
  auto bytes =
      std::span<const std::byte>{static_cast<const std::byte*>(data), rndv ? 0 : len};
  if (id == am_handshake) {
    if (p->status.load() != peer_status::handshaking) {
      c_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
      return discard();
    }
    on_handshake(p, bytes);
    return discard();
  }
  if (p->status.load() != peer_status::up) {
    // Nothing but the handshake before authentication.
    c_.dropped_unauthenticated.fetch_add(1, std::memory_order_relaxed);
    log_->warn("transport: dropped a message from unauthenticated peer {}",
               p->remote_sockaddr);
    return discard();
  }
  if (id == am_credit) {
    uint64_t n = 0;
    if (header_len == 8) std::memcpy(&n, header, 8);
    if (n == 0) {
      // The peer waits for credit: grant what we owe now, or as soon as
      // the data still on its way has arrived.
      p->credit_wanted = true;
      send_credit(p, true);
      return discard();
    }
    {
      std::lock_guard<std::mutex> g{p->mu};
      p->in_flight = std::max<int64_t>(0, p->in_flight - static_cast<int64_t>(n));
    }
    p->credit_requested = false;
    flush(p);
    return discard();
  }
  if (header_len < 8) {
    c_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
    return discard();
  }
  uint64_t seq = 0;
  std::memcpy(&seq, header, 8);
  if (seq < p->expect_seq || p->reorder.count(seq) != 0 ||
      seq > p->expect_seq + (uint64_t{1} << 20)) {
    c_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
    log_->warn("transport: peer {} sent sequence {} (expected {}): dropped",
               p->id.node_name, seq, p->expect_seq);
    return discard();
  }
  if (id != am_frame && id != am_bulk) {
    c_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
    return discard();
  }
  if (len > static_cast<size_t>(id == am_bulk ? cfg_.max_payload_bytes
                                              : cfg_.max_frame_bytes)) {
    c_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
    log_->warn(
        "transport: peer {} sent {} bytes in one message (limit {}): disconnecting",
        p->id.node_name, len,
        id == am_bulk ? cfg_.max_payload_bytes : cfg_.max_frame_bytes);
    discard();
    post([this, p] { peer_down(p, "oversized message"); });
    return UCS_OK;
  }
  if (id == am_frame) {
    c_.frames_received.fetch_add(1, std::memory_order_relaxed);
    c_.bytes_received.fetch_add(len, std::memory_order_relaxed);
    if (!rndv && seq == p->expect_seq && p->reorder.empty()) {
      ++p->expect_seq;
      deliver_frame(p, bytes, nullptr);
      p->uncredited += static_cast<int64_t>(len);
      send_credit(p);
      return UCS_OK;
    }
  } else {
    c_.bulk_received.fetch_add(1, std::memory_order_relaxed);
    c_.bytes_received.fetch_add(len + header_len, std::memory_order_relaxed);
  }
  in_item it;
  it.is_bulk = id == am_bulk;
  void* dest = nullptr;
  if (it.is_bulk) {
    auto* h = static_cast<const std::byte*>(header);
    it.frame.assign(h + 8, h + header_len);
    it.bulk.resize(len);
    dest = it.bulk.data();
  } else {
    it.frame.resize(len);
    dest = it.frame.data();
  }
  if (!rndv) {
    std::memcpy(dest, data, len);
    p->reorder.emplace(seq, std::move(it));
    drain(p);
    return UCS_OK;
  }
  // Rendezvous: UCX fetches the data into `dest`; the item waits in the
  // reorder buffer (map nodes and their vectors do not move) until it lands.
  it.complete = false;
  auto pos = p->reorder.emplace(seq, std::move(it)).first;
  dest = pos->second.is_bulk ? static_cast<void*>(pos->second.bulk.data())
                             : static_cast<void*>(pos->second.frame.data());
  struct recv_ctx {
    fabric_core* core;
    std::weak_ptr<peer_state> peer;
    uint64_t seq;
  };
  auto* rc = new recv_ctx{this, p, seq};
  ucp_request_param_t rp{};
  rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  rp.cb.recv_am = [](void* request, ucs_status_t st, size_t, void* ud) {
    auto* c = static_cast<recv_ctx*>(ud);
    if (auto peer = c->peer.lock()) {
      auto it = peer->reorder.find(c->seq);
      if (it != peer->reorder.end()) {
        if (st == UCS_OK) {
          it->second.complete = true;
          c->core->drain(peer);
        } else {
          c->core->post([core = c->core, peer, st] {
            core->peer_down(peer,
                            std::string{"rendezvous receive: "} + ucs_status_string(st));
          });
        }
      }
    }
    delete c;
    ucp_request_free(request);
  };
  rp.user_data = rc;
  auto st = ucp_am_recv_data_nbx(worker_->get(), data, dest, len, &rp);
  if (st == nullptr) {
    pos->second.complete = true;
    delete rc;
    drain(p);
  } else if (UCS_PTR_IS_ERR(st)) {
    delete rc;
    post([this, p, s = UCS_PTR_STATUS(st)] {
      peer_down(p, std::string{"rendezvous receive: "} + ucs_status_string(s));
    });
  }
  return UCS_OK;
}

void fabric_core::drain(const std::shared_ptr<peer_state>& p) {
  while (!p->reorder.empty()) {
    auto it = p->reorder.begin();
    if (it->first != p->expect_seq || !it->second.complete) return;
    in_item item = std::move(it->second);
    p->reorder.erase(it);
    ++p->expect_seq;
    deliver_frame(p, item.frame, item.is_bulk ? &item.bulk : nullptr);
    p->uncredited += static_cast<int64_t>(item.frame.size() + item.bulk.size());
    if (p->status.load() != peer_status::up) return;
  }
  send_credit(p);
}

void fabric_core::send_credit(const std::shared_ptr<peer_state>& p, bool force) {
  if (p->ep == nullptr || p->uncredited == 0) return;
  if (p->uncredited < cfg_.window_bytes / 4 && !force && !p->credit_wanted) return;
  p->credit_wanted = false;
  auto ctx = std::make_unique<send_ctx>();
  ctx->header[0] = static_cast<uint64_t>(p->uncredited);
  p->uncredited = 0;
  const void* hdr = ctx->header;
  (void)send_am(p->ep, am_credit, hdr, 8, nullptr, 0, 0, std::move(ctx));
}

void fabric_core::deliver_frame(const std::shared_ptr<peer_state>& p,
                                std::span<const std::byte> frame,
                                std::vector<char>* bulk) {
  auto r = decode_frame(frame, limits_, [&](const envelope_view& e) {
    c_.envelopes_received.fetch_add(1, std::memory_order_relaxed);
    if ((e.header.bulk_size != 0) != (bulk != nullptr) ||
        (bulk != nullptr && e.header.bulk_size != bulk->size())) {
      c_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    deliver(p, e, bulk);
  });
  if (!r) {
    c_.dropped_malformed.fetch_add(1, std::memory_order_relaxed);
    log_->warn("transport: dropped malformed frame from {}: {}", p->id.node_name,
               r.err().to_string());
  }
}

namespace {

/// Decodes an envelope's payload into a CAF message.
result<caf::message> decode_payload(fabric_core& core, const envelope_view& e,
                                    std::vector<char>* bulk) {
  caf::binary_deserializer src{
      core.system(), reinterpret_cast<const char*>(e.payload.data()), e.payload.size()};
  auto types = e.types();
  if (bulk == nullptr) {
    // Common shapes: one tuple, one make_message.
    if (auto fast = core.types().find_signature(types)) {
      caf::message out;
      if (auto err = fast(src, out))
        return error{rerr::invalid_argument, "payload: " + caf::to_string(err)};
      if (src.remaining() != 0)
        return error{rerr::invalid_argument, std::to_string(src.remaining()) +
                                                 " trailing bytes after the payload"};
      return out;
    }
  }
  caf::message_builder mb;
  for (size_t i = 0; i < types.size(); ++i) {
    const element_codec* c = core.types().find(types[i]);
    if (c == nullptr)
      return error{rerr::invalid_argument,
                   "unknown message type id " + std::to_string(types[i])};
    if (c->handle != element_codec::handle_kind::none) {
      wire_ref r;
      if (auto err = src(r.node, r.incarnation, r.actor))
        return error{rerr::invalid_argument, "actor handle: " + caf::to_string(err)};
      auto ptr = core.resolve(r);
      switch (c->handle) {
      case element_codec::handle_kind::actor:
        mb.append(caf::actor_cast<caf::actor>(ptr));
        break;
      case element_codec::handle_kind::strong_ptr:
        mb.append(ptr);
        break;
      default:
        mb.append(caf::actor_cast<caf::actor_addr>(ptr));
        break;
      }
      continue;
    }
    if (bulk != nullptr && i + 1 == types.size()) {
      if (!c->append_bytes)
        return error{rerr::invalid_argument, "bulk payload for type " + c->name};
      if (auto err = c->append_bytes(src, std::move(*bulk), mb))
        return error{rerr::invalid_argument, c->name + ": " + caf::to_string(err)};
      continue;
    }
    if (auto err = c->load(src, mb))
      return error{rerr::invalid_argument, c->name + ": " + caf::to_string(err)};
  }
  if (src.remaining() != 0)
    return error{rerr::invalid_argument,
                 std::to_string(src.remaining()) + " trailing bytes after the payload"};
  return mb.move_to_message();
}

} // namespace

void fabric_core::deliver(const std::shared_ptr<peer_state>& p, const envelope_view& e,
                          std::vector<char>* bulk) {
  const auto& h = e.header;
  auto mine = [&](const wire_ref& r) {
    return r.node == node_id_ && (r.incarnation == me_.incarnation || r.incarnation == 0);
  };
  switch (h.kind) {
  case envelope_kind::message:
  case envelope_kind::request:
  case envelope_kind::response: {
    if (!mine(h.receiver)) {
      c_.dropped_no_receiver.fetch_add(1, std::memory_order_relaxed);
      if (h.kind == envelope_kind::request)
        reply_error(p, e, rerr::actor_failed,
                    h.receiver.node == node_id_ ? "node " + me_.node_name + " restarted"
                                                : "no route to the receiver's node");
      return;
    }
    auto content = decode_payload(*this, e, bulk);
    if (!content) {
      bool unknown = content.err().message().rfind("unknown message type", 0) == 0;
      (unknown ? c_.dropped_unknown_type : c_.dropped_malformed)
          .fetch_add(1, std::memory_order_relaxed);
      log_->warn("transport: cannot decode a message from {}: {}", p->id.node_name,
                 content.err().message());
      if (h.kind == envelope_kind::request)
        reply_error(p, e, rerr::invalid_argument,
                    "node " + me_.node_name +
                        " cannot decode the message: " + content.err().message());
      return;
    }
    if (h.receiver.actor == 0) {
      if (h.kind == envelope_kind::request) serve_node_request(p, e, std::move(*content));
      return;
    }
    auto dst = system().registry().get(static_cast<caf::actor_id>(h.receiver.actor));
    if (!dst) {
      c_.dropped_no_receiver.fetch_add(1, std::memory_order_relaxed);
      if (h.kind == envelope_kind::request)
        reply_error(p, e, rerr::actor_failed,
                    "actor " + std::to_string(h.receiver.actor) + " on node " +
                        me_.node_name + " is gone");
      return;
    }
    caf::strong_actor_ptr sender = resolve(h.sender);
    caf::message_id mid =
        h.kind == envelope_kind::message
            ? caf::make_message_id()
            : caf::make_message_id<caf::message_priority::high>(h.correlation);
    if (h.kind == envelope_kind::response) {
      // Answered: the request no longer fails when this peer goes away.
      std::lock_guard<std::mutex> g{p->req_mu};
      p->pending.erase(pending_hash(h.receiver.actor, mid.request_id().integer_value()));
    }
    caf::message msg = std::move(*content);
    if (h.sampled || h.trace_hi != 0 || h.trace_lo != 0 || !e.tenant.empty()) {
      span_context ctx{h.trace_hi, h.trace_lo, h.span_id, h.sampled,
                       std::string{e.tenant}};
      msg = caf::make_message(std::move(ctx), std::move(msg));
    }
    // Through the progress thread's execution unit: the actor runs right
    // here when inline delivery picks it, on CAF's scheduler otherwise.
    dst->enqueue(std::move(sender), mid, std::move(msg), unit_.get());
    return;
  }
  case envelope_kind::down: {
    caf::error reason;
    if (auto content = decode_payload(*this, e, bulk);
        content && content->size() == 1 && content->match_element<caf::error>(0))
      reason = content->get_as<caf::error>(0);
    kill_proxy(h.sender, reason);
    return;
  }
  case envelope_kind::exit: {
    caf::error reason;
    if (auto content = decode_payload(*this, e, bulk);
        content && content->size() == 1 && content->match_element<caf::error>(0))
      reason = content->get_as<caf::error>(0);
    if (!mine(h.receiver)) return;
    auto dst = system().registry().get(static_cast<caf::actor_id>(h.receiver.actor));
    auto src = resolve(h.sender);
    if (!dst) return;
    dst->enqueue(src, caf::make_message_id(),
                 caf::make_message(caf::exit_msg{caf::actor_cast<caf::actor_addr>(src),
                                                 std::move(reason)}),
                 nullptr);
    return;
  }
  case envelope_kind::link:
  case envelope_kind::unlink: {
    if (!mine(h.receiver)) return;
    auto dst = system().registry().get(static_cast<caf::actor_id>(h.receiver.actor));
    auto src = resolve(h.sender);
    auto* proxy = as_proxy(src);
    if (proxy == nullptr) return;
    if (!dst) {
      // Linking to an actor that is gone: the link fires at once.
      if (h.kind == envelope_kind::link) {
        envelope_header d;
        d.kind = envelope_kind::exit;
        d.sender = h.receiver;
        d.receiver = h.sender;
        (void)send(p, d, caf::make_message(caf::make_error(caf::exit_reason::unknown)),
                   {});
      }
      return;
    }
    // CAF's own link protocol: the proxy's add_backlink echoes the link
    // back once, which the other side finds already in place.
    if (h.kind == envelope_kind::link)
      dst->get()->add_link(proxy);
    else
      dst->get()->remove_link(proxy);
    return;
  }
  case envelope_kind::monitor:
    if (mine(h.receiver)) watch_local(p, h.receiver.actor);
    return;
  case envelope_kind::demonitor:
  case envelope_kind::unknown_type:
  case envelope_kind::credit:
    return;
  }
}

void fabric_core::watch_local(const std::shared_ptr<peer_state>& p, uint64_t aid) {
  if (!p->watched.insert(aid).second) return;
  wire_ref self{node_id_, me_.incarnation, aid};
  wire_ref them{p->id.node_id, p->id.incarnation, 0};
  auto dst = system().registry().get(static_cast<caf::actor_id>(aid));
  std::weak_ptr<fabric_core> weak_core = weak_from_this();
  std::weak_ptr<peer_state> weak_peer = p;
  auto notify = [weak_core, weak_peer, self, them](const caf::error& reason) {
    auto core = weak_core.lock();
    auto peer = weak_peer.lock();
    if (!core || !peer || peer->status.load() != peer_status::up) return;
    envelope_header d;
    d.kind = envelope_kind::down;
    d.sender = self;
    d.receiver = them;
    (void)core->send(peer, d, caf::make_message(reason), {});
  };
  if (!dst) {
    notify(caf::make_error(caf::exit_reason::unknown));
    return;
  }
  dst->get()->attach_functor(std::move(notify));
}

void fabric_core::serve_node_request(const std::shared_ptr<peer_state>& p,
                                     const envelope_view& e, caf::message content) {
  static const caf::atom_value lookup_atom = caf::atom("lookup");
  static const caf::atom_value spawn_atom = caf::atom("spawn");
  envelope_header r;
  r.kind = envelope_kind::response;
  r.sender = wire_ref{node_id_, me_.incarnation, 0};
  r.receiver = e.header.sender;
  r.correlation = caf::make_message_id<caf::message_priority::high>(e.header.correlation)
                      .response_id()
                      .integer_value();
  auto answer = [&](caf::message m) { (void)send(p, r, m, {}); };
  if (content.size() == 2 && content.match_element<caf::atom_value>(0) &&
      content.get_as<caf::atom_value>(0) == lookup_atom &&
      content.match_element<std::string>(1)) {
    auto ref = node_.lookup(content.get_as<std::string>(1));
    if (!ref)
      return answer(caf::make_message(to_caf_error(
          rerr::not_found, "no actor named \"" + content.get_as<std::string>(1) +
                               "\" on node " + me_.node_name)));
    return answer(caf::make_message(ref->handle()));
  }
  if (content.size() >= 2 && content.match_element<caf::atom_value>(0) &&
      content.get_as<caf::atom_value>(0) == spawn_atom &&
      content.match_element<std::string>(1)) {
    const auto& type = content.get_as<std::string>(1);
    spawn_factory f;
    {
      std::lock_guard<std::mutex> g{mu_};
      auto it = spawnables_.find(type);
      if (it != spawnables_.end()) f = it->second;
    }
    if (!f)
      return answer(caf::make_message(to_caf_error(
          rerr::not_found,
          "actor type \"" + type + "\" is not spawnable on node " + me_.node_name)));
    auto ref = f(node_, content.drop(2));
    if (!ref)
      return answer(caf::make_message(to_caf_error(
          static_cast<rerr>(ref.err().code().value()), ref.err().message())));
    return answer(caf::make_message(ref->handle()));
  }
  answer(caf::make_message(to_caf_error(
      rerr::invalid_argument, "unknown node request " + caf::to_string(content))));
}

// -- sending --------------------------------------------------------------------------

queue_result fabric_core::send(const std::shared_ptr<peer_state>& p, envelope_header h,
                               const caf::message& content, std::string_view tenant,
                               std::string* failure) {
  if (p->status.load(std::memory_order_relaxed) != peer_status::up)
    return queue_result::disconnected;
  thread_local std::vector<char> payload;
  payload.clear();
  std::array<uint64_t, max_type_ids> ids{};
  size_t n = content.size();
  if (n > max_type_ids) {
    if (failure) *failure = "message has " + std::to_string(n) + " elements (limit 16)";
    return queue_result::disconnected;
  }
  const char* bulk = nullptr;
  size_t bulk_size = 0;
  std::shared_ptr<const void> staging; // a staged device buffer's host copy
  bool bulk_on_device = false;
  {
    caf::binary_serializer sink{system(), payload};
    for (size_t i = 0; i < n; ++i) {
      const element_codec* c = types_.find(content, i);
      if (c == nullptr) {
        if (failure)
          *failure = "element " + std::to_string(i) + " (" +
                     caf::to_string(content.type(i)) +
                     ") is not a registered message type";
        return queue_result::disconnected;
      }
      ids[i] = c->id;
      if (c->handle != element_codec::handle_kind::none) {
        caf::strong_actor_ptr ptr;
        if (c->handle == element_codec::handle_kind::actor)
          ptr = caf::actor_cast<caf::strong_actor_ptr>(content.get_as<caf::actor>(i));
        else if (c->handle == element_codec::handle_kind::strong_ptr)
          ptr = content.get_as<caf::strong_actor_ptr>(i);
        else
          ptr =
              caf::actor_cast<caf::strong_actor_ptr>(content.get_as<caf::actor_addr>(i));
        wire_ref r = ref_of(ptr);
        (void)sink(r.node, r.incarnation, r.actor);
        continue;
      }
      if (i + 1 == n && (c->bytes || c->stage)) {
        size_t size = c->bytes ? c->bytes(content, i).second : c->device_size(content, i);
        if (size >= static_cast<size_t>(cfg_.bulk_threshold) &&
            payload.size() + 4096 < worker_->max_am_header()) {
          if (c->bytes) {
            bulk = c->bytes(content, i).first;
          } else {
            // Device memory: staged through pinned host memory, or handed
            // to UCX as device memory when it supports CUDA.
            auto staged = c->stage(content, i, gpu_direct());
            if (!staged) {
              if (failure) *failure = c->name + ": " + staged.err().message();
              return queue_result::disconnected;
            }
            bulk = staged->data;
            staging = std::move(staged->owner);
            bulk_on_device = staged->device;
          }
          if (c->save_bulk_header)
            if (auto err = c->save_bulk_header(sink, content, i)) {
              if (failure) *failure = c->name + ": " + caf::to_string(err);
              return queue_result::disconnected;
            }
          bulk_size = size;
          continue;
        }
      }
      if (auto err = c->save(sink, content, i)) {
        if (failure) *failure = c->name + ": " + caf::to_string(err);
        return queue_result::disconnected;
      }
    }
  }
  h.bulk_size = bulk_size;
  auto pl = std::span<const std::byte>{reinterpret_cast<const std::byte*>(payload.data()),
                                       payload.size()};
  bool need_wake = false;
  std::unique_ptr<send_ctx> direct;
  {
    std::lock_guard<std::mutex> g{p->mu};
    if (p->status.load(std::memory_order_relaxed) != peer_status::up)
      return queue_result::disconnected;
    auto add = static_cast<int64_t>(payload.size() + bulk_size + 128);
    if (p->queued_bytes > 0 && p->queued_bytes + add > cfg_.send_queue_bytes) {
      c_.dropped_overloaded.fetch_add(1, std::memory_order_relaxed);
      return queue_result::overloaded;
    }
    // Direct only when the link has been quiet for a while: a burst sends
    // its first message directly and batches the rest.
    int64_t now_ns = 0;
    // (Never on the progress thread itself: it may be inside a UCX callback
    // holding the worker, and it flushes the batch at its next turn anyway.)
    if (bulk == nullptr && cfg_.direct_send && p->queue.empty() && !p->flush_pending &&
        std::this_thread::get_id() != progress_tid_.load(std::memory_order_relaxed) &&
        p->batch.empty() &&
        (now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count()) -
                p->last_direct_ns >
            direct_quiet_ns) {
      // The link is idle: send from this thread, no hand-over to the
      // progress thread (the worker is thread-safe; the receiver orders
      // frames by sequence number whichever thread sent them).
      p->batch.append(h, {ids.data(), n}, tenant, pl);
      auto bytes = static_cast<int64_t>(p->batch.size());
      if (p->in_flight == 0 || p->in_flight + bytes <= cfg_.window_bytes) {
        auto ctx = std::make_unique<send_ctx>();
        ctx->frame = p->batch.take();
        p->batch.reserve(batch_seal_bytes + 1024);
        ctx->header[0] = p->send_seq++;
        p->in_flight += bytes;
        p->last_direct_ns = now_ns;
        direct = std::move(ctx);
      } else {
        p->queued_bytes += bytes;
      }
    } else if (bulk == nullptr) {
      size_t before = p->batch.size();
      p->batch.append(h, {ids.data(), n}, tenant, pl);
      p->queued_bytes += static_cast<int64_t>(p->batch.size() - before);
      if (p->batch.size() >= batch_seal_bytes) seal_batch(*p);
    } else {
      seal_batch(*p);
      frame_writer one;
      one.append(h, {ids.data(), n}, tenant, pl);
      out_item it;
      it.frame = one.take();
      it.keep = content;
      it.staging = std::move(staging);
      it.bulk_on_device = bulk_on_device;
      it.bulk = bulk;
      it.bulk_size = bulk_size;
      p->queued_bytes += static_cast<int64_t>(it.bytes());
      p->queue.push_back(std::move(it));
    }
    if (!direct && !p->flush_pending) {
      p->flush_pending = true;
      need_wake = true;
    }
  }
  c_.envelopes_sent.fetch_add(1, std::memory_order_relaxed);
  if (direct) {
    std::shared_lock<std::shared_mutex> g{p->ep_mu};
    if (p->ep == nullptr) return queue_result::disconnected;
    size_t len = direct->frame.size();
    const void* hdr = direct->header;
    const void* data = direct->frame.data();
    auto st =
        send_am(p->ep, am_frame, hdr, sizeof(uint64_t), data, len, 0, std::move(direct));
    c_.frames_sent.fetch_add(1, std::memory_order_relaxed);
    c_.bytes_sent.fetch_add(len, std::memory_order_relaxed);
    if (UCS_STATUS_IS_ERR(st)) {
      post([this, p, st] {
        peer_down(p, std::string{"send failed: "} + ucs_status_string(st));
      });
      return queue_result::disconnected;
    }
    // Not done yet (e.g. TCP): the progress thread must drive it.
    if (st == UCS_INPROGRESS && sleeping_.load()) worker_->signal();
    return queue_result::ok;
  }
  if (need_wake) wake(p);
  return queue_result::ok;
}

void fabric_core::forward(const std::shared_ptr<peer_state>& p, const wire_ref& target,
                          caf::mailbox_element_ptr x) {
  envelope_header h;
  h.receiver = target;
  h.sender = ref_of(x->sender);
  caf::message_id mid = x->mid;
  caf::message content = x->move_content_to_message();
  std::string tenant;
  if (is_trace_wrapped(content)) {
    const auto& ctx = content.get_as<span_context>(0);
    h.trace_hi = ctx.trace_hi;
    h.trace_lo = ctx.trace_lo;
    h.span_id = ctx.span_id;
    h.sampled = ctx.sampled;
    tenant = ctx.tenant;
    caf::message inner = content.get_as<caf::message>(1);
    content = std::move(inner);
  }
  if (content.size() == 1 && content.match_element<caf::exit_msg>(0)) {
    // A linked local actor ended: tell the remote actor.
    h.kind = envelope_kind::exit;
    auto reason = content.get_as<caf::exit_msg>(0).reason;
    (void)send(p, h, caf::make_message(std::move(reason)), {});
    return;
  }
  if (mid.is_request()) {
    h.kind = envelope_kind::request;
    h.correlation = mid.integer_value();
    if (x->sender) {
      std::lock_guard<std::mutex> g{p->req_mu};
      p->pending[pending_hash(x->sender->id(), mid.request_id().integer_value())] =
          peer_state::pending_request{x->sender, mid};
    }
  } else if (mid.is_response()) {
    h.kind = envelope_kind::response;
    h.correlation = mid.integer_value();
  } else {
    h.kind = envelope_kind::message;
  }
  std::string failure;
  auto r = send(p, h, content, tenant, &failure);
  if (r == queue_result::ok) return;
  rerr code = rerr::disconnected;
  std::string msg;
  if (r == queue_result::overloaded) {
    code = rerr::overloaded;
    msg = "send queue to node " + p->id.node_name + " is full";
  } else if (!failure.empty()) {
    code = rerr::invalid_argument;
    msg = "cannot send to node " + p->id.node_name + ": " + failure;
    c_.dropped_unknown_type.fetch_add(1, std::memory_order_relaxed);
    log_->warn("transport: {}", msg);
  } else {
    msg = "node " + p->id.node_name + " is unreachable";
  }
  if (mid.is_request() && x->sender) {
    {
      std::lock_guard<std::mutex> g{p->req_mu};
      p->pending.erase(pending_hash(x->sender->id(), mid.request_id().integer_value()));
    }
    fail_locally(x->sender, mid, code, msg);
  }
}

void fabric_core::send_link(const std::shared_ptr<peer_state>& p, const wire_ref& target,
                            caf::abstract_actor* local, bool link) {
  // Called inside CAF's critical section over both actors: registering the
  // local actor (which attaches to it) would deadlock here, so the progress
  // thread sends the request.
  caf::strong_actor_ptr self{local->ctrl()};
  post([this, p, target, self, link] {
    envelope_header h;
    h.kind = link ? envelope_kind::link : envelope_kind::unlink;
    h.sender = ref_of(self);
    h.receiver = target;
    if (send(p, h, caf::message{}, {}) != queue_result::ok && link) {
      // The node is gone: the link fires at once.
      self->enqueue(nullptr, caf::make_message_id(),
                    caf::make_message(caf::exit_msg{
                        caf::actor_addr{},
                        to_caf_error(rerr::disconnected,
                                     "node " + p->id.node_name + " is unreachable")}),
                    nullptr);
    }
  });
}

void fabric_core::fail_locally(const caf::strong_actor_ptr& sender, caf::message_id mid,
                               rerr e, std::string message) {
  if (!sender) return;
  sender->enqueue(nullptr, mid.response_id(),
                  caf::make_message(to_caf_error(e, std::move(message))), nullptr);
}

void fabric_core::reply_error(const std::shared_ptr<peer_state>& p,
                              const envelope_view& e, rerr code, std::string message) {
  envelope_header r;
  r.kind = envelope_kind::response;
  r.sender = e.header.receiver;
  r.receiver = e.header.sender;
  r.correlation = caf::make_message_id<caf::message_priority::high>(e.header.correlation)
                      .response_id()
                      .integer_value();
  (void)send(p, r, caf::make_message(to_caf_error(code, std::move(message))), {});
}

// -- refs and proxies ---------------------------------------------------------------

wire_ref fabric_core::ref_of(const caf::strong_actor_ptr& ptr) {
  if (!ptr) return {};
  if (auto* proxy = as_proxy(ptr)) return proxy->target();
  // Register the actor so messages addressed to it can be delivered. Actor
  // ids are never reused and the registry keeps an entry until the actor
  // ends, so a sender that just registered need not take the registry's
  // lock again for its next message.
  // The cache is keyed by this fabric's serial number, never by the
  // actor system's address: a later system (a later test, a restarted
  // node in one process) may be allocated at the same address and hand out
  // the same actor ids, and would then never register its actors.
  thread_local uint64_t last_fabric = 0;
  thread_local caf::actor_id last_aid = 0;
  if (last_fabric != serial_ || last_aid != ptr->id()) {
    system().registry().put(ptr->id(), ptr);
    last_fabric = serial_;
    last_aid = ptr->id();
  }
  return wire_ref{node_id_, me_.incarnation, ptr->id()};
}

caf::strong_actor_ptr fabric_core::resolve(const wire_ref& r) {
  if (r.node == 0 && r.actor == 0) return nullptr;
  if (r.node == node_id_) {
    if (r.incarnation != me_.incarnation || r.actor == 0) return nullptr;
    return system().registry().get(static_cast<caf::actor_id>(r.actor));
  }
  {
    std::lock_guard<std::mutex> g{proxies_mu_};
    auto it = proxies_.find(r);
    if (it != proxies_.end()) {
      if (auto strong = it->second.lock()) return strong;
      proxies_.erase(it);
    }
  }
  auto peer = peer_by_id(r.node);
  bool alive = peer && peer->id.incarnation == r.incarnation;
  if (!alive) {
    // A proxy that is dead from the start: monitors fire at once.
    peer = std::make_shared<peer_state>();
    peer->status = peer_status::down;
    peer->id.node_id = r.node;
    peer->id.incarnation = r.incarnation;
  }
  caf::actor_config cfg;
  auto proxy = caf::make_actor<remote_proxy, caf::strong_actor_ptr>(
      static_cast<caf::actor_id>(r.actor), caf_node_of(r.node, r.incarnation), &system(),
      cfg, weak_from_this(), peer, r);
  if (!alive) {
    static_cast<remote_proxy*>(proxy->get())
        ->kill_proxy(nullptr, to_caf_error(rerr::disconnected,
                                           "the actor's node is not connected to " +
                                               me_.node_name));
    return proxy;
  }
  {
    std::lock_guard<std::mutex> g{proxies_mu_};
    auto [it, inserted] = proxies_.emplace(r, caf::weak_actor_ptr{proxy.get()});
    if (!inserted) {
      if (auto strong = it->second.lock()) return strong;
      it->second = caf::weak_actor_ptr{proxy.get()};
    }
    // Drop entries of proxies nobody holds any more, now and then.
    if (proxies_.size() % 1024 == 0)
      std::erase_if(proxies_, [](const auto& kv) { return !kv.second.lock(); });
  }
  if (r.actor != 0) {
    // Ask the node to tell us when the actor ends.
    envelope_header h;
    h.kind = envelope_kind::monitor;
    h.receiver = r;
    (void)send(peer, h, caf::message{}, {});
  }
  return proxy;
}

void fabric_core::kill_proxy(const wire_ref& r, const caf::error& reason) {
  caf::strong_actor_ptr strong;
  {
    std::lock_guard<std::mutex> g{proxies_mu_};
    auto it = proxies_.find(r);
    if (it == proxies_.end()) return;
    strong = it->second.lock();
    proxies_.erase(it);
  }
  if (auto* proxy = as_proxy(strong)) proxy->kill_proxy(nullptr, reason);
}

void fabric_core::kill_proxies_of(uint64_t node, const caf::error& reason) {
  std::vector<caf::strong_actor_ptr> victims;
  {
    std::lock_guard<std::mutex> g{proxies_mu_};
    for (auto it = proxies_.begin(); it != proxies_.end();) {
      if (node == 0 || it->first.node == node) {
        if (auto strong = it->second.lock()) victims.push_back(std::move(strong));
        it = proxies_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& v : victims)
    if (auto* proxy = as_proxy(v)) proxy->kill_proxy(nullptr, reason);
}

std::shared_ptr<peer_state> fabric_core::peer_by_id(uint64_t id) const {
  std::lock_guard<std::mutex> g{mu_};
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<peer_state> fabric_core::peer_by_name(std::string_view name) const {
  return peer_by_id(node_id_of(name));
}

// -- API
// ---------------------------------------------------------------------------------

result<caf::message> fabric_core::node_request(std::string_view node_name,
                                               caf::message msg,
                                               std::chrono::nanoseconds timeout) {
  if (auto here = not_on_progress_thread("a request to a node's service"); !here)
    return std::move(here).err();
  auto p = peer_by_name(node_name);
  if (!p)
    return error{rerr::not_found,
                 "node \"" + std::string{node_name} + "\" is not connected"};
  auto service = resolve(wire_ref{p->id.node_id, p->id.incarnation, 0});
  caf::scoped_actor self{system()};
  result<caf::message> out = error{rerr::internal, "no answer"};
  self->request(caf::actor_cast<caf::actor>(service), timeout, std::move(msg))
      .receive(
          [&](caf::error& e) {
            out = from_caf_error(e, "node " + std::string{node_name});
          },
          caf::others >> [&](caf::message_view& x) -> caf::result<caf::message> {
            out = x.move_content_to_message();
            return caf::message{};
          });
  return out;
}

result<actor_ref> fabric_core::lookup(std::string_view node_name, std::string_view name,
                                      std::chrono::nanoseconds timeout) {
  if (node_name == me_.node_name) return node_.lookup(name);
  auto r = node_request(
      node_name, caf::make_message(caf::atom("lookup"), std::string{name}), timeout);
  if (!r) return std::move(r).err();
  if (r->size() != 1 || !r->match_element<caf::actor>(0))
    return error{rerr::internal, "lookup: unexpected answer " + caf::to_string(*r)};
  return actor_ref{r->get_as<caf::actor>(0)};
}

result<actor_ref> fabric_core::spawn_on(std::string_view node_name, std::string_view type,
                                        caf::message args,
                                        std::chrono::nanoseconds timeout) {
  caf::message head = caf::make_message(caf::atom("spawn"), std::string{type});
  if (node_name == me_.node_name) {
    spawn_factory f;
    {
      std::lock_guard<std::mutex> g{mu_};
      auto it = spawnables_.find(std::string{type});
      if (it != spawnables_.end()) f = it->second;
    }
    if (!f)
      return error{rerr::not_found, "actor type \"" + std::string{type} +
                                        "\" is not spawnable on node " + me_.node_name};
    return f(node_, args);
  }
  auto r = node_request(node_name, head + args, timeout);
  if (!r) return std::move(r).err();
  if (r->size() != 1 || !r->match_element<caf::actor>(0))
    return error{rerr::internal, "spawn: unexpected answer " + caf::to_string(*r)};
  return actor_ref{r->get_as<caf::actor>(0)};
}

void fabric_core::register_spawnable(std::string type, spawn_factory f) {
  std::lock_guard<std::mutex> g{mu_};
  spawnables_[std::move(type)] = std::move(f);
}

result<void> fabric_core::try_tell(const actor_ref& to, caf::message msg) {
  auto ptr = caf::actor_cast<caf::strong_actor_ptr>(to.handle());
  auto* proxy = as_proxy(ptr);
  if (proxy == nullptr) {
    if (!to) return error{rerr::invalid_argument, "try_tell to an empty actor ref"};
    caf::anon_send(to.handle(), std::move(msg));
    return ok();
  }
  envelope_header h;
  h.kind = envelope_kind::message;
  h.receiver = proxy->target();
  std::string failure;
  switch (send(proxy->peer(), h, msg, {}, &failure)) {
  case queue_result::ok:
    return ok();
  case queue_result::overloaded:
    return error{rerr::overloaded, "send queue to node " + proxy->peer()->id.node_name +
                                       " is full (" +
                                       std::to_string(cfg_.send_queue_bytes) + " bytes)"};
  case queue_result::disconnected:
    if (!failure.empty()) return error{rerr::invalid_argument, failure};
    return error{rerr::disconnected,
                 "node " + proxy->peer()->id.node_name + " is unreachable"};
  }
  return ok();
}

std::vector<peer_info> fabric_core::peers() const {
  std::vector<peer_info> out;
  std::lock_guard<std::mutex> g{mu_};
  for (auto& [id, p] : by_id_) {
    out.push_back(info_of(*p));
  }
  out.insert(out.end(), history_.begin(), history_.end());
  return out;
}

fabric_stats fabric_core::stats() const {
  fabric_stats s;
  s.envelopes_sent = c_.envelopes_sent.load();
  s.envelopes_received = c_.envelopes_received.load();
  s.frames_sent = c_.frames_sent.load();
  s.frames_received = c_.frames_received.load();
  s.bulk_sent = c_.bulk_sent.load();
  s.bulk_received = c_.bulk_received.load();
  s.bytes_sent = c_.bytes_sent.load();
  s.bytes_received = c_.bytes_received.load();
  s.dropped_malformed = c_.dropped_malformed.load();
  s.dropped_unauthenticated = c_.dropped_unauthenticated.load();
  s.dropped_unknown_type = c_.dropped_unknown_type.load();
  s.dropped_no_receiver = c_.dropped_no_receiver.load();
  s.dropped_overloaded = c_.dropped_overloaded.load();
  s.auth_failures = c_.auth_failures.load();
  s.peers_lost = c_.peers_lost.load();
  s.inline_runs = c_.inline_runs.load();
  s.inline_demoted = c_.inline_demoted.load();
  return s;
}

std::string fabric_core::node_of(const actor_ref& ref) const {
  auto* proxy = as_proxy(caf::actor_cast<caf::strong_actor_ptr>(ref.handle()));
  return proxy != nullptr ? proxy->peer()->id.node_name : std::string{};
}

// -- fabric
// -------------------------------------------------------------------------------

fabric::fabric(std::shared_ptr<fabric_core> core) : core_(std::move(core)) {}

fabric::~fabric() {
  if (core_) core_->stop();
}

result<std::unique_ptr<fabric>> fabric::start(node& n, transport_config cfg,
                                              message_types types) {
  cluster_secrets secrets;
  secrets.current = cfg.secret;
  secrets.next = cfg.next_secret;
  if (secrets.current.empty() && !cfg.secret_file.empty()) {
    std::ifstream in{cfg.secret_file};
    if (!in)
      return error{rerr::invalid_argument,
                   "transport.secret_file: cannot read " + cfg.secret_file};
    std::getline(in, secrets.current);
  }
  if (secrets.current.empty())
    return error{rerr::invalid_argument,
                 "transport: no cluster secret (set transport.secret_file or "
                 "TROUPE_TRANSPORT_SECRET)"};
  if (auto r = secrets.validate(); !r) return std::move(r).err();
  auto core = std::make_shared<fabric_core>(n, std::move(cfg), std::move(types), secrets);
  if (auto r = core->start(); !r) return std::move(r).err();
  return std::unique_ptr<fabric>{new fabric{std::move(core)}};
}

std::string fabric::listen_address() const {
  return core_->listen_address();
}
const std::string& fabric::node_name() const noexcept {
  return core_->name();
}
uint64_t fabric::node_id() const noexcept {
  return core_->node_id();
}
uint64_t fabric::incarnation() const noexcept {
  return core_->incarnation();
}
result<peer_info> fabric::connect(std::string_view address) {
  return core_->connect(address, core_->config().connect_timeout);
}

result<peer_info> fabric::connect(std::string_view address,
                                  std::chrono::nanoseconds timeout) {
  return core_->connect(address, timeout);
}
result<actor_ref> fabric::lookup(std::string_view node_name, std::string_view name,
                                 std::chrono::nanoseconds timeout) {
  return core_->lookup(node_name, name, timeout);
}
void fabric::register_spawnable(std::string type, spawn_factory factory) {
  core_->register_spawnable(std::move(type), std::move(factory));
}
result<actor_ref> fabric::spawn_on(std::string_view node_name, std::string_view type,
                                   caf::message args, std::chrono::nanoseconds timeout) {
  return core_->spawn_on(node_name, type, std::move(args), timeout);
}
void fabric::watch_peers(peer_listener listener) {
  core_->watch_peers(std::move(listener));
}

result<void> fabric::deliver_inline(const actor_ref& a, bool on) {
  return core_->deliver_inline(a, on);
}

result<void> fabric::try_tell(const actor_ref& to, caf::message msg) {
  return core_->try_tell(to, std::move(msg));
}
std::string fabric::node_of(const actor_ref& ref) const {
  return core_->node_of(ref);
}
bool fabric::is_remote(const actor_ref& ref) noexcept {
  return as_proxy(caf::actor_cast<caf::strong_actor_ptr>(ref.handle())) != nullptr;
}
std::vector<peer_info> fabric::peers() const {
  return core_->peers();
}
fabric_stats fabric::stats() const {
  return core_->stats();
}
bool fabric::gpu_direct() const noexcept {
  return core_->gpu_direct();
}
std::string fabric::ucx_version() {
  return ucp_get_version_string();
}

} // namespace troupe::transport
