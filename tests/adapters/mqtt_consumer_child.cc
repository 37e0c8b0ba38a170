// A consumer process for MqttConsumerCrash (mqtt_consumer_test.cc): an
// MqttConsumer over an Outbox + Inbox whose handler writes one business record
// per event, which the test SIGKILLs and restarts.
//
//   mqtt_consumer_child --db DIR --port P --client-id ID --filter F [--keep-order STREAM]...
//                       [--log FILE] [--block-at RAW_ID] [--expect N]
//
// Business records and the outcome log (--log): tests/adapters/consumer_child.h.
// Stdout: "subscribed" once subscribed; "blocking <id>" when the handler
// reached --block-at (it then blocks until killed); with --expect, "done
// applied=A duplicates=D" once the inbox holds N events, then exit 0.
// Without --expect the process runs until its stdin closes.
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "adapters/consumer_child.h"
#include "jaiminho/adapters/mqtt_consumer.h"

namespace {
using namespace std::chrono_literals;
using jaiminho::testing::ParseU64;
}  // namespace

int main(int argc, char** argv) {
  jaiminho::testing::ConsumerChild child("mqtt_consumer_child");
  std::string db, client_id, filter, log_path, block_at;
  uint16_t port = 0;
  uint64_t expect = 0;
  std::vector<std::string> keep_order;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--db") {
      db = value;
    } else if (flag == "--port") {
      port = static_cast<uint16_t>(ParseU64(value));
    } else if (flag == "--client-id") {
      client_id = value;
    } else if (flag == "--filter") {
      filter = value;
    } else if (flag == "--keep-order") {
      keep_order.push_back(value);
    } else if (flag == "--log") {
      log_path = value;
    } else if (flag == "--block-at") {
      block_at = value;
    } else if (flag == "--expect") {
      expect = ParseU64(value);
    } else {
      return child.Fail("unknown flag " + std::string(flag));
    }
  }
  if (!child.Open(db, keep_order, log_path)) return 2;
  auto handler = [&](const jaiminho::MqttMessage& m, jaiminho::Transaction& txn) -> jaiminho::Status {
    if (!block_at.empty() && m.raw_id == block_at) {
      std::cout << "blocking " << m.raw_id << std::endl;
      for (;;)
        ::pause();  // until SIGKILLed
    }
    return child.Apply(m.id, txn);
  };
  jaiminho::MqttConsumerOptions o{.host = "127.0.0.1",
                                  .port = port,
                                  .client_id = client_id,
                                  .filter = filter,
                                  .reconnect_min = 10ms,
                                  .reconnect_max = 200ms};
  o.on_outcome = [&](const jaiminho::MqttMessage& m, jaiminho::ReceiveOutcome outcome) {
    child.LogOutcome(m.raw_id, outcome);
  };
  auto consumer = jaiminho::MqttConsumer::Start(child.outbox(), child.inbox(), o, handler);
  if (!consumer) return child.Fail(consumer.error().ToString());
  if (!(*consumer)->WaitSubscribed(30s)) return child.Fail("not subscribed: " + (*consumer)->last_error());
  std::cout << "subscribed" << std::endl;
  return child.Finish(*consumer, expect);
}
