#pragma once
/// What the head's HTTP API and the CLI ask of the cluster's control plane,
/// as one interface: the HTTP layer (routing, authentication, validation,
/// JSON) is written against it, and the head implements it over its
/// membership, job manager and node agents. Tests of the HTTP layer may
/// implement it in memory.
///
/// Every call says who asks (`caller`): a tenant sees and acts on its own
/// jobs only (another tenant's job is not_found, never forbidden, so
/// ids leak nothing); an admin sees every job and may act on nodes.
///
/// Errors are actors::errc (errc.hpp). Payloads are JSON text so the same documents cross
/// the network, the HTTP API and the CLI unchanged: the shapes are in docs/API.md and
/// docs/openapi.yaml.
#include "troupe/actors/errc.hpp"
#include "troupe/actors/job_spec.hpp"
#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::actors {

/// Who makes a call: the tenant a bearer token maps to, and whether it is
/// an admin token.
struct caller {
  std::string tenant;
  bool admin = false;
  friend bool operator==(const caller&, const caller&) = default;
};

/// What can be done to a node.
enum class node_action : uint8_t { cordon, uncordon, drain };

/// One page of a list: at most `limit` items after the opaque `after`
/// cursor ("" for the first page).
struct page_request {
  uint32_t limit = 100; ///< [1, 1000]
  std::string after;
};

/// A piece of one replica's log.
struct log_chunk {
  std::string data; ///< bytes from `offset`
  uint64_t next_offset = 0;
  bool finished = false; ///< the replica ended and `data` reaches its end
};

/// Which log of a replica.
enum class log_stream : uint8_t { stdout_log, stderr_log };

/// A showback report (GET /v1/costs, `troupe cost`): the ledger's rows whose
/// period starts in [from_ms, to_ms), grouped by any of period, tenant,
/// team, project, env. A tenant's report holds only its own rows; an admin
/// sees every tenant's, or one tenant's with `tenant`.
struct cost_query {
  std::vector<std::string> group{"period", "tenant"};
  std::optional<int64_t> from_ms; ///< ms since the Unix epoch; none: all time
  std::optional<int64_t> to_ms;
  std::string tenant; ///< admins only: one tenant's rows ("" all)
  bool csv = false;   ///< CSV text instead of JSON rows
};

class control_plane {
public:
  virtual ~control_plane() = default;

  /// {"nodes": [...]}: the membership list with each node's state and
  /// resources (admins and tenants alike).
  [[nodiscard]] virtual result<std::string> nodes(const caller& who) = 0;
  /// Admins only (forbidden otherwise); not_found for an unknown node.
  [[nodiscard]] virtual result<void> act_on_node(const caller& who, std::string_view node,
                                                 node_action action) = 0;

  /// Submits a job for the caller's tenant (the spec's tenant label is
  /// replaced by it). Returns the job document ({"id": ..., "state": ...}).
  /// A repeated idempotency key of the same tenant returns the first job and
  /// starts nothing. Errors: invalid_argument (a spec the cluster can never
  /// run, e.g. more GPUs per replica than any node has), exhausted
  /// (the tenant's budget blocks it).
  [[nodiscard]] virtual result<std::string> submit(const caller& who, job_spec spec) = 0;
  /// {"jobs": [...], "next": cursor or ""}: the caller's jobs (all for an
  /// admin), newest first.
  [[nodiscard]] virtual result<std::string> list_jobs(const caller& who,
                                                      const page_request& page) = 0;
  /// One job's document with its replicas; not_found.
  [[nodiscard]] virtual result<std::string> get_job(const caller& who,
                                                    std::string_view job_id) = 0;
  /// Stops every replica (SIGTERM, then SIGKILL after the grace) and
  /// releases the job's allocations; the job document after the request.
  /// Cancelling an ended job is not an error (it stays as it ended).
  [[nodiscard]] virtual result<std::string> cancel_job(const caller& who,
                                                       std::string_view job_id) = 0;
  /// Up to `max_bytes` of a replica's log from `offset`; not_found for an
  /// unknown job or replica.
  [[nodiscard]] virtual result<log_chunk> logs(const caller& who, std::string_view job_id,
                                               uint32_t replica, log_stream stream,
                                               uint64_t offset, uint32_t max_bytes) = 0;
  /// The showback report: {"format": "json", "rows": [...], "total": {...}}
  /// or {"format": "csv", "csv": "..."} (docs/API.md). Errors: forbidden (a
  /// tenant asking for another tenant's rows), unavailable (no FinOps actor).
  [[nodiscard]] virtual result<std::string> costs(const caller& who,
                                                  const cost_query& q) {
    (void)who, (void)q;
    return error{errc::unavailable, "this control plane has no FinOps actor"};
  }
  /// The FinOps audit log, oldest first after sequence `after`:
  /// {"records": [...], "next": last sequence}. Admins only (forbidden).
  [[nodiscard]] virtual result<std::string> finops_audit(const caller& who,
                                                         uint64_t after, uint32_t limit) {
    (void)who, (void)after, (void)limit;
    return error{errc::unavailable, "this control plane has no FinOps actor"};
  }
  /// MIG advice for the cluster's inference pools (docs/API.md): which
  /// serving replicas holding a whole GPU would fit MIG slices, and the GPUs
  /// that would free. Admins only (forbidden).
  [[nodiscard]] virtual result<std::string> mig_advice(const caller& who) {
    (void)who;
    return error{errc::unavailable, "this control plane has no FinOps actor"};
  }
  /// A spot preemption notice for `node`: its capacity goes away at
  /// `deadline_ms` (ms since the Unix epoch). The FinOps actor's plan
  /// (checkpoints, moves, work lost). Admins only (forbidden); not_found.
  [[nodiscard]] virtual result<std::string>
  spot_notice(const caller& who, std::string_view node, int64_t deadline_ms) {
    (void)who, (void)node, (void)deadline_ms;
    return error{errc::unavailable, "this control plane has no FinOps actor"};
  }
  /// The head's metrics in Prometheus text format.
  [[nodiscard]] virtual std::string metrics_text() = 0;
  /// Whether the control plane is up (the HTTP health endpoint).
  [[nodiscard]] virtual bool healthy() = 0;
};

} // namespace troupe::actors
