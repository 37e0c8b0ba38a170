// KafkaConsumer: consumes events that a KafkaPublisher (jaiminho/adapters/kafka.h)
// delivered to Kafka and applies each one's effect exactly once, by recording
// its id in an Inbox (jaiminho/inbox.h) in the same transaction as the
// handler's business writes; the consumer group's offset is committed only
// after that transaction. Part of jaiminho::kafka (JAIMINHO_WITH_KAFKA).
//
//   auto outbox = jaiminho::Outbox::Open({.path = "var/risk.db", .business_families = {{.name = "fills"}}});
//   auto inbox = jaiminho::Inbox::Open(**outbox, {.keep_order_streams = {"fills"}});
//   jaiminho::BusinessFamily fills = *(*outbox)->FindBusinessFamily("fills");
//   auto consumer = jaiminho::KafkaConsumer::Start(**outbox, **inbox,
//       {.bootstrap_servers = "k1:9092,k2:9092", .group_id = "risk", .topics = {"trading.fills"}},
//       [&](const jaiminho::KafkaMessage& m, jaiminho::Transaction& txn) -> jaiminho::Status {
//         return txn.Put(fills, m.raw_id, m.payload);     // business writes go into txn
//       });
//   if (!consumer) { std::cerr << consumer.error().ToString() << "\n"; return 1; }
//
// Group and offsets. The consumer joins the consumer group group_id, subscribes
// to `topics`, and runs with enable.auto.commit=false and
// enable.auto.offset.store=false: librdkafka never commits an offset by
// itself. A partition without a committed offset starts at
// auto.offset.reset (default here: earliest, so that nothing published before
// the group's first run is skipped; the inbox drops what was applied before).
//
// Per message, on the consumer's thread, in the order of each partition:
//   1. the event id is read from the header named id_header (where
//      KafkaPublisher puts EventId::ToString(); the record key is the event's
//      key, not its id); a message without a valid id is skipped and its
//      offset committed, counted in KafkaConsumerStats::invalid and logged
//      with its topic, partition and offset;
//   2. a Transaction is begun on the Outbox and Inbox::Receive records the id:
//      kDuplicate: handler not run, offset committed (KafkaConsumerStats::duplicates);
//      kNew: the handler adds its writes to the transaction, then Commit;
//   3. only after the commit is durable (as Outbox's sync mode makes it),
//      on_outcome is called and then the offset (the message's + 1) is
//      committed to the group coordinator, synchronously (rd_kafka_commit,
//      async = 0), one commit per message. A process that dies between 2 and
//      3 re-reads the message from the last committed offset; the inbox says
//      kDuplicate and the handler does not run again. A failed offset commit
//      is therefore only logged (last_error(), KafkaConsumerStats::
//      offset_commit_failures): the next commit covers it, and a redelivery
//      is harmless.
//   Not committed (see "Failures"): kOutOfOrder (keep-order stream,
//   InboxOptions::keep_order_streams), kInFlight (another transaction of this
//   Inbox holds the id), a Receive error, a handler that returns an error (or
//   throws), a failed Commit.
//
// Failures. The offset of such a message is not committed, and the consumer
// seeks its partition back to the message (rd_kafka_seek_partitions, waiting
// until the messages fetched after it are purged), so that the next poll
// returns it again. Then, per KafkaConsumerOptions::on_failure:
//   kRetry (default): it waits retry_min before polling again, doubling up to
//     retry_max while failures repeat (reset by the next message applied or
//     dropped); a handler that keeps failing on a message holds its partition
//     (a poison message; other partitions go on between retries) and
//     last_error() says why;
//   kStop: it stops consuming and leaves the group without committing;
//     stopped() becomes true and last_error() names the event, the topic,
//     partition and offset, and the error. The group's next consumer starts
//     at the message.
// A keep-order stream whose next seq is not in the partition before the
// following ones (published out of order, or to another partition: use
// KafkaPartitioning::kByStream for a keep-order stream) therefore stops at the
// hole, kOutOfOrder each time, until an operator acts.
//
// Rebalances. Offsets are committed after each message, so a partition
// revoked from this consumer has nothing of it pending; the message in
// progress when a rebalance happens commits its offset for a partition the
// consumer may no longer own (the coordinator refuses it: logged), and its
// new owner re-reads the message and the inbox drops it, as long as both
// consumers share one Inbox database (one database per consumer group
// member breaks exactly-once across members: give each member its own
// partitions' events, or share the database).
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
struct KafkaMessage {
  std::string_view topic{};
  int32_t partition = 0;
  int64_t offset = 0;
  std::string_view key{};                                      // the event key ("" when the record has none)
  std::string_view payload{};                                  // the record value
  std::vector<std::pair<std::string, std::string>> headers{};  // every header, the id's included
  std::string_view raw_id{};                                   // EventId::ToString()
  EventId id{};                                                // parsed; its stream points into raw_id
};

enum class KafkaFailurePolicy : uint8_t {
  kRetry = 1,  // seek back to the message and poll it again after a backoff
  kStop = 2,   // seek back, then stop consuming and leave the group
};

