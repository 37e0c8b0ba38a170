// Our resume policy after RocksDB stops writes (a failed WAL write, flush or
// MANIFEST write), and what each failure means for the caller.
//
// RocksDB's own recovery from ENOSPC (its SstFileManager) retries every 5 s
// and only once a whole write buffer (64 MiB by default) is free, so a small
// volume stays stuck until a restart. This listener turns that off for
// out-of-space errors and the next write asks RocksDB to resume instead
// (DB::Resume), which needs only the room to flush the memtables. Errors
// RocksDB cannot resume from in place become kFatal (close and reopen).
//
// Thread-safety: the listener callbacks come from RocksDB's threads; every
// method is safe to call concurrently.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/listener.h>

#include <atomic>
#include <string>
#include <string_view>

#include "jaiminho/result.h"
#include "util/mutex.h"

namespace jaiminho::internal {

class WriteRecovery final : public rocksdb::EventListener {
 public:
  explicit WriteRecovery(std::string path) : path_(std::move(path)) {}
  const char* Name() const override { return "JaiminhoWriteRecovery"; }

  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* error) EXCLUDES(mu_) override;
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status error, bool* auto_recovery) override;

  // Before a write: when RocksDB stopped writes, asks it to resume. OK when
  // writes may go on; kResourceExhausted while there is still no room;
  // kFatal when the instance cannot resume. `what`: "commit to /var/gw.db".
  Status ResumeIfStopped(rocksdb::DB* db, std::string_view what) EXCLUDES(resume_mu_, mu_);

  // The error a failed write reports to its caller (see result.h): kFatal when
  // RocksDB stopped for good, kResourceExhausted when out of space, else as
  // FromRocks maps it.
  Error WriteFailed(const rocksdb::Status& s, std::string_view what);

  // Whether any write or background job of this instance failed since open
  // (after one, DB::SyncWAL may sync a log writer that saw the error, which
  // Debian's RocksDB asserts on; see OutboxImpl::SyncWal).
  bool EverFailed() const { return ever_failed_.load(std::memory_order_acquire); }

  // Writes of `db` through one call: resume if needed, write, classify.
  Status Write(rocksdb::DB* db, const rocksdb::WriteOptions& options, rocksdb::WriteBatch* batch,
               std::string_view what);

 private:
  std::string Cause() const EXCLUDES(mu_);
  Error Fatal(std::string_view what, std::string_view detail) const EXCLUDES(mu_);

  const std::string path_;
  Mutex resume_mu_;  // one DB::Resume at a time
  std::atomic<bool> stopped_{false};
  std::atomic<bool> ever_failed_{false};
  std::atomic<bool> fatal_{false};
  mutable Mutex mu_;
  std::string cause_ GUARDED_BY(mu_);  // the background error that stopped writes
};

}  // namespace jaiminho::internal
