#include "storage/write_recovery.h"

#include <fmt/format.h>

#include "storage/status.h"

namespace jaiminho::internal {
namespace {
bool OutOfSpace(const rocksdb::Status& s) {
  return s.subcode() == rocksdb::Status::kNoSpace || s.subcode() == rocksdb::Status::kSpaceLimit;
}
}  // namespace

void WriteRecovery::OnBackgroundError(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status* error) {
  if (error == nullptr || error->ok()) return;
  ever_failed_.store(true, std::memory_order_release);
  const bool fatal = error->severity() >= rocksdb::Status::Severity::kFatalError;
  // A soft error (a compaction out of space) lets writes go on; it still needs
  // a resume, as its automatic recovery is turned off below.
  if (!fatal && !OutOfSpace(*error) && error->severity() < rocksdb::Status::Severity::kHardError) return;
  {
    MutexLock l(mu_);
    cause_ = error->ToString();
  }
  if (fatal) fatal_.store(true, std::memory_order_release);
  stopped_.store(true, std::memory_order_release);
}

void WriteRecovery::OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status error,
                                         bool* auto_recovery) {
  // RocksDB would wait for a write buffer's worth of free space (64 MiB) and
  // refuse DB::Resume meanwhile (Busy): the next write resumes instead.
  if (OutOfSpace(error) && auto_recovery != nullptr) *auto_recovery = false;
  error.PermitUncheckedError();
}

std::string WriteRecovery::Cause() const {
  MutexLock l(mu_);
  return cause_;
}

Error WriteRecovery::Fatal(std::string_view what, std::string_view detail) const {
  return Error(ErrorCode::kFatal,
               fmt::format("{}: RocksDB stopped writes after an error it cannot recover from in place ({}); close "
                           "the Outbox and reopen it{}{}",
                           what, Cause(), detail.empty() ? "" : ": ", detail));
}

Status WriteRecovery::ResumeIfStopped(rocksdb::DB* db, std::string_view what) {
  if (!stopped_.load(std::memory_order_acquire)) return {};
  MutexLock g(resume_mu_);
  if (!stopped_.load(std::memory_order_acquire)) return {};
  if (fatal_.load(std::memory_order_acquire)) return tl::unexpected(Fatal(what, ""));
  auto s = db->Resume();
  if (s.ok()) {
    stopped_.store(false, std::memory_order_release);
    return {};
  }
  // Another recovery runs (RocksDB's own, for a retryable error): let the
  // write try, it reports what RocksDB says.
  if (s.IsBusy()) return {};
  if (OutOfSpace(s)) {
    return MakeError(ErrorCode::kResourceExhausted,
                     fmt::format("{}: out of disk space ({}); nothing was written; writes resume by themselves once "
                                 "there is room to flush the memtables: {}",
                                 what, Cause(), s.ToString()));
  }
  if (s.severity() >= rocksdb::Status::Severity::kFatalError || fatal_.load(std::memory_order_acquire)) {
    fatal_.store(true, std::memory_order_release);
    return tl::unexpected(Fatal(what, s.ToString()));
  }
  // Not out of space, not declared fatal, and RocksDB would not resume: the
  // next write tries again; the caller gets an I/O error meanwhile.
  return MakeError(ErrorCode::kIOError, fmt::format("{}: writes stopped after an error ({}) and RocksDB could not "
                                                    "resume them yet: {}",
                                                    what, Cause(), s.ToString()));
}

Error WriteRecovery::WriteFailed(const rocksdb::Status& s, std::string_view what) {
  ever_failed_.store(true, std::memory_order_release);
  if (fatal_.load(std::memory_order_acquire)) return Fatal(what, s.ToString());
  Error e = FromRocks(s, what);
  if (e.code() == ErrorCode::kResourceExhausted) {
    return Error(ErrorCode::kResourceExhausted,
                 fmt::format("{}: out of disk space; nothing was written; the next write resumes once there is room: "
                             "{}",
                             what, s.ToString()));
  }
  return e;
}

Status WriteRecovery::Write(rocksdb::DB* db, const rocksdb::WriteOptions& options, rocksdb::WriteBatch* batch,
                            std::string_view what) {
  if (auto r = ResumeIfStopped(db, what); !r) return r;
  auto s = db->Write(options, batch);
  if (s.ok()) return {};
  return tl::unexpected(WriteFailed(s, what));
}

}  // namespace jaiminho::internal
