#pragma once
/// Cluster membership and failure detection: the table of members and the
/// state machine that moves them between joining, up, suspect, down and left.
///
/// Plain code (no actors, no I/O, no clock, no threads). The membership actor
/// owns one `membership_table`, calls its inputs from message handlers
/// (join, heartbeat, probe results, transport errors, leave, cordon, drain)
/// and calls `tick(now)` periodically; every call returns the events it
/// caused, which the actor publishes to subscribers, and `tick` also returns
/// the indirect probes the actor must send. The cluster simulator drives the
/// same table with simulated time.
///
/// Life of a member:
///
///     join ──> joining ──first heartbeat──> up <──heartbeat / probe ok──┐
///                 │                          │                          │
///                 └──────phi > threshold─────┴──────────> suspect ──────┘
///                                                            │ second signal:
///     leave (any live state) ──> left                        │ k probes fail,
///                                                            │ transport error,
///                                                            v suspect_timeout
///                                                          down
///
/// A suspect member becomes down only with a second signal: every prober
/// asked (min(k, available)) reports it unreachable, or the transport
/// reported an error on its connection (before or during the suspicion), or
/// `suspect_timeout` passed since the tick that found it suspect. A heartbeat of
/// the member's incarnation while suspect clears the suspicion (event
/// `recovered`), and so does a prober that reached it. A generation that
/// ended (down or left) never comes back: the node rejoins with a higher
/// incarnation (event `rejoined`), as a new member generation.
///
/// Time is `troupe::time_point` (steady clock, nanoseconds) passed by the
/// caller; calls must pass non-decreasing times (earlier ones are treated as
/// the latest seen). Node ids are `transport::node_id_of(name)`, the id the
/// wire carries. Down and left members stay in the table as tombstones so
/// late messages of their generation are recognised as stale.

#include "troupe/actors/errc.hpp"
#include "troupe/actors/phi_accrual.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/result.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::actors {

// -- configuration ------------------------------------------------------------

/// [membership]: heartbeats and failure detection.
///
/// Why the defaults. Heartbeats every 500 ms with an acceptable pause of 1 s
/// and threshold 8: with regular heartbeats (mean 0.5 s, deviation at the
/// 100 ms floor) phi reaches 8 after 0.5 + 1 + 0.1 * 5.226 = 2.02 s of
/// silence. A SIGKILLed node's connection fails at once (transport error),
/// which is the second signal, so it is down on the tick that finds it
/// suspect: about 2.0 s after its last heartbeat, 1.8 s after the kill on
/// average, under the 3 s goal with room for the tick period (tick every
/// 100 ms or so; at least every heartbeat_interval). A healthy process on
/// busy cores is late by milliseconds to tens of milliseconds; to become
/// suspect it has to be silent for 2 s, and to be downed it must then also
/// miss every indirect probe for probe_timeout (1 s), so a false down needs
/// a live process stalled about 3 s, or 7 s where there is nobody to probe
/// through (suspect_timeout 5 s): far beyond scheduling noise, while a
/// 1.5 s interval (a pause just under the acceptable one) is still only
/// jitter. A SIGSTOPped or partitioned node whose connection stays open is
/// down once the probes fail (about 3 s) or, with nobody to probe through,
/// after the suspect timeout (about 7 s); `detection_bound` gives the
/// guaranteed worst case over any heartbeat history and tick timing (12.4 s
/// with the defaults).
struct membership_config {
  /// How often each node sends a heartbeat (the actor's timer).
  duration heartbeat_interval = std::chrono::milliseconds{500};
  /// phi above which a member becomes suspect.
  double phi_threshold = 8.0;
  /// A silence this much longer than the usual interval is expected: a pause
  /// (GC, busy cores, a slow link) shorter than it never makes a member suspect.
  duration acceptable_pause = std::chrono::seconds{1};
  /// A suspect member with no heartbeat for this long is down.
  duration suspect_timeout = std::chrono::seconds{5};
  /// k: members asked to reach a suspect member (fewer when fewer are up);
  /// all asked must fail for it to be down. 0 turns indirect probes off.
  std::uint32_t indirect_probes = 3;
  /// How long a prober waits for the suspect's answer before reporting a
  /// failure (used by the actor; carried in each probe_request's deadline).
  duration probe_timeout = std::chrono::seconds{1};
  /// Inter-arrival samples each member's detector keeps.
  std::uint32_t max_samples = 200;
  /// Floor of the inter-arrival deviation.
  duration min_std_dev = std::chrono::milliseconds{100};
  /// Assumed inter-arrival time before one has been measured.
  duration first_heartbeat_estimate = std::chrono::milliseconds{500};
  bool operator==(const membership_config&) const = default;
};

/// A config file's membership part: the `[membership]` section.
struct membership_settings {
  membership_config membership;
  bool operator==(const membership_settings&) const = default;
};

/// The schema of `[membership]` with its defaults, ranges and checks; bind it
/// with a config_binder next to the node's own schema. Built on each call.
[[nodiscard]] config_schema<membership_settings> membership_schema();

