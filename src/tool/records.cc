#include "tool/records.h"

#include <fmt/format.h>

#include <algorithm>

#include "storage/status.h"
#include "storage/stream_reader.h"
#include "util/json.h"

namespace jaiminho::tool {

std::string_view Record::state_name() const {
  if (!ok() || !key) return "corrupt";
  return ToString(key->state);
}

Status VerifyAuthenticity(const internal::DecodedEnvelope& envelope, std::string_view stream,
                          const internal::Signer* signer) {
  if (signer == nullptr || !signer->verifies()) return {};
  return signer->Verify(envelope, stream);
}

namespace {
Record ToRecord(std::string_view stream, std::string_view key, std::string_view value, internal::CheckedRecord c) {
  Record r;
  r.stream = stream;
  r.raw_key = key;
  r.raw_value = value;
  r.key = c.key;
  if (!c.ok()) {
    r.error = c.error->message();
    return r;
  }
  r.event = std::move(c.envelope->event);
  return r;
}
}  // namespace

Record CheckRecord(std::string_view stream, std::string_view key, std::string_view value, const DatabaseId& db,
                   internal::AlignedArena& arena, const internal::Signer* signer) {
  return ToRecord(stream, key, value, internal::CheckRecord(stream, key, value, db, arena, signer));
}

bool RecordFilter::Wants(const Record& r) const {
  if (!r.ok()) {
    if (!states.empty() && !corrupt) return false;
    if (from_seq > 0 && (!r.key || r.key->seq < from_seq)) return false;
    return type.empty();
  }
  if ((!states.empty() || corrupt) && std::find(states.begin(), states.end(), r.key->state) == states.end()) {
    return false;
  }
  if (r.key->seq < from_seq) return false;
  return type.empty() || r.event->type == type;
}

Result<internal::DeliveredView> DeliveredOf(const internal::ReadOnlyDb& db, const std::string& stream) {
  uint64_t cursor = 0;
  if (auto it = db.snapshot.streams.find(stream); it != db.snapshot.streams.end()) cursor = it->second.cursor;
  return internal::ReadDelivered(db.db.get(), db.Family(std::string(internal::kStreamFamilyPrefix) + stream), stream,
                                 cursor);
}

Status ScanRecords(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream, const DatabaseId& db_id,
                   const internal::DeliveredView& delivered, const RecordFilter& filter,
                   const std::function<bool(const Record&)>& visit, const internal::Signer* signer) {
  // Key ranges whose every record the filter rejects are skipped with one seek.
  auto range_wanted = [&](char tag) {
    if (filter.corrupt || filter.states.empty()) return true;
    for (EventState s : filter.states) {
      if (internal::TagOf(s) == tag) return true;
      // Delivered events stay under their pending key (format 2).
      if (s == EventState::kSent && tag == internal::kPendingTag) return true;
    }
    return false;
  };
  // The first seq worth reading in a seq-keyed range: the pending keys below
  // the delivered cursor hold delivered events only, which a filter that wants
  // neither sent nor bad records would read and drop one by one.
  const bool delivered_wanted =
      filter.corrupt || filter.states.empty() ||
      std::find(filter.states.begin(), filter.states.end(), EventState::kSent) != filter.states.end();
  auto first_seq = [&](char tag) {
    if (tag == internal::kPendingTag && !delivered_wanted) return std::max(filter.from_seq, delivered.cursor);
    return filter.from_seq;
  };
  internal::AlignedArena arena;
  internal::StateRange it(db, cf);  // the whole family: malformed keys are records too
  while (it.Valid()) {
    std::string_view key = it.raw_key();
    const char tag = key.empty() ? '\0' : key[0];
    const bool seq_keyed = internal::IsSeqKeyedTag(tag);
    if ((seq_keyed || tag == internal::kRetryTag) && !range_wanted(tag)) {
      it.Seek(internal::TagEnd(tag).view());
      continue;
    }
    if (seq_keyed && key.size() == 9 && internal::GetBigEndian64(key.data() + 1) < first_seq(tag)) {
      it.Seek(internal::SeqKey(tag, first_seq(tag)).view());
      continue;
    }
    if (tag == internal::kRunTag) {
      // The delivery log (storage/delivery_log.h) holds no event; a malformed
      // run record is a bad record.
      if (auto run = internal::DecodeRun(key, it.value()); !run) {
        Record r;
        r.stream = stream;
        r.raw_key = key;
        r.raw_value = it.value();
        r.error = run.error().message();
        if (filter.Wants(r) && !visit(r)) return {};
      }
      it.Next();
      continue;
    }
    arena.Reset();
    internal::CheckedRecord c = internal::CheckRecord(stream, key, it.value(), db_id, arena, signer);
    if (internal::ApplyDelivered(c, delivered)) {
      Record r = ToRecord(stream, key, it.value(), std::move(c));
      if (filter.Wants(r) && !visit(r)) return {};
    }
    it.Next();
  }
  return it.status(fmt::format("read stream '{}'", stream));
}

}  // namespace jaiminho::tool
