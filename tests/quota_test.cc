// Per-stream quotas (issue 17), policy kReject: a commit that would take a
// stream past its limit of waiting events or bytes fails with
// kResourceExhausted naming the stream, the usage and the limit, and writes
// nothing (its business writes included); deliveries make room; the usage is
// counted again from the records at open and when a quota is set on a stream
// that already has a backlog; retrying and parked events count, sent ones do not.
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_util.h"

namespace jaiminho::testing {
namespace {

// One commit: business key "k/<i>" and one event of `payload_bytes` bytes.
Result<Receipt> CommitOne(Outbox& outbox, Stream& stream, int i, size_t payload_bytes = 10) {
  auto business = outbox.FindBusinessFamily("default");
  if (!business) return tl::unexpected(business.error());
  Transaction txn = outbox.Begin();
  std::string key = "k/" + std::to_string(i);
  std::string payload(payload_bytes, 'x');
  if (auto s = txn.Put(*business, key, "v"); !s) return tl::unexpected(s.error());
  if (auto s = txn.Enqueue(stream, {.type = "t.v1", .key = key, .payload = payload}); !s) {
    return tl::unexpected(s.error());
  }
  return txn.Commit();
}

void ExpectRefused(const Result<Receipt>& r, std::string_view stream, std::string_view what) {
  ASSERT_FALSE(r.has_value()) << "a commit past the quota succeeded";
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted) << r.error().ToString();
  EXPECT_NE(r.error().message().find("stream '" + std::string(stream) + "' quota"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find(what), std::string::npos) << r.error().message();
}

TEST(Quota, ACommitPastTheEventLimitIsRefusedWholeAndDeliveriesMakeRoom) {
  TempDir dir;
  std::ostringstream log;
  auto outbox = MustOpen(dir.path(), {.logger = MakeStreamLogger(log)});
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("telemetry", {.strategy = Strategy::kKeepOrder,
                                                                    .quota = StreamQuota{.max_events = 5}}));
  for (int i = 0; i < 5; ++i)
    ASSERT_OK(CommitOne(*outbox, *s, i));
  auto refused = CommitOne(*outbox, *s, 5);
  ExpectRefused(refused, "telemetry", "5 events waiting for delivery, this commit adds 1, the limit is 5");
  // Nothing of the refused commit was written: neither its business write nor an event.
  ASSERT_OK_AND_ASSIGN(BusinessFamily business, outbox->FindBusinessFamily("default"));
  ASSERT_OK_AND_ASSIGN(auto v, outbox->Get(business, "k/5"));
  EXPECT_FALSE(v.has_value()) << "the refused commit's business write is there";
  ASSERT_OK_AND_ASSIGN(auto pending, outbox->ListEvents(*s, EventState::kPending, 100));
  EXPECT_EQ(pending.size(), 5U);

  // Two delivered: two more fit, the third does not.
  auto publisher = std::make_shared<RecordingPublisher>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher, {.batch_size = 2}));
  publisher->fail = [n = 0](const Event&) mutable -> std::optional<Error> {
    return ++n <= 2 ? std::nullopt : std::optional<Error>(Error(ErrorCode::kUnavailable, "broker down"));
  };
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(publisher->count(), 2U);
  ASSERT_OK(CommitOne(*outbox, *s, 10));
  ASSERT_OK(CommitOne(*outbox, *s, 11));
  ExpectRefused(CommitOne(*outbox, *s, 12), "telemetry", "5 events waiting");
  ExpectRefused(CommitOne(*outbox, *s, 13), "telemetry", "5 events waiting");

  // Each change is logged once: refused, accepted again, refused.
  const std::string text = log.str();
  auto count = [&](std::string_view what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(count("WARN stream over its quota: commits refused stream=telemetry"), 2u) << text;
  EXPECT_EQ(count("INFO stream under its quota again: commits accepted stream=telemetry"), 1u) << text;
}