struct KafkaConsumerOptions {
  // Comma-separated host:port list (librdkafka's bootstrap.servers). Required
  // unless `config` sets test.mock.num.brokers.
  std::string bootstrap_servers{};
  // Consumer group (group.id): the committed offsets are the group's. Required.
  std::string group_id{};
  // Topics subscribed to (names; a name starting with '^' is a regex, as
  // librdkafka takes it). At least one; none empty.
  std::vector<std::string> topics{};
  // Name of the header carrying the event id; KafkaOptions::id_header of the
  // publisher. Default: "jaiminho-event-id".
  std::string id_header = "jaiminho-event-id";
  // Delay before polling a message again after a failure (see the class
  // comment), doubled while failures repeat. 0 < retry_min <= retry_max.
  // Default: 100 ms to 10 s.
  std::chrono::milliseconds retry_min = std::chrono::milliseconds(100);
  std::chrono::milliseconds retry_max = std::chrono::seconds(10);
  // What a message whose offset cannot be committed does. Default: kRetry.
  KafkaFailurePolicy on_failure = KafkaFailurePolicy::kRetry;
  // Further librdkafka configuration properties, applied after the defaults
  // set here (client.id=jaiminho-consumer, auto.offset.reset=earliest) and
  // before the ones the consumer needs (group.id, enable.auto.commit=false,
  // enable.auto.offset.store=false, which cannot be overridden: setting them
  // here fails Start). An unknown property or invalid value fails Start with
  // kInvalidArgument naming it. Example: {"session.timeout.ms", "10000"}.
  std::vector<std::pair<std::string, std::string>> config{};
  // Called on the consumer's thread once a message is settled, before its
  // offset is committed: kNew after its inbox commit, kDuplicate when it is
  // dropped without the handler (for metrics, tracing). Must not throw.
  // Default: none.
  std::function<void(const KafkaMessage&, ReceiveOutcome)> on_outcome{};
  // Where failures, invalid messages and client errors are logged. Default: none.
  std::shared_ptr<Logger> logger{};
};

struct KafkaConsumerStats {
  uint64_t applied = 0;                 // kNew: handler run and committed
  uint64_t duplicates = 0;              // kDuplicate: offset committed without the handler
  uint64_t invalid = 0;                 // no or a bad event id: skipped, offset committed
  uint64_t not_committed = 0;           // out of order, in flight, handler or commit failure: sought back
  uint64_t offset_commit_failures = 0;  // offset commits the coordinator refused or that failed (logged)
};

class KafkaConsumer {
 public:
  // Adds the handler's writes for a kNew message to `txn`. An error (or an
  // exception) aborts the message: nothing of it is committed, nor its offset.
  // Must not Commit or Clear `txn`.
  using Handler = std::function<Status(const KafkaMessage& message, Transaction& txn)>;

  // Validates the options (kInvalidArgument naming the option or librdkafka
  // property), creates the consumer, subscribes and starts the consumer's
  // thread. Succeeds while the brokers are down: librdkafka keeps trying (see
  // last_error()).
  [[nodiscard]] static Result<std::unique_ptr<KafkaConsumer>> Start(Outbox& outbox, Inbox& inbox,
                                                                    KafkaConsumerOptions options, Handler handler);
  // The same with typed handlers, one per event type (jaiminho/consumer_handlers.h;
  // the consumer takes a copy): the type is read from the header
  // "jaiminho-type" and the encoding from "content-type" (where KafkaPublisher
  // puts them); a message the handlers refuse (unknown type, wrong encoding,
  // undecodable payload) is not committed, as a handler error.
  [[nodiscard]] static Result<std::unique_ptr<KafkaConsumer>> Start(Outbox& outbox, Inbox& inbox,
                                                                    KafkaConsumerOptions options,
                                                                    ConsumerHandlers handlers);
  // The event a message carries, as ConsumerHandlers see it.
  static ReceivedEvent ToReceivedEvent(const KafkaMessage& message);

  // Lets the message in progress finish (commit or not, and its offset),
  // stops, leaves the group (rd_kafka_consumer_close) and joins the thread.
  // Messages fetched but not handled have no committed offset: the group's
  // next consumer reads them.
  ~KafkaConsumer();
  KafkaConsumer(const KafkaConsumer&) = delete;
  KafkaConsumer& operator=(const KafkaConsumer&) = delete;

  KafkaConsumerStats stats() const;
  // The last error: a client error (brokers down), a message not committed
  // (names the event, topic, partition, offset and the error), a failed offset
  // commit; cleared when a message is applied. "" when none.
  std::string last_error() const;
  // True once the consumer gave up (KafkaFailurePolicy::kStop).
  bool stopped() const;
  // Blocks until the group assigned this consumer at least one partition;
  // false after `timeout`.
  bool WaitAssigned(std::chrono::milliseconds timeout) const;
  // Blocks until stats().applied >= n (or stopped()); false after `timeout`.
  bool WaitApplied(uint64_t n, std::chrono::milliseconds timeout) const;
  // Blocks until stats().applied + duplicates + invalid >= n (every one with
  // its offset commit attempted) or stopped(); false after `timeout`.
  bool WaitSettled(uint64_t n, std::chrono::milliseconds timeout) const;

 private:
  class Impl;
  explicit KafkaConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jaiminho
