#pragma once
/// The runtime's durable key-value store: a thin RocksDB wrapper that holds
/// jobs, allocations and the cost ledger.
///
/// Data lives in named column families (independent key spaces inside one
/// database directory). Keys and values are arbitrary byte strings. Every
/// method reports failure as a `troupe::error` with a `runtime::errc` code;
/// no RocksDB type appears in this header.
///
/// Durability: with `sync` (the default) a write is appended to the
/// write-ahead log and the log is fsync'd before the call returns, so an ok
/// result means the write survives a crash of this process and, as far as the
/// disk honours fsync, of the machine. A write without `sync` survives a
/// process crash (the data is in the OS page cache) but not a power loss or an
/// OS crash. After a crash the store recovers to a prefix of the writes in
/// the order they were made: a `write_batch` is either wholly present or
/// wholly absent.
///
/// Thread-safety: every `store` method may be called from any number of
/// threads at once (RocksDB's DB is thread-safe, and the wrapper's own state
/// is immutable after `open`). A `write_batch` is a plain value with no
/// locking: fill it from one thread. Sync writes block the calling thread on
/// fsync, so actors must call them from a detached actor or dedicated thread,
/// never from a scheduler thread (see STYLE.md, Concurrency).

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/result.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::runtime {

/// How to open a store.
struct store_options {
  /// Database directory. It is created when `create_if_missing` is set.
  std::string path{};
  /// Column families to open, created when missing. "default" always exists
  /// and need not be listed. Column families that already exist in the
  /// database are opened as well, whether listed or not.
  std::vector<std::string> column_families{};
  /// Create the database when `path` holds none; when false, opening a
  /// missing database fails with `errc::invalid_argument`.
  bool create_if_missing = true;
  /// Default durability of writes (see `write_options::sync`).
  bool sync_writes = true;
};

/// Options of one write.
struct write_options {
  /// True: fsync the write-ahead log before returning, so an ok result means
  /// the write survives a process crash and a power loss. False: the write
  /// survives a process crash only. Unset: `store_options::sync_writes`.
  std::optional<bool> sync;
};

/// A group of puts and erases, possibly across column families, that
/// `store::write` applies atomically: after a crash, all of them or none of
/// them are visible. Operations apply in the order they were added. A plain
/// value: copyable, movable, not tied to any store until written.
class write_batch {
public:
  /// Adds a put of `value` at `key` in column family `cf`; returns *this.
  write_batch& put(std::string_view cf, std::string_view key, std::string_view value);

  /// Adds an erase of `key` in column family `cf`; returns *this.
  write_batch& erase(std::string_view cf, std::string_view key);

  /// Number of operations added.
  [[nodiscard]] std::size_t size() const noexcept { return ops_.size(); }

  /// True when no operation was added.
  [[nodiscard]] bool empty() const noexcept { return ops_.empty(); }

  /// Removes every operation.
  void clear() noexcept { ops_.clear(); }

private:
  friend class store;

  enum class op_kind { put, erase };

  struct op {
    op_kind kind;
    std::string cf;
    std::string key;
    std::string value; ///< empty for erase
  };

  std::vector<op> ops_;
};

/// An open RocksDB database. Owns the database handle and closes it in the
/// destructor. Non-copyable and non-movable: share it by reference or hold it
/// in the `std::unique_ptr` that `open` returns.
class store {
public:
  /// Opens (and with `create_if_missing`, creates) the database at
  /// `options.path` with the listed column families. Returns
  /// `errc::invalid_argument` for bad options or a missing database that may
  /// not be created, `errc::io_error` when the path cannot be used (for
  /// example, it is a regular file or is locked by another process),
  /// `errc::corrupted` when the stored data fails its checks.
  [[nodiscard]] static result<std::unique_ptr<store>> open(const store_options& options);

  /// Closes the database. Unsynced writes are synced to the write-ahead log
  /// first; errors at close are ignored (there is no one to report to).
  ~store();

  store(const store&) = delete;
  store& operator=(const store&) = delete;
  store(store&&) = delete;
  store& operator=(store&&) = delete;

  /// Sets `key` in column family `cf` to `value`, replacing any old value.
  /// Returns `errc::invalid_argument` for an unknown column family,
  /// `errc::io_error` when the write could not be made durable.
  [[nodiscard]] result<void> put(std::string_view cf, std::string_view key,
                                 std::string_view value, write_options options = {});

  /// Reads `key` from column family `cf`: the value, or `std::nullopt` when
  /// the key is absent. Returns `errc::invalid_argument` for an unknown
  /// column family, `errc::io_error` or `errc::corrupted` when reading fails.
  [[nodiscard]] result<std::optional<std::string>> get(std::string_view cf,
                                                       std::string_view key);

  /// Removes `key` from column family `cf`; removing an absent key is not an
  /// error. Errors as for `put`.
  [[nodiscard]] result<void> erase(std::string_view cf, std::string_view key,
                                   write_options options = {});

  /// Calls `visit(key, value)` for each key in column family `cf` that starts
  /// with `prefix` (every key when `prefix` is empty), in ascending bytewise
  /// order, until `visit` returns false. The scan sees a consistent snapshot
  /// taken when it starts; the views passed to `visit` are valid only during
  /// that call. Returns `errc::invalid_argument` for an unknown column
  /// family, `errc::io_error` or `errc::corrupted` when reading fails.
  [[nodiscard]] result<void>
  scan(std::string_view cf, std::string_view prefix,
       const std::function<bool(std::string_view key, std::string_view value)>& visit);
  /// As scan, from the first key >= `from` (a key before `prefix` starts the
  /// scan at the prefix): a page of a log keyed by sequence number without
  /// reading the pages before it.
  [[nodiscard]] result<void>
  scan(std::string_view cf, std::string_view prefix, std::string_view from,
       const std::function<bool(std::string_view key, std::string_view value)>& visit);

  /// Applies every operation of `batch` atomically: all or none, also across
  /// a crash. Returns `errc::invalid_argument` (and writes nothing) when the
  /// batch names an unknown column family; other errors as for `put`.
  [[nodiscard]] result<void> write(write_batch&& batch, write_options options = {});

  /// Writes the in-memory tables of every column family to SST files and
  /// waits for it. Not needed for durability (the write-ahead log provides
  /// it); it shortens recovery after a crash. Returns `errc::io_error` on
  /// failure.
  [[nodiscard]] result<void> flush();

  /// Names of the open column families, "default" first.
  [[nodiscard]] std::vector<std::string> column_families() const;

  /// The database directory.
  [[nodiscard]] const std::string& path() const noexcept;

private:
  struct impl;

  explicit store(std::unique_ptr<impl> self);

  std::unique_ptr<impl> impl_;
};

} // namespace troupe::runtime
