// Relay, strategies, handlers and signals: django-jaiminho's delivery
// behaviour (what is left on disk after success and failure, keep-order
// stopping at a failure, signals) and what goes beyond it (wake-up on commit,
// retries with backoff, parking, requeue, skip, observer isolation).
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::RawKeys;
using testing::RecordingPublisher;
using testing::TempDir;

constexpr int64_t kT0 = 1'700'000'000'000'000;

// Counts every signal.
class CountingObserver : public Observer {
 public:
  void OnPublished(const Event&) override { ++published; }
  void OnFailedToPublish(const Event&, const Error&) override { ++failed; }
  void OnPublishedByRelay(const Event&) override { ++published_by_relay; }
  void OnFailedToPublishByRelay(const Event&, const Error&) override { ++failed_by_relay; }
  void OnParked(const Event&, std::string_view r) override {
    ++parked;
    std::lock_guard l(mu);
    reasons.emplace_back(r);
  }
  std::atomic<int> published{0}, failed{0}, published_by_relay{0}, failed_by_relay{0}, parked{0};
  std::mutex mu;
  std::vector<std::string> reasons;
};

struct Fixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(FromMicros(kT0));
  std::shared_ptr<RecordingPublisher> publisher = std::make_shared<RecordingPublisher>();
  std::shared_ptr<CountingObserver> observer = std::make_shared<CountingObserver>();
  std::vector<Error> captured;
  std::mutex captured_mu;
  std::unique_ptr<Outbox> outbox;

  OutboxOptions Options(bool inline_publisher) {
    OutboxOptions o;
    o.clock = clock;
    o.observers = {observer};
    o.retry = RetryPolicy{.initial_backoff = std::chrono::seconds(1),
                          .max_backoff = std::chrono::seconds(60),
                          .multiplier = 2.0,
                          .jitter = 0.0};
    if (inline_publisher) o.publisher = publisher;
    o.capture_error = [this](const Error& e) {
      std::lock_guard l(captured_mu);
      captured.push_back(e);
    };
    return o;
  }
  void Open(OutboxOptions o) {
    outbox = MustOpen(dir.Sub("db"), std::move(o));
    ASSERT_NE(outbox, nullptr);
  }
  Stream* S(std::string_view name, StreamOptions so = {}) {
    auto s = outbox->OpenStream(name, so);
    EXPECT_TRUE(s.has_value());
    return s ? *s : nullptr;
  }
  Receipt Commit(Stream* s, int n, bool sync = true, std::string_view type = "t") {
    auto txn = outbox->Begin();
    for (int i = 0; i < n; ++i) {
      std::string payload = "p" + std::to_string(i);
      EXPECT_OK(txn.Enqueue(*s, {.type = type, .key = "k", .payload = payload}));
    }
    auto r = txn.Commit({.sync = sync});
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().ToString());
    return r ? *r : Receipt{};
  }
  std::vector<uint64_t> Seqs(const std::vector<testing::Delivery>& ds, std::string_view stream) {
    std::vector<uint64_t> out;
    for (const auto& d : ds) {
      if (d.stream == stream) out.push_back(d.seq);
    }
    return out;
  }
  // The events' states as key tags, sorted (testing::StateTags).
  std::string Tags(Stream* s) { return testing::StateTags(*outbox, *s); }
};

// ---------------------------------------------------------------------------
// What is left on disk: strategy x persist_all_events x delete_after_send.

struct MatrixCase {
  Strategy strategy;
  bool persist_all;
  bool delete_after_send;
};

class LeftOnDisk : public ::testing::TestWithParam<MatrixCase> {};

TEST_P(LeftOnDisk, AfterSuccess) {
  const MatrixCase c = GetParam();
  Fixture f;
  OutboxOptions o = f.Options(/*inline_publisher=*/true);
  o.persist_all_events = c.persist_all;
  o.delete_after_send = c.delete_after_send;
  f.Open(std::move(o));
  Stream* s = f.S("s", {.strategy = c.strategy});
  f.Commit(s, 1);
  if (c.strategy == Strategy::kPublishOnCommit) {
    // Published inline by the commit itself.
    EXPECT_EQ(f.publisher->count(), 1u);
    EXPECT_EQ(f.observer->published.load(), 1);
    EXPECT_EQ(f.observer->published_by_relay.load(), 0);
    bool keeps = c.persist_all && !c.delete_after_send;
    EXPECT_EQ(f.Tags(s), keeps ? "s" : "") << "seed: no record unless persist_all_events, then delete_after_send";
  } else {
    EXPECT_EQ(f.publisher->count(), 0u) << "keep-order is never published inline";
    EXPECT_EQ(f.Tags(s), "p");
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
    ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
    EXPECT_EQ(st.published, 1u);
    EXPECT_EQ(f.observer->published_by_relay.load(), 1);
    EXPECT_EQ(f.Tags(s), c.delete_after_send ? "" : "s") << "relay: delete_after_send, else mark sent";
  }
  if (f.Tags(s) == "s") {
    ASSERT_OK_AND_ASSIGN(auto sent, f.outbox->ListEvents(*s, EventState::kSent));
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(ToMicros(sent[0]->sent_at), kT0) << "sent_at is the clock's now";
  }
}

