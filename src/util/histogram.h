// A fixed-bucket histogram of durations that many threads record into without
// a lock: one relaxed atomic add to a bucket and one to the sum. A caller that
// records many values at once (a delivery batch) fills a LocalHistogram and
// merges it in one go, so the per-event cost is a bucket search and no atomic.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "jaiminho/metrics.h"

namespace jaiminho::internal {

inline constexpr size_t kMaxHistogramBuckets = 24;  // finite bounds, +Inf not counted

// Bucket bounds in microseconds, ascending (at most kMaxHistogramBuckets).
class HistogramBounds {
 public:
  explicit HistogramBounds(std::span<const double> seconds);
  // The bucket index of `micros` (negative values count as 0): the first bound
  // >= micros, or size() for +Inf.
  // Counts the bounds below `micros` over the whole array (the unused ones are
  // INT64_MAX): no data-dependent branch, and the compiler vectorizes it. The
  // relay records one latency per delivered event; the early-exit scan cost
  // 1.5 % of a pass over a 1M backlog, whose latencies sit in the upper buckets.
  size_t BucketOf(int64_t micros) const {
    size_t i = 0;
    for (int64_t bound : bounds_us_)
      i += micros > bound ? 1 : 0;
    return i;
  }
  size_t size() const { return n_; }
  std::span<const double> seconds() const { return {seconds_.data(), n_}; }

 private:
  std::array<int64_t, kMaxHistogramBuckets> bounds_us_;  // INT64_MAX past n_
  std::array<double, kMaxHistogramBuckets> seconds_{};
  size_t n_ = 0;
};

// Commit to acknowledgement: 1 ms .. 10 min. Publish call: 100 us .. 10 s.
const HistogramBounds& LatencyBounds();
const HistogramBounds& PublishDurationBounds();

class LocalHistogram {
 public:
  void Record(const HistogramBounds& b, int64_t micros) {
    if (micros < 0) micros = 0;
    ++counts_[b.BucketOf(micros)];
    sum_us_ += static_cast<uint64_t>(micros);
    ++count_;
  }
  bool empty() const { return count_ == 0; }
  void Clear() { *this = LocalHistogram(); }

 private:
  friend class AtomicHistogram;
  std::array<uint64_t, kMaxHistogramBuckets + 1> counts_{};
  uint64_t sum_us_ = 0;
  uint64_t count_ = 0;
};

// Thread-safety: Record, Merge and Snapshot may be called from any thread. A
// snapshot taken during a record may see the bucket before the count; each
// series stays monotonic, which is what Prometheus needs.
class AtomicHistogram {
 public:
  explicit AtomicHistogram(const HistogramBounds& bounds) : bounds_(bounds) {}

  void Record(int64_t micros) {
    if (micros < 0) micros = 0;
    counts_[bounds_.BucketOf(micros)].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<uint64_t>(micros), std::memory_order_relaxed);
  }
  void Merge(const LocalHistogram& l);
  Histogram Snapshot() const;

 private:
  const HistogramBounds& bounds_;
  std::array<std::atomic<uint64_t>, kMaxHistogramBuckets + 1> counts_{};
  std::atomic<uint64_t> sum_us_{0};  // the count is the buckets' total
};

// Records the time from construction to destruction into `h` (steady clock).
class ScopedDuration {
 public:
  explicit ScopedDuration(AtomicHistogram& h) : h_(h), start_(std::chrono::steady_clock::now()) {}
  ScopedDuration(const ScopedDuration&) = delete;
  ScopedDuration& operator=(const ScopedDuration&) = delete;
  ~ScopedDuration() {
    h_.Record(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_).count());
  }

 private:
  AtomicHistogram& h_;
  const std::chrono::steady_clock::time_point start_;
};

}  // namespace jaiminho::internal
