// The cleaner: a RocksDB compaction filter that drops sent events older than
// their stream's time_to_delete, installed on every stream column family (and
// only there), plus the forced clean and the periodic maintenance that make it
// run on an idle database.
#pragma once

#include <rocksdb/compaction_filter.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/cleaner_state.h"
#include "jaiminho/outbox.h"
#include "util/mutex.h"

namespace jaiminho {
class OutboxImpl;
}

namespace jaiminho::internal {

// Decides one record. Removed: sent records ('s' keys) whose verified envelope
// has sent_at > 0 and sent_at < now - time_to_delete; delivered pending keys
// (below `delivered.cursor`) whose run has such a sent_at, or that no run
// covers (delivered with delete_after_send, or their run expired); runs below
// the cursor past time_to_delete. Everything else (pending, retrying, parked,
// malformed keys, corrupt values) is kept. Exposed for tests and the fuzzer.
bool ShouldDrop(std::string_view key, std::string_view value, int64_t now_us, int64_t ttd_us,
                const CleanerState::Delivered& delivered, bool* corrupt);

std::shared_ptr<rocksdb::CompactionFilterFactory> NewSentEventFilterFactory(std::shared_ptr<CleanerState> state);

// Options of a stream column family: the filter factory, a compaction trigger
// for files full of deletions (the queue head), periodic compaction.
rocksdb::ColumnFamilyOptions StreamFamilyOptions(const std::shared_ptr<CleanerState>& state);

// The forced clean (Outbox::Clean) and the periodic maintenance pass of one
// Outbox, with the thread that runs the pass every clean_interval.
// Clean and Maintain may run while the thread does.
class Cleaner {
 public:
  explicit Cleaner(OutboxImpl& outbox) : o_(outbox) {}
  ~Cleaner();

  // Flushes and compacts every stream (the delivered head and the sent range).
  Result<CleanReport> Clean();
  // Flushes every family (streams, meta, default, business): the memtables'
  // deleted and overwritten records are dropped in the flush and the
  // write-ahead log files they kept are given back.
  Status FlushAll();
  // One maintenance pass: syncs the WAL and records the durable watermark
  // (a failure there is reported, not returned), flushes stream memtables
  // holding data, then compacts the expired prefix of each stream's sent range.
  Status Maintain();

  // Runs Maintain every options.clean_interval on a thread until Stop().
  void Start() EXCLUDES(mu_);
  // Stops and joins the thread. Idempotent; Start() after it does nothing.
  void Stop() EXCLUDES(mu_);

 private:
  void Loop() EXCLUDES(mu_);
  // The families other than the streams (meta, default, business): their
  // writes keep write-ahead log files alive until they are flushed too.
  std::vector<rocksdb::ColumnFamilyHandle*> OtherFamilies() const;

  // Constant after construction.
  OutboxImpl& o_;

  Mutex mu_;
  CondVar cv_;  // wakes Loop for Stop
  // Guarded by mu_.
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_ GUARDED_BY(mu_);
};

}  // namespace jaiminho::internal
