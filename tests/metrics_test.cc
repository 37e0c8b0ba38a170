// Metrics: the lock-free histograms, what the relay and publish-on-commit
// record into them, bytes on disk, and the Prometheus text they render to.
#include <gmock/gmock.h>

#include <thread>

#include "support/test_util.h"
#include "util/histogram.h"

namespace jaiminho {
namespace {

using ::testing::HasSubstr;
using testing::MustMakeRelay;
using testing::MustOpen;
using ::testing::Not;
using testing::RecordingPublisher;
using testing::TempDir;

constexpr int64_t kT0 = 1'700'000'000'000'000;

TEST(Histogram, BucketsAreUpperBoundsInclusiveAndTheLastIsInf) {
  static constexpr double kBounds[] = {0.001, 0.01, 1};
  internal::HistogramBounds b(kBounds);
  EXPECT_EQ(b.BucketOf(0), 0u);
  EXPECT_EQ(b.BucketOf(1000), 0u);  // le="0.001" includes 1 ms
  EXPECT_EQ(b.BucketOf(1001), 1u);
  EXPECT_EQ(b.BucketOf(1'000'000), 2u);
  EXPECT_EQ(b.BucketOf(1'000'001), 3u);  // +Inf
}

TEST(Histogram, LocalRecordsMergeIntoTheSharedOne) {
  static constexpr double kBounds[] = {0.001, 0.01, 1};
  internal::HistogramBounds b(kBounds);
  internal::AtomicHistogram h(b);
  h.Record(500);
  internal::LocalHistogram l;
  l.Record(b, 5'000);
  l.Record(b, 5'000);
  l.Record(b, -7);  // a clock step back counts as 0
  l.Record(b, 2'000'000);
  h.Merge(l);
  Histogram s = h.Snapshot();
  EXPECT_THAT(s.upper_bounds, ::testing::ElementsAre(0.001, 0.01, 1));
  EXPECT_THAT(s.bucket_counts, ::testing::ElementsAre(2, 2, 0, 1));
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum, 0.0005 + 0.005 + 0.005 + 2.0);
}

TEST(Histogram, ConcurrentRecordsAreAllCounted) {
  internal::AtomicHistogram h(internal::LatencyBounds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10'000; ++i)
        h.Record(static_cast<int64_t>(t) * 1'000'000);
    });
  }
  for (auto& t : threads)
    t.join();
  Histogram s = h.Snapshot();
  EXPECT_EQ(s.count, 40'000u);
  EXPECT_DOUBLE_EQ(s.sum, 10'000.0 * (0 + 1 + 2 + 3));
}

TEST(RenderPrometheus, HistogramsAreCumulativeWithSumAndCount) {
  StreamMetrics m;
  m.stream = "s";
  m.commit_to_publish_seconds = {.upper_bounds = {0.5, 1}, .bucket_counts = {2, 1, 3}, .sum = 12.5, .count = 6};
  m.publish_duration_seconds = {.upper_bounds = {0.1}, .bucket_counts = {0, 0}, .sum = 0, .count = 0};
  m.bytes_on_disk = 4096;
  std::vector<StreamMetrics> ms{m};
  std::string text = RenderPrometheus(ms);
  EXPECT_THAT(text, HasSubstr("# HELP jaiminho_commit_to_publish_seconds "));
  EXPECT_THAT(text, HasSubstr("# TYPE jaiminho_commit_to_publish_seconds histogram\n"
                              "jaiminho_commit_to_publish_seconds_bucket{stream=\"s\",le=\"0.5\"} 2\n"
                              "jaiminho_commit_to_publish_seconds_bucket{stream=\"s\",le=\"1\"} 3\n"
                              "jaiminho_commit_to_publish_seconds_bucket{stream=\"s\",le=\"+Inf\"} 6\n"
                              "jaiminho_commit_to_publish_seconds_sum{stream=\"s\"} 12.5\n"
                              "jaiminho_commit_to_publish_seconds_count{stream=\"s\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("jaiminho_publish_duration_seconds_bucket{stream=\"s\",le=\"+Inf\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE jaiminho_disk_bytes gauge\njaiminho_disk_bytes{stream=\"s\"} 4096\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE jaiminho_build_info gauge\njaiminho_build_info{version=\"" JAIMINHO_VERSION_STRING
                              "\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("publisher_connected")));  // unset: omitted
}

TEST(RenderPrometheus, PublisherConnectedAndNoCountersWithoutHistograms) {
  std::vector<StreamMetrics> ms(1);
  ms[0].stream = "s";
  std::string text = RenderPrometheus(ms, {.counters = false, .publisher_connected = false, .build_info = false});
  EXPECT_THAT(text, HasSubstr("# TYPE jaiminho_publisher_connected gauge\njaiminho_publisher_connected 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("histogram")));
  EXPECT_THAT(text, Not(HasSubstr("_total")));
  EXPECT_THAT(text, Not(HasSubstr("build_info")));
  EXPECT_THAT(RenderPrometheus(ms, {.publisher_connected = true}), HasSubstr("jaiminho_publisher_connected 1\n"));
}

struct Fixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(FromMicros(kT0));
  std::shared_ptr<RecordingPublisher> publisher = std::make_shared<RecordingPublisher>();
  std::unique_ptr<Outbox> outbox;

  void Open(bool inline_publisher) {
    OutboxOptions o;
    o.clock = clock;
    if (inline_publisher) o.publisher = publisher;
    outbox = MustOpen(dir.Sub("db"), std::move(o));
    ASSERT_NE(outbox, nullptr);
  }
  void Commit(Stream& s, int n) {
    auto txn = outbox->Begin();
    for (int i = 0; i < n; ++i)
      EXPECT_OK(txn.Enqueue(s, {.type = "t", .key = "k", .payload = "p"}));
    ASSERT_OK(txn.Commit({.sync = true}));
  }
};

TEST(Metrics, RelayRecordsCommitToPublishLatencyAndOnePublishDurationPerBatch) {
  Fixture f;
  f.Open(/*inline_publisher=*/false);
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder}));
  f.Commit(*s, 4);
  f.clock->Advance(std::chrono::seconds(3));
  auto relay = MustMakeRelay(*f.outbox, f.publisher);
  ASSERT_OK(relay->RunOnce());
  ASSERT_EQ(f.publisher->count(), 4u);

  ASSERT_OK_AND_ASSIGN(auto m, CollectMetrics(*f.outbox));
  ASSERT_EQ(m.size(), 1u);
  const Histogram& lat = m[0].commit_to_publish_seconds;
  EXPECT_EQ(lat.count, 4u);
  EXPECT_DOUBLE_EQ(lat.sum, 12.0);
  // 3 s falls in the bucket le="5" (after le="2.5").
  ASSERT_EQ(lat.bucket_counts.size(), lat.upper_bounds.size() + 1);
  for (size_t i = 0; i < lat.upper_bounds.size(); ++i) {
    EXPECT_EQ(lat.bucket_counts[i], lat.upper_bounds[i] == 5 ? 4u : 0u) << "le=" << lat.upper_bounds[i];
  }
  // The four events went out in one PublishBatch call.
  EXPECT_EQ(m[0].publish_duration_seconds.count, 1u);
  ASSERT_TRUE(m[0].bytes_on_disk.has_value());
  EXPECT_GT(*m[0].bytes_on_disk, 0u);  // the memtable holds the records
}

TEST(Metrics, PublishOnCommitRecordsEachPublishCall) {
  Fixture f;
  f.Open(/*inline_publisher=*/true);
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s", {.strategy = Strategy::kPublishOnCommit}));
  f.Commit(*s, 3);
  ASSERT_TRUE(f.publisher->WaitFor(3, std::chrono::seconds(10)));
  // The counters and histograms are updated once the outcome batch is written.
  std::vector<StreamMetrics> m;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    ASSERT_OK_AND_ASSIGN(m, CollectMetrics(*f.outbox));
    std::this_thread::yield();
  } while (m[0].published < 3 && std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(m[0].published, 3u);
  EXPECT_EQ(m[0].commit_to_publish_seconds.count, 3u);
  EXPECT_EQ(m[0].commit_to_publish_seconds.bucket_counts[0], 3u);  // the manual clock did not move: le="0.001"
  EXPECT_EQ(m[0].publish_duration_seconds.count, 3u);
}

}  // namespace
}  // namespace jaiminho
