// MqttPublisher against a real mosquitto broker (Debian's /usr/sbin/mosquitto)
// that each test starts on a free loopback port and stops: delivery with
// topic, payload and the event id property; PUBACK-based acknowledgement and
// pipelined batches; a broker stopped mid-stream and restarted; refused
// connections; a hung broker. Nothing in the MQTT path is mocked.
#include "jaiminho/adapters/mqtt.h"

#include <charconv>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "adapters/signals.h"
#include "adapters/testing/mosquitto_broker.h"
#include "adapters/testing/mqtt_subscriber.h"
#include "jaiminho/logger.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using namespace std::chrono_literals;
using testing::MosquittoBroker;
using testing::MosquittoBrokerOptions;
using testing::MqttSubscriber;
using testing::MustOpen;
using testing::ReceivedMessage;
using testing::Signals;
using testing::TempDir;

// Generous bound for conditions that normally hold within milliseconds.
constexpr auto kWait = std::chrono::milliseconds(30s);
constexpr int64_t kT0 = 1'700'000'000'000'000;

std::unique_ptr<MosquittoBroker> StartBroker(const TempDir& dir, MosquittoBrokerOptions o = {}) {
  o.dir = dir.Sub("broker");
  auto broker = MosquittoBroker::Start(o);
  EXPECT_TRUE(broker.has_value()) << broker.error().ToString();
  return broker ? std::move(*broker) : nullptr;
}

MqttOptions FastOptions(uint16_t port, std::string topic = "{stream}/{type}/{key}") {
  return MqttOptions{.host = "127.0.0.1",
                     .port = port,
                     .topic = std::move(topic),
                     .ack_timeout = 10s,
                     .connect_timeout = 2s,
                     .reconnect_min = 10ms,
                     .reconnect_max = 200ms};
}

// The seq and stream in a message's event id "<db>/<stream>/<seq>".
struct IdParts {
  std::string stream;
  uint64_t seq = 0;
};
IdParts ParseId(const ReceivedMessage& m) {
  IdParts p;
  std::string id = m.Property("jaiminho-event-id").value_or("");
  size_t last = id.rfind('/'), first = id.find('/');
  if (last == std::string::npos || first == last) return p;
  p.stream = id.substr(first + 1, last - first - 1);
  std::from_chars(id.data() + last + 1, id.data() + id.size(), p.seq);
  return p;
}

// Seqs of `stream` in arrival order.
std::vector<uint64_t> SeqsOf(const std::vector<ReceivedMessage>& msgs, std::string_view stream) {
  std::vector<uint64_t> out;
  for (const auto& m : msgs) {
    IdParts p = ParseId(m);
    if (p.stream == stream) out.push_back(p.seq);
  }
  return out;
}

std::set<uint64_t> Distinct(const std::vector<uint64_t>& seqs) {
  return {seqs.begin(), seqs.end()};
}

// Hand-made events for direct publisher calls.
struct EventFactory {
  std::vector<std::string> keys;
  std::vector<Event> Make(std::string_view stream, std::vector<std::string> k) {
    keys = std::move(k);
    std::vector<Event> out;
    for (size_t i = 0; i < keys.size(); ++i) {
      Event e;
      e.id.db.bytes[15] = 7;
      e.id.stream = stream;
      e.id.seq = i + 1;
      e.type = "t";
      e.key = keys[i];
      e.payload = keys[i];
      e.encoding = "text/plain";
      out.push_back(e);
    }
    return out;
  }
};

