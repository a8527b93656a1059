#include "troupe/runtime/store.hpp"

#include <algorithm>
#include <atomic>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/status.h>
#include <rocksdb/write_batch.h>
#include <string>
#include <utility>

namespace troupe::runtime {
namespace {

rocksdb::Slice to_slice(std::string_view s) {
  return {s.data(), s.size()};
}

std::string_view to_view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

/// The one place where a rocksdb::Status becomes a troupe::error. `what`
/// says what was being done and where ("put into column family 'jobs' of
/// store '/var/lib/troupe'"); the status text follows it.
error to_error(const rocksdb::Status& st, std::string_view what) {
  errc code = errc::internal;
  if (st.IsNotFound()) {
    code = errc::not_found;
  } else if (st.IsCorruption()) {
    code = errc::corrupted;
  } else if (st.IsIOError()) { // includes no-space and path-not-found
    code = errc::io_error;
  } else if (st.IsInvalidArgument() || st.IsNotSupported()) {
    code = errc::invalid_argument;
  }
  // Busy, TimedOut, Aborted, Incomplete, ShutdownInProgress, TryAgain,
  // ColumnFamilyDropped, ...: not expected from how we use RocksDB.
  std::string message{what};
  message += ": ";
  message += st.ToString();
  return error{code, std::move(message)};
}

} // namespace

// -- write_batch --------------------------------------------------------------

write_batch& write_batch::put(std::string_view cf, std::string_view key,
                              std::string_view value) {
  ops_.push_back(op{op_kind::put, std::string{cf}, std::string{key}, std::string{value}});
  return *this;
}

write_batch& write_batch::erase(std::string_view cf, std::string_view key) {
  ops_.push_back(op{op_kind::erase, std::string{cf}, std::string{key}, {}});
  return *this;
}

// -- store::impl --------------------------------------------------------------

struct store::impl {
  std::string path;
  bool sync_writes = true;
  /// Set by any write made without sync; the destructor then syncs the WAL.
  std::atomic<bool> unsynced{false};
  /// Owned; closed and deleted in ~impl after the column family handles.
  rocksdb::DB* db = nullptr;
  /// Parallel vectors, "default" first. Immutable after open, so reading
  /// them needs no lock. The handles are owned and destroyed in ~impl.
  std::vector<std::string> cf_names;
  std::vector<rocksdb::ColumnFamilyHandle*> cf_handles;

  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  ~impl() {
    if (db == nullptr) return;
    if (unsynced.load(std::memory_order_relaxed)) {
      // Best effort: a clean close makes even non-sync writes durable.
      (void)db->SyncWAL();
    }
    for (auto* handle : cf_handles)
      (void)db->DestroyColumnFamilyHandle(handle);
    cf_handles.clear();
    (void)db->Close(); // errors at close have no one to go to
    delete db;
  }

  /// The handle of column family `cf`, or errc::invalid_argument naming the
  /// column families there are.
  result<rocksdb::ColumnFamilyHandle*> family(std::string_view cf) const {
    for (std::size_t i = 0; i < cf_names.size(); ++i) {
      if (cf_names[i] == cf) return cf_handles[i];
    }
    std::string message = "unknown column family '";
    message += cf;
    message += "' (have: ";
    for (std::size_t i = 0; i < cf_names.size(); ++i) {
      if (i > 0) message += ", ";
      message += cf_names[i];
    }
    message += ')';
    return error{errc::invalid_argument, std::move(message)};
  }

  rocksdb::WriteOptions write_opts(const write_options& options) {
    rocksdb::WriteOptions opts;
    opts.sync = options.sync.value_or(sync_writes);
    if (!opts.sync) unsynced.store(true, std::memory_order_relaxed);
    return opts;
  }