TEST_P(LeftOnDisk, AfterFailure) {
  const MatrixCase c = GetParam();
  Fixture f;
  OutboxOptions o = f.Options(/*inline_publisher=*/true);
  o.persist_all_events = c.persist_all;
  o.delete_after_send = c.delete_after_send;
  f.Open(std::move(o));
  Stream* s = f.S("s", {.strategy = c.strategy});
  f.publisher->fail = [](const Event&) { return Error(ErrorCode::kUnavailable, "broker down"); };
  f.Commit(s, 1);
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  if (c.strategy == Strategy::kPublishOnCommit) {
    EXPECT_EQ(f.observer->failed.load(), 1) << "event_failed_to_publish fired";
    EXPECT_EQ(f.Tags(s), "r") << "the record stays for the relay (retry range)";
    ASSERT_OK_AND_ASSIGN(auto r, f.outbox->ListEvents(*s, EventState::kRetrying));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0]->attempts, 1u);
    EXPECT_NE(r[0]->last_error.find("broker down"), std::string_view::npos);
    EXPECT_EQ(ToMicros(r[0]->next_attempt_at), kT0 + 1'000'000);
  } else {
    ASSERT_OK(relay->RunOnce());
    EXPECT_EQ(f.observer->failed_by_relay.load(), 1);
    EXPECT_EQ(f.Tags(s), "p") << "keep-order: the head stays pending and blocks";
    ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*s, 1));
    EXPECT_EQ(e->attempts, 1u);
  }
  EXPECT_EQ(f.publisher->count(), 0u);
  // Recovery: the relay delivers it once due.
  f.publisher->fail = nullptr;
  f.clock->Advance(std::chrono::seconds(2));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.publisher->count(), 1u);
  EXPECT_EQ(f.Tags(s), c.delete_after_send ? "" : "s");
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, LeftOnDisk,
    ::testing::Values(MatrixCase{Strategy::kPublishOnCommit, false, false},
                      MatrixCase{Strategy::kPublishOnCommit, false, true},
                      MatrixCase{Strategy::kPublishOnCommit, true, false},
                      MatrixCase{Strategy::kPublishOnCommit, true, true},
                      MatrixCase{Strategy::kKeepOrder, false, false}, MatrixCase{Strategy::kKeepOrder, false, true},
                      MatrixCase{Strategy::kKeepOrder, true, false}, MatrixCase{Strategy::kKeepOrder, true, true}),
    [](const ::testing::TestParamInfo<MatrixCase>& p) {
      return std::string(p.param.strategy == Strategy::kKeepOrder ? "KeepOrder" : "PublishOnCommit") +
             (p.param.persist_all ? "_PersistAll" : "_NoPersist") +
             (p.param.delete_after_send ? "_DeleteAfterSend" : "_MarkSent");
    });

// ---------------------------------------------------------------------------

TEST(Relay, KeepOrderStopsAtFirstFailureAndResumesInExactOrder) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("fills", {.strategy = Strategy::kKeepOrder});
  f.Commit(s, 10);
  f.publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.seq == 4) return Error(ErrorCode::kUnavailable, "seq 4 fails");
    return std::nullopt;
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher, {.batch_size = 3}));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.blocked, 1u);
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "fills"), (std::vector<uint64_t>{1, 2, 3}));
  // Still blocked on later passes, even past the backoff, while it fails.
  f.clock->Advance(std::chrono::seconds(5));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.publisher->count(), 3u);
  ASSERT_OK_AND_ASSIGN(StoredEvent head, f.outbox->FindEvent(*s, 4));
  EXPECT_EQ(head->attempts, 2u);
  auto m = CollectMetrics(*f.outbox);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->at(0).blocked);
  EXPECT_EQ(m->at(0).blocked_seq, 4u);
  EXPECT_NE(m->at(0).blocked_error.find("seq 4 fails"), std::string::npos);

  f.publisher->fail = nullptr;
  f.clock->Advance(std::chrono::seconds(10));
  ASSERT_OK(relay->RunOnce());
  std::vector<uint64_t> expected(10);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "fills"), expected);
}

