// Close racing other threads (issue 13, item 3): commits racing Close either
// succeed (and are there after reopen) or fail with kClosed; a started Relay
// whose Outbox closes stops and reports kClosed. Nothing crashes.
//
// Each test body runs in a child process (gtest death-test machinery,
// "threadsafe" style), so a crash fails the test instead of killing the binary.
#include <condition_variable>
#include <cstdio>
#include <thread>

#include "support/child.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::RecordingPublisher;
using testing::TempDir;

struct Committed {
  std::string key;
  uint64_t seq;
};

// One round: `threads` committers (each a business Put and an event) until
// Close, called once `before_close` commits succeeded.
std::string CommitsRacingClose(int threads, int before_close) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  auto outbox = MustOpen(path, {.business_families = {{.name = "devices"}}, .clean_interval = std::chrono::seconds(0)});
  if (!outbox) return "open";
  auto stream = outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder});
  auto family = outbox->FindBusinessFamily("devices");
  if (!stream || !family) return "setup";
  std::atomic<int> ok{0};
  std::vector<std::vector<Committed>> done(threads);
  std::vector<std::string> errors(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int j = 0;; ++j) {
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(j);
        auto txn = outbox->Begin();
        if (!txn.Put(*family, key, "v") || !txn.Enqueue(**stream, {.type = "t", .key = key, .payload = key})) {
          errors[t] = "Put/Enqueue failed";
          return;
        }
        auto r = txn.Commit({.sync = j % 2 == 0});
        if (r) {
          done[t].push_back({key, r->events.at(0).seq});
          ok.fetch_add(1);
          continue;
        }
        if (r.error().code() != ErrorCode::kClosed || r.error().message().find(path) == std::string::npos) {
          errors[t] = "commit failed with " + r.error().ToString();
        }
        return;
      }
    });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (ok.load() < before_close && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  auto closed = outbox->Close();
  for (auto& w : workers)
    w.join();
  if (!closed) return "Close: " + closed.error().ToString();
  for (const auto& e : errors) {
    if (!e.empty()) return e;
  }
  if (ok.load() < before_close) return "too few commits before Close";
  outbox.reset();
  auto again = Outbox::Open({.path = path, .business_families = {{.name = "devices"}}});
  if (!again) return "reopen: " + again.error().ToString();
  auto f = (*again)->FindBusinessFamily("devices");
  auto s = (*again)->FindStream("s");
  if (!f || !s) return "after reopen";
  for (const auto& list : done) {
    for (const auto& c : list) {
      auto v = (*again)->Get(*f, c.key);
      if (!v || !v->has_value()) return "acknowledged business write " + c.key + " missing after reopen";
      auto ev = (*again)->FindEvent(**s, c.seq);
      if (!ev || (*ev)->key != c.key) return "acknowledged event " + c.key + " missing after reopen";
    }
  }
  return "";
}

TEST(CloseRace, CommitsEitherSucceedOrFailClosed) {
  EXPECT_IN_CHILD([] {
    for (int round = 0; round < 5; ++round) {
      auto e = CommitsRacingClose(4, 20 + 20 * round);
      if (!e.empty()) return "round " + std::to_string(round) + ": " + e;
    }
    return std::string();
  }());
}

TEST(CloseRace, ConcurrentCloses) {
  EXPECT_IN_CHILD([] {
    TempDir dir;
    auto outbox = MustOpen(dir.Sub("db"));
    if (!outbox) return std::string("open");
    std::vector<std::thread> closers;
    std::atomic<int> failed{0};
    for (int i = 0; i < 4; ++i) {
      closers.emplace_back([&] {
        if (!outbox->Close()) failed.fetch_add(1);
      });
    }
    for (auto& c : closers)
      c.join();
    return failed.load() == 0 ? std::string() : std::string("a Close failed");
  }());
}

TEST(CloseRace, StartedRelayStopsWithClosed) {
  EXPECT_IN_CHILD([] {
    TempDir dir;
    const std::string path = dir.Sub("db");
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Error> captured;
    auto outbox = MustOpen(path, {.clean_interval = std::chrono::seconds(0), .capture_error = [&](const Error& e) {
                                    std::lock_guard l(mu);
                                    captured.push_back(e);
                                    cv.notify_all();
                                  }});
    if (!outbox) return std::string("open");
    auto stream = outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder});
    if (!stream) return std::string("stream");
    auto publisher = std::make_shared<RecordingPublisher>();
    auto made = Relay::Make(*outbox, publisher, {.interval = std::chrono::milliseconds(50)});
    if (!made) return "Relay::Make: " + made.error().ToString();
    auto relay = std::move(*made);
    relay->Start();
    auto txn = outbox->Begin();
    if (!txn.Enqueue(**stream, {.type = "t", .payload = "p"}) || !txn.Commit()) return std::string("commit");
    if (!publisher->WaitFor(1)) return std::string("not delivered");
    if (auto c = outbox->Close(); !c) return "close: " + c.error().ToString();
    bool reported = false;
    {
      std::unique_lock l(mu);
      reported = cv.wait_for(l, std::chrono::seconds(20), [&] {
        for (const auto& e : captured) {
          if (e.code() == ErrorCode::kClosed && e.message().find(path) != std::string::npos) return true;
        }
        return false;
      });
    }
    relay->Stop();
    if (!reported) return std::string("the relay did not report kClosed");
    if (publisher->count() != 1) return std::string("delivered after Close");
    return std::string();
  }());
}

}  // namespace
}  // namespace jaiminho
