// KafkaPublisher against librdkafka's in-process mock cluster (three mock
// brokers speaking the Kafka protocol over loopback TCP), read back by a real
// librdkafka consumer: record key, value and headers; acknowledgement only on
// the delivery report; broker errors injected by the mock (retried by the
// idempotent producer: no loss, no duplicate, order kept per stream); brokers
// down (delivery reports fail, the relay retries per policy until they return).
#include "jaiminho/adapters/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "adapters/signals.h"
#include "jaiminho/logger.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using namespace std::chrono_literals;
using testing::MustOpen;
using testing::Signals;
using testing::TempDir;

constexpr auto kWait = std::chrono::milliseconds(60s);
constexpr int16_t kProduceApiKey = 0;  // Kafka protocol: ProduceRequest

// A mock cluster hosted by a throwaway client handle.
class MockCluster {
 public:
  explicit MockCluster(int brokers) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    EXPECT_NE(host_, nullptr) << err;
    mc_ = rd_kafka_mock_cluster_new(host_, brokers);
    EXPECT_NE(mc_, nullptr);
  }
  ~MockCluster() {
    if (mc_ != nullptr) rd_kafka_mock_cluster_destroy(mc_);
    if (host_ != nullptr) rd_kafka_destroy(host_);
  }
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  rd_kafka_mock_cluster_t* get() const { return mc_; }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

struct Record {
  int32_t partition = -1;
  int64_t offset = -1;
  std::string key;
  bool has_key = false;
  std::string value;
  int64_t timestamp_ms = 0;
  std::map<std::string, std::string> headers;
  uint64_t Seq() const {
    auto it = headers.find("jaiminho-event-id");
    if (it == headers.end()) return 0;
    uint64_t seq = 0;
    const std::string& id = it->second;
    std::from_chars(id.data() + id.rfind('/') + 1, id.data() + id.size(), seq);
    return seq;
  }
};

// Reads `topic` (all `partitions`, from the beginning) with a real consumer
// until `want` records arrived or `timeout` passed.
std::vector<Record> Consume(const std::string& bootstraps, const std::string& topic, int partitions, size_t want,
                            std::chrono::milliseconds timeout) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] : {std::pair{"bootstrap.servers", bootstraps.c_str()}, std::pair{"group.id", "jaiminho-test"},
                      std::pair{"enable.auto.commit", "false"}, std::pair{"log_level", "3"}}) {
    EXPECT_EQ(rd_kafka_conf_set(conf, k, v, err, sizeof err), RD_KAFKA_CONF_OK) << err;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  EXPECT_NE(rk, nullptr) << err;
  if (rk == nullptr) return {};
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  EXPECT_EQ(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);
  std::vector<Record> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Record r;
      r.partition = m->partition;
      r.offset = m->offset;
      r.has_key = m->key != nullptr;
      if (r.has_key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      r.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_timestamp_type_t tstype;
      r.timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
          r.headers[name] = std::string(static_cast<const char*>(value), size);
      }
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

KafkaOptions Options(const MockCluster& mc, std::string topic = "{stream}") {
  return KafkaOptions{.bootstrap_servers = mc.bootstraps(),
                      .topic = std::move(topic),
                      .delivery_timeout = 20s,
                      .config = {{"log_level", "3"}, {"reconnect.backoff.max.ms", "200"}}};
}

TEST(KafkaPublisher, RecordCarriesKeyValueTimestampAndEventIdHeader) {
  TempDir dir;
  MockCluster mc(3);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "orders", 1, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_OK_AND_ASSIGN(auto kafka, KafkaPublisher::Create(Options(mc)));
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
  Header trace[] = {{"trace-id", "abc123"}};
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(*orders, {.type = "order.placed",
                                  .key = "ord-1",
                                  .payload = "{\"qty\":5}",
                                  .encoding = "application/json",
                                  .headers = trace}));
  ASSERT_OK(txn.Enqueue(*orders, {.type = "order.note", .key = "", .payload = "keyless"}));
  ASSERT_OK_AND_ASSIGN(Receipt receipt, txn.Commit());
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, kafka));
  ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
  EXPECT_EQ(stats.published, 2u);
  EXPECT_EQ(stats.failed, 0u);

  std::vector<Record> got = Consume(mc.bootstraps(), "orders", 1, 2, kWait);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].has_key);
  EXPECT_EQ(got[0].key, "ord-1");
  EXPECT_EQ(got[0].value, "{\"qty\":5}");
  EXPECT_EQ(got[0].headers["jaiminho-event-id"], receipt.events[0].ToString());
  EXPECT_EQ(got[0].headers["jaiminho-type"], "order.placed");
  EXPECT_EQ(got[0].headers["content-type"], "application/json");
  EXPECT_EQ(got[0].headers["trace-id"], "abc123");
  ASSERT_OK_AND_ASSIGN(StoredEvent first, outbox->FindEvent(*orders, receipt.events[0].seq));
  EXPECT_EQ(got[0].timestamp_ms, ToMicros(first->created_at) / 1000);
  EXPECT_FALSE(got[1].has_key);
  EXPECT_EQ(got[1].value, "keyless");
  EXPECT_EQ(got[1].headers["jaiminho-event-id"], receipt.events[1].ToString());
}

