// jaiminho-tool's broker sinks: MakeSink("mqtt://...") and MakeSink("kafka://...")
// build working publishers, and `jaiminho-tool relay --sink mqtt://...`
// delivers a database to a real mosquitto broker.
#include <cstdlib>
#include <set>

#include "support/test_util.h"
#include "tool/run_tool.h"
#include "tool/sinks.h"
#if JAIMINHO_WITH_MQTT
#include "adapters/testing/mosquitto_broker.h"
#include "adapters/testing/mqtt_subscriber.h"
#endif
#if JAIMINHO_WITH_KAFKA
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif

namespace jaiminho {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

constexpr auto kWait = std::chrono::milliseconds(30s);

Event MakeEvent(std::string_view stream, uint64_t seq) {
  Event e;
  e.id.stream = stream;
  e.id.seq = seq;
  e.type = "t";
  e.key = "k";
  e.payload = "p";
  return e;
}

TEST(ToolSink, UnknownSchemesNameTheAcceptedForms) {
  auto r = tool::MakeSink("amqp://h");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("mqtt://"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("mqtts://"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("kafka://"), std::string::npos) << r.error().message();
}

#if JAIMINHO_WITH_MQTT
TEST(ToolSink, MqttSchemeBuildsAWorkingMqttPublisher) {
  TempDir dir;
  auto broker = testing::MosquittoBroker::Start({.dir = dir.Sub("broker")});
  ASSERT_OK(broker);
  uint16_t port = (*broker)->port();
  ASSERT_OK_AND_ASSIGN(auto sub, testing::MqttSubscriber::Connect({.port = port, .filter = "tool/#"}));
  ASSERT_OK_AND_ASSIGN(
      auto sink, tool::MakeSink("mqtt://127.0.0.1:" + std::to_string(port) + "/tool/{stream}/{seq}?client_id=t1"));
  ASSERT_OK(sink->Publish(MakeEvent("orders", 7)));
  ASSERT_TRUE(sub->WaitFor(1, kWait));
  EXPECT_EQ(sub->messages()[0].topic, "tool/orders/7");
  EXPECT_TRUE(sub->messages()[0].Property("jaiminho-event-id").has_value());
  ASSERT_ERROR(tool::MakeSink("mqtt://127.0.0.1:1/{bad}"), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(tool::MakeSink("mqtt://127.0.0.1:1/?nope=1"), ErrorCode::kInvalidArgument);
}

TEST(ToolBinary, RelayToMqttDeliversEveryEventAndFailsWhenTheBrokerIsDown) {
  TempDir dir;
  std::string db = dir.Sub("db");
  {
    auto outbox = testing::MustOpen(db);
    ASSERT_OK_AND_ASSIGN(
        Stream * fills,
        outbox->OpenStream("fills", {.strategy = Strategy::kKeepOrder,
                                     // retried at once by the second run below
                                     .retry = RetryPolicy{.initial_backoff = 1ms, .max_backoff = 1ms, .jitter = 0}}));
    for (int i = 0; i < 5; ++i) {
      auto txn = outbox->Begin();
      ASSERT_OK(txn.Enqueue(*fills, {.type = "fill", .key = "o" + std::to_string(i), .payload = "x"}));
      ASSERT_OK(txn.Commit());
    }
    ASSERT_OK(outbox->Close());
  }
  // No broker yet: the relay fails, names the broker, and delivers nothing.
  uint16_t port = testing::FreeLoopbackPort();
  std::string spec = "mqtt://127.0.0.1:" + std::to_string(port) + "/{stream}/{key}?connect_timeout_ms=2000";
  testing::ToolRun down = testing::RunTool({"relay", db, "--sink", spec});
  EXPECT_NE(down.code, 0) << down.err;
  EXPECT_NE(down.err.find("0 published"), std::string::npos) << down.err;

  auto broker = testing::MosquittoBroker::Start({.dir = dir.Sub("broker"), .port = port});
  ASSERT_OK(broker);
  ASSERT_OK_AND_ASSIGN(auto sub, testing::MqttSubscriber::Connect({.port = port, .filter = "fills/#"}));
  testing::ToolRun up = testing::RunTool({"relay", db, "--sink", spec});
  EXPECT_EQ(up.code, 0) << up.err;
  EXPECT_NE(up.err.find("5 published"), std::string::npos) << up.err;
  ASSERT_TRUE(sub->WaitFor(5, kWait));
  auto msgs = sub->messages();
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(msgs[static_cast<size_t>(i)].topic, "fills/o" + std::to_string(i));
}

TEST(ToolBinary, RelayToMqttsOverMutualTlsDeliversEveryEvent) {
  TempDir dir;
  std::string certs = dir.Sub("certs"), db = dir.Sub("db");
  std::string make_certs = std::string("bash '") + JM_MAKE_TEST_CERTS + "' '" + certs + "'";
  ASSERT_EQ(std::system(make_certs.c_str()), 0) << make_certs;  // NOLINT(concurrency-mt-unsafe)
  {
    auto outbox = testing::MustOpen(db);
    ASSERT_OK_AND_ASSIGN(Stream * fills, outbox->OpenStream("fills", {.strategy = Strategy::kKeepOrder}));
    for (int i = 0; i < 5; ++i) {
      auto txn = outbox->Begin();
      ASSERT_OK(txn.Enqueue(*fills, {.type = "fill", .key = "o" + std::to_string(i), .payload = "x"}));
      ASSERT_OK(txn.Commit());
    }
    ASSERT_OK(outbox->Close());
  }
  auto broker = testing::MosquittoBroker::Start({.dir = dir.Sub("broker"),
                                                 .tls_ca_file = certs + "/ca.pem",
                                                 .tls_cert_file = certs + "/server.pem",
                                                 .tls_key_file = certs + "/server.key",
                                                 .tls_require_certificate = true});
  ASSERT_OK(broker);
  ASSERT_OK_AND_ASSIGN(auto sub, testing::MqttSubscriber::Connect({.port = (*broker)->port(), .filter = "fills/#"}));
  std::string spec = "mqtts://localhost:" + std::to_string((*broker)->tls_port()) + "/{stream}/{key}?ca_file=" + certs +
                     "/ca.pem&cert_file=" + certs + "/client.pem&key_file=" + certs +
                     "/client.key&connect_timeout_ms=2000";
  testing::ToolRun run = testing::RunTool({"relay", db, "--sink", spec});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.err.find("5 published"), std::string::npos) << run.err;
  ASSERT_TRUE(sub->WaitFor(5, kWait));
  EXPECT_EQ(sub->messages()[0].topic, "fills/o0");
}
#else
TEST(ToolSink, MqttSchemeWithoutTheAdapterIsNotSupported) {
  ASSERT_ERROR(tool::MakeSink("mqtt://127.0.0.1"), ErrorCode::kNotSupported);
}
#endif

#if JAIMINHO_WITH_KAFKA
TEST(ToolSink, KafkaSchemeBuildsAWorkingKafkaPublisher) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(host, nullptr) << err;
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(host, 1);
  ASSERT_NE(mc, nullptr);
  ASSERT_EQ(rd_kafka_mock_topic_create(mc, "tool.orders", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  {
    auto sink = tool::MakeSink(std::string("kafka://") + rd_kafka_mock_cluster_bootstraps(mc) +
                               "/tool.{stream}?partitioning=stream&log_level=3");
    ASSERT_OK(sink);
    // Success only on the broker's delivery report.
    ASSERT_OK((*sink)->Publish(MakeEvent("orders", 1)));
    ASSERT_ERROR(tool::MakeSink("kafka://h:1/x?no.such.property=1"), ErrorCode::kInvalidArgument);
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(host);
}

TEST(ToolSink, KafkaSchemeCanRunTheInProcessMockCluster) {
  // test.mock.num.brokers replaces the bootstrap servers: any host will do.
  ASSERT_OK_AND_ASSIGN(auto sink, tool::MakeSink("kafka://mock/demo.{stream}?test.mock.num.brokers=1&log_level=3"));
  ASSERT_OK(sink->Publish(MakeEvent("orders", 1)));
}
#else
TEST(ToolSink, KafkaSchemeWithoutTheAdapterIsNotSupported) {
  ASSERT_ERROR(tool::MakeSink("kafka://h:9092"), ErrorCode::kNotSupported);
}
#endif

}  // namespace
}  // namespace jaiminho
