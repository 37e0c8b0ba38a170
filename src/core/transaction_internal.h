// TransactionInternal: what the engine reads and writes of a Transaction, kept
// out of the public header (LevelDB's WriteBatchInternal). Floor 2 (src/LAYERS):
// used by commit/ (the committer patches seqs and signatures in place and adds
// the writes to its batch), delivery/inline.cc (claims and the committed
// envelopes) and outbox/ (Begin).
//
// Hooks: a participant in the commit (the inbox, src/inbox/) adds writes that
// depend on what earlier commits wrote. The group leader calls each hook's
// Prepare while it builds the group's batch, then Written or Unwritten once the
// batch's write is known, before the next group's leader starts: so every
// Prepare/Written/Unwritten of every transaction runs one at a time, in write
// order. A hook lives as long as the transaction's content (destroyed by
// Clear(), after a successful Commit, and with the transaction).
//
// Layout: one arena holds the business keys and values and each event's
// encoded envelope; an Op or a PendingEvent points into it by offset and size,
// so Enqueue appends bytes and one small record and allocates nothing else.
#pragma once

#include <rocksdb/write_batch.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/transaction.h"

namespace jaiminho {

struct Transaction::Op {
  enum class Type : uint8_t { kPut, kDelete, kMerge };
  Type type;
  rocksdb::ColumnFamilyHandle* family;
  uint32_t key_offset, key_size;
  uint32_t value_offset, value_size;
};

struct Transaction::PendingEvent {
  Stream* stream;
  Strategy strategy;
  uint32_t offset, size;           // envelope bytes in the arena
  uint32_t seq_field;              // offset of the seq scalar inside the envelope
  uint64_t seq;                    // assigned at commit
  uint32_t sig_field;              // offset of the signature bytes; 0 when unsigned
  std::array<uint8_t, 32> digest;  // of the signed fields, when signed
  uint64_t bytes;                  // the event's own bytes (storage/envelope.h EventBytes), for quotas
};

struct Transaction::Hook {
  Hook() = default;
  Hook(const Hook&) = delete;
  Hook& operator=(const Hook&) = delete;
  virtual ~Hook() = default;
  // Adds the hook's writes to the group's batch (leader only).
  virtual void Prepare(rocksdb::WriteBatch& batch) = 0;
  // The batch was written (leader only, in Prepare order).
  virtual void Written() = 0;
  // The batch's write failed: nothing of it was written (leader only). The
  // transaction keeps its hooks and may be committed again.
  virtual void Unwritten() = 0;
};

class TransactionInternal {
 public:
  using Op = Transaction::Op;
  using PendingEvent = Transaction::PendingEvent;

  // An empty transaction of `outbox` (Outbox::Begin).
  static Transaction Begin(OutboxImpl* outbox) { return Transaction(outbox); }

  static const std::vector<Op>& Ops(const Transaction& t) { return t.ops_; }
  static const std::vector<PendingEvent>& Events(const Transaction& t) { return t.events_; }
  static std::vector<PendingEvent>& Events(Transaction& t) { return t.events_; }
  using Hook = Transaction::Hook;
  static std::vector<std::unique_ptr<Hook>>& Hooks(Transaction& t) { return t.hooks_; }
  static const std::vector<std::unique_ptr<Hook>>& Hooks(const Transaction& t) { return t.hooks_; }
  // The engine the transaction belongs to.
  static const OutboxImpl* Owner(const Transaction& t) { return t.outbox_; }
  static const char* Arena(const Transaction& t) { return t.arena_.data(); }
  static char* Arena(Transaction& t) { return t.arena_.data(); }
  static size_t ArenaSize(const Transaction& t) { return t.arena_.size(); }
  // The encoded envelope of `e`, one of t's events.
  static std::string_view Envelope(const Transaction& t, const PendingEvent& e) {
    return std::string_view(t.arena_.data() + e.offset, e.size);
  }
};

}  // namespace jaiminho
