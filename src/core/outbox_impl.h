// OutboxImpl and StreamState: the shared engine state behind the public
// classes (floor 2, src/LAYERS: includes only storage/, sign/, core/ and the
// public headers). Internal; included by src/ only.
#pragma once

#include <rocksdb/db.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/claim_table.h"
#include "core/cleaner_state.h"
#include "core/wal_syncer.h"
#include "jaiminho/logger.h"
#include "jaiminho/observer.h"
#include "jaiminho/outbox.h"
#include "sign/signer.h"
#include "storage/disk_guard.h"
#include "storage/meta.h"
#include "storage/write_recovery.h"
#include "util/histogram.h"
#include "util/mutex.h"

namespace jaiminho {

class Committer;
class InlinePublisher;
class OutboxImpl;
namespace internal {
class Cleaner;
}

// Everything the library keeps per stream.
class StreamState {
 public:
  StreamState(std::string stream_name, rocksdb::ColumnFamilyHandle* family, internal::StreamConfig config)
      : name(std::move(stream_name)),
        cf(family),
        quota_events_(config.quota.max_events),
        quota_bytes_(config.quota.max_bytes),
        quota_policy_(config.quota.policy),
        config_(config),
        strategy_(config.strategy) {}

  const std::string name;
  rocksdb::ColumnFamilyHandle* const cf;
  // The Outbox the stream belongs to (set when it is added): a Stream of
  // another Outbox is refused, never written into this one's column family.
  const OutboxImpl* outbox = nullptr;
  // Shared with the stream's compaction filter.
  std::shared_ptr<internal::CleanerState> cleaner;

  internal::StreamConfig config() const EXCLUDES(config_mu_) {
    internal::MutexLock l(config_mu_);
    return config_;
  }
  void set_config(const internal::StreamConfig& c) EXCLUDES(config_mu_) {
    internal::MutexLock l(config_mu_);
    config_ = c;
    strategy_.store(c.strategy, std::memory_order_relaxed);
    quota_events_.store(c.quota.max_events, std::memory_order_relaxed);
    quota_bytes_.store(c.quota.max_bytes, std::memory_order_relaxed);
    quota_policy_.store(c.quota.policy, std::memory_order_relaxed);
    if (cleaner) cleaner->time_to_delete_us.store(internal::TimeToDeleteMicros(c.time_to_delete));
  }
  Strategy strategy() const { return strategy_.load(std::memory_order_relaxed); }
  // The quota's limits (0 = none), readable without the config mutex.
  uint64_t quota_events() const { return quota_events_.load(std::memory_order_relaxed); }
  uint64_t quota_bytes() const { return quota_bytes_.load(std::memory_order_relaxed); }
  QuotaPolicy quota_policy() const { return quota_policy_.load(std::memory_order_relaxed); }

  // --- Sequence allocation: only the commit group leader touches these.
  uint64_t next_seq = 1;  // the next seq to assign
  uint64_t hwm = 1;       // seqs below it are durably reserved

  // Highest seq whose commit has been written (visible), and known durable.
  std::atomic<uint64_t> written_seq{0};
  std::atomic<uint64_t> durable_seq{0};

  // --- Delivery: one relay pass at a time per stream.
  internal::Mutex delivery_mu;
  // No pending key is below the cursor. Written under delivery_mu, read
  // without it (atomic).
  std::atomic<uint64_t> cursor{0};
  uint64_t persisted_cursor GUARDED_BY(delivery_mu) = 0;
  // Lowest seq that publish-on-commit left pending behind the cursor (for
  // example after a failed outcome write); the next pass rewinds to it.
  std::atomic<uint64_t> rewind{UINT64_MAX};
  // Bumped when records change outside commits (publish-on-commit outcomes,
  // operator actions), so an idle relay loop knows to look again.
  std::atomic<uint64_t> poke{0};

  // --- Publish-on-commit claims: events being published inline, which the
  // relay must not touch (core/claim_table.h states the protocol).
  internal::ClaimTable claims;

  // --- What waits for delivery (pending, retrying, parked), for the quota:
  // events and their own bytes (storage/envelope.h EventBytes). Counted from
  // the records when the stream has a quota at open, or when one is set
  // (usage_known); then commits add and deliveries subtract.
  std::atomic<int64_t> waiting_events{0};
  std::atomic<int64_t> waiting_bytes{0};
  std::atomic<bool> usage_known{false};
  // The counters read as what waits (a transient negative reads as 0).
  uint64_t WaitingEvents() const {
    return static_cast<uint64_t>(std::max<int64_t>(0, waiting_events.load(std::memory_order_relaxed)));
  }
  uint64_t WaitingBytes() const {
    return static_cast<uint64_t>(std::max<int64_t>(0, waiting_bytes.load(std::memory_order_relaxed)));
  }
  // Set while the quota refuses commits (for the log: once per change).
  std::atomic<bool> quota_refusing{false};
  // Events dropped by a drop-oldest quota since open.
  std::atomic<uint64_t> dropped{0};

