// KafkaConsumer against librdkafka's in-process mock cluster (consumer groups,
// committed offsets): each event's effect applied once (an event published
// twice, a resent prefix, a group restarted without committed offsets), a
// keep-order stream applied in order, a failed handler sought back and
// redelivered, the kStop policy, and (KafkaConsumerCrash) a consumer process
// SIGKILLed after its inbox commit but before its offset commit: the message
// is read again and the inbox drops it; and SIGKILLed at random points while a
// producer publishes. The mock cluster lives in the test process; the consumer
// process reaches it through its bootstrap servers.
//
//   JAIMINHO_CONSUMER_KILLS=100 ./kafka_consumer_test --gtest_filter='KafkaConsumerCrash.Random*'   # long mode
//   (default 20) JAIMINHO_CONSUMER_SEED=1234 ...                                                               # repeat
//   a run's choices
//
// The random pause before each kill is the point of the harness, not a stand-in
// for synchronization: it decides where in the consumer's work the kill lands.
#include "jaiminho/adapters/kafka_consumer.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "adapters/consumer_harness.h"
#include "jaiminho/adapters/kafka.h"
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
using testing::MustOpen;
using testing::OutcomeCounts;
using testing::TempDir;

// Generous bound for conditions that normally hold within a second.
constexpr auto kWait = std::chrono::milliseconds(60s);

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
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  void CreateTopic(const std::string& topic, int partitions) {
    ASSERT_EQ(rd_kafka_mock_topic_create(mc_, topic.c_str(), partitions, 1), RD_KAFKA_RESP_ERR_NO_ERROR) << topic;
  }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

// Topic "jm.<stream>", one partition per stream (kByStream).
std::shared_ptr<KafkaPublisher> MakePublisher(const MockCluster& mc, std::string id_header = "jaiminho-event-id") {
  auto p = KafkaPublisher::Create({.bootstrap_servers = mc.bootstraps(),
                                   .topic = "jm.{stream}",
                                   .partitioning = KafkaPartitioning::kByStream,
                                   .id_header = std::move(id_header)});
  EXPECT_TRUE(p.has_value()) << p.error().ToString();
  return p ? *p : nullptr;
}

KafkaConsumerOptions ConsumerOptions(const MockCluster& mc, std::vector<std::string> topics,
                                     std::string group = "risk") {
  return KafkaConsumerOptions{.bootstrap_servers = mc.bootstraps(),
                              .group_id = std::move(group),
                              .topics = std::move(topics),
                              .retry_min = 10ms,
                              .retry_max = 200ms,
                              .config = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}}};
}

using ConsumerSide = testing::ConsumerSide<KafkaMessage, KafkaConsumer, KafkaConsumerOptions>;
using testing::EventSet;
using testing::MakeEvents;

std::vector<uint64_t> Iota(uint64_t first, uint64_t last) {
  std::vector<uint64_t> v;
  for (uint64_t s = first; s <= last; ++s)
    v.push_back(s);
  return v;
}

TEST(KafkaConsumer, StartValidatesOptionsNamingThem) {
  TempDir dir;
  ConsumerSide side(dir.Sub("c"));
  struct Case {
    std::function<void(KafkaConsumerOptions&)> edit;
    std::string names;
  };
  const std::vector<Case> cases = {
      {[](auto& o) { o.bootstrap_servers.clear(); }, "bootstrap_servers"},
      {[](auto& o) { o.group_id.clear(); }, "group_id"},
      {[](auto& o) { o.topics.clear(); }, "topics"},
      {[](auto& o) {
         o.topics = {"a", ""};
       },
       "topics"},
      {[](auto& o) { o.id_header.clear(); }, "id_header"},
      {[](auto& o) { o.retry_max = 1ms; }, "retry_min"},
      {[](auto& o) { o.retry_min = 0ms; }, "retry_min"},
      {[](auto& o) {
         o.config = {{"enable.auto.commit", "true"}};
       },
       "enable.auto.commit"},
      {[](auto& o) {
         o.config = {{"enable.auto.offset.store", "true"}};
       },
       "enable.auto.offset.store"},
      {[](auto& o) {
         o.config = {{"no.such.property", "1"}};
       },
       "no.such.property"},
      {[](auto& o) {
         o.config = {{"session.timeout.ms", "x"}};
       },
       "session.timeout.ms"},
  };
  for (const auto& c : cases) {
    KafkaConsumerOptions o{.bootstrap_servers = "127.0.0.1:1", .group_id = "g", .topics = {"t"}};
    c.edit(o);
    auto r = KafkaConsumer::Start(*side.outbox, *side.inbox, o, side.Handler());
    ASSERT_FALSE(r.has_value()) << c.names;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.names), std::string::npos) << r.error().ToString();
  }
  auto r = KafkaConsumer::Start(*side.outbox, *side.inbox,
                                {.bootstrap_servers = "127.0.0.1:1", .group_id = "g", .topics = {"t"}}, nullptr);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

