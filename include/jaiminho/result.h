// Result<T> and Error: how every fallible call in jaiminho reports failure.
//
//   jaiminho::Result<std::unique_ptr<Outbox>> outbox = Outbox::Open({.path = "var/gw.db"});
//   if (!outbox) std::cerr << outbox.error().ToString() << "\n";
//
// Thread-safety: values; no shared state.
#pragma once

#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace jaiminho {

// What went wrong, in a form a program can branch on. The numbers appear in
// the tool's JSON output: never renumber.
enum class ErrorCode : int {
  kInvalidArgument = 1,     // a value given by the caller is wrong (name, option, size)
  kNotFound = 2,            // a stream, column family or record does not exist
  kCorruption = 3,          // bytes on disk failed verification; at Open: the database is
                            // damaged (CURRENT missing or not naming a MANIFEST, the MANIFEST
                            // missing or unreadable, jaiminho.meta invalid), the message names
                            // the path and the file; nothing is changed (jaiminho-tool exit 4)
  kIOError = 4,             // the filesystem failed in a way not covered by kResourceExhausted
                            // or kFatal (for example a permission); that call failed
  kBusy = 5,                // locked by another process (also one creating the database at
                            // the same moment), or delivered by another relay
  kNotADatabase = 6,        // the path is not a jaiminho database
  kFormatTooNew = 7,        // the on-disk format is newer than this library
  kNotSupported = 8,        // the operation is not available in this configuration
  kUnavailable = 9,         // publisher: broker unreachable; retried per policy
  kRejected = 10,           // publisher: permanent rejection of this event; parked
  kUnknownHandler = 11,     // no handler is registered for the event type; waits for one
  kTampered = 12,           // signature verification failed; parked
  kAborted = 13,            // not attempted (for example after an earlier failure)
  kInternal = 14,           // a bug in jaiminho or RocksDB
  kClosed = 15,             // the Outbox (or the Relay) was closed; nothing was done
  kResourceExhausted = 16,  // out of disk space (or a quota): nothing was written;
                            // retry once space is back, the instance recovers by itself
                            // (the next write resumes RocksDB; it needs room to flush
                            // the memtables, see README "Failures and known limits")
  kFatal = 17,              // the instance hit an error it cannot recover from in place
                            // (failed WAL sync, EIO on the log, an I/O error in a flush or
                            // MANIFEST write): every later write fails with it too; close
                            // the Outbox and open it again (nothing acknowledged is lost)
};

// "invalid argument", "io error", ...
std::string_view ToString(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  // One line; names the path, stream, record or option concerned.
  const std::string& message() const { return message_; }
  // "<code>: <message>"
  std::string ToString() const;

  bool operator==(const Error&) const = default;

 private:
  ErrorCode code_;
  std::string message_;
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error(code, std::move(message)));
}

}  // namespace jaiminho
