// A consumer process for KafkaConsumerCrash (kafka_consumer_test.cc): a
// KafkaConsumer over an Outbox + Inbox whose handler writes one business record
// per event, which the test SIGKILLs and restarts. The Kafka cluster (the
// librdkafka mock) lives in the test process; this one reaches it through
// its bootstrap servers.
//
//   kafka_consumer_child --db DIR --bootstrap HOST:PORT,... --group G --topic T...
//                        [--keep-order STREAM]... [--log FILE] [--block-after RAW_ID] [--expect N]
//                        [--session-timeout-ms MS] [--print-settled 1]
//
// Business records and the outcome log (--log): tests/adapters/consumer_child.h.
// Stdout: "assigned" once the group assigned partitions; "blocking <id>" when
// the event --block-after was committed by the inbox (on_outcome, before its
// offset commit: the process then blocks until killed); with --expect, "done
// applied=A duplicates=D" once the inbox holds N events, then exit 0.
// --print-settled 1: also "settled <n>" on stdout after the n-th message this
// process settled (after its inbox commit or drop, before its offset commit).
// Without --expect the process runs until its stdin closes.
// --session-timeout-ms: the group session timeout (default 6000; the heartbeat
// interval is a tenth of it): how long a killed member holds its partitions.
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "adapters/consumer_child.h"
#include "jaiminho/adapters/kafka_consumer.h"

namespace {
using namespace std::chrono_literals;
using jaiminho::testing::ParseU64;
}  // namespace

int main(int argc, char** argv) {
  jaiminho::testing::ConsumerChild child("kafka_consumer_child");
  std::string db, bootstrap, group, log_path, block_after;
  std::vector<std::string> topics, keep_order;
  uint64_t expect = 0;
  uint64_t session_timeout_ms = 6000;
  bool print_settled = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--db") {
      db = value;
    } else if (flag == "--bootstrap") {
      bootstrap = value;
    } else if (flag == "--group") {
      group = value;
    } else if (flag == "--topic") {
      topics.push_back(value);
    } else if (flag == "--keep-order") {
      keep_order.push_back(value);
    } else if (flag == "--log") {
      log_path = value;
    } else if (flag == "--block-after") {
      block_after = value;
    } else if (flag == "--expect") {
      expect = ParseU64(value);
    } else if (flag == "--session-timeout-ms") {
      session_timeout_ms = ParseU64(value);
    } else if (flag == "--print-settled") {
      print_settled = value == "1";
    } else {
      return child.Fail("unknown flag " + std::string(flag));
    }
  }
  if (!child.Open(db, keep_order, log_path)) return 2;
  auto handler = [&](const jaiminho::KafkaMessage& m, jaiminho::Transaction& txn) -> jaiminho::Status {
    return child.Apply(m.id, txn);
  };
  jaiminho::KafkaConsumerOptions o{.bootstrap_servers = bootstrap,
                                   .group_id = group,
                                   .topics = topics,
                                   .retry_min = 10ms,
                                   .retry_max = 200ms,
                                   // A killed member holds its partitions until the
                                   // coordinator expires it: keep that short.
                                   .config = {{"session.timeout.ms", std::to_string(session_timeout_ms)},
                                              {"heartbeat.interval.ms", std::to_string(session_timeout_ms / 10)}}};
  uint64_t settled = 0;  // on the consumer's thread only
  o.on_outcome = [&](const jaiminho::KafkaMessage& m, jaiminho::ReceiveOutcome outcome) {
    child.LogOutcome(m.raw_id, outcome);
    if (print_settled) {
      // One write per line: main's lines never split it.
      std::cout << ("settled " + std::to_string(++settled) + "\n") << std::flush;
    }
    if (!block_after.empty() && m.raw_id == block_after && outcome == jaiminho::ReceiveOutcome::kNew) {
      // After the inbox commit, before the offset commit.
      std::cout << "blocking " << m.raw_id << std::endl;
      for (;;)
        ::pause();  // until SIGKILLed
    }
  };
  auto consumer = jaiminho::KafkaConsumer::Start(child.outbox(), child.inbox(), o, handler);
  if (!consumer) return child.Fail(consumer.error().ToString());
  if (!(*consumer)->WaitAssigned(60s)) return child.Fail("no partition assigned: " + (*consumer)->last_error());
  std::cout << "assigned\n" << std::flush;
  return child.Finish(*consumer, expect);
}