TEST(KafkaConsumer, EventPublishedTwiceIsAppliedOnceAndTheDuplicateCommitted) {
  MockCluster mc(3);
  ASSERT_NO_FATAL_FAILURE(mc.CreateTopic("jm.orders", 1));
  TempDir dir;
  ConsumerSide side(dir.Sub("c"));
  auto kafka = MakePublisher(mc);
  ASSERT_TRUE(kafka);
  constexpr uint64_t kN = 20;
  auto events = MakeEvents("orders", 1, kN);
  for (const Event& e : events) {
    ASSERT_OK(kafka->Publish(e));
    ASSERT_OK(kafka->Publish(e));  // the same event again: what a relay retry does
  }
  ASSERT_OK_AND_ASSIGN(
      auto consumer, KafkaConsumer::Start(*side.outbox, *side.inbox, side.Observed(ConsumerOptions(mc, {"jm.orders"})),
                                          side.Handler()));
  ASSERT_TRUE(consumer->WaitSettled(2 * kN, kWait)) << consumer->last_error();
  KafkaConsumerStats st = consumer->stats();
  EXPECT_EQ(st.applied, kN);
  EXPECT_EQ(st.duplicates, kN);
  EXPECT_EQ(st.not_committed, 0u);
  EXPECT_EQ(st.offset_commit_failures, 0u);
  consumer.reset();
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

  // Every offset was committed: the group's next consumer reads nothing old.
  ASSERT_OK(kafka->Publish(MakeEvents("orders", kN + 1, kN + 1)[0]));
  ASSERT_OK_AND_ASSIGN(
      consumer, KafkaConsumer::Start(*side.outbox, *side.inbox, side.Observed(ConsumerOptions(mc, {"jm.orders"})),
                                     side.Handler()));
  ASSERT_TRUE(consumer->WaitApplied(1, kWait)) << consumer->last_error();
  EXPECT_EQ(consumer->stats().duplicates, 0u);
}

