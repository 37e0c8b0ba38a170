#include "storage/delivery_log.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "storage/envelope.h"
#include "storage/status.h"
#include "util/json.h"
#include "util/macros.h"

namespace jaiminho::internal {
namespace {
constexpr uint8_t kRunVersion = 1;
constexpr size_t kRunValueSize = 17;
}  // namespace

KeyBuf RunKey(uint64_t first) {
  return SeqKey(kRunTag, first);
}

std::string EncodeRunValue(const SentRun& run) {
  std::string v(kRunValueSize, '\0');
  v[0] = static_cast<char>(kRunVersion);
  PutBigEndian64(v.data() + 1, run.last);
  PutBigEndian64(v.data() + 9, static_cast<uint64_t>(run.sent_at_us));
  return v;
}

Result<SentRun> DecodeRun(std::string_view key, std::string_view value) {
  if (key.size() != 9 || key[0] != kRunTag) {
    return MakeError(ErrorCode::kCorruption, fmt::format("malformed delivery-log key {}", ToHex(key)));
  }
  SentRun r;
  r.first = GetBigEndian64(key.data() + 1);
  if (value.size() != kRunValueSize || static_cast<uint8_t>(value[0]) != kRunVersion) {
    return MakeError(ErrorCode::kCorruption,
                     fmt::format("delivery-log record at seq {}: expected {} bytes of version {}, found {} bytes{}",
                                 r.first, kRunValueSize, kRunVersion, value.size(),
                                 value.empty() ? "" : fmt::format(" of version {}", static_cast<uint8_t>(value[0]))));
  }
  r.last = GetBigEndian64(value.data() + 1);
  r.sent_at_us = static_cast<int64_t>(GetBigEndian64(value.data() + 9));
  if (r.last < r.first) {
    return MakeError(ErrorCode::kCorruption,
                     fmt::format("delivery-log record at seq {} ends before it starts (last seq {})", r.first, r.last));
  }
  return r;
}

void SentRuns::Append(const SentRun& run) {
  runs_.push_back(run);
  // A relay appends in seq order; an out-of-order run (never written by this
  // library) is placed, so Find stays correct.
  if (runs_.size() > 1 && runs_[runs_.size() - 2].first > run.first) {
    std::sort(runs_.begin(), runs_.end(), [](const SentRun& a, const SentRun& b) { return a.first < b.first; });
  }
}

const SentRun* SentRuns::Find(uint64_t seq) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), seq, [](uint64_t s, const SentRun& r) { return s < r.first; });
  if (it == runs_.begin()) return nullptr;
  --it;
  return seq <= it->last ? &*it : nullptr;
}

void SentRuns::DropBelow(uint64_t seq) {
  auto it = std::find_if(runs_.begin(), runs_.end(), [&](const SentRun& r) { return r.last >= seq; });
  runs_.erase(runs_.begin(), it);
}

Result<SentRuns> ReadRuns(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream,
                          const rocksdb::Snapshot* snapshot) {
  SentRuns out;
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  KeyBuf end = TagEnd(kRunTag);
  rocksdb::Slice upper(end.bytes, end.size);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  for (it->Seek(rocksdb::Slice(&kRunTag, 1)); it->Valid(); it->Next()) {
    auto r = DecodeRun(it->key().ToStringView(), it->value().ToStringView());
    if (!r) return MakeError(ErrorCode::kCorruption, fmt::format("stream '{}': {}", stream, r.error().message()));
    out.Append(*r);
  }
  JM_RETURN_IF_ERROR(ToStatus(it->status(), fmt::format("read the delivery log of stream '{}'", stream)));
  return out;
}

Result<DeliveredView> ReadDelivered(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream,
                                    uint64_t cursor, const rocksdb::Snapshot* snapshot) {
  DeliveredView v;
  v.cursor = cursor;
  JM_ASSIGN_OR_RETURN(v.runs, ReadRuns(db, cf, stream, snapshot));
  return v;
}

PendingKeyState ClassifyPendingKey(uint64_t seq, uint64_t cursor, const SentRuns& runs) {
  if (seq >= cursor) return {PendingKeyState::kPending, 0};
  if (const SentRun* r = runs.Find(seq)) return {PendingKeyState::kSent, r->sent_at_us};
  return {PendingKeyState::kGone, 0};
}

}  // namespace jaiminho::internal
