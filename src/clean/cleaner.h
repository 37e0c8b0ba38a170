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

#include "core/cleaner_state.h"

namespace jaiminho::internal {

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