// Typed handlers (ConsumerHandlers) on what a relay published with Emit: each
// value decoded with the producer's codec, found by the "jaiminho-type"
// header; the record key reaches the handler; a type without a handler
// (UnknownTypes::kRefuse, the default) is not committed and holds the
// keep-order partition until a consumer that handles it takes over.
TEST(KafkaConsumer, TypedHandlersDecodeWhatTheProducerEmittedAndAnUnknownTypeWaits) {
  MockCluster mc(1);
  ASSERT_NO_FATAL_FAILURE(mc.CreateTopic("jm.fills", 1));
  TempDir dir;
  ConsumerSide side(dir.Sub("c"), {.keep_order_streams = {"fills"}});
  using Map = std::map<std::string, std::string>;
  std::vector<std::string> seen;  // consumer thread only, read after WaitApplied
  auto fill = [&](const Map& m, const ReceivedEvent& e, Transaction& txn) {
    seen.push_back(fmt::format("{} {} {}", e.key, m.at("side"), m.at("qty")));
    return txn.Put(side.applied, e.key, m.at("qty"));
  };
  ConsumerHandlers first;
  ASSERT_OK(first.Register<Map>("fill.v1", fill));

  auto kafka = MakePublisher(mc);
  ASSERT_TRUE(kafka);
  auto producer = MustOpen(dir.Sub("p"), {});
  ASSERT_OK_AND_ASSIGN(Stream * fills, producer->OpenStream("fills", {.strategy = Strategy::kKeepOrder}));
  {
    auto txn = producer->Begin();
    ASSERT_OK(txn.Emit(*fills, "fill.v1", Map{{"side", "buy"}, {"qty", "10"}}, {.key = "ACME"}));
    ASSERT_OK(txn.Emit(*fills, "fill.v2", Map{{"side", "sell"}, {"qty", "4"}, {"venue", "X"}}, {.key = "ACME"}));
    ASSERT_OK(txn.Emit(*fills, "fill.v1", Map{{"side", "sell"}, {"qty", "3"}}, {.key = "BOLT"}));
    ASSERT_OK(txn.Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*producer, kafka, {.interval = 20ms}));
  relay->Start();
  {
    // kStop, to see the refusal at once (kRetry would refuse it again and again).
    auto options = ConsumerOptions(mc, {"jm.fills"}, "risk");
    options.on_failure = KafkaFailurePolicy::kStop;
    ASSERT_OK_AND_ASSIGN(auto consumer, KafkaConsumer::Start(*side.outbox, *side.inbox, options, first));
    // Seq 2 has no handler: not committed, the consumer stops there, naming its type.
    ASSERT_FALSE(consumer->WaitApplied(2, kWait));
    EXPECT_TRUE(consumer->stopped());
    EXPECT_THAT(consumer->last_error(), ::testing::HasSubstr("no handler for type 'fill.v2'"));
    EXPECT_EQ(consumer->stats().applied, 1u);
    EXPECT_EQ(consumer->stats().not_committed, 1u);
  }
  // A deployment that handles fill.v2 resumes at it, in order.
  ConsumerHandlers second;
  ASSERT_OK(second.Register<Map>("fill.v1", fill));
  ASSERT_OK(second.Register<Map>("fill.v2", fill));
  ASSERT_OK_AND_ASSIGN(auto consumer, KafkaConsumer::Start(*side.outbox, *side.inbox,
                                                           ConsumerOptions(mc, {"jm.fills"}, "risk"), second));
  ASSERT_TRUE(consumer->WaitApplied(2, kWait)) << consumer->last_error();
  EXPECT_THAT(seen, ::testing::ElementsAre("ACME buy 10", "ACME sell 4", "BOLT sell 3"));
  auto bolt = side.outbox->Get(side.applied, "BOLT");
  ASSERT_TRUE(bolt.has_value());
  EXPECT_EQ(*bolt, "3");
}

