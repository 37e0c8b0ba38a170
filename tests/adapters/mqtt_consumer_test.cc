// MqttConsumer against a real mosquitto broker: each event's effect applied
// once (duplicates published twice, a prefix resent after a broker restart),
// keep-order streams applied in order, a failed handler not acknowledged and
// redelivered, and (MqttConsumerCrash) a consumer process SIGKILLed inside its
// handler or at random points while a producer publishes through a relay.
//
//   JAIMINHO_CONSUMER_KILLS=100 ./mqtt_consumer_test --gtest_filter='MqttConsumerCrash.*'   # long mode (default 20)
//   JAIMINHO_CONSUMER_SEED=1234 ...                                                       # repeat a run's choices
//
// The random pause before each kill is the point of the harness, not a stand-in
// for synchronization: it decides where in the consumer's work the kill lands.
#include "jaiminho/adapters/mqtt_consumer.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <signal.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "adapters/consumer_harness.h"
#include "adapters/signals.h"
#include "adapters/testing/mosquitto_broker.h"
#include "jaiminho/adapters/mqtt.h"
#include "jaiminho/inbox.h"
#include "jaiminho/logger.h"
#include "support/child.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using namespace std::chrono_literals;
using testing::AppliedCounts;
using testing::CheckAppliedOnce;
using testing::Child;
using testing::CountOutcomes;
using testing::EnvInt;
using testing::HarnessProducer;
using testing::HarnessSeed;
using testing::MosquittoBroker;
using testing::MustOpen;
using testing::OutcomeCounts;
using testing::TempDir;

// Generous bound for conditions that normally hold within milliseconds.
constexpr auto kWait = std::chrono::milliseconds(30s);

std::unique_ptr<MosquittoBroker> StartBroker(const TempDir& dir) {
  auto broker = MosquittoBroker::Start({.dir = dir.Sub("broker")});
  EXPECT_TRUE(broker.has_value()) << broker.error().ToString();
  return broker ? std::move(*broker) : nullptr;
}

MqttOptions PublisherOptions(uint16_t port) {
  return MqttOptions{.host = "127.0.0.1",
                     .port = port,
                     .topic = "jm/{stream}/{key}",
                     .connect_timeout = 2s,
                     .reconnect_min = 10ms,
                     .reconnect_max = 200ms};
}

MqttConsumerOptions ConsumerOptions(uint16_t port, std::string client_id = "consumer-1") {
  return MqttConsumerOptions{.host = "127.0.0.1",
                             .port = port,
                             .client_id = std::move(client_id),
                             .filter = "jm/#",
                             .reconnect_min = 10ms,
                             .reconnect_max = 200ms};
}

using ConsumerSide = testing::ConsumerSide<MqttMessage, MqttConsumer, MqttConsumerOptions>;
using testing::EventSet;
using testing::MakeEvents;

std::vector<uint64_t> Iota(uint64_t first, uint64_t last) {
  std::vector<uint64_t> v;
  for (uint64_t s = first; s <= last; ++s)
    v.push_back(s);
  return v;
}

TEST(MqttConsumer, StartValidatesOptionsNamingThem) {
  TempDir dir;
  ConsumerSide side(dir.Sub("c"));
  auto start = [&](MqttConsumerOptions o) {
    return MqttConsumer::Start(*side.outbox, *side.inbox, std::move(o), side.Handler());
  };
  struct Case {
    std::function<void(MqttConsumerOptions&)> edit;
    std::string names;
  };
  const std::vector<Case> cases = {
      {[](auto& o) { o.client_id.clear(); }, "client_id"},
      {[](auto& o) { o.filter = "a/#/b"; }, "filter"},
      {[](auto& o) { o.filter.clear(); }, "filter"},
      {[](auto& o) { o.keepalive = 1s; }, "keepalive"},
      {[](auto& o) { o.session_expiry = 0s; }, "session_expiry"},
      {[](auto& o) { o.reconnect_max = 1ms; }, "reconnect_min"},
      {[](auto& o) { o.id_property.clear(); }, "id_property"},
      {[](auto& o) { o.port = 0; }, "port"},
      {[](auto& o) { o.connect_timeout = 0ms; }, "connect_timeout"},
  };
  for (const auto& c : cases) {
    MqttConsumerOptions o = ConsumerOptions(1883);
    c.edit(o);
    auto r = start(o);
    ASSERT_FALSE(r.has_value()) << c.names;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.names), std::string::npos) << r.error().ToString();
  }
  auto r = MqttConsumer::Start(*side.outbox, *side.inbox, ConsumerOptions(1883), nullptr);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

