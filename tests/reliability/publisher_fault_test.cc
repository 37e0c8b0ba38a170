// Publisher faults beyond relay_test: exceptions thrown from PublishBatch and
// from an inline publish, batch publishers that attempt only part of a batch,
// slow publishes alongside committing threads, Stop during a slow publish, and
// two relays plus publish-on-commit against a slow, flaky, throwing broker. The
// relay survives, retries per policy, keeps order where asked, and (without a
// crash) delivers each event once.
#include <condition_variable>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::RecordingPublisher;
using testing::TempDir;

constexpr int64_t kT0 = 1'700'000'000'000'000;

RetryPolicy Fast(uint32_t max_attempts = 0) {
  return RetryPolicy{.max_attempts = max_attempts,
                     .initial_backoff = std::chrono::microseconds(100),
                     .max_backoff = std::chrono::milliseconds(2),
                     .jitter = 0.5};
}

void CommitN(Outbox& outbox, Stream& s, int n, bool sync = true) {
  auto txn = outbox.Begin();
  for (int i = 0; i < n; ++i)
    ASSERT_OK(txn.Enqueue(s, {.type = "t", .payload = "p" + std::to_string(i)}));
  ASSERT_OK(txn.Commit({.sync = sync}));
}

std::vector<uint64_t> SeqsOf(const std::vector<testing::Delivery>& ds, std::string_view stream) {
  std::vector<uint64_t> out;
  for (const auto& d : ds) {
    if (d.stream == stream) out.push_back(d.seq);
  }
  return out;
}

std::vector<uint64_t> OneTo(uint64_t n) {
  std::vector<uint64_t> v(n);
  for (uint64_t i = 0; i < n; ++i)
    v[i] = i + 1;
  return v;
}

// Runs RunOnce until nothing is pending or retrying (the clock is advanced
// past every backoff when `clock` is given).
void DrainWith(Relay& relay, Outbox& outbox, ManualClock* clock) {
  for (int pass = 0; pass < 10000; ++pass) {
    ASSERT_OK(relay.RunOnce());
    ASSERT_OK_AND_ASSIGN(auto metrics, CollectMetrics(outbox));
    uint64_t waiting = 0;
    for (const auto& m : metrics)
      waiting += m.pending + m.retrying;
    if (waiting == 0) return;
    if (clock != nullptr) clock->Advance(std::chrono::minutes(10));
  }
  FAIL() << "never drained";
}

// ---------------------------------------------------------------------------

// PublishBatch (not Publish) throws: after delivering part of the batch, or
// before anything. The relay survives, treats the batch as failed (the first
// event retried with backoff, the rest of a keep-order run not attempted), and
// delivers everything later, keep-order streams in order.
TEST(PublisherFault, ThrowingPublishBatchIsRetriedAndKeepsOrder) {
  struct ThrowingBatch : RecordingPublisher {
    std::atomic<int> calls{0};
    void PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) override {
      const int call = calls.fetch_add(1);
      if (call == 0) {
        // Delivers two events, then throws: the relay cannot know they went out.
        for (size_t i = 0; i < events.size() && i < 2; ++i)
          (void)Publish(events[i]);
        throw std::runtime_error("broker client crashed mid-batch");
      }
      if (call == 1) throw 42;  // not even a std::exception
      Publisher::PublishBatch(events, order, results);
    }
  };
  TempDir dir;
  auto clock = std::make_shared<ManualClock>(FromMicros(kT0));
  std::vector<Error> captured;
  std::mutex captured_mu;
  OutboxOptions options{.retry = Fast(), .clock = clock};
  options.capture_error = [&](const Error& e) {
    std::lock_guard l(captured_mu);
    captured.push_back(e);
  };
  auto outbox = MustOpen(dir.Sub("db"), options);
  ASSERT_OK_AND_ASSIGN(Stream * ordered, outbox->OpenStream("ordered", {.strategy = Strategy::kKeepOrder}));
  ASSERT_OK_AND_ASSIGN(Stream * loose, outbox->OpenStream("loose", {.strategy = Strategy::kPublishOnCommit}));
  CommitN(*outbox, *ordered, 6);
  CommitN(*outbox, *loose, 6);
  auto publisher = std::make_shared<ThrowingBatch>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher, {.streams = {"ordered", "loose"}, .batch_size = 4}));
  ASSERT_OK(relay->RunOnce());  // a throwing publisher fails events, not the pass
  DrainWith(*relay, *outbox, clock.get());
  auto ds = publisher->deliveries();
  // "ordered": 1, 2 delivered before the throw, then (retried from 1) 1..6 in order.
  auto o = SeqsOf(ds, "ordered");
  ASSERT_GE(o.size(), 6u);
  std::vector<uint64_t> tail(o.end() - 6, o.end());
  EXPECT_EQ(tail, OneTo(6)) << "after the failed batch, the stream is delivered again in order from its head";
  std::set<uint64_t> lo;
  for (uint64_t s : SeqsOf(ds, "loose"))
    lo.insert(s);
  EXPECT_EQ(lo.size(), 6u) << "every publish-on-commit event delivered";
  ASSERT_OK_AND_ASSIGN(auto m, CollectMetrics(*outbox));
  for (const auto& sm : m) {
    EXPECT_EQ(sm.parked_records, 0u) << "a thrown exception is retryable, not permanent";
  }
  std::lock_guard l(captured_mu);
  bool saw_std = false, saw_other = false;
  for (const auto& e : captured) {
    saw_std |= e.message().find("broker client crashed mid-batch") != std::string::npos;
    saw_other |= e.message().find("non-standard exception") != std::string::npos;
  }
  EXPECT_TRUE(saw_std) << "the exception's text reaches capture_error";
  EXPECT_TRUE(saw_other);
}