TEST(MqttPublisher, DeliversTopicPayloadContentTypeAndEventIdProperty) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ASSERT_OK_AND_ASSIGN(auto sub, MqttSubscriber::Connect({.port = broker->port(), .filter = "gw/#"}));
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(broker->port(), "gw/{stream}/{type}/{key}")));
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * telemetry, outbox->OpenStream("telemetry", {.strategy = Strategy::kKeepOrder}));
  Header site[] = {{"site", "lisbon"}};
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(
      *telemetry,
      {.type = "reading.v1", .key = "dev/1", .payload = "21.5", .encoding = "text/plain", .headers = site}));
  ASSERT_OK(txn.Enqueue(*telemetry, {.type = "reading.v1", .key = "dev/2", .payload = std::string_view("\0\1", 2)}));
  ASSERT_OK_AND_ASSIGN(Receipt receipt, txn.Commit());

  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, mqtt));
  ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
  EXPECT_EQ(stats.published, 2u);
  EXPECT_EQ(stats.failed, 0u);
  ASSERT_TRUE(sub->WaitFor(2, kWait));
  auto msgs = sub->messages();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].topic, "gw/telemetry/reading.v1/dev/1");
  EXPECT_EQ(msgs[0].payload, "21.5");
  EXPECT_EQ(msgs[0].content_type, "text/plain");
  EXPECT_EQ(msgs[0].Property("jaiminho-event-id"), receipt.events[0].ToString());
  EXPECT_EQ(msgs[0].Property("site"), "lisbon");
  EXPECT_EQ(msgs[1].topic, "gw/telemetry/reading.v1/dev/2");
  EXPECT_EQ(msgs[1].payload, std::string("\0\1", 2));
  EXPECT_EQ(msgs[1].content_type, "application/octet-stream");
  EXPECT_EQ(msgs[1].Property("jaiminho-event-id"), receipt.events[1].ToString());
  ASSERT_OK_AND_ASSIGN(auto sent, outbox->ListEvents(*telemetry, EventState::kSent));
  EXPECT_EQ(sent.size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto pending, outbox->ListEvents(*telemetry, EventState::kPending));
  EXPECT_TRUE(pending.empty());
}

TEST(MqttPublisher, PublishBatchPipelinesAndConfirmsEveryPuback) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ASSERT_OK_AND_ASSIGN(auto sub, MqttSubscriber::Connect({.port = broker->port(), .filter = "bulk/#"}));
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(broker->port(), "{stream}/{key}")));
  constexpr size_t kN = 2000;
  std::vector<std::string> keys;
  for (size_t i = 0; i < kN; ++i)
    keys.push_back("k" + std::to_string(i));
  EventFactory f;
  std::vector<Event> events = f.Make("bulk", keys);
  std::vector<Status> results(kN);
  ASSERT_TRUE(mqtt->WaitConnected(kWait)) << mqtt->last_error();  // time the publishing, not the connecting
  auto start = std::chrono::steady_clock::now();
  mqtt->PublishBatch(events, Order::kKeep, results);
  auto batch_time = std::chrono::steady_clock::now() - start;
  for (size_t i = 0; i < kN; ++i)
    ASSERT_TRUE(results[i].has_value()) << i << ": " << results[i].error().ToString();
  ASSERT_TRUE(sub->WaitFor(kN, kWait));
  std::vector<uint64_t> seqs = SeqsOf(sub->messages(), "bulk");
  ASSERT_EQ(seqs.size(), kN);
  for (size_t i = 0; i < kN; ++i)
    ASSERT_EQ(seqs[i], i + 1) << "delivered out of order";

  // The same events one Publish at a time (a round trip each), for comparison.
  start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < kN; ++i)
    ASSERT_OK(mqtt->Publish(events[i]));
  auto single_time = std::chrono::steady_clock::now() - start;
  auto per_s = [&](auto d) { return static_cast<double>(kN) / std::chrono::duration<double>(d).count(); };
  std::printf("MQTT QoS1 to loopback mosquitto: PublishBatch %.0f events/s, Publish %.0f events/s\n", per_s(batch_time),
              per_s(single_time));
  RecordProperty("batch_events_per_s", static_cast<int>(per_s(batch_time)));
  RecordProperty("single_events_per_s", static_cast<int>(per_s(single_time)));
}

TEST(MqttPublisher, OrderedBatchSendsNothingAfterTheFirstFailure) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ASSERT_OK_AND_ASSIGN(auto sub, MqttSubscriber::Connect({.port = broker->port(), .filter = "o/#"}));
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(broker->port(), "{stream}/{key}")));
  EventFactory f;
  // "bad+" expands to a topic with a wildcard: not publishable.
  std::vector<Event> events = f.Make("o", {"a", "bad+", "c", "d"});
  std::vector<Status> results(events.size());
  mqtt->PublishBatch(events, Order::kKeep, results);
  ASSERT_OK(results[0]);
  ASSERT_ERROR(results[1], ErrorCode::kRejected);
  EXPECT_NE(results[1].error().message().find("wildcard"), std::string::npos) << results[1].error().message();
  ASSERT_ERROR(results[2], ErrorCode::kAborted);
  ASSERT_ERROR(results[3], ErrorCode::kAborted);
  // A sentinel on the same connection: once it arrived, anything sent before
  // it has arrived too (one connection, in order).
  EventFactory g;
  ASSERT_OK(mqtt->Publish(g.Make("o", {"sentinel"})[0]));
  ASSERT_TRUE(sub->WaitUntil([](const auto& m) { return !m.empty() && m.back().topic == "o/sentinel"; }, kWait));
  auto msgs = sub->messages();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].topic, "o/a");

  // Unordered: every event is attempted on its own.
  mqtt->PublishBatch(events, Order::kAny, results);
  ASSERT_OK(results[0]);
  ASSERT_ERROR(results[1], ErrorCode::kRejected);
  ASSERT_OK(results[2]);
  ASSERT_OK(results[3]);
  ASSERT_TRUE(sub->WaitFor(5, kWait));
  msgs = sub->messages();
  EXPECT_EQ(msgs[2].topic, "o/a");
  EXPECT_EQ(msgs[3].topic, "o/c");
  EXPECT_EQ(msgs[4].topic, "o/d");
}

