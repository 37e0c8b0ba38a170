// OutboxImpl: the shared engine state (core/outbox_impl.h); Stream.
#include "core/outbox_impl.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "storage/check.h"
#include "storage/keys.h"
#include "storage/meta.h"
#include "storage/status.h"
#include "util/macros.h"

namespace jaiminho {

using internal::StreamConfig;

OutboxImpl::~OutboxImpl() {
  (void)Close();
}

Status OutboxImpl::Close() {
  internal::MutexLock close_lock(close_mu_);
  if (!db) return {};
  // New calls now fail with kClosed; relays waiting for commits wake up and
  // stop. Then wait for the calls in flight (commits finish and are kept).
  ops_.fetch_or(OpGuard::kClosedBit, std::memory_order_acq_rel);
  InterruptWaiters();
  for (uint32_t v = ops_.load(std::memory_order_acquire); v != OpGuard::kClosedBit;
       v = ops_.load(std::memory_order_acquire)) {
    ops_.wait(v, std::memory_order_acquire);
  }
  // The parts above the core (the maintenance thread, the publish-on-commit
  // dispatcher) stop before the database closes.
  for (const auto& stop : stop_on_close)
    stop();
  // Record where each stream continues so that a clean restart leaves no gap,
  // and the last seq assigned (events published inline leave no record).
  rocksdb::WriteBatch b;
  for (Stream* s : Streams()) {
    StreamState& st = StreamAccess::Of(*s);
    if (st.hwm != st.next_seq) {
      b.Put(meta_cf, internal::StreamMetaKey(st.name, "hwm"), internal::EncodeU64(st.next_seq));
      b.Put(meta_cf, internal::StreamMetaKey(st.name, "last"), internal::EncodeU64(st.next_seq - 1));
    }
  }
  // A synced write (empty when no stream moved) also syncs every write before
  // it: everything up to the latest sequence number is durable, and the next
  // Open can tell whether the WAL lost part of it (storage/check.h).
  rocksdb::WriteOptions wo;
  wo.sync = true;
  Status result = recovery->Write(db.get(), wo, &b, fmt::format("close {}", options.path));
  if (result) {
    if (auto w = internal::WriteDurableWatermark(options.path, db->GetLatestSequenceNumber()); !w) Capture(w.error());
  }
  for (auto* h : owned_handles)
    db->DestroyColumnFamilyHandle(h);
  owned_handles.clear();
  auto s = db->Close();
  if (result && !s.ok()) result = internal::ToStatus(s, fmt::format("close {}", options.path));
  db.reset();
  return result;
}

Error OutboxImpl::ClosedError(std::string_view call) const {
  return Error(ErrorCode::kClosed, fmt::format("{}: the Outbox of {} is closed", call, options.path));
}

Status OutboxImpl::CheckOwned(const StreamState& s, std::string_view call) const {
  if (s.outbox == this) return {};
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{}: stream '{}' belongs to another Outbox, not to {}", call, s.name, options.path));
}

Result<const BusinessInfo*> OutboxImpl::CheckOwned(const BusinessFamily& f, std::string_view call) const {
  if (f.owner == nullptr && f.handle == nullptr) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: no business family given (use Outbox::FindBusinessFamily of {})", call, options.path));
  }
  if (f.owner == this) {
    for (const auto& [name, info] : business) {
      if (info.handle == f.handle) return &info;
    }
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{}: business family '{}' is not one of {} (another Outbox's, or not from "
                               "Outbox::FindBusinessFamily)",
                               call, f.name, options.path));
}

StreamConfig OutboxImpl::Resolve(const StreamOptions& o) const {
  StreamConfig c;
  c.strategy = o.strategy.value_or(options.strategy);
  c.retry = o.retry.value_or(options.retry);
  c.on_exhaustion = o.on_exhaustion.value_or(OnExhaustion::kBlock);
  c.time_to_delete = o.time_to_delete.value_or(options.time_to_delete);
  c.quota = o.quota.value_or(StreamQuota{});
  return c;
}

std::shared_ptr<internal::CleanerState> OutboxImpl::NewCleanerState(const std::string& name,
                                                                    const StreamConfig& config) const {
  return std::make_shared<internal::CleanerState>(name, clock, internal::TimeToDeleteMicros(config.time_to_delete));
}

