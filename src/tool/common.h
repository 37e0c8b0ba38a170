// What every jaiminho-tool command shares: where output goes, exit codes,
// error reporting and the two ways of opening a database.
//
// Read commands open with OpenForReading (RocksDB read-only: no lock, no LOG
// file, nothing written; the WAL is replayed in memory at open, so a live
// writer's commits up to that moment are seen). Write commands open with
// OpenForWriting (Outbox::Open, create_if_missing=false), which refuses a
// database another process holds before touching it; requeue, skip, clean
// (and stats, for live counters) act through the holder's control socket
// when it has one (FindLiveControl).
//
// Thread-safety: Io is shared by a command's threads only through its streams;
// commands write to out/err from one thread, or serialize (see Progress).
#pragma once

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/logger.h"
#include "jaiminho/outbox.h"
#include "jaiminho/result.h"
#include "outbox/control.h"
#include "sign/signer.h"
#include "storage/open.h"

namespace jaiminho::tool {

// Exit codes of jaiminho-tool (documented in README.md, "jaiminho-tool").
enum ExitCode : int {
  kExitOk = 0,
  // verify found bad records; an operation failed (I/O error, unknown stream or
  // seq, refused operator action, relay attempts that failed).
  kExitFailed = 1,
  // Usage error (bad option or value), or the path does not exist, is not a
  // jaiminho database, or has a newer on-disk format. Nothing was created or changed.
  kExitUsage = 2,
  // Write command on a database that another process holds open. Nothing was changed.
  kExitBusy = 3,
  // The database is damaged: its CURRENT file is missing or does not name a
  // MANIFEST, the MANIFEST is missing or corrupt, or jaiminho.meta fails
  // verification. Nothing was created or changed.
  kExitDamaged = 4,
};

// Where a command writes. `out_tty`/`err_tty` tell whether the streams are
// terminals (tables and progress) or pipes/files (tab-separated, quiet).
struct Io {
  std::ostream& out;
  std::ostream& err;
  bool out_tty = false;
  bool err_tty = false;
};

// Replaces `path` with `content` atomically: writes a temporary file in the
// same directory, fsyncs it, renames it over `path` and fsyncs the directory,
// so a reader (node_exporter's textfile collector) sees the old or the new
// file, never a part. The file gets mode 0644. Errors name the file; the
// temporary file is removed on failure.
Status WriteFileAtomically(const std::string& path, std::string_view content);

// Prints "jaiminho-tool <command>: <error>" as one line on io.err and returns `code`.
int Report(Io& io, std::string_view command, const Error& error, int code = kExitFailed);

// Prints an error from opening a database and returns its exit code: 2 for a
// missing path, a non-database or a newer format, 3 when another process holds
// it, 4 for a damaged database (kCorruption), 1 otherwise (an I/O error, no
// space left: kResourceExhausted).
int ReportOpenError(Io& io, std::string_view command, const Error& error);

// Checks that `path` is an existing database directory without changing
// anything. kNotADatabase naming the path otherwise.
Status CheckDatabasePath(const std::string& path);

// Read-only view (see the file comment).
Result<std::unique_ptr<internal::ReadOnlyDb>> OpenForReading(const std::string& path);

// The database opened for writing. kBusy naming the holder's pid when another
// process holds it (checked before RocksDB is asked to open it, so a live
// database is not touched at all, not even its LOG file). `logger`: the
// Outbox's (OutboxOptions::logger), none by default. `control_socket`:
// OutboxOptions::control_socket (relay --loop --control-socket).
Result<std::unique_ptr<Outbox>> OpenForWriting(const std::string& path, std::vector<SigningKey> keys = {},
                                               std::shared_ptr<Logger> logger = {}, bool control_socket = false);

// The process holding a database and its control socket
// (OutboxOptions::control_socket, src/outbox/control.h).
struct LiveControl {
  long pid = 0;
  std::string socket{};
};

// How requeue, skip, clean and stats reach a database another process may
// hold. nullopt when no process holds `path` (the command opens it itself);
// the holder and its socket when it serves one. When it holds it without a
// socket: kBusy naming the holder and how to enable the socket if `required`,
// else nullopt (stats then reads the files).
Result<std::optional<LiveControl>> FindLiveControl(const std::string& path, bool required);

// Sends `request` through the holder's socket, saying so on io.err first, and
// returns the result lines. The server's refusal comes back as its error
// (naming the stream and seq); a socket nobody answers on as kBusy naming the
// holder (nothing was done).
Result<std::vector<internal::ControlLine>> CallLive(Io& io, std::string_view command, const std::string& path,
                                                    const LiveControl& live, const internal::ControlLine& request);

// kExitBusy for kBusy (the database is held and its socket did not answer),
// else kExitFailed.
int LiveExitCode(const Error& error);

// Signing keys from a file: one key per line, "ID SECRET" (the secret is the
// rest of the line); blank lines and lines starting with '#' are skipped.
// Keys come from the operator, never from the database. An empty path gives none.
Result<std::vector<SigningKey>> LoadSigningKeys(const std::string& file);

// A verifying signer for the keys of `file` (null when `file` is empty).
Result<std::unique_ptr<internal::Signer>> VerifierFromFile(const std::string& file, const DatabaseId& db);

// Stream names of a read-only database, sorted; `only` (when not empty) must
// name existing streams (else kNotFound naming the path and the streams that exist).
Result<std::vector<std::string>> SelectStreams(const internal::ReadOnlyDb& db, const std::string& path,
                                               const std::vector<std::string>& only);

// SIGINT and SIGTERM, blocked in every thread of the process (blocked before
// the database is opened: RocksDB's threads inherit the mask) so that one
// thread can wait for them: `relay --loop` until it is told to stop, `dump
// --follow` between polls. The previous mask is restored on destruction,
// after consuming what is pending (so it does not kill the process then).
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~StopSignals() {
    timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Waits for SIGINT or SIGTERM (sent to the process, or by Wake()); returns it.
  int Wait() {
    int sig = 0;
    while (sigwait(&set_, &sig) != 0) {
    }
    return sig;
  }
  // Waits up to `d`; true when SIGINT or SIGTERM arrived.
  bool WaitFor(std::chrono::microseconds d) {
    timespec ts{static_cast<time_t>(d.count() / 1'000'000), static_cast<long>(d.count() % 1'000'000) * 1000};
    return sigtimedwait(&set_, nullptr, &ts) > 0;
  }
  // Ends a Wait() in `thread` from another thread. SIGTERM is blocked in every
  // thread: it only ends the sigwait(), it kills nothing.
  static void Wake(pthread_t thread) { pthread_kill(thread, SIGTERM); }  // NOLINT(bugprone-bad-signal-to-kill-thread)

 private:
  sigset_t set_{}, old_{};
};

}  // namespace jaiminho::tool
