#include "troupe/runtime/random.hpp"
#include "troupe/runtime/store.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <poll.h>
#include <string>
#include <string_view>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

using troupe::runtime::errc;
using troupe::runtime::store;
using troupe::runtime::store_options;
using troupe::runtime::write_batch;
using troupe::runtime::write_options;

namespace {

/// A fresh directory under /tmp, removed with everything in it at scope exit.
class temp_dir {
public:
  temp_dir() {
    std::string pattern = "/tmp/troupe-store-test-XXXXXX";
    TROUPE_ASSERT(::mkdtemp(pattern.data()) != nullptr, "mkdtemp under /tmp");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec)
      std::fprintf(stderr, "temp_dir: cannot remove %s: %s\n", path_.c_str(),
                   ec.message().c_str());
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(std::string_view name) const {
    return path_ + "/" + std::string{name};
  }

private:
  std::string path_;
};

/// Opens a store and fails the test case when that fails.
std::unique_ptr<store> open_or_fail(const store_options& options) {
  auto opened = store::open(options);
  if (!opened) FAIL("store::open: " << opened.err().to_string());
  return std::move(opened).value();
}

/// Every key/value of one column family with the given prefix, in order.
std::vector<std::pair<std::string, std::string>> scan_all(store& db, std::string_view cf,
                                                          std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  auto r = db.scan(cf, prefix, [&out](std::string_view k, std::string_view v) {
    out.emplace_back(k, v);
    return true;
  });
  if (!r) FAIL("scan: " << r.err().to_string());
  return out;
}

/// Number of threads of this process.
std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator{"/proc/self/task"}) {
    ++n;
  }
  return n;
}

// -- crash test helpers -------------------------------------------------------

/// splitmix64 (Steele, Lea, Flood 2014): a small seeded PRNG, so every kill
/// point is reproducible.
struct splitmix64 {
  std::uint64_t state;
  std::uint64_t next() { return troupe::splitmix64(state); }
};

/// FNV-1a, 64 bit: the record checksum.
std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

constexpr std::string_view crash_cfs[] = {"jobs", "ledger"};
constexpr int crash_rounds = 24;
constexpr std::uint64_t crash_seed = 0x7a0c3e5d2b1f4968ULL;
constexpr std::size_t batch_keys = 5;
/// Op ids of round r are r * ids_per_round + 0, 1, 2, ...
constexpr std::uint64_t ids_per_round = 1ULL << 20;
/// Sent on the ack pipe by a writer that hit an error.
constexpr std::uint64_t writer_failed = ~0ULL;

/// Every third op is a batch of batch_keys keys across both column
/// families; the others are single puts.
bool is_batch(std::uint64_t op_id) {
  return op_id % 3 == 0;
}

std::size_t keys_of(std::uint64_t op_id) {
  return is_batch(op_id) ? batch_keys : 1;
}

std::string_view cf_of(std::uint64_t op_id, std::size_t index) {
  return crash_cfs[(op_id + index) % 2];
}

/// Key of record `index` of op `op_id`: "s/<id>" or "b/<id>/<index>".
std::string record_key(std::uint64_t op_id, std::size_t index) {
  return is_batch(op_id) ? "b/" + hex16(op_id) + "/" + std::to_string(index)
                         : "s/" + hex16(op_id);
}

/// "<op id>|<index>|<count>|<payload>|<checksum>" where the checksum covers
/// the key, the payload and the op (batch) id.
std::string record_value(std::uint64_t op_id, std::size_t index) {
  splitmix64 rng{op_id * 31 + index};
  std::string payload(8 + rng.next() % 57, ' ');
  for (auto& c : payload)
    c = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.next() % 36];
  auto key = record_key(op_id, index);
  auto sum = fnv1a64(key + "|" + payload + "|" + hex16(op_id));
  return hex16(op_id) + "|" + std::to_string(index) + "|" +
         std::to_string(keys_of(op_id)) + "|" + payload + "|" + hex16(sum);
}