TEST(Relay, KeepOrderHeadWaitsForItsBackoff) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("fills", {.strategy = Strategy::kKeepOrder});
  f.Commit(s, 2);
  int calls = 0;
  f.publisher->fail = [&](const Event&) -> std::optional<Error> {
    ++calls;
    return Error(ErrorCode::kUnavailable, "down");
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(calls, 1);
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(calls, 1) << "not due yet: no attempt";
  f.clock->Advance(std::chrono::milliseconds(999));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(calls, 1);
  f.clock->Advance(std::chrono::milliseconds(1));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(calls, 2);
}

TEST(Relay, BackoffScheduleIsExponentialWithCap) {
  Fixture f;
  OutboxOptions o = f.Options(false);
  o.retry = RetryPolicy{.initial_backoff = std::chrono::milliseconds(100),
                        .max_backoff = std::chrono::milliseconds(500),
                        .multiplier = 3.0,
                        .jitter = 0.0};
  f.Open(std::move(o));
  Stream* s = f.S("s", {.strategy = Strategy::kKeepOrder});
  f.Commit(s, 1);
  f.publisher->fail = [](const Event&) { return Error(ErrorCode::kUnavailable, "down"); };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  std::vector<int64_t> delays;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(relay->RunOnce());
    ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*s, 1));
    int64_t delay = ToMicros(e->next_attempt_at) - ToMicros(f.clock->Now());
    delays.push_back(delay);
    f.clock->Advance(std::chrono::microseconds(delay));
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{100'000, 300'000, 500'000, 500'000, 500'000}));
}

TEST(Relay, JitterStaysWithinItsBounds) {
  Fixture f;
  OutboxOptions o = f.Options(false);
  o.retry = RetryPolicy{.initial_backoff = std::chrono::seconds(10), .multiplier = 1.0, .jitter = 0.25};
  f.Open(std::move(o));
  Stream* s = f.S("s");
  f.Commit(s, 200);
  f.publisher->fail = [](const Event&) { return Error(ErrorCode::kUnavailable, "down"); };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher, {.seed = 42}));
  ASSERT_OK(relay->RunOnce());
  ASSERT_OK_AND_ASSIGN(auto retrying, f.outbox->ListEvents(*s, EventState::kRetrying, 1000));
  ASSERT_EQ(retrying.size(), 200u);
  std::set<int64_t> distinct;
  for (const auto& e : retrying) {
    int64_t d = ToMicros(e->next_attempt_at) - kT0;
    EXPECT_GE(d, 7'500'000);
    EXPECT_LE(d, 12'500'000);
    distinct.insert(d);
  }
  EXPECT_GT(distinct.size(), 100u) << "jitter spreads the retries";
}

TEST(Relay, PublishOnCommitFailureIsDeliveredLaterAndDoesNotBlock) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s");
  f.Commit(s, 5);
  f.publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.seq == 2) return Error(ErrorCode::kUnavailable, "flaky");
    return std::nullopt;
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.published, 4u);
  EXPECT_EQ(st.retried, 1u);
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "s"), (std::vector<uint64_t>{1, 3, 4, 5}));
  f.publisher->fail = nullptr;
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.publisher->count(), 4u) << "not due before its backoff";
  f.clock->Advance(std::chrono::seconds(1));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "s"), (std::vector<uint64_t>{1, 3, 4, 5, 2}));
  auto d = f.publisher->deliveries();
  EXPECT_EQ(d.back().attempts, 1u) << "the publisher sees how many attempts failed before";
}

