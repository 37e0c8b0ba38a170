#include <fmt/format.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <random>

#include "clean/cleaner.h"
#include "commit/committer.h"
#include "core/outbox_impl.h"
#include "core/transaction_internal.h"
#include "delivery/inline.h"
#include "jaiminho/version.h"
#include "outbox/control.h"
#include "storage/check.h"
#include "storage/delivery_log.h"
#include "storage/disk_guard.h"
#include "storage/envelope.h"
#include "storage/inbox_record.h"
#include "storage/info_log.h"
#include "storage/keys.h"
#include "storage/open.h"
#include "storage/small_files.h"
#include "storage/status.h"
#include "storage/stream_reader.h"
#include "storage/wal_env.h"
#include "util/macros.h"

namespace jaiminho {

using internal::StreamConfig;

namespace {

// 366 days: a longer period would not clean in any useful time, and the wait
// for it must stay far from the clocks' overflow.
constexpr std::chrono::seconds kMaxCleanInterval{366LL * 24 * 3600};

Status ValidateOptions(const OutboxOptions& o) {
  auto bad = [](std::string msg) { return MakeError(ErrorCode::kInvalidArgument, std::move(msg)); };
  if (o.path.empty()) return bad("OutboxOptions.path is empty");
  JM_RETURN_IF_ERROR(internal::ValidateStrategy(o.strategy, "OutboxOptions.strategy"));
  JM_RETURN_IF_ERROR(internal::ValidateTimeToDelete(o.time_to_delete, "OutboxOptions"));
  JM_RETURN_IF_ERROR(internal::ValidateRetryPolicy(o.retry, "OutboxOptions"));
  if (o.clean_interval.count() < 0 || o.clean_interval > kMaxCleanInterval) {
    return bad(fmt::format("OutboxOptions.clean_interval must be in [0, {}] s (0 disables the pass), got {} s",
                           kMaxCleanInterval.count(), o.clean_interval.count()));
  }
  if (o.max_payload_bytes == 0 || o.max_payload_bytes > (64u << 20)) {
    return bad(fmt::format("OutboxOptions.max_payload_bytes must be in [1, 67108864], got {}", o.max_payload_bytes));
  }
  if (o.min_free_percent && !(*o.min_free_percent >= 0 && *o.min_free_percent <= 50)) {
    return bad(fmt::format("OutboxOptions.min_free_percent must be in [0, 50], got {}", *o.min_free_percent));
  }
  if (o.durability != Durability::kSyncEachCommit && o.durability != Durability::kInterval &&
      o.durability != Durability::kNone) {
    return bad(fmt::format("OutboxOptions.durability: unknown value {}", static_cast<int>(o.durability)));
  }
  if (o.sync_interval < std::chrono::milliseconds(1) || o.sync_interval > std::chrono::seconds(10)) {
    return bad(fmt::format("OutboxOptions.sync_interval must be in [1, 10000] ms, got {} ms", o.sync_interval.count()));
  }
  if (o.inline_dispatch != InlineDispatch::kCommittingThread &&
      o.inline_dispatch != InlineDispatch::kDispatcherThread) {
    return bad(fmt::format("OutboxOptions.inline_dispatch: unknown value {}", static_cast<int>(o.inline_dispatch)));
  }
  std::vector<std::string_view> seen;
  for (const auto& b : o.business_families) {
    if (b.name.empty()) return bad("OutboxOptions.business_families: a family has an empty name");
    if (b.name.starts_with("jaiminho.")) {
      return bad(fmt::format("OutboxOptions.business_families: '{}' is reserved (jaiminho.* names)", b.name));
    }
    if (std::find(seen.begin(), seen.end(), b.name) != seen.end()) {
      return bad(fmt::format("OutboxOptions.business_families: '{}' is listed twice", b.name));
    }
    seen.push_back(b.name);
  }
  JM_RETURN_IF_ERROR(internal::Signer::Validate(o.signing));
  for (const auto& obs : o.observers) {
    if (!obs) return bad("OutboxOptions.observers holds a null observer");
  }
  return {};
}

DatabaseId NewDatabaseId() {
  DatabaseId id;
  std::random_device rd;
  for (size_t i = 0; i < id.bytes.size(); i += 4) {
    uint32_t r = rd();
    for (size_t k = 0; k < 4; ++k)
      id.bytes[i + k] = static_cast<uint8_t>(r >> (8 * k));
  }
  return id;
}

}  // namespace

// ---------------------------------------------------------------------------
// Opening.

namespace {

// OpenImpl's steps, in the order it runs them.

// What the path holds; kBusy when another process is creating a database
// there, kNotFound when there is none and create_if_missing is false. Creates
// the missing parent directories of a new database.
Result<internal::PathKind> CheckPath(const OutboxOptions& options) {
  const std::string& path = options.path;
  auto classified = internal::ClassifyPath(path);
  if (!classified) {
    // A directory another process is creating right now looks like no database.
    if (auto pid = internal::LockHolderPid(path)) {
      return MakeError(ErrorCode::kBusy, fmt::format("{} is in use by process {} (RocksDB LOCK held; {})", path, *pid,
                                                     classified.error().message()));
    }
    return tl::unexpected(classified.error());
  }
  const internal::PathKind kind = *classified;
  if (kind != internal::PathKind::kDatabase && !options.create_if_missing) {
    return MakeError(ErrorCode::kNotFound, fmt::format("{}: no database there and create_if_missing is false", path));
  }
  if (kind == internal::PathKind::kMissing) JM_RETURN_IF_ERROR(internal::CreateParentDirectories(path));
  return kind;
}

// RocksDB's options, with our info log and `recovery` as a listener.
// `env`: the Env the database runs on (storage/wal_env.h), owned by the caller.
rocksdb::DBOptions DbOptions(const OutboxOptions& options, const std::shared_ptr<internal::WriteRecovery>& recovery,
                             rocksdb::Env* env) {
  rocksdb::DBOptions dbo;
  // RocksDB's own LOG writer aborts the process on a full disk (Debian keeps
  // its assertions): ours never fails (storage/info_log.h).
  dbo.info_log = std::make_shared<internal::InfoLog>(options.info_log_path, options.info_log_level,
                                                     options.info_log_to_logger ? options.logger : nullptr);
  dbo.info_log_level = options.info_log_level;
  dbo.listeners.push_back(recovery);
  dbo.env = env;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  dbo.keep_log_file_num = 4;
  dbo.max_log_file_size = 4 << 20;
  // The write-ahead log, kept near 64 MiB: past it, RocksDB flushes the
  // families that pin its oldest file. jaiminho.meta (written at every commit
  // and relay batch, but small) pins every file since its last flush, and
  // RocksDB's default limit, 4x all write buffers (over 1 GiB here), let the
  // log grow that far between maintenance passes: a gateway's card space, and
  // a Clean() that then spent a third of its time deleting log files.
  dbo.max_total_wal_size = 64 << 20;
  // The inbox family updates its records in place (storage/inbox_record.h),
  // which RocksDB allows only without concurrent memtable writes. One commit
  // group writes at a time anyway (commit/committer.h).
  dbo.allow_concurrent_memtable_write = false;
  if (options.tune_db) options.tune_db(dbo);
  return dbo;
}

// What an existing database holds, read before it is opened for writing.
struct Probed {
  std::vector<std::string> families;
  internal::MetaSnapshot meta;
  // What the last clean close knew to be durable.
  std::optional<uint64_t> watermark;
};

// Probes an existing database read-only: one we must refuse is left exactly
// as it was. kBusy when another process holds it.
Result<Probed> ProbeDatabase(const OutboxOptions& options) {
  const std::string& path = options.path;
  Probed out;
  // Read before opening: what the last clean close knew to be durable.
  out.watermark = internal::ReadDurableWatermark(path);
  auto probe = internal::OpenReadOnly(path, options.env);
  // Another process creating this database holds its lock and has not yet
  // made it a jaiminho database: busy, not "not a database". It may also have
  // finished (and closed it) since the probe: then a second probe sees it.
  for (int attempt = 0; !probe && attempt < 2; ++attempt) {
    if (auto pid = internal::LockHolderPid(path)) {
      return MakeError(ErrorCode::kBusy, fmt::format("{} is in use by process {} (RocksDB LOCK held; {})", path, *pid,
                                                     probe.error().message()));
    }
    probe = internal::OpenReadOnly(path, options.env);
  }
  if (!probe) return tl::unexpected(probe.error());
  out.families = (*probe)->names;
  out.meta = (*probe)->snapshot;
  probe->reset();
  // Refuse a database another process holds before RocksDB opens anything
  // (it would create files, an info LOG among them when info_log_path names
  // one inside the database, before taking the lock).
  if (auto pid = internal::LockHolderPid(path)) {
    return MakeError(ErrorCode::kBusy, fmt::format("{} is in use by process {} (RocksDB LOCK held)", path, *pid));
  }
  return out;
}

// The column families to open, in order, with their options.
struct Families {
  std::vector<std::string> names;
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  // Each stream's filter needs its time_to_delete before the families open.
  std::map<std::string, std::shared_ptr<internal::CleanerState>> cleaners;
};

// The existing families, the meta family and the business families named in
// the options; a stream family with the config `probed` stored for it.
Families PlanFamilies(const OutboxImpl& impl, const Probed& probed) {
  const OutboxOptions& options = impl.options;
  Families f;
  auto business_options = [&](const std::string& name) {
    rocksdb::ColumnFamilyOptions cfo;
    for (const auto& b : options.business_families) {
      if (b.name == name) cfo.merge_operator = b.merge_operator;
    }
    return cfo;
  };
  f.names = probed.families;
  if (f.names.empty()) f.names.push_back(rocksdb::kDefaultColumnFamilyName);
  if (std::find(f.names.begin(), f.names.end(), std::string(internal::kMetaFamily)) == f.names.end()) {
    f.names.emplace_back(internal::kMetaFamily);
  }
  for (const auto& b : options.business_families) {
    if (std::find(f.names.begin(), f.names.end(), b.name) == f.names.end()) f.names.push_back(b.name);
  }
  for (const auto& n : f.names) {
    if (auto stream = internal::StreamOfFamily(n)) {
      StreamConfig config = impl.Resolve({});
      if (auto it = probed.meta.streams.find(*stream); it != probed.meta.streams.end() && it->second.config) {
        config = *it->second.config;
      }
      auto& cleaner = f.cleaners[*stream];
      cleaner = impl.NewCleanerState(*stream, config);
      f.descs.emplace_back(n, internal::StreamFamilyOptions(cleaner));
    } else if (n == internal::kInboxFamily) {
      f.descs.emplace_back(n, internal::InboxFamilyOptions());
    } else if (n == internal::kMetaFamily) {
      f.descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    } else {
      f.descs.emplace_back(n, business_options(n));
    }
  }
  return f;
}

// Opens the database with `f`'s families. nullptr when another process created
// it (with streams this open did not know of) since the path was classified:
// the caller starts again from the probe.
Result<rocksdb::DB*> OpenDb(const rocksdb::DBOptions& dbo, const std::string& path, internal::PathKind kind,
                            const Families& f, std::vector<rocksdb::ColumnFamilyHandle*>* handles) {
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(dbo, path, f.descs, handles, &raw);
  if (s.ok()) return raw;
  Error e = internal::FromRocks(s, fmt::format("open {}", path));
  if (kind != internal::PathKind::kDatabase && s.IsInvalidArgument()) {
    if (auto now = internal::ClassifyPath(path); now && *now == internal::PathKind::kDatabase) {
      return static_cast<rocksdb::DB*>(nullptr);
    }
  }
  if (e.code() == ErrorCode::kBusy) {
    auto pid = internal::LockHolderPid(path);
    std::string who = pid ? fmt::format("process {}", *pid) : std::string("this process or another one");
    return MakeError(ErrorCode::kBusy,
                     fmt::format("{} is in use by {} (RocksDB LOCK held): {}", path, who, s.ToString()));
  }
  return tl::unexpected(e);
}

// Reads jaiminho.meta, writing the format and a new database id first when it
// has none; sets impl.id.
Result<internal::MetaSnapshot> InitializeMeta(OutboxImpl& impl) {
  const std::string& path = impl.options.path;
  // Read under the lock: another process may have created and initialized the
  // database since the path was classified (a creation race); never twice.
  JM_ASSIGN_OR_RETURN(internal::MetaSnapshot current, internal::ReadMeta(impl.db.get(), impl.meta_cf, path));
  if (current.format == 0) {
    rocksdb::WriteBatch b;
    impl.id = NewDatabaseId();
    b.Put(impl.meta_cf, std::string(internal::kFormatKey), internal::EncodeU32(kFormatVersion));
    b.Put(impl.meta_cf, std::string(internal::kDbIdKey),
          rocksdb::Slice(reinterpret_cast<const char*>(impl.id.bytes.data()), impl.id.bytes.size()));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    JM_RETURN_IF_ERROR(internal::ToStatus(impl.db->Write(wo, &b), fmt::format("initialize {}", path)));
  }
  JM_ASSIGN_OR_RETURN(internal::MetaSnapshot meta, internal::ReadMeta(impl.db.get(), impl.meta_cf, path));
  impl.id = meta.id;
  return meta;
}

// What checking the families found: problems to report, meta records to repair.
struct Repairs {
  std::vector<std::string> problems;
  rocksdb::WriteBatch batch;
  // RocksDB sequence numbers the WAL lost (see CheckAndAddFamilies).
  uint64_t lost = 0;
};

// A stream's quota usage counted from its records (the relay is held off by
// delivery_mu; a commit in flight may be counted twice, by one group at most,
// which errs on the safe side).
Status CountUsage(OutboxImpl& impl, StreamState& st) REQUIRES(st.delivery_mu) {
  JM_ASSIGN_OR_RETURN(internal::Waiting w,
                      internal::CountWaiting(impl.db.get(), st.cf, st.name, st.cursor.load(std::memory_order_acquire)));
  st.waiting_events.store(static_cast<int64_t>(w.events), std::memory_order_relaxed);
  st.waiting_bytes.store(static_cast<int64_t>(w.bytes), std::memory_order_relaxed);
  st.usage_known.store(true, std::memory_order_release);
  return {};
}

// Checks stream `stream`'s meta records against its records and adds it to
// the registry with the repaired hwm and cursor.
Status AddStreamFamily(OutboxImpl& impl, const std::string& stream, rocksdb::ColumnFamilyHandle* handle,
                       std::shared_ptr<internal::CleanerState> cleaner, const internal::MetaSnapshot& meta,
                       Repairs& r) {
  StreamConfig config = impl.Resolve({});
  uint64_t hwm = 1, cursor = 0;
  if (auto it = meta.streams.find(stream); it != meta.streams.end()) {
    if (it->second.config) config = *it->second.config;
    if (it->second.hwm) hwm = *it->second.hwm;
    cursor = it->second.cursor;
  }
  JM_ASSIGN_OR_RETURN(internal::StreamExtent extent, internal::ScanStreamExtent(impl.db.get(), handle, stream));
  internal::StreamMetaCheck check = internal::CheckStreamMeta(stream, hwm, cursor, extent, meta.format);
  r.problems.insert(r.problems.end(), check.problems.begin(), check.problems.end());
  if (r.lost > 0) {
    check.hwm += r.lost;
    check.hwm_changed = true;
  }
  if (check.hwm_changed)
    r.batch.Put(impl.meta_cf, internal::StreamMetaKey(stream, "hwm"), internal::EncodeU64(check.hwm));
  if (check.cursor_changed) {
    r.batch.Put(impl.meta_cf, internal::StreamMetaKey(stream, "cursor"), internal::EncodeU64(check.cursor));
  }
  hwm = check.hwm;
  cursor = check.cursor;
  cleaner->time_to_delete_us.store(internal::TimeToDeleteMicros(config.time_to_delete));
  JM_ASSIGN_OR_RETURN(internal::SentRuns runs, internal::ReadRuns(impl.db.get(), handle, stream));
  cleaner->SetDelivered(cursor, std::move(runs));
  JM_ASSIGN_OR_RETURN(Stream * added, impl.AddStream(stream, handle, config, hwm, cursor, std::move(cleaner)));
  if (config.has_quota()) {
    StreamState& st = StreamAccess::Of(*added);
    internal::MutexLock dl(st.delivery_mu);
    JM_RETURN_IF_ERROR(CountUsage(impl, st));
  }
  return {};
}

// Meta records and the WAL checked against what is on disk (src/storage/check.h):
// repaired so that no seq is issued twice and no pending event is hidden, and
// reported through capture_error. Adds the streams and business families.
Status CheckAndAddFamilies(OutboxImpl& impl, Families& f, const std::vector<rocksdb::ColumnFamilyHandle*>& handles,
                           const internal::MetaSnapshot& meta, std::optional<uint64_t> watermark, uint64_t recovered) {
  const std::string& path = impl.options.path;
  Repairs r;
  auto wal_problem = internal::CheckWal(path, watermark, recovered);
  if (wal_problem) r.problems.push_back(*wal_problem);
  // Lost WAL records may have issued seqs (and reservations) that left no trace:
  // each one used at least one RocksDB sequence number.
  r.lost = wal_problem ? *watermark - recovered : 0;
  for (size_t i = 0; i < f.names.size(); ++i) {
    if (auto stream = internal::StreamOfFamily(f.names[i])) {
      JM_RETURN_IF_ERROR(AddStreamFamily(impl, *stream, handles[i], f.cleaners[*stream], meta, r));
    } else if (f.names[i] == internal::kInboxFamily) {
      impl.inbox_cf = handles[i];
    } else if (f.names[i] != internal::kMetaFamily) {
      BusinessInfo info{f.names[i], handles[i], false};
      for (const auto& b : impl.options.business_families) {
        if (b.name == f.names[i]) info.has_merge_operator = b.merge_operator != nullptr;
      }
      impl.business.emplace(f.names[i], info);
    }
  }
  // A format-1 database is upgraded in place: its records are read as they
  // are (format 1 kept no pending key below the cursor, which is what format 2
  // reads as delivered), so only the version changes, with the repairs above,
  // in one synced write: a crash leaves it at format 1, opened again the same way.
  if (meta.format < kFormatVersion) {
    r.batch.Put(impl.meta_cf, std::string(internal::kFormatKey), internal::EncodeU32(kFormatVersion));
  }
  if (r.batch.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    JM_RETURN_IF_ERROR(
        internal::ToStatus(impl.db->Write(wo, &r.batch), fmt::format("repair jaiminho.meta of {}", path)));
  }
  if (meta.format > 0 && meta.format < kFormatVersion) {
    impl.Log(
        {.level = LogLevel::kInfo,
         .message = "format upgraded",
         .fields = {{"path", path}, {"from", std::to_string(meta.format)}, {"to", std::to_string(kFormatVersion)}}});
  }
  for (const auto& p : r.problems) {
    Error e(ErrorCode::kCorruption, p);
    impl.Log({.level = LogLevel::kWarn, .message = "repaired at open", .error = &e, .fields = {{"path", path}}});
    impl.Capture(e);
  }
  return {};
}

// Merges each family's small SST files once restarts have left too many of
// them (storage/small_files.h). Never fails the open: a merge that cannot run
// now (a full disk, a background compaction holding a file) is logged to
// RocksDB's info log and tried again at the next open.
void MergeRestartFiles(OutboxImpl& impl) {
  for (auto* cf : impl.owned_handles) {
    auto merged = internal::MergeSmallFiles(impl.db.get(), cf, impl.options.path);
    if (!merged) {
      rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, impl.db->GetDBOptions().info_log, "jaiminho: %s",
                   merged.error().ToString().c_str());
    }
  }
}

// The parts above the core: the committer, the publish-on-commit publisher,
// the cleaner and its maintenance thread, and their stop_on_close hooks.
void WireParts(OutboxImpl& impl) {
  impl.syncer = std::make_unique<internal::WalSyncer>(&impl);
  if (impl.options.durability == Durability::kInterval) impl.syncer->StartInterval(impl.options.sync_interval);
  impl.stop_on_close.emplace_back([s = impl.syncer.get()] { s->Stop(); });
  impl.committer = std::make_shared<Committer>(&impl);
  impl.inline_publisher = std::make_shared<InlinePublisher>(&impl);
  impl.maintenance = std::make_shared<internal::Cleaner>(impl);
  if (impl.options.clean_interval.count() > 0) impl.maintenance->Start();
  impl.stop_on_close.emplace_back([m = impl.maintenance.get()] { m->Stop(); });
  impl.stop_on_close.emplace_back([p = impl.inline_publisher.get()] { p->Stop(); });
}

// Opens the database and builds the engine with its parts: the committer, the
// publish-on-commit publisher, the cleaner and its maintenance thread.
Result<std::unique_ptr<OutboxImpl>> OpenImpl(OutboxOptions options) {
  JM_RETURN_IF_ERROR(ValidateOptions(options));
  const std::string path = options.path;
  JM_ASSIGN_OR_RETURN(const internal::PathKind kind, CheckPath(options));
  auto recovery = std::make_shared<internal::WriteRecovery>(path);
  auto disk_guard = std::make_unique<internal::DiskGuard>(path, options.min_free_bytes, options.min_free_percent);
  std::unique_ptr<rocksdb::Env> env =
      internal::MakeWalEnv(options.env, [guard = disk_guard.get()] { return guard->WalStep(); });
  const rocksdb::DBOptions dbo = DbOptions(options, recovery, env.get());
  Probed probed;
  if (kind == internal::PathKind::kDatabase) {
    JM_ASSIGN_OR_RETURN(probed, ProbeDatabase(options));
  }

  auto impl = std::make_unique<OutboxImpl>();
  impl->env = std::move(env);
  impl->options = options;
  impl->recovery = recovery;
  impl->disk_guard = std::move(disk_guard);
  impl->clock = options.clock ? options.clock : SystemClock();
  Families families = PlanFamilies(*impl, probed);

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  JM_ASSIGN_OR_RETURN(rocksdb::DB * raw, OpenDb(dbo, path, kind, families, &handles));
  if (raw == nullptr) return OpenImpl(std::move(options));  // created meanwhile: again
  impl->db.reset(raw);
  const uint64_t recovered = impl->db->GetLatestSequenceNumber();
  impl->owned_handles = handles;
  for (size_t i = 0; i < families.names.size(); ++i) {
    if (families.names[i] == internal::kMetaFamily) impl->meta_cf = handles[i];
  }
  JM_ASSIGN_OR_RETURN(internal::MetaSnapshot meta, InitializeMeta(*impl));
  JM_RETURN_IF_ERROR(CheckAndAddFamilies(*impl, families, handles, meta, probed.watermark, recovered));
  JM_ASSIGN_OR_RETURN(impl->signer, internal::Signer::Make(options.signing, impl->id));
  MergeRestartFiles(*impl);
  WireParts(*impl);
  return impl;
}

// A drop-oldest quota leaves a gap in a keep-order stream: only when asked.
Status CheckDropKeepOrder(const StreamConfig& c, std::string_view where) {
  if (c.has_quota() && c.quota.policy == QuotaPolicy::kDropOldest && c.strategy == Strategy::kKeepOrder &&
      !c.quota.drop_keep_order) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: a drop-oldest quota on a keep-order stream leaves gaps in its order; set "
                                 "StreamQuota::drop_keep_order to allow it",
                                 where));
  }
  return {};
}

