#pragma once
/// A job's restart policy and the pure decision it drives: when one replica
/// has ended, start it again now, after a backoff, or give up. Plain code:
/// no clock, no I/O; the caller passes how long the replica ran and how
/// many restarts it has had.

#include "troupe/runtime/clock.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::actors {

/// When a replica that ended is started again.
enum class restart_mode : uint8_t { never, on_failure, always };
const char* to_string(restart_mode m) noexcept; ///< "never" | "on-failure" | "always"
std::optional<restart_mode> parse_restart_mode(std::string_view s) noexcept;

/// Delay before restart number k (0-based): initial * multiplier^k, capped
/// at `max`. A replica that ran at least `reset_after` before it ended
/// restarts as if it were the first time (a crash loop backs off; a crash
/// after a long healthy run does not wait).
struct backoff_policy {
  duration initial = std::chrono::seconds{1};
  duration max = std::chrono::minutes{5};
  uint32_t multiplier = 2; ///< [1, 16]
  duration reset_after = std::chrono::minutes{10};
  friend bool operator==(const backoff_policy&, const backoff_policy&) = default;
};

struct restart_policy {
  restart_mode mode = restart_mode::never;
  /// Restarts allowed (on-failure and always); 0 with `always` means no limit.
  uint32_t max_restarts = 0;
  backoff_policy backoff;
  friend bool operator==(const restart_policy&, const restart_policy&) = default;
};

/// How a replica ended.
struct replica_exit {
  enum class kind : uint8_t {
    exited,    ///< returned from main or called exit: `code` is the status
    signaled,  ///< killed by signal `code`
    node_lost, ///< its node went down; nobody knows how it ended
  };
  kind how = kind::exited;
  int code = 0;

  static replica_exit exited(int status) { return {kind::exited, status}; }
  static replica_exit signaled(int signal) { return {kind::signaled, signal}; }
  static replica_exit node_lost() { return {kind::node_lost, 0}; }
  bool succeeded() const noexcept { return how == kind::exited && code == 0; }
  /// "exited with status 3", "killed by SIGKILL", "node lost".
  std::string to_string() const;
  friend bool operator==(const replica_exit&, const replica_exit&) = default;
};

/// "exited" | "signaled" | "node_lost": the kind's name in JSON documents.
const char* to_string(replica_exit::kind k) noexcept;
/// A replica_exit from its kind's name and code ("node_lost" for anything
/// unknown: nobody knows how it ended).
replica_exit make_replica_exit(std::string_view kind, int code) noexcept;

enum class restart_action : uint8_t { restart_now, restart_after_backoff, give_up };

struct restart_decision {
  restart_action action = restart_action::give_up;
  duration delay{0};  ///< with restart_after_backoff
  bool counts = true; ///< whether this restart counts against max_restarts
  std::string reason; ///< for logs and the job's status, always set
};

/// Decides what to do with a replica that ended. The caller does not ask
/// for replicas it stopped itself (cancel, preemption, time limit).
///
/// - a node loss restarts at once under on-failure and always, without
///   counting against max_restarts (not the replica's fault); under never
///   it gives up;
/// - on-failure gives up on success (exit 0) and restarts any other end;
///   always restarts any end;
/// - give up once `restarts_so_far` reached max_restarts (when limited);
/// - the delay is the backoff for restart number `restarts_so_far`, or the
///   first one when the replica ran at least backoff.reset_after; a zero
///   delay is restart_now.
[[nodiscard]] restart_decision decide_restart(const restart_policy& policy,
                                              const replica_exit& exit,
                                              uint32_t restarts_so_far, duration ran_for);

/// The backoff before restart number `k` (0-based).
duration backoff_delay(const backoff_policy& b, uint32_t k);

} // namespace troupe::actors
