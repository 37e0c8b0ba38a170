#include "storage/info_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <functional>
#include <thread>

namespace jaiminho::internal {

namespace {
// The level of the line being logged on this thread (Logv with a level).
thread_local rocksdb::InfoLogLevel t_level = rocksdb::InfoLogLevel::INFO_LEVEL;

LogLevel LevelOf(rocksdb::InfoLogLevel level) {
  switch (level) {
    case rocksdb::InfoLogLevel::DEBUG_LEVEL:
      return LogLevel::kDebug;
    case rocksdb::InfoLogLevel::WARN_LEVEL:
      return LogLevel::kWarn;
    case rocksdb::InfoLogLevel::ERROR_LEVEL:
    case rocksdb::InfoLogLevel::FATAL_LEVEL:
      return LogLevel::kError;
    default:
      return LogLevel::kInfo;
  }
}
}  // namespace

InfoLog::InfoLog(std::string file, rocksdb::InfoLogLevel level, std::shared_ptr<jaiminho::Logger> forward)
    : rocksdb::Logger(level), file_(std::move(file)), forward_(std::move(forward)) {}

void InfoLog::Logv(rocksdb::InfoLogLevel level, const char* format, va_list ap) {
  if (level < GetInfoLogLevel()) return;
  t_level = level;
  Logv(format, ap);
  t_level = rocksdb::InfoLogLevel::INFO_LEVEL;
}

InfoLog::~InfoLog() {
  MutexLock l(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void InfoLog::Logv(const char* format, va_list ap) {
  // "2024/01/31-12:00:00.123456 <thread> <message>", like RocksDB's own LOG.
  struct timeval now = {};
  ::gettimeofday(&now, nullptr);
  struct tm t = {};
  time_t secs = now.tv_sec;
  ::gmtime_r(&secs, &t);
  char prefix[64];
  int n = std::snprintf(prefix, sizeof(prefix), "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %zx ", t.tm_year + 1900,
                        t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<long>(now.tv_usec),
                        std::hash<std::thread::id>()(std::this_thread::get_id()) & 0xffffffff);
  std::string line(prefix, n > 0 ? static_cast<size_t>(n) : 0);
  char buf[512];
  va_list copy;
  va_copy(copy, ap);
  int len = std::vsnprintf(buf, sizeof(buf), format, copy);
  va_end(copy);
  if (len < 0) return;
  if (static_cast<size_t>(len) < sizeof(buf)) {
    line.append(buf, static_cast<size_t>(len));
  } else {
    size_t cap = std::min<size_t>(static_cast<size_t>(len) + 1, 64 << 10);
    std::string big(cap, '\0');
    std::vsnprintf(big.data(), cap, format, ap);
    big.resize(cap - 1);
    line += big;
  }
  if (line.empty() || line.back() != '\n') line.push_back('\n');
  if (forward_ && forward_->Enabled(LevelOf(t_level))) {
    try {
      const size_t body = n > 0 ? static_cast<size_t>(n) : 0;  // after the time and thread prefix
      forward_->Log({.level = LevelOf(t_level),
                     .message = "rocksdb",
                     .fields = {{"line", line.substr(body, line.size() - body - 1)}}});
    } catch (...) {
      // Never fails RocksDB's logging.
    }
  }
  MutexLock l(mu_);
  Append(std::move(line));
}

void InfoLog::Append(std::string line) {
  if (!file_.empty()) {
    AppendToFile(line);
    return;
  }
  bytes_ += line.size();
  lines_.push_back(std::move(line));
  while (bytes_ > kMemoryBytes && !lines_.empty()) {
    bytes_ -= lines_.front().size();
    lines_.pop_front();
  }
}

void InfoLog::AppendToFile(const std::string& line) {
  if (fd_ >= 0 && file_size_ + line.size() > kMaxFileBytes) {
    ::close(fd_);
    fd_ = -1;
    (void)::rename(file_.c_str(), (file_ + ".old").c_str());
  }
  if (fd_ < 0) {
    fd_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      ++dropped_;
      return;
    }
    struct stat st = {};
    file_size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }
  ssize_t w = ::write(fd_, line.data(), line.size());
  if (w != static_cast<ssize_t>(line.size())) {
    ++dropped_;
    // A partial line (a full disk): the next line starts on its own.
    if (w > 0) (void)!::write(fd_, "\n", 1);
  }
  if (w > 0) file_size_ += static_cast<uint64_t>(w);
}

std::vector<std::string> InfoLog::Lines() const {
  MutexLock l(mu_);
  return {lines_.begin(), lines_.end()};
}

uint64_t InfoLog::dropped() const {
  MutexLock l(mu_);
  return dropped_;
}

}  // namespace jaiminho::internal
