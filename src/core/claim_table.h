// ClaimTable: the publish-on-commit claim protocol of one stream, in one place.
//
// Publish-on-commit publishes an event from the committing thread (or the
// dispatcher) right after its commit; a relay pass must not publish it at the
// same time. The committer claims the event's seq before the commit is
// visible (Claim, before the write); the InlinePublisher releases it after the
// outcome is written (Release: deleted, marked sent, or moved to the retry
// range), or when the write failed. A crash in between leaves the event pending
// on disk, and the relay delivers it after restart (at-least-once).
//
// Invariant: during a relay pass, Snapshot() holds every seq that
// publish-on-commit is publishing, and every seq it released since the pass
// last created its iterators (their snapshot may still show the record as
// pending). The pass skips those seqs and never persists a cursor past the
// lowest of them, so a crash before an inline outcome is written leaves the
// event to the next process's relay. It holds because a claim is made before
// its commit is visible and released only after its outcome is written, and a
// release during a pass is kept (as resolved) until the pass is about to
// create new iterators (IteratorsCreating) or ends (EndPass).
//
// Thread-safe: each call takes the table's own mutex; Snapshot reads a
// lock-free flag first, so a stream without claims costs no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "util/mutex.h"

namespace jaiminho::internal {

class ClaimTable {
 public:
  // --- Publish-on-commit side.
  // The seq is being published inline; relay passes skip it.
  void Claim(uint64_t seq) EXCLUDES(mu_);
  // The inline outcome of `seq` is written (or its commit failed).
  void Release(uint64_t seq) EXCLUDES(mu_);

  // --- Relay side. REQUIRES: the stream's delivery_mu held (one pass at a time).
  void BeginPass() EXCLUDES(mu_);
  void EndPass() EXCLUDES(mu_);
  // Called right before the pass creates new iterators: a release before this
  // point cannot show in them.
  void IteratorsCreating() EXCLUDES(mu_);
  // Sets `out` to the seqs the pass must not touch, sorted: the claims, and
  // the releases since IteratorsCreating at or above `cursor` (a released seq
  // below the cursor cannot show in the pending iterator, which stands at or
  // past it; a retry record is written only by its claim's owner before the
  // release, so the relay owns it). Cheap when there are none.
  void Snapshot(uint64_t cursor, std::vector<uint64_t>& out) EXCLUDES(mu_);

 private:
  Mutex mu_;
  // Guarded by mu_.
  std::vector<uint64_t> claimed_ GUARDED_BY(mu_);
  std::vector<uint64_t> resolved_ GUARDED_BY(mu_);  // released during a pass
  bool pass_in_progress_ GUARDED_BY(mu_) = false;

  std::atomic<bool> any_{false};  // claimed_ or resolved_ not empty; read without mu_
};

}  // namespace jaiminho::internal
