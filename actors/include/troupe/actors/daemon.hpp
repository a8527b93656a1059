#pragma once
/// trouped's body: one cluster node as a library object, so the daemon's
/// main stays thin and tests can run nodes in-process.
///
/// A daemon starts the embedded node, the UCX fabric, discovers the
/// machine's resources, and starts the membership actor (and, on the head,
/// the cluster registry). Workers join the head named in `[cluster]`.
///
/// Config file sections: the node's own ([node], [scheduler], [log], ...),
/// [transport], [membership], [resources] and [cluster]:
///   [cluster]
///   role = "head" | "worker"
///   head = "NAME@HOST:PORT"   # workers: the head's node name and address
///   ready_file = "PATH"       # written once listening: "NAME ADDRESS\n"
///   data_dir = "PATH"         # replica logs (jobs/), and on the head the
///                             # control plane's stores (placement/, jobs/)
///   exec_helper = "PATH"      # troupe-exec (replicas never orphaned)
///   [api]                     # the head's HTTP API (docs/API.md)
///   bind = "127.0.0.1"  port = 8470  tokens_file = "PATH"
///   tls_cert = "PEM"  tls_key = "PEM"
///
/// and [finops] / [telemetry] (finops/config.hpp, telemetry_config.hpp).
///
/// Every node runs a node agent (node_agent.hpp); the head also runs the
/// placement actor (empty topology: nodes join it as they come up), the
/// job manager (job_manager.hpp) and the FinOps actor (finops_actor.hpp,
/// its store under data_dir/finops, policy from [finops], ticking every
/// [telemetry] sample_interval). Each node agent samples its GPUs every
/// sample_interval, through NVML when the inventory came from NVML, else
/// through the simulated source when the node has simulated GPUs (or
/// [telemetry] simulated_gpus > 0; its hook file is simulated_file), and
/// ships the samples to the head's FinOps actor.
#include "troupe/actors/inventory.hpp"
#include "troupe/actors/membership.hpp"
#include "troupe/finops/config.hpp"
#include "troupe/finops/telemetry_config.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/transport/fabric.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace troupe::actors {

enum class node_role : uint8_t { head, worker };

struct cluster_section {
  node_role role = node_role::worker;
  /// Workers: "NAME@HOST:PORT" of the head.
  std::string head;
  /// Written once the node listens: "NAME ADDRESS\n" (tools and tests wait
  /// for it). Empty: none.
  std::string ready_file;
  /// Replica logs and, on the head, the control plane's RocksDB stores.
  /// Empty: $TMPDIR/troupe-<node name>.
  std::string data_dir;
  /// troupe-exec; empty: replicas are spawned directly.
  std::string exec_helper;
  bool operator==(const cluster_section&) const = default;
};

/// The head's HTTP API (http_api.hpp), served when `tokens_file` is set.
struct api_section {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 8470; ///< 0 picks a free port
  std::string tokens_file;   ///< api_tokens.hpp's format; empty: no API
  std::string tls_cert;      ///< PEM; HTTPS when both are set
  std::string tls_key;
  bool operator==(const api_section&) const = default;
};

struct cluster_settings {
  cluster_section cluster;
  api_section api;
  bool operator==(const cluster_settings&) const = default;
};

[[nodiscard]] config_schema<cluster_settings> cluster_schema();

/// Everything a daemon reads from its config file.
struct daemon_config {
  node_config node = default_config();
  transport::transport_settings transport;
  membership_settings membership;
  resources_settings resources;
  cluster_settings cluster;
  finops::finops_config finops = finops::finops_config_schema().defaults();
  finops::telemetry_config telemetry = finops::telemetry_config_schema().defaults();
};

/// Loads `path` (or, with an empty path, the defaults) and the `TROUPE_*`
/// variables of `env`; every problem is reported (file:line and key).
/// Workers must name their head ("NAME@HOST:PORT").
[[nodiscard]] result<daemon_config> load_daemon_config(const std::filesystem::path& path,
                                                       const env_map& env);
/// The same from TOML text.
[[nodiscard]] result<daemon_config> load_daemon_config_string(std::string_view toml,
                                                              std::string_view source,
                                                              const env_map& env);

/// Splits "NAME@HOST:PORT". Errors: invalid_argument.
[[nodiscard]] result<std::pair<std::string, std::string>> parse_head(std::string_view s);

class daemon {
public:
  /// Starts everything; on error nothing keeps running.
  [[nodiscard]] static result<std::unique_ptr<daemon>> start(daemon_config cfg,
                                                             const env_map& env);
  ~daemon();
  daemon(const daemon&) = delete;
  daemon& operator=(const daemon&) = delete;

  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] std::string listen_address() const;
  [[nodiscard]] node& host() noexcept { return *node_; }
  [[nodiscard]] transport::fabric& fabric() noexcept { return *fabric_; }
  [[nodiscard]] const node_inventory& inventory() const noexcept { return inventory_; }
  [[nodiscard]] const actor_ref& membership() const noexcept { return membership_; }
  [[nodiscard]] const actor_ref& agent() const noexcept { return agent_; }
  /// The head's job manager (empty on workers).
  [[nodiscard]] const actor_ref& jobs() const noexcept { return jobs_; }
  /// The head's FinOps actor (empty on workers).
  [[nodiscard]] const actor_ref& finops() const noexcept { return finops_; }
  [[nodiscard]] const std::string& data_dir() const noexcept { return data_dir_; }
  /// The configuration it was started with.
  [[nodiscard]] const daemon_config& config() const noexcept { return cfg_; }
  /// The HTTP API's port on the head (0: no API).
  [[nodiscard]] uint16_t api_port() const noexcept;

  /// Worker: tells the head it leaves (waits up to `timeout` for the head's
  /// answer). The head: nothing to do.
  [[nodiscard]] result<void> leave(std::chrono::nanoseconds timeout);
  /// Stops the node, then the fabric (idempotent; the destructor calls it).
  void stop();

private:
  daemon() = default;
  daemon_config cfg_;
  std::unique_ptr<node> node_;
  std::unique_ptr<transport::fabric> fabric_;
  node_inventory inventory_;
  actor_ref membership_;
  actor_ref registry_;
  actor_ref agent_;
  actor_ref placement_;
  actor_ref jobs_;
  actor_ref finops_;
  std::string data_dir_;
  std::unique_ptr<class head_control_plane> plane_;
  std::unique_ptr<class api_tokens> tokens_;
  std::unique_ptr<class api_server> api_;
};

} // namespace troupe::actors
