// The drop-oldest quota policy (StreamQuota, QuotaPolicy::kDropOldest): the
// oldest undelivered events of a stream make room for a commit, deleted in
// the commit's own WriteBatch (atomic with it).
//
// Droppable: pending records from the cursor and retrying records, oldest
// seq first; never parked records (they wait for an operator) and never a seq
// publish-on-commit is publishing (core/claim_table.h). The plan drops at
// least 1% of each limit at a time, so the scan of the retry range that
// finding the oldest needs is amortized over many commits.
//
// Thread-safety: REQUIRES the stream's delivery_mu, held until the commit that
// carries the plan is written (no relay pass or operator action moves the
// records in between).
#pragma once

#include <cstdint>
#include <vector>

#include "core/outbox_impl.h"
#include "jaiminho/result.h"
#include "storage/keys.h"

namespace jaiminho::internal {

struct DropPlan {
  StreamState* stream = nullptr;
  std::vector<KeyBuf> keys;  // the records to delete
  uint64_t first_seq = 0, last_seq = 0;
  uint64_t events = 0, bytes = 0;  // bytes: the events' own (EventBytes)
};

// Plans the drops that let `adds_events` events of `adds_bytes` bytes into the
// stream's quota. An empty plan when they fit. kResourceExhausted (naming the
// stream, usage and limit) when dropping every droppable record would not be
// enough (parked records fill the quota).
Result<DropPlan> PlanDrop(OutboxImpl& o, StreamState& s, uint64_t adds_events, uint64_t adds_bytes)
    REQUIRES(s.delivery_mu);

}  // namespace jaiminho::internal
