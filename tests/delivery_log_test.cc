// Format 2's delivery log (storage/delivery_log.h) and what the relay writes
// with it: a delivered event stays under its pending key, sent below the
// persisted cursor, with one small run record per relay batch for its sent_at;
// the compaction filter drops delivered events (and runs) once past
// time_to_delete, or at once with delete_after_send.
#include "storage/delivery_log.h"

#include "clean/cleaner.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using internal::ClassifyPendingKey;
using internal::PendingKeyState;
using internal::SentRun;
using internal::SentRuns;
using testing::MustOpen;
using testing::RawKeys;
using testing::RecordingPublisher;
using testing::TempDir;

constexpr int64_t kStart = 1'700'000'000'000'000;

TEST(DeliveryLog, RunRecordRoundTripsAndMalformedOnesAreNamed) {
  SentRun run{7, 300, kStart};
  internal::KeyBuf key = internal::RunKey(run.first);
  std::string value = internal::EncodeRunValue(run);
  EXPECT_EQ(value.size(), 17u);
  ASSERT_OK_AND_ASSIGN(SentRun back, internal::DecodeRun(key.view(), value));
  EXPECT_EQ(back.first, 7u);
  EXPECT_EQ(back.last, 300u);
  EXPECT_EQ(back.sent_at_us, kStart);

  auto bad = internal::DecodeRun(key.view(), value.substr(0, 16));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(bad.error().message().find("seq 7"), std::string::npos) << bad.error().message();
  std::string v2 = value;
  v2[0] = 2;  // a version this library does not know
  ASSERT_FALSE(internal::DecodeRun(key.view(), v2).has_value());
  EXPECT_FALSE(internal::DecodeRun(internal::RunKey(400).view(), value).has_value());  // ends before it starts
  EXPECT_FALSE(internal::DecodeRun("l123", value).has_value());
}

TEST(DeliveryLog, PendingKeysBelowTheCursorAreSentWhenARunCoversThemElseGone) {
  SentRuns runs;
  runs.Append({1, 10, kStart});
  runs.Append({11, 20, kStart + 5});
  runs.Append({25, 30, kStart + 9});  // 21-24 were delivered with delete_after_send
  EXPECT_EQ(ClassifyPendingKey(5, 31, runs).kind, PendingKeyState::kSent);
  EXPECT_EQ(ClassifyPendingKey(5, 31, runs).sent_at_us, kStart);
  EXPECT_EQ(ClassifyPendingKey(20, 31, runs).sent_at_us, kStart + 5);
  EXPECT_EQ(ClassifyPendingKey(22, 31, runs).kind, PendingKeyState::kGone);
  EXPECT_EQ(ClassifyPendingKey(31, 31, runs).kind, PendingKeyState::kPending);
  EXPECT_EQ(ClassifyPendingKey(0, 0, runs).kind, PendingKeyState::kPending);  // nothing delivered yet
  runs.DropBelow(11);
  EXPECT_EQ(ClassifyPendingKey(5, 31, runs).kind, PendingKeyState::kGone);
  EXPECT_EQ(ClassifyPendingKey(11, 31, runs).kind, PendingKeyState::kSent);
}

