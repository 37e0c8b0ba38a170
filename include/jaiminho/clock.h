// Time as jaiminho sees it: a wall clock that tests can replace.
//
//   auto clock = std::make_shared<jaiminho::ManualClock>(jaiminho::FromMicros(1'700'000'000'000'000));
//   auto outbox = jaiminho::Outbox::Open({.path = dir, .clock = clock});
//   clock->Advance(std::chrono::hours(24 * 8));
//
// Thread-safety: Now() may be called from any thread; ManualClock is safe for
// concurrent Now(), Set() and Advance().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace jaiminho {

// Microseconds since the Unix epoch, UTC. This is what is stored on disk.
using Timestamp = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

inline int64_t ToMicros(Timestamp t) {
  return t.time_since_epoch().count();
}
inline Timestamp FromMicros(int64_t us) {
  return Timestamp(std::chrono::microseconds(us));
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp Now() const = 0;
};

// The system's real-time clock.
std::shared_ptr<Clock> SystemClock();

// A clock that moves only when told to. For tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp start) : now_us_(ToMicros(start)) {}
  Timestamp Now() const override { return FromMicros(now_us_.load(std::memory_order_acquire)); }
  void Set(Timestamp t) { now_us_.store(ToMicros(t), std::memory_order_release); }
  void Advance(std::chrono::microseconds d) { now_us_.fetch_add(d.count(), std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> now_us_;
};

}  // namespace jaiminho