// The inline publisher throws: Commit still succeeds (the commit is durable;
// nothing is thrown at the caller), the failure signal fires, and the relay
// delivers the event later.
TEST(PublisherFault, ThrowingInlinePublishNeitherFailsTheCommitNorLosesTheEvent) {
  struct Thrower : Publisher {
    Status Publish(const Event&) override { throw std::runtime_error("inline boom"); }
  };
  struct Failures : Observer {
    std::atomic<int> failed{0};
    void OnFailedToPublish(const Event&, const Error&) override { ++failed; }
  };
  for (InlineDispatch dispatch : {InlineDispatch::kCommittingThread, InlineDispatch::kDispatcherThread}) {
    TempDir dir;
    auto observer = std::make_shared<Failures>();
    auto clock = std::make_shared<ManualClock>(FromMicros(kT0));
    auto outbox = MustOpen(dir.Sub("db"), {.retry = Fast(),
                                           .publisher = std::make_shared<Thrower>(),
                                           .inline_dispatch = dispatch,
                                           .observers = {observer},
                                           .clock = clock});
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
    for (int i = 0; i < 5; ++i)
      CommitN(*outbox, *s, 2);
    // Closing stops the dispatcher; what it had not published stays for the relay.
    ASSERT_OK(outbox->Close());
    outbox = MustOpen(dir.Sub("db"), {.retry = Fast(), .clock = clock});
    ASSERT_OK_AND_ASSIGN(s, outbox->FindStream("s"));
    auto good = std::make_shared<RecordingPublisher>();
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, good));
    DrainWith(*relay, *outbox, clock.get());
    std::vector<uint64_t> seqs = SeqsOf(good->deliveries(), "s");
    std::sort(seqs.begin(), seqs.end());
    EXPECT_EQ(seqs, OneTo(10)) << "each event delivered once by the relay";
    if (dispatch == InlineDispatch::kCommittingThread) {
      EXPECT_EQ(observer->failed.load(), 10);
    }
  }
}

// A batch publisher that attempts only the first two events of each batch and
// leaves the other results unset: the rest are "not attempted", stay due, and
// go out in later batches, in order.
TEST(PublisherFault, PartialBatchPublisherGetsTheRestLaterInOrder) {
  struct FirstTwo : RecordingPublisher {
    void PublishBatch(std::span<const Event> events, Order, std::span<Status> results) override {
      for (size_t i = 0; i < events.size() && i < 2; ++i)
        results[i] = Publish(events[i]);
    }
  };
  TempDir dir;
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * ordered, outbox->OpenStream("ordered", {.strategy = Strategy::kKeepOrder}));
  ASSERT_OK_AND_ASSIGN(Stream * loose, outbox->OpenStream("loose"));
  CommitN(*outbox, *ordered, 9);
  CommitN(*outbox, *loose, 9);
  auto publisher = std::make_shared<FirstTwo>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher, {.batch_size = 5}));
  DrainWith(*relay, *outbox, nullptr);
  auto ds = publisher->deliveries();
  EXPECT_EQ(SeqsOf(ds, "ordered"), OneTo(9));
  auto lo = SeqsOf(ds, "loose");
  std::sort(lo.begin(), lo.end());
  EXPECT_EQ(lo, OneTo(9));
}

