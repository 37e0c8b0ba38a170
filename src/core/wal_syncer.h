// When writes become durable: positions in the commit write order, the syncs
// that cover them, and the interval syncer of Durability::kInterval.
//
// Every commit group the committer writes gets the next position
// (Written()); a sync that starts after a group's write covers it. Syncs are
// shared: a caller of SyncUpTo(p) while another sync is in flight waits for
// it and syncs again only when that one did not cover p. A stream's
// durable_seq moves with the syncs (MakeDurable), so the relay, which
// publishes durable events only, sees what it may publish.
//
// Thread-safety: every method is safe to call concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>

#include "jaiminho/result.h"
#include "util/mutex.h"

namespace jaiminho {

class OutboxImpl;

namespace internal {

class WalSyncer {
 public:
  explicit WalSyncer(OutboxImpl* outbox) : outbox_(outbox) {}
  ~WalSyncer() { Stop(); }
  WalSyncer(const WalSyncer&) = delete;
  WalSyncer& operator=(const WalSyncer&) = delete;

  // The committer, after a group's write and before it publishes the streams'
  // written_seq: the group's position.
  uint64_t Written() { return written_.fetch_add(1, std::memory_order_acq_rel) + 1; }
  // The committer, after a synced group write at `position`: everything up to
  // it is durable.
  void Synced(uint64_t position) EXCLUDES(mu_);

  uint64_t written() const { return written_.load(std::memory_order_acquire); }
  uint64_t durable() const { return durable_.load(std::memory_order_acquire); }
  // Syncs performed here (not counting the committer's synced writes).
  uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }

  // Returns once every write up to `position` is durable, syncing the log
  // when no sync in flight covers it.
  Status SyncUpTo(uint64_t position) EXCLUDES(mu_);
  // Makes every commit written before the call durable and moves the
  // streams' durable_seq to what it covered. No sync when nothing is new.
  Status MakeDurable() EXCLUDES(mu_);
  // Outbox::WaitDurable: with the interval syncer running, waits for it (at
  // most one interval), or returns the error of its next failed sync;
  // otherwise syncs (SyncUpTo).
  Status WaitDurable(uint64_t position) EXCLUDES(mu_);

  // Durability::kInterval: a thread that runs MakeDurable every `interval`
  // when something was written, then wakes the relays.
  void StartInterval(std::chrono::milliseconds interval) EXCLUDES(mu_);
  // Stops the thread (idempotent). Waiters of WaitDurable then sync themselves.
  void Stop() EXCLUDES(mu_);

 private:
  void Covered(uint64_t position) REQUIRES(mu_);
  // Whether a stream's durable_seq is behind its written_seq although every
  // write may be durable: a synced commit's sync covered other streams'
  // commits (it moves only its own streams), or the outbox was reopened
  // (durable_seq starts unknown). MakeDurable then moves them, syncing only
  // what is new.
  bool StreamsBehind() const;
  void Run(std::chrono::milliseconds interval) EXCLUDES(mu_);

  OutboxImpl* const outbox_;
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> durable_{0};
  std::atomic<uint64_t> syncs_{0};

  Mutex mu_;
  CondVar cv_;  // a sync finished, or the thread stops
  bool syncing_ GUARDED_BY(mu_) = false;
  bool interval_running_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  // The interval syncer's failed syncs, and the last one's error: a
  // WaitDurable caller returns it rather than wait for a sync that fails.
  uint64_t failures_ GUARDED_BY(mu_) = 0;
  std::optional<Error> last_failure_ GUARDED_BY(mu_);
  std::thread thread_;  // started and joined under run_mu_
  Mutex run_mu_;
};

}  // namespace internal
}  // namespace jaiminho
