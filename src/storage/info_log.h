// RocksDB's info log (its LOG file), written by jaiminho: never asserts, never
// fails, never blocks on a full disk.
//
// RocksDB's own LOG writer lives on the database's disk; Debian's librocksdb.a
// keeps its assertions, and after one failed LOG write on a full disk the next
// log line aborts the process (WritableFileWriter's sync_without_flush_called_).
// This logger keeps lines in a bounded in-memory ring, or appends them to a file
// the program names; a line it cannot write is dropped and counted.
//
// Thread-safety: RocksDB logs from many threads; every method is safe.
#pragma once

#include <rocksdb/env.h>

#include <cstdarg>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "jaiminho/logger.h"
#include "util/mutex.h"

namespace jaiminho::internal {

class InfoLog final : public rocksdb::Logger {
 public:
  // In-memory ring: the last lines, at most this many bytes.
  static constexpr size_t kMemoryBytes = 64 << 10;
  // A file is renamed to "<file>.old" (replacing it) when it would pass this.
  static constexpr uint64_t kMaxFileBytes = 4 << 20;

  // `file` empty: in memory. Lines below `level` are not logged. `forward`:
  // each line also goes to it (record "rocksdb", field line=...).
  InfoLog(std::string file, rocksdb::InfoLogLevel level, std::shared_ptr<jaiminho::Logger> forward = {});
  ~InfoLog() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) EXCLUDES(mu_) override;
  // Keeps the line's level for the forward logger.
  void Logv(rocksdb::InfoLogLevel level, const char* format, va_list ap) EXCLUDES(mu_) override;

  // The lines kept in memory, oldest first (empty in file mode).
  std::vector<std::string> Lines() const EXCLUDES(mu_);
  // Lines that could not be written to the file.
  uint64_t dropped() const EXCLUDES(mu_);

 private:
  void Append(std::string line) REQUIRES(mu_);
  void AppendToFile(const std::string& line) REQUIRES(mu_);

  // Constant after construction.
  const std::string file_;
  const std::shared_ptr<jaiminho::Logger> forward_;

  mutable Mutex mu_;
  // Guarded by mu_.
  std::deque<std::string> lines_ GUARDED_BY(mu_);
  size_t bytes_ GUARDED_BY(mu_) = 0;
  int fd_ GUARDED_BY(mu_) = -1;
  uint64_t file_size_ GUARDED_BY(mu_) = 0;
  uint64_t dropped_ GUARDED_BY(mu_) = 0;
};

}  // namespace jaiminho::internal