// A publish that is blocked (a broker that does not answer) holds only its own
// stream's delivery: committing threads go on, and once the broker answers
// everything is delivered in order.
TEST(PublisherFault, SlowRelayPublishDoesNotBlockCommits) {
  struct Gate : RecordingPublisher {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, open = false;
    Status Publish(const Event& e) override {
      {
        std::unique_lock l(mu);
        entered = true;
        cv.notify_all();
        cv.wait(l, [&] { return open; });
      }
      return RecordingPublisher::Publish(e);
    }
  };
  TempDir dir;
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder}));
  auto gate = std::make_shared<Gate>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, gate, {.interval = std::chrono::milliseconds(10)}));
  relay->Start();
  CommitN(*outbox, *s, 1);
  {
    std::unique_lock l(gate->mu);
    gate->cv.wait(l, [&] { return gate->entered; });
  }
  // The relay is stuck inside Publish; 4 threads commit 50 transactions each.
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        CommitN(*outbox, *s, 1);
    });
  }
  for (auto& w : writers)
    w.join();
  EXPECT_EQ(gate->count(), 0u) << "nothing delivered while the broker hangs";
  {
    std::lock_guard l(gate->mu);
    gate->open = true;
  }
  gate->cv.notify_all();
  ASSERT_TRUE(gate->WaitFor(201, std::chrono::seconds(60))) << gate->count();
  relay->Stop();
  EXPECT_EQ(SeqsOf(gate->deliveries(), "s"), OneTo(201));
}

// Stop while a publish is slow: Stop waits for it, its outcome is written, and
// a later relay delivers the rest without losing or repeating anything.
TEST(PublisherFault, StopDuringASlowPublishLosesAndRepeatsNothing) {
  struct Slow : RecordingPublisher {
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    bool release = false;
    Status Publish(const Event& e) override {
      std::unique_lock l(mu);
      ++in_flight;
      cv.notify_all();
      cv.wait(l, [&] { return release; });
      l.unlock();
      return RecordingPublisher::Publish(e);
    }
  };
  TempDir dir;
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder}));
  CommitN(*outbox, *s, 20);
  auto slow = std::make_shared<Slow>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, slow, {.batch_size = 4}));
  relay->Start();
  {
    std::unique_lock l(slow->mu);
    slow->cv.wait(l, [&] { return slow->in_flight > 0; });
  }
  std::thread stopper([&] { relay->Stop(); });  // blocks until the publish returns
  {
    std::lock_guard l(slow->mu);
    slow->release = true;
  }
  slow->cv.notify_all();
  stopper.join();
  relay.reset();
  const size_t first = slow->count();
  EXPECT_GE(first, 1u);
  ASSERT_OK_AND_ASSIGN(auto rest, Relay::Make(*outbox, slow));
  DrainWith(*rest, *outbox, nullptr);
  EXPECT_EQ(SeqsOf(slow->deliveries(), "s"), OneTo(20)) << "each event once, in order";
}

// Retries per policy under random failures: with max_attempts = 3, every event
// ends either delivered exactly once or parked after exactly 3 failed attempts,
// never both, never lost. Keep-order streams park (kPark) and go on in order.
TEST(PublisherFault, RandomFailuresWithLimitedAttemptsDeliverOrParkEachEventOnce) {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>(FromMicros(kT0));
  auto outbox = MustOpen(dir.Sub("db"), {.retry = Fast(3), .clock = clock});
  ASSERT_OK_AND_ASSIGN(Stream * ordered, outbox->OpenStream("ordered", {.strategy = Strategy::kKeepOrder,
                                                                        .on_exhaustion = OnExhaustion::kPark}));
  ASSERT_OK_AND_ASSIGN(Stream * loose, outbox->OpenStream("loose"));
  for (int i = 0; i < 20; ++i) {
    CommitN(*outbox, *ordered, 10);
    CommitN(*outbox, *loose, 10);
  }
  auto publisher = std::make_shared<RecordingPublisher>();
  std::mt19937 rng(99);
  std::mutex rng_mu;
  std::map<std::pair<std::string, uint64_t>, int> failures;
  publisher->fail = [&](const Event& e) -> std::optional<Error> {
    std::lock_guard l(rng_mu);
    if (rng() % 100 < 40) {
      ++failures[{std::string(e.id.stream), e.id.seq}];
      return Error(ErrorCode::kUnavailable, "flaky broker");
    }
    return std::nullopt;
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher, {.batch_size = 16, .seed = 5}));
  DrainWith(*relay, *outbox, clock.get());
  auto ds = publisher->deliveries();
  for (Stream* s : {ordered, loose}) {
    ASSERT_OK_AND_ASSIGN(auto parked, outbox->ListEvents(*s, EventState::kParked, 10000));
    std::set<uint64_t> parked_seqs;
    for (const auto& p : parked) {
      parked_seqs.insert(p->id.seq);
      EXPECT_EQ(p->attempts, 3u);
      EXPECT_EQ((failures[{s->name(), p->id.seq}]), 3) << "parked after exactly max_attempts failures";
      EXPECT_NE(p->note.find("3 attempts exhausted"), std::string_view::npos) << p->note;
    }
    std::vector<uint64_t> delivered = SeqsOf(ds, s->name());
    std::set<uint64_t> once(delivered.begin(), delivered.end());
    EXPECT_EQ(once.size(), delivered.size()) << s->name() << ": delivered twice without a crash";
    for (uint64_t q : delivered)
      EXPECT_FALSE(parked_seqs.contains(q)) << s->name() << " seq " << q << " delivered and parked";
    EXPECT_EQ(once.size() + parked_seqs.size(), 200u) << s->name() << ": every event delivered or parked";
    EXPECT_GT(parked_seqs.size(), 0u) << "with 40% failures some event exhausts 3 attempts";
    if (s == ordered) {
      EXPECT_TRUE(std::is_sorted(delivered.begin(), delivered.end())) << "keep-order survives parking";
    }
  }
}

