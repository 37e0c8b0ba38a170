// Consistency checks of what is on disk, shared by Outbox::Open (which repairs
// and reports) and `jaiminho-tool verify` (which reports):
//
// - per stream, the meta records (seq reservation "hwm", relay cursor) against
//   the stream's keys: a reservation at or below a seq on disk would make new
//   commits reuse (overwrite) acknowledged events; in format 1, a cursor past a
//   pending key hides that event from the relay and the gauges;
// - the write-ahead log against the durable watermark recorded at the last
//   clean close (the DURABLE_FILE below): RocksDB's point-in-time recovery stops
//   silently at a truncated or corrupt WAL record, dropping everything after it.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/result.h"
#include "storage/open.h"

namespace jaiminho::internal {

// Where a stream's keys lie: the highest seq in any state range and the lowest
// pending ('p') seq. O(states) seeks, plus one scan of the retry range (its keys
// are ordered by due time, not seq).
struct StreamExtent {
  std::optional<uint64_t> highest_seq;
  std::optional<uint64_t> lowest_pending;
};
Result<StreamExtent> ScanStreamExtent(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream);

// The meta records of a stream checked against its extent.
struct StreamMetaCheck {
  uint64_t hwm = 1;     // repaired reservation: the next seq to issue
  uint64_t cursor = 0;  // repaired cursor
  bool hwm_changed = false;
  bool cursor_changed = false;
  std::vector<std::string> problems;  // one sentence each, naming the stream and the values
};
// `hwm` and `cursor` as read from jaiminho.meta (hwm 1 when absent), in a
// database of on-disk `format`. The repair never lets a seq be issued twice:
// the reservation goes up past every seq on disk and the cursor, with a margin
// (seqs issued and deleted since may have left no key). In format 1 no pending
// key is below the cursor, so the cursor goes down to the lowest pending seq;
// in format 2 the pending keys below the cursor are the delivered events
// (storage/delivery_log.h), so that is done only for a cursor past every seq
// ever issued (above the reservation and the highest seq on disk).
StreamMetaCheck CheckStreamMeta(std::string_view stream, uint64_t hwm, uint64_t cursor, const StreamExtent& extent,
                                uint32_t format);

// The durable watermark: kDurableFile in the database directory, a small text file
// (ON-DISK FORMAT: "jaiminho-durable 1 <rocksdb-sequence>\n"), written
// atomically at a clean close after the WAL is synced. Every RocksDB write with
// a sequence number up to it was durable.
inline constexpr std::string_view kDurableFile = "JAIMINHO-DURABLE";
std::optional<uint64_t> ReadDurableWatermark(const std::string& path);
Status WriteDurableWatermark(const std::string& path, uint64_t sequence);
// A problem sentence when the database recovered to `recovered` (its latest
// sequence number right after opening) below the watermark read before opening.
std::optional<std::string> CheckWal(const std::string& path, std::optional<uint64_t> watermark, uint64_t recovered);

}  // namespace jaiminho::internal
