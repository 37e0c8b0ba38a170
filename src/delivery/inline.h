// Publish-on-commit: publishes the publish-on-commit events of a synced commit
// right after it, in the committing thread or on a dispatcher thread.
//
// Before the commit's batch is written, its publish-on-commit events are
// claimed in their stream's ClaimTable so that no relay pass publishes them at
// the same time; the claim is released once the outcome is written
// (core/claim_table.h states the protocol).
#pragma once

#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "jaiminho/transaction.h"
#include "util/mutex.h"

namespace jaiminho {

class OutboxImpl;
class StreamState;

class InlinePublisher {
 public:
  explicit InlinePublisher(OutboxImpl* outbox);
  ~InlinePublisher();

  bool enabled() const { return enabled_; }

  // Called by the commit leader before / after a failed write.
  void Claim(const Transaction& txn);
  void Unclaim(const Transaction& txn);

  // Called by the committing thread after a synced commit succeeded.
  void AfterCommit(const Transaction& txn) EXCLUDES(mu_);

  // Stops the dispatcher; queued events stay pending on disk for the relay.
  void Stop() EXCLUDES(mu_);

 private:
  struct Item {
    StreamState* stream;
    uint64_t seq;
    std::string bytes;  // the envelope as committed
  };
  void Deliver(std::vector<Item>& items) EXCLUDES(mu_, rng_mu_);
  void DispatchLoop() EXCLUDES(mu_);
  static void Release(StreamState& s, uint64_t seq);

  // Constant after construction.
  OutboxImpl* const outbox_;
  const bool enabled_;

  internal::Mutex rng_mu_;
  std::mt19937_64 rng_ GUARDED_BY(rng_mu_);

  // The dispatcher's queue; cv_ wakes it.
  internal::Mutex mu_;
  internal::CondVar cv_;
  // Guarded by mu_.
  std::deque<Item> queue_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;

  // The dispatcher (kDispatcherThread): started by the constructor, joined by
  // Stop (Close's stop_on_close, then the destructor: never at once).
  std::thread thread_;
};

}  // namespace jaiminho
