#include "util/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace jaiminho::internal {

HistogramBounds::HistogramBounds(std::span<const double> seconds) : n_(std::min(seconds.size(), kMaxHistogramBuckets)) {
  bounds_us_.fill(std::numeric_limits<int64_t>::max());
  for (size_t i = 0; i < n_; ++i) {
    seconds_[i] = seconds[i];
    bounds_us_[i] = std::llround(seconds[i] * 1e6);
  }
}

const HistogramBounds& LatencyBounds() {
  static constexpr double kSeconds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,    5,     10,   30,    60,   120, 300,  600};
  static const HistogramBounds bounds(kSeconds);
  return bounds;
}

const HistogramBounds& PublishDurationBounds() {
  static constexpr double kSeconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  static const HistogramBounds bounds(kSeconds);
  return bounds;
}

void AtomicHistogram::Merge(const LocalHistogram& l) {
  if (l.empty()) return;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    if (l.counts_[i] != 0) counts_[i].fetch_add(l.counts_[i], std::memory_order_relaxed);
  }
  sum_us_.fetch_add(l.sum_us_, std::memory_order_relaxed);
}

Histogram AtomicHistogram::Snapshot() const {
  Histogram h;
  auto s = bounds_.seconds();
  h.upper_bounds.assign(s.begin(), s.end());
  h.bucket_counts.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    h.bucket_counts[i] = counts_[i].load(std::memory_order_relaxed);
    total += h.bucket_counts[i];
  }
  // The count is the buckets' total, so +Inf and _count always agree.
  h.count = total;
  h.sum = static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
  return h;
}

}  // namespace jaiminho::internal
