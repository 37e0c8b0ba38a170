#include "storage/disk_guard.h"

#include <fmt/format.h>
#include <sys/statvfs.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "storage/wal_env.h"
#include "util/macros.h"

namespace jaiminho::internal {
namespace {

// Monotonic nanoseconds, for the estimate's age only (kRefresh is 100 ms):
// the coarse clock (a few ms of resolution) costs about 4 ns a read here
// against 22 for steady_clock, and every commit reads it.
int64_t NowNs() {
#ifdef CLOCK_MONOTONIC_COARSE
  struct timespec ts = {};
  if (::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0) return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
#endif
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Mib(uint64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

DiskGuard::DiskGuard(std::string path, std::optional<uint64_t> min_free_bytes, std::optional<double> min_free_percent)
    : path_(std::move(path)),
      min_free_bytes_(min_free_bytes),
      min_free_percent_(min_free_percent),
      off_((min_free_bytes && *min_free_bytes == 0 && !min_free_percent) ||
           (min_free_percent && *min_free_percent == 0 && !min_free_bytes) ||
           (min_free_bytes && *min_free_bytes == 0 && min_free_percent && *min_free_percent == 0)) {}

Result<uint64_t> DiskGuard::Refresh() {
  struct statvfs v = {};
  if (::statvfs(path_.c_str(), &v) != 0 &&
      (errno != ENOENT || ::statvfs(std::filesystem::path(path_).parent_path().c_str(), &v) != 0)) {
    return MakeError(ErrorCode::kIOError,
                     fmt::format("free-space check of {} (statvfs): {}", path_, std::strerror(errno)));
  }
  const uint64_t available = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  const uint64_t volume = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
  uint64_t reserve = 0;
  if (!min_free_bytes_ && !min_free_percent_) {
    reserve =
        std::min(kDefaultReserveCap, static_cast<uint64_t>(static_cast<double>(volume) * kDefaultReservePercent / 100));
  } else {
    if (min_free_bytes_) reserve = *min_free_bytes_;
    if (min_free_percent_) {
      reserve = std::max(reserve, static_cast<uint64_t>(static_cast<double>(volume) * *min_free_percent_ / 100));
    }
  }
  reserve_.store(reserve, std::memory_order_relaxed);
  wal_step_.store(off_ ? kMaxWalPreallocation : std::clamp<uint64_t>(reserve / 16, kMinWalStep, kMaxWalPreallocation),
                  std::memory_order_relaxed);
  estimate_.store(static_cast<int64_t>(available), std::memory_order_relaxed);
  refreshed_ns_.store(NowNs(), std::memory_order_relaxed);
  return available;
}

uint64_t DiskGuard::WalStep() {
  if (wal_step_.load(std::memory_order_relaxed) == 0 && !Refresh()) return kMaxWalPreallocation;
  return wal_step_.load(std::memory_order_relaxed);
}

Status DiskGuard::Admit(uint64_t bytes) {
  if (off_) return {};
  const auto cost = static_cast<int64_t>(2 * bytes);
  const int64_t left = estimate_.fetch_sub(cost, std::memory_order_relaxed) - cost;
  const int64_t refreshed = refreshed_ns_.load(std::memory_order_relaxed);
  const auto kept =
      static_cast<int64_t>(reserve_.load(std::memory_order_relaxed) + wal_step_.load(std::memory_order_relaxed));
  // Fresh and far from the reserve (a margin of 1 MiB absorbs what other
  // writers of the volume did since): the usual case.
  if (refreshed != 0 && NowNs() - refreshed < std::chrono::nanoseconds(kRefresh).count() && left >= kept + (1 << 20)) {
    return {};
  }
  JM_ASSIGN_OR_RETURN(const uint64_t available, Refresh());
  // The reserve, and the log's next preallocation step on top of it.
  const uint64_t needed =
      reserve_.load(std::memory_order_relaxed) + wal_step_.load(std::memory_order_relaxed) + 2 * bytes;
  if (available >= needed) {
    estimate_.fetch_sub(cost, std::memory_order_relaxed);
    return {};
  }
  return MakeError(ErrorCode::kResourceExhausted,
                   fmt::format("commit refused: the volume of {} has {} free ({} bytes) and a commit of {} bytes "
                               "would leave less than the reserve of {} (OutboxOptions::min_free_bytes / "
                               "min_free_percent) with the write-ahead log's next step of {}; nothing was written. "
                               "The relay and the cleaner go on and free space; commits resume by themselves when "
                               "there is room",
                               path_, Mib(available), available, bytes, Mib(reserve_.load(std::memory_order_relaxed)),
                               Mib(wal_step_.load(std::memory_order_relaxed))));
}

}  // namespace jaiminho::internal