TEST(MqttPublisher, InvalidTopicIsParkedAndTheKeepOrderStreamGoesOn) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ASSERT_OK_AND_ASSIGN(auto sub, MqttSubscriber::Connect({.port = broker->port(), .filter = "cmd/#"}));
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(broker->port(), "{stream}/{key}")));
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * cmd, outbox->OpenStream("cmd", {.strategy = Strategy::kKeepOrder}));
  for (std::string_view key : {"valve/1", "valve/#", "valve/3"}) {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*cmd, {.type = "open", .key = key, .payload = "1"}));
    ASSERT_OK(txn.Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, mqtt));
  ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
  EXPECT_EQ(stats.published, 2u);
  EXPECT_EQ(stats.parked, 1u);
  ASSERT_TRUE(sub->WaitFor(2, kWait));
  auto msgs = sub->messages();
  EXPECT_EQ(msgs[0].topic, "cmd/valve/1");
  EXPECT_EQ(msgs[1].topic, "cmd/valve/3");
  ASSERT_OK_AND_ASSIGN(StoredEvent parked, outbox->FindEvent(*cmd, 2));
  EXPECT_EQ(parked->state, EventState::kParked);
  std::string why = std::string(parked->note) + " " + std::string(parked->last_error);
  EXPECT_NE(why.find("cmd/valve/#"), std::string::npos) << why;
}