// Two relays, publish-on-commit from a dispatcher thread, four committing
// threads, and a broker that is slow, fails 20% of attempts and throws on 5%:
// everything is delivered, keep-order streams in exact order, each event once.
TEST(PublisherStress, TwoRelaysAndInlineDispatchAgainstASlowFlakyThrowingBroker) {
  struct Broker : RecordingPublisher {
    std::mutex mu;
    std::mt19937 rng{2024};
    std::atomic<int> failed{0}, thrown{0};
    Status Publish(const Event& e) override {
      int roll, delay_us;
      {
        std::lock_guard l(mu);
        roll = static_cast<int>(rng() % 100);
        delay_us = static_cast<int>(rng() % 300);
      }
      // A slow broker: the latency of a round trip is the workload here.
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      if (roll < 5) {
        ++thrown;
        throw std::runtime_error("broker client threw");
      }
      if (roll < 25) {
        ++failed;
        return MakeError(ErrorCode::kUnavailable, "broker busy");
      }
      return RecordingPublisher::Publish(e);
    }
  };
  TempDir dir;
  auto broker = std::make_shared<Broker>();
  auto outbox = MustOpen(dir.Sub("db"),
                         {.retry = Fast(), .publisher = broker, .inline_dispatch = InlineDispatch::kDispatcherThread});
  ASSERT_OK_AND_ASSIGN(Stream * a, outbox->OpenStream("ordered.a", {.strategy = Strategy::kKeepOrder}));
  ASSERT_OK_AND_ASSIGN(Stream * b, outbox->OpenStream("ordered.b", {.strategy = Strategy::kKeepOrder}));
  ASSERT_OK_AND_ASSIGN(Stream * l, outbox->OpenStream("loose"));
  ASSERT_OK_AND_ASSIGN(
      auto r1, Relay::Make(*outbox, broker, {.interval = std::chrono::milliseconds(5), .batch_size = 8, .seed = 1}));
  ASSERT_OK_AND_ASSIGN(
      auto r2, Relay::Make(*outbox, broker, {.interval = std::chrono::milliseconds(5), .batch_size = 32, .seed = 2}));
  r1->Start();
  r2->Start();
  constexpr int kThreads = 4, kPerThread = 60;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto txn = outbox->Begin();
        EXPECT_OK(txn.Enqueue(*a, {.type = "a"}));
        EXPECT_OK(txn.Enqueue(*b, {.type = "b"}));
        EXPECT_OK(txn.Enqueue(*l, {.type = "l"}));
        EXPECT_OK(txn.Commit({.sync = (i + t) % 2 == 0}));
      }
    });
  }
  for (auto& w : writers)
    w.join();
  const size_t total = 3 * kThreads * kPerThread;
  ASSERT_TRUE(broker->WaitFor(total, std::chrono::seconds(120))) << broker->count() << " of " << total;
  r1->Stop();
  r2->Stop();
  auto ds = broker->deliveries();
  EXPECT_EQ(ds.size(), total) << "no duplicate without a crash";
  EXPECT_EQ(SeqsOf(ds, "ordered.a"), OneTo(kThreads * kPerThread));
  EXPECT_EQ(SeqsOf(ds, "ordered.b"), OneTo(kThreads * kPerThread));
  auto lo = SeqsOf(ds, "loose");
  std::sort(lo.begin(), lo.end());
  EXPECT_EQ(lo, OneTo(kThreads * kPerThread));
  EXPECT_GT(broker->failed.load(), 0);
  EXPECT_GT(broker->thrown.load(), 0);
  RecordProperty("failed", broker->failed.load());
  RecordProperty("thrown", broker->thrown.load());
}

}  // namespace
}  // namespace jaiminho
