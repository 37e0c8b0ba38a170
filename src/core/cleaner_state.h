// CleanerState: what a stream's compaction filter (src/clean/) shares with its
// StreamState: the stream's time_to_delete, the clock, and the filter's counts.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "jaiminho/clock.h"

namespace jaiminho::internal {

// Shared by a stream's filter factory and its StreamState.
struct CleanerState {
  CleanerState(std::string stream_name, std::shared_ptr<Clock> c, int64_t ttd_us)
      : stream(std::move(stream_name)), clock(std::move(c)), time_to_delete_us(ttd_us) {}
  const std::string stream;
  const std::shared_ptr<Clock> clock;
  std::atomic<int64_t> time_to_delete_us;
  std::atomic<uint64_t> removed{0};       // sent events dropped
  std::atomic<uint64_t> kept_corrupt{0};  // values that failed verification: kept
};

// time_to_delete in microseconds, saturated: a value beyond the int64
// microsecond range (about 292,000 years, e.g. seconds::max()) means "never".
inline int64_t TimeToDeleteMicros(std::chrono::seconds ttd) {
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1'000'000;
  if (ttd.count() >= kMaxSeconds) return std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(0, ttd.count()) * 1'000'000;
}

}  // namespace jaiminho::internal