TEST(Quota, ByteLimitCountsTheEventsOwnBytes) {
  TempDir dir;
  auto outbox = MustOpen(dir.path());
  // Each event: type "t.v1" (4) + key "k/N" (3) + 100 payload bytes = 107.
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("telemetry", {.quota = StreamQuota{.max_bytes = 3 * 107}}));
  for (int i = 0; i < 3; ++i)
    ASSERT_OK(CommitOne(*outbox, *s, i, 100));
  ExpectRefused(CommitOne(*outbox, *s, 3, 100), "telemetry", "321 bytes waiting for delivery, this commit adds 107");
  // A smaller event does not fit either: the limit is reached.
  ExpectRefused(CommitOne(*outbox, *s, 4, 1), "telemetry", "bytes waiting");
}

TEST(Quota, RetryingAndParkedEventsCountAndSentOnesDoNot) {
  TempDir dir;
  auto outbox = MustOpen(dir.path());
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("telemetry", {.strategy = Strategy::kPublishOnCommit,
                                                                    .quota = StreamQuota{.max_events = 4}}));
  for (int i = 0; i < 4; ++i)
    ASSERT_OK(CommitOne(*outbox, *s, i));
  auto publisher = std::make_shared<RecordingPublisher>();
  // seq 1 delivered, seq 2 retried later, seq 3 parked (rejected), seq 4 delivered.
  publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.seq == 2) return Error(ErrorCode::kUnavailable, "broker down");
    if (e.id.seq == 3) return Error(ErrorCode::kRejected, "bad topic");
    return std::nullopt;
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(publisher->count(), 2U);
  // Waiting: one retrying and one parked; two fit.
  ASSERT_OK(CommitOne(*outbox, *s, 10));
  ASSERT_OK(CommitOne(*outbox, *s, 11));
  ExpectRefused(CommitOne(*outbox, *s, 12), "telemetry", "4 events waiting");
}

TEST(Quota, UsageIsCountedAtOpenAndWhenAQuotaIsSetOnABacklog) {
  TempDir dir;
  {
    auto outbox = MustOpen(dir.path());
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("telemetry", {.strategy = Strategy::kKeepOrder}));
    for (int i = 0; i < 6; ++i)
      ASSERT_OK(CommitOne(*outbox, *s, i));
    // A quota set on a stream that has a backlog counts the backlog.
    ASSERT_OK(outbox->OpenStream("telemetry", {.quota = StreamQuota{.max_events = 8}}));
    ASSERT_OK(CommitOne(*outbox, *s, 6));
    ASSERT_OK(CommitOne(*outbox, *s, 7));
    ExpectRefused(CommitOne(*outbox, *s, 8), "telemetry", "8 events waiting");
    ASSERT_OK(outbox->Close());
  }
  {
    // Stored with the stream: OpenStream(name) keeps it, and the usage is counted at open.
    auto outbox = MustOpen(dir.path());
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("telemetry"));
    ExpectRefused(CommitOne(*outbox, *s, 8), "telemetry", "8 events waiting");
    auto publisher = std::make_shared<RecordingPublisher>();
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK(relay->RunOnce());
    EXPECT_EQ(publisher->count(), 8U);
    ASSERT_OK(CommitOne(*outbox, *s, 8));
    // StreamQuota{} removes the quota.
    ASSERT_OK(outbox->OpenStream("telemetry", {.quota = StreamQuota{}}));
    for (int i = 9; i < 30; ++i)
      ASSERT_OK(CommitOne(*outbox, *s, i));
  }
}

// Records OnDropped calls.
struct DropRecorder : Observer {
  struct Drop {
    std::string stream;
    uint64_t first, last, count;
  };
  void OnDropped(std::string_view stream, uint64_t first, uint64_t last, uint64_t count) override {
    std::lock_guard l(mu);
    drops.push_back({std::string(stream), first, last, count});
  }
  std::mutex mu;
  std::vector<Drop> drops;
};