TEST(MqttConsumer, StartsWhileTheBrokerIsDownAndSubscribesOnceItIsUp) {
  TempDir dir;
  ConsumerSide side(dir.Sub("c"));
  const uint16_t port = testing::FreeLoopbackPort();
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       MqttConsumer::Start(*side.outbox, *side.inbox, ConsumerOptions(port), side.Handler()));
  auto broker = MosquittoBroker::Start({.dir = dir.Sub("broker"), .port = port});
  ASSERT_TRUE(broker.has_value()) << broker.error().ToString();
  ASSERT_TRUE(consumer->WaitSubscribed(kWait)) << consumer->last_error();
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(port)));
  auto events = MakeEvents("orders", 1, 1);
  ASSERT_OK(mqtt->Publish(events[0]));
  ASSERT_TRUE(consumer->WaitApplied(1, kWait)) << consumer->last_error();
  // Stopped while the broker is down: the destructor returns (the connection
  // attempt is bounded by connect_timeout, the retry delay by the stop).
  ASSERT_OK((*broker)->Stop());
  consumer.reset();
  EXPECT_EQ(side.Applied("orders", 1), 1);
}

TEST(MqttConsumer, EventPublishedTwiceIsAppliedOnceAndTheDuplicateAcknowledged) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ConsumerSide side(dir.Sub("c"));
  ASSERT_OK_AND_ASSIGN(
      auto consumer,
      MqttConsumer::Start(*side.outbox, *side.inbox, side.Observed(ConsumerOptions(broker->port())), side.Handler()));
  ASSERT_TRUE(consumer->WaitSubscribed(kWait)) << consumer->last_error();
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(broker->port())));
  constexpr uint64_t kN = 20;
  auto events = MakeEvents("orders", 1, kN);
  for (const Event& e : events) {
    ASSERT_OK(mqtt->Publish(e));
    ASSERT_OK(mqtt->Publish(e));  // the same event again: what a relay retry does
  }
  ASSERT_TRUE(consumer->WaitApplied(kN, kWait)) << consumer->last_error();
  ASSERT_TRUE(side.WaitDuplicates(kN));
  MqttConsumerStats st = consumer->stats();
  EXPECT_EQ(st.applied, kN);
  EXPECT_EQ(st.duplicates, kN);
  EXPECT_EQ(st.not_acknowledged, 0u);
  {
    std::lock_guard l(side.mu);
    EXPECT_EQ(side.handler_calls, static_cast<int>(kN));  // the handler never ran for a duplicate
  }
  for (uint64_t s = 1; s <= kN; ++s)
    EXPECT_EQ(side.Applied("orders", s), 1) << s;
  auto state = side.inbox->State(events[0].id.db, "orders");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->watermark, kN);
  EXPECT_EQ(state->received, kN);
}

