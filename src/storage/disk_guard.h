// The free-space guard: commits stop at a reserve, before RocksDB ever meets
// a full disk.
//
// Admit(bytes) is called for each commit. It keeps an estimate of the space
// left (the last statvfs of the database's volume minus twice the bytes
// admitted since: the WAL write and the later flush) and calls statvfs again
// when the estimate nears the reserve or is older than kRefresh, so the usual
// cost is two atomic operations and a clock read. Only commits are admitted:
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

 private:
  // statvfs: refreshes the estimate and the reserve; the space available.
  Result<uint64_t> Refresh();

  const std::string path_;
  const std::optional<uint64_t> min_free_bytes_;
  const std::optional<double> min_free_percent_;
  const bool off_;
  std::atomic<uint64_t> reserve_{0};
  std::atomic<int64_t> estimate_{0};      // bytes available, less what was admitted since
  std::atomic<int64_t> refreshed_ns_{0};  // monotonic clock of the last statvfs; 0 = never
};

}  // namespace jaiminho::internal
