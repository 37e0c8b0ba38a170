// Logger: where the library reports its state changes (OutboxOptions::logger).
//
//   auto outbox = jaiminho::Outbox::Open({
//       .path = "var/gw.db",
//       .logger = jaiminho::MakeStderrLogger(jaiminho::LogLevel::kInfo),
//   });
//
// The library logs changes, never every event: publisher down/up, a stream
// blocked/unblocked (with the head's seq and error), parked and tampered
// events, disk errors, repairs and upgrades at open, the backlog crossing
// OutboxOptions::backlog_warn_events, and (with OutboxOptions::info_log_to_logger)
// RocksDB's own info log. Without a logger (the default) nothing is written.
//
// Thread-safety: Log may be called concurrently from any thread of the library
// (committing threads, relays, RocksDB's background threads); implementations
// must be thread-safe. The loggers made here are.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jaiminho/result.h"

namespace jaiminho {

enum class LogLevel : uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error".
std::string_view ToString(LogLevel level);

// One record: a fixed message ("stream blocked") and structured fields. The
// views are valid during the Log call only; copy what you keep.
struct LogRecord {
  LogLevel level = LogLevel::kInfo;
  std::string_view message{};
  // The stream concerned; empty = none.
  std::string_view stream{};
  // The event's seq in `stream`, when one is concerned.
  std::optional<uint64_t> seq{};
  // The event's id (EventId::ToString()); empty = none.
  std::string_view event_id{};
  // The error behind the record, when there is one.
  const Error* error = nullptr;
  // Further key=value fields (for example backlog=1200 threshold=1000).
  std::vector<std::pair<std::string_view, std::string>> fields{};
};

class Logger {
 public:
  // Records below `min_level` are not passed to Log (the library checks
  // Enabled() before building them).
  explicit Logger(LogLevel min_level = LogLevel::kInfo) : min_level_(min_level) {}
  virtual ~Logger() = default;
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  LogLevel min_level() const { return min_level_; }
  bool Enabled(LogLevel level) const { return level >= min_level_; }

  // Writes one record. Must not throw (an exception is caught and dropped).
  virtual void Log(const LogRecord& record) = 0;

 private:
  const LogLevel min_level_;
};

// How a line starts.
enum class LogPrefix : uint8_t {
  kTime,      // "2026-11-29T18:55:17.123Z " (ISO-8601, UTC, milliseconds)
  kJournald,  // "<4>": the sd-daemon priority (3 error, 4 warn, 6 info, 7 debug)
};

// The line of a record, without the newline:
//   2026-11-29T18:55:17.123Z WARN stream blocked stream=telemetry seq=1 error="unavailable: ..."
// A field value with a space, '"', '=', '\\' or a control character is quoted
// with '"' and escaped (\" \\ \n \t, \xHH for other control characters).
std::string FormatLogLine(const LogRecord& record, LogPrefix prefix);

// One line per record on stderr, written with one write(2) (lines of threads
// never interleave), so it shows at once with stderr redirected to a file.
// journald: when $JOURNAL_STREAM names stderr's device and inode (systemd sets
// it for a service whose stderr goes to the journal), lines start with the
// sd-daemon priority "<N>" instead of the time (the journal stamps them).
std::shared_ptr<Logger> MakeStderrLogger(LogLevel min_level = LogLevel::kInfo);

// One line per record on `out` (flushed after each line, serialized by a mutex).
// `out` must outlive the logger.
std::shared_ptr<Logger> MakeStreamLogger(std::ostream& out, LogLevel min_level = LogLevel::kInfo,
                                         LogPrefix prefix = LogPrefix::kTime);

}  // namespace jaiminho