TEST(KafkaPublisher, InjectedBrokerErrorsAreRetriedWithoutLossDuplicatesOrReordering) {
  TempDir dir;
  MockCluster mc(3);
  constexpr int kPartitions = 3;
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "trading.fills", kPartitions, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  // Every partition led by broker 1, whose next produce requests fail with
  // retriable errors and a dropped connection.
  for (int p = 0; p < kPartitions; ++p)
    ASSERT_EQ(rd_kafka_mock_partition_set_leader(mc.get(), "trading.fills", p, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_mock_broker_push_request_error_rtts(
                mc.get(), 1, kProduceApiKey, 5, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 0,
                RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, 0, RD_KAFKA_RESP_ERR__TRANSPORT, 0,
                RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, 0, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, 0),
            RD_KAFKA_RESP_ERR_NO_ERROR);

  KafkaOptions opt = Options(mc, "trading.{stream}");
  opt.partitioning = KafkaPartitioning::kByStream;
  ASSERT_OK_AND_ASSIGN(auto kafka, KafkaPublisher::Create(opt));
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * fills, outbox->OpenStream("fills", {.strategy = Strategy::kKeepOrder}));
  constexpr int kN = 600;
  for (int i = 0; i < kN; i += 50) {
    auto txn = outbox->Begin();
    for (int j = i; j < i + 50; ++j) {
      std::string n = std::to_string(j);
      // Different keys: with kByStream they still share one partition.
      ASSERT_OK(txn.Enqueue(*fills, {.type = "fill", .key = "order-" + std::to_string(j % 7), .payload = n}));
    }
    ASSERT_OK(txn.Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, kafka, {.batch_size = 128}));
  RelayStats total;
  for (int pass = 0; pass < 10 && total.published < kN; ++pass) {
    ASSERT_OK_AND_ASSIGN(RelayStats s, relay->RunOnce());
    total += s;
  }
  EXPECT_EQ(total.published, static_cast<uint64_t>(kN));
  EXPECT_EQ(total.failed, 0u) << "librdkafka retries these errors itself";
  size_t left = 99;
  ASSERT_EQ(rd_kafka_mock_broker_error_stack_cnt(mc.get(), 1, kProduceApiKey, &left), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(left, 0u) << "the injected errors were not all hit";

  std::vector<Record> got = Consume(mc.bootstraps(), "trading.fills", kPartitions, kN, kWait);
  ASSERT_EQ(got.size(), static_cast<size_t>(kN)) << "lost or duplicated records";
  std::set<int32_t> partitions;
  for (size_t i = 0; i < got.size(); ++i) {
    partitions.insert(got[i].partition);
    ASSERT_EQ(got[i].Seq(), i + 1) << "out of order at offset " << got[i].offset;
    ASSERT_EQ(got[i].value, std::to_string(i));
  }
  EXPECT_EQ(partitions.size(), 1u) << "kByStream puts a stream in one partition";
}

TEST(KafkaPublisher, BrokersDownFailTheDeliveryReportAndTheRelayRetriesUntilTheyReturn) {
  TempDir dir;
  MockCluster mc(3);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "telemetry", 2, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  for (int b = 1; b <= 3; ++b)
    ASSERT_EQ(rd_kafka_mock_broker_set_down(mc.get(), b), RD_KAFKA_RESP_ERR_NO_ERROR);
  KafkaOptions opt = Options(mc);
  opt.delivery_timeout = 300ms;
  opt.partitioning = KafkaPartitioning::kByStream;
  ASSERT_OK_AND_ASSIGN(auto kafka, KafkaPublisher::Create(opt));
  auto signals = std::make_shared<Signals>();
  OutboxOptions o;
  o.observers = {signals};
  o.retry = RetryPolicy{.initial_backoff = 50ms, .max_backoff = 200ms, .jitter = 0};
  auto outbox = MustOpen(dir.Sub("db"), o);
  ASSERT_OK_AND_ASSIGN(Stream * telemetry, outbox->OpenStream("telemetry", {.strategy = Strategy::kKeepOrder}));
  constexpr int kN = 40;
  for (int i = 0; i < kN; ++i) {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*telemetry,
                          {.type = "reading", .key = "dev-" + std::to_string(i % 3), .payload = std::to_string(i)}));
    ASSERT_OK(txn.Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, kafka, {.interval = 50ms}));
  relay->Start();
  ASSERT_TRUE(signals->WaitRelayFailures(2, kWait));
  std::string failure = signals->relay_failures().front();
  EXPECT_NE(failure.find("unavailable"), std::string::npos) << failure;
  EXPECT_NE(failure.find(mc.bootstraps()), std::string::npos) << failure;
  EXPECT_EQ(signals->relay_published(), 0u);

  for (int b = 1; b <= 3; ++b)
    ASSERT_EQ(rd_kafka_mock_broker_set_up(mc.get(), b), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(signals->WaitRelayPublished(kN, kWait)) << signals->relay_published() << " of " << kN;
  relay->Stop();
  ASSERT_OK_AND_ASSIGN(auto pending, outbox->ListEvents(*telemetry, EventState::kPending));
  EXPECT_TRUE(pending.empty());

  std::vector<Record> got = Consume(mc.bootstraps(), "telemetry", 2, kN, kWait);
  ASSERT_GE(got.size(), static_cast<size_t>(kN));
  uint64_t contiguous = 0;
  for (const Record& r : got) {
    ASSERT_LE(r.Seq(), contiguous + 1) << "seq " << r.Seq() << " before " << contiguous + 1;
    if (r.Seq() == contiguous + 1) contiguous = r.Seq();
  }
  EXPECT_EQ(contiguous, static_cast<uint64_t>(kN));
}