TEST(DeliveryLog, FilterDropsDeliveredKeysAndRunsOnlyPastTimeToDelete) {
  internal::CleanerState::Delivered d;
  d.cursor = 21;
  d.runs.Append({1, 10, kStart});
  d.runs.Append({11, 20, kStart + 1'000'000});
  const int64_t ttd = 10'000'000;
  auto drop = [&](std::string_view key, std::string_view value, int64_t now) {
    bool corrupt = false;
    bool r = internal::ShouldDrop(key, value, now, ttd, d, &corrupt);
    EXPECT_FALSE(corrupt);
    return r;
  };
  auto p = [](uint64_t seq) { return std::string(internal::SeqKey(internal::kPendingTag, seq).view()); };
  const int64_t just_before = kStart + ttd;  // sent_at == now - ttd: kept (strictly before)
  EXPECT_FALSE(drop(p(5), "", just_before));
  EXPECT_TRUE(drop(p(5), "", just_before + 1));
  EXPECT_FALSE(drop(p(15), "", just_before + 1));
  EXPECT_FALSE(drop(p(21), "", kStart + 100 * ttd));  // pending: never
  auto run1 = std::string(internal::RunKey(1).view());
  EXPECT_FALSE(drop(run1, internal::EncodeRunValue({1, 10, kStart}), just_before));
  EXPECT_TRUE(drop(run1, internal::EncodeRunValue({1, 10, kStart}), just_before + 1));
  // A run that reaches the cursor or beyond is kept, whatever its age.
  EXPECT_FALSE(
      drop(std::string(internal::RunKey(21).view()), internal::EncodeRunValue({21, 22, kStart}), kStart + 100 * ttd));
  // Below the cursor without a run (delete_after_send): dropped at once.
  d.runs = SentRuns();
  EXPECT_TRUE(drop(p(5), "", kStart));
  bool corrupt = false;
  EXPECT_FALSE(internal::ShouldDrop(run1, "xx", kStart + 100 * ttd, ttd, d, &corrupt));
  EXPECT_TRUE(corrupt);
}

struct DeliveryFixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(FromMicros(kStart));
  std::shared_ptr<RecordingPublisher> publisher = std::make_shared<RecordingPublisher>();
  std::unique_ptr<Outbox> outbox;
  Stream* stream = nullptr;

  void Open(bool delete_after_send) {
    outbox = MustOpen(dir.Sub("db"), {.delete_after_send = delete_after_send,
                                      .strategy = Strategy::kKeepOrder,
                                      .time_to_delete = std::chrono::hours(1),
                                      .clean_interval = std::chrono::seconds(0),
                                      .clock = clock});
    ASSERT_NE(outbox, nullptr);
    ASSERT_OK_AND_ASSIGN(stream, outbox->OpenStream("s"));
  }
  void Commit(int n) {
    auto txn = outbox->Begin();
    for (int i = 0; i < n; ++i)
      ASSERT_OK(txn.Enqueue(*stream, {.type = "t", .payload = "payload-" + std::to_string(i)}));
    ASSERT_OK(txn.Commit());
  }
  void Relay(size_t batch_size = 64) {
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher, {.batch_size = batch_size}));
    ASSERT_OK(relay->RunOnce());
  }
  std::map<char, size_t> KeyCounts() {
    std::map<char, size_t> out;
    for (auto [tag, seq] : RawKeys(*outbox, *stream))
      ++out[tag];
    return out;
  }
};

TEST(DeliveryInPlace, MarkSentWritesOneRunPerBatchAndNoEventAgain) {
  DeliveryFixture f;
  f.Open(/*delete_after_send=*/false);
  f.Commit(200);
  f.clock->Advance(std::chrono::seconds(3));
  f.Relay(/*batch_size=*/64);
  EXPECT_EQ(f.publisher->count(), 200u);
  // Every event where it was committed; ceil(200 / 64) = 4 run records; no sent copies.
  EXPECT_EQ(f.KeyCounts(), (std::map<char, size_t>{{'l', 4}, {'p', 200}}));

  ASSERT_OK_AND_ASSIGN(auto sent, f.outbox->ListEvents(*f.stream, EventState::kSent, 1000));
  ASSERT_EQ(sent.size(), 200u);
  EXPECT_EQ(sent.front()->id.seq, 1u);
  EXPECT_EQ(sent.front()->state, EventState::kSent);
  EXPECT_EQ(ToMicros(sent.back()->sent_at), kStart + 3'000'000);
  ASSERT_OK_AND_ASSIGN(auto pending, f.outbox->ListEvents(*f.stream, EventState::kPending));
  EXPECT_TRUE(pending.empty());
  ASSERT_OK_AND_ASSIGN(auto one, f.outbox->FindEvent(*f.stream, 150));
  EXPECT_EQ(one->state, EventState::kSent);
  EXPECT_EQ(ToMicros(one->sent_at), kStart + 3'000'000);

  // Reopened: still sent, with their sent_at; nothing delivered again.
  ASSERT_OK(f.outbox->Close());
  f.Open(false);
  f.Relay();
  EXPECT_EQ(f.publisher->count(), 200u);
  ASSERT_OK_AND_ASSIGN(auto again, f.outbox->ListEvents(*f.stream, EventState::kSent, 1000));
  EXPECT_EQ(again.size(), 200u);
}