// Outbox::OpenStream: creates the stream's column family (with the cleaner's
// filter) or updates the stored options of an existing stream.
Result<Stream*> OpenOrUpdateStream(OutboxImpl& impl, std::string_view name, const StreamOptions& o) {
  JM_RETURN_IF_ERROR(internal::ValidateStreamName(name));
  std::string where = fmt::format("stream '{}'", name);
  if (o.strategy) JM_RETURN_IF_ERROR(internal::ValidateStrategy(*o.strategy, where));
  if (o.retry) JM_RETURN_IF_ERROR(internal::ValidateRetryPolicy(*o.retry, where));
  if (o.time_to_delete) JM_RETURN_IF_ERROR(internal::ValidateTimeToDelete(*o.time_to_delete, where));
  if (o.quota && o.quota->policy != QuotaPolicy::kReject && o.quota->policy != QuotaPolicy::kDropOldest) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: unknown quota policy {}", where, static_cast<int>(o.quota->policy)));
  }
  if (o.on_exhaustion && *o.on_exhaustion != OnExhaustion::kBlock && *o.on_exhaustion != OnExhaustion::kPark) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: unknown on_exhaustion {}", where, static_cast<int>(*o.on_exhaustion)));
  }
  StreamConfig config = impl.Resolve(o);
  internal::MutexLock create(impl.create_mu);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto found = impl.FindStream(name)) {
    StreamState& st = StreamAccess::Of(**found);
    // Only the options given change a stored stream; the others keep their value.
    config = st.config();
    if (o.strategy) config.strategy = *o.strategy;
    if (o.retry) config.retry = *o.retry;
    if (o.on_exhaustion) config.on_exhaustion = *o.on_exhaustion;
    if (o.time_to_delete) config.time_to_delete = *o.time_to_delete;
    if (o.quota) config.quota = *o.quota;
    JM_RETURN_IF_ERROR(CheckDropKeepOrder(config, where));
    if (config.has_quota() && !st.usage_known.load(std::memory_order_acquire)) {
      internal::MutexLock dl(st.delivery_mu);
      JM_RETURN_IF_ERROR(CountUsage(impl, st));
    }
    if (!(st.config() == config)) {
      auto s =
          impl.db->Put(wo, impl.meta_cf, internal::StreamMetaKey(name, "config"), internal::EncodeStreamConfig(config));
      JM_RETURN_IF_ERROR(internal::ToStatus(s, fmt::format("store config of {}", where)));
      if (config.time_to_delete != st.config().time_to_delete) {
        auto period = std::to_string(std::max<int64_t>(86400, config.time_to_delete.count()));
        s = impl.db->SetOptions(st.cf, {{"periodic_compaction_seconds", period}});
        JM_RETURN_IF_ERROR(internal::ToStatus(s, fmt::format("set periodic compaction of {}", where)));
      }
      st.set_config(config);
    }
    return *found;
  }
  JM_RETURN_IF_ERROR(CheckDropKeepOrder(config, where));
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  std::string family = fmt::format("{}{}", internal::kStreamFamilyPrefix, name);
  auto cleaner = impl.NewCleanerState(std::string(name), config);
  auto s = impl.db->CreateColumnFamily(internal::StreamFamilyOptions(cleaner), family, &cf);
  JM_RETURN_IF_ERROR(internal::ToStatus(s, fmt::format("create column family {}", family)));
  impl.owned_handles.push_back(cf);
  rocksdb::WriteBatch b;
  b.Put(impl.meta_cf, internal::StreamMetaKey(name, "config"), internal::EncodeStreamConfig(config));
  b.Put(impl.meta_cf, internal::StreamMetaKey(name, "hwm"), internal::EncodeU64(1));
  JM_RETURN_IF_ERROR(internal::ToStatus(impl.db->Write(wo, &b), fmt::format("store config of {}", where)));
  JM_ASSIGN_OR_RETURN(Stream * created, impl.AddStream(std::string(name), cf, config, 1, 0, std::move(cleaner)));
  StreamAccess::Of(*created).usage_known.store(true, std::memory_order_release);  // nothing waits yet
  return created;
}

}  // namespace

