#include "tool/inspect.h"

#include <fmt/format.h>

#include <algorithm>

#include "outbox/metrics_internal.h"
#include "storage/check.h"
#include "storage/stream_reader.h"
#include "util/macros.h"

namespace jaiminho::tool {

Result<std::vector<StreamInfo>> InspectStreams(const internal::ReadOnlyDb& db, const std::vector<std::string>& streams,
                                               Timestamp now) {
  std::vector<StreamInfo> out;
  for (const std::string& name : streams) {
    rocksdb::ColumnFamilyHandle* cf = db.Family(std::string(internal::kStreamFamilyPrefix) + name);
    if (cf == nullptr) return MakeError(ErrorCode::kNotFound, fmt::format("no stream '{}'", name));
    StreamInfo info;
    info.metrics.stream = name;
    uint64_t last_assigned = 0;
    if (auto it = db.snapshot.streams.find(name); it != db.snapshot.streams.end()) {
      info.config = it->second.config;
      info.reserved = it->second.hwm;
      info.metrics.cursor = it->second.cursor;
      last_assigned = it->second.last.value_or(0);
    }
    if (info.config) {
      info.metrics.strategy = info.config->strategy;
      info.metrics.quota_max_events = info.config->quota.max_events;
      info.metrics.quota_max_bytes = info.config->quota.max_bytes;
      if (info.config->has_quota()) {
        JM_ASSIGN_OR_RETURN(internal::Waiting w, internal::CountWaiting(db.db.get(), cf, name, info.metrics.cursor));
        info.metrics.waiting_bytes = w.bytes;
      }
    }
    auto scanned = internal::ScanStream(db.db.get(), cf, info.metrics.cursor, now, &info.metrics);
    if (!scanned) {
      return MakeError(scanned.error().code(), fmt::format("stream '{}': {}", name, scanned.error().message()));
    }
    // The last seq assigned as recorded at the last reservation or clean
    // close, or the highest seq of any record of the family (or the cursor)
    // when a running or crashed program went past it.
    JM_ASSIGN_OR_RETURN(internal::StreamExtent extent, internal::ScanStreamExtent(db.db.get(), cf, name));
    info.metrics.last_seq = std::max(
        {last_assigned, extent.highest_seq.value_or(0), info.metrics.cursor > 0 ? info.metrics.cursor - 1 : 0});
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace jaiminho::tool
