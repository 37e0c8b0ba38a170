// MqttPublisher: delivers events to an MQTT broker with libmosquitto, at QoS 1.
// Built when the project is configured with JAIMINHO_WITH_MQTT (CMake target
// jaiminho::mqtt; needs libmosquitto-dev).
//
//   auto mqtt = jaiminho::MqttPublisher::Create({.host = "broker.lan", .topic = "gw/{stream}/{key}"});
//   if (!mqtt) { std::cerr << mqtt.error().ToString() << "\n"; return 1; }
//   auto relay = jaiminho::Relay::Make(outbox, *mqtt);   // outbox: jaiminho::Outbox&
//   if (!relay) { std::cerr << relay.error().ToString() << "\n"; return 1; }
//   (*relay)->Start();
//
// Delivery. Each event is one MQTT v5 PUBLISH at QoS 1 to the topic that
// MqttOptions::topic builds from the event (see jaiminho/adapters/topic.h),
// with the event id (EventId::ToString()) in the user property named by
// MqttOptions::id_property, its type in the one named by type_property, the
// event's encoding as the content type, and the
// event's headers as further user properties. An event is acknowledged only
// once the broker's PUBACK arrives with a success reason code ("no matching
// subscribers" is a success: the broker took the message).
//
// Connection. A background thread connects, keeps the connection alive and,
// after any failure or loss, reconnects with a doubling delay between
// reconnect_min and reconnect_max. It also sends: Publish and PublishBatch
// hand their events to it and wait for the PUBACKs, so every libmosquitto call
// is made on that one thread (a publishing thread costs one wake-up per
// batch, not a system call per event). Nothing is queued inside the publisher:
// while the broker is unreachable a publish fails at once with kUnavailable
// naming host:port and the last connection error, so the relay's retry policy
// applies and events stay buffered in the outbox. When a connection is lost
// while PUBACKs are awaited, those events fail with kUnavailable; the broker
// may have received some of them, which the relay sends again: delivery is
// at-least-once, and consumers deduplicate by the event id.
//
// Errors:
//   kUnavailable: not connected (refused, unreachable, connection lost), no
//     PUBACK within ack_timeout, or a PUBACK with a transient reason code
//     (for example "quota exceeded"); retried per the stream's RetryPolicy.
//   kRejected (the event is parked): the expanded topic is not a valid MQTT
//     topic name (empty, contains '+', '#' or NUL, not UTF-8, over 65535
//     bytes), the payload is over the MQTT limit, or the PUBACK says "topic
//     name invalid", "payload format invalid" or "not authorized".
//
// TLS. With MqttOptions::tls (or an mqtts:// URI) the connection is TLS,
// checking the broker's certificate against ca_file / ca_path (or the system's
// trust store) and its name against host; cert_file + key_file add a client
// certificate (mutual TLS, as AWS IoT Core and Azure IoT Hub require). A TLS
// failure (unknown CA, expired certificate, wrong host name, no client
// certificate where the broker requires one) is a connection error like any
// other: publishes fail with kUnavailable, and last_error() says "TLS
// connection to MQTT broker host:port failed: ..." with libmosquitto's reason
// and the options to check. Passwords can come from a file or an environment
// variable (password_file, password_env, key_password_file, key_password_env),
// so that they never need to sit on a command line.
//
// Thread-safety: safe for concurrent Publish and PublishBatch calls from any
// number of threads, which share one connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "jaiminho/event.h"
#include "jaiminho/publisher.h"
#include "jaiminho/result.h"

namespace jaiminho {

struct MqttOptions {
  // Broker host name or address. Default: "localhost".
  std::string host = "localhost";
  // Broker TCP port; 0 picks the MQTT default: 8883 with tls, 1883 without.
  // Default: 0.
  uint16_t port = 0;
  // MQTT client identifier. A broker disconnects an older connection with the
  // same id, so each publisher needs its own. Empty: "jaiminho-" followed by
  // 16 random hex digits. Default: empty.
  std::string client_id{};
  // Username and password; an empty username connects anonymously. Default: empty.
  std::string username{};
  std::string password{};
  // Reads the password at Create from this file (its content without a
  // trailing newline) or this environment variable instead of `password`, so
  // it stays off command lines. At most one of password, password_file and
  // password_env may be set; Create fails with kInvalidArgument naming the
  // file or variable when it cannot be read or is unset. Default: empty.
  std::string password_file{};
  std::string password_env{};

  // Topic template (jaiminho/adapters/topic.h). Default: "{stream}/{type}/{key}".
  std::string topic = "{stream}/{type}/{key}";
  // Sets the MQTT retain flag on every message. Default: false.
  bool retain = false;
  // Name of the user property that carries EventId::ToString(). Must not be
  // empty. Default: "jaiminho-event-id".
  std::string id_property = "jaiminho-event-id";
  // Name of the user property that carries the event's type (what a
  // consumer's ConsumerHandlers dispatches on, jaiminho/consumer_handlers.h);
  // empty: not sent. Default: "jaiminho-type".
  std::string type_property = "jaiminho-type";
  // Also send the event's headers as user properties. Default: true.
  bool headers_as_properties = true;