// ---------------------------------------------------------------------------
// The public class.

Outbox::Outbox(std::unique_ptr<OutboxImpl> impl) : impl_(std::move(impl)) {
  impl_->owner = this;
}
Outbox::~Outbox() = default;

Result<std::unique_ptr<Outbox>> Outbox::Open(OutboxOptions options) {
  JM_ASSIGN_OR_RETURN(auto impl, OpenImpl(std::move(options)));
  std::unique_ptr<Outbox> outbox(new Outbox(std::move(impl)));
  if (outbox->impl_->options.control_socket) {
    // Started once the Outbox exists (it serves through it); on failure the
    // Outbox closes again. Stopped first at Close, which removes the socket.
    JM_ASSIGN_OR_RETURN(std::shared_ptr<internal::ControlServer> server, internal::ControlServer::Start(*outbox));
    auto& stops = outbox->impl_->stop_on_close;
    stops.insert(stops.begin(), [server] { server->Stop(); });
  }
  return outbox;
}

Status Outbox::Close() {
  return impl_->Close();
}

Result<Stream*> Outbox::OpenStream(std::string_view name, StreamOptions options) {
  JM_ASSIGN_OR_RETURN(auto guard, impl_->Enter("OpenStream"));
  return OpenOrUpdateStream(*impl_, name, options);
}
Result<Stream*> Outbox::FindStream(std::string_view name) const {
  JM_ASSIGN_OR_RETURN(auto guard, impl_->Enter("FindStream"));
  return impl_->FindStream(name);
}
std::vector<Stream*> Outbox::Streams() const {
  auto guard = impl_->Enter("Streams");
  if (!guard) return {};
  return impl_->Streams();
}