TEST(KafkaConsumer, ResentPrefixAndAGroupWithoutCommittedOffsetsApplyEachEventOnceKeepOrderInOrder) {
  MockCluster mc(3);
  ASSERT_NO_FATAL_FAILURE(mc.CreateTopic("jm.fills", 1));
  ASSERT_NO_FATAL_FAILURE(mc.CreateTopic("jm.ticks", 1));
  TempDir dir;
  ConsumerSide side(dir.Sub("c"), {.keep_order_streams = {"fills"}});
  const std::vector<std::string> topics = {"jm.fills", "jm.ticks"};

  // The producer: an outbox relayed to Kafka, a keep-order stream and a
  // publish-on-commit one.
  auto kafka = MakePublisher(mc);
  ASSERT_TRUE(kafka);
  OutboxOptions po;
  po.publisher = kafka;
  po.inline_dispatch = InlineDispatch::kDispatcherThread;
  po.retry = RetryPolicy{.initial_backoff = 20ms, .max_backoff = 200ms, .jitter = 0.1};
  auto producer = MustOpen(dir.Sub("p"), po);
  ASSERT_OK_AND_ASSIGN(Stream * fills, producer->OpenStream("fills", {.strategy = Strategy::kKeepOrder}));
  ASSERT_OK_AND_ASSIGN(Stream * ticks, producer->OpenStream("ticks", {.strategy = Strategy::kPublishOnCommit}));
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*producer, kafka, {.interval = 20ms}));
  relay->Start();
  constexpr uint64_t kPhase = 40;
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
  ASSERT_NO_FATAL_FAILURE(commit_phase());
  auto options = side.Observed(ConsumerOptions(mc, topics, "risk"));
  ASSERT_OK_AND_ASSIGN(auto consumer, KafkaConsumer::Start(*side.outbox, *side.inbox, options, side.Handler()));
  ASSERT_TRUE(consumer->WaitApplied(2 * kPhase, kWait)) << consumer->last_error();
  consumer.reset();

  // A prefix of what was delivered sent again, as a relay does after a lost
  // delivery report: same ids (the producer's database id, as the inbox
  // recorded it), keys and payloads; then new events.
  constexpr size_t kPrefix = 15;
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
    kafka->PublishBatch(resend.events, Order::kKeep, results);
    for (const auto& r : results)
      ASSERT_OK(r);
  }
  ASSERT_NO_FATAL_FAILURE(commit_phase());

  // The same group: the resent prefix (dropped) and the new events.
  ASSERT_OK_AND_ASSIGN(consumer, KafkaConsumer::Start(*side.outbox, *side.inbox, options, side.Handler()));
  ASSERT_TRUE(consumer->WaitApplied(2 * kPhase, kWait)) << consumer->last_error();
  ASSERT_TRUE(consumer->WaitSettled(2 * kPhase + 2 * kPrefix, kWait)) << consumer->last_error();
  EXPECT_EQ(consumer->stats().duplicates, 2 * kPrefix);
  consumer.reset();
  relay.reset();

  // A group without committed offsets (a consumer restarted under a new
  // group id, or offsets expired): everything read again from the start.
  const uint64_t total = 2 * (2 * kPhase + kPrefix);
  ASSERT_OK_AND_ASSIGN(consumer,
                       KafkaConsumer::Start(*side.outbox, *side.inbox,
                                            side.Observed(ConsumerOptions(mc, topics, "risk-replay")), side.Handler()));
  ASSERT_TRUE(consumer->WaitSettled(total, kWait)) << consumer->last_error();
  EXPECT_EQ(consumer->stats().applied, 0u);
  EXPECT_EQ(consumer->stats().duplicates, total);
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

TEST(KafkaConsumer, FailedHandlerIsNotCommittedAndTheMessageIsReadAgain) {
  MockCluster mc(3);
  ASSERT_NO_FATAL_FAILURE(mc.CreateTopic("jm.cmds", 1));
  TempDir dir;
  ConsumerSide side(dir.Sub("c"), {.keep_order_streams = {"cmds"}});
  bool failed_once = false;
  side.fail = [&](const KafkaMessage& m) -> Status {
    if (m.id.seq == 3 && !failed_once) {
      failed_once = true;
      return MakeError(ErrorCode::kUnavailable, "valve controller busy");
    }
    return {};
  };
  std::ostringstream log;
  auto options = side.Observed(ConsumerOptions(mc, {"jm.cmds"}));
  options.logger = MakeStreamLogger(log);
  auto kafka = MakePublisher(mc);
  ASSERT_TRUE(kafka);
  auto events = MakeEvents("cmds", 1, 6);
  for (const Event& e : events)
    ASSERT_OK(kafka->Publish(e));
  ASSERT_OK_AND_ASSIGN(auto consumer, KafkaConsumer::Start(*side.outbox, *side.inbox, options, side.Handler()));
  ASSERT_TRUE(consumer->WaitApplied(6, kWait)) << consumer->last_error();
  KafkaConsumerStats st = consumer->stats();
  EXPECT_EQ(st.not_committed, 1u);
  EXPECT_EQ(st.duplicates, 0u);
  EXPECT_EQ(consumer->last_error(), "");  // cleared by the applied redelivery
  consumer.reset();
  for (uint64_t s = 1; s <= 6; ++s)
    EXPECT_EQ(side.Applied("cmds", s), 1) << s;
  EXPECT_EQ(side.OrderOf("cmds"), Iota(1, 6));
  EXPECT_EQ(side.handler_calls, 7);
  // The log names the event, its topic, partition and offset, and the handler's error.
  const std::string logged = log.str();
  for (const std::string& part :
       {std::string("kafka message not committed"), events[2].id.ToString(), std::string("topic 'jm.cmds'"),
        std::string("partition 0 offset 2"), std::string("valve controller busy"), std::string("group 'risk'")}) {
    EXPECT_NE(logged.find(part), std::string::npos) << part << " not in: " << logged;
  }
}

