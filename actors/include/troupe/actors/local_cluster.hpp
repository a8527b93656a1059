#pragma once
/// `troupe up` / `troupe down`: a cluster of trouped processes on this
/// machine (a head and N workers on loopback, simulated GPUs where there
/// are none), kept in a state directory:
///   DIR/secret            the cluster secret (mode 0600)
///   DIR/tokens            the API's tokens, hashed (mode 0600)
///   DIR/admin.token       the admin bearer token (mode 0600)
///   DIR/api               the API's URL
///   DIR/<node>.toml       each node's config
///   DIR/<node>.log        its stdout and stderr
///   DIR/<node>.ready      "NAME ADDRESS" once it listens
///   DIR/<node>.data/      its replica logs and (head) control-plane stores
///   DIR/pids              "PID NAME" per line
/// Processes are started with posix_spawn, each in its own process group,
/// and stopped with SIGTERM, then SIGKILL after a grace period.
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/result.hpp"
#include "troupe/transport/fabric.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

namespace troupe::actors {

/// Where one node of a local cluster runs: the host address it listens on
/// and the command that starts trouped there. A cluster of network
/// namespaces (`ip netns`, veth) uses `{"ip", "netns", "exec", NS}` with the
/// namespace's address; the default is this machine's loopback, trouped
/// started directly. The launcher must exec trouped in place (as `ip netns
/// exec` does) so the pid started is trouped's.
struct local_host {
  std::string listen_host = "127.0.0.1";
  std::vector<std::string> launcher; ///< argv prefix, found on PATH; empty: none
};

struct local_cluster_options {
  std::filesystem::path dir;     ///< state directory (created)
  std::filesystem::path trouped; ///< the trouped executable
  int workers = 3;
  int gpus_per_node = 8; ///< simulated GPUs where NVML finds none
  std::string name_prefix = "local";
  /// Price of a GPU-hour in USD on every node ("2.50"; empty: 0), and on the
  /// spot nodes: the last `spot_workers` workers, declared spot capacity.
  std::string price_per_gpu_hour;
  int spot_workers = 0;
  std::string spot_price_per_gpu_hour;
  /// Extra TOML appended to every node's config (e.g. [membership] timings).
  std::string extra_toml;
  /// Serve the head's HTTP API with a fresh admin token (DIR/admin.token).
  bool api = true;
  /// troupe-exec for the replicas (empty: spawned directly).
  std::filesystem::path exec_helper;
  std::chrono::nanoseconds ready_timeout = std::chrono::seconds{30};
  /// Per node, the head first; nodes past its end run on loopback.
  std::vector<local_host> hosts;
};

struct local_node {
  std::string name;
  std::string address; ///< fabric listen address
  pid_t pid = 0;
  bool head = false;
  local_host host; ///< where it runs (a respawn starts it there again)
};

struct local_cluster {
  std::filesystem::path dir;
  std::vector<local_node> nodes; ///< the head first
  std::string secret;
  std::string api_url;     ///< "http://127.0.0.1:PORT" ("" without the API)
  std::string admin_token; ///< the API's admin bearer token
  [[nodiscard]] const local_node& head() const { return nodes.front(); }
};

/// Starts the head (on a fixed loopback port, so a restarted head is found
/// again), waits until it listens, then the workers, and waits
/// until every node listens. On error, what was started is stopped.
[[nodiscard]] result<local_cluster> start_local_cluster(const local_cluster_options& o);

/// Reads DIR back (nodes whose ready file exists, with their pids).
[[nodiscard]] result<local_cluster> read_local_cluster(const std::filesystem::path& dir);

/// Starts node `name` of `c` again from its config (after it was killed):
/// a new process and incarnation. Updates its pid in `c` and DIR/pids.
[[nodiscard]] result<void> respawn_local_node(local_cluster& c, const std::string& name,
                                              const std::filesystem::path& trouped,
                                              std::chrono::nanoseconds ready_timeout);

/// SIGTERM to every node's process group, SIGKILL after `grace`; removes
/// the pids file. Returns how many processes were still running.
result<int> stop_local_cluster(const std::filesystem::path& dir,
                               std::chrono::nanoseconds grace = std::chrono::seconds{5});

/// A node of its own (no listener, quiet logs, no metrics) connected to a
/// cluster's head, with the head's membership actor and job manager: what `troupe nodes`,
/// benches and tests use to watch a cluster from outside. Stops its node,
/// then its fabric, when destroyed.
struct cluster_client {
  std::unique_ptr<node> host;
  std::unique_ptr<transport::fabric> fabric;
  actor_ref membership;
  /// The head's job manager (job_manager.hpp); empty if the head has none.
  actor_ref jobs;

  /// `tc` carries the cluster secret; its listener is turned off.
  [[nodiscard]] static result<std::unique_ptr<cluster_client>>
  connect(std::string name, transport::transport_config tc, const std::string& head_name,
          const std::string& head_address, node_config base = default_config());
  ~cluster_client();
};

} // namespace troupe::actors
