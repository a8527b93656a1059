#pragma once
/// The job manager's state and every decision it takes, as plain code: no
/// actors, no I/O, no clock (the caller passes `now`). The job manager
/// actor (job_manager.hpp) is a thin shell that feeds it events (submits,
/// placements, replica exits, node losses, node reports) and carries out
/// the commands it returns (ask placement, launch, stop, release).
///
/// Model:
/// - A job is N replicas of one command. It is placed as one gang (all
///   replicas or none); a replica whose node is lost is placed again alone
///   (its bundle of the gang is released).
/// - Every launch of a replica gets a new `generation`, unique across the
///   whole table and never reused (persisted). It is the fencing token: a
///   node agent reports (job, replica, generation); a report whose
///   generation is not the replica's current one, or from a node that is
///   not the replica's, is stale and that process is stopped. That is how a
///   worker that comes back after being declared down stops replicas that
///   were reassigned while it was away.
/// - Restarts follow the job's restart policy (restart_policy.hpp): in
///   place (same node, same allocation) after an exit; elsewhere (new
///   placement) after a node loss.
/// - Replicas never restart after cancel; a time limit ends the job as
///   failed ("time limit").
///
/// Idempotency: a submit with an idempotency key that the same tenant used
/// before returns the first job and changes nothing.
///
/// Persistence: `encode_job` / `decode_job` (JSON) and the table's
/// counters (`meta_json`); the actor writes every job that an operation
/// changed (`take_dirty`) before it acts on the commands, so a head restart
/// finds the state the commands came from.
#include "troupe/actors/job_spec.hpp"
#include "troupe/actors/restart_policy.hpp"
#include "troupe/placement/request.hpp"
#include "troupe/runtime/clock.hpp"
#include "troupe/runtime/result.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::actors {

enum class job_state : uint8_t { pending, running, succeeded, failed, cancelled };
const char* to_string(job_state s) noexcept;

enum class replica_state : uint8_t {
  pending,   ///< waiting for placement
  starting,  ///< launch sent to its node
  running,   ///< its node reported the process
  backoff,   ///< ended; restarts at `restart_at`
  succeeded, ///< ended with status 0, no restart
  failed,    ///< ended otherwise, no restart
  cancelled, ///< stopped by cancel
};
const char* to_string(replica_state s) noexcept;
/// succeeded, failed or cancelled.
bool is_final(replica_state s) noexcept;
bool is_final(job_state s) noexcept;

struct replica_record {
  uint32_t index = 0;
  replica_state state = replica_state::pending;
  uint64_t generation = 0;    ///< current launch; 0 before the first
  std::string node;           ///< where it runs or ran ("" while never placed)
  uint64_t request = 0;       ///< placement request while pending (0: none)
  uint64_t allocation = 0;    ///< its allocation (0: none held)
  uint32_t bundle = 0;        ///< its bundle in that allocation
  std::vector<uint32_t> gpus; ///< GPU indices on `node`
  uint32_t restarts = 0;
  std::optional<replica_exit> last_exit;
  int32_t pid = 0;
  time_point started{};
  time_point ended{};
  time_point restart_at{};
  std::string reason; ///< why it is in its state (exit, restart decision)
  /// This launch's last confirmed checkpoint ({}: none yet).
  time_point last_checkpoint{};
  /// When the periodic checkpoint now outstanding was asked ({}: none).
  time_point checkpoint_asked{};
  /// When the last periodic checkpoint failed (timed out, unanswered):
  /// the next one is an interval after it, not at once ({}: none).
  time_point checkpoint_failed{};
};

/// The FinOps spot policy's answer for a spot-tolerant job at submit
/// (finops::decide_spot). Refused, the job is placed as not spot tolerant.
struct spot_admission {
  bool allowed = true;
  std::string verdict; ///< finops::spot_verdict's name
  std::string reason;
  friend bool operator==(const spot_admission&, const spot_admission&) = default;
};

struct job_record {
  std::string id;
  std::string tenant;
  job_spec spec; ///< its tenant label is `tenant`
  job_state state = job_state::pending;
  time_point submitted{};
  time_point started{}; ///< first replica running
  time_point ended{};
  std::string reason;
  std::vector<replica_record> replicas;
  /// The spot policy's answer at submit; nullopt: none was asked (not spot
  /// tolerant, or no FinOps actor), the spec's spot_tolerant stands.
  std::optional<spot_admission> spot;
};

