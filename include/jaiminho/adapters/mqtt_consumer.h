// MqttConsumer: consumes events that an MqttPublisher (jaiminho/adapters/mqtt.h)
// delivered to an MQTT broker and applies each one's effect exactly once, by
// recording its id in an Inbox (jaiminho/inbox.h) in the same transaction as
// the handler's business writes. Part of jaiminho::mqtt (JAIMINHO_WITH_MQTT).
//
//   auto outbox = jaiminho::Outbox::Open({.path = "var/risk.db", .business_families = {{.name = "fills"}}});
//   auto inbox = jaiminho::Inbox::Open(**outbox, {.keep_order_streams = {"fills"}});
//   jaiminho::BusinessFamily fills = *(*outbox)->FindBusinessFamily("fills");
//   auto consumer = jaiminho::MqttConsumer::Start(**outbox, **inbox,
//       {.host = "broker.lan", .client_id = "risk-1", .filter = "trading/fills/#"},
//       [&](const jaiminho::MqttMessage& m, jaiminho::Transaction& txn) -> jaiminho::Status {
//         return txn.Put(fills, m.raw_id, m.payload);     // business writes go into txn
//       });
//   if (!consumer) { std::cerr << consumer.error().ToString() << "\n"; return 1; }
//
// Session. The consumer connects with MQTT v5, clean_start = false, the given
// (stable) client id and a session expiry interval (session_expiry), and
// subscribes to `filter` at QoS 1: while it is down the broker keeps its
// subscription and queues the QoS 1 messages for it (mosquitto: up to
// max_queued_messages, 1000 by default: raise it for long outages), and
// redelivers the unacknowledged ones when it reconnects.
//
// Per message, on the consumer's thread, in arrival order:
//   1. the event id is read from the user property named id_property (where
//      MqttPublisher puts EventId::ToString()); a message without a valid id
//      is acknowledged without running the handler, counted in
//      MqttConsumerStats::invalid and logged with its topic;
//   2. a Transaction is begun on the Outbox and Inbox::Receive records the id:
//      kDuplicate: acknowledged, handler not run (MqttConsumerStats::duplicates);
//      kNew: the handler adds its writes to the transaction, then Commit;
//   3. only after the commit is durable (as Outbox's sync mode makes it) does
//      the PUBACK go to the broker.
//   Not acknowledged (the broker redelivers; see "Failures"): kOutOfOrder
//   (keep-order stream, InboxOptions::keep_order_streams), kInFlight (another
//   transaction of this Inbox holds the id), a Receive error, a handler that
//   returns an error (or throws), a failed Commit.
//
// Acknowledgement after commit, with libmosquitto 2.0. libmosquitto has no
// manual acknowledgement: for an incoming QoS 1 PUBLISH it builds the PUBACK
// before it calls the message callback. Driven without threaded mode it writes
// that PUBACK to the socket at once, before the callback runs: a crash in the
// handler would then lose the message. The consumer therefore runs libmosquitto
// in threaded mode (mosquitto_threaded_set) on its own thread, where the
// PUBACK is only queued and written by the same thread's next loop pass, after
// the callback returned; and it does the whole Receive / handler / Commit
// synchronously inside the callback. A process that dies in the callback
// never sends that PUBACK, and the broker redelivers the message to the next
// connection of the session (the inbox then drops it if its commit had
// completed). Checked by MqttConsumerCrash.KilledInsideTheHandlerBeforeCommit-
// TheMessageIsRedelivered (tests/adapters/mqtt_consumer_test.cc: a consumer
// process SIGKILLed while blocked in its handler), which fails, as does
// MqttConsumer.FailedHandlerIsNotAcknowledgedAndTheBrokerRedeliversIt, when
// threaded mode is switched off.
//
// Failures. A message that must not be acknowledged cannot be refused in MQTT
// 3.1.1/5 at QoS 1 (no negative acknowledgement), and its PUBACK is already
// queued: the consumer shuts the socket down (shutdown(2)) before the callback
// returns, so that PUBACK and those of the messages after it are never sent,
// ignores the messages still buffered, and drops the connection (each
// connection has its own libmosquitto handle, so nothing queued on the old one
// can acknowledge the redelivery). Then, per
// MqttConsumerOptions::on_failure:
//   kReconnect (default): it reconnects after reconnect_min, doubling up to
//     reconnect_max while failures repeat (reset by the next commit); the
//     broker redelivers the message first, so a handler that keeps failing on
//     it holds the subscription (a poison message) and last_error() says why;
//   kStop: it stays disconnected; stopped() becomes true and last_error()
//     names the event, the topic and the error. The broker keeps the message
//     for the next consumer of the session.
// A keep-order stream whose next seq never comes (lost by the broker: queue
// limit, expired session) therefore stops at the hole, kOutOfOrder each
// time, until an operator acts. A lost connection or a refused one is retried
// the same way (both policies).
// A message published at QoS 0 arrives at QoS 0: applied the same way, but
// never redelivered (MqttPublisher publishes at QoS 1).
//
// TLS. With MqttConsumerOptions::tls the connection is TLS, with the same
// settings and checks as MqttPublisher's (jaiminho/adapters/mqtt.h, MqttOptions):
// the broker's certificate checked against ca_file / ca_path (or the system's
// trust store) and its name against host; cert_file + key_file add a client
// certificate (mutual TLS). A TLS failure is a connection failure, retried
// like any other, and last_error() says "TLS connection to MQTT broker
// host:port failed: ..." with OpenSSL's reason and the options to check.
//
// Not supported yet: MQTT 3.1.1 brokers (the id travels in a v5 user property).
//
// Thread-safety: the handler runs on the consumer's thread, one message at a
// time; it must not use the consumer. The Outbox and Inbox must outlive the
// consumer; other threads may use them meanwhile (an id they receive in an open
// transaction makes the consumer's Receive kInFlight: redelivered later).
// stats(), last_error(), stopped() and the Wait* methods may be called from
// any thread; the destructor from any thread but the handler's.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jaiminho/consumer_handlers.h"
#include "jaiminho/event.h"
#include "jaiminho/inbox.h"
#include "jaiminho/result.h"
#include "jaiminho/transaction.h"

