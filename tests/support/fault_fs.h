// A RocksDB FileSystemWrapper for fault tests (public API: rocksdb/file_system.h).
//
//   auto fs = std::make_shared<FaultFileSystem>();
//   auto env = fs->NewEnv();
//   OutboxOptions o{.path = dir, .env = env.get()};
//   fs->FailWrites(FaultKind::kNoSpace);   // every Append/Sync now fails
//   fs->ClearFaults();
//
// Narrowing a fault: SetFaultFilter(".log") limits it to files whose path
// contains ".log" (the WAL); SkipFaults(n) lets the next n operations that would
// fail succeed (a fault "after n writes"); SetPartialAppends(true) makes a
// failing Append write the first half of its data first (a torn record, as a
// disk filling up mid-write leaves).
//
// Power loss: fs->Deactivate() makes every later write a silent no-op (as if
// the machine had stopped), the database object is then destroyed, and
// fs->DropUnsyncedData() truncates each file to what was last synced and
// removes files that were never synced: what a disk holds after a power cut.
// DropUnsyncedData(&rng) instead keeps a random part of each unsynced tail (the
// kernel may have written some pages back before the cut). DeactivateAfterSyncs(n)
// cuts the power right after the n-th next successful sync of a filtered file,
// DeactivateAfterAppends(n) after the n-th append: cut points that do not
// depend on timing.
//
// Thread-safety: all methods may be called concurrently with RocksDB's use.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <random>
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
  // Clears the faults of FailWrites and FailSyncs (not the filter, the skip
  // count or the partial-append setting).
  void ClearFaults() {
    write_fault_.store(FaultKind::kNone);
    sync_fault_.store(FaultKind::kNone);
  }
  uint64_t injected() const { return injected_.load(); }

  // Faults (and DeactivateAfterSyncs) apply only to files whose path contains
  // `substring`; empty means every file. Default: empty.
  void SetFaultFilter(std::string substring);
  // The next `n` operations that would fail succeed instead.
  void SkipFaults(uint64_t n) { skip_.store(static_cast<int64_t>(n)); }
  // A failing Append first writes the first half of its data.
  void SetPartialAppends(bool on) { partial_.store(on); }

  // Successful writes (appends, truncations) and syncs so far, on every file.
  uint64_t appends() const { return appends_.load(); }
  uint64_t syncs() const { return syncs_.load(); }

  // Power loss, see the file comment.
  void Deactivate() { active_.store(false); }
  bool active() const { return active_.load(); }
  void DeactivateAfterSyncs(uint64_t n) { deactivate_after_syncs_.store(static_cast<int64_t>(n)); }
  // The same after the n-th next successful append to a filtered file: the cut
  // then usually leaves unsynced data behind.
  void DeactivateAfterAppends(uint64_t n) { deactivate_after_appends_.store(static_cast<int64_t>(n)); }
  // Returns how many bytes were dropped; reactivates the file system.
  uint64_t DropUnsyncedData() { return DropUnsyncedData(nullptr); }
  // With `rng`, keeps a random prefix of each file's unsynced tail.
  uint64_t DropUnsyncedData(std::mt19937_64* rng);

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
  rocksdb::IOStatus MaybeFail(const std::string& f, bool is_sync);
  bool partial_appends() const { return partial_.load(); }
  void Wrote(const std::string& f, uint64_t new_size);
  void Synced(const std::string& f);

 private:
  struct FileState {
    uint64_t size = 0;
    uint64_t synced = 0;
    bool ever_synced = false;
  };
  bool Matches(const std::string& f);

  std::atomic<FaultKind> write_fault_{FaultKind::kNone};
  std::atomic<FaultKind> sync_fault_{FaultKind::kNone};
  std::atomic<uint64_t> injected_{0};
  std::atomic<int64_t> skip_{0};
  std::atomic<bool> partial_{false};
  std::atomic<uint64_t> appends_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<bool> active_{true};
  std::atomic<int64_t> deactivate_after_syncs_{0};
  std::atomic<int64_t> deactivate_after_appends_{0};
  std::mutex mu_;
  std::string filter_;                      // guarded by mu_
  std::map<std::string, FileState> files_;  // guarded by mu_
};

}  // namespace jaiminho::testing