  // Keep-alive interval: the client pings an idle connection, and the broker
  // drops a client silent for 1.5 times this. Must be in [5 s, 65535 s].
  // Default: 30 s.
  std::chrono::seconds keepalive = std::chrono::seconds(30);
  // How long a publish waits for PUBACKs: Publish fails with kUnavailable when
  // its PUBACK has not arrived within this time; PublishBatch when no PUBACK of
  // the batch arrived for this long. Must be > 0. Default: 10 s.
  std::chrono::milliseconds ack_timeout = std::chrono::seconds(10);
  // Bound of a TCP connection attempt; also how long a publish waits for a
  // connection attempt in progress (at start-up, or right after a reconnect
  // began) before failing with kUnavailable. Must be > 0. Default: 5 s.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // Delay before reconnecting after a failed or lost connection, doubled after
  // each failure up to reconnect_max, and reset by a successful connection.
  // Must satisfy 0 < reconnect_min <= reconnect_max. Default: 100 ms to 10 s.
  std::chrono::milliseconds reconnect_min = std::chrono::milliseconds(100);
  std::chrono::milliseconds reconnect_max = std::chrono::seconds(10);
  // QoS 1 messages in flight (sent, PUBACK awaited) on the connection; the
  // rest wait in libmosquitto's queue. The broker's Receive Maximum also
  // applies. Must be in [1, 65535]. Default: 256.
  uint32_t max_inflight = 256;

  // TLS (see the class comment). Off unless set here or by an mqtts:// URI.
  // Default: false.
  bool tls = false;
  // CA certificates (PEM) that the broker's certificate must chain to: a file,
  // and/or a directory prepared with `openssl rehash`. Both empty: the
  // system's trust store (/etc/ssl/certs). Must be readable when set.
  // Default: empty.
  std::string ca_file{};
  std::string ca_path{};
  // Client certificate and its private key (PEM) for mutual TLS; both or
  // neither, readable at Create. Default: empty (no client certificate).
  std::string cert_file{};
  std::string key_file{};
  // Pass phrase of an encrypted key_file: given directly, read from a file, or
  // from an environment variable (at most one; read at Create like the
  // password). Default: empty (key not encrypted).
  std::string key_password{};
  std::string key_password_file{};
  std::string key_password_env{};
  // Minimum TLS version: "tlsv1.2" or "tlsv1.3"; empty: libmosquitto's default
  // (TLS 1.2 or later). Default: empty.
  std::string tls_version{};
  // Check that the broker's certificate names `host` (DNS name or IP address
  // in its subjectAltName). false is INSECURE: any certificate from a trusted
  // CA is accepted, so anyone holding one can impersonate the broker; for
  // tests and brokers reached by an address their certificate lacks.
  // Default: true.
  bool verify_hostname = true;
  // ALPN protocol to offer, for brokers that serve several protocols on one
  // port (AWS IoT Core on 443 expects "x-amzn-mqtt-ca"). Default: empty (none).
  std::string alpn{};
};

// Parses "SCHEME://[USER[:PASSWORD]@]HOST[:PORT][/TOPIC-TEMPLATE][?NAME=VALUE&...]"
// into options (the form `jaiminho-tool relay --sink` takes). SCHEME is mqtt
// (plain TCP, port default 1883) or mqtts (TLS, port default 8883). Query
// names: client_id, retain (0/1), id_property, type_property, headers (0/1), keepalive_s,
// ack_timeout_ms, connect_timeout_ms, reconnect_min_ms, reconnect_max_ms,
// max_inflight, password_file, password_env; and for TLS: tls (0/1), ca_file,
// ca_path, cert_file, key_file, key_password_file, key_password_env,
// tls_version, verify_hostname (0/1), alpn. Empty path: the default template.
// Examples:
//   "mqtt://127.0.0.1:1883/gw/{stream}/{key}?client_id=gw-7&ack_timeout_ms=2000"
//   "mqtts://gw-7@broker.example:8883/gw/{stream}?ca_file=/etc/gw/ca.pem&cert_file=/etc/gw/gw.pem&key_file=/etc/gw/gw.key&password_env=GW_MQTT_PASSWORD"
// Fails with kInvalidArgument naming the part that is wrong.
[[nodiscard]] Result<MqttOptions> ParseMqttUri(std::string_view uri);

class MqttPublisher final : public Publisher {
 public:
  // Validates the options (kInvalidArgument naming the option) and starts the
  // connection thread. Succeeds while the broker is down: the thread keeps
  // trying, and publishes fail with kUnavailable until it connects.
  // Each accepted (re)connect calls NotifyReady() (publisher.h): relays
  // retry their blocked heads at once.
  [[nodiscard]] static Result<std::shared_ptr<MqttPublisher>> Create(MqttOptions options);

  // Disconnects and joins the connection thread; events still awaiting a
  // PUBACK fail with kUnavailable. REQUIRES: no Publish is in progress.
  ~MqttPublisher() override;
  MqttPublisher(const MqttPublisher&) = delete;
  MqttPublisher& operator=(const MqttPublisher&) = delete;

  Status Publish(const Event& event) override;

  // Pipelines the events on the connection (one PUBLISH each, without waiting
  // in between), then waits for all their PUBACKs. The broker handles them in
  // order, so a connection loss or a timeout fails the first unacknowledged
  // event and everything after it. With Order::kKeep, publishing stops at the
  // first event that cannot be sent, the rest are reported kAborted, and an
  // event acknowledged after an earlier failure is reported kAborted too (the
  // relay sends it again after the failed one: a duplicate, never a gap).
  void PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) override;

  // True while connected (CONNACK received, connection not lost).
  bool connected() const;
  std::optional<bool> IsConnected() const override { return connected(); }
  // The last connection error ("" when none since the last successful connect).
  std::string last_error() const;
  // Blocks until connected or `timeout` passes; returns connected().
  bool WaitConnected(std::chrono::milliseconds timeout) const;
  // "host:port" (the port resolved: 1883 or 8883 when options.port was 0).
  const std::string& endpoint() const;

 private:
  class Impl;
  explicit MqttPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jaiminho
