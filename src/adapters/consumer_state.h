// What both consumer adapters (mqtt_consumer.cc, kafka_consumer.cc) share
// between their consumer thread and the callers: the counters, the last error,
// the stop request and stopped(), and the waits on them, under one mutex.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace jaiminho::internal {

template <class Stats>  // MqttConsumerStats, KafkaConsumerStats: has `applied`
class ConsumerState {
 public:
  Stats stats() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return stats_;
  }
  std::string last_error() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return last_error_;
  }
  bool stopped() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return stopped_;
  }
  // Until stats().applied >= n or stopped(); false after `timeout`.
  bool WaitApplied(uint64_t n, std::chrono::milliseconds timeout) const EXCLUDES(mu_) {
    return WaitFor(timeout, [&]() REQUIRES(mu_) { return stats_.applied >= n; });
  }

 protected:
  ConsumerState() = default;
  ~ConsumerState() = default;

  // Until done() (called under mu_) or stopped(); done()'s last value, false after `timeout`.
  template <class Done>
  bool WaitFor(std::chrono::milliseconds timeout, Done done) const EXCLUDES(mu_) {
    MutexLock l(mu_);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done() && !stopped_) {
      if (!cv_.WaitUntil(mu_, deadline)) break;
    }
    return done();
  }
  // Asks the consumer thread to end (it polls stopping()) and wakes the waiters.
  void RequestStop() EXCLUDES(mu_) {
    MutexLock l(mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  bool stopping() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return stop_;
  }
  // The retry pace after `failures` failures in a row (a retry interval, not a
  // wait for an event): `min`, doubling up to `max`; returns early on a stop.
  void Backoff(int failures, std::chrono::milliseconds min, std::chrono::milliseconds max) EXCLUDES(mu_) {
    std::chrono::milliseconds delay = min;
    for (int i = 1; i < failures && delay < max; ++i)
      delay *= 2;
    delay = std::min(delay, max);
    MutexLock l(mu_);
    const auto deadline = std::chrono::steady_clock::now() + delay;
    while (!stop_ && cv_.WaitUntil(mu_, deadline)) {
    }
  }
  void SetError(std::string why) EXCLUDES(mu_) {
    MutexLock l(mu_);
    last_error_ = std::move(why);
  }

  mutable Mutex mu_;
  mutable CondVar cv_;
  Stats stats_ GUARDED_BY(mu_){};
  std::string last_error_ GUARDED_BY(mu_){};
  bool stopped_ GUARDED_BY(mu_) = false;

 private:
  bool stop_ GUARDED_BY(mu_) = false;
};

}  // namespace jaiminho::internal