// The seqs of the stream's pending records, in order.
std::vector<uint64_t> PendingSeqs(Outbox& outbox, Stream& s) {
  std::vector<uint64_t> out;
  for (auto [tag, seq] : RawKeys(outbox, s)) {
    if (tag == 'p' || tag == 'r') out.push_back(seq);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(QuotaDropOldest, TheOldestEventsMakeRoomAtomicallyAndAreReported) {
  TempDir dir;
  auto recorder = std::make_shared<DropRecorder>();
  std::ostringstream log;
  auto outbox = MustOpen(dir.path(), {.observers = {recorder}, .logger = MakeStreamLogger(log)});
  ASSERT_OK_AND_ASSIGN(
      Stream * s,
      outbox->OpenStream("telemetry", {.strategy = Strategy::kPublishOnCommit,
                                       .quota = StreamQuota{.max_events = 10, .policy = QuotaPolicy::kDropOldest}}));
  for (int i = 0; i < 25; ++i) {
    auto r = CommitOne(*outbox, *s, i);
    ASSERT_TRUE(r.has_value()) << "commit " << i << ": " << r.error().ToString();
  }
  // Every commit was accepted; the 15 oldest were dropped, one at a time
  // (1% of 10 rounds down to one), and the newest 10 wait.
  std::vector<uint64_t> expected;
  for (uint64_t seq = 16; seq <= 25; ++seq)
    expected.push_back(seq);
  EXPECT_EQ(PendingSeqs(*outbox, *s), expected);
  uint64_t dropped = 0, next = 1;
  for (const auto& d : recorder->drops) {
    EXPECT_EQ(d.stream, "telemetry");
    EXPECT_EQ(d.first, next) << "not the oldest";
    next = d.last + 1;
    dropped += d.count;
  }
  EXPECT_EQ(dropped, 15u);
  EXPECT_EQ(next, 16u);
  // Business writes of every commit are there (the drop took events only).
  ASSERT_OK_AND_ASSIGN(BusinessFamily business, outbox->FindBusinessFamily("default"));
  ASSERT_OK_AND_ASSIGN(auto v, outbox->Get(business, "k/0"));
  EXPECT_TRUE(v.has_value());
  ASSERT_OK_AND_ASSIGN(auto metrics, CollectMetrics(*outbox));
  EXPECT_EQ(metrics[0].dropped, 15u);
  EXPECT_EQ(metrics[0].pending, 10u);
  EXPECT_NE(log.str().find("WARN dropped the oldest events for the quota stream=telemetry first_seq=1 last_seq=1 "
                           "events=1"),
            std::string::npos)
      << log.str();
  EXPECT_NE(RenderPrometheus(metrics).find("jaiminho_dropped_events_total{stream=\"telemetry\"} 15\n"),
            std::string::npos);

  // The relay delivers the kept ones, in order.
  auto publisher = std::make_shared<RecordingPublisher>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
  ASSERT_OK(relay->RunOnce());
  auto delivered = publisher->deliveries();
  ASSERT_EQ(delivered.size(), 10u);
  for (size_t i = 0; i < delivered.size(); ++i)
    EXPECT_EQ(delivered[i].seq, 16 + i);
}

TEST(QuotaDropOldest, RetryingEventsAreDroppedBySeqAndParkedOnesNever) {
  TempDir dir;
  auto recorder = std::make_shared<DropRecorder>();
  auto outbox = MustOpen(dir.path(), {.observers = {recorder}});
  ASSERT_OK_AND_ASSIGN(
      Stream * s,
      outbox->OpenStream("telemetry", {.strategy = Strategy::kPublishOnCommit,
                                       .retry = RetryPolicy{.initial_backoff = std::chrono::hours(1),
                                                            .max_backoff = std::chrono::hours(2)},
                                       .quota = StreamQuota{.max_events = 6, .policy = QuotaPolicy::kDropOldest}}));
  for (int i = 0; i < 6; ++i)
    ASSERT_OK(CommitOne(*outbox, *s, i));
  // Seq 1 and 2 parked, 3 and 5 retrying (due in an hour), 4 and 6 pending.
  auto publisher = std::make_shared<RecordingPublisher>();
  publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.seq <= 2) return Error(ErrorCode::kRejected, "bad");
    if (e.id.seq == 3 || e.id.seq == 5) return Error(ErrorCode::kUnavailable, "down");
    return Error(ErrorCode::kUnavailable, "down");
  };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher, {.batch_size = 4}));
  ASSERT_OK(relay->RunOnce());
  // Every publish-on-commit failure goes to the retry range: 3..6 retrying, 1..2 parked.
  ASSERT_EQ(PendingSeqs(*outbox, *s), (std::vector<uint64_t>{3, 4, 5, 6}));
  ASSERT_OK(CommitOne(*outbox, *s, 6));  // seq 7: drops seq 3, the oldest droppable
  ASSERT_OK(CommitOne(*outbox, *s, 7));  // seq 8: drops seq 4
  EXPECT_EQ(PendingSeqs(*outbox, *s), (std::vector<uint64_t>{5, 6, 7, 8}));
  ASSERT_EQ(recorder->drops.size(), 2u);
  EXPECT_EQ(recorder->drops[0].first, 3u);
  EXPECT_EQ(recorder->drops[1].first, 4u);
  ASSERT_OK_AND_ASSIGN(auto parked, outbox->ListEvents(*s, EventState::kParked, 10));
  EXPECT_EQ(parked.size(), 2u) << "parked events were dropped";
}