/// Whether placement may put the job on spot nodes: spot tolerant and not
/// refused by the spot policy.
bool may_use_spot(const job_record& j) noexcept;

/// What the job manager actor must do.
struct job_command {
  enum class kind : uint8_t {
    place,          ///< submit `request` to placement for (job, replica or all)
    launch,         ///< start replica (job, replica, generation) on `node`
    stop,           ///< stop replica (job, replica, generation) on `node`
    release_bundle, ///< free (allocation, bundle)
    checkpoint,     ///< ask replica (job, replica, generation) on `node` to
                    ///< checkpoint (its spec's hook and timeout)
  };
  kind what = kind::place;
  std::string job;
  std::optional<uint32_t> replica; ///< place: nullopt = the whole gang
  uint64_t generation = 0;
  std::string node;
  uint64_t allocation = 0;
  uint32_t bundle = 0;
  placement::gang_request request; ///< place
};

/// A process a node agent reports.
struct reported_replica {
  std::string job;
  uint32_t replica = 0;
  uint64_t generation = 0;
  int32_t pid = 0;
};

/// Where a placed bundle went.
struct placed_bundle {
  uint32_t bundle = 0;
  std::string node;
  std::vector<uint32_t> gpus;
};

class job_table {
public:
  /// Adds a job for `tenant` (its tenant label becomes `tenant`). Returns
  /// the job id; `created` false when the idempotency key was seen.
  struct submitted {
    std::string id;
    bool created = true;
  };
  /// `spot`: the spot policy's answer (a refusal places it off spot).
  [[nodiscard]] result<submitted>
  submit(job_spec spec, const std::string& tenant, time_point now,
         std::vector<job_command>& out,
         std::optional<spot_admission> spot = std::nullopt);

  /// Placement accepted the `place` command of (job, replica) as request
  /// `request_id`.
  void on_request(const std::string& job, std::optional<uint32_t> replica,
                  uint64_t request_id);
  /// Placement placed request `request_id` as `allocation`. A request no
  /// replica waits for (a cancelled job, an unknown request) gets its
  /// bundles released. Launches each placed replica.
  void on_placed(uint64_t request_id, uint64_t allocation,
                 const std::vector<placed_bundle>& bundles, time_point now,
                 std::vector<job_command>& out);
  /// A node agent started the replica (pid).
  void on_started(const std::string& job, uint32_t replica, uint64_t generation,
                  int32_t pid, time_point now);
  /// A launch failed on the node (bad command, no such directory): the
  /// replica ends as exited 127 (restart policy applies).
  void on_launch_failed(const std::string& job, uint32_t replica, uint64_t generation,
                        const std::string& why, time_point now,
                        std::vector<job_command>& out);
  /// A checkpoint the replica was asked for was confirmed (`confirmed`) or
  /// not (timed out, not running there). A confirmation becomes the
  /// launch's last checkpoint; a failure puts the next periodic ask an
  /// interval later; either way the periodic ask is over. Stale
  /// generations are ignored.
  void on_checkpoint(const std::string& job, uint32_t replica, uint64_t generation,
                     bool confirmed, time_point now);
  /// The replica's process ended. Stale generations are ignored.
  void on_exited(const std::string& job, uint32_t replica, uint64_t generation,
                 const replica_exit& how, time_point now, std::vector<job_command>& out);
  /// `node` is down: its replicas are lost (restart elsewhere or give up).
  void on_node_down(const std::string& node, time_point now,
                    std::vector<job_command>& out);
  /// `node`'s agent reports what it runs (on join, rejoin, or when the
  /// head restarted). Stale reports are stopped (fencing); replicas the
  /// table has on that node but the node does not run are lost.
  void reconcile(const std::string& node, const std::vector<reported_replica>& running,
                 time_point now, std::vector<job_command>& out);
  /// Cancels a job: stops its replicas, releases its allocations. not_found
  /// for an unknown id; an ended job is left as it is.
  [[nodiscard]] result<void> cancel(const std::string& job, time_point now,
                                    std::vector<job_command>& out);
  /// Ends a job as failed with `reason` (placement refused it): stops and
  /// releases like cancel. Unknown or ended jobs: nothing.
  /// Scales a running job down to `keep` replicas: the replicas with an
  /// index >= keep that have not ended are stopped (their processes
  /// SIGTERMed), end as cancelled and give their bundles back; the job
  /// keeps running with the rest, and its reason says why. Returns how many
  /// were stopped. not_found; conflict for an ended job or when `keep` is
  /// below the spec's min_replicas (or the spec has none).
  [[nodiscard]] result<uint32_t> scale_down(const std::string& job, uint32_t keep,
                                            const std::string& reason, time_point now,
                                            std::vector<job_command>& out);
  void fail(const std::string& job, const std::string& reason, time_point now,
            std::vector<job_command>& out);
  /// After a restart: places again what waits for placement without an
  /// acknowledged request (the whole gang of a job that never started, or
  /// single replicas), as submit and node losses first asked.
  void place_unacknowledged(std::vector<job_command>& out) const;
  /// Backoffs that are due restart; time limits that passed stop the job;
  /// running replicas whose checkpoint interval passed since they started,
  /// last checkpointed or last failed to are asked to checkpoint
  /// (`checkpoint` commands; an ask unanswered for its timeout plus
  /// checkpoint_answer_grace counts as failed).
  void tick(time_point now, std::vector<job_command>& out);
  static constexpr duration checkpoint_answer_grace = std::chrono::seconds{10};

