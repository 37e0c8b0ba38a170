// Helpers shared by the tests: temporary directories, assertion macros,
// recording publishers and raw reads of stream column families.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "jaiminho/jaiminho.h"

#define JM_TEST_CONCAT_INNER(a, b) a##b
#define JM_TEST_CONCAT(a, b) JM_TEST_CONCAT_INNER(a, b)

// ASSERT_OK(status_or_result): fails the test with the error text.
#define ASSERT_OK(expr)                                                    \
  do {                                                                     \
    auto&& _r = (expr);                                                    \
    ASSERT_TRUE(_r.has_value()) << #expr << ": " << _r.error().ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                                    \
  do {                                                                     \
    auto&& _r = (expr);                                                    \
    EXPECT_TRUE(_r.has_value()) << #expr << ": " << _r.error().ToString(); \
  } while (0)

#define JM_ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)                       \
  auto tmp = (expr);                                                       \
  ASSERT_TRUE(tmp.has_value()) << #expr << ": " << tmp.error().ToString(); \
  lhs = std::move(*tmp)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) JM_ASSERT_OK_AND_ASSIGN_IMPL(JM_TEST_CONCAT(_r_, __LINE__), lhs, expr)

// ASSERT_ERROR(expr, code): the call failed with this ErrorCode.
#define ASSERT_ERROR(expr, expected_code)                                               \
  do {                                                                                  \
    auto&& _r = (expr);                                                                 \
    ASSERT_FALSE(_r.has_value()) << #expr << " succeeded, expected " << #expected_code; \
    ASSERT_EQ(_r.error().code(), expected_code) << _r.error().ToString();               \
  } while (0)

namespace jaiminho::testing {

// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// Names, sizes and modification times of every file under `dir`.
std::map<std::string, std::pair<uintmax_t, std::filesystem::file_time_type>> Snapshot(const std::string& dir);

struct Delivery {
  std::string stream;
  uint64_t seq;
  std::string type;
  std::string key;
  std::string payload;
  Strategy strategy;
  uint32_t attempts;
};

// A thread-safe publisher that records every delivery; `fail` (when set)
// decides per event whether to fail and with what error.
class RecordingPublisher : public Publisher {
 public:
  Status Publish(const Event& e) override;

  std::function<std::optional<Error>(const Event&)> fail;
  std::vector<Delivery> deliveries() const;
  size_t count() const;
  // Waits (with a condition variable, no sleeps) until `n` deliveries happened;
  // false on timeout.
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
  std::atomic<uint64_t> attempts{0};

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Delivery> deliveries_;
};

// The column family of a stream (internal handle, for raw reads and writes).
rocksdb::ColumnFamilyHandle* StreamFamily(const Stream& stream);
// Every key of a stream column family: (state tag, seq), in key order.
std::vector<std::pair<char, uint64_t>> RawKeys(Outbox& outbox, const Stream& stream);
// A database opened with plain RocksDB (every column family, default
// options), as a disk error or a foreign tool would write it. Closed on
// destruction. Test failures are recorded when it cannot be opened.
class RawDb {
 public:
  explicit RawDb(const std::string& path, bool read_only = false);
  ~RawDb();
  RawDb(const RawDb&) = delete;
  rocksdb::DB* db() const { return db_.get(); }
  // The family named `name` (null, and a test failure, when absent).
  rocksdb::ColumnFamilyHandle* Family(std::string_view name) const;
  // A synced Put; a test failure when it does not succeed.
  void Put(std::string_view family, std::string_view key, std::string_view value);
  std::optional<std::string> Get(std::string_view family, std::string_view key) const;

 private:
  std::vector<std::string> names_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
};

// The state of every event of a stream as its key tag ('p', 'r', 's', 'd'),
// sorted: a delivered event still under its pending key (format 2,
// storage/delivery_log.h) counts as 's' while a run covers it and not at all
// once deleted; delivery-log records are not events.
std::string StateTags(Outbox& outbox, const Stream& stream);

// The stored bytes of a minimal event (type "t.v1", payload "data", created_at 5)
// of stream `stream` with these fields, for tests that write or check records by hand.
std::string EncodedEnvelope(uint64_t seq, std::string_view stream, int64_t next_attempt_at = 0, int64_t sent_at = 0);

// Opens a fresh outbox in `dir` with `o` (path filled in).
std::unique_ptr<Outbox> MustOpen(const std::string& dir, OutboxOptions o = {});

// Relay::Make for helpers that cannot ASSERT (they return a value): on error,
// records a test failure and returns nullptr.
std::unique_ptr<Relay> MustMakeRelay(Outbox& outbox, std::shared_ptr<Publisher> publisher, RelayOptions o = {});

}  // namespace jaiminho::testing