TEST(QuotaDropOldest, ParkedEventsFillingTheQuotaStillRefuseTheCommit) {
  TempDir dir;
  auto outbox = MustOpen(dir.path());
  ASSERT_OK_AND_ASSIGN(
      Stream * s,
      outbox->OpenStream("telemetry", {.quota = StreamQuota{.max_events = 2, .policy = QuotaPolicy::kDropOldest}}));
  ASSERT_OK(CommitOne(*outbox, *s, 0));
  ASSERT_OK(CommitOne(*outbox, *s, 1));
  auto publisher = std::make_shared<RecordingPublisher>();
  publisher->fail = [](const Event&) -> std::optional<Error> { return Error(ErrorCode::kRejected, "bad"); };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
  ASSERT_OK(relay->RunOnce());
  ExpectRefused(CommitOne(*outbox, *s, 2), "telemetry", "parked events are not dropped");
}

TEST(QuotaDropOldest, AKeepOrderStreamNeedsToOptIn) {
  TempDir dir;
  auto outbox = MustOpen(dir.path());
  auto refused = outbox->OpenStream(
      "orders",
      {.strategy = Strategy::kKeepOrder, .quota = StreamQuota{.max_events = 2, .policy = QuotaPolicy::kDropOldest}});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("drop_keep_order"), std::string::npos) << refused.error().message();
  ASSERT_OK_AND_ASSIGN(
      Stream * s, outbox->OpenStream(
                      "orders", {.strategy = Strategy::kKeepOrder,
                                 .quota = StreamQuota{
                                     .max_events = 2, .policy = QuotaPolicy::kDropOldest, .drop_keep_order = true}}));
  for (int i = 0; i < 5; ++i)
    ASSERT_OK(CommitOne(*outbox, *s, i));
  EXPECT_EQ(PendingSeqs(*outbox, *s), (std::vector<uint64_t>{4, 5}));
  // Stored: reopened by name, the stream keeps its quota and policy.
  ASSERT_OK(outbox->Close());
  outbox.reset();
  auto again = MustOpen(dir.path());
  ASSERT_OK_AND_ASSIGN(Stream * s2, again->OpenStream("orders"));
  ASSERT_OK(CommitOne(*again, *s2, 5));
  EXPECT_EQ(PendingSeqs(*again, *s2), (std::vector<uint64_t>{5, 6}));
}

TEST(Quota, AnUnknownPolicyIsRefused) {
  TempDir dir;
  auto outbox = MustOpen(dir.path());
  auto r = outbox->OpenStream("telemetry", {.quota = StreamQuota{.max_events = 1, .policy = QuotaPolicy{7}}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("quota policy 7"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace jaiminho::testing