/// Checks a stored record against its key; returns its op id and index, or
/// nothing (with a test failure) when it does not verify.
std::optional<std::pair<std::uint64_t, std::size_t>>
verify_record(std::string_view cf, std::string_view key, std::string_view value) {
  std::vector<std::string_view> fields;
  for (std::size_t pos = 0;;) {
    auto bar = value.find('|', pos);
    fields.push_back(value.substr(pos, bar - pos));
    if (bar == std::string_view::npos) break;
    pos = bar + 1;
  }
  auto bad = [&](const char* why) {
    FAIL_CHECK(cf << "/" << key << ": " << why << ": " << value);
    return std::nullopt;
  };
  if (fields.size() != 5 || fields[0].size() != 16 || fields[4].size() != 16) {
    return bad("malformed value");
  }
  auto op_id = std::strtoull(std::string{fields[0]}.c_str(), nullptr, 16);
  auto index = std::strtoull(std::string{fields[1]}.c_str(), nullptr, 10);
  if (index >= keys_of(op_id) || record_key(op_id, index) != key) {
    return bad("key does not match the op id in the value");
  }
  if (cf_of(op_id, index) != cf) return bad("record in the wrong column family");
  if (fields[2] != std::to_string(keys_of(op_id))) return bad("wrong batch size");
  auto sum = fnv1a64(std::string{key} + "|" + std::string{fields[3]} + "|" +
                     std::string{fields[0]});
  if (hex16(sum) != fields[4]) return bad("checksum mismatch");
  if (record_value(op_id, index) != value)
    return bad("payload differs from what was written");
  return std::pair{op_id, static_cast<std::size_t>(index)};
}

bool write_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    auto n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    auto n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// Dies with the process that forked it, so no child outlives a failed test.
void die_with_parent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(10);
}

/// The writer (a grandchild): opens the store and makes sync writes until it
/// is killed. After each write returns ok it sends the op id on `ack_fd`.
[[noreturn]] void run_writer(const std::string& path, std::uint64_t first_id,
                             int ack_fd) {
  auto opened = store::open({.path = path,
                             .column_families = {"jobs", "ledger"},
                             .create_if_missing = true,
                             .sync_writes = true});
  if (!opened) {
    std::fprintf(stderr, "writer: %s\n", opened.err().to_string().c_str());
    write_all(ack_fd, &writer_failed, sizeof writer_failed);
    ::_exit(3);
  }
  auto& db = **opened;
  for (auto id = first_id; id < first_id + ids_per_round; ++id) {
    troupe::result<void> written;
    if (is_batch(id)) {
      write_batch batch;
      for (std::size_t i = 0; i < batch_keys; ++i) {
        batch.put(cf_of(id, i), record_key(id, i), record_value(id, i));
      }
      written = db.write(std::move(batch), {.sync = true});
    } else {
      written =
          db.put(cf_of(id, 0), record_key(id, 0), record_value(id, 0), {.sync = true});
    }
    if (!written) {
      std::fprintf(stderr, "writer: %s\n", written.err().to_string().c_str());
      write_all(ack_fd, &writer_failed, sizeof writer_failed);
      ::_exit(4);
    }
    if (!write_all(ack_fd, &id, sizeof id)) ::_exit(5); // 8 bytes: atomic on a pipe
  }
  ::_exit(0);
}

/// The zygote: forked while the test process has one thread, it stays
/// single-threaded and forks a writer for each round, so no writer inherits
/// the RocksDB background threads of the test process. Protocol per round:
/// reads the first op id; replies the writer's pid, then its wait status.
[[noreturn]] void run_zygote(const std::string& path, int cmd_fd, int reply_fd,
                             int ack_fd) {
  const auto self = ::getpid();
  for (;;) {
    std::uint64_t first_id = 0;
    if (!read_all(cmd_fd, &first_id, sizeof first_id)) ::_exit(0); // parent done
    pid_t writer = ::fork();
    if (writer < 0) ::_exit(6);
    if (writer == 0) {
      die_with_parent(self);
      ::close(cmd_fd);
      ::close(reply_fd);
      run_writer(path, first_id, ack_fd);
    }
    std::int64_t reply = writer;
    if (!write_all(reply_fd, &reply, sizeof reply)) ::_exit(7);
    int status = 0;
    while (::waitpid(writer, &status, 0) < 0 && errno == EINTR) {
    }
    reply = status;
    if (!write_all(reply_fd, &reply, sizeof reply)) ::_exit(8);
  }
}