Result<Stream*> OutboxImpl::AddStream(std::string name, rocksdb::ColumnFamilyHandle* cf, StreamConfig config,
                                      uint64_t hwm, uint64_t cursor, std::shared_ptr<internal::CleanerState> cleaner) {
  auto state = std::make_unique<StreamState>(name, cf, config);
  state->outbox = this;
  state->cleaner = std::move(cleaner);
  state->next_seq = hwm;
  state->hwm = hwm;
  state->written_seq = hwm - 1;
  state->durable_seq = 0;  // unknown: the first relay pass syncs the WAL
  state->cursor = cursor;
  {
    // Not shared yet; the lock only satisfies the analysis.
    internal::MutexLock dl(state->delivery_mu);
    state->persisted_cursor = cursor;
  }
  auto stream = std::unique_ptr<Stream>(new Stream(std::move(state)));
  Stream* out = stream.get();
  internal::WriterMutexLock l(streams_mu_);
  streams_.emplace(std::move(name), std::move(stream));
  return out;
}

Result<Stream*> OutboxImpl::FindStream(std::string_view name) const {
  internal::ReaderMutexLock l(streams_mu_);
  auto it = streams_.find(name);
  if (it == streams_.end()) return MakeError(ErrorCode::kNotFound, fmt::format("no stream '{}'", name));
  return it->second.get();
}

std::vector<Stream*> OutboxImpl::Streams() const {
  internal::ReaderMutexLock l(streams_mu_);
  std::vector<Stream*> out;
  out.reserve(streams_.size());
  for (const auto& [n, s] : streams_)
    out.push_back(s.get());
  return out;
}

Status OutboxImpl::SyncWal() {
  const std::string what = fmt::format("sync WAL of {}", options.path);
  // Under Durability::kInterval the syncer carries a whole interval of
  // commits: DB::SyncWAL syncs the logs without holding RocksDB's write queue,
  // so commits go on during the fsync (an empty synced write would stall them
  // for all of it). Not after a failed write: then DB::SyncWAL may sync the
  // failed log writer, which Debian's RocksDB asserts on (WritableFileWriter);
  // a write failing while a DB::SyncWAL is already under way is the window
  // left (only under kInterval, and only on a failing disk).
  if (options.durability == Durability::kInterval && !recovery->EverFailed()) {
    auto s = db->SyncWAL();
    if (s.ok()) return {};
    return tl::unexpected(recovery->WriteFailed(s, what));
  }
  // An empty synced write syncs every live log the same way, but in
  // RocksDB's write queue, which refuses it while writes are stopped; and our
  // recovery resumes them first.
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::WriteBatch empty;
  return recovery->Write(db.get(), wo, &empty, what);
}

void OutboxImpl::WakeRelays() {
  commit_epoch_.fetch_add(1, std::memory_order_acq_rel);
  if (waiters_.load(std::memory_order_acquire) > 0) {
    internal::MutexLock l(notify_mu_);
    notify_cv_.SignalAll();
  }
}

void OutboxImpl::InterruptWaiters() {
  interrupt_epoch_.fetch_add(1, std::memory_order_acq_rel);
  internal::MutexLock l(notify_mu_);
  notify_cv_.SignalAll();
}

void OutboxImpl::WaitForCommit(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  internal::MutexLock l(notify_mu_);
  waiters_.fetch_add(1, std::memory_order_acq_rel);
  uint64_t interrupts = interrupt_epoch_.load(std::memory_order_acquire);
  while (commit_epoch_.load(std::memory_order_acquire) == seen &&
         interrupt_epoch_.load(std::memory_order_acquire) == interrupts && !closing()) {
    if (!notify_cv_.WaitUntil(notify_mu_, deadline)) break;
  }
  waiters_.fetch_sub(1, std::memory_order_acq_rel);
}

void OutboxImpl::Capture(const Error& e) {
  if (!options.capture_error) return;
  try {
    options.capture_error(e);
  } catch (...) {
    // The capture hook itself failed; nothing else to report to.
  }
}

void OutboxImpl::Log(const LogRecord& record) const {
  if (!LogEnabled(record.level)) return;
  try {
    options.logger->Log(record);
  } catch (...) {
    // A logger that fails has nowhere to report to.
  }
}

// ---------------------------------------------------------------------------
// Public classes.

Stream::Stream(std::unique_ptr<StreamState> state) : state_(std::move(state)) {}
Stream::~Stream() = default;
const std::string& Stream::name() const {
  return state_->name;
}
Strategy Stream::strategy() const {
  return state_->strategy();
}
RetryPolicy Stream::retry() const {
  return state_->config().retry;
}
OnExhaustion Stream::on_exhaustion() const {
  return state_->config().on_exhaustion;
}
std::chrono::seconds Stream::time_to_delete() const {
  return state_->config().time_to_delete;
}

}  // namespace jaiminho
