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
#include <mutex>
#include <string>
#include <vector>

namespace jaiminho::internal {

class InfoLog final : public rocksdb::Logger {
 public:
  // In-memory ring: the last lines, at most this many bytes.
  static constexpr size_t kMemoryBytes = 64 << 10;
  // A file is renamed to "<file>.old" (replacing it) when it would pass this.
  static constexpr uint64_t kMaxFileBytes = 4 << 20;

  // `file` empty: in memory. Lines below `level` are not logged.
  InfoLog(std::string file, rocksdb::InfoLogLevel level);
  ~InfoLog() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;

  // The lines kept in memory, oldest first (empty in file mode).
  std::vector<std::string> Lines() const;
  // Lines that could not be written to the file.
  uint64_t dropped() const;

 private:
  void Append(std::string line);  // REQUIRES: mu_ held
  void AppendToFile(const std::string& line);

  const std::string file_;
  mutable std::mutex mu_;
  std::deque<std::string> lines_;  // guarded by mu_
  size_t bytes_ = 0;               // guarded by mu_
  int fd_ = -1;                    // guarded by mu_
  uint64_t file_size_ = 0;         // guarded by mu_
  uint64_t dropped_ = 0;           // guarded by mu_
};

}  // namespace jaiminho::internal
