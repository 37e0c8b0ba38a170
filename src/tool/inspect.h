// The state of each stream of a read-only database, for `streams` and `stats`.
//
//   auto db = tool::OpenForReading(path);
//   auto infos = tool::InspectStreams(**db, path, SystemClock()->Now());
//
// Thread-safety: a function; the ReadOnlyDb may be shared by readers.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "jaiminho/metrics.h"
#include "storage/meta.h"
#include "storage/open.h"

namespace jaiminho::tool {

struct StreamInfo {
  // Gauges read from disk (internal::ScanStream): pending, retrying,
  // parked_records, oldest_pending_age, blocked*. cursor is the persisted relay
  // cursor; last_seq the last seq assigned: the one recorded with the seq
  // reservation and at a clean close, or the highest found on disk (records,
  // or the cursor) when higher (a program running or stopped by a crash).
  // The counters (committed, published, ...) count inside the process that has
  // the database open and are always 0 here.
  StreamMetrics metrics{};
  // The stream's stored configuration (nullopt if it was never written).
  std::optional<internal::StreamConfig> config{};
  // Seqs below it may have been issued (the seq reservation); nullopt if none yet.
  std::optional<uint64_t> reserved{};
  // The metrics came from the process holding the database (its control
  // socket), not from the files: the strategy is known without `config`.
  bool live = false;
};

// Every stream in `streams` (names as given by SelectStreams), in that order.
Result<std::vector<StreamInfo>> InspectStreams(const internal::ReadOnlyDb& db, const std::vector<std::string>& streams,
                                               Timestamp now);

}  // namespace jaiminho::tool
