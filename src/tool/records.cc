#include "tool/records.h"

#include <fmt/format.h>

#include <algorithm>

#include "storage/status.h"
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

Record CheckRecord(std::string_view stream, std::string_view key, std::string_view value, const DatabaseId& db,
                   internal::AlignedArena& arena, const internal::Signer* signer) {
  Record r;
  r.stream = stream;
  r.raw_key = key;
  r.raw_value = value;
  r.key = internal::DecodeKey(key);
  if (!r.key) {
    r.error = fmt::format("unrecognized key {} ({} bytes)", internal::ToHex(key), key.size());
    return r;
  }
  auto d = internal::DecodeEnvelope(arena.Copy(value));
  if (!d) {
    r.error = d.error().message();
    return r;
  }
  const Event& e = d->event;
  if (e.id.seq != r.key->seq) {
    r.error = fmt::format("envelope has seq {} but is stored under seq {}", e.id.seq, r.key->seq);
    return r;
  }
  if (d->stream != stream) {
    r.error = fmt::format("envelope names stream '{}' but is stored in stream '{}'", d->stream, stream);
    return r;
  }
  if (r.key->state == EventState::kRetrying && ToMicros(e.next_attempt_at) != r.key->due_us) {
    r.error = fmt::format("retry key is due at {} but the envelope's next_attempt_at is {}", r.key->due_us,
                          ToMicros(e.next_attempt_at));
    return r;
  }
  if (r.key->state == EventState::kSent && ToMicros(e.sent_at) == 0) {
    r.error = "sent record without sent_at";
    return r;
  }
  if (auto s = VerifyAuthenticity(*d, stream, signer); !s) {
    r.error = s.error().message();
    return r;
  }
  r.event = std::move(d->event);
  r.event->id.db = db;
  r.event->id.stream = stream;
  r.event->state = r.key->state;
  return r;
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

Status ScanRecords(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream, const DatabaseId& db_id,
                   const RecordFilter& filter, const std::function<bool(const Record&)>& visit,
                   const internal::Signer* signer) {
  // Key ranges whose every record the filter rejects are skipped with one seek.
  auto range_wanted = [&](char tag) {
    if (filter.corrupt || filter.states.empty()) return true;
    for (EventState s : filter.states) {
      if (internal::TagOf(s) == tag) return true;
    }
    return false;
  };
  internal::AlignedArena arena;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekToFirst();
  while (it->Valid()) {
    std::string_view key = it->key().ToStringView();
    const char tag = key.empty() ? '\0' : key[0];
    const bool seq_keyed = tag == internal::kPendingTag || tag == internal::kSentTag || tag == internal::kParkedTag;
    if ((seq_keyed || tag == internal::kRetryTag) && !range_wanted(tag)) {
      internal::KeyBuf end = internal::TagEnd(tag);
      it->Seek(rocksdb::Slice(end.bytes, end.size));
      continue;
    }
    if (filter.from_seq > 0 && seq_keyed && key.size() == 9 &&
        internal::GetBigEndian64(key.data() + 1) < filter.from_seq) {
      internal::KeyBuf from = internal::SeqKey(tag, filter.from_seq);
      it->Seek(rocksdb::Slice(from.bytes, from.size));
      continue;
    }
    arena.Reset();
    Record r = CheckRecord(stream, key, it->value().ToStringView(), db_id, arena, signer);
    if (filter.Wants(r) && !visit(r)) return {};
    it->Next();
  }
  return internal::ToStatus(it->status(), fmt::format("read stream '{}'", stream));
}

}  // namespace jaiminho::tool