/// Owns the zygote and the pipes of the crash test. Forks the zygote on
/// construction; on destruction (also when a REQUIRE fails midway) kills any
/// live writer and the zygote, so no process outlives the test case.
class crash_harness {
public:
  explicit crash_harness(const std::string& path) {
    int cmd[2], reply[2], ack[2];
    TROUPE_ASSERT(::pipe(cmd) == 0 && ::pipe(reply) == 0 && ::pipe(ack) == 0, "pipe");
    const auto parent = ::getpid();
    zygote_ = ::fork();
    TROUPE_ASSERT(zygote_ >= 0, "fork");
    if (zygote_ == 0) {
      die_with_parent(parent);
      ::close(cmd[1]);
      ::close(reply[0]);
      ::close(ack[0]);
      run_zygote(path, cmd[0], reply[1], ack[1]);
    }
    ::close(cmd[0]);
    ::close(reply[1]);
    ::close(ack[1]);
    cmd_fd_ = cmd[1];
    reply_fd_ = reply[0];
    ack_fd_ = ack[0];
    TROUPE_ASSERT(::fcntl(ack_fd_, F_SETFL, O_NONBLOCK) == 0, "fcntl O_NONBLOCK");
  }

  crash_harness(const crash_harness&) = delete;
  crash_harness& operator=(const crash_harness&) = delete;

  ~crash_harness() {
    if (writer_ > 0) (void)kill_writer();
    if (zygote_ > 0) {
      ::kill(zygote_, SIGKILL);
      (void)finish();
    }
    if (reply_fd_ >= 0) ::close(reply_fd_);
    if (ack_fd_ >= 0) ::close(ack_fd_);
  }

  /// Non-blocking read end of the pipe that writers send op ids on.
  int ack_fd() const { return ack_fd_; }

  /// Has the zygote fork a writer whose ops start at `first_id`; its pid, or
  /// -1 when the zygote does not answer.
  pid_t start_writer(std::uint64_t first_id) {
    std::int64_t pid = -1;
    if (!write_all(cmd_fd_, &first_id, sizeof first_id) ||
        !read_all(reply_fd_, &pid, sizeof pid)) {
      return -1;
    }
    writer_ = static_cast<pid_t>(pid);
    return writer_;
  }

  /// SIGKILLs the writer and returns its wait status (reaped by the zygote).
  int kill_writer() {
    ::kill(writer_, SIGKILL);
    writer_ = -1;
    std::int64_t status = -1;
    if (!read_all(reply_fd_, &status, sizeof status)) return -1;
    return static_cast<int>(status);
  }

  /// Tells the zygote to exit and returns its wait status.
  int finish() {
    if (cmd_fd_ >= 0) ::close(cmd_fd_); // the zygote sees EOF and exits
    cmd_fd_ = -1;
    int status = -1;
    while (::waitpid(zygote_, &status, 0) < 0 && errno == EINTR) {
    }
    zygote_ = -1;
    return status;
  }

private:
  pid_t zygote_ = -1;
  pid_t writer_ = -1;
  int cmd_fd_ = -1;
  int reply_fd_ = -1;
  int ack_fd_ = -1;
};

/// Reads every whole op id now in the (non-blocking) ack pipe into `acks`,
/// waiting up to `timeout` for the first byte. Returns false on a writer
/// failure or timeout.
bool read_acks(int fd, std::vector<std::uint64_t>& acks, std::string& partial,
               std::chrono::milliseconds timeout) {
  pollfd pfd{fd, POLLIN, 0};
  if (timeout.count() > 0 && ::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) {
    return false;
  }
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; // EAGAIN: drained
    partial.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t whole = partial.size() / sizeof(std::uint64_t) * sizeof(std::uint64_t);
  for (std::size_t i = 0; i < whole; i += sizeof(std::uint64_t)) {
    std::uint64_t id = 0;
    std::memcpy(&id, partial.data() + i, sizeof id);
    if (id == writer_failed) return false;
    acks.push_back(id);
  }
  partial.erase(0, whole);
  return true;
}

} // namespace

