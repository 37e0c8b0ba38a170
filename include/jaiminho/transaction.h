// Transaction: the program's own writes and the events that announce them,
// committed in one RocksDB WriteBatch: both, or neither.
//
//   jaiminho::Transaction txn = outbox->Begin();
//   if (auto s = txn.Put(devices, "dev/42", state); !s) return s;
//   if (auto s = txn.Enqueue(*telemetry, {.type = "reading.v1", .key = "dev/42", .payload = bytes}); !s) return s;
//   jaiminho::Result<jaiminho::Receipt> receipt = txn.Commit({.sync = true});
//
// Sequence numbers are assigned at commit, in commit order: a reader never sees
// seq N+1 of a stream while N may still commit. Concurrent commits are merged
// into one WriteBatch and one WAL sync (group commit).
//
// A failed operation (invalid argument) poisons the transaction: Commit then
// fails with that error, so a partial transaction is never written. A failed
// Commit (I/O error) writes nothing and assigns no seqs; the transaction keeps
// its content and may be committed again.
//
// Thread-safety: a Transaction is used by one thread at a time. Many
// transactions may commit concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/codec.h"
#include "jaiminho/event.h"
#include "jaiminho/options.h"
#include "jaiminho/result.h"

namespace rocksdb {
class ColumnFamilyHandle;
}

namespace jaiminho {

class Stream;
class OutboxImpl;

// A business column family, from Outbox::FindBusinessFamily(). Valid while the Outbox is
// open. Only values from Outbox::FindBusinessFamily (or copies of them) are accepted by
// that Outbox: a default-constructed or hand-made one, or one of another
// Outbox, is refused with kInvalidArgument.
struct BusinessFamily {
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  std::string_view name{};
  bool has_merge_operator = false;
  // The Outbox that returned it (opaque; set by Outbox::FindBusinessFamily).
  const void* owner = nullptr;
};

// What a successful Commit returns: the id of each enqueued event, in enqueue order.
struct Receipt {
  std::vector<EventId> events{};
  // Whether the commit was durable (its write-ahead log synced) when Commit
  // returned. When false, Outbox::WaitDurable(receipt) waits until it is.
  bool durable = false;
  // The commit's place in the write order (for Outbox::WaitDurable); 0 for an
  // empty transaction, which wrote nothing.
  uint64_t position = 0;
};

// Limits of Transaction::Enqueue (each is a kInvalidArgument naming the field):
inline constexpr size_t kMaxEventTypeBytes = 256;      // type: 1-256 bytes
inline constexpr size_t kMaxEventKeyBytes = 64 << 10;  // key: up to 64 KiB
inline constexpr size_t kMaxEventEncodingBytes = 256;  // encoding: up to 256 bytes
inline constexpr size_t kMaxEventHeaders = 64;         // headers: up to 64
// payload + every header's name and value: up to OutboxOptions::max_payload_bytes.
// Business keys and values (Put/Merge) are limited only by the transaction's
// total size (2 GiB) and RocksDB.

// Per-call options of Transaction::Emit.
struct EmitOptions {
  std::string_view key{};
  std::span<const Header> headers{};
  std::optional<Strategy> strategy{};
};

class Transaction {
 public:
  Transaction(Transaction&&) noexcept;
  Transaction& operator=(Transaction&&) noexcept;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // Business writes.
  [[nodiscard]] Status Put(const BusinessFamily& family, std::string_view key, std::string_view value);
  [[nodiscard]] Status Delete(const BusinessFamily& family, std::string_view key);
  // REQUIRES: the family was opened with a merge operator (else kInvalidArgument).
  [[nodiscard]] Status Merge(const BusinessFamily& family, std::string_view key, std::string_view value);

  // Adds an event to `stream`. Fails with kInvalidArgument when a field is out
  // of the limits above: the type is empty or longer than kMaxEventTypeBytes,
  // the key longer than kMaxEventKeyBytes (64 KiB), or the payload plus the
  // headers (names and values) exceed OutboxOptions::max_payload_bytes.
  [[nodiscard]] Status Enqueue(Stream& stream, const Message& message);

  // Encodes `value` with `codec` (default: Codec<T>{}; a codec with state is
  // used as given) and enqueues it with type `type` (the handler name).
  template <class T, class C = Codec<T>>
  requires CodecFor<C, T>
  [[nodiscard]] Status Emit(Stream& stream, std::string_view type, const T& value, EmitOptions options = {},
                            const C& codec = C{}) {
    const auto& encoded = codec.Encode(value);
    return Enqueue(stream, Message{.type = type,
                                   .key = options.key,
                                   .payload = std::string_view(encoded),
                                   .encoding = codec.kEncoding,
                                   .headers = options.headers,
                                   .strategy = options.strategy});
  }

  // Writes everything in one WriteBatch. See the class comment for failures.
  [[nodiscard]] Result<Receipt> Commit(CommitOptions options = {});

  // Forgets everything added so far.
  void Clear();

  size_t event_count() const;
  size_t op_count() const;
  // True when Commit would write nothing (no business write, no event, no
  // Inbox::Receive record).
  bool empty() const;

 private:
  // The representation (src/core/transaction_internal.h).
  friend class TransactionInternal;
  struct Op;
  struct PendingEvent;
  struct Hook;  // a participant in the commit (Inbox::Receive): core/transaction_internal.h
  explicit Transaction(OutboxImpl* outbox);

  Status Fail(Error e);
  uint32_t Append(std::string_view bytes);

  OutboxImpl* outbox_{};
  std::string arena_{};
  std::vector<Op> ops_;
  std::vector<PendingEvent> events_;
  std::vector<std::unique_ptr<Hook>> hooks_;
  std::optional<Error> error_{};
};

}  // namespace jaiminho