TEST(MqttPublisher, BrokerStoppedMidStreamEventsBufferThenAllArriveInOrder) {
  TempDir dir;
  auto broker = StartBroker(dir);  // persistent: the subscriber's session survives the restart
  ASSERT_TRUE(broker);
  const std::string endpoint = "127.0.0.1:" + std::to_string(broker->port());
  ASSERT_OK_AND_ASSIGN(auto sub, MqttSubscriber::Connect({.port = broker->port(), .client_id = "audit"}));
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(broker->port(), "{stream}/{key}")));
  auto signals = std::make_shared<Signals>();
  OutboxOptions o;
  o.observers = {signals};
  o.publisher = mqtt;  // publish-on-commit events go out inline ...
  o.inline_dispatch = InlineDispatch::kDispatcherThread;
  o.retry = RetryPolicy{.initial_backoff = 20ms, .max_backoff = 200ms, .jitter = 0.1};
  auto outbox = MustOpen(dir.Sub("db"), o);
  ASSERT_OK_AND_ASSIGN(Stream * fills, outbox->OpenStream("fills", {.strategy = Strategy::kKeepOrder}));
  ASSERT_OK_AND_ASSIGN(Stream * telemetry, outbox->OpenStream("telemetry", {.strategy = Strategy::kPublishOnCommit}));
  ASSERT_OK_AND_ASSIGN(BusinessFamily state, outbox->FindBusinessFamily("default"));
  ASSERT_OK_AND_ASSIGN(auto relay,
                       Relay::Make(*outbox, mqtt, {.interval = 50ms}));  // ... and the relay retries whatever failed
  relay->Start();

  constexpr int kPhase = 150;
  int next = 0;
  auto commit_phase = [&] {
    for (int i = 0; i < kPhase; ++i, ++next) {
      auto txn = outbox->Begin();
      std::string n = std::to_string(next);
      ASSERT_OK(txn.Put(state, "position", n));
      ASSERT_OK(txn.Enqueue(*fills, {.type = "fill", .key = "o" + n, .payload = n}));
      ASSERT_OK(txn.Enqueue(*telemetry, {.type = "tick", .key = "t" + n, .payload = n}));
      ASSERT_OK(txn.Commit());
    }
  };

  // Broker up.
  commit_phase();
  ASSERT_TRUE(sub->WaitUntil(
      [&](const auto& m) {
        return Distinct(SeqsOf(m, "fills")).size() == kPhase && SeqsOf(m, "telemetry").size() >= kPhase;
      },
      kWait));

  // Broker down: commits go on, events buffer in the outbox, the relay keeps
  // trying and failing with an error that names the broker.
  ASSERT_OK(broker->Stop());
  commit_phase();
  ASSERT_TRUE(signals->WaitRelayFailures(3, kWait));
  EXPECT_FALSE(mqtt->connected());
  std::string failure = signals->relay_failures().back();
  EXPECT_NE(failure.find(endpoint), std::string::npos) << failure;
  EXPECT_NE(failure.find("unavailable"), std::string::npos) << failure;
  ASSERT_OK_AND_ASSIGN(auto buffered, outbox->ListEvents(*fills, EventState::kPending, 10 * kPhase));
  EXPECT_GE(buffered.size(), static_cast<size_t>(kPhase));

  // Broker back: everything arrives, the keep-order stream in order.
  ASSERT_OK(broker->Restart());
  commit_phase();
  const size_t total = 3 * kPhase;
  bool all = sub->WaitUntil(
      [&](const auto& m) {
        return Distinct(SeqsOf(m, "fills")).size() == total && Distinct(SeqsOf(m, "telemetry")).size() == total;
      },
      kWait);
  relay->Stop();
  auto msgs = sub->messages();
  ASSERT_TRUE(all) << "fills " << Distinct(SeqsOf(msgs, "fills")).size() << ", telemetry "
                   << Distinct(SeqsOf(msgs, "telemetry")).size() << " of " << total << "\nbroker log:\n"
                   << broker->log();
  // Keep-order: seq N+1 never arrives before N (a resend after a lost PUBACK
  // repeats a prefix: duplicates, never a gap).
  uint64_t contiguous = 0;
  for (uint64_t seq : SeqsOf(msgs, "fills")) {
    ASSERT_LE(seq, contiguous + 1) << "fills seq " << seq << " arrived before " << contiguous + 1;
    if (seq == contiguous + 1) contiguous = seq;
  }
  EXPECT_EQ(contiguous, total);
  EXPECT_EQ(*Distinct(SeqsOf(msgs, "telemetry")).rbegin(), total);
  ASSERT_OK_AND_ASSIGN(auto pending, outbox->ListEvents(*fills, EventState::kPending));
  EXPECT_TRUE(pending.empty());
  ASSERT_OK_AND_ASSIGN(auto retrying, outbox->ListEvents(*telemetry, EventState::kRetrying));
  EXPECT_TRUE(retrying.empty());
  EXPECT_GT(signals->inline_failures(), 0) << "publish-on-commit events should have failed inline while down";
  std::printf("duplicates after the restart: fills %zu, telemetry %zu\n", SeqsOf(msgs, "fills").size() - total,
              SeqsOf(msgs, "telemetry").size() - total);
}

