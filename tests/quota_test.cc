// Per-stream quotas (issue 17), policy kReject: a commit that would take a
// stream past its limit of waiting events or bytes fails with
// kResourceExhausted naming the stream, the usage and the limit, and writes
// nothing (its business writes included); deliveries make room; the usage is
// counted again from the records at open and when a quota is set on a stream
// that already has a backlog; retrying and parked events count, sent ones do not.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

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
