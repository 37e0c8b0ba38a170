#include "tool/records.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <utility>

#include "storage/status.h"
#include "storage/stream_reader.h"
#include "util/json.h"
#include "util/macros.h"

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
    if (to_seq && (!r.key || r.key->seq > *to_seq)) return false;
    return type.empty() && !key && !since_us && !until_us;
  }
  if ((!states.empty() || corrupt) && std::find(states.begin(), states.end(), r.key->state) == states.end()) {
    return false;
  }
  if (r.key->seq < from_seq || (to_seq && r.key->seq > *to_seq)) return false;
  if (key && r.event->key != *key) return false;
  const int64_t created = ToMicros(r.event->created_at);
  if ((since_us && created < *since_us) || (until_us && created >= *until_us)) return false;
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

namespace {

// Whether a scan with `filter` must read the records keyed by `tag` at all.
bool RangeWanted(const RecordFilter& filter, char tag) {
  if (filter.corrupt || filter.states.empty()) return true;
  for (EventState s : filter.states) {
    if (internal::TagOf(s) == tag) return true;
    // Delivered events stay under their pending key (format 2).
    if (s == EventState::kSent && tag == internal::kPendingTag) return true;
  }
  return false;
}

// A copy of a record without a seq, visited after the stream's events.
struct Stray {
  std::string key;
  std::string value;
};

}  // namespace

Status ScanRecordsInSeqOrder(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream,
                             const DatabaseId& db_id, const internal::DeliveredView& delivered,
                             const RecordFilter& filter, const std::function<bool(const Record&)>& visit,
                             const internal::Signer* signer) {
  const std::string what = fmt::format("read stream '{}'", stream);
  const uint64_t last = filter.to_seq.value_or(UINT64_MAX);
  const bool delivered_wanted =
      filter.corrupt || filter.states.empty() ||
      std::find(filter.states.begin(), filter.states.end(), EventState::kSent) != filter.states.end();
  // Records without a seq inside the states' ranges (visited at the end, when
  // the filter can want them at all).
  const bool strays_wanted = filter.from_seq == 0 && !filter.to_seq;
  std::vector<Stray> strays;
  internal::AlignedArena arena;
  // Checks and visits one record; false when the visitor stopped.
  auto check_and_visit = [&](std::string_view key, std::string_view value) {
    arena.Reset();
    internal::CheckedRecord c = internal::CheckRecord(stream, key, value, db_id, arena, signer);
    if (!internal::ApplyDelivered(c, delivered)) return true;
    Record r = ToRecord(stream, key, value, std::move(c));
    return !filter.Wants(r) || visit(r);
  };

  // The retrying events' keys, by seq.
  std::vector<std::pair<uint64_t, std::string>> retrying;
  if (RangeWanted(filter, internal::kRetryTag)) {
    internal::StateRange r(db, cf, EventState::kRetrying);
    for (; r.Valid(); r.Next()) {
      auto k = r.key();
      if (!k) {
        if (strays_wanted) strays.push_back({std::string(r.raw_key()), std::string(r.value())});
        continue;
      }
      if (k->seq >= filter.from_seq && k->seq <= last) retrying.emplace_back(k->seq, std::string(r.raw_key()));
    }
    JM_RETURN_IF_ERROR(r.status(what));
    std::sort(retrying.begin(), retrying.end());
  }

  // The seq-keyed ranges, each read from its first wanted seq (the whole range,
  // keys of no known form included, when every seq is wanted).
  struct Head {
    char tag;
    std::unique_ptr<rocksdb::Iterator> it;
    internal::KeyBuf upper;
    rocksdb::Slice upper_s;
  };
  std::vector<std::unique_ptr<Head>> heads;
  for (EventState state : internal::kSeqKeyedStates) {
    const char tag = internal::TagOf(state);
    if (!RangeWanted(filter, tag)) continue;
    auto h = std::make_unique<Head>();
    h->tag = tag;
    h->upper = internal::TagEnd(tag);
    h->upper_s = rocksdb::Slice(h->upper.bytes, h->upper.size);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &h->upper_s;
    h->it.reset(db->NewIterator(ro, cf));
    uint64_t first = filter.from_seq;
    if (tag == internal::kPendingTag && !delivered_wanted) first = std::max(first, delivered.cursor);
    if (first == 0) {
      const char t[1] = {tag};
      h->it->Seek(rocksdb::Slice(t, 1));
    } else {
      auto k = internal::SeqKey(tag, first);
      h->it->Seek(rocksdb::Slice(k.bytes, k.size));
    }
    heads.push_back(std::move(h));
  }
  // The seq of a head's current key; keys of no known form are set aside first.
  auto seq_of = [&](Head& h) -> std::optional<uint64_t> {
    while (h.it->Valid()) {
      auto k = internal::DecodeKey(h.it->key().ToStringView());
      if (k) return k->seq <= last ? std::optional<uint64_t>(k->seq) : std::nullopt;
      if (strays_wanted) strays.push_back({h.it->key().ToString(), h.it->value().ToString()});
      h.it->Next();
    }
    return std::nullopt;
  };
  size_t next_retrying = 0;
  std::string value;
  while (true) {
    Head* best = nullptr;
    uint64_t best_seq = UINT64_MAX;
    for (auto& h : heads) {
      if (auto s = seq_of(*h); s && (best == nullptr || *s < best_seq)) {
        best = h.get();
        best_seq = *s;
      }
    }
    const bool retry_next =
        next_retrying < retrying.size() && (best == nullptr || retrying[next_retrying].first < best_seq);
    if (retry_next) {
      const std::string& key = retrying[next_retrying++].second;
      rocksdb::Status st = db->Get(rocksdb::ReadOptions(), cf, key, &value);
      if (st.IsNotFound()) continue;  // cannot happen in a read-only view
      JM_RETURN_IF_ERROR(internal::ToStatus(st, what));
      if (!check_and_visit(key, value)) return {};
      continue;
    }
    if (best == nullptr) break;
    if (!check_and_visit(best->it->key().ToStringView(), best->it->value().ToStringView())) return {};
    best->it->Next();
  }
  for (auto& h : heads)
    JM_RETURN_IF_ERROR(internal::ToStatus(h->it->status(), what));

  if (!strays_wanted) return {};
  for (const Stray& s : strays) {
    if (!check_and_visit(s.key, s.value)) return {};
  }
  // Keys outside the states' ranges: the delivery log (visited when malformed)
  // and keys of no known form.
  internal::StateRange it(db, cf);
  while (it.Valid()) {
    std::string_view key = it.raw_key();
    const char tag = key.empty() ? '\0' : key[0];
    if (internal::IsSeqKeyedTag(tag) || tag == internal::kRetryTag) {
      it.Seek(internal::TagEnd(tag).view());
      continue;
    }
    if (tag == internal::kRunTag) {
      if (auto run = internal::DecodeRun(key, it.value()); !run) {
        Record r;
        r.stream = stream;
        r.raw_key = key;
        r.raw_value = it.value();
        r.error = run.error().message();
        if (filter.Wants(r) && !visit(r)) return {};
      }
    } else if (!check_and_visit(key, it.value())) {
      return {};
    }
    it.Next();
  }
  return it.status(what);
}

}  // namespace jaiminho::tool