TEST(Relay, ExhaustedPublishOnCommitEventsAreParkedWithReason) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s", {.retry = RetryPolicy{.max_attempts = 2, .jitter = 0}});
  f.Commit(s, 1);
  f.publisher->fail = [](const Event&) { return Error(ErrorCode::kUnavailable, "always down"); };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK(relay->RunOnce());
  f.clock->Advance(std::chrono::seconds(5));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.parked, 1u);
  EXPECT_EQ(f.Tags(s), "d");
  ASSERT_OK_AND_ASSIGN(auto parked, f.outbox->ListEvents(*s, EventState::kParked));
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0]->attempts, 2u);
  EXPECT_NE(parked[0]->note.find("2 attempts exhausted"), std::string_view::npos) << parked[0]->note;
  EXPECT_NE(parked[0]->note.find("always down"), std::string_view::npos);
  EXPECT_EQ(f.observer->parked.load(), 1);

  // Requeue: delivered once the publisher works again.
  f.publisher->fail = nullptr;
  ASSERT_OK(f.outbox->Requeue(*s, 1));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.publisher->count(), 1u);
  ASSERT_OK_AND_ASSIGN(StoredEvent sent, f.outbox->FindEvent(*s, 1));
  EXPECT_EQ(sent->state, EventState::kSent);
  EXPECT_NE(sent->note.find("requeued by operator"), std::string_view::npos) << "recorded, never silent";
}

TEST(Relay, KeepOrderExhaustedBlocksByDefaultUntilSkipped) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s", {.strategy = Strategy::kKeepOrder, .retry = RetryPolicy{.max_attempts = 2, .jitter = 0}});
  f.Commit(s, 3);
  f.publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.seq == 1) return Error(ErrorCode::kUnavailable, "poison");
    return std::nullopt;
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK(relay->RunOnce());
    f.clock->Advance(std::chrono::minutes(10));
  }
  EXPECT_EQ(f.publisher->count(), 0u) << "blocked: nothing after the head";
  ASSERT_OK_AND_ASSIGN(StoredEvent head, f.outbox->FindEvent(*s, 1));
  EXPECT_EQ(head->attempts, 2u) << "no automatic attempt after exhaustion";
  EXPECT_NE(head->note.find("requeue or skip"), std::string_view::npos) << head->note;

  ASSERT_ERROR(f.outbox->Skip(*s, 1, ""), ErrorCode::kInvalidArgument);
  ASSERT_OK(f.outbox->Skip(*s, 1, "bad fill, handled by hand"));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "s"), (std::vector<uint64_t>{2, 3}));
  ASSERT_OK_AND_ASSIGN(StoredEvent skipped, f.outbox->FindEvent(*s, 1));
  EXPECT_EQ(skipped->state, EventState::kParked);
  EXPECT_NE(skipped->note.find("bad fill, handled by hand"), std::string_view::npos);
}

TEST(Relay, KeepOrderExhaustedParksAndContinuesWhenConfigured) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s", {.strategy = Strategy::kKeepOrder,
                        .retry = RetryPolicy{.max_attempts = 1},
                        .on_exhaustion = OnExhaustion::kPark});
  f.Commit(s, 3);
  f.publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.seq == 2) return Error(ErrorCode::kUnavailable, "poison");
    return std::nullopt;
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "s"), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(f.Tags(s), "dss");
}

TEST(Relay, RequeueOfABlockedHeadRetriesItAtOnce) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s", {.strategy = Strategy::kKeepOrder});
  f.Commit(s, 2);
  f.publisher->fail = [](const Event&) { return Error(ErrorCode::kUnavailable, "down"); };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK(relay->RunOnce());
  f.publisher->fail = nullptr;
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.publisher->count(), 0u) << "waiting for backoff";
  ASSERT_OK(f.outbox->Requeue(*s, 1, "broker fixed"));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "s"), (std::vector<uint64_t>{1, 2}));
}

// Issue 20: requeue of an ordinary pending event "succeeded" and overwrote its note.
TEST(Relay, RequeueRefusesAnEventThatIsNeitherParkedRetryingNorBlocked) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* k = f.S("k", {.strategy = Strategy::kKeepOrder});
  Stream* p = f.S("p");
  f.Commit(k, 2);
  f.Commit(p, 1);
  for (auto [stream, seq] : {std::pair<Stream*, uint64_t>{k, 1}, {k, 2}, {p, 1}}) {
    auto refused = f.outbox->Requeue(*stream, seq, "why not");
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(
        refused.error().message().find("stream '" + stream->name() + "' seq " + std::to_string(seq) + " is pending"),
        std::string::npos)
        << refused.error().message();
    ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*stream, seq));
    EXPECT_EQ(e->note, "");
    EXPECT_TRUE(e->history.empty());
  }
  // Delivered, it is refused as sent.
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK(relay->RunOnce());
  ASSERT_ERROR(f.outbox->Requeue(*k, 1), ErrorCode::kInvalidArgument);
}