TEST(DeliveryInPlace, SentEventsAndTheirRunsGoPastTimeToDelete) {
  DeliveryFixture f;
  f.Open(false);
  f.Commit(100);
  f.Relay(/*batch_size=*/1000);
  f.Commit(10);  // pending, never dropped
  f.clock->Advance(std::chrono::minutes(59));
  ASSERT_OK_AND_ASSIGN(CleanReport kept, f.outbox->Clean());
  EXPECT_EQ(kept.removed, 0u);
  EXPECT_EQ(f.KeyCounts(), (std::map<char, size_t>{{'l', 1}, {'p', 110}}));
  f.clock->Advance(std::chrono::minutes(2));
  ASSERT_OK_AND_ASSIGN(CleanReport report, f.outbox->Clean());
  EXPECT_EQ(report.removed, 100u);  // events (their run record goes too, not counted)
  EXPECT_EQ(f.KeyCounts(), (std::map<char, size_t>{{'p', 10}}));
  ASSERT_OK_AND_ASSIGN(auto pending, f.outbox->ListEvents(*f.stream, EventState::kPending));
  EXPECT_EQ(pending.size(), 10u);
  ASSERT_OK_AND_ASSIGN(auto sent, f.outbox->ListEvents(*f.stream, EventState::kSent));
  EXPECT_TRUE(sent.empty());
}

TEST(DeliveryInPlace, DeleteAfterSendHidesDeliveredEventsAndCleanDropsThem) {
  DeliveryFixture f;
  f.Open(/*delete_after_send=*/true);
  f.Commit(100);
  f.Relay();
  EXPECT_EQ(f.publisher->count(), 100u);
  EXPECT_EQ(f.KeyCounts(), (std::map<char, size_t>{{'p', 100}}));  // no run records, no deletes
  ASSERT_OK_AND_ASSIGN(auto sent, f.outbox->ListEvents(*f.stream, EventState::kSent));
  EXPECT_TRUE(sent.empty());
  ASSERT_OK_AND_ASSIGN(auto pending, f.outbox->ListEvents(*f.stream, EventState::kPending));
  EXPECT_TRUE(pending.empty());
  ASSERT_ERROR(f.outbox->FindEvent(*f.stream, 50), ErrorCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(CleanReport report, f.outbox->Clean());
  EXPECT_EQ(report.removed, 100u);
  EXPECT_TRUE(f.KeyCounts().empty());
}

TEST(DeliveryInPlace, APartialDeliveryLeavesTheRestPendingAcrossAReopen) {
  DeliveryFixture f;
  f.Open(false);
  f.Commit(10);
  f.publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.seq == 7) return Error(ErrorCode::kUnavailable, "down");
    return std::nullopt;
  };
  f.Relay();
  EXPECT_EQ(f.publisher->count(), 6u);  // 1-6; 7 blocks the keep-order stream
  ASSERT_OK(f.outbox->Close());
  f.Open(false);
  f.publisher->fail = nullptr;
  f.clock->Advance(std::chrono::hours(1));
  f.Relay();
  std::vector<uint64_t> seqs;
  for (const auto& d : f.publisher->deliveries())
    seqs.push_back(d.seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  ASSERT_OK_AND_ASSIGN(auto sent, f.outbox->ListEvents(*f.stream, EventState::kSent));
  EXPECT_EQ(sent.size(), 10u);
  ASSERT_OK_AND_ASSIGN(auto seven, f.outbox->FindEvent(*f.stream, 7));
  EXPECT_EQ(seven->attempts, 1u);  // the failed attempt is kept with the event
}

}  // namespace
}  // namespace jaiminho
