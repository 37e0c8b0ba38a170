// Outages that announce themselves: the Logger's lines, the Observer's
// publisher down/up and stream blocked/unblocked callbacks (once per change),
// and the ready notification that retries a blocked head at once whatever its
// backoff. The publisher is a fake whose broker is "down" until the test says.
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "jaiminho/jaiminho.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using namespace std::chrono_literals;
using testing::MustOpen;
using testing::TempDir;
using SteadyTime = std::chrono::steady_clock::time_point;

TEST(Logger, LineHasTimeLevelMessageAndQuotedFields) {
  Error e(ErrorCode::kUnavailable, "broker 127.0.0.1:1 \"refused\"");
  LogRecord r{.level = LogLevel::kWarn,
              .message = "stream blocked",
              .stream = "telemetry",
              .seq = 7,
              .error = &e,
              .fields = {{"note", "a=b"}, {"n", "12"}}};
  std::string line = FormatLogLine(r, LogPrefix::kTime);
  // 2026-11-29T18:55:17.123Z WARN ...
  ASSERT_GT(line.size(), 25u) << line;
  EXPECT_EQ(line[4], '-') << line;
  EXPECT_EQ(line[10], 'T') << line;
  EXPECT_EQ(line[23], 'Z') << line;
  EXPECT_EQ(line.substr(25),
            "WARN stream blocked stream=telemetry seq=7 note=\"a=b\" n=12 "
            "error=\"unavailable: broker 127.0.0.1:1 \\\"refused\\\"\"");
  EXPECT_EQ(FormatLogLine({.level = LogLevel::kError, .message = "write failed"}, LogPrefix::kJournald),
            "<3>ERROR write failed");
  EXPECT_EQ(FormatLogLine({.level = LogLevel::kInfo, .message = "publisher up"}, LogPrefix::kJournald),
            "<6>INFO publisher up");
}

TEST(Logger, StreamLoggerFiltersByLevelAndWritesOneLinePerRecord) {
  std::ostringstream out;
  auto logger = MakeStreamLogger(out, LogLevel::kWarn, LogPrefix::kJournald);
  EXPECT_FALSE(logger->Enabled(LogLevel::kInfo));
  EXPECT_TRUE(logger->Enabled(LogLevel::kError));
  logger->Log({.level = LogLevel::kWarn, .message = "publisher down"});
  logger->Log({.level = LogLevel::kError, .message = "event parked", .stream = "s", .seq = 2});
  EXPECT_EQ(out.str(), "<4>WARN publisher down\n<3>ERROR event parked stream=s seq=2\n");
}