// Issue 16: a keep-order head that failed while the broker was down for
// longer than max_backoff is delivered within a second of the broker's
// return: the reconnect's ready notification wakes the relay, whatever the
// head's backoff (2 s here, so a missed wake would take up to 2 s).
TEST(MqttPublisher, ReconnectWakesTheRelayAndTheBlockedHeadIsDeliveredWithinASecond) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ASSERT_OK(broker->Stop());
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(broker->port(), "{stream}/{key}")));
  std::mutex mu;
  std::optional<std::chrono::steady_clock::time_point> ready_at;
  const uint64_t listener = mqtt->AddReadyListener([&] {
    std::lock_guard l(mu);
    if (!ready_at) ready_at = std::chrono::steady_clock::now();
  });
  auto signals = std::make_shared<Signals>();
  std::ostringstream log;
  OutboxOptions o;
  o.observers = {signals};
  o.logger = MakeStreamLogger(log, LogLevel::kInfo);
  auto outbox = MustOpen(dir.Sub("db"), o);
  // Failures at 0, 0.5, 1.5 and 3.5 s: the head then waits max_backoff (2 s).
  ASSERT_OK_AND_ASSIGN(
      Stream * s,
      outbox->OpenStream("fills", {.strategy = Strategy::kKeepOrder,
                                   .retry = RetryPolicy{.initial_backoff = 500ms, .max_backoff = 2s, .jitter = 0}}));
  {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*s, {.type = "fill", .key = "o1", .payload = "1"}));
    ASSERT_OK(txn.Commit());
  }
  const auto down_at = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, mqtt, {.interval = 10s}));
  relay->Start();
  ASSERT_TRUE(signals->WaitRelayFailures(4, kWait));
  ASSERT_OK(broker->Restart());
  const auto up_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(signals->WaitRelayPublished(1, kWait)) << broker->log();
  const auto delivered_by = std::chrono::steady_clock::now();
  relay->Stop();
  mqtt->RemoveReadyListener(listener);
  const auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  EXPECT_GT(up_at - down_at, 2s) << "down for longer than max_backoff";
  EXPECT_LT(delivered_by - up_at, 1s) << "first delivery " << ms(delivered_by - up_at)
                                      << " ms after the broker started";
  std::lock_guard l(mu);
  ASSERT_TRUE(ready_at);
  std::printf(
      "mosquitto outage (ms from the first attempt): broker back %lld, ready notification %lld, first "
      "delivery by %lld\n%s",
      static_cast<long long>(ms(up_at - down_at)), static_cast<long long>(ms(*ready_at - down_at)),
      static_cast<long long>(ms(delivered_by - down_at)), log.str().c_str());
  EXPECT_NE(log.str().find("WARN publisher down"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("WARN stream blocked stream=fills seq=1"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("INFO publisher up"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("INFO stream unblocked stream=fills seq=1"), std::string::npos) << log.str();
}

TEST(MqttPublisher, RefusedConnectionNamesHostPortAndIsRetriedPerPolicy) {
  TempDir dir;
  const uint16_t port = testing::FreeLoopbackPort();  // nothing listens there
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(port)));
  auto clock = std::make_shared<ManualClock>(FromMicros(kT0));
  OutboxOptions o;
  o.clock = clock;
  o.retry = RetryPolicy{.max_attempts = 3, .initial_backoff = 1s, .max_backoff = 10s, .multiplier = 2, .jitter = 0};
  auto outbox = MustOpen(dir.Sub("db"), o);
  ASSERT_OK_AND_ASSIGN(Stream * cmds, outbox->OpenStream("cmds", {.strategy = Strategy::kKeepOrder,
                                                                  .on_exhaustion = OnExhaustion::kPark}));
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(*cmds, {.type = "reboot", .key = "dev/9", .payload = "now"}));
  ASSERT_OK(txn.Commit());
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, mqtt));

  // Attempt 1 fails at once (no broker), naming where it tried.
  ASSERT_OK_AND_ASSIGN(RelayStats s1, relay->RunOnce());
  EXPECT_EQ(s1.failed, 1u);
  ASSERT_OK_AND_ASSIGN(StoredEvent e1, outbox->FindEvent(*cmds, 1));
  EXPECT_EQ(e1->attempts, 1u);
  std::string error(e1->last_error);
  EXPECT_NE(error.find(endpoint), std::string::npos) << error;
  EXPECT_NE(error.find("Connection refused"), std::string::npos) << error;
  EXPECT_NE(mqtt->last_error().find(endpoint), std::string::npos) << mqtt->last_error();

  // Not due before the backoff (1 s) passes on the outbox clock.
  ASSERT_OK_AND_ASSIGN(RelayStats s2, relay->RunOnce());
  EXPECT_EQ(s2.failed, 0u);
  clock->Advance(1100ms);
  ASSERT_OK_AND_ASSIGN(RelayStats s3, relay->RunOnce());
  EXPECT_EQ(s3.failed, 1u);
  clock->Advance(1100ms);  // backoff is now 2 s
  ASSERT_OK_AND_ASSIGN(RelayStats s4, relay->RunOnce());
  EXPECT_EQ(s4.failed, 0u);
  clock->Advance(1000ms);
  ASSERT_OK_AND_ASSIGN(RelayStats s5, relay->RunOnce());
  EXPECT_EQ(s5.failed, 1u);
  // Third failure: max_attempts reached, the stream parks the event.
  ASSERT_OK_AND_ASSIGN(StoredEvent e3, outbox->FindEvent(*cmds, 1));
  EXPECT_EQ(e3->state, EventState::kParked);
  EXPECT_EQ(e3->attempts, 3u);
  EXPECT_NE(std::string(e3->last_error).find(endpoint), std::string::npos) << e3->last_error;
}

