// A user's program linked against the installed package: commits business
// data and an event together, relays it to the built-in JSON-lines sink, and,
// when the adapters are installed, drives each one far enough to prove it is
// linked and working. Exits 0 when everything behaved.
//
//   jaiminho-consumer DIR
#include <chrono>
#include <iostream>
#include <sstream>

#include "jaiminho/jaiminho.h"
#if CONSUMER_WITH_MQTT
#include "jaiminho/adapters/mqtt.h"
#include "jaiminho/adapters/mqtt_consumer.h"
#endif
#if CONSUMER_WITH_KAFKA
#include "jaiminho/adapters/kafka.h"
#endif
#if CONSUMER_WITH_METRICS_HTTP
#include "jaiminho/adapters/metrics_server.h"
#endif

namespace {

int Fail(const std::string& what) {
  std::cerr << "jaiminho-consumer: " << what << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage: jaiminho-consumer DIR");
  auto outbox = jaiminho::Outbox::Open({.path = std::string(argv[1]) + "/consumer.db"});
  if (!outbox) return Fail(outbox.error().ToString());
  auto stream = (*outbox)->OpenStream("orders", {.strategy = jaiminho::Strategy::kKeepOrder});
  if (!stream) return Fail(stream.error().ToString());
  auto family = (*outbox)->FindBusinessFamily("default");
  if (!family) return Fail(family.error().ToString());

  auto txn = (*outbox)->Begin();
  if (auto s = txn.Put(*family, "order/1", "placed"); !s) return Fail(s.error().ToString());
  if (auto s = txn.Enqueue(**stream, {.type = "order.placed", .key = "order/1", .payload = "{}"}); !s) {
    return Fail(s.error().ToString());
  }
  auto receipt = txn.Commit();
  if (!receipt) return Fail(receipt.error().ToString());

  std::ostringstream out;
  {
    auto relay = jaiminho::Relay::Make(**outbox, std::make_shared<jaiminho::JsonLinesSink>(out));
    if (!relay) return Fail(relay.error().ToString());
    auto stats = (*relay)->RunOnce();
    if (!stats) return Fail(stats.error().ToString());
    if (stats->published != 1) return Fail("expected 1 event relayed, got " + std::to_string(stats->published));
  }
  if (out.str().find(receipt->events[0].ToString()) == std::string::npos) return Fail("sink output: " + out.str());
  std::cout << "jaiminho " << JAIMINHO_VERSION_STRING << ": committed and relayed " << receipt->events[0].ToString()
            << "\n";

#if CONSUMER_WITH_MQTT
  {
    // Nothing listens on port 1: the publisher must say so, naming the broker.
    auto mqtt = jaiminho::MqttPublisher::Create({.host = "127.0.0.1", .port = 1});
    if (!mqtt) return Fail(mqtt.error().ToString());
    jaiminho::Event e;
    e.id = receipt->events[0];
    e.type = "order.placed";
    auto st = (*mqtt)->Publish(e);
    if (st || st.error().code() != jaiminho::ErrorCode::kUnavailable ||
        st.error().message().find("127.0.0.1:1") == std::string::npos) {
      return Fail("mqtt: expected unavailable naming 127.0.0.1:1");
    }
    std::cout << "mqtt adapter linked: " << st.error().message() << "\n";
    // The consumer side: options are checked before anything connects.
    auto inbox = jaiminho::Inbox::Open(**outbox);
    if (!inbox) return Fail(inbox.error().ToString());
    auto consumer = jaiminho::MqttConsumer::Start(
        **outbox, **inbox, {.host = "127.0.0.1", .filter = "orders/#"},
        [](const jaiminho::MqttMessage&, jaiminho::Transaction&) -> jaiminho::Status { return {}; });
    if (consumer || consumer.error().message().find("client_id") == std::string::npos) {
      return Fail("mqtt consumer: expected invalid argument naming client_id");
    }
    std::cout << "mqtt consumer linked: " << consumer.error().message() << "\n";
  }
#endif
#if CONSUMER_WITH_KAFKA
  {
    // librdkafka's in-process mock cluster: a real delivery report.
    auto kafka = jaiminho::KafkaPublisher::Create(
        {.delivery_timeout = std::chrono::seconds(20), .config = {{"test.mock.num.brokers", "1"}, {"log_level", "3"}}});
    if (!kafka) return Fail(kafka.error().ToString());
    jaiminho::Event e;
    e.id = receipt->events[0];
    e.type = "order.placed";
    e.key = "order/1";
    e.payload = "{}";
    if (auto st = (*kafka)->Publish(e); !st) return Fail(st.error().ToString());
    std::cout << "kafka adapter linked: delivered to the mock cluster\n";
  }
#endif
#if CONSUMER_WITH_METRICS_HTTP
  {
    auto server = jaiminho::MetricsServer::Start(**outbox, {.listen = "127.0.0.1:0"});
    if (!server) return Fail(server.error().ToString());
    std::cout << "metrics server linked: listening on 127.0.0.1:" << (*server)->port() << "\n";
  }
#endif
  if (auto s = (*outbox)->Close(); !s) return Fail(s.error().ToString());
  return 0;
}