  std::string where(std::string_view verb, std::string_view cf) const {
    std::string out{verb};
    out += " column family '";
    out += cf;
    out += "' of store '";
    out += path;
    out += '\'';
    return out;
  }
};

// -- store --------------------------------------------------------------------

store::store(std::unique_ptr<impl> self) : impl_(std::move(self)) {}

store::~store() = default;

result<std::unique_ptr<store>> store::open(const store_options& options) {
  if (options.path.empty()) {
    return error{errc::invalid_argument, "store_options.path: must not be empty"};
  }
  // Which column families to open: "default", the requested ones, and any
  // that already exist (RocksDB refuses to open a database without them).
  std::vector<std::string> names{rocksdb::kDefaultColumnFamilyName};
  auto add_name = [&names](const std::string& name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  };
  for (const auto& name : options.column_families) {
    if (name.empty()) {
      return error{errc::invalid_argument,
                   "store_options.column_families: names must not be empty"};
    }
    add_name(name);
  }

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.keep_log_file_num = 10;
  // wal_recovery_mode stays kPointInTimeRecovery: after a crash, replay the
  // log up to the first incomplete record, which yields a prefix of the
  // writes and never half a batch.

  std::vector<std::string> existing;
  // Fails when there is no database yet (or it is unreadable); then DB::Open
  // below creates it or reports the real error.
  if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing).ok()) {
    for (const auto& name : existing)
      add_name(name);
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.reserve(names.size());
  for (const auto& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions{});
  }

  auto self = std::make_unique<impl>();
  self->path = options.path;
  self->sync_writes = options.sync_writes;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &db);
  if (!st.ok()) {
    return to_error(st, "open store '" + options.path + "'");
  }
  TROUPE_ASSERT(handles.size() == names.size(),
                "DB::Open returned one handle per column family");
  self->db = db;
  self->cf_names = std::move(names);
  self->cf_handles = std::move(handles);
  return std::unique_ptr<store>{new store{std::move(self)}};
}

result<void> store::put(std::string_view cf, std::string_view key, std::string_view value,
                        write_options options) {
  auto family = impl_->family(cf);
  if (!family) return std::move(family).err();
  auto st =
      impl_->db->Put(impl_->write_opts(options), *family, to_slice(key), to_slice(value));
  if (!st.ok()) return to_error(st, impl_->where("put into", cf));
  return troupe::ok();
}

result<std::optional<std::string>> store::get(std::string_view cf, std::string_view key) {
  auto family = impl_->family(cf);
  if (!family) return std::move(family).err();
  std::string value;
  auto st = impl_->db->Get(rocksdb::ReadOptions{}, *family, to_slice(key), &value);
  if (st.IsNotFound()) return std::optional<std::string>{};
  if (!st.ok()) return to_error(st, impl_->where("get from", cf));
  return std::optional<std::string>{std::move(value)};
}

result<void> store::erase(std::string_view cf, std::string_view key,
                          write_options options) {
  auto family = impl_->family(cf);
  if (!family) return std::move(family).err();
  auto st = impl_->db->Delete(impl_->write_opts(options), *family, to_slice(key));
  if (!st.ok()) return to_error(st, impl_->where("erase from", cf));
  return troupe::ok();
}

result<void> store::scan(
    std::string_view cf, std::string_view prefix,
    const std::function<bool(std::string_view key, std::string_view value)>& visit) {
  return scan(cf, prefix, prefix, visit);
}

result<void> store::scan(
    std::string_view cf, std::string_view prefix, std::string_view from,
    const std::function<bool(std::string_view key, std::string_view value)>& visit) {
  auto family = impl_->family(cf);
  if (!family) return std::move(family).err();
  std::unique_ptr<rocksdb::Iterator> it{
      impl_->db->NewIterator(rocksdb::ReadOptions{}, *family)};
  for (it->Seek(to_slice(std::max(prefix, from))); it->Valid(); it->Next()) {
    auto key = to_view(it->key());
    if (!key.starts_with(prefix)) break;
    if (!visit(key, to_view(it->value()))) break;
  }
  if (auto st = it->status(); !st.ok()) return to_error(st, impl_->where("scan", cf));
  return troupe::ok();
}

result<void> store::write(write_batch&& batch, write_options options) {
  rocksdb::WriteBatch rocks_batch;
  for (const auto& op : batch.ops_) {
    auto family = impl_->family(op.cf);
    if (!family) return std::move(family).err();
    auto st = op.kind == write_batch::op_kind::put
                  ? rocks_batch.Put(*family, to_slice(op.key), to_slice(op.value))
                  : rocks_batch.Delete(*family, to_slice(op.key));
    if (!st.ok()) return to_error(st, impl_->where("add to batch for", op.cf));
  }
  auto st = impl_->db->Write(impl_->write_opts(options), &rocks_batch);
  if (!st.ok()) {
    return to_error(st, "write batch into store '" + impl_->path + "'");
  }
  return troupe::ok();
}

result<void> store::flush() {
  rocksdb::FlushOptions opts;
  opts.wait = true;
  auto st = impl_->db->Flush(opts, impl_->cf_handles);
  if (!st.ok()) return to_error(st, "flush store '" + impl_->path + "'");
  return troupe::ok();
}

std::vector<std::string> store::column_families() const {
  return impl_->cf_names;
}

const std::string& store::path() const noexcept {
  return impl_->path;
}

} // namespace troupe::runtime