/// The detector parameters a member's phi_accrual_detector gets from
/// `config`; intervals longer than heartbeat_interval + acceptable_pause
/// (an outage, not jitter) are not recorded.
[[nodiscard]] phi_accrual_config detector_config(const membership_config& config);

/// Silence after which a member is certainly suspect, whatever its history:
/// time_to_phi_bound(detector_config(config), phi_threshold).
[[nodiscard]] duration suspect_bound(const membership_config& config);

/// The guaranteed detection time of a silent member (SIGSTOP, a partition
/// that keeps its connection open, no prober answering), for a caller that
/// calls tick() at least every heartbeat_interval: a member whose last
/// heartbeat arrived at t is down by t + detection_bound, where
/// detection_bound = suspect_bound + suspect_timeout + 2 * heartbeat_interval
/// (one tick period for noticing the suspicion, one for noticing the
/// timeout). Transport errors and failed probes only make it sooner.
[[nodiscard]] duration detection_bound(const membership_config& config);

// -- members and events -------------------------------------------------------

enum class member_state { joining, up, suspect, down, left };

/// Why a member is down.
enum class down_reason {
  none,            ///< not down
  probes_failed,   ///< suspect, and every prober asked failed to reach it
  transport_error, ///< suspect, and its connection failed
  suspect_timeout, ///< suspect for suspect_timeout without a heartbeat
  superseded,      ///< a higher incarnation of it joined while it was live
};

enum class event_kind {
  joined,     ///< a new member (state joining)
  up,         ///< first heartbeat after joining
  suspect,    ///< phi crossed the threshold
  recovered,  ///< suspicion cleared by a heartbeat or a successful probe
  down,       ///< confirmed failure; `reason` says which signal
  left,       ///< graceful leave
  rejoined,   ///< a known node back with a higher incarnation (state joining)
  cordoned,   ///< no new work placed on it
  uncordoned, ///< schedulable again (cordon and drain cleared)
  draining,   ///< its work should move away (implies cordoned)
};

[[nodiscard]] std::string_view to_string(member_state s) noexcept;
[[nodiscard]] std::string_view to_string(down_reason r) noexcept;
[[nodiscard]] std::string_view to_string(event_kind k) noexcept;

/// One member generation as the table sees it.
struct member {
  std::string name;
  std::uint64_t id = 0; ///< transport::node_id_of(name)
  std::string address;  ///< its listen address, "host:port"
  std::uint64_t incarnation = 0;
  member_state state = member_state::joining;
  down_reason reason = down_reason::none; ///< when down
  bool cordoned = false;                  ///< kept across incarnations
  bool draining = false;                  ///< kept across incarnations
  time_point since{};                     ///< when it entered `state`
  bool operator==(const member&) const = default;
};

/// Something that happened to a member, for subscribers.
struct membership_event {
  event_kind kind = event_kind::joined;
  std::uint64_t node = 0;
  std::string name;
  std::string address;
  std::uint64_t incarnation = 0;
  down_reason reason = down_reason::none; ///< down only
  double phi = 0.0;                       ///< suspect only: phi at the tick
  time_point at{};                        ///< the `now` of the call
  bool operator==(const membership_event&) const = default;
};

/// Ask `probers` to reach `target` (incarnation `incarnation`) and report
/// each outcome with probe_result by `deadline` (a silent prober counts as
/// nothing; the suspect timeout covers it).
struct probe_request {
  std::uint64_t target = 0;
  std::uint64_t incarnation = 0;
  std::vector<std::uint64_t> probers; ///< ids, distinct, none is the target
  time_point deadline{};
  bool operator==(const probe_request&) const = default;
};

/// What tick() found.
struct tick_output {
  std::vector<membership_event> events;
  std::vector<probe_request> probes;
};

using membership_events = std::vector<membership_event>;

// -- the table ----------------------------------------------------------------

/// The membership table and its state machine. Not thread-safe: one owner
/// (the membership actor, a test, or the simulator).
///
/// Inputs that name a member fail with errc::not_found for an unknown node,
/// errc::conflict for another incarnation than the member's current one or a
/// member whose generation ended (stale or late messages: the caller drops
/// them), errc::invalid_argument for malformed input. A failed call changes
/// nothing.
class membership_table {
public:
  /// `local` is the id of the node that owns this table (0 for none): once
  /// it joins it is up at once, never monitored, and never a prober.
  /// Aborts on a config outside the schema's ranges (a bug).
  explicit membership_table(membership_config config, std::uint64_t local = 0);

  /// A node asks to join. New name: a member in state joining (event
  /// joined; plus up for the local node). Known name, higher incarnation: a
  /// new generation replaces the old one (down superseded first if it was
  /// live, then rejoined); cordon and drain flags carry over. Same name and
  /// incarnation at the same address while live: a retry, no events.
  /// Errors: invalid_argument for an empty or malformed name or address or
  /// incarnation 0; conflict for an older incarnation, the same incarnation
  /// from another address (two nodes claiming one name), a generation that
  /// already ended, or a name whose id collides with another name's.
  [[nodiscard]] result<membership_events> join(std::string_view name,
                                               std::string_view address,
                                               std::uint64_t incarnation, time_point now);

