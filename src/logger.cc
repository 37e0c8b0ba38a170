#include "jaiminho/logger.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include "util/json.h"

namespace jaiminho {

std::string_view ToString(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

namespace {

bool NeedsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

// Plain when it needs no quotes; else a JSON string (one escaping for the
// library's JSON and its log lines).
void AppendValue(std::string& out, std::string_view v) {
  if (!NeedsQuotes(v)) {
    out += v;
    return;
  }
  internal::AppendJsonString(out, v);
}

void AppendField(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += '=';
  AppendValue(out, value);
}

int JournalPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return 7;
    case LogLevel::kInfo:
      return 6;
    case LogLevel::kWarn:
      return 4;
    case LogLevel::kError:
      return 3;
  }
  return 6;
}

std::string UtcNow() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

// Whether $JOURNAL_STREAM ("DEVICE:INODE") names stderr.
bool StderrIsJournal() {
  const char* js = std::getenv("JOURNAL_STREAM");  // NOLINT(concurrency-mt-unsafe): read once, at creation
  if (js == nullptr || *js == '\0') return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return fmt::format("{}:{}", st.st_dev, st.st_ino) == js;
}

class StderrLogger final : public Logger {
 public:
  StderrLogger(LogLevel min, LogPrefix prefix) : Logger(min), prefix_(prefix) {}
  void Log(const LogRecord& record) override {
    std::string line = FormatLogLine(record, prefix_);
    line += '\n';
    // One write per line: a line is never split by another thread's.
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(STDERR_FILENO, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // nowhere to report it
      p += n;
      left -= static_cast<size_t>(n);
    }
  }

 private:
  const LogPrefix prefix_;
};

class StreamLogger final : public Logger {
 public:
  StreamLogger(std::ostream& out, LogLevel min, LogPrefix prefix) : Logger(min), out_(out), prefix_(prefix) {}
  void Log(const LogRecord& record) override {
    std::string line = FormatLogLine(record, prefix_);
    std::lock_guard l(mu_);
    out_ << line << '\n' << std::flush;
  }

 private:
  std::mutex mu_;
  std::ostream& out_;
  const LogPrefix prefix_;
};

}  // namespace

std::string FormatLogLine(const LogRecord& record, LogPrefix prefix) {
  std::string out;
  if (prefix == LogPrefix::kJournald) {
    out = fmt::format("<{}>", JournalPriority(record.level));
  } else {
    out = UtcNow();
    out += ' ';
  }
  for (char c : ToString(record.level))
    out += static_cast<char>(c - 'a' + 'A');
  out += ' ';
  out += record.message;
  if (!record.stream.empty()) AppendField(out, "stream", record.stream);
  if (record.seq) AppendField(out, "seq", std::to_string(*record.seq));
  if (!record.event_id.empty()) AppendField(out, "event", record.event_id);
  for (const auto& [key, value] : record.fields)
    AppendField(out, key, value);
  if (record.error != nullptr) AppendField(out, "error", record.error->ToString());
  return out;
}

std::shared_ptr<Logger> MakeStderrLogger(LogLevel min_level) {
  return std::make_shared<StderrLogger>(min_level, StderrIsJournal() ? LogPrefix::kJournald : LogPrefix::kTime);
}

std::shared_ptr<Logger> MakeStreamLogger(std::ostream& out, LogLevel min_level, LogPrefix prefix) {
  return std::make_shared<StreamLogger>(out, min_level, prefix);
}

}  // namespace jaiminho
