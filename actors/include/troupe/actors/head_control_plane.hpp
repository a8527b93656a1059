#pragma once
/// The head's control_plane (control_plane.hpp) over its actors: jobs go to
/// the job manager (job_manager.hpp), nodes to the membership actor,
/// costs, the FinOps audit log and spot notices to the FinOps actor
/// (finops_actor.hpp, found by its name on the head when first needed),
/// metrics from the node's registry. What the HTTP API (http_api.hpp) is
/// served from in trouped. Every call waits at most `timeout` for the
/// actor's answer (runtime timeout error otherwise).
#include "troupe/actors/control_plane.hpp"
#include "troupe/runtime/actor.hpp"

#include <chrono>

namespace troupe {
class node;
}

namespace troupe::actors {

class head_control_plane final : public control_plane {
public:
  head_control_plane(node& host, actor_ref jobs, actor_ref membership,
                     std::chrono::nanoseconds timeout = std::chrono::seconds{10});

  result<std::string> nodes(const caller& who) override;
  result<void> act_on_node(const caller& who, std::string_view node,
                           node_action action) override;
  result<std::string> submit(const caller& who, job_spec spec) override;
  result<std::string> list_jobs(const caller& who, const page_request& page) override;
  result<std::string> get_job(const caller& who, std::string_view job_id) override;
  result<std::string> cancel_job(const caller& who, std::string_view job_id) override;
  result<log_chunk> logs(const caller& who, std::string_view job_id, uint32_t replica,
                         log_stream stream, uint64_t offset, uint32_t max_bytes) override;
  result<std::string> costs(const caller& who, const cost_query& q) override;
  result<std::string> finops_audit(const caller& who, uint64_t after,
                                   uint32_t limit) override;
  result<std::string> mig_advice(const caller& who) override;
  result<std::string> spot_notice(const caller& who, std::string_view node,
                                  int64_t deadline_ms) override;
  std::string metrics_text() override;
  bool healthy() override;

private:
  /// The FinOps actor, looked up by name (unavailable when the head runs
  /// without one).
  result<actor_ref> finops();

  node& host_;
  actor_ref jobs_;
  actor_ref membership_;
  std::chrono::nanoseconds timeout_;
};

} // namespace troupe::actors
