// The free-space guard: commits stop at a reserve, before RocksDB ever meets
// a full disk.
//
// Admit(bytes) is called for each commit. It keeps an estimate of the space
// left (the last statvfs of the database's volume minus twice the bytes
// admitted since: the WAL write and the later flush) and calls statvfs again
// when the estimate nears the reserve or is older than kRefresh, so the usual
// cost is two atomic operations and a clock read. The write-ahead log takes
// its space ahead, a preallocation step at a time (storage/wal_env.h): a
// commit is admitted only if a whole step more still leaves the reserve, and
// the step is sized from the reserve (WalStep), so a small volume does not
// give a large share of its reserve to one step. Only commits are admitted:
// the relay, the cleaner and operator actions write without asking (they free
// space, and the reserve is what they have to do it with).
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "jaiminho/result.h"

namespace jaiminho::internal {

// The reserve when the options set none: 10% of the volume, at most 128 MiB.
inline constexpr uint64_t kDefaultReserveCap = 128 << 20;
inline constexpr double kDefaultReservePercent = 10.0;

class DiskGuard {
 public:
  static constexpr std::chrono::milliseconds kRefresh{100};

  // `min_free_bytes` / `min_free_percent` as in OutboxOptions.
  DiskGuard(std::string path, std::optional<uint64_t> min_free_bytes, std::optional<double> min_free_percent);

  // OK when the volume keeps the reserve after `bytes` more; otherwise
  // kResourceExhausted naming the path, the space left and the reserve.
  Status Admit(uint64_t bytes);

  // The reserve in bytes (resolved against the volume's size at the last
  // statvfs; 0 = off).
  uint64_t reserve() const { return reserve_.load(std::memory_order_relaxed); }

  // The write-ahead log's preallocation step: a sixteenth of the reserve,
  // from kMinWalStep to kMaxWalPreallocation (that when the guard is off).
  // Looks at the volume first if it never did (the database's directory, or
  // its parent before it exists).
  uint64_t WalStep();
  static constexpr uint64_t kMinWalStep = 64 << 10;

 private:
  // statvfs: refreshes the estimate and the reserve; the space available.
  Result<uint64_t> Refresh();

  const std::string path_;
  const std::optional<uint64_t> min_free_bytes_;
  const std::optional<double> min_free_percent_;
  const bool off_;
  std::atomic<uint64_t> reserve_{0};
  std::atomic<uint64_t> wal_step_{0};     // 0 = not looked at yet
  std::atomic<int64_t> estimate_{0};      // bytes available, less what was admitted since
  std::atomic<int64_t> refreshed_ns_{0};  // monotonic clock of the last statvfs; 0 = never
};

}  // namespace jaiminho::internal
