#include "troupe/actors/daemon.hpp"

#include "troupe/actors/api_tokens.hpp"
#include "troupe/actors/finops_actor.hpp"
#include "troupe/actors/head_control_plane.hpp"
#include "troupe/actors/http_api.hpp"
#include "troupe/actors/job_manager.hpp"
#include "troupe/actors/membership_actor.hpp"
#include "troupe/actors/metadata_notice_source.hpp"
#include "troupe/actors/node_agent.hpp"
#include "troupe/actors/nvml_telemetry.hpp"
#include "troupe/actors/registry_actor.hpp"
#include "troupe/placement/placement_actor.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"

#include <fstream>

namespace troupe::actors {

namespace {

using rerr = runtime::errc;

result<daemon_config> load(const std::filesystem::path* path, std::string_view toml,
                           std::string_view source, const env_map& env) {
  daemon_config cfg;
  // The binder borrows the schemas: keep them alive while it loads.
  const auto node_schema = node_config_schema();
  const auto membership = membership_schema();
  const auto resources = resources_schema();
  const auto cluster = cluster_schema();
  const auto finops_schema = finops::finops_config_schema();
  const auto telemetry_schema = finops::telemetry_config_schema();
  cfg.node = node_schema.defaults();
  cfg.transport = transport::transport_schema().defaults();
  cfg.membership = membership.defaults();
  cfg.resources = resources.defaults();
  cfg.cluster = cluster.defaults();
  cfg.finops = finops_schema.defaults();
  cfg.telemetry = telemetry_schema.defaults();
  config_binder binder;
  binder.bind(node_schema, cfg.node)
      .bind(transport::transport_schema(), cfg.transport)
      .bind(membership, cfg.membership)
      .bind(resources, cfg.resources)
      .bind(cluster, cfg.cluster)
      .bind(finops_schema, cfg.finops)
      .bind(telemetry_schema, cfg.telemetry);
  auto loaded = path != nullptr ? binder.load_file(*path, env)
                                : binder.load_string(toml, source, env);
  if (!loaded) return std::move(loaded).err();
  if (cfg.cluster.cluster.role == node_role::worker) {
    if (cfg.cluster.cluster.head.empty())
      return error{rerr::invalid_argument,
                   "cluster.head: a worker needs its head as \"NAME@HOST:PORT\""};
    if (auto h = parse_head(cfg.cluster.cluster.head); !h)
      return error{rerr::invalid_argument, "cluster.head: " + h.err().message()};
  }
  return cfg;
}

/// The node's GPU telemetry: NVML when the inventory came from it, else
/// simulated GPUs (the inventory's, or [telemetry] simulated_gpus); null
/// when the node has no GPUs to sample.
result<std::unique_ptr<finops::telemetry_source>>
make_telemetry_source(const daemon& d, const env_map& env) {
  const auto& t = d.config().telemetry.telemetry;
  if (d.inventory().source == gpu_source::nvml) {
    auto lib = nvml_library::open_default(env);
    if (!lib) return std::move(lib).err();
    auto src = nvml_telemetry_source::open(std::move(*lib), d.name());
    if (!src) return std::move(src).err();
    return std::unique_ptr<finops::telemetry_source>{
        std::make_unique<nvml_telemetry_source>(std::move(*src))};
  }
  uint32_t gpus = t.simulated_gpus;
  if (gpus == 0 && d.inventory().source == gpu_source::simulated)
    gpus = static_cast<uint32_t>(d.inventory().gpus.size());
  if (gpus == 0) return std::unique_ptr<finops::telemetry_source>{};
  return std::unique_ptr<finops::telemetry_source>{
      std::make_unique<finops::simulated_source>(d.name(), gpus, t.simulated_file)};
}

} // namespace

config_schema<cluster_settings> cluster_schema() {
  config_schema<cluster_settings> s;
  s.section("cluster", &cluster_settings::cluster,
            "This node's place in the cluster (trouped).")
      .one_of("role", &cluster_section::role, node_role::worker,
              {{"head", node_role::head}, {"worker", node_role::worker}},
              "head (membership table, registry, control plane) or worker.")
      .string("head", &cluster_section::head, "",
              "Workers: the head as NAME@HOST:PORT (its node name and fabric address).")
      .string("ready_file", &cluster_section::ready_file, "",
              "Written once the node listens: \"NAME ADDRESS\" (empty: none).")
      .string("data_dir", &cluster_section::data_dir, "",
              "Replica logs and the head's stores (empty: $TMPDIR/troupe-NAME).")
      .string("exec_helper", &cluster_section::exec_helper, "",
              "troupe-exec, which keeps replicas from outliving their agent (empty: "
              "spawn directly).");
  s.section("api", &cluster_settings::api, "The head's HTTP API (docs/API.md).")
      .string("bind", &api_section::bind, "127.0.0.1", "Address the API listens on.")
      .port("port", &api_section::port, 8470, "Its port (0: a free one).")
      .string("tokens_file", &api_section::tokens_file, "",
              "Bearer tokens, stored hashed (`troupe token`); empty: no API.")
      .string("tls_cert", &api_section::tls_cert, "",
              "PEM certificate: HTTPS with tls_key.")
      .string("tls_key", &api_section::tls_key, "", "PEM private key.");
  return s;
}

result<daemon_config> load_daemon_config(const std::filesystem::path& path,
                                         const env_map& env) {
  if (path.empty()) return load(nullptr, "", "<defaults>", env);
  return load(&path, "", "", env);
}

result<daemon_config> load_daemon_config_string(std::string_view toml,
                                                std::string_view source,
                                                const env_map& env) {
  return load(nullptr, toml, source, env);
}

result<std::pair<std::string, std::string>> parse_head(std::string_view s) {
  auto at = s.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= s.size())
    return error{rerr::invalid_argument,
                 "expected NAME@HOST:PORT, got \"" + std::string{s} + "\""};
  auto address = s.substr(at + 1);
  auto colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= address.size())
    return error{rerr::invalid_argument,
                 "expected NAME@HOST:PORT, got \"" + std::string{s} + "\""};
  for (char c : address.substr(colon + 1))
    if (c < '0' || c > '9')
      return error{rerr::invalid_argument,
                   "port of \"" + std::string{s} + "\" is not a number"};
  return std::pair{std::string{s.substr(0, at)}, std::string{address}};
}

