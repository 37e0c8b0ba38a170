// SIGINT and SIGTERM for the examples that run as daemons: blocked in every
// thread (construct it before starting any thread, so that every thread
// inherits the mask) and waited for by main, which then shuts down cleanly.
//
//   example::StopSignals stop;              // first thing in main
//   while (!stop.WaitFor(1000ms)) { ... }  // until SIGINT or SIGTERM
//
// Thread-safety: one thread waits (main); the mask is the process's.
#pragma once

#include <pthread.h>

#include <chrono>
#include <csignal>
#include <ctime>

namespace example {

class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  // Waits up to `d` (0: only checks); true when SIGINT or SIGTERM arrived.
  bool WaitFor(std::chrono::milliseconds d) {
    timespec ts{static_cast<time_t>(d.count() / 1000), static_cast<long>(d.count() % 1000) * 1'000'000};
    return sigtimedwait(&set_, nullptr, &ts) > 0;
  }

 private:
  sigset_t set_{};
};

}  // namespace example
