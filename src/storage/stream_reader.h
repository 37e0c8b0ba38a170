// Reading the records of a stream family: one bounded reader of a state's key
// range (StateRange), one definition of a good record (CheckRecord), the
// seq-keyed states, and when a keep-order head blocks its stream. The relay,
// the operator actions, the metrics, the cleaner and the tool all read
// through these, so they agree on what they see.
//
//   StateRange pending(db, cf, EventState::kPending, {.from_seq = cursor});
//   AlignedArena arena;
//   for (; pending.Valid(); pending.Next()) {
//     CheckedRecord r = CheckRecord(stream, pending.raw_key(), pending.value(), db_id, arena, signer);
//     if (r.ok()) Use(r.envelope->event);  // id and state filled
//   }
//   JM_RETURN_IF_ERROR(pending.status("read pending"));
//
// Thread-safety: a StateRange and an AlignedArena belong to one thread; the
// functions are thread-safe.
#pragma once

#include <rocksdb/db.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "jaiminho/event.h"
#include "jaiminho/result.h"
#include "sign/signer.h"
#include "storage/delivery_log.h"
#include "storage/envelope.h"
#include "storage/keys.h"

namespace jaiminho::internal {

// The states whose keys are tag + seq, in seq order (storage/keys.h); the
// retry range is ordered by due time instead. Every list of "the seq-keyed
// ranges" is this one. Ordered as a lookup by seq tries them (Outbox::Find).
inline constexpr std::array<EventState, 3> kSeqKeyedStates = {EventState::kPending, EventState::kParked,
                                                              EventState::kSent};
// Whether `tag` is the key tag of one of kSeqKeyedStates.
bool IsSeqKeyedTag(char tag);

// Which keys of a state a StateRange reads.
struct SeqBounds {
  // The first seq read (seq-keyed states only; the retry range always starts
  // at its first key).
  uint64_t from_seq = 0;
  // Seqs from here on are not read (seq-keyed states only); nullopt: to the
  // end of the state's range.
  std::optional<uint64_t> end_seq{};
};

// The keys of one state of a stream family (or of the whole family), in key
// order, positioned at its first key on construction. The iterator is bounded
// (iterate_lower_bound/iterate_upper_bound) and owns its bounds; it reads the
// implicit snapshot taken at construction unless `ro` names one.
// Not copyable or movable (RocksDB keeps pointers to the bounds).
class StateRange {
 public:
  StateRange(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, EventState state, SeqBounds bounds = {},
             rocksdb::ReadOptions ro = {});
  // Every key of the family, malformed ones included (for verify and dump).
  StateRange(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const rocksdb::ReadOptions& ro = {});
  StateRange(const StateRange&) = delete;
  StateRange& operator=(const StateRange&) = delete;

  bool Valid() const { return it_->Valid(); }
  void Next() { it_->Next(); }
  // Positions at the first key >= `key` (within the bounds).
  void Seek(std::string_view key);
  // Positions at the last key of the range; Prev() steps back from there.
  void SeekToLast() { it_->SeekToLast(); }
  void Prev() { it_->Prev(); }

  // REQUIRES: Valid(). Views valid until the range moves.
  std::string_view raw_key() const { return it_->key().ToStringView(); }
  std::string_view value() const { return it_->value().ToStringView(); }
  // The current key decoded; nullopt when it is malformed (verify reports it).
  std::optional<DecodedKey> key() const { return DecodeKey(raw_key()); }

  // The reading error, if any, as a Status naming `what` was being read.
  Status status(std::string_view what) const;

 private:
  KeyBuf lower_, upper_;
  rocksdb::Slice lower_s_, upper_s_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

// What waits for delivery in a stream: pending records from `cursor`, retrying
// and parked ones; events and their own bytes (EventBytes). A record that
// does not decode counts as an event of its stored size.
struct Waiting {
  uint64_t events = 0;
  uint64_t bytes = 0;
};
Result<Waiting> CountWaiting(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream,
                             uint64_t cursor);

// Why a record is not good. kTampered records decoded and match their key: the
// envelope is there (for parking) but must never be published.
enum class RecordProblem { kNone, kBadKey, kCorrupt, kTampered };

// One record of a stream family, checked by CheckRecord.
struct CheckedRecord {
  // The decoded key; nullopt when the key is none of the forms of storage/keys.h.
  std::optional<DecodedKey> key;
  // The value as read (the arena copy when it was copied).
  std::string_view value;
  // Set when the envelope decoded and matches its key (kNone and kTampered),
  // with event.id (db, stream, seq) and event.state filled.
  std::optional<DecodedEnvelope> envelope;
  RecordProblem problem = RecordProblem::kNone;
  // Why (kCorruption, or kTampered from the signer); set unless kNone.
  std::optional<Error> error;

  bool ok() const { return problem == RecordProblem::kNone; }
};

// "A good record", defined once. Checks one record stored in stream `stream`'s
// family: the key's form; the envelope (FlatBuffers verification and the field
// checks of DecodeEnvelope); that the envelope's seq and stream match the key
// and the family; that a retry key's due time is the envelope's
// next_attempt_at; that a sent record has sent_at; and, with a `signer` that
// verifies, the signature (kTampered). Without one, signatures are not checked
// (the operator actions, which must be able to requeue or skip a tampered
// record, pass none). The value is copied into `arena` (for alignment); views
// point into it, `key` and `stream`.
CheckedRecord CheckRecord(std::string_view stream, std::string_view key, std::string_view value, const DatabaseId& db,
                          AlignedArena& arena, const Signer* signer = nullptr);
// CheckRecord into `*out`, a default-constructed CheckedRecord: the relay
// checks every record it reads into its batch's slot, without a move.
void CheckRecordInto(std::string_view stream, std::string_view key, std::string_view value, const DatabaseId& db,
                     AlignedArena& arena, const Signer* signer, CheckedRecord* out);
// The same with a value already 8-byte aligned that outlives the result (not copied).
CheckedRecord CheckAlignedRecord(std::string_view stream, std::string_view key, std::string_view aligned_value,
                                 const DatabaseId& db, const Signer* signer = nullptr);

// Format 2 (storage/delivery_log.h): a good record under a pending key below
// the delivered cursor is a sent event. Sets its state (key and event) to
// kSent with its run's sent_at and returns true, or returns false when no run
// covers it (delivered with delete_after_send, or past time_to_delete): it is
// not shown, the compaction filter drops it. Other records are left as they are.
bool ApplyDelivered(CheckedRecord& r, const DeliveredView& delivered);

// "Blocked", defined once: a keep-order event at the head of the pending range
// stops its stream when it has failed (attempts > 0), waits for a handler, or
// has its next attempt still to come (next_attempt_at > now). The relay tries
// such a head again once next_attempt_at has passed (BlockedHeadWaits).
bool IsBlockedHead(const Event& head, Timestamp now);
// A blocked head whose next attempt is still to come: the relay stops before it.
bool BlockedHeadWaits(const Event& head, Timestamp now);

}  // namespace jaiminho::internal
