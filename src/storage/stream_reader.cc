#include "storage/stream_reader.h"

#include <fmt/format.h>

#include <algorithm>

#include "storage/status.h"
#include "util/json.h"
#include "util/macros.h"

namespace jaiminho::internal {

bool IsSeqKeyedTag(char tag) {
  return std::any_of(kSeqKeyedStates.begin(), kSeqKeyedStates.end(), [tag](EventState s) { return TagOf(s) == tag; });
}

StateRange::StateRange(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, EventState state, SeqBounds bounds,
                       rocksdb::ReadOptions ro) {
  const char tag = TagOf(state);
  if (state == EventState::kRetrying) {
    lower_.bytes[0] = tag;
    lower_.size = 1;
    upper_ = TagEnd(tag);
  } else {
    lower_ = SeqKey(tag, bounds.from_seq);
    upper_ = bounds.end_seq ? SeqKey(tag, *bounds.end_seq) : TagEnd(tag);
  }
  lower_s_ = rocksdb::Slice(lower_.bytes, lower_.size);
  upper_s_ = rocksdb::Slice(upper_.bytes, upper_.size);
  ro.iterate_lower_bound = &lower_s_;
  ro.iterate_upper_bound = &upper_s_;
  it_.reset(db->NewIterator(ro, cf));
  it_->Seek(lower_s_);
}

StateRange::StateRange(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const rocksdb::ReadOptions& ro)
    : it_(db->NewIterator(ro, cf)) {
  it_->SeekToFirst();
}

void StateRange::Seek(std::string_view key) {
  it_->Seek(rocksdb::Slice(key.data(), key.size()));
}

Status StateRange::status(std::string_view what) const {
  return ToStatus(it_->status(), what);
}

namespace {

// CheckAlignedRecord with the key already decoded (`dk`, nullopt when
// malformed), into `r` (default-constructed).
void CheckDecoded(std::string_view stream, std::string_view key, std::optional<DecodedKey> dk,
                  std::string_view aligned_value, const DatabaseId& db, const Signer* signer, CheckedRecord& r) {
  r.value = aligned_value;
  r.key = dk;
  // The message is formatted (from the envelope's views) before the envelope goes.
  auto fail = [&r](RecordProblem p, std::string message) {
    r.envelope.reset();
    r.problem = p;
    r.error = Error(ErrorCode::kCorruption, std::move(message));
  };
  if (!r.key) {
    fail(RecordProblem::kBadKey, fmt::format("unrecognized key {} ({} bytes)", ToHex(key), key.size()));
    return;
  }
  // Decoded in place (the relay checks every record it reads); reset unless
  // it decodes and matches its key.
  DecodedEnvelope& d = r.envelope.emplace();
  if (auto st = DecodeEnvelopeInto(aligned_value, &d); !st) {
    r.envelope.reset();
    r.problem = RecordProblem::kCorrupt;
    r.error = std::move(st).error();
    return;
  }
  const Event& e = d.event;
  if (e.id.seq != r.key->seq) {
    fail(RecordProblem::kCorrupt, fmt::format("envelope has seq {} but is stored under seq {}", e.id.seq, r.key->seq));
    return;
  }
  if (d.stream != stream) {
    fail(RecordProblem::kCorrupt,
         fmt::format("envelope names stream '{}' but is stored in stream '{}'", d.stream, stream));
    return;
  }
  if (r.key->state == EventState::kRetrying && ToMicros(e.next_attempt_at) != r.key->due_us) {
    fail(RecordProblem::kCorrupt, fmt::format("retry key is due at {} but the envelope's next_attempt_at is {}",
                                              r.key->due_us, ToMicros(e.next_attempt_at)));
    return;
  }
  if (r.key->state == EventState::kSent && ToMicros(e.sent_at) == 0) {
    fail(RecordProblem::kCorrupt, "sent record without sent_at");
    return;
  }
  d.event.id.db = db;
  d.event.id.stream = stream;
  d.event.state = r.key->state;
  if (signer != nullptr && signer->verifies()) {
    if (auto v = signer->Verify(d, stream); !v) {
      r.problem = RecordProblem::kTampered;
      r.error = v.error();
    }
  }
  return;
}

}  // namespace

void CheckRecordInto(std::string_view stream, std::string_view key, std::string_view value, const DatabaseId& db,
                     AlignedArena& arena, const Signer* signer, CheckedRecord* out) {
  std::optional<DecodedKey> dk = DecodeKey(key);
  // A malformed key's value is not read.
  CheckDecoded(stream, key, dk, dk ? arena.Copy(value) : value, db, signer, *out);
}

CheckedRecord CheckRecord(std::string_view stream, std::string_view key, std::string_view value, const DatabaseId& db,
                          AlignedArena& arena, const Signer* signer) {
  CheckedRecord r;
  CheckRecordInto(stream, key, value, db, arena, signer, &r);
  return r;
}

CheckedRecord CheckAlignedRecord(std::string_view stream, std::string_view key, std::string_view aligned_value,
                                 const DatabaseId& db, const Signer* signer) {
  CheckedRecord r;
  CheckDecoded(stream, key, DecodeKey(key), aligned_value, db, signer, r);
  return r;
}

bool ApplyDelivered(CheckedRecord& r, const DeliveredView& delivered) {
  if (!r.key || r.key->state != EventState::kPending || r.key->seq >= delivered.cursor) return true;
  const PendingKeyState st = ClassifyPendingKey(r.key->seq, delivered.cursor, delivered.runs);
  if (st.kind == PendingKeyState::kGone) return false;
  r.key->state = EventState::kSent;
  if (r.envelope) {
    r.envelope->event.state = EventState::kSent;
    r.envelope->event.sent_at = FromMicros(st.sent_at_us);
  }
  return true;
}

bool IsBlockedHead(const Event& head, Timestamp now) {
  if (head.strategy != Strategy::kKeepOrder) return false;
  // Waiting for a handler counts no attempt (DeliveryBatch::MissingHandler).
  return head.attempts > 0 || head.note.starts_with("blocked: no handler") ||
         ToMicros(head.next_attempt_at) > ToMicros(now);
}

bool BlockedHeadWaits(const Event& head, Timestamp now) {
  return IsBlockedHead(head, now) && ToMicros(head.next_attempt_at) > ToMicros(now);
}

}  // namespace jaiminho::internal

namespace jaiminho::internal {

Result<Waiting> CountWaiting(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream,
                             uint64_t cursor) {
  Waiting w;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  AlignedArena arena;
  for (EventState state : {EventState::kPending, EventState::kRetrying, EventState::kParked}) {
    StateRange it(db, cf, state, {.from_seq = state == EventState::kPending ? cursor : 0}, ro);
    for (; it.Valid(); it.Next()) {
      ++w.events;
      auto d = DecodeEnvelope(arena.Copy(it.value()));
      w.bytes += d ? EventBytes(d->event) : it.value().size();
      arena.Reset();
    }
    JM_RETURN_IF_ERROR(it.status(fmt::format("count the {} events of stream '{}'", ToString(state), stream)));
  }
  return w;
}

}  // namespace jaiminho::internal
