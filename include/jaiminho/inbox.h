// Inbox: exactly-once effects on the consuming side. Each event received is
// recorded in the same WriteBatch as the consumer's own writes, so "processed"
// and the effect commit together, or neither does.
//
//   auto inbox = jaiminho::Inbox::Open(*outbox);          // the consumer's database
//   jaiminho::Transaction txn = outbox->Begin();
//   auto outcome = (*inbox)->Receive(txn, message_id);    // "<db hex>/<stream>/<seq>"
//   if (!outcome) return outcome.error();                  // a bad id: kInvalidArgument
//   if (*outcome == jaiminho::ReceiveOutcome::kNew) {
//     if (auto s = txn.Put(orders, key, value); !s) return s;   // the handler's writes
//     if (auto r = txn.Commit(); !r) return r.error();          // then acknowledge
//   }   // kDuplicate: acknowledge without running the handler (drop txn: nothing written)
//
// A handler failure: do not commit (drop or Clear() the transaction); nothing
// is recorded and a redelivery is kNew again.
//
// State, per (producer database id, stream): a watermark (every seq at or
// below it was received or is in a reported gap), the seqs received above it
// (publish-on-commit streams arrive out of order), which fold into the
// watermark as the holes fill, and the reported gaps. A hole is declared a gap
// (the watermark moves past it, it is logged and listed by State()) when a seq
// more than InboxOptions::horizon_seqs above it was received, or, when a seq of
// the stream is recorded, the hole has waited longer than horizon_age. A late
// event inside a reported gap is still kNew (and leaves the gap list).
//
// Bounds, per (database, stream): in memory and on disk one record of at most
// about 12 + horizon_seqs / 2 x 19 bytes above the watermark (ranges need a
// missing seq between them) + max_gap_ranges x 20 bytes of gaps; in practice
// (in order, or a few holes) about 10-40 bytes. Records are rewritten whole at
// each commit that receives an event of the stream.
//
// On disk: column family "jaiminho.inbox" (created by the first Open), one
// versioned, checksummed record per (database, stream): see README "Design".
//
// Thread-safety: an Inbox is safe for concurrent use. A Transaction is used by
// one thread at a time, as always. Two transactions receiving the same id at
// the same time: one gets kNew, the other kInFlight until the first commits
// (then kDuplicate) or is dropped (then kNew); so at most one effect commits.
// One Inbox per Outbox at a time (a second Open is kBusy). Destroy the Inbox
// before its Outbox; transactions holding received ids keep what they need.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/event.h"
#include "jaiminho/result.h"
#include "jaiminho/transaction.h"

namespace jaiminho {

class Outbox;

enum class ReceiveOutcome : uint8_t {
  kNew = 1,         // recorded in the transaction: run the handler, then commit
  kDuplicate = 2,   // received and committed before: skip the handler
  kOutOfOrder = 3,  // keep-order: a seq beyond watermark + 1; nothing recorded (do not acknowledge)
  kInFlight = 4,    // another open transaction received it and has not committed or been dropped:
                    // nothing recorded (do not acknowledge; a redelivery asks again)
};
std::string_view ToString(ReceiveOutcome o);  // "new", "duplicate", "out of order", "in flight"

struct InboxOptions {
  // A missing seq is declared a gap once a seq more than this above it was
  // received: bounds what is kept above the watermark. 1 .. 1<<20.
  uint64_t horizon_seqs = 4096;
  // A missing seq is declared a gap once it has waited this long (from the
  // arrival of the first seq above it), checked when the stream records a
  // seq. Zero: no age limit.
  std::chrono::microseconds horizon_age = std::chrono::minutes(10);
  // Reported gaps kept per (database, stream); beyond it the oldest leave the
  // list and are counted in InboxStreamState::forgotten (a late event in one
  // of them is then taken for a duplicate). 1 .. 1<<16.
  uint32_t max_gap_ranges = 1024;
  // Streams (by name, any producer database) received in order: a seq beyond
  // watermark + 1 is refused with kOutOfOrder. ReceiveOptions overrides it.
  std::vector<std::string> keep_order_streams{};
};

struct ReceiveOptions {
  // Overrides InboxOptions::keep_order_streams for this call.
  std::optional<bool> keep_order{};
};

struct SeqRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  bool operator==(const SeqRange&) const = default;
};

// What the inbox holds for one (producer database, stream), as committed.
struct InboxStreamState {
  DatabaseId db{};
  std::string stream{};
  uint64_t watermark = 0;         // every seq <= it was received or is in `gaps`
  std::vector<SeqRange> above{};  // received above the watermark (waiting for the holes below)
  std::vector<SeqRange> gaps{};   // reported gaps: skipped, never received (oldest first)
  uint64_t received = 0;          // seqs recorded (kNew committed)
  uint64_t gap_seqs = 0;          // seqs ever declared gaps (including ones received late)
  uint64_t forgotten = 0;         // seqs of gaps dropped from `gaps` (max_gap_ranges)
};

class Inbox {
 public:
  // Opens the inbox of `outbox`'s database, creating its column family on
  // first use, and reads its records. kInvalidArgument for a bad option,
  // kBusy when another Inbox of this Outbox is alive, kCorruption naming the
  // record when one fails verification, kClosed.
  [[nodiscard]] static Result<std::unique_ptr<Inbox>> Open(Outbox& outbox, InboxOptions options = {});
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  // Checks `id` and, when new, records it in `txn` (written by txn.Commit
  // with the transaction's other writes). kInvalidArgument (naming the id)
  // for seq 0, a bad stream name, or a transaction of another Outbox; kClosed.
  [[nodiscard]] Result<ReceiveOutcome> Receive(Transaction& txn, const EventId& id, ReceiveOptions options = {});
  // The same with an id as EventId::ToString() writes it: "<32 hex>/<stream>/<seq>".
  [[nodiscard]] Result<ReceiveOutcome> Receive(Transaction& txn, std::string_view raw_id, ReceiveOptions options = {});

  // Parses "<32 hex>/<stream>/<seq>"; the EventId's stream points into `raw_id`.
  // kInvalidArgument naming the id and what is wrong.
  [[nodiscard]] static Result<EventId> ParseEventId(std::string_view raw_id);

  // Every (database, stream) the inbox has recorded, by database then stream.
  std::vector<InboxStreamState> State() const;
  // One of them; nullopt when nothing of it was recorded.
  std::optional<InboxStreamState> State(const DatabaseId& db, std::string_view stream) const;

 private:
  class Core;
  explicit Inbox(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace jaiminho
