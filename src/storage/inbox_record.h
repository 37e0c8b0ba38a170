// Records of the jaiminho.inbox column family (the consumer side, src/inbox/).
// ON-DISK FORMAT: never change a byte value; a new layout takes a new version.
//
// One record per (producer database id, stream):
//
//   key    's' db_id(16) stream-name(1-128 bytes)
//   value  version(1) = 1
//          varint watermark, received, gap_seqs, forgotten
//          varint n_above, then n_above x
//                 (varint first - prev - 2, varint last - first, varint since_us)
//                 (prev: the watermark, then the previous range's last)
//          varint n_gaps, then n_gaps x (varint first - prev - 1, varint last - first)
//                 (prev: 0, then the previous gap's last)
//          crc32c(4, little-endian) of every byte before it
//
// `watermark`: every seq at or below it was received or is in a gap. `above`:
// the seqs received above it, as ranges (sorted, not touching, not touching
// the watermark), each with the time its earliest seq arrived. `gaps`: ranges
// at or below the watermark never received (reported gaps), sorted.
// `received` counts the seqs recorded, `gap_seqs` the seqs ever declared gaps,
// `forgotten` the seqs of gap ranges dropped from the list for its bound.
#pragma once

#include <rocksdb/options.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jaiminho/event.h"
#include "jaiminho/result.h"

namespace jaiminho::internal {

inline constexpr std::string_view kInboxFamily = "jaiminho.inbox";
inline constexpr char kInboxStateTag = 's';
inline constexpr uint8_t kInboxRecordVersion = 1;

struct InboxRange {
  uint64_t first = 0;
  uint64_t last = 0;     // inclusive
  int64_t since_us = 0;  // above ranges: when its earliest seq arrived; 0 for gaps
  bool operator==(const InboxRange&) const = default;
};

struct InboxRecord {
  uint64_t watermark = 0;
  std::vector<InboxRange> above;
  std::vector<InboxRange> gaps;
  uint64_t received = 0;
  uint64_t gap_seqs = 0;
  uint64_t forgotten = 0;
  bool operator==(const InboxRecord&) const = default;
};

std::string InboxKey(const DatabaseId& db, std::string_view stream);
// kCorruption naming the key (in hex) when it is not of the form above.
Result<std::pair<DatabaseId, std::string>> DecodeInboxKey(std::string_view key);

void EncodeInboxRecord(const InboxRecord& r, std::string* out);
// Verifies the version, the checksum and the structure (ranges sorted, within
// their bounds, no overflow); kCorruption naming `what` when bad.
Result<InboxRecord> DecodeInboxRecord(std::string_view value, std::string_view what);

// CRC-32C (Castagnoli) of `bytes`.
uint32_t Crc32c(std::string_view bytes);

// The inbox family's options: its few records are rewritten at every commit
// that receives an id, so the memtable updates them in place instead of
// adding a version per commit (a skiplist of versions of a few hot keys made
// the insert cost ~1 us; needs DBOptions::allow_concurrent_memtable_write off).
rocksdb::ColumnFamilyOptions InboxFamilyOptions();

}  // namespace jaiminho::internal
