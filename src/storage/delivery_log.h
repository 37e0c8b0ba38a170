// The delivery log of a stream (on-disk format 2): how "sent" is stored without
// rewriting delivered events.
//
// An event stays under its pending key ('p' seq) when the relay delivers it.
// What is below the stream's cursor (meta "stream/<name>/cursor") and still
// under a 'p' key was delivered: every other outcome moves the record (retry,
// parked) or deletes it, in the batch that advances the cursor. With
// delete_after_send = false each relay batch writes one small run record, the
// seqs it acknowledged and when; a delivered event shows as sent with that
// run's sent_at until time_to_delete has passed, then the compaction filter
// drops the event and, once every event it covers is past time_to_delete, the
// run. A 'p' record below the cursor that no run covers was delivered with
// delete_after_send (or its run expired): nobody sees it, the filter drops it.
//
// ON-DISK FORMAT (stream column family), next to the keys of storage/keys.h:
//
//   'l' first(8, big-endian)  ->  version(1) = 1, last(8, BE), sent_at_us(8, BE)
//
// A run covers seqs first..last (inclusive); the seqs in it that were moved
// elsewhere have no 'p' key any more. Runs do not overlap; a relay writes them
// in seq order. Events delivered above the persisted cursor (past a seq that
// publish-on-commit is still publishing) are moved to the sent range as in
// format 1 instead ('s' seq), so the cursor alone says what was delivered.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/result.h"
#include "storage/keys.h"

namespace jaiminho::internal {

inline constexpr char kRunTag = 'l';

struct SentRun {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  int64_t sent_at_us = 0;
};

KeyBuf RunKey(uint64_t first);
std::string EncodeRunValue(const SentRun& run);
// kCorruption naming the key when the key or value is malformed or of an unknown version.
Result<SentRun> DecodeRun(std::string_view key, std::string_view value);

// The runs of a stream, sorted by first seq. Not thread-safe (copy it).
class SentRuns {
 public:
  // Adds a run after every run already held (a relay batch), merging nothing.
  void Append(const SentRun& run);
  // The run covering `seq`, if any.
  const SentRun* Find(uint64_t seq) const;
  // Drops runs that end below `seq` (they were dropped on disk).
  void DropBelow(uint64_t seq);
  const std::vector<SentRun>& runs() const { return runs_; }
  bool empty() const { return runs_.empty(); }

 private:
  std::vector<SentRun> runs_;
};

// Reads every run of a stream's column family.
Result<SentRuns> ReadRuns(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream,
                          const rocksdb::Snapshot* snapshot = nullptr);

// What the relay has delivered in a stream: the persisted cursor and the runs.
struct DeliveredView {
  uint64_t cursor = 0;
  SentRuns runs;
};
// The view of a stream whose persisted cursor is `cursor` (from jaiminho.meta).
Result<DeliveredView> ReadDelivered(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string_view stream,
                                    uint64_t cursor, const rocksdb::Snapshot* snapshot = nullptr);

// What a record under a 'p' key is, given the stream's cursor and runs.
struct PendingKeyState {
  enum Kind { kPending, kSent, kGone } kind = kPending;  // kGone: delivered and deleted or expired
  int64_t sent_at_us = 0;                                // kSent only
};
PendingKeyState ClassifyPendingKey(uint64_t seq, uint64_t cursor, const SentRuns& runs);

}  // namespace jaiminho::internal