// Typed handlers (ConsumerHandlers) on what a relay published with Emit: each
// value decoded with the producer's codec, found by the type the publisher
// sends in its "jaiminho-type" property; a type without a handler is skipped
// (UnknownTypes::kSkip) and recorded, not applied.
TEST(MqttConsumer, TypedHandlersDecodeWhatTheProducerEmitted) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ConsumerSide side(dir.Sub("c"));
  using Map = std::map<std::string, std::string>;
  ConsumerHandlers handlers(UnknownTypes::kSkip);
  std::vector<std::string> seen;  // consumer thread only, read after WaitApplied
  ASSERT_OK(handlers.Register<Map>("config.v1", [&](const Map& m, Transaction& txn) {
    seen.push_back("config " + m.at("interval"));
    return txn.Put(side.applied, "interval", m.at("interval"));
  }));
  ASSERT_OK(handlers.Register<int64_t>("reboot.v1", [&](int64_t sensor, const ReceivedEvent& e, Transaction& txn) {
    seen.push_back(fmt::format("reboot {} ({})", sensor, e.encoding));
    return txn.Put(side.applied, "reboot", std::to_string(sensor));
  }));
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       MqttConsumer::Start(*side.outbox, *side.inbox, ConsumerOptions(broker->port()), handlers));
  ASSERT_TRUE(consumer->WaitSubscribed(kWait)) << consumer->last_error();

  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(broker->port())));
  auto producer = MustOpen(dir.Sub("p"), {});
  ASSERT_OK_AND_ASSIGN(Stream * commands, producer->OpenStream("commands", {.strategy = Strategy::kKeepOrder}));
  {
    auto txn = producer->Begin();
    ASSERT_OK(txn.Emit(*commands, "config.v1", Map{{"interval", "250ms"}}));
    ASSERT_OK(txn.Emit(*commands, "firmware.v9", std::string("not handled here")));
    ASSERT_OK(txn.Emit(*commands, "reboot.v1", int64_t{42}));
    ASSERT_OK(txn.Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*producer, mqtt, {.interval = 20ms}));
  relay->Start();
  ASSERT_TRUE(consumer->WaitApplied(3, kWait)) << consumer->last_error();
  EXPECT_THAT(seen, ::testing::ElementsAre("config 250ms", "reboot 42 (text/plain)"));
  auto interval = side.outbox->Get(side.applied, "interval");
  ASSERT_TRUE(interval.has_value());
  EXPECT_EQ(*interval, "250ms");
  auto state = side.inbox->State(producer->id(), "commands");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->watermark, 3u);  // the skipped type included
}

TEST(MqttConsumer, PrefixResentAfterBrokerRestartIsDroppedAndKeepOrderStreamAppliedInOrder) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ConsumerSide side(dir.Sub("c"), {.keep_order_streams = {"fills"}});
  auto consumer_options = side.Observed(ConsumerOptions(broker->port(), "risk"));
  ASSERT_OK_AND_ASSIGN(auto consumer, MqttConsumer::Start(*side.outbox, *side.inbox, consumer_options, side.Handler()));
  ASSERT_TRUE(consumer->WaitSubscribed(kWait)) << consumer->last_error();

  // The producer: an outbox relayed to the broker, a keep-order stream and a
  // publish-on-commit one.
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(broker->port())));
  OutboxOptions po;
  po.publisher = mqtt;
  po.inline_dispatch = InlineDispatch::kDispatcherThread;
  po.retry = RetryPolicy{.initial_backoff = 20ms, .max_backoff = 200ms, .jitter = 0.1};
  auto producer = MustOpen(dir.Sub("p"), po);
  ASSERT_OK_AND_ASSIGN(Stream * fills, producer->OpenStream("fills", {.strategy = Strategy::kKeepOrder}));
  ASSERT_OK_AND_ASSIGN(Stream * ticks, producer->OpenStream("ticks", {.strategy = Strategy::kPublishOnCommit}));
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*producer, mqtt, {.interval = 20ms}));
  relay->Start();
  constexpr uint64_t kPhase = 60;
  uint64_t next = 1;
  auto commit_phase = [&] {
    for (uint64_t i = 0; i < kPhase; ++i, ++next) {
      auto txn = producer->Begin();
      std::string n = std::to_string(next);
      ASSERT_OK(txn.Enqueue(*fills, {.type = "fill", .key = "o" + n, .payload = n}));
      ASSERT_OK(txn.Enqueue(*ticks, {.type = "tick", .key = "t" + n, .payload = n}));
      ASSERT_OK(txn.Commit());
    }
  };
  commit_phase();
  ASSERT_TRUE(consumer->WaitApplied(2 * kPhase, kWait)) << consumer->last_error();

  // Consumer down, broker restarted (the session persists), and a prefix of
  // what was delivered sent again, as a relay does after a lost PUBACK; new
  // events meanwhile.
  consumer.reset();
  ASSERT_OK(broker->Restart());
  ASSERT_TRUE(mqtt->WaitConnected(kWait)) << mqtt->last_error();
  constexpr size_t kPrefix = 25;
  // The prefix as the relay would send it again: same ids (the producer's
  // database id, as the inbox recorded it), topics and payloads.
  auto states = side.inbox->State();
  ASSERT_EQ(states.size(), 2u);
  for (const char* stream : {"fills", "ticks"}) {
    EventSet resend = MakeEvents(stream, 1, kPrefix);
    for (size_t i = 0; i < resend.events.size(); ++i) {
      Event& e = resend.events[i];
      e.id.db = states[0].db;
      e.key = resend.text.emplace_back((std::string_view(stream) == "fills" ? "o" : "t") + std::to_string(i + 1));
    }
    std::vector<Status> results(resend.events.size());
    mqtt->PublishBatch(resend.events, Order::kKeep, results);
    for (const auto& r : results)
      ASSERT_OK(r);
  }
  commit_phase();

  ASSERT_OK_AND_ASSIGN(consumer, MqttConsumer::Start(*side.outbox, *side.inbox, consumer_options, side.Handler()));
  ASSERT_TRUE(consumer->WaitApplied(2 * kPhase, kWait)) << consumer->last_error();
  ASSERT_TRUE(side.WaitDuplicates(2 * kPrefix));
  relay.reset();
  consumer.reset();
  for (uint64_t s = 1; s < next; ++s) {
    EXPECT_EQ(side.Applied("fills", s), 1) << "fills " << s;
    EXPECT_EQ(side.Applied("ticks", s), 1) << "ticks " << s;
  }
  EXPECT_EQ(side.OrderOf("fills"), Iota(1, next - 1));
  std::set<uint64_t> ticks_seen;
  for (uint64_t s : side.OrderOf("ticks"))
    EXPECT_TRUE(ticks_seen.insert(s).second) << "ticks " << s << " twice";
  EXPECT_EQ(ticks_seen.size(), next - 1);
}