// Operator actions append to the event's history (at most kMaxHistory entries:
// a requeue/skip loop cannot grow a record without bound); the dropped ones are counted.
TEST(Relay, OperatorHistoryKeepsTheLastEntriesAndCountsTheDropped) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s");
  f.Commit(s, 1);
  f.publisher->fail = [](const Event&) { return Error(ErrorCode::kUnavailable, "down"); };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK(relay->RunOnce());  // retrying
  const std::string long_reason(5000, 'r');
  size_t first_size = 0;
  constexpr int kActions = 50;
  for (int i = 0; i < kActions; ++i) {
    const std::string reason = i == kActions - 1 ? long_reason : "round " + std::to_string(i);
    if (i % 2 == 0) {
      ASSERT_OK(f.outbox->Skip(*s, 1, reason));
    } else {
      ASSERT_OK(f.outbox->Requeue(*s, 1, reason, "ops-bot"));
    }
    ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*s, 1));
    if (i == 0) first_size = e->history.size();
  }
  EXPECT_EQ(first_size, 1u);
  ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*s, 1));
  EXPECT_EQ(e->state, EventState::kRetrying);
  ASSERT_EQ(e->history.size(), kMaxHistoryEntries);
  EXPECT_EQ(e->history_dropped, kActions - kMaxHistoryEntries);
  // The newest kept, oldest first.
  EXPECT_EQ(e->history[0].reason, "round " + std::to_string(kActions - kMaxHistoryEntries));
  EXPECT_EQ(e->history[kMaxHistoryEntries - 2].action, "skip");
  EXPECT_EQ(e->history.back().action, "requeue");
  EXPECT_EQ(e->history.back().user, "ops-bot");
  // Long texts are cut (the note the action replaced included).
  EXPECT_LE(e->history.back().reason.size(), kMaxHistoryText);
  EXPECT_TRUE(e->history.back().reason.starts_with("rrrr"));
  EXPECT_LE(e->note.size(), kMaxHistoryText + 128);
  EXPECT_EQ(ToMicros(e->history.back().at), kT0);
  // The skip's user defaults to the process's user, never empty.
  EXPECT_FALSE(e->history[kMaxHistoryEntries - 2].user.empty());
}

TEST(Relay, RequeueAllParkedAndUnknownHandlerWaits) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s");
  auto handlers = std::make_shared<HandlerRegistry>();
  std::atomic<int> handled{0};
  std::atomic<bool> reject{true};
  ASSERT_OK(handlers->Register("known", [&](const Event&) -> Status {
    ++handled;
    return {};
  }));
  ASSERT_OK(handlers->Register("picky", [&](const Event&) -> Status {
    if (reject) return MakeError(ErrorCode::kRejected, "not now");
    ++handled;
    return {};
  }));
  ASSERT_ERROR(handlers->Register("known", [](const Event&) -> Status { return {}; }), ErrorCode::kInvalidArgument);
  f.Commit(s, 2, true, "unknown.v1");
  f.Commit(s, 1, true, "known");
  f.Commit(s, 1, true, "picky");
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, handlers));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.parked, 1u) << "only the rejected event; an unknown type waits for its handler (issue 13)";
  EXPECT_EQ(handled.load(), 1);
  ASSERT_OK_AND_ASSIGN(auto waiting, f.outbox->ListEvents(*s, EventState::kRetrying));
  ASSERT_EQ(waiting.size(), 2u);
  EXPECT_NE(waiting[0]->note.find("no handler for type 'unknown.v1'"), std::string_view::npos) << waiting[0]->note;
  ASSERT_OK(handlers->Register("unknown.v1", [&](const Event&) -> Status {
    ++handled;
    return {};
  }));
  f.clock->Advance(std::chrono::hours(1));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(handled.load(), 3);
  reject = false;
  ASSERT_OK_AND_ASSIGN(size_t n, f.outbox->RequeueAllParked(*s));
  EXPECT_EQ(n, 1u);
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(handled.load(), 4);
  EXPECT_EQ(f.Tags(s), "ssss");
}

TEST(Relay, StreamFilteringAndAllStreams) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* a = f.S("a");
  Stream* b = f.S("b");
  f.Commit(a, 2);
  f.Commit(b, 3);
  ASSERT_OK_AND_ASSIGN(auto only_a, Relay::Make(*f.outbox, f.publisher, {.streams = {"a"}}));
  ASSERT_OK(only_a->RunOnce());
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "a").size(), 2u);
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "b").size(), 0u);
  auto missing = Relay::Make(*f.outbox, f.publisher, {.streams = {"nope"}});
  ASSERT_ERROR(missing, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("'nope'"), std::string::npos) << missing.error().ToString();

  ASSERT_OK_AND_ASSIGN(auto all, Relay::Make(*f.outbox, f.publisher));
  Stream* c = f.S("c");  // created after the relay
  f.Commit(c, 1);
  ASSERT_OK(all->RunOnce());
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "b").size(), 3u);
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "c").size(), 1u);
}