Result<BusinessFamily> Outbox::FindBusinessFamily(std::string_view name) const {
  JM_ASSIGN_OR_RETURN(auto guard, impl_->Enter("FindBusinessFamily"));
  auto it = impl_->business.find(name);
  if (it == impl_->business.end()) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("no business column family '{}' in {} (list it in OutboxOptions.business_families)",
                                 name, impl_->options.path));
  }
  return BusinessFamily{it->second.handle, it->second.name, it->second.has_merge_operator, impl_.get()};
}

Transaction Outbox::Begin() {
  return TransactionInternal::Begin(impl_.get());
}

Result<std::optional<std::string>> Outbox::Get(const BusinessFamily& family, std::string_view key) const {
  JM_ASSIGN_OR_RETURN(auto guard, impl_->Enter("Get"));
  JM_ASSIGN_OR_RETURN(const BusinessInfo* info, impl_->CheckOwned(family, "Get"));
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), info->handle, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  JM_RETURN_IF_ERROR(internal::ToStatus(s, fmt::format("read {} from family '{}'", key, family.name)));
  return std::optional<std::string>(std::move(value));
}

Status Outbox::WaitDurable(const Receipt& receipt) {
  if (receipt.durable || receipt.position == 0) return {};
  JM_ASSIGN_OR_RETURN(auto guard, impl_->Enter("WaitDurable"));
  return impl_->syncer->WaitDurable(receipt.position);
}

Result<CleanReport> Outbox::Clean() {
  JM_ASSIGN_OR_RETURN(auto guard, impl_->Enter("Clean"));
  return impl_->maintenance->Clean();
}

const DatabaseId& Outbox::id() const {
  return impl_->id;
}
const OutboxOptions& Outbox::options() const {
  return impl_->options;
}
rocksdb::DB* Outbox::db() const {
  return impl_->db.get();
}

}  // namespace jaiminho