TEST(MqttConsumer, FailedHandlerIsNotAcknowledgedAndTheBrokerRedeliversIt) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ConsumerSide side(dir.Sub("c"), {.keep_order_streams = {"cmds"}});
  bool failed_once = false;
  side.fail = [&](const MqttMessage& m) -> Status {
    if (m.id.seq == 3 && !failed_once) {
      failed_once = true;
      return MakeError(ErrorCode::kUnavailable, "valve controller busy");
    }
    return {};
  };
  std::ostringstream log;
  auto options = side.Observed(ConsumerOptions(broker->port()));
  options.logger = MakeStreamLogger(log);
  ASSERT_OK_AND_ASSIGN(auto consumer, MqttConsumer::Start(*side.outbox, *side.inbox, options, side.Handler()));
  ASSERT_TRUE(consumer->WaitSubscribed(kWait)) << consumer->last_error();
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(broker->port())));
  auto events = MakeEvents("cmds", 1, 6);
  for (const Event& e : events)
    ASSERT_OK(mqtt->Publish(e));
  ASSERT_TRUE(consumer->WaitApplied(6, kWait)) << consumer->last_error();
  MqttConsumerStats st = consumer->stats();
  EXPECT_EQ(st.not_acknowledged, 1u);
  EXPECT_GE(st.connects, 2u);             // dropped, reconnected: the broker redelivered seq 3
  EXPECT_EQ(consumer->last_error(), "");  // cleared by the applied redelivery
  consumer.reset();
  // With the PUBACK written before the handler ran (libmosquitto outside
  // threaded mode), the broker would never send seq 3 again.
  for (uint64_t s = 1; s <= 6; ++s)
    EXPECT_EQ(side.Applied("cmds", s), 1) << s;
  EXPECT_EQ(side.OrderOf("cmds"), Iota(1, 6));
  EXPECT_EQ(side.handler_calls, 7);
  // The log names the event, its topic, the broker and the handler's error.
  const std::string logged = log.str();
  for (const std::string& part :
       {std::string("mqtt message not acknowledged"), events[2].id.ToString(), std::string("jm/cmds/k3"),
        std::string("valve controller busy"), "127.0.0.1:" + std::to_string(broker->port())}) {
    EXPECT_NE(logged.find(part), std::string::npos) << part << " not in: " << logged;
  }
}