namespace jaiminho {

class Outbox;
class Logger;

// One message, as the handler sees it. The views are valid during the call.
struct MqttMessage {
  std::string_view topic{};
  std::string_view payload{};
  std::string_view content_type{};                                // "" when absent
  std::vector<std::pair<std::string, std::string>> properties{};  // user properties, the id's included
  std::string_view raw_id{};                                      // EventId::ToString()
  EventId id{};                                                   // parsed; its stream points into raw_id
};

enum class MqttFailurePolicy : uint8_t {
  kReconnect = 1,  // drop the connection and reconnect: the broker redelivers
  kStop = 2,       // drop the connection and stay disconnected
};

struct MqttConsumerOptions {
  // Broker host name or address, and TCP port. Default: "localhost", 1883.
  std::string host = "localhost";
  uint16_t port = 1883;
  // MQTT client identifier: the broker's session (subscription, queued
  // messages) is found by it, so it must stay the same across restarts and be
  // used by one consumer at a time. Required.
  std::string client_id{};
  // Username and password; an empty username connects anonymously. Default: empty.
  std::string username{};
  std::string password{};

  // TLS (see the class comment), as MqttOptions' fields of the same names.
  // Set port too (8883 is the usual TLS port). Default: false.
  bool tls = false;
  // CA certificates (PEM) the broker's certificate must chain to: a file,
  // and/or a directory prepared with `openssl rehash`. Both empty: the
  // system's trust store. Readable at Start when set. Default: empty.
  std::string ca_file{};
  std::string ca_path{};
  // Client certificate and its private key (PEM) for mutual TLS; both or
  // neither, readable at Start. Default: empty.
  std::string cert_file{};
  std::string key_file{};
  // Pass phrase of an encrypted key_file: given, read from a file, or from an
  // environment variable (at most one; read at Start). Default: empty.
  std::string key_password{};
  std::string key_password_file{};
  std::string key_password_env{};
  // Minimum TLS version: "tlsv1.2", "tlsv1.3" or empty (libmosquitto's
  // default). Default: empty.
  std::string tls_version{};
  // Check that the broker's certificate names `host`; false is INSECURE (see
  // MqttOptions::verify_hostname). Default: true.
  bool verify_hostname = true;
  // ALPN protocol to offer. Default: empty (none).
  std::string alpn{};