TEST(Relay, InvalidOptionsAreReported) {
  Fixture f;
  f.Open(f.Options(false));
  auto no_publisher = Relay::Make(*f.outbox, nullptr);
  ASSERT_ERROR(no_publisher, ErrorCode::kInvalidArgument);
  EXPECT_NE(no_publisher.error().message().find("no publisher"), std::string::npos) << no_publisher.error().ToString();
  auto bad_batch = Relay::Make(*f.outbox, f.publisher, {.batch_size = 0});
  ASSERT_ERROR(bad_batch, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_batch.error().message().find("batch_size"), std::string::npos) << bad_batch.error().ToString();
  auto bad_interval = Relay::Make(*f.outbox, f.publisher, {.interval = std::chrono::microseconds(0)});
  ASSERT_ERROR(bad_interval, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_interval.error().message().find("interval"), std::string::npos) << bad_interval.error().ToString();
}

TEST(Relay, IdleLoopIsWokenByACommitLongBeforeItsInterval) {
  Fixture f;
  OutboxOptions o = f.Options(false);
  o.clock = nullptr;  // real time
  f.Open(std::move(o));
  Stream* s = f.S("s", {.strategy = Strategy::kKeepOrder});
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher, {.interval = std::chrono::hours(1)}));
  relay->Start();
  // Let the loop go idle: its first pass finds nothing.
  f.Commit(s, 1);
  ASSERT_TRUE(f.publisher->WaitFor(1));
  auto start = std::chrono::steady_clock::now();
  f.Commit(s, 1);
  ASSERT_TRUE(f.publisher->WaitFor(2, std::chrono::seconds(30))) << "the commit did not wake the relay";
  auto waited = std::chrono::steady_clock::now() - start;
  relay->Stop();
  EXPECT_LT(waited, std::chrono::minutes(1)) << "woken by the commit, not by the one-hour interval";
  RecordProperty("wake_to_publish_us",
                 static_cast<int>(std::chrono::duration_cast<std::chrono::microseconds>(waited).count()));
}

TEST(Relay, LoopStopsOnRequest) {
  Fixture f;
  f.Open(f.Options(false));
  f.S("s");
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher, {.interval = std::chrono::hours(1)}));
  std::stop_source stop;
  std::thread t([&] { EXPECT_TRUE(relay->Run(stop.get_token()).has_value()); });
  stop.request_stop();
  t.join();  // returns although the interval is an hour
  SUCCEED();
}

// A Relay is safe to use from several threads: RunOnce while its Start()ed
// loop runs (under TSan: the loop read its wait state without run_mu_).
TEST(Relay, RunOnceWhileTheLoopRuns) {
  Fixture f;
  OutboxOptions o = f.Options(false);
  o.clock = nullptr;  // real time
  f.Open(std::move(o));
  Stream* s = f.S("s");
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher, {.interval = std::chrono::milliseconds(1)}));
  relay->Start();
  constexpr int kRounds = 200;
  std::thread once([&] {
    for (int i = 0; i < kRounds; ++i)
      EXPECT_OK(relay->RunOnce());
  });
  for (int i = 0; i < kRounds; ++i)
    f.Commit(s, 1, /*sync=*/false);
  once.join();
  ASSERT_TRUE(f.publisher->WaitFor(kRounds, std::chrono::seconds(60)))
      << "delivered " << f.publisher->count() << " of " << kRounds;
  relay->Stop();
  EXPECT_EQ(f.publisher->count(), static_cast<size_t>(kRounds));
}