TEST(MqttConsumer, StopPolicyLeavesTheMessageForTheNextConsumerOfTheSession) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ConsumerSide side(dir.Sub("c"));
  side.fail = [&](const MqttMessage& m) -> Status {
    if (m.id.seq == 2) return MakeError(ErrorCode::kRejected, "unknown command");
    return {};
  };
  auto o = ConsumerOptions(broker->port());
  o.on_failure = MqttFailurePolicy::kStop;
  ASSERT_OK_AND_ASSIGN(auto consumer, MqttConsumer::Start(*side.outbox, *side.inbox, o, side.Handler()));
  ASSERT_TRUE(consumer->WaitSubscribed(kWait)) << consumer->last_error();
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(broker->port())));
  auto events = MakeEvents("cmds", 1, 4);
  for (const Event& e : events)
    ASSERT_OK(mqtt->Publish(e));
  EXPECT_FALSE(consumer->WaitApplied(4, kWait));  // returns once stopped
  EXPECT_TRUE(consumer->stopped());
  EXPECT_EQ(consumer->stats().applied, 1u);
  std::string why = consumer->last_error();
  EXPECT_NE(why.find(events[1].id.ToString()), std::string::npos) << why;
  EXPECT_NE(why.find("jm/cmds/k2"), std::string::npos) << why;
  EXPECT_NE(why.find("unknown command"), std::string::npos) << why;
  EXPECT_NE(why.find(consumer->endpoint()), std::string::npos) << why;
  consumer.reset();

  side.fail = nullptr;
  ASSERT_OK_AND_ASSIGN(consumer, MqttConsumer::Start(*side.outbox, *side.inbox, o, side.Handler()));
  ASSERT_TRUE(consumer->WaitApplied(3, kWait)) << consumer->last_error();
  consumer.reset();
  for (uint64_t s = 1; s <= 4; ++s)
    EXPECT_EQ(side.Applied("cmds", s), 1) << s;
}

TEST(MqttConsumer, MessageWithoutEventIdIsAcknowledgedAndSkipped) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ConsumerSide side(dir.Sub("c"));
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       MqttConsumer::Start(*side.outbox, *side.inbox, ConsumerOptions(broker->port()), side.Handler()));
  ASSERT_TRUE(consumer->WaitSubscribed(kWait)) << consumer->last_error();
  auto po = PublisherOptions(broker->port());
  po.id_property = "some-other-id";
  ASSERT_OK_AND_ASSIGN(auto foreign, MqttPublisher::Create(po));
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(broker->port())));
  auto x1 = MakeEvents("x", 1, 1);
  ASSERT_OK(foreign->Publish(x1[0]));
  ASSERT_OK(mqtt->Publish(x1[0]));
  ASSERT_TRUE(consumer->WaitApplied(1, kWait)) << consumer->last_error();
  MqttConsumerStats st = consumer->stats();
  EXPECT_EQ(st.invalid, 1u);
  EXPECT_EQ(st.not_acknowledged, 0u);
  EXPECT_EQ(side.handler_calls, 1);
}

// ---------------------------------------------------------------------------
// A consumer process (mqtt_consumer_child.cc), SIGKILLed.

std::vector<std::string> ChildArgs(const TempDir& dir, uint16_t port) {
  return {JM_MQTT_CONSUMER_CHILD,
          "--db",
          dir.Sub("consumer"),
          "--port",
          std::to_string(port),
          "--client-id",
          "crash-consumer",
          "--filter",
          "jm/#",
          "--keep-order",
          "ko",
          "--log",
          dir.Sub("outcomes.log")};
}

// Reads lines until one starts with `prefix`; the line, or "" at EOF.
std::string ReadUntil(Child& child, std::string_view prefix) {
  for (;;) {
    std::string line = child.ReadLine();
    if (line.empty() || line.starts_with(prefix) || line.starts_with("error")) return line;
  }
}

// Runs the consumer to the end (all `total` events applied) and checks the
// database: each event's record "1", keep-order stream without violations,
// the inbox's watermark at each stream's last seq.
void FinishAndCheck(const TempDir& dir, uint16_t port, const std::map<std::string, uint64_t>& per_stream) {
  uint64_t total = 0;
  for (const auto& [s, n] : per_stream)
    total += n;
  auto args = ChildArgs(dir, port);
  args.insert(args.end(), {"--expect", std::to_string(total)});
  {
    Child child(args);
    std::string done = ReadUntil(child, "done");
    ASSERT_TRUE(done.starts_with("done")) << done;
    ASSERT_EQ(child.Wait(), 0);
  }
  AppliedCounts c = CheckAppliedOnce(dir.Sub("consumer"), per_stream);
  EXPECT_EQ(c.doubled + c.lost + c.misordered, 0u);
}

