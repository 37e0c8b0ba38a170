// Group commit: concurrent Commit calls are merged into one WriteBatch and one
// write (one WAL sync when any of them asks for sync). Seqs are assigned by the
// group's leader in queue order, and groups are written one at a time, so seqs
// become visible in commit order.
//
// The queue follows LevelDB's DBImpl::Write: each caller enqueues a Writer; the
// writer at the front is the leader, takes a group from the front of the queue,
// writes it without holding the mutex, then wakes the members and the next leader.
#pragma once

#include <rocksdb/write_batch.h>

#include <atomic>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "commit/drop_oldest.h"
#include "jaiminho/transaction.h"
#include "util/futex_state.h"
#include "util/mutex.h"

namespace jaiminho {

class OutboxImpl;
class StreamState;

class Committer {
 public:
  explicit Committer(OutboxImpl* outbox);

  // What a written commit knows: its place in the write order
  // (core/wal_syncer.h) and whether it was durable when written.
  struct Written {
    uint64_t position = 0;
    bool durable = false;
  };

  // Writes the transaction. On success every event of `txn` has its seq set.
  // `sync`: return only once the write is durable.
  Result<Written> Commit(Transaction& txn, bool sync) EXCLUDES(mu_);

 private:
  // A caller of Commit, queued in writers_. The leader fills result/error,
  // then publishes them with `state`; the writer waits on `state` without any
  // mutex (util/futex_state.h), so a wake-up costs at most one futex call and
  // the woken thread never contends for mu_ again.
  enum : uint32_t { kWaiting = 0, kLeader = 1, kDone = 2 };
  struct Writer {
    Transaction* txn = nullptr;
    bool sync = false;
    const std::vector<internal::DropPlan>* drops = nullptr;  // deleted in the same batch
    internal::FutexState state{kWaiting};
    Written result;
    std::optional<Error> error;
    uint32_t thread = 0;  // the committing thread's number (ThreadNumber())
  };
  // Before a synced group: waits briefly for the threads of the previous
  // group that are not queued yet (they were being woken and are on their way
  // back), so one sync serves them all instead of every other group
  // (PostgreSQL's commit_delay, bounded by a quarter of the last synced
  // write and by 20 us without a new writer, and skipped when no such thread
  // exists, as with a single thread).
  void Gather() EXCLUDES(mu_);
  // Hands `w` its outcome (or leadership) and wakes it.
  static void Wake(Writer* w, uint32_t state);

  // Assigns seqs, builds the batch and writes it. Called by the leader
  // without mu_, in these steps:
  Result<Written> WriteGroup(const std::vector<Writer*>& group, bool sync);
  // Gives the group's events their seqs (queue order) and signs them; fills
  // touched_ and saved_next_.
  void AssignSeqs(const std::vector<Writer*>& group);
  // Adds a new seq reservation for each touched stream that needs one; true
  // when it added any (the write must then be synced).
  bool ReserveSeqs();
  // Adds the group's operations and pending records to batch_.
  void AddWrites(const std::vector<Writer*>& group);
  // After a failed write: seqs back, claims released.
  void Undo(const std::vector<Writer*>& group, bool claimed);
  // After the write: reservations, counts, the group's position, written and
  // durable seqs.
  Written AfterWrite(bool sync);
  static size_t SizeOf(const Transaction& t);
  // kResourceExhausted when the transaction would take a stream past its
  // quota (StreamQuota, policy kReject).
  // The delivery locks of the streams whose oldest events a commit drops,
  // held from the plan until the commit is written (commit/drop_oldest.h).
  class HeldStreams {
   public:
    HeldStreams() = default;
    HeldStreams(const HeldStreams&) = delete;
    HeldStreams& operator=(const HeldStreams&) = delete;
    ~HeldStreams();
    void Hold(StreamState& s);

   private:
    std::vector<StreamState*> held_;
  };

  // Checks the transaction against its streams' quotas: kResourceExhausted
  // for a reject quota it would pass; for a drop-oldest quota, plans the drops
  // (in `drops`, their streams held in `held`). Logs when a stream starts and
  // stops refusing commits (once per change).
  Status CheckQuotas(const Transaction& t, std::vector<internal::DropPlan>& drops, HeldStreams& held);
  // A commit the stream's quota refuses: `e`, logged when the stream starts refusing.
  Status QuotaRefused(StreamState& s, Error e);
  // After the write: counters, signals and the log line of each drop.
  void Dropped(const std::vector<internal::DropPlan>& drops);
  // The free-space guard's verdict; logs when commits start and stop being
  // refused (once per change).
  Status AdmitToDisk(const Transaction& t);

  // Constant after construction.
  OutboxImpl* const outbox_;
  const std::string what_;  // "commit to <path>", for errors (formatted once: it cost 570 instructions a commit)

  // Set while the free-space guard refuses commits (for the log).
  std::atomic<bool> disk_refusing_{false};
  // Set while commit writes fail (a full disk, an I/O error), for the log.
  std::atomic<bool> write_failing_{false};
  // Steady-clock microseconds of the last flush the guard asked for.
  std::atomic<int64_t> last_reclaim_us_{0};
  // Bytes the guard admitted since that flush.
  std::atomic<uint64_t> admitted_since_reclaim_{0};

  internal::Mutex mu_;
  std::deque<Writer*> writers_ GUARDED_BY(mu_);
  std::atomic<size_t> queued_{0};  // writers_.size(), readable without mu_

  // Used by the leader only (the writer at the front of writers_), which
  // writes its group without mu_: a protocol, not a mutex.
  rocksdb::WriteBatch batch_;
  std::vector<StreamState*> touched_;
  std::vector<uint64_t> saved_next_;
  std::vector<uint64_t> touched_bytes_;  // per touched_ stream: the events' own bytes
  std::vector<uint64_t> new_hwm_;        // per touched_ stream; 0: no new reservation
  std::vector<uint32_t> group_threads_;  // the last synced group's threads, sorted
  std::vector<uint32_t> scratch_;
  int64_t last_sync_write_ns_ = 0;  // how long the last synced group write took
};

}  // namespace jaiminho