  /// A heartbeat of `node`'s generation `incarnation` arrived at `now`.
  /// Joining becomes up (event up); suspect becomes up (event recovered).
  /// Errors: not_found for an unknown node or an incarnation that has not
  /// joined yet; conflict for an older incarnation or an ended generation.
  [[nodiscard]] result<membership_events>
  heartbeat(std::uint64_t node, std::uint64_t incarnation, time_point now);

  /// `prober` reports whether it reached `target` (generation
  /// `incarnation`), answering a probe_request. Reached: the suspicion is
  /// cleared (event recovered). Not reached by every prober asked: down
  /// (probes_failed). A repeated answer is ignored. Errors: not_found for
  /// unknown nodes; conflict when the target is no longer suspect in that
  /// generation or `prober` was not asked in this suspicion (late answers).
  [[nodiscard]] result<membership_events> probe_result(std::uint64_t prober,
                                                       std::uint64_t target,
                                                       std::uint64_t incarnation,
                                                       bool reached, time_point now);

  /// The transport reported an error on the connection to `node`'s
  /// generation `incarnation`. A suspect member is down at once
  /// (transport_error); a live one is marked, and is down as soon as it
  /// turns suspect unless a heartbeat comes first. Errors on an ended
  /// generation are ignored (no events). Errors: not_found, conflict for
  /// another incarnation.
  [[nodiscard]] result<membership_events>
  transport_error(std::uint64_t node, std::uint64_t incarnation, time_point now);

  /// `node`'s generation `incarnation` leaves gracefully: state left (event
  /// left). Leaving twice is a no-op. Errors: not_found; conflict for
  /// another incarnation or a member that is down.
  [[nodiscard]] result<membership_events>
  leave(std::uint64_t node, std::uint64_t incarnation, time_point now);

  /// Cordon (no new work), uncordon (clears cordon and drain) and drain
  /// (move work away; implies cordon). Each emits its event only when a flag
  /// changes. Errors: not_found; conflict for a member that is down or left.
  [[nodiscard]] result<membership_events> cordon(std::uint64_t node, time_point now);
  [[nodiscard]] result<membership_events> uncordon(std::uint64_t node, time_point now);
  [[nodiscard]] result<membership_events> drain(std::uint64_t node, time_point now);

  /// Periodic evaluation: joining and up members whose phi exceeds the
  /// threshold become suspect (down at once if their transport failed, else
  /// probed), and suspects whose timeout passed become down. Members are
  /// visited in id order; probers are chosen round-robin over the up members
  /// sorted by id, so the same inputs give the same outputs.
  [[nodiscard]] tick_output tick(time_point now);

  /// The current generation of `node`, or nullptr. Valid until the next
  /// non-const call.
  [[nodiscard]] const member* find(std::uint64_t node) const;
  /// The member named `name`, or nullptr.
  [[nodiscard]] const member* find(std::string_view name) const;
  /// Every member (tombstones included), in id order.
  [[nodiscard]] std::vector<member> members() const;
  /// Members in `state`.
  [[nodiscard]] std::size_t count(member_state state) const;
  /// phi of `node` at `now` (0 for the local node, unknown or ended ones).
  [[nodiscard]] double phi(std::uint64_t node, time_point now) const;

  [[nodiscard]] const membership_config& config() const noexcept { return config_; }

private:
  struct entry {
    member info;
    phi_accrual_detector detector;
    bool transport_failed = false; ///< since the last heartbeat
    time_point suspect_since{};    ///< the tick that found phi over the threshold
    std::set<std::uint64_t> asked; ///< probers of this suspicion
    std::set<std::uint64_t> failed;
  };

  [[nodiscard]] result<entry*> live_entry(std::uint64_t node, std::uint64_t incarnation,
                                          std::string_view what);
  [[nodiscard]] result<entry*> known_entry(std::uint64_t node, std::string_view what);
  /// A known member in a live state (cordon, uncordon, drain).
  [[nodiscard]] result<entry*> live_flag_entry(std::uint64_t node, std::string_view what);
  membership_event make_event(const entry& e, event_kind kind, time_point at) const;
  void go_down(entry& e, down_reason why, time_point at, membership_events& out);
  void go_up(entry& e, event_kind kind, time_point at, membership_events& out);
  std::vector<std::uint64_t> choose_probers(std::uint64_t target);
  time_point advance(time_point now);

  membership_config config_;
  phi_accrual_config detector_config_;
  std::uint64_t local_;
  std::map<std::uint64_t, entry> members_;
  std::uint64_t probe_cursor_ = 0; ///< round-robin position over up members
  time_point latest_{};            ///< latest `now` seen
};

} // namespace troupe::actors