TEST(Relay, ThrowingObserversAndPublishersAreIsolated) {
  struct Thrower : Observer {
    void OnPublishedByRelay(const Event&) override { throw std::runtime_error("observer boom"); }
  };
  struct ThrowingPublisher : Publisher {
    Status Publish(const Event& e) override {
      if (e.id.seq == 1) throw std::runtime_error("publisher boom");
      return {};
    }
  };
  Fixture f;
  OutboxOptions o = f.Options(false);
  o.observers.insert(o.observers.begin(), std::make_shared<Thrower>());
  f.Open(std::move(o));
  Stream* s = f.S("s");
  f.Commit(s, 3);
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, std::make_shared<ThrowingPublisher>()));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.published, 2u);
  EXPECT_EQ(st.retried, 1u) << "a throwing publisher is a retryable failure";
  EXPECT_EQ(f.observer->published_by_relay.load(), 2) << "the next observer still runs";
  EXPECT_EQ(f.Tags(s), "rss") << "the observer's exception changed no delivery state";
  std::lock_guard l(f.captured_mu);
  bool saw_observer = false, saw_publisher = false;
  for (const auto& e : f.captured) {
    saw_observer |= e.message().find("observer boom") != std::string::npos;
    saw_publisher |= e.message().find("publisher boom") != std::string::npos;
  }
  EXPECT_TRUE(saw_observer);
  EXPECT_TRUE(saw_publisher);
}

TEST(Relay, CorruptRecordIsParkedWithReasonAndNothingElseIsLost) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s", {.strategy = Strategy::kKeepOrder});
  f.Commit(s, 3);
  // Garbage written straight into the stream's family, over seq 2.
  std::string key = std::string("p") + std::string(7, '\0') + std::string(1, '\2');
  ASSERT_TRUE(f.outbox->db()->Put(rocksdb::WriteOptions(), testing::StreamFamily(*s), key, "garbage").ok());
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.parked, 1u);
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "s"), (std::vector<uint64_t>{1, 3}));
  ASSERT_OK_AND_ASSIGN(StoredEvent bad, f.outbox->FindEvent(*s, 2));
  EXPECT_EQ(bad->state, EventState::kParked);
  EXPECT_EQ(bad->type, "jaiminho.corrupt");
  EXPECT_EQ(bad->payload, "garbage") << "the bad bytes are kept";
  EXPECT_NE(bad->note.find("corrupt record"), std::string_view::npos);
}

TEST(Relay, CursorSurvivesRestart) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s");
  f.Commit(s, 10);
  {
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
    ASSERT_OK(relay->RunOnce());
  }
  f.Commit(s, 5);
  ASSERT_OK(f.outbox->Close());
  f.outbox.reset();
  f.Open(f.Options(false));
  s = f.S("s");
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK(relay->RunOnce());
  std::vector<uint64_t> expected(15);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(f.Seqs(f.publisher->deliveries(), "s"), expected) << "each delivered once, none skipped";
}

TEST(Relay, UnsyncedCommitsAreMadeDurableBeforeBeingPublished) {
  Fixture f;
  f.Open(f.Options(true));
  Stream* s = f.S("s");
  f.Commit(s, 1, /*sync=*/true);  // published inline (and reserves seqs)
  EXPECT_EQ(f.publisher->count(), 1u);
  f.Commit(s, 3, /*sync=*/false);
  EXPECT_EQ(f.publisher->count(), 1u) << "publish-on-commit waits for durability";
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(f.publisher->count(), 4u);
}

TEST(Relay, EventsCarryTheirIdForDeduplication) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s");
  Receipt r = f.Commit(s, 1);
  std::string seen;
  auto handlers = std::make_shared<HandlerRegistry>();
  ASSERT_OK(handlers->Register("t", [&](const Event& e) -> Status {
    seen = e.id.ToString();
    return {};
  }));
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, handlers));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(seen, r.events[0].ToString());
}

