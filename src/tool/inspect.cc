#include "tool/inspect.h"

#include <fmt/format.h>

#include "outbox/metrics_internal.h"
#include "storage/keys.h"
#include "storage/status.h"
#include "storage/stream_reader.h"
#include "util/macros.h"

namespace jaiminho::tool {
namespace {

// The highest seq of any record of the family: the last key of each seq-keyed
// range, and every retry key (that range is ordered by due time, not seq).
Result<uint64_t> HighestSeq(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& stream) {
  uint64_t high = 0;
  const std::string what = fmt::format("read stream '{}'", stream);
  for (EventState state : internal::kSeqKeyedStates) {
    internal::StateRange range(db, cf, state);
    range.SeekToLast();
    if (range.Valid()) {
      if (auto k = range.key()) high = std::max(high, k->seq);
    }
    JM_RETURN_IF_ERROR(range.status(what));
  }
  internal::StateRange retries(db, cf, EventState::kRetrying);
  for (; retries.Valid(); retries.Next()) {
    if (auto k = retries.key()) high = std::max(high, k->seq);
  }
  JM_RETURN_IF_ERROR(retries.status(what));
  return high;
}

}  // namespace

Result<std::vector<StreamInfo>> InspectStreams(const internal::ReadOnlyDb& db, const std::vector<std::string>& streams,
                                               Timestamp now) {
  std::vector<StreamInfo> out;
  for (const std::string& name : streams) {
    rocksdb::ColumnFamilyHandle* cf = db.Family(std::string(internal::kStreamFamilyPrefix) + name);
    if (cf == nullptr) return MakeError(ErrorCode::kNotFound, fmt::format("no stream '{}'", name));
    StreamInfo info;
    info.metrics.stream = name;
    if (auto it = db.snapshot.streams.find(name); it != db.snapshot.streams.end()) {
      info.config = it->second.config;
      info.reserved = it->second.hwm;
      info.metrics.cursor = it->second.cursor;
    }
    if (info.config) info.metrics.strategy = info.config->strategy;
    auto scanned = internal::ScanStream(db.db.get(), cf, info.metrics.cursor, now, &info.metrics);
    if (!scanned) {
      return MakeError(scanned.error().code(), fmt::format("stream '{}': {}", name, scanned.error().message()));
    }
    JM_ASSIGN_OR_RETURN(uint64_t high, HighestSeq(db.db.get(), cf, name));
    info.metrics.last_seq = std::max(high, info.metrics.cursor > 0 ? info.metrics.cursor - 1 : 0);
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace jaiminho::tool
