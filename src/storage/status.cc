#include "storage/status.h"

#include <fmt/format.h>

namespace jaiminho::internal {

Error FromRocks(const rocksdb::Status& s, std::string_view context) {
  ErrorCode code = ErrorCode::kInternal;
  switch (s.code()) {
    case rocksdb::Status::kOk:
      code = ErrorCode::kInternal;
      break;
    case rocksdb::Status::kNotFound:
      code = ErrorCode::kNotFound;
      break;
    case rocksdb::Status::kCorruption:
      code = ErrorCode::kCorruption;
      break;
    case rocksdb::Status::kNotSupported:
      code = ErrorCode::kNotSupported;
      break;
    case rocksdb::Status::kInvalidArgument:
      code = ErrorCode::kInvalidArgument;
      break;
    case rocksdb::Status::kIOError:
      code = ErrorCode::kIOError;
      break;
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
      code = ErrorCode::kBusy;
      break;
    case rocksdb::Status::kAborted:
    case rocksdb::Status::kIncomplete:
    case rocksdb::Status::kShutdownInProgress:
      code = ErrorCode::kAborted;
      break;
    default:
      code = ErrorCode::kInternal;
      break;
  }
  std::string detail = s.ToString();
  // A lock held by another process surfaces as an IO error on the LOCK file.
  if (s.IsIOError() && (detail.find("lock") != std::string::npos || detail.find("LOCK") != std::string::npos)) {
    code = ErrorCode::kBusy;
  }
  // Out of space (ENOSPC, or SstFileManager's space limit): retry later.
  if (s.subcode() == rocksdb::Status::kNoSpace || s.subcode() == rocksdb::Status::kSpaceLimit) {
    code = ErrorCode::kResourceExhausted;
  }
  // A background error RocksDB cannot recover from in place (it stopped the
  // instance for good): close and reopen.
  if (s.severity() >= rocksdb::Status::Severity::kFatalError) code = ErrorCode::kFatal;
  return Error(code, fmt::format("{}: {}", context, detail));
}

}  // namespace jaiminho::internal
