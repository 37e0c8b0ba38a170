// A small state word one thread waits on and another sets, without a mutex:
// the waiter sleeps in the Linux futex only after announcing it, so the
// setter makes a wake-up system call only when someone sleeps.
//
// Not std::atomic::wait: libstdc++ 12's waits can miss a notify and sleep
// forever (GCC PR 104928); the committer's queue hung on it under load.
//
//   FutexState s;                 // state 0
//   waiter:  uint32_t v = s.WaitWhile(0);
//   setter:  s.Set(2);            // the waiter may return, and `s` end, at once
//
// Set may be called once the waiter can be gone: the wake-up names only the
// address (the kernel reads nothing there), at worst a spurious wake-up of
// another futex waiter, which every futex waiter tolerates.
//
// Thread-safety: one waiter and any number of setters.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace jaiminho::internal {

class FutexState {
 public:
  static constexpr uint32_t kSleeping = UINT32_MAX;  // reserved: not a state

  explicit FutexState(uint32_t initial = 0) : word_(initial) {}
  FutexState(const FutexState&) = delete;
  FutexState& operator=(const FutexState&) = delete;

  uint32_t Load() const { return word_.load(std::memory_order_acquire); }

  // Returns the first state other than `value` (acquire).
  uint32_t WaitWhile(uint32_t value) {
    for (;;) {
      uint32_t v = word_.load(std::memory_order_acquire);
      if (v != value && v != kSleeping) return v;
      if (v == value && !word_.compare_exchange_weak(v, kSleeping, std::memory_order_acquire)) continue;
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word_), FUTEX_WAIT_PRIVATE, kSleeping, nullptr, nullptr, 0);
    }
  }

  // Sets the state (release) and wakes the waiter when it sleeps.
  void Set(uint32_t value) {
    // The address is taken before the exchange: after it `this` may be gone.
    auto* addr = reinterpret_cast<uint32_t*>(&word_);
    if (word_.exchange(value, std::memory_order_acq_rel) == kSleeping) {
      syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }

 private:
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  std::atomic<uint32_t> word_;
};

}  // namespace jaiminho::internal