  // Topic filter subscribed at QoS 1 ('+' and '#' allowed). Required.
  std::string filter{};
  // Name of the user property carrying the event id; MqttOptions::id_property
  // of the publisher. Default: "jaiminho-event-id".
  std::string id_property = "jaiminho-event-id";
  // Name of the user property carrying the event type, for ConsumerHandlers
  // (the Start overload taking them); MqttOptions::type_property of the
  // publisher. Default: "jaiminho-type".
  std::string type_property = "jaiminho-type";
  // How long the broker keeps the session while the consumer is disconnected
  // (MQTT v5 Session Expiry Interval), in seconds. Must be > 0. Default: 1 day.
  std::chrono::seconds session_expiry = std::chrono::hours(24);
  // Keep-alive interval, in [5 s, 65535 s]. A handler that runs longer than
  // 1.5 times it gets the connection dropped by the broker (its message is
  // then redelivered, and dropped by the inbox once committed). Default: 30 s.
  std::chrono::seconds keepalive = std::chrono::seconds(30);
  // Bound of a TCP connection attempt (checked before libmosquitto's
  // blocking connect, which could otherwise hold the destructor for minutes
  // on an unreachable host). Must be > 0. Default: 5 s.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // Delay before reconnecting after a failure (see the class comment),
  // doubled while failures repeat. 0 < reconnect_min <= reconnect_max.
  // Default: 100 ms to 10 s.
  std::chrono::milliseconds reconnect_min = std::chrono::milliseconds(100);
  std::chrono::milliseconds reconnect_max = std::chrono::seconds(10);
  // What a message that cannot be acknowledged does. Default: kReconnect.
  MqttFailurePolicy on_failure = MqttFailurePolicy::kReconnect;
  // Called on the consumer's thread once a message is settled: kNew after its
  // commit, kDuplicate when it is acknowledged without the handler (for
  // metrics, tracing). Must not throw. Default: none.
  std::function<void(const MqttMessage&, ReceiveOutcome)> on_outcome{};
  // Where connection changes, failures and invalid messages are logged. Default: none.
  std::shared_ptr<Logger> logger{};
};

struct MqttConsumerStats {
  uint64_t applied = 0;           // kNew: handler run and committed
  uint64_t duplicates = 0;        // kDuplicate: acknowledged without the handler
  uint64_t invalid = 0;           // no or a bad event id: acknowledged, skipped
  uint64_t not_acknowledged = 0;  // out of order, in flight, handler or commit failure
  uint64_t connects = 0;          // successful connections (CONNACK)
};

class MqttConsumer {
 public:
  // Adds the handler's writes for a kNew message to `txn`. An error (or an
  // exception) aborts the message: nothing of it is committed and it is not
  // acknowledged. Must not Commit or Clear `txn`.
  using Handler = std::function<Status(const MqttMessage& message, Transaction& txn)>;

  // Validates the options (kInvalidArgument naming the option) and starts the
  // consumer's thread, which connects, subscribes and consumes. Succeeds while
  // the broker is down: the thread keeps trying (see last_error()).
  [[nodiscard]] static Result<std::unique_ptr<MqttConsumer>> Start(Outbox& outbox, Inbox& inbox,
                                                                   MqttConsumerOptions options, Handler handler);
  // The same with typed handlers, one per event type (jaiminho/consumer_handlers.h;
  // the consumer takes a copy): the type is read from the user property
  // type_property, the encoding from the content type; a message the handlers
  // refuse (unknown type, wrong encoding, undecodable payload) is not
  // acknowledged, as a handler error.
  [[nodiscard]] static Result<std::unique_ptr<MqttConsumer>> Start(Outbox& outbox, Inbox& inbox,
                                                                   MqttConsumerOptions options,
                                                                   ConsumerHandlers handlers);
  // The event a message carries, as ConsumerHandlers see it (type from `type_property`).
  static ReceivedEvent ToReceivedEvent(const MqttMessage& message, std::string_view type_property);

  // Lets the message in progress finish (commit or not), disconnects and
  // joins the thread. Messages delivered but not yet handled stay
  // unacknowledged: the broker redelivers them to the next connection.
  ~MqttConsumer();
  MqttConsumer(const MqttConsumer&) = delete;
  MqttConsumer& operator=(const MqttConsumer&) = delete;

  MqttConsumerStats stats() const;
  // The last error: connection, subscription or a message not acknowledged
  // (names the broker, the filter, the event and the topic); cleared when a
  // message is applied. "" when none.
  std::string last_error() const;
  // True once the consumer gave up (MqttFailurePolicy::kStop).
  bool stopped() const;
  // Blocks until subscribed on a live connection; false after `timeout`.
  bool WaitSubscribed(std::chrono::milliseconds timeout) const;
  // Blocks until stats().applied >= n (or stopped()); false after `timeout`.
  bool WaitApplied(uint64_t n, std::chrono::milliseconds timeout) const;
  // "host:port".
  const std::string& endpoint() const;

 private:
  class Impl;
  explicit MqttConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jaiminho