// Signals that also remember when the relay delivered each event and when it
// first failed.
class TimedSignals final : public Signals {
 public:
  using Clock = std::chrono::steady_clock;
  void OnPublishedByRelay(const Event& e) override {
    {
      std::lock_guard l(mu_);
      published_.push_back(Clock::now());
    }
    Signals::OnPublishedByRelay(e);
  }
  void OnFailedToPublishByRelay(const Event& e, const Error& err) override {
    {
      std::lock_guard l(mu_);
      if (!first_failure_) first_failure_ = Clock::now();
    }
    Signals::OnFailedToPublishByRelay(e, err);
  }
  // The first relay delivery at or after `since`.
  std::optional<Clock::time_point> first_published_after(Clock::time_point since) {
    std::lock_guard l(mu_);
    for (auto t : published_)
      if (t >= since) return t;
    return std::nullopt;
  }
  std::optional<Clock::time_point> first_failure() {
    std::lock_guard l(mu_);
    return first_failure_;
  }

 private:
  std::mutex mu_;
  std::vector<Clock::time_point> published_;
  std::optional<Clock::time_point> first_failure_;
};

// Records the publisher's ready notifications, and IsConnected() as each one
// runs.
class ReadyRecorder {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ReadyRecorder(std::shared_ptr<KafkaPublisher> kafka) : kafka_(std::move(kafka)) {
    id_ = kafka_->AddReadyListener([this] {
      std::lock_guard l(mu_);
      times_.push_back(Clock::now());
      connected_.push_back(kafka_->IsConnected());
      cv_.notify_all();
    });
  }
  ~ReadyRecorder() { kafka_->RemoveReadyListener(id_); }
  ReadyRecorder(const ReadyRecorder&) = delete;
  ReadyRecorder& operator=(const ReadyRecorder&) = delete;

