// The cleaner: a RocksDB compaction filter that drops sent events older than
// their stream's time_to_delete, installed on every stream column family (and
// only there), plus the forced clean and the periodic maintenance that make it
// run on an idle database.
#pragma once

#include <rocksdb/compaction_filter.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <string>

#include "jaiminho/clock.h"

namespace jaiminho::internal {

// Shared by a stream's filter factory and its StreamState.
struct CleanerState {
  CleanerState(std::string stream_name, std::shared_ptr<Clock> c, int64_t ttd_us)
      : stream(std::move(stream_name)), clock(std::move(c)), time_to_delete_us(ttd_us) {}
  const std::string stream;
  const std::shared_ptr<Clock> clock;
  std::atomic<int64_t> time_to_delete_us;
  std::atomic<uint64_t> removed{0};       // sent events dropped
  std::atomic<uint64_t> kept_corrupt{0};  // values that failed verification: kept
};

// time_to_delete in microseconds, saturated: a value beyond the int64
// microsecond range (about 292,000 years, e.g. seconds::max()) means "never".
inline int64_t TimeToDeleteMicros(std::chrono::seconds ttd) {
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1'000'000;
  if (ttd.count() >= kMaxSeconds) return std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(0, ttd.count()) * 1'000'000;
}

// Decides one record. Only sent records ('s' keys) whose verified envelope has
// sent_at > 0 and sent_at < now - time_to_delete are removed; everything else
// (pending, retrying, parked, malformed keys, corrupt values) is kept.
// Exposed for tests and the fuzzer.
bool ShouldDrop(std::string_view key, std::string_view value, int64_t now_us, int64_t ttd_us, bool* corrupt);

std::shared_ptr<rocksdb::CompactionFilterFactory> NewSentEventFilterFactory(std::shared_ptr<CleanerState> state);

// Options of a stream column family: the filter factory, a compaction trigger
// for files full of deletions (the queue head), periodic compaction.
rocksdb::ColumnFamilyOptions StreamFamilyOptions(const std::shared_ptr<CleanerState>& state);

}  // namespace jaiminho::internal
