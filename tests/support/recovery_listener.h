// A RocksDB EventListener that lets a test wait for the end of RocksDB's
// automatic recovery from a background error (for example ENOSPC on the log,
// which its SstFileManager retries), instead of sleeping.
//
//   auto listener = std::make_shared<RecoveryListener>();
//   options.tune_db = [listener](rocksdb::DBOptions& o) { o.listeners.push_back(listener); };
//   ...
//   ASSERT_TRUE(listener->WaitForRecoveries(1, std::chrono::seconds(60)));
//
// Thread-safety: callbacks come from RocksDB's threads; all methods are safe.
#pragma once

#include <rocksdb/listener.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace jaiminho::testing {

class RecoveryListener : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    std::lock_guard l(mu_);
    ++ended_;
    if (!info.new_bg_error.ok()) ++failed_;
    cv_.notify_all();
  }
  void OnBackgroundError(rocksdb::BackgroundErrorReason, rocksdb::Status* error) override {
    std::lock_guard l(mu_);
    if (error != nullptr && !error->ok()) ++errors_;
  }
  // Waits until `n` recoveries have ended in total; false on timeout.
  bool WaitForRecoveries(int n, std::chrono::seconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return ended_ >= n; });
  }
  int recoveries() const {
    std::lock_guard l(mu_);
    return ended_;
  }
  int failed_recoveries() const {
    std::lock_guard l(mu_);
    return failed_;
  }
  int background_errors() const {
    std::lock_guard l(mu_);
    return errors_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int ended_ = 0;
  int failed_ = 0;
  int errors_ = 0;
};

}  // namespace jaiminho::testing
