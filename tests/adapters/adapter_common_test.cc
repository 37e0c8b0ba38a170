// Topic templates and broker URIs: what both adapters build on.
#include "adapters/uri.h"
#include "jaiminho/adapters/topic.h"
#include "support/test_util.h"
#if JAIMINHO_WITH_MQTT
#include "jaiminho/adapters/mqtt.h"
#endif
#if JAIMINHO_WITH_KAFKA
#include "jaiminho/adapters/kafka.h"
#endif

namespace jaiminho {
namespace {

Event MakeEvent(std::string_view stream, uint64_t seq, std::string_view type, std::string_view key) {
  Event e;
  e.id.db.bytes[0] = 0xab;
  e.id.stream = stream;
  e.id.seq = seq;
  e.type = type;
  e.key = key;
  return e;
}

TEST(TopicTemplate, ExpandsEveryPlaceholder) {
  ASSERT_OK_AND_ASSIGN(TopicTemplate t, TopicTemplate::Parse("x/{stream}/{type}/{key}/{seq}/{{lit}}"));
  Event e = MakeEvent("telemetry", 42, "reading.v1", "dev/7");
  EXPECT_EQ(t.Expand(e), "x/telemetry/reading.v1/dev/7/42/{lit}");
  ASSERT_OK_AND_ASSIGN(TopicTemplate id, TopicTemplate::Parse("{id}|{db}"));
  EXPECT_EQ(id.Expand(e), e.id.ToString() + "|" + e.id.db.ToHex());
  EXPECT_FALSE(t.StreamOnly());
  ASSERT_OK_AND_ASSIGN(TopicTemplate s, TopicTemplate::Parse("trading.{stream}"));
  EXPECT_TRUE(s.StreamOnly());
  EXPECT_EQ(s.Expand(e), "trading.telemetry");
}

TEST(TopicTemplate, RejectsUnknownPlaceholdersAndBraces) {
  ASSERT_ERROR(TopicTemplate::Parse(""), ErrorCode::kInvalidArgument);
  auto unknown = TopicTemplate::Parse("a/{sream}");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().message().find("{sream}"), std::string::npos) << unknown.error().message();
  ASSERT_ERROR(TopicTemplate::Parse("a/{stream"), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(TopicTemplate::Parse("a/stream}"), ErrorCode::kInvalidArgument);
}

TEST(BrokerUri, SplitsUserInfoHostsPathAndQuery) {
  ASSERT_OK_AND_ASSIGN(internal::Uri u, internal::ParseUri("mqtt://us%40r:p%3Ass@h:1/a/{b}?x=1&y=%20z", "mqtt"));
  EXPECT_TRUE(u.has_userinfo);
  EXPECT_EQ(u.user, "us@r");
  EXPECT_EQ(u.password, "p:ss");
  EXPECT_EQ(u.authority, "h:1");
  EXPECT_EQ(u.path, "a/{b}");
  ASSERT_EQ(u.query.size(), 2u);
  EXPECT_EQ(u.query[1], (std::pair<std::string, std::string>("y", " z")));
  ASSERT_ERROR(internal::ParseUri("kafka://h", "mqtt"), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(internal::ParseUri("mqtt://h/%zz", "mqtt"), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(internal::ParseUri("mqtt:///path", "mqtt"), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(internal::ParseUri("mqtt://h?novalue", "mqtt"), ErrorCode::kInvalidArgument);

  auto v6 = internal::SplitHostPort("[::1]:8883", 1);
  ASSERT_OK(v6);
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(v6->second, 8883);
  auto dflt = internal::SplitHostPort("broker", 1883);
  ASSERT_OK(dflt);
  EXPECT_EQ(dflt->second, 1883);
  ASSERT_ERROR(internal::SplitHostPort("broker:99999", 1883), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(internal::SplitHostPort("broker:", 1883), ErrorCode::kInvalidArgument);
}

#if JAIMINHO_WITH_MQTT
TEST(MqttUri, FillsOptions) {
  ASSERT_OK_AND_ASSIGN(MqttOptions o, ParseMqttUri("mqtt://gw:secret@10.0.0.5:8883/site/{stream}/{key}?client_id=gw-7"
                                                   "&ack_timeout_ms=2500&retain=1&max_inflight=10&keepalive_s=60"
                                                   "&type_property="));
  EXPECT_EQ(o.host, "10.0.0.5");
  EXPECT_EQ(o.port, 8883);
  EXPECT_EQ(o.username, "gw");
  EXPECT_EQ(o.password, "secret");
  EXPECT_EQ(o.topic, "site/{stream}/{key}");
  EXPECT_EQ(o.client_id, "gw-7");
  EXPECT_EQ(o.ack_timeout, std::chrono::milliseconds(2500));
  EXPECT_TRUE(o.retain);
  EXPECT_EQ(o.max_inflight, 10u);
  EXPECT_EQ(o.keepalive, std::chrono::seconds(60));
  EXPECT_EQ(o.type_property, "");  // not sent
  ASSERT_OK_AND_ASSIGN(MqttOptions d, ParseMqttUri("mqtt://localhost"));
  EXPECT_EQ(d.type_property, "jaiminho-type");
  EXPECT_EQ(d.port, 1883);
  EXPECT_EQ(d.topic, MqttOptions{}.topic);
  auto bad = ParseMqttUri("mqtt://h/?qos=2");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("unknown option 'qos'"), std::string::npos) << bad.error().message();
  ASSERT_ERROR(ParseMqttUri("mqtt://h?retain=maybe"), ErrorCode::kInvalidArgument);
}

TEST(MqttPublisher, CreateValidatesOptions) {
  ASSERT_ERROR(MqttPublisher::Create({.topic = "{nope}"}), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(MqttPublisher::Create({.host = ""}), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(MqttPublisher::Create({.keepalive = std::chrono::seconds(1)}), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(MqttPublisher::Create({.ack_timeout = std::chrono::milliseconds(0)}), ErrorCode::kInvalidArgument);
  auto r = MqttPublisher::Create(
      {.reconnect_min = std::chrono::milliseconds(500), .reconnect_max = std::chrono::milliseconds(100)});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("reconnect_min"), std::string::npos) << r.error().message();
}
#endif

#if JAIMINHO_WITH_KAFKA
TEST(KafkaUri, FillsOptionsAndPassesLibrdkafkaProperties) {
  ASSERT_OK_AND_ASSIGN(KafkaOptions o, ParseKafkaUri("kafka://k1:9093,k2,[::1]:9094/trading.{stream}?partitioning="
                                                     "stream&delivery_timeout_ms=1500&linger.ms=5"));
  EXPECT_EQ(o.bootstrap_servers, "k1:9093,k2:9092,[::1]:9094");
  EXPECT_EQ(o.topic, "trading.{stream}");
  EXPECT_EQ(o.partitioning, KafkaPartitioning::kByStream);
  EXPECT_EQ(o.delivery_timeout, std::chrono::milliseconds(1500));
  ASSERT_EQ(o.config.size(), 1u);
  EXPECT_EQ(o.config[0], (std::pair<std::string, std::string>("linger.ms", "5")));
  ASSERT_ERROR(ParseKafkaUri("kafka://k1/?partitioning=round-robin"), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(ParseKafkaUri("kafka://user@k1"), ErrorCode::kInvalidArgument);
}

TEST(KafkaPublisher, CreateNamesTheBadProperty) {
  auto r = KafkaPublisher::Create({.bootstrap_servers = "127.0.0.1:1", .config = {{"no.such.property", "1"}}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("no.such.property"), std::string::npos) << r.error().message();
  ASSERT_ERROR(KafkaPublisher::Create({}), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(KafkaPublisher::Create({.bootstrap_servers = "h:1", .topic = "{x}"}), ErrorCode::kInvalidArgument);
}
#endif

}  // namespace
}  // namespace jaiminho
