// A RocksDB FileSystemWrapper for fault tests (public API: rocksdb/file_system.h).
//
//   auto fs = std::make_shared<FaultFileSystem>();
//   auto env = fs->NewEnv();
//   OutboxOptions o{.path = dir, .env = env.get()};
//   fs->FailWrites(FaultKind::kNoSpace);   // every Append/Sync now fails
//   fs->ClearFaults();
//
// Power loss: fs->Deactivate() makes every later write a silent no-op (as if
// the machine had stopped), the database object is then destroyed, and
// fs->DropUnsyncedData() truncates each file to what was last synced and
// removes files that were never synced: what a disk holds after a power cut.
//
// Thread-safety: all methods may be called concurrently with RocksDB's use.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace jaiminho::testing {

enum class FaultKind { kNone, kNoSpace, kIOError };

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  FaultFileSystem();
  const char* Name() const override { return "JaiminhoFaultFileSystem"; }
  std::unique_ptr<rocksdb::Env> NewEnv();

  // Writes (Append) and syncs fail with `kind` until ClearFaults().
  void FailWrites(FaultKind kind) { write_fault_.store(kind); }
  // Only syncs fail.
  void FailSyncs(FaultKind kind) { sync_fault_.store(kind); }
  void ClearFaults() {
    write_fault_.store(FaultKind::kNone);
    sync_fault_.store(FaultKind::kNone);
  }
  uint64_t injected() const { return injected_.load(); }

  // Power loss, see the file comment.
  void Deactivate() { active_.store(false); }
  bool active() const { return active_.load(); }
  // Returns how many bytes were dropped.
  uint64_t DropUnsyncedData();

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus RenameFile(const std::string& s, const std::string& t, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override;

  // Used by the file wrapper.
  rocksdb::IOStatus MaybeFail(bool is_sync);
  void Wrote(const std::string& f, uint64_t new_size);
  void Synced(const std::string& f);

 private:
  struct FileState {
    uint64_t size = 0;
    uint64_t synced = 0;
    bool ever_synced = false;
  };
  std::atomic<FaultKind> write_fault_{FaultKind::kNone};
  std::atomic<FaultKind> sync_fault_{FaultKind::kNone};
  std::atomic<uint64_t> injected_{0};
  std::atomic<bool> active_{true};
  std::mutex mu_;
  std::map<std::string, FileState> files_;
};

}  // namespace jaiminho::testing