TEST(MqttConsumerCrash, KilledInsideTheHandlerBeforeCommitTheMessageIsRedelivered) {
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(broker->port())));
  auto events = MakeEvents("ko", 1, 6);
  auto args = ChildArgs(dir, broker->port());
  args.insert(args.end(), {"--block-at", events[2].id.ToString()});
  {
    Child child(args);
    ASSERT_EQ(ReadUntil(child, "subscribed"), "subscribed");
    // Seq 3 is the last message sent to this process: nothing unread is left
    // in its socket when it dies, so the kernel closes the connection with a
    // FIN (unread data would make it an RST, which can discard what the
    // broker has not read yet, a PUBACK included, and hide a PUBACK written
    // too early).
    for (size_t i = 0; i < 3; ++i)
      ASSERT_OK(mqtt->Publish(events[i]));
    // Blocked in the handler of seq 3, after libmosquitto queued its PUBACK.
    ASSERT_EQ(ReadUntil(child, "blocking"), "blocking " + events[2].id.ToString());
    ::kill(child.pid(), SIGKILL);
    ASSERT_EQ(child.Wait(), 128 + SIGKILL);
  }
  for (size_t i = 3; i < 6; ++i)
    ASSERT_OK(mqtt->Publish(events[i]));  // queued in the session
  {
    auto outbox = MustOpen(dir.Sub("consumer"), {.business_families = {{.name = "applied"}}});
    ASSERT_OK_AND_ASSIGN(BusinessFamily applied, outbox->FindBusinessFamily("applied"));
    ASSERT_OK_AND_ASSIGN(auto before, outbox->Get(applied, "e/ko/2"));
    EXPECT_EQ(before, std::optional<std::string>("1"));
    ASSERT_OK_AND_ASSIGN(auto third, outbox->Get(applied, "e/ko/3"));
    EXPECT_FALSE(third.has_value());
  }
  // The next consumer of the session gets seq 3 again (its PUBACK never left),
  // and everything after it.
  FinishAndCheck(dir, broker->port(), {{"ko", 6}});
}

TEST(MqttConsumerCrash, RandomKillsWhileAProducerPublishesApplyEveryEventOnceInOrder) {
  const int kills = EnvInt("JAIMINHO_CONSUMER_KILLS", 20);
  const uint64_t seed = HarnessSeed();
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("JAIMINHO_CONSUMER_SEED=" + std::to_string(seed));
  TempDir dir;
  auto broker = StartBroker(dir);
  ASSERT_TRUE(broker);
  const uint16_t port = broker->port();

  // The consumer's session must exist before anything is published.
  {
    Child first(ChildArgs(dir, port));
    ASSERT_EQ(ReadUntil(first, "subscribed"), "subscribed");
  }

  ASSERT_OK_AND_ASSIGN(auto mqtt, MqttPublisher::Create(PublisherOptions(port)));
  HarnessProducer producer(dir.Sub("producer"), mqtt);
  ASSERT_TRUE(producer.ok());
  auto commit_burst = [&] { producer.CommitBurst(rng); };

  int killed = 0;
  for (int cycle = 0; cycle < kills; ++cycle) {
    ASSERT_NO_FATAL_FAILURE(commit_burst());
    Child child(ChildArgs(dir, port));
    ASSERT_EQ(ReadUntil(child, "subscribed"), "subscribed") << "cycle " << cycle;
    // Where the kill lands: anywhere in receiving, handling, committing, acknowledging.
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 150'000)(rng)));
    ::kill(child.pid(), SIGKILL);
    if (child.Wait() == 128 + SIGKILL) ++killed;
  }
  ASSERT_NO_FATAL_FAILURE(commit_burst());
  ASSERT_NO_FATAL_FAILURE(FinishAndCheck(dir, port, producer.per_stream));
  producer.StopRelay();

  const auto& per_stream = producer.per_stream;
  OutcomeCounts outcomes = CountOutcomes(dir.Sub("outcomes.log"));
  EXPECT_EQ(killed, kills);
  std::cout << "consumer crash harness: kills=" << killed << " events=" << producer.events()
            << " (ko=" << per_stream.at("ko") << " a=" << per_stream.at("a") << " b=" << per_stream.at("b")
            << ") applied-once=" << producer.events() << " duplicates-dropped=" << outcomes.dups
            << " new-logged=" << outcomes.news << " seed=" << seed << "\n";
}

}  // namespace
}  // namespace jaiminho
