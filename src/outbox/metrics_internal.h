// The on-disk part of stream metrics, shared by CollectMetrics and the tool.
#pragma once

#include <rocksdb/db.h>

#include "jaiminho/metrics.h"

namespace jaiminho::internal {

// Fills pending, retrying, parked_records, oldest_pending_age and the blocked
// fields of `m` by reading stream family `cf` from `cursor`, and bytes_on_disk
// from the family's RocksDB properties.
Status ScanStream(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, uint64_t cursor, Timestamp now, StreamMetrics* m);

}  // namespace jaiminho::internal