// Keeps the records' lines and when each was logged.
class RecordingLogger final : public Logger {
 public:
  RecordingLogger() : Logger(LogLevel::kDebug) {}
  void Log(const LogRecord& r) override {
    std::lock_guard l(mu_);
    lines_.push_back(FormatLogLine(r, LogPrefix::kTime));
    messages_.emplace_back(r.message);
    at_.push_back(std::chrono::steady_clock::now());
  }
  int Count(std::string_view message) const {
    std::lock_guard l(mu_);
    return static_cast<int>(std::count(messages_.begin(), messages_.end(), message));
  }
  std::optional<SteadyTime> At(std::string_view message) const {
    std::lock_guard l(mu_);
    for (size_t i = 0; i < messages_.size(); ++i)
      if (messages_[i] == message) return at_[i];
    return std::nullopt;
  }
  std::vector<std::string> lines() const {
    std::lock_guard l(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_, messages_;
  std::vector<SteadyTime> at_;
};

struct OutageObserver final : Observer {
  std::mutex mu;
  std::condition_variable cv;
  int down = 0, up = 0, blocked = 0, unblocked = 0, published = 0;
  std::string down_error;
  uint64_t blocked_seq = 0, unblocked_seq = 0;
  std::optional<SteadyTime> first_published;

  void OnPublisherDown(const Error& e) override {
    std::lock_guard l(mu);
    ++down;
    down_error = e.ToString();
  }
  void OnPublisherUp() override {
    std::lock_guard l(mu);
    ++up;
  }
  void OnStreamBlocked(std::string_view, uint64_t seq, const Error&) override {
    std::lock_guard l(mu);
    ++blocked;
    blocked_seq = seq;
  }
  void OnStreamUnblocked(std::string_view, uint64_t seq) override {
    std::lock_guard l(mu);
    ++unblocked;
    unblocked_seq = seq;
  }
  void OnPublishedByRelay(const Event&) override {
    std::lock_guard l(mu);
    ++published;
    if (!first_published) first_published = std::chrono::steady_clock::now();
    cv.notify_all();
  }
  bool WaitPublished(int n, std::chrono::seconds timeout) {
    std::unique_lock l(mu);
    return cv.wait_for(l, timeout, [&] { return published >= n; });
  }
};

// A publisher whose broker is down until Up(), which also says it is ready.
class ToggledPublisher final : public Publisher {
 public:
  Status Publish(const Event&) override {
    std::lock_guard l(mu_);
    ++attempts_;
    cv_.notify_all();
    if (down_) return MakeError(ErrorCode::kUnavailable, "broker test:1 unreachable");
    return {};
  }
  bool WaitAttempts(int n, std::chrono::seconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return attempts_ >= n; });
  }
  std::optional<bool> IsConnected() const override {
    std::lock_guard l(mu_);
    return !down_;
  }
  void Up() {
    {
      std::lock_guard l(mu_);
      down_ = false;
    }
    NotifyReady();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool down_ = true;
  int attempts_ = 0;
};

TEST(Outage, ReadyNotificationRetriesABlockedHeadAtOnceAndEachChangeIsReportedOnce) {
  TempDir dir;
  auto logger = std::make_shared<RecordingLogger>();
  auto observer = std::make_shared<OutageObserver>();
  OutboxOptions o{.path = dir.Sub("db")};
  o.logger = logger;
  o.observers = {observer};
  auto outbox = MustOpen(o.path, o);
  ASSERT_TRUE(outbox);
  // The head's backoff reaches max_backoff (2 s) after its 3rd failure:
  // failures at 0, 0.5 s, 1.5 s and 3.5 s, the next attempt then due at 5.5 s.
  ASSERT_OK_AND_ASSIGN(
      Stream * s,
      outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder,
                                    .retry = RetryPolicy{.initial_backoff = 500ms, .max_backoff = 2s, .jitter = 0}}));
  for (int i = 0; i < 2; ++i) {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*s, {.type = "order", .key = "o", .payload = std::to_string(i)}));
    ASSERT_OK(txn.Commit());
  }
  auto publisher = std::make_shared<ToggledPublisher>();
  const auto down_at = std::chrono::steady_clock::now();
  {
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher, {.interval = 10s}));
    relay->Start();
    ASSERT_TRUE(publisher->WaitAttempts(4, 30s));
    const auto up_at = std::chrono::steady_clock::now();
    publisher->Up();
    ASSERT_TRUE(observer->WaitPublished(2, 30s));
    relay->Stop();
    ASSERT_OK_AND_ASSIGN(StoredEvent head, outbox->FindEvent(*s, 1));
    EXPECT_EQ(head->attempts, 4u) << "the wake changes no attempt count";
    const auto first = *observer->first_published;
    const auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    EXPECT_GT(up_at - down_at, 2s) << "down for longer than max_backoff";
    EXPECT_LT(first - up_at, 1s) << "first delivery " << ms(first - up_at) << " ms after the ready notification";
    std::printf(
        "outage timeline (ms from the first attempt): publisher down logged %lld, stream blocked logged %lld, "
        "ready (up) %lld, up logged %lld, first delivery %lld, unblocked logged %lld\n",
        static_cast<long long>(ms(*logger->At("publisher down") - down_at)),
        static_cast<long long>(ms(*logger->At("stream blocked") - down_at)),
        static_cast<long long>(ms(up_at - down_at)), static_cast<long long>(ms(*logger->At("publisher up") - down_at)),
        static_cast<long long>(ms(first - down_at)),
        static_cast<long long>(ms(*logger->At("stream unblocked") - down_at)));
    std::printf("first delivery %lld us after the ready notification\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(first - up_at).count()));
  }
  for (const std::string& line : logger->lines())
    std::printf("  %s\n", line.c_str());
  // Four failures, one change each way.
  std::lock_guard l(observer->mu);
  EXPECT_EQ(observer->down, 1);
  EXPECT_EQ(observer->up, 1);
  EXPECT_EQ(observer->blocked, 1);
  EXPECT_EQ(observer->unblocked, 1);
  EXPECT_EQ(observer->blocked_seq, 1u);
  EXPECT_EQ(observer->unblocked_seq, 1u);
  EXPECT_NE(observer->down_error.find("broker test:1 unreachable"), std::string::npos) << observer->down_error;
  EXPECT_EQ(logger->Count("publisher down"), 1);
  EXPECT_EQ(logger->Count("publisher up"), 1);
  EXPECT_EQ(logger->Count("stream blocked"), 1);
  EXPECT_EQ(logger->Count("stream unblocked"), 1);
}