  // --- Metrics (since open).
  std::atomic<uint64_t> published{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> retried{0};
  std::atomic<uint64_t> parked{0};
  std::atomic<uint64_t> committed{0};
  internal::AtomicHistogram commit_to_publish{internal::LatencyBounds()};
  internal::AtomicHistogram publish_duration{internal::PublishDurationBounds()};

 private:
  std::atomic<uint64_t> quota_events_;
  std::atomic<uint64_t> quota_bytes_;
  std::atomic<QuotaPolicy> quota_policy_;
  mutable internal::Mutex config_mu_;
  internal::StreamConfig config_ GUARDED_BY(config_mu_);
  std::atomic<Strategy> strategy_;
};

class StreamAccess {
 public:
  static StreamState& Of(const Stream& s) { return *s.state_; }
  static void RewindTo(StreamState& s, uint64_t seq) {
    uint64_t cur = s.rewind.load(std::memory_order_acquire);
    while (seq < cur && !s.rewind.compare_exchange_weak(cur, seq, std::memory_order_acq_rel)) {
    }
  }
};

class OutboxAccess {
 public:
  static OutboxImpl& Of(const Outbox& o) { return *o.impl_; }
};

// Keeps the Outbox open during one public call: OutboxImpl::Enter() hands it
// out, Close() waits until none is left. Movable, not copyable.
class OpGuard {
 public:
  OpGuard(OpGuard&& o) noexcept : ops_(std::exchange(o.ops_, nullptr)) {}
  OpGuard& operator=(OpGuard&&) = delete;
  ~OpGuard() {
    if (ops_ != nullptr) Leave(*ops_);
  }

 private:
  friend class OutboxImpl;
  static constexpr uint32_t kClosedBit = 1u << 31;
  explicit OpGuard(std::atomic<uint32_t>* ops) : ops_(ops) {}
  static void Leave(std::atomic<uint32_t>& ops) {
    // The last call out of a closing Outbox wakes Close().
    if (ops.fetch_sub(1, std::memory_order_release) == (kClosedBit | 1)) ops.notify_all();
  }
  std::atomic<uint32_t>* ops_;
};

struct BusinessInfo {
  std::string name;
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  bool has_merge_operator = false;
};

class OutboxImpl {
 public:
  ~OutboxImpl();

  // Refuses new calls (kClosed), waits for the calls in flight, then closes.
  // Idempotent; concurrent calls wait for the first.
  Status Close() EXCLUDES(close_mu_);

  // Every public entry point (Outbox, Transaction::Commit, Relay passes,
  // CollectMetrics) holds a guard while it uses the database. Costs two atomic
  // increments, no lock. kClosed, naming `call` and the path, once Close began.
  [[nodiscard]] Result<OpGuard> Enter(std::string_view call) const {
    if (ops_.fetch_add(1, std::memory_order_acquire) & OpGuard::kClosedBit) {
      OpGuard::Leave(ops_);
      return tl::unexpected(ClosedError(call));
    }
    return OpGuard(&ops_);
  }
  bool closing() const { return (ops_.load(std::memory_order_acquire) & OpGuard::kClosedBit) != 0; }
  Error ClosedError(std::string_view call) const;

  // Ownership checks (kInvalidArgument naming the stream or family, the call
  // and the path): a stream or business family of another Outbox, or a
  // BusinessFamily not obtained from Outbox::FindBusinessFamily, is refused.
  Status CheckOwned(const StreamState& s, std::string_view call) const;
  Result<const BusinessInfo*> CheckOwned(const BusinessFamily& f, std::string_view call) const;

  Result<Stream*> FindStream(std::string_view name) const EXCLUDES(streams_mu_);
  std::vector<Stream*> Streams() const EXCLUDES(streams_mu_);
  internal::StreamConfig Resolve(const StreamOptions& o) const;

  // Syncs the WAL when some commit is not known durable; afterwards every
  // commit written before the call is durable (core/wal_syncer.h).
  Status MakeDurable() { return syncer->MakeDurable(); }
  // Makes every write made before the call durable (DB::SyncWAL under
  // kInterval until a write fails, else an empty synced write: see
  // outbox_impl.cc).
  Status SyncWal();

