// CleanerState: what a stream's compaction filter (src/clean/) shares with its
// StreamState: the stream's time_to_delete, the clock, what the relay has
// delivered (the persisted cursor and the delivery log's runs,
// storage/delivery_log.h), and the filter's counts.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "jaiminho/clock.h"
#include "storage/delivery_log.h"
#include "util/mutex.h"

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
  // The maintenance pass compacted the delivered pending keys below this seq.
  std::atomic<uint64_t> compacted_below{0};

  // What is delivered: pending keys below `cursor` (the persisted one), with
  // the runs that say when. A copy is taken per compaction.
  using Delivered = DeliveredView;
  // At open, from meta and the stream's delivery log.
  void SetDelivered(uint64_t cursor, SentRuns runs) EXCLUDES(mu_) {
    MutexLock l(mu_);
    delivered_.cursor = cursor;
    delivered_.runs = std::move(runs);
  }
  // After a relay batch that persisted `cursor` (and wrote `run`) is written.
  void AddDelivered(uint64_t cursor, const std::optional<SentRun>& run) EXCLUDES(mu_) {
    MutexLock l(mu_);
    delivered_.cursor = std::max(delivered_.cursor, cursor);
    if (run) delivered_.runs.Append(*run);
  }
  // Forgets the runs that end before every run still within time_to_delete
  // (`expired_before_us`): their events are dropped, or shown as gone, either way.
  void ForgetExpiredRuns(int64_t expired_before_us) EXCLUDES(mu_) {
    MutexLock l(mu_);
    uint64_t keep_from = 0;
    for (const SentRun& r : delivered_.runs.runs()) {
      if (r.sent_at_us >= expired_before_us) break;
      keep_from = r.last + 1;
    }
    delivered_.runs.DropBelow(keep_from);
  }
  Delivered delivered() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return delivered_;
  }
  // What the record under pending key `seq` is (storage/delivery_log.h).
  PendingKeyState ClassifyPending(uint64_t seq) const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return ClassifyPendingKey(seq, delivered_.cursor, delivered_.runs);
  }
  uint64_t delivered_cursor() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return delivered_.cursor;
  }

 private:
  mutable Mutex mu_;
  Delivered delivered_ GUARDED_BY(mu_);
};

// time_to_delete in microseconds, saturated: a value beyond the int64
// microsecond range (about 292,000 years, e.g. seconds::max()) means "never".
inline int64_t TimeToDeleteMicros(std::chrono::seconds ttd) {
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1'000'000;
  if (ttd.count() >= kMaxSeconds) return std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(0, ttd.count()) * 1'000'000;
}

}  // namespace jaiminho::internal
