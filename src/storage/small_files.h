// Small SST files left by restarts, merged before they pile up.
//
// Each Open flushes what the write-ahead log recovered into one small SST file
// per family with data. Level compaction moves such files down without
// merging them when their key ranges do not overlap (a stream's seqs only
// grow), so a database that is opened, written a little and closed every day
// gains a file per family per restart, for ever, and each Open reads every
// file's footer. MergeSmallFiles counts a family's small files and, once
// there are more than kMaxSmallFiles, compacts them into one (RocksDB's
// CompactFiles, on the calling thread, through the family's compaction filter
// like any compaction).
//
// Thread-safety: call with the database open; safe beside background work
// (a file a background compaction holds makes the merge a no-op this time).
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <string>
#include <vector>

#include "jaiminho/result.h"

namespace jaiminho::internal {

// A file below this size counts as small.
inline constexpr uint64_t kSmallFileBytes = 4 << 20;
// More small files than this in one family are merged.
inline constexpr size_t kMaxSmallFiles = 6;

struct SmallFiles {
  std::vector<std::string> names;  // as CompactFiles takes them
  uint64_t bytes = 0;
  int output_level = 0;  // the deepest level among them
};

// The family's small files.
SmallFiles FindSmallFiles(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf);

// Merges the family's small files when there are more than kMaxSmallFiles and
// the volume has room for the merged copy (twice their size plus 16 MiB free,
// so a merge never meets a full disk). Returns how many files were merged (0
// when nothing was to do or there was no room); an error names the family.
Result<size_t> MergeSmallFiles(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& path);

}  // namespace jaiminho::internal