TEST(KafkaConsumer, StopPolicyLeavesTheMessageForTheGroupsNextConsumer) {
  MockCluster mc(3);
  ASSERT_NO_FATAL_FAILURE(mc.CreateTopic("jm.cmds", 1));
  TempDir dir;
  ConsumerSide side(dir.Sub("c"));
  side.fail = [&](const KafkaMessage& m) -> Status {
    if (m.id.seq == 2) return MakeError(ErrorCode::kRejected, "unknown command");
    return {};
  };
  auto o = ConsumerOptions(mc, {"jm.cmds"});
  o.on_failure = KafkaFailurePolicy::kStop;
  auto kafka = MakePublisher(mc);
  ASSERT_TRUE(kafka);
  auto events = MakeEvents("cmds", 1, 4);
  for (const Event& e : events)
    ASSERT_OK(kafka->Publish(e));
  ASSERT_OK_AND_ASSIGN(auto consumer, KafkaConsumer::Start(*side.outbox, *side.inbox, o, side.Handler()));
  EXPECT_FALSE(consumer->WaitApplied(4, kWait));  // returns once stopped
  EXPECT_TRUE(consumer->stopped());
  EXPECT_EQ(consumer->stats().applied, 1u);
  std::string why = consumer->last_error();
  for (const std::string& part : {events[1].id.ToString(), std::string("topic 'jm.cmds' partition 0 offset 1"),
                                  std::string("unknown command"), mc.bootstraps()}) {
    EXPECT_NE(why.find(part), std::string::npos) << part << " not in: " << why;
  }
  consumer.reset();

  side.fail = nullptr;
  ASSERT_OK_AND_ASSIGN(consumer, KafkaConsumer::Start(*side.outbox, *side.inbox, o, side.Handler()));
  ASSERT_TRUE(consumer->WaitApplied(3, kWait)) << consumer->last_error();
  EXPECT_EQ(consumer->stats().duplicates, 0u);  // seq 1's offset was committed
  consumer.reset();
  for (uint64_t s = 1; s <= 4; ++s)
    EXPECT_EQ(side.Applied("cmds", s), 1) << s;
}

TEST(KafkaConsumer, MessageWithoutEventIdIsSkippedAndCommitted) {
  MockCluster mc(3);
  ASSERT_NO_FATAL_FAILURE(mc.CreateTopic("jm.x", 1));
  TempDir dir;
  ConsumerSide side(dir.Sub("c"));
  auto foreign = MakePublisher(mc, "some-other-id");
  auto kafka = MakePublisher(mc);
  ASSERT_TRUE(foreign && kafka);
  auto x1 = MakeEvents("x", 1, 1);
  ASSERT_OK(foreign->Publish(x1[0]));
  ASSERT_OK(kafka->Publish(x1[0]));
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       KafkaConsumer::Start(*side.outbox, *side.inbox, ConsumerOptions(mc, {"jm.x"}), side.Handler()));
  ASSERT_TRUE(consumer->WaitApplied(1, kWait)) << consumer->last_error();
  KafkaConsumerStats st = consumer->stats();
  EXPECT_EQ(st.invalid, 1u);
  EXPECT_EQ(st.not_committed, 0u);
  EXPECT_EQ(side.handler_calls, 1);
}

// ---------------------------------------------------------------------------
// A consumer process (kafka_consumer_child.cc), SIGKILLed.

std::vector<std::string> ChildArgs(const TempDir& dir, const MockCluster& mc) {
  return {JM_KAFKA_CONSUMER_CHILD,
          "--db",
          dir.Sub("consumer"),
          "--bootstrap",
          mc.bootstraps(),
          "--group",
          "crash",
          "--topic",
          "jm.ko",
          "--keep-order",
          "ko",
          "--log",
          dir.Sub("outcomes.log")};
}