  const job_record* find(std::string_view id) const;
  /// The job a tenant submitted with idempotency key `key` (null: none).
  const job_record* find_by_key(const std::string& tenant, const std::string& key) const;
  const std::map<std::string, job_record, std::less<>>& jobs() const noexcept {
    return jobs_;
  }
  /// Placement requests the table waits for (request id -> job, replica).
  std::map<uint64_t, std::pair<std::string, std::optional<uint32_t>>> waiting() const;
  /// Earliest backoff, time limit or periodic checkpoint to act on;
  /// nullopt: none.
  std::optional<time_point> next_deadline() const;

  /// Ids of jobs changed since the last call (to persist).
  std::set<std::string> take_dirty();
  /// The counters (next job number, next generation) as JSON.
  std::string meta_json() const;
  /// Loads a job and the counters read back from the store.
  [[nodiscard]] result<void> restore_meta(std::string_view json);
  [[nodiscard]] result<void> restore_job(job_record job);

private:
  replica_record* replica_of(const std::string& job, uint32_t replica,
                             uint64_t generation);
  void launch(job_record& j, replica_record& r, time_point now,
              std::vector<job_command>& out);
  void end_replica(job_record& j, replica_record& r, const replica_exit& how,
                   bool node_lost, time_point now, std::vector<job_command>& out);
  void release(replica_record& r, std::vector<job_command>& out);
  /// Stops the replica's process if it holds one, ends it as cancelled and
  /// gives its bundle back (cancel and scale_down).
  void cancel_replica(const job_record& j, replica_record& r, time_point now,
                      std::vector<job_command>& out);
  void place_again(job_record& j, replica_record& r, std::vector<job_command>& out);
  /// The `place` command for a job's gang (nullopt) or one of its replicas.
  static job_command place_command(const job_record& j, std::optional<uint32_t> replica);
  void update_job(job_record& j, time_point now);

  std::map<std::string, job_record, std::less<>> jobs_;
  std::map<std::pair<std::string, std::string>, std::string> idempotency_;
  std::set<std::string> dirty_;
  uint64_t next_job_ = 1;
  uint64_t next_generation_ = 1;
};

/// The job's document for the API (docs/API.md): id, name, tenant, state,
/// times (RFC 3339), spec, the spot policy's answer ("spot": allowed,
/// verdict, reason; when one was asked), replicas with node, state,
/// restarts, last exit, last checkpoint.
std::string job_json(const job_record& j);
/// Storage form (round-trips exactly through decode_job).
std::string encode_job(const job_record& j);
[[nodiscard]] result<job_record> decode_job(std::string_view json);

} // namespace troupe::actors