  // Wakes relays waiting in WaitForCommit: after a commit, an inline publish
  // or an operator action changed what is due.
  void WakeRelays() EXCLUDES(notify_mu_);
  uint64_t commit_epoch() const { return commit_epoch_.load(std::memory_order_acquire); }
  // Waits until commit_epoch() != seen, `deadline`, or Interrupt().
  void WaitForCommit(uint64_t seen, std::chrono::steady_clock::time_point deadline) EXCLUDES(notify_mu_);
  void InterruptWaiters() EXCLUDES(notify_mu_);

  // Calls each observer, isolating exceptions (reported to capture_error).
  template <class F>
  void Notify(F&& f) {
    for (const auto& o : options.observers) {
      try {
        f(*o);
      } catch (const std::exception& e) {
        Capture(Error(ErrorCode::kInternal, std::string("observer threw: ") + e.what()));
      } catch (...) {
        Capture(Error(ErrorCode::kInternal, "observer threw a non-standard exception"));
      }
    }
  }
  void Capture(const Error& e);
  // Passes `record` to options.logger when there is one and it wants the
  // level; an exception from it is dropped.
  void Log(const LogRecord& record) const;
  bool LogEnabled(LogLevel level) const { return options.logger && options.logger->Enabled(level); }

  Timestamp Now() const { return clock->Now(); }

  OutboxOptions options;
  std::shared_ptr<Clock> clock;
  // Commits stop at the free-space reserve (storage/disk_guard.h); it also
  // sizes env's log preallocation steps, so it is declared before env.
  std::unique_ptr<internal::DiskGuard> disk_guard;
  // The Env `db` runs on (storage/wal_env.h); declared first, so it outlives db.
  std::unique_ptr<rocksdb::Env> env;
  std::unique_ptr<rocksdb::DB> db;
  // Resumes writes after RocksDB stopped them; every write goes through it.
  std::shared_ptr<internal::WriteRecovery> recovery;
  rocksdb::ColumnFamilyHandle* meta_cf = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> owned_handles;
  std::map<std::string, BusinessInfo, std::less<>> business;
  DatabaseId id;
  std::unique_ptr<internal::Signer> signer;
  // The stream registry: adds a stream read or created by Open/OpenStream.
  Result<Stream*> AddStream(std::string name, rocksdb::ColumnFamilyHandle* cf, internal::StreamConfig config,
                            uint64_t hwm, uint64_t cursor, std::shared_ptr<internal::CleanerState> cleaner)
      EXCLUDES(streams_mu_);
  std::shared_ptr<internal::CleanerState> NewCleanerState(const std::string& name,
                                                          const internal::StreamConfig& config) const;
  internal::Mutex create_mu;  // serializes column family creation (Outbox::OpenStream, Inbox::Open)
  // The inbox's column family ("jaiminho.inbox", src/inbox/): opened by Open
  // when it exists, else created by the first Inbox::Open (then also in
  // owned_handles). Set under create_mu before any Inbox uses it.
  rocksdb::ColumnFamilyHandle* inbox_cf = nullptr;
  // The live Inbox's state (one Inbox per Outbox at a time), under create_mu.
  std::weak_ptr<void> inbox;

  // Parts built by the floors above (src/outbox/ wires them at Open): held
  // here, used through their own headers. Close runs stop_on_close, in order,
  // once the calls in flight are done and before the database closes.
  std::shared_ptr<Committer> committer;
  // Commit positions, shared syncs, the interval syncer (core/wal_syncer.h).
  std::unique_ptr<internal::WalSyncer> syncer;
  std::shared_ptr<InlinePublisher> inline_publisher;
  std::shared_ptr<internal::Cleaner> maintenance;  // Outbox::Clean and the maintenance pass
  std::vector<std::function<void()>> stop_on_close;
  Outbox* owner = nullptr;

 private:
  mutable internal::SharedMutex streams_mu_;
  std::map<std::string, std::unique_ptr<Stream>, std::less<>> streams_ GUARDED_BY(streams_mu_);

  // Waiters on commits (WaitForCommit) sleep on notify_cv_ with notify_mu_;
  // the epochs are atomics, read without it.
  internal::Mutex notify_mu_;
  internal::CondVar notify_cv_;
  std::atomic<uint64_t> commit_epoch_{0};
  std::atomic<uint64_t> interrupt_epoch_{0};
  std::atomic<int> waiters_{0};
  // Calls in flight (OpGuard), and OpGuard::kClosedBit once Close began.
  mutable std::atomic<uint32_t> ops_{0};
  internal::Mutex close_mu_;  // serializes Close
};

}  // namespace jaiminho