TEST(MqttPublisher, BrokerRefusingTheClientIsRetriedUntilItAccepts) {
  TempDir dir;
  auto strict = StartBroker(dir, {.allow_anonymous = false});
  ASSERT_TRUE(strict);
  const uint16_t port = strict->port();
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(port)));
  auto signals = std::make_shared<Signals>();
  OutboxOptions o;
  o.observers = {signals};
  o.retry = RetryPolicy{.initial_backoff = 20ms, .max_backoff = 100ms, .jitter = 0};
  auto outbox = MustOpen(dir.Sub("db"), o);
  ASSERT_OK_AND_ASSIGN(Stream * cmds, outbox->OpenStream("cmds", {.strategy = Strategy::kKeepOrder}));
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(*cmds, {.type = "reboot", .key = "dev/9", .payload = "now"}));
  ASSERT_OK(txn.Commit());
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, mqtt, {.interval = 20ms}));
  relay->Start();
  ASSERT_TRUE(signals->WaitRelayFailures(2, kWait));
  std::string failure = signals->relay_failures().front();
  EXPECT_NE(failure.find(endpoint + " refused the connection"), std::string::npos) << failure;
  EXPECT_NE(failure.find("Not authorized"), std::string::npos) << failure;

  // The operator fixes the broker (same port, anonymous allowed): the relay's
  // next retry gets through.
  ASSERT_OK(strict->Stop());
  auto open = StartBroker(dir, {.port = port});
  ASSERT_TRUE(open);
  ASSERT_OK_AND_ASSIGN(auto sub, MqttSubscriber::Connect({.port = port, .filter = "cmds/#"}));
  // The event may have been delivered before the subscriber connected: commit
  // a second one, which proves the stream flows, then check the first is sent.
  auto txn2 = outbox->Begin();
  ASSERT_OK(txn2.Enqueue(*cmds, {.type = "reboot", .key = "dev/10", .payload = "now"}));
  ASSERT_OK(txn2.Commit());
  ASSERT_TRUE(
      sub->WaitUntil([](const auto& m) { return !m.empty() && m.back().topic == "cmds/reboot/dev/10"; }, kWait));
  relay->Stop();
  ASSERT_OK_AND_ASSIGN(StoredEvent first, outbox->FindEvent(*cmds, 1));
  EXPECT_EQ(first->state, EventState::kSent);
  EXPECT_GE(first->attempts, 2u);
}

TEST(MqttPublisher, NoPubackFromAHungBrokerTimesOut) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  MqttOptions opt = FastOptions(broker->port());
  opt.ack_timeout = 300ms;
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(opt));
  ASSERT_TRUE(mqtt->WaitConnected(kWait)) << mqtt->last_error();
  EventFactory f;
  std::vector<Event> events = f.Make("hung", {"a", "b"});
  broker->Pause();
  auto start = std::chrono::steady_clock::now();
  Status st = mqtt->Publish(events[0]);
  auto waited = std::chrono::steady_clock::now() - start;
  broker->Resume();
  ASSERT_ERROR(st, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message().find("no PUBACK"), std::string::npos) << st.error().message();
  EXPECT_GE(waited, 300ms);
  // The broker answers again: the connection was never lost.
  ASSERT_OK(mqtt->Publish(events[1]));
}

TEST(MqttPublisher, ConcurrentPublishersShareOneConnection) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ASSERT_OK_AND_ASSIGN(auto sub, MqttSubscriber::Connect({.port = broker->port(), .filter = "c/#"}));
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(FastOptions(broker->port(), "c/{stream}/{seq}")));
  constexpr int kThreads = 4, kEach = 250;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string stream = "s" + std::to_string(t);
      for (int i = 0; i < kEach; ++i) {
        Event e;
        e.id.stream = stream;
        e.id.seq = static_cast<uint64_t>(i + 1);
        e.type = "x";
        e.payload = "p";
        if (!mqtt->Publish(e)) ++failures;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(sub->WaitFor(kThreads * kEach, kWait));
  std::set<std::string> topics;
  for (const auto& m : sub->messages())
    topics.insert(m.topic);
  EXPECT_EQ(topics.size(), static_cast<size_t>(kThreads * kEach));
}

}  // namespace
}  // namespace jaiminho