// RocksDB's info log goes to the Logger only when asked, at its own levels.
TEST(Logger, RocksDbInfoLogIsRoutedOnlyWhenAsked) {
  for (bool routed : {false, true}) {
    TempDir dir;
    auto logger = std::make_shared<RecordingLogger>();
    OutboxOptions o{.path = dir.Sub("db")};
    o.logger = logger;
    o.info_log_level = rocksdb::InfoLogLevel::INFO_LEVEL;
    o.info_log_to_logger = routed;
    {
      auto outbox = MustOpen(o.path, o);
      ASSERT_TRUE(outbox);
    }
    if (!routed) {
      EXPECT_EQ(logger->Count("rocksdb"), 0);
      continue;
    }
    EXPECT_GT(logger->Count("rocksdb"), 0);
    auto lines = logger->lines();
    auto it = std::find_if(lines.begin(), lines.end(),
                           [](const std::string& l) { return l.find(" INFO rocksdb line=") != std::string::npos; });
    ASSERT_NE(it, lines.end()) << (lines.empty() ? "" : lines[0]);
  }
}

TEST(Logger, BacklogCrossingTheThresholdIsLoggedOncePerCrossing) {
  TempDir dir;
  auto logger = std::make_shared<RecordingLogger>();
  OutboxOptions o{.path = dir.Sub("db")};
  o.logger = logger;
  o.backlog_log_threshold = 4;
  auto outbox = MustOpen(o.path, o);
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
  for (int i = 0; i < 5; ++i) {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*s, {.type = "order", .key = "o", .payload = std::to_string(i)}));
    ASSERT_OK(txn.Commit());
  }
  auto publisher = std::make_shared<ToggledPublisher>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
  for (int pass = 0; pass < 3; ++pass)
    ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(logger->Count("backlog above threshold"), 1);
  EXPECT_EQ(logger->Count("backlog back below half the threshold"), 0);
  publisher->Up();
  for (int pass = 0; pass < 3; ++pass)
    ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(logger->Count("backlog above threshold"), 1);
  EXPECT_EQ(logger->Count("backlog back below half the threshold"), 1);
  auto lines = logger->lines();
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find("WARN backlog above threshold stream=orders backlog=5 threshold=4") != std::string::npos;
  })) << ::testing::PrintToString(lines);
}

// An observer that throws from an outage callback is isolated like the others.
TEST(Outage, ThrowingOutageObserverGoesToCaptureError) {
  struct Throwing final : Observer {
    void OnPublisherDown(const Error&) override { throw std::runtime_error("observer bug"); }
  };
  TempDir dir;
  std::vector<std::string> captured;
  std::mutex mu;
  OutboxOptions o{.path = dir.Sub("db")};
  o.observers = {std::make_shared<Throwing>()};
  o.capture_error = [&](const Error& e) {
    std::lock_guard l(mu);
    captured.push_back(e.ToString());
  };
  auto outbox = MustOpen(o.path, o);
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(*s, {.type = "order", .key = "o", .payload = "x"}));
  ASSERT_OK(txn.Commit());
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, std::make_shared<ToggledPublisher>()));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.blocked, 1u);
  std::lock_guard l(mu);
  EXPECT_TRUE(std::any_of(captured.begin(), captured.end(),
                          [](const std::string& c) { return c.find("observer bug") != std::string::npos; }));
}

}  // namespace
}  // namespace jaiminho
