#pragma once
/// Spot notices from a cloud's instance metadata service (AWS IMDSv2, GCE,
/// Azure Scheduled Events): a finops::notice_source the node agent polls,
/// next to the file source. This is the I/O shell: one HTTP GET per poll
/// (AWS: with a session token, fetched by PUT and renewed before it
/// expires or when the service answers 401); what each response means is
/// finops::cloud_notice_reader's (finops/cloud_notice.hpp).
///
/// A poll makes one GET (AWS: up to two token PUTs and two GETs, after a
/// 401), each bounded by the connect timeout and by the read timeout per
/// read; metadata services answer on a link-local address (no DNS lookup
/// by default) in milliseconds. An
/// unreachable service is an error, logged by the agent once per distinct
/// message, and the next poll tries again.
#include "troupe/finops/cloud_notice.hpp"
#include "troupe/finops/notice_source.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace troupe::actors {

struct metadata_notice_config {
  finops::notice_cloud cloud = finops::notice_cloud::aws;
  /// "http://HOST[:PORT]"; empty: the cloud's (default_metadata_endpoint).
  std::string endpoint;
  /// Azure: the VM name its events must name; empty: any Preempt event.
  std::string vm;
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds read_timeout{1000};
  /// When a poll happens (the wall clock; tests pass their own).
  std::function<time_point()> now;
};

class metadata_notice_source final : public finops::notice_source {
public:
  explicit metadata_notice_source(metadata_notice_config cfg);
  ~metadata_notice_source() override;
  result<std::optional<time_point>> poll() override;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace troupe::actors