// The random-kill harness's consumer: every topic of the producer's three
// streams, and a short session timeout: the mock coordinator gives a killed
// member's partitions to the next consumer after about that long. Not below
// 3 s: the coordinator (librdkafka 2.0) delays a group's first join by 3 s,
// and expires a member waiting in it once its session timeout passes.
std::vector<std::string> RandomKillChildArgs(const TempDir& dir, const MockCluster& mc) {
  std::vector<std::string> args = ChildArgs(dir, mc);
  args.insert(args.end(), {"--topic", "jm.a", "--topic", "jm.b", "--session-timeout-ms", "4000"});
  return args;
}

// Reads lines until `line` exactly (true), or an error line, EOF or kWait
// without a line (false).
bool ReadUntilLine(Child& child, const std::string& line) {
  for (;;) {
    std::optional<std::string> got = child.ReadLineFor(kWait);
    if (got == line) return true;
    if (!got || got->empty() || got->starts_with("error")) {
      ADD_FAILURE() << "waiting for '" << line << "', got '" << got.value_or("(nothing within the wait)") << "'";
      return false;
    }
  }
}

// Reads lines until one starts with `prefix`; the line, or "" at EOF.
std::string ReadUntil(Child& child, std::string_view prefix) {
  for (;;) {
    std::string line = child.ReadLine();
    if (line.empty() || line.starts_with(prefix) || line.starts_with("error")) return line;
  }
}