TEST(Relay, PrometheusRendering) {
  Fixture f;
  f.Open(f.Options(false));
  Stream* s = f.S("s");
  f.Commit(s, 3);
  f.clock->Advance(std::chrono::seconds(7));
  ASSERT_OK_AND_ASSIGN(auto m, CollectMetrics(*f.outbox));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].pending, 3u);
  EXPECT_EQ(m[0].oldest_pending_age, std::chrono::seconds(7));
  std::string text = RenderPrometheus(m);
  EXPECT_NE(text.find("# TYPE jaiminho_pending_events gauge"), std::string::npos);
  EXPECT_NE(text.find("jaiminho_pending_events{stream=\"s\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("jaiminho_oldest_pending_age_seconds{stream=\"s\"} 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("jaiminho_committed_events_total{stream=\"s\"} 3\n"), std::string::npos) << text;
}

// 8 committing threads, a looping relay and a publisher failing 30% at random:
// everything is delivered, keep-order streams in exact order, each event once
// (no crash here, so no duplicate is allowed).
// A drain keeps its iterators from batch to batch (batch_size 3 here): commits
// made while it runs, a keep-order head failing half-way and a retry written
// during the drain must all still be delivered, exactly once, in order where
// asked, by the following runs.
TEST(Relay, ADrainSpanningManyBatchesMissesNothingCommittedOrFailedDuringIt) {
  Fixture f;
  f.Open(f.Options(/*inline_publisher=*/false));
  Stream* k = f.S("k", {.strategy = Strategy::kKeepOrder});
  Stream* p = f.S("p", {.strategy = Strategy::kPublishOnCommit});
  f.Commit(k, 10);
  f.Commit(p, 10);
  std::set<std::pair<std::string, uint64_t>> failed_once;
  bool committed = false;
  f.publisher->fail = [&](const Event& e) -> std::optional<Error> {
    if (e.id.stream == "k" && e.id.seq == 5 && !committed) {
      committed = true;  // from inside the drain: 4 more events in each stream
      f.Commit(k, 4);
      f.Commit(p, 4);
    }
    bool fails = (e.id.stream == "k" && e.id.seq == 7) || (e.id.stream == "p" && (e.id.seq == 2 || e.id.seq == 12));
    if (fails && failed_once.emplace(std::string(e.id.stream), e.id.seq).second) {
      return Error(ErrorCode::kUnavailable, "fails once");
    }
    return std::nullopt;
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher, {.batch_size = 3}));
  for (int run = 0; run < 6; ++run) {
    ASSERT_OK(relay->RunOnce());
    f.clock->Advance(std::chrono::seconds(2));  // past every backoff (1 s, no jitter)
  }
  auto ds = f.publisher->deliveries();
  std::vector<uint64_t> expected(14);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(f.Seqs(ds, "k"), expected) << "keep-order: every event once, in order";
  auto loose = f.Seqs(ds, "p");
  std::sort(loose.begin(), loose.end());
  EXPECT_EQ(loose, expected) << "publish-on-commit: every event exactly once";
  EXPECT_EQ(failed_once.size(), 3u);
  EXPECT_EQ(f.Tags(k), std::string(14, 's'));
  EXPECT_EQ(f.Tags(p), std::string(14, 's'));
}

TEST(RelayStress, EightWritersRandomFailuresEverythingDeliveredInOrder) {
  Fixture f;
  OutboxOptions o = f.Options(/*inline_publisher=*/true);
  o.clock = nullptr;
  o.retry = RetryPolicy{
      .initial_backoff = std::chrono::microseconds(200), .max_backoff = std::chrono::milliseconds(2), .jitter = 0.5};
  f.Open(std::move(o));
  Stream* ordered = f.S("ordered", {.strategy = Strategy::kKeepOrder});
  Stream* loose = f.S("loose", {.strategy = Strategy::kPublishOnCommit});
  std::mutex rng_mu;
  std::mt19937 rng(12345);
  std::atomic<uint64_t> injected{0};
  f.publisher->fail = [&](const Event&) -> std::optional<Error> {
    std::lock_guard l(rng_mu);
    if (rng() % 100 < 30) {
      ++injected;
      return Error(ErrorCode::kUnavailable, "random failure");
    }
    return std::nullopt;
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher, {.interval = std::chrono::milliseconds(5)}));
  relay->Start();
  constexpr int kThreads = 8, kPerThread = 250;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto txn = f.outbox->Begin();
        EXPECT_OK(txn.Enqueue(*ordered, {.type = "o"}));
        EXPECT_OK(txn.Enqueue(*loose, {.type = "l"}));
        EXPECT_OK(txn.Commit({.sync = (i + t) % 3 != 0}));
      }
    });
  }
  for (auto& w : writers)
    w.join();
  const size_t total = 2 * kThreads * kPerThread;
  ASSERT_TRUE(f.publisher->WaitFor(total, std::chrono::seconds(120)))
      << "delivered " << f.publisher->count() << " of " << total;
  relay->Stop();
  auto ds = f.publisher->deliveries();
  auto ord = f.Seqs(ds, "ordered");
  std::vector<uint64_t> expected(kThreads * kPerThread);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(ord, expected) << "keep-order: exact order, no duplicate";
  auto lo = f.Seqs(ds, "loose");
  std::sort(lo.begin(), lo.end());
  EXPECT_EQ(lo, expected) << "publish-on-commit: every event exactly once";
  EXPECT_GT(injected.load(), 100u);
  RecordProperty("injected_failures", static_cast<int>(injected.load()));
}

}  // namespace
}  // namespace jaiminho
