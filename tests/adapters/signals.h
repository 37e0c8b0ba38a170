// An Observer that records relay and inline outcomes, with waits (condition
// variables, no sleeps). Shared by the adapter tests.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "jaiminho/observer.h"

namespace jaiminho::testing {

class Signals : public Observer {
 public:
  void OnPublishedByRelay(const Event&) override {
    std::lock_guard l(mu_);
    ++relay_published_;
    cv_.notify_all();
  }
  void OnFailedToPublishByRelay(const Event&, const Error& e) override {
    std::lock_guard l(mu_);
    relay_failures_.push_back(e.ToString());
    cv_.notify_all();
  }
  void OnFailedToPublish(const Event&, const Error&) override {
    std::lock_guard l(mu_);
    ++inline_failures_;
  }
  bool WaitRelayFailures(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return relay_failures_.size() >= n; });
  }
  bool WaitRelayPublished(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return relay_published_ >= n; });
  }
  std::vector<std::string> relay_failures() {
    std::lock_guard l(mu_);
    return relay_failures_;
  }
  size_t relay_published() {
    std::lock_guard l(mu_);
    return relay_published_;
  }
  int inline_failures() {
    std::lock_guard l(mu_);
    return inline_failures_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> relay_failures_;
  size_t relay_published_ = 0;
  int inline_failures_ = 0;
};

}  // namespace jaiminho::testing
