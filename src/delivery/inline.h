// Publish-on-commit: publishes the publish-on-commit events of a synced commit
// right after it, in the committing thread or on a dispatcher thread.
//
// Before the commit's batch is written, its publish-on-commit events are
// claimed in their stream's ClaimTable so that no relay pass publishes them at
// the same time; the claim is released once the outcome is written
// (core/claim_table.h states the protocol).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "jaiminho/transaction.h"

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
  void AfterCommit(const Transaction& txn);

  // Stops the dispatcher; queued events stay pending on disk for the relay.
  void Stop();

 private:
  struct Item {
    StreamState* stream;
    uint64_t seq;
    std::string bytes;  // the envelope as committed
  };
  void Deliver(std::vector<Item>& items);
  void DispatchLoop();
  static void Release(StreamState& s, uint64_t seq);

  OutboxImpl* const outbox_;
  const bool enabled_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace jaiminho
