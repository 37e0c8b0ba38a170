// Opening databases: path checks, column family options, the read-only probe.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "jaiminho/event.h"
#include "jaiminho/options.h"
#include "jaiminho/result.h"
#include "storage/meta.h"

namespace jaiminho::internal {

enum class PathKind { kMissing, kEmptyDirectory, kDatabase };

// Classifies `path` without changing anything. kNotADatabase when it is a file,
// or a non-empty directory without a RocksDB CURRENT file; kCorruption when
// such a directory holds RocksDB data (a write-ahead log or table file): a
// database whose CURRENT was deleted.
Result<PathKind> ClassifyPath(const std::string& path);

// Creates the missing ancestors of `path` (not `path` itself: RocksDB creates
// the database directory). The error names the ancestor that could not be made.
Status CreateParentDirectories(const std::string& path);

// The process holding the RocksDB LOCK of `path`, when another process does.
std::optional<long> LockHolderPid(const std::string& path);

// A rocksdb::Logger that discards everything (for opens that must not write a LOG file).
std::shared_ptr<rocksdb::Logger> NullLogger();

// Everything stored in jaiminho.meta.
struct StreamMeta {
  std::optional<StreamConfig> config;  // absent if the stream was created but its config never written
  std::optional<uint64_t> hwm;
  uint64_t cursor = 0;
  std::optional<uint64_t> last;  // the last seq assigned, as of the last reservation or clean close
};
struct MetaSnapshot {
  uint32_t format = 0;  // 0: created but never initialized (empty jaiminho.meta)
  DatabaseId id;
  std::map<std::string, StreamMeta, std::less<>> streams;
};

// Reads and verifies the meta column family.
Result<MetaSnapshot> ReadMeta(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta, const std::string& path);

// Refuses a format this library cannot read.
Status CheckFormat(uint32_t format, const std::string& path);

// Classifies why RocksDB could not read the database at `path` (CURRENT and
// the MANIFEST it names): kCorruption naming the path and the damaged or
// missing file; an I/O error (a permission, a full disk) as FromRocks maps it.
Error DamagedDatabase(const std::string& path, const rocksdb::Status& s);

// Lists column families of an existing database; kNotADatabase when it has no
// jaiminho.meta family, kCorruption when CURRENT or its MANIFEST is damaged.
Result<std::vector<std::string>> ListJaiminhoFamilies(const std::string& path, const rocksdb::DBOptions& options);

// Streams named by column families ("jaiminho.stream.<name>" -> "<name>").
std::optional<std::string> StreamOfFamily(std::string_view family);

// Read-only access to a database without writing anything into it (no LOG file,
// no lock): what the tool's read commands and Outbox::Open's probe use. With
// `secondary_path`, opens a secondary instance that can follow a live writer.
struct ReadOnlyDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // owned, same order as names
  std::vector<std::string> names;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  MetaSnapshot snapshot;
  ~ReadOnlyDb();
  rocksdb::ColumnFamilyHandle* Family(std::string_view name) const;
};
Result<std::unique_ptr<ReadOnlyDb>> OpenReadOnly(const std::string& path, rocksdb::Env* env = nullptr,
                                                 const std::string& secondary_path = "");

}  // namespace jaiminho::internal