  // The first notification at or after `since`, waiting up to `timeout`.
  std::optional<std::pair<Clock::time_point, std::optional<bool>>> WaitAfter(Clock::time_point since,
                                                                             std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    size_t i = 0;
    auto found = [&] {
      for (i = 0; i < times_.size(); ++i)
        if (times_[i] >= since) return true;
      return false;
    };
    if (!cv_.wait_for(l, timeout, found)) return std::nullopt;
    return std::pair{times_[i], connected_[i]};
  }
  size_t CountBetween(Clock::time_point from, Clock::time_point to) {
    std::lock_guard l(mu_);
    return static_cast<size_t>(
        std::count_if(times_.begin(), times_.end(), [&](auto t) { return t >= from && t < to; }));
  }

 private:
  std::shared_ptr<KafkaPublisher> kafka_;
  uint64_t id_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Clock::time_point> times_;
  std::vector<std::optional<bool>> connected_;
};

// Waits (up to `timeout`) until kafka->IsConnected() == want. IsConnected has
// no change callback: this checks it every 10 ms until the deadline.
bool WaitConnected(const KafkaPublisher& kafka, bool want, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (kafka.IsConnected() != std::optional<bool>(want)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Issue 16: every broker down for longer than the stream's max_backoff, with
// a Start()ed relay whose keep-order head failed five times; when the brokers
// return, the first broker answer (the poll thread's metadata probe) makes
// the publisher ready, which wakes the relay, and the head is delivered within
// a second, although its backoff then still has 2 s to run (a missed or late
// notification fails the test).
TEST(KafkaPublisher, BrokersBackAfterAnOutageWakeTheRelayAndTheBlockedHeadIsDeliveredWithinASecond) {
  using Clock = std::chrono::steady_clock;
  TempDir dir;
  MockCluster mc(3);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "fills", 1, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  KafkaOptions opt = Options(mc);
  opt.delivery_timeout = 300ms;
  ASSERT_OK_AND_ASSIGN(auto kafka, KafkaPublisher::Create(opt));
  ReadyRecorder ready(kafka);
  auto signals = std::make_shared<TimedSignals>();
  std::ostringstream log;
  OutboxOptions o;
  o.observers = {signals};
  o.logger = MakeStreamLogger(log, LogLevel::kInfo);
  auto outbox = MustOpen(dir.Sub("db"), o);
  // Attempts take 300 ms (delivery_timeout): five failures take 3.4 s, and
  // the head then waits max_backoff (2 s).
  const RetryPolicy retry{.initial_backoff = 200ms, .max_backoff = 2s, .jitter = 0};
  ASSERT_OK_AND_ASSIGN(Stream * fills, outbox->OpenStream("fills", {.strategy = Strategy::kKeepOrder, .retry = retry}));
  auto enqueue = [&](const std::string& payload) {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*fills, {.type = "fill", .key = "o1", .payload = payload}));
    ASSERT_OK(txn.Commit());
  };
  // Connected first: one event delivered.
  enqueue("before");
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, kafka, {.interval = 10s}));
  relay->Start();
  ASSERT_TRUE(signals->WaitRelayPublished(1, kWait));
  ASSERT_TRUE(WaitConnected(*kafka, true, 5s))
      << "IsConnected() after a delivery; has a value: " << kafka->IsConnected().has_value();

  const auto down_at = Clock::now();
  for (int b = 1; b <= 3; ++b)
    ASSERT_EQ(rd_kafka_mock_broker_set_down(mc.get(), b), RD_KAFKA_RESP_ERR_NO_ERROR);
  enqueue("during");
  ASSERT_TRUE(WaitConnected(*kafka, false, 5s))
      << "IsConnected() stays true with every broker down; last error: " << kafka->last_error();
  ASSERT_TRUE(signals->WaitRelayFailures(5, kWait));
  for (int b = 1; b <= 3; ++b)
    ASSERT_EQ(rd_kafka_mock_broker_set_up(mc.get(), b), RD_KAFKA_RESP_ERR_NO_ERROR);
  const auto up_at = Clock::now();
  ASSERT_TRUE(signals->WaitRelayPublished(2, kWait)) << signals->relay_failures().back();
  relay->Stop();

  const auto ms = [&](Clock::time_point t) {
    return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(t - down_at).count());
  };
  auto first_delivery = signals->first_published_after(up_at);
  ASSERT_TRUE(first_delivery);
  EXPECT_LT(*first_delivery - up_at, 1s) << "first delivery " << ms(*first_delivery) - ms(up_at)
                                         << " ms after the brokers came back";
  auto notified = ready.WaitAfter(up_at, 5s);
  ASSERT_TRUE(notified) << "no ready notification after the brokers came back";
  EXPECT_EQ(ready.CountBetween(down_at, up_at), 0u) << "ready notification while every broker was down";
  EXPECT_EQ(notified->second, std::optional<bool>(true)) << "IsConnected() as the ready notification runs";
  EXPECT_EQ(kafka->IsConnected(), std::optional<bool>(true));
  ASSERT_TRUE(signals->first_failure());
  std::printf(
      "Kafka mock cluster outage (ms from the brokers going down): first failure %lld, brokers back %lld, ready "
      "notification %lld, first delivery %lld\n%s",
      ms(*signals->first_failure()), ms(up_at), ms(notified->first), ms(*first_delivery), log.str().c_str());
  EXPECT_GT(up_at - down_at, retry.max_backoff) << "down for longer than max_backoff";
  // 3.4 s when each attempt fails at delivery_timeout (the first may wait for
  // librdkafka's own timeout, up to a second later, before it reports every
  // broker down); 26 s if each waited the 5 s grace for a delivery report.
  EXPECT_LT(up_at - down_at, 6s) << "five attempts with every broker down took " << ms(up_at)
                                 << " ms: each should fail at delivery_timeout";
  EXPECT_NE(log.str().find("WARN publisher down"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("INFO publisher up"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("INFO stream unblocked stream=fills seq=2"), std::string::npos) << log.str();
}

TEST(KafkaPublisher, PublishBatchThroughputOnTheMockCluster) {
  MockCluster mc(3);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc.get(), "bulk", 1, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_OK_AND_ASSIGN(auto kafka, KafkaPublisher::Create(Options(mc)));
  constexpr size_t kN = 5000;
  std::vector<std::string> payloads(kN);
  std::vector<Event> events(kN);
  for (size_t i = 0; i < kN; ++i) {
    payloads[i] = std::to_string(i);
    events[i].id.stream = "bulk";
    events[i].id.seq = i + 1;
    events[i].type = "x";
    events[i].key = "k";
    events[i].payload = payloads[i];
  }
  std::vector<Status> results(kN);
  // Warm up: metadata, connections and the idempotent producer id.
  ASSERT_OK(kafka->Publish(events[0]));
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < kN; i += 256) {
    size_t n = std::min<size_t>(256, kN - i);
    kafka->PublishBatch(std::span(events).subspan(i, n), Order::kKeep, std::span(results).subspan(i, n));
  }
  double batch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (size_t i = 0; i < kN; ++i)
    ASSERT_TRUE(results[i].has_value()) << i << ": " << results[i].error().ToString();
  start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < 500; ++i)
    ASSERT_OK(kafka->Publish(events[i]));
  double single_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("Kafka idempotent producer to the mock cluster: PublishBatch(256) %.0f events/s, Publish %.0f events/s\n",
              kN / batch_s, 500 / single_s);
  std::vector<Record> got = Consume(mc.bootstraps(), "bulk", 1, kN + 501, kWait);
  EXPECT_EQ(got.size(), kN + 501);
}

}  // namespace
}  // namespace jaiminho