TEST(KafkaConsumerCrash, KilledAfterTheInboxCommitBeforeTheOffsetCommitReadsTheMessageAgainAndDropsIt) {
  MockCluster mc(3);
  ASSERT_NO_FATAL_FAILURE(mc.CreateTopic("jm.ko", 1));
  TempDir dir;
  auto kafka = MakePublisher(mc);
  ASSERT_TRUE(kafka);
  auto events = MakeEvents("ko", 1, 6);
  for (size_t i = 0; i < 3; ++i)
    ASSERT_OK(kafka->Publish(events[i]));
  const std::string third = events[2].id.ToString();
  {
    auto args = ChildArgs(dir, mc);
    args.insert(args.end(), {"--block-after", third});
    Child child(args);
    // Blocked in on_outcome of seq 3: its inbox commit is durable, its offset
    // (3) not committed; seqs 1 and 2 committed theirs.
    ASSERT_EQ(ReadUntil(child, "blocking"), "blocking " + third);
    ::kill(child.pid(), SIGKILL);
    ASSERT_EQ(child.Wait(), 128 + SIGKILL);
  }
  for (size_t i = 3; i < 6; ++i)
    ASSERT_OK(kafka->Publish(events[i]));
  {
    auto outbox = MustOpen(dir.Sub("consumer"), {.business_families = {{.name = "applied"}}});
    ASSERT_OK_AND_ASSIGN(BusinessFamily applied, outbox->FindBusinessFamily("applied"));
    ASSERT_OK_AND_ASSIGN(auto v, outbox->Get(applied, "e/ko/3"));
    EXPECT_EQ(v, std::optional<std::string>("1"));  // applied before the kill
  }
  // The group's next consumer starts at seq 3 (the last committed offset):
  // the inbox drops it, then 4..6 are applied.
  {
    auto args = ChildArgs(dir, mc);
    args.insert(args.end(), {"--expect", "6"});
    Child child(args);
    std::string done = ReadUntil(child, "done");
    EXPECT_EQ(done, "done applied=3 duplicates=1");
    ASSERT_EQ(child.Wait(), 0);
  }
  auto outbox = MustOpen(dir.Sub("consumer"), {.business_families = {{.name = "applied"}}});
  ASSERT_OK_AND_ASSIGN(BusinessFamily applied, outbox->FindBusinessFamily("applied"));
  ASSERT_OK_AND_ASSIGN(auto inbox, Inbox::Open(*outbox));
  for (uint64_t s = 1; s <= 6; ++s) {
    ASSERT_OK_AND_ASSIGN(auto v, outbox->Get(applied, "e/ko/" + std::to_string(s)));
    EXPECT_EQ(v, std::optional<std::string>("1")) << s;
    ASSERT_OK_AND_ASSIGN(auto violation, outbox->Get(applied, "violation/ko/" + std::to_string(s)));
    EXPECT_FALSE(violation.has_value()) << s << " applied after " << *violation;
  }
  auto state = inbox->State(events[0].id.db, "ko");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->watermark, 6u);
  EXPECT_EQ(state->received, 6u);
  // The outcome log: seq 3 applied by the first process, dropped by the second.
  std::ifstream in(dir.Sub("outcomes.log"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  std::vector<std::string> want = {"new " + events[0].id.ToString(),
                                   "new " + events[1].id.ToString(),
                                   "new " + third,
                                   "dup " + third,
                                   "new " + events[3].id.ToString(),
                                   "new " + events[4].id.ToString(),
                                   "new " + events[5].id.ToString()};
  EXPECT_EQ(lines, want);
}

TEST(KafkaConsumerCrash, RandomKillsWhileAProducerPublishesApplyEveryEventOnceInOrder) {
  const int kills = EnvInt("JAIMINHO_CONSUMER_KILLS", 20);
  const uint64_t seed = HarnessSeed();
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("JAIMINHO_CONSUMER_SEED=" + std::to_string(seed));
  MockCluster mc(3);
  for (const char* topic : {"jm.ko", "jm.a", "jm.b"})
    ASSERT_NO_FATAL_FAILURE(mc.CreateTopic(topic, 1));
  TempDir dir;

  auto kafka = MakePublisher(mc);
  ASSERT_TRUE(kafka);
  HarnessProducer producer(dir.Sub("producer"), kafka);
  ASSERT_TRUE(producer.ok());
  auto commit_burst = [&] { producer.CommitBurst(rng); };

  int killed = 0;
  for (int cycle = 0; cycle < kills; ++cycle) {
    ASSERT_NO_FATAL_FAILURE(commit_burst());
    auto args = RandomKillChildArgs(dir, mc);
    args.insert(args.end(), {"--print-settled", "1"});
    Child child(args);
    // Where the kill lands: after the k-th message this process settled (each
    // cycle adds 45 events, so at least that many are there to read), plus a
    // random pause: anywhere in handling, the inbox commit, the offset
    // commit, the next fetch.
    const int k = std::uniform_int_distribution<int>(1, 30)(rng);
    ASSERT_TRUE(ReadUntilLine(child, "settled " + std::to_string(k))) << "cycle " << cycle;
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 20'000)(rng)));
    ::kill(child.pid(), SIGKILL);
    if (child.Wait() == 128 + SIGKILL) ++killed;
  }
  ASSERT_NO_FATAL_FAILURE(commit_burst());
  const uint64_t events = producer.events();
  {
    auto args = RandomKillChildArgs(dir, mc);
    args.insert(args.end(), {"--expect", std::to_string(events)});
    Child child(args);
    std::string done = ReadUntil(child, "done");
    ASSERT_TRUE(done.starts_with("done")) << done;
    ASSERT_EQ(child.Wait(), 0);
  }
  producer.StopRelay();

  const auto& per_stream = producer.per_stream;
  AppliedCounts c = CheckAppliedOnce(dir.Sub("consumer"), per_stream);
  EXPECT_EQ(c.doubled, 0u);
  EXPECT_EQ(c.lost, 0u);
  EXPECT_EQ(c.misordered, 0u);
  // The outcome log (one line per settled message, every process): "new" once
  // per event, the rest duplicates dropped.
  OutcomeCounts outcomes = CountOutcomes(dir.Sub("outcomes.log"));
  EXPECT_EQ(killed, kills);
  std::cout << "kafka consumer crash harness: kills=" << killed << " events=" << events
            << " (ko=" << per_stream.at("ko") << " a=" << per_stream.at("a") << " b=" << per_stream.at("b")
            << ") new-logged=" << outcomes.news << " duplicates-dropped=" << outcomes.dups << " doubled=" << c.doubled
            << " lost=" << c.lost << " misordered=" << c.misordered << " seed=" << seed << "\n";
}

}  // namespace
}  // namespace jaiminho
