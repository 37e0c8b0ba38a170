// KafkaPublisher: delivers events to Apache Kafka with librdkafka, through an
// idempotent producer. Built when the project is configured with
// JAIMINHO_WITH_KAFKA (CMake target jaiminho::kafka; needs librdkafka-dev).
//
//   auto kafka = jaiminho::KafkaPublisher::Create({.bootstrap_servers = "k1:9092,k2:9092",
//                                                  .topic = "trading.{stream}",
//                                                  .partitioning = jaiminho::KafkaPartitioning::kByStream});
//   if (!kafka) { std::cerr << kafka.error().ToString() << "\n"; return 1; }
//   auto relay = jaiminho::Relay::Make(outbox, *kafka);
//   if (!relay) { std::cerr << relay.error().ToString() << "\n"; return 1; }
//   (*relay)->Start();
//
// Delivery. Each event is one Kafka record on the topic that
// KafkaOptions::topic builds from the event (jaiminho/adapters/topic.h): the
// event key is the record key (no key when empty), the payload its value, the
// event's created_at its timestamp, and its headers carry the event id
// (KafkaOptions::id_header = EventId::ToString()), the type ("jaiminho-type"),
// the encoding ("content-type") and the event's own headers. An event is
// acknowledged only when its delivery report says the partition leader (and,
// with the idempotent producer's acks=all, every in-sync replica) stored it.
//
// Order and duplicates. enable.idempotence=true: librdkafka retries failed
// produce requests itself without reordering or duplicating records within a
// partition. Order holds per partition, so per event key with kByKey (the
// default) and per stream with kByStream. A delivery report with an error,
// or none in time, fails the event (the relay retries it per policy; a record
// given up on may still be delivered later); that resend is the only source
// of duplicates, and consumers deduplicate by the event id header.
//
// Outages. After librdkafka reports every broker down, a poll thread probes
// the cluster (metadata requests); the first broker answer (the probe, or a
// delivery) sets IsConnected() again and calls NotifyReady(), so a Relay
// retries its blocked heads at once instead of after their backoff.
//
// Errors:
//   kUnavailable: no delivery report within delivery_timeout while every
//     broker is down, or within delivery_timeout + 5 s otherwise (partition
//     leader unavailable), the local queue is full, a transient
//     broker error, or a fatal producer error (the producer is then recreated
//     before the next publish).
//   kRejected (the event is parked): the expanded topic is not a valid Kafka
//     topic name ([A-Za-z0-9._-]{1,249}, not "." or ".."), or the broker
//     refused the record itself (too large, invalid record, topic
//     authorization failed).
//
// Thread-safety: safe for concurrent Publish and PublishBatch calls from any
// number of threads, which share one producer.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jaiminho/event.h"
#include "jaiminho/publisher.h"
#include "jaiminho/result.h"

namespace jaiminho {

// Which partition a record goes to (the order Kafka keeps is per partition).
enum class KafkaPartitioning {
  // By the event key (murmur2, as the Java client): order per key; keyless
  // events are spread at random.
  kByKey = 1,
  // By the stream name (murmur2 of the name): a whole stream in one
  // partition, in seq order.
  kByStream = 2,
};

struct KafkaOptions {
  // Comma-separated host:port list (librdkafka's bootstrap.servers). Required
  // unless `config` sets test.mock.num.brokers (librdkafka's in-process mock
  // cluster, for tests and demos).
  std::string bootstrap_servers{};
  // Topic template (jaiminho/adapters/topic.h). Default: "{stream}".
  std::string topic = "{stream}";
  // Default: kByKey.
  KafkaPartitioning partitioning = KafkaPartitioning::kByKey;
  // Name of the header that carries EventId::ToString(). Must not be empty.
  // Default: "jaiminho-event-id".
  std::string id_header = "jaiminho-event-id";
  // How long librdkafka may try to deliver a record (message.timeout.ms):
  // after it, the delivery report fails with "message timed out". Must be in
  // [1 ms, 24 h]. Default: 30 s.
  std::chrono::milliseconds delivery_timeout = std::chrono::seconds(30);
  // Further librdkafka configuration properties, applied last (they override
  // the defaults set here: client.id=jaiminho, enable.idempotence=true,
  // linger.ms=0, and message.timeout.ms from delivery_timeout). An unknown
  // property or invalid value fails Create with kInvalidArgument.
  std::vector<std::pair<std::string, std::string>> config{};
};

// Parses "kafka://HOST:PORT[,HOST:PORT...][/TOPIC-TEMPLATE][?NAME=VALUE&...]"
// into options (the form `jaiminho-tool relay --sink` takes). Query names:
// partitioning (key/stream), id_header, delivery_timeout_ms; any other name is
// a librdkafka property (for example linger.ms=5, or test.mock.num.brokers=3
// for the in-process mock cluster, with any host). Empty path: "{stream}".
// Example: "kafka://k1:9092,k2:9092/trading.{stream}?partitioning=stream".
[[nodiscard]] Result<KafkaOptions> ParseKafkaUri(std::string_view uri);

class KafkaPublisher final : public Publisher {
 public:
  // Validates the options and creates the producer (kInvalidArgument naming
  // the option or librdkafka property). Brokers need not be reachable yet.
  [[nodiscard]] static Result<std::shared_ptr<KafkaPublisher>> Create(KafkaOptions options);

  // Waits up to 1 s for records still in flight, purges the rest (their
  // publishes have already returned) and destroys the producer.
  // REQUIRES: no Publish is in progress.
  ~KafkaPublisher() override;
  KafkaPublisher(const KafkaPublisher&) = delete;
  KafkaPublisher& operator=(const KafkaPublisher&) = delete;

  Status Publish(const Event& event) override;

  // Produces every event, then waits for all their delivery reports. With
  // Order::kKeep, producing stops at the first event that cannot be queued (the
  // rest are kAborted), and an event delivered after an earlier failure is
  // reported kAborted (it is sent again after the failed one: a duplicate,
  // never a gap).
  void PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) override;

  // False from librdkafka's "all brokers down" error until a broker answers
  // again (a delivery, or the poll thread's metadata probe: the moment the
  // ready notification fires); true otherwise, including before the first
  // connection.
  std::optional<bool> IsConnected() const override;

  // The last error librdkafka reported for the client as a whole (a broker
  // connection failing, all brokers down), "" when none.
  std::string last_error() const;

 private:
  class Impl;
  explicit KafkaPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jaiminho