result<std::unique_ptr<daemon>> daemon::start(daemon_config cfg, const env_map& env) {
  std::unique_ptr<daemon> d{new daemon};
  d->cfg_ = std::move(cfg);
  auto& c = d->cfg_;
  auto inv = discover_inventory(c.resources.resources, c.node.node.name, env);
  if (!inv) return std::move(inv).err();
  d->inventory_ = std::move(*inv);
  auto n = node::start(c.node);
  if (!n) return std::move(n).err();
  d->node_ = std::move(*n);
  auto f = transport::fabric::start(*d->node_, c.transport.transport);
  if (!f) return std::move(f).err();
  d->fabric_ = std::move(*f);
  membership_actor_config mc;
  mc.membership = c.membership.membership;
  mc.head = c.cluster.cluster.role == node_role::head;
  mc.inventory_json = encode_inventory(d->inventory_);
  if (!mc.head) {
    auto h = parse_head(c.cluster.cluster.head);
    if (!h) return std::move(h).err();
    mc.head_name = h->first;
    mc.head_address = h->second;
  }
  auto m = start_membership(*d->node_, *d->fabric_, mc);
  if (!m) return std::move(m).err();
  d->membership_ = *m;
  if (mc.head) {
    auto r = start_registry(*d->node_, *d->fabric_);
    if (!r) return std::move(r).err();
    d->registry_ = *r;
  }
  d->data_dir_ = c.cluster.cluster.data_dir;
  if (d->data_dir_.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    d->data_dir_ =
        std::string{tmp != nullptr && *tmp != 0 ? tmp : "/tmp"} + "/troupe-" + d->name();
  }
  node_agent_config ac;
  ac.node_name = d->name();
  ac.jobs_dir = d->data_dir_ + "/jobs";
  ac.exec_helper = c.cluster.cluster.exec_helper;
  if (auto src = make_telemetry_source(*d, env); src.ok()) {
    ac.telemetry = std::move(*src);
  } else {
    logging::get("agent")->warn("trouped: no GPU telemetry: {}", src.err().to_string());
  }
  ac.telemetry_interval = c.telemetry.telemetry.sample_interval;
  // "{node}" stands for the node's name (one config for many nodes).
  auto with_node = [&](std::string s) {
    for (auto at = s.find("{node}"); at != std::string::npos;
         at = s.find("{node}", at + d->name().size()))
      s.replace(at, 6, d->name());
    return s;
  };
  if (const auto& file = c.finops.finops.spot_notice_file; !file.empty()) {
    ac.notices = std::make_unique<finops::file_notice_source>(with_node(file));
  } else if (auto cloud = finops::parse_notice_cloud(c.finops.finops.spot_notice_cloud)) {
    metadata_notice_config mn;
    mn.cloud = *cloud;
    mn.endpoint = c.finops.finops.spot_notice_endpoint;
    mn.vm = with_node(c.finops.finops.spot_notice_vm);
    ac.notices = std::make_unique<metadata_notice_source>(std::move(mn));
  }
  if (mc.head) {
    ac.telemetry_sink = [n = d->node_.get()]() -> std::optional<actor_ref> {
      auto r = n->lookup(finops_actor_name);
      if (!r.ok()) return std::nullopt;
      return *r;
    };
  } else {
    ac.telemetry_sink = [f = d->fabric_.get(),
                         head = mc.head_name]() -> std::optional<actor_ref> {
      auto r = f->lookup(head, finops_actor_name, std::chrono::seconds{2});
      if (!r.ok()) return std::nullopt;
      return *r;
    };
  }
  auto agent = start_node_agent(*d->node_, std::move(ac));
  if (!agent) return std::move(agent).err();
  d->agent_ = *agent;
  if (mc.head) {
    placement::placement_actor_config pc;
    pc.store_path = d->data_dir_ + "/placement";
    pc.schedule_interval = std::chrono::milliseconds{500};
    d->placement_ = d->node_->adopt(
        placement::spawn_placement_actor(d->node_->system(), std::move(pc)));
    job_manager_config jc;
    jc.store_path = d->data_dir_ + "/control";
    jc.placement = d->placement_;
    jc.membership = d->membership_;
    jc.fabric = d->fabric_.get();
    jc.local_node = d->name();
    jc.local_agent = d->agent_;
    jc.finops = [n = d->node_.get()]() -> std::optional<actor_ref> {
      auto r = n->lookup(finops_actor_name);
      if (!r.ok()) return std::nullopt;
      return *r;
    };
    auto jm = start_job_manager(*d->node_, std::move(jc));
    if (!jm) return std::move(jm).err();
    d->jobs_ = *jm;
    finops_actor_config fc;
    fc.store_path = d->data_dir_ + "/finops";
    fc.jobs = d->jobs_;
    fc.finops = c.finops;
    fc.telemetry = c.telemetry;
    fc.tick = c.telemetry.telemetry.sample_interval;
    auto fo = start_finops_actor(*d->node_, std::move(fc));
    if (!fo) return std::move(fo).err();
    d->finops_ = *fo;
  }
  if (mc.head && !c.cluster.api.tokens_file.empty()) {
    auto tokens = api_tokens::load_file(c.cluster.api.tokens_file);
    if (!tokens) return std::move(tokens).err();
    d->tokens_ = std::make_unique<api_tokens>(std::move(*tokens));
    d->plane_ = std::make_unique<head_control_plane>(*d->node_, d->jobs_, d->membership_);
    api_options ao;
    ao.bind_address = c.cluster.api.bind;
    ao.port = c.cluster.api.port;
    ao.tls_cert_file = c.cluster.api.tls_cert;
    ao.tls_key_file = c.cluster.api.tls_key;
    auto api = api_server::start(*d->plane_, *d->tokens_, ao);
    if (!api) return std::move(api).err();
    d->api_ = std::move(*api);
  }
  if (!c.cluster.cluster.ready_file.empty()) {
    // Written whole under a temporary name, then renamed: readers never
    // see half a line.
    std::filesystem::path ready{c.cluster.cluster.ready_file};
    auto tmp = ready;
    tmp += ".tmp";
    {
      std::ofstream out{tmp};
      out << d->name() << ' ' << d->listen_address() << '\n';
      if (d->api_) out << "api " << d->api_port() << '\n';
      if (!out) return error{rerr::io_error, "cannot write " + tmp.string()};
    }
    std::error_code ec;
    std::filesystem::rename(tmp, ready, ec);
    if (ec)
      return error{rerr::io_error,
                   "cannot write " + ready.string() + ": " + ec.message()};
  }
  logging::get("membership")
      ->info("trouped: node {} ({}) listening at {}, {} GPU(s) ({})", d->name(),
             mc.head ? "head" : "worker", d->listen_address(), d->inventory_.gpus.size(),
             to_string(d->inventory_.source));
  return d;
}

daemon::~daemon() {
  stop();
}

const std::string& daemon::name() const noexcept {
  return cfg_.node.node.name;
}

std::string daemon::listen_address() const {
  return fabric_ ? fabric_->listen_address() : std::string{};
}

result<void> daemon::leave(std::chrono::nanoseconds timeout) {
  if (!node_ || !membership_ || cfg_.cluster.cluster.role == node_role::head) return ok();
  auto r = node_->request<bool>(membership_, timeout, leave_atom::value);
  if (!r) return std::move(r).err();
  return ok();
}

uint16_t daemon::api_port() const noexcept {
  return api_ ? api_->port() : 0;
}

void daemon::stop() {
  if (api_) api_->stop();
  if (!node_) return;
  node_->stop();
  fabric_.reset();
  // Handles to detached actors must go before the node (CAF waits for
  // their threads in the actor system's destructor).
  membership_ = actor_ref{};
  registry_ = actor_ref{};
  agent_ = actor_ref{};
  placement_ = actor_ref{};
  jobs_ = actor_ref{};
  finops_ = actor_ref{};
  api_.reset();
  plane_.reset();
  tokens_.reset();
  node_.reset();
}

} // namespace troupe::actors