TEST_SUITE("store") {
  // Runs first (doctest orders test cases by file and line) because it forks:
  // the fork must happen while the test process has a single thread, before
  // any store has started RocksDB's background threads.
  TEST_CASE("sync writes and whole batches survive SIGKILL at 24 seeded points") {
    REQUIRE_MESSAGE(thread_count() == 1,
                    "the crash test forks and must run before anything starts a "
                    "thread: run it first (default --order-by=file) or alone");
    temp_dir dir;
    const auto path = dir / "db";

    crash_harness harness{path};

    splitmix64 rng{crash_seed};
    std::vector<std::vector<std::uint64_t>> acked(crash_rounds); // per round
    std::uint64_t records_verified = 0;
    std::uint64_t unacked_present = 0;
    std::uint64_t unacked_batches = 0;
    const auto started = std::chrono::steady_clock::now();

    for (int round = 0; round < crash_rounds; ++round) {
      CAPTURE(round);
      const std::uint64_t first_id = static_cast<std::uint64_t>(round) * ids_per_round;
      const std::size_t kill_after = 1 + rng.next() % 48;              // acks
      const auto delay = std::chrono::microseconds{rng.next() % 4000}; // then this

      const pid_t writer = harness.start_writer(first_id);
      REQUIRE(writer > 0);

      auto& acks = acked[static_cast<std::size_t>(round)];
      std::string partial;
      bool writer_ok = true;
      while (writer_ok && acks.size() < kill_after) {
        writer_ok = read_acks(harness.ack_fd(), acks, partial, std::chrono::seconds{20});
      }
      if (writer_ok) std::this_thread::sleep_for(delay);
      const int status = harness.kill_writer();
      REQUIRE_MESSAGE(writer_ok, "the writer failed or stalled (see its stderr)");
      REQUIRE(WIFSIGNALED(status));
      REQUIRE(WTERMSIG(status) == SIGKILL);
      // The writer is dead, so everything it acknowledged is in the pipe.
      REQUIRE(read_acks(harness.ack_fd(), acks, partial, std::chrono::milliseconds{0}));
      REQUIRE(partial.empty());
      for (std::size_t i = 0; i < acks.size(); ++i)
        REQUIRE(acks[i] == first_id + i);

      // Reopen the store the writer left behind and check every round so far.
      auto db = open_or_fail({.path = path, .column_families = {"jobs", "ledger"}});
      std::map<std::uint64_t, std::size_t> present; // op id -> records found
      for (auto cf : crash_cfs) {
        auto r = db->scan(cf, "", [&](std::string_view key, std::string_view value) {
          if (auto rec = verify_record(cf, key, value)) {
            ++present[rec->first];
            ++records_verified;
          }
          return true;
        });
        REQUIRE_MESSAGE(r.ok(), r.err().to_string());
      }
      db.reset();
      // Not a structured binding: clang 14 cannot capture one in the lambda
      // that CHECK_MESSAGE expands to.
      for (const auto& entry : present) {
        const auto op_id = entry.first;
        const auto found = entry.second;
        CHECK_MESSAGE(found == keys_of(op_id),
                      "op " << op_id << " is a partial batch: " << found << " of "
                            << keys_of(op_id) << " records");
      }
      for (int past = 0; past <= round; ++past) {
        const auto& round_acks = acked[static_cast<std::size_t>(past)];
        const std::uint64_t base = static_cast<std::uint64_t>(past) * ids_per_round;
        std::uint64_t count = 0;
        for (auto it = present.lower_bound(base);
             it != present.end() && it->first < base + ids_per_round; ++it) {
          // Ops of a round are recovered as a prefix of the order they were made.
          CHECK_MESSAGE(it->first == base + count, "op " << it->first
                                                         << " is present "
                                                            "but an earlier op is lost");
          ++count;
        }
        // Every acknowledged op is there; at most the one in flight beyond.
        CHECK_MESSAGE(count >= round_acks.size(),
                      "round " << past << ": " << round_acks.size()
                               << " ops acknowledged, " << count << " present");
        CHECK(count <= round_acks.size() + 1);
        if (past == round && count == round_acks.size() + 1) {
          ++unacked_present;
          if (is_batch(base + count - 1)) ++unacked_batches;
        }
      }
    }
    const int zygote_status = harness.finish();
    CHECK(WIFEXITED(zygote_status));
    CHECK(WEXITSTATUS(zygote_status) == 0);

    std::uint64_t ops = 0, records = 0;
    for (const auto& round_acks : acked) {
      ops += round_acks.size();
      for (auto id : round_acks)
        records += keys_of(id);
    }
    const auto seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    MESSAGE("crash test: " << crash_rounds << " SIGKILL rounds, " << ops
                           << " acknowledged writes (" << records
                           << " records) all recovered; " << records_verified
                           << " record checks in total; " << unacked_present
                           << " rounds recovered the unacknowledged in-flight write ("
                           << unacked_batches << " of them a batch); " << seconds
                           << " s");
  }

  TEST_CASE("put, get, erase and scan act on one column family at a time") {
    temp_dir dir;
    auto db = open_or_fail({.path = dir / "db", .column_families = {"jobs", "ledger"}});
    CHECK(db->column_families() == std::vector<std::string>{"default", "jobs", "ledger"});

    REQUIRE(db->put("jobs", "job/1", "train").ok());
    REQUIRE(db->put("jobs", "job/2", "eval").ok());
    REQUIRE(db->put("jobs", "job/10", "serve").ok());
    REQUIRE(db->put("jobs", "jobx", "not a job").ok());
    REQUIRE(db->put("ledger", "job/1", "42").ok());
    REQUIRE(db->put("default", "meta", std::string("bin\0ary", 7)).ok());

    auto job = db->get("jobs", "job/1");
    REQUIRE(job.ok());
    CHECK(*job == std::optional<std::string>{"train"});
    auto cost = db->get("ledger", "job/1");
    REQUIRE(cost.ok());
    CHECK(*cost == std::optional<std::string>{"42"});
    auto meta = db->get("default", "meta");
    REQUIRE(meta.ok());
    CHECK(*meta == std::optional<std::string>{std::string("bin\0ary", 7)});
    auto missing = db->get("ledger", "job/2");
    REQUIRE(missing.ok());
    CHECK_FALSE(missing->has_value());

    using kv = std::vector<std::pair<std::string, std::string>>;
    CHECK(scan_all(*db, "jobs", "job/") ==
          kv{{"job/1", "train"}, {"job/10", "serve"}, {"job/2", "eval"}});
    CHECK(scan_all(*db, "ledger", "job/") == kv{{"job/1", "42"}});
    CHECK(scan_all(*db, "jobs", "").size() == 4);
    CHECK(scan_all(*db, "jobs", "nothing").empty());

    std::vector<std::string> seen;
    REQUIRE(db->scan("jobs", "job/", [&](std::string_view k, std::string_view) {
                seen.emplace_back(k);
                return seen.size() < 2; // stop after the second key
              }).ok());
    CHECK(seen == std::vector<std::string>{"job/1", "job/10"});
    // From a key on: the rest of the prefix only; a start before the prefix
    // starts at it, one past it finds nothing.
    auto from = [&](std::string_view prefix, std::string_view start) {
      std::vector<std::string> keys;
      REQUIRE(db->scan("jobs", prefix, start, [&](std::string_view k, std::string_view) {
                  keys.emplace_back(k);
                  return true;
                }).ok());
      return keys;
    };
    CHECK(from("job/", "job/10") == std::vector<std::string>{"job/10", "job/2"});
    CHECK(from("job/", "job/11") == std::vector<std::string>{"job/2"});
    CHECK(from("job/", "a") == std::vector<std::string>{"job/1", "job/10", "job/2"});
    CHECK(from("job/", "job/3").empty());
    CHECK(from("job/", "z").empty());
    CHECK(from("", "jobx") == std::vector<std::string>{"jobx"});

    REQUIRE(db->erase("jobs", "job/1").ok());
    REQUIRE(db->erase("jobs", "never/there").ok());
    auto erased = db->get("jobs", "job/1");
    REQUIRE(erased.ok());
    CHECK_FALSE(erased->has_value());
    auto other_cf = db->get("ledger", "job/1");
    REQUIRE(other_cf.ok());
    CHECK(other_cf->has_value()); // erase touched only "jobs"
    REQUIRE(db->flush().ok());
  }

  TEST_CASE("reopening a store keeps its data and its column families") {
    temp_dir dir;
    {
      auto db = open_or_fail({.path = dir / "db", .column_families = {"jobs"}});
      REQUIRE(db->put("jobs", "a", "1").ok());
      REQUIRE(db->put("jobs", "b", "2", {.sync = false}).ok());
      REQUIRE(db->flush().ok());
      REQUIRE(db->put("jobs", "c", "3").ok()); // only in the WAL at close
    }
    // Existing column families open even when not listed.
    auto db = open_or_fail({.path = dir / "db", .create_if_missing = false});
    CHECK(db->column_families() == std::vector<std::string>{"default", "jobs"});
    using kv = std::vector<std::pair<std::string, std::string>>;
    CHECK(scan_all(*db, "jobs", "") == kv{{"a", "1"}, {"b", "2"}, {"c", "3"}});
  }

  TEST_CASE("an unknown column family is an invalid_argument that names the known ones") {
    temp_dir dir;
    auto db = open_or_fail({.path = dir / "db", .column_families = {"jobs"}});
    auto put = db->put("x", "k", "v");
    REQUIRE_FALSE(put.ok());
    CHECK(put.err().is(errc::invalid_argument));
    CHECK(put.err().message() == "unknown column family 'x' (have: default, jobs)");
    auto get = db->get("x", "k");
    REQUIRE_FALSE(get.ok());
    CHECK(get.err().is(errc::invalid_argument));
    CHECK_FALSE(db->erase("x", "k").ok());
    auto scan =
        db->scan("x", "", [](std::string_view, std::string_view) { return true; });
    REQUIRE_FALSE(scan.ok());
    CHECK(scan.err().to_string() ==
          "runtime.invalid_argument: unknown column family 'x' (have: default, jobs)");
  }

  TEST_CASE("opening a path that is a regular file is an io_error, not a crash") {
    temp_dir dir;
    const auto file = dir / "plain-file";
    std::ofstream{file} << "not a database\n";
    auto opened = store::open({.path = file, .column_families = {"jobs"}});
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.err().is(errc::io_error));
    CHECK(opened.err().message().find(file) != std::string::npos);
  }

  TEST_CASE("opening bad paths reports what was wrong") {
    temp_dir dir;
    auto empty = store::open({.path = ""});
    REQUIRE_FALSE(empty.ok());
    CHECK(empty.err().is(errc::invalid_argument));

    auto absent = store::open({.path = dir / "absent", .create_if_missing = false});
    REQUIRE_FALSE(absent.ok());
    CHECK(absent.err().is(errc::invalid_argument));
    CHECK(absent.err().message().find(dir / "absent") != std::string::npos);

    auto first = open_or_fail({.path = dir / "db"});
    auto second = store::open({.path = dir / "db"}); // the LOCK file is held
    REQUIRE_FALSE(second.ok());
    CHECK(second.err().is(errc::io_error));
  }

  TEST_CASE(
      "a write_batch applies across two column families all at once or not at all") {
    temp_dir dir;
    {
      auto db = open_or_fail({.path = dir / "db", .column_families = {"jobs", "ledger"}});
      REQUIRE(db->put("jobs", "job/old", "done").ok());

      // A batch naming an unknown column family writes nothing, not even the
      // operations before the bad one.
      write_batch bad;
      bad.put("jobs", "job/7", "queued")
          .put("ledger", "job/7", "0")
          .put("nope", "k", "v");
      auto rejected = db->write(std::move(bad));
      REQUIRE_FALSE(rejected.ok());
      CHECK(rejected.err().is(errc::invalid_argument));
      CHECK(scan_all(*db, "jobs", "job/7").empty());
      CHECK(scan_all(*db, "ledger", "").empty());

      write_batch batch;
      batch.put("jobs", "job/7", "queued")
          .put("ledger", "job/7", "0")
          .erase("jobs", "job/old")
          .put("ledger", "tmp", "x")
          .erase("ledger", "tmp"); // later operations see earlier ones
      CHECK(batch.size() == 5);
      REQUIRE(db->write(std::move(batch)).ok());
      REQUIRE(db->write(write_batch{}).ok()); // empty batch: nothing to do
    }
    auto db = open_or_fail({.path = dir / "db"});
    using kv = std::vector<std::pair<std::string, std::string>>;
    CHECK(scan_all(*db, "jobs", "") == kv{{"job/7", "queued"}});
    CHECK(scan_all(*db, "ledger", "") == kv{{"job/7", "0"}});
  }
}
