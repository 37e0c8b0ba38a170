// TransactionInternal: what the engine reads and writes of a Transaction, kept
// out of the public header (LevelDB's WriteBatchInternal). Floor 2 (src/LAYERS):
// used by commit/ (the committer patches seqs and signatures in place and adds
// the writes to its batch), delivery/inline.cc (claims and the committed
// envelopes) and outbox/ (Begin).
//
// Layout: one arena holds the business keys and values and each event's
// encoded envelope; an Op or a PendingEvent points into it by offset and size,
// so Enqueue appends bytes and one small record and allocates nothing else.
#pragma once

#include <array>
#include <cstdint>
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

class TransactionInternal {
 public:
  using Op = Transaction::Op;
  using PendingEvent = Transaction::PendingEvent;

  // An empty transaction of `outbox` (Outbox::Begin).
  static Transaction Begin(OutboxImpl* outbox) { return Transaction(outbox); }

  static const std::vector<Op>& Ops(const Transaction& t) { return t.ops_; }
  static const std::vector<PendingEvent>& Events(const Transaction& t) { return t.events_; }
  static std::vector<PendingEvent>& Events(Transaction& t) { return t.events_; }
  static const char* Arena(const Transaction& t) { return t.arena_.data(); }
  static char* Arena(Transaction& t) { return t.arena_.data(); }
  static size_t ArenaSize(const Transaction& t) { return t.arena_.size(); }
  // The encoded envelope of `e`, one of t's events.
  static std::string_view Envelope(const Transaction& t, const PendingEvent& e) {
    return std::string_view(t.arena_.data() + e.offset, e.size);
  }
};

}  // namespace jaiminho
