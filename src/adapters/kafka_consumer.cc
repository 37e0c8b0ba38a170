#include "jaiminho/adapters/kafka_consumer.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <thread>

#include "adapters/consumer_state.h"
#include "jaiminho/inbox.h"
#include "jaiminho/logger.h"
#include "jaiminho/outbox.h"
#include "util/mutex.h"

namespace jaiminho {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// Longest time the consumer's thread waits in one poll, so that the
// destructor is prompt.
constexpr int kPollSliceMs = 100;
// How long a seek back waits for librdkafka to purge what it fetched after
// the message.
constexpr int kSeekTimeoutMs = 10'000;

// Properties the consumer sets itself: the offsets are its to commit.
constexpr const char* kOwnProperties[] = {"group.id", "enable.auto.commit", "enable.auto.offset.store"};

}  // namespace

class KafkaConsumer::Impl : public internal::ConsumerState<KafkaConsumerStats> {
 public:
  Impl(Outbox& outbox, Inbox& inbox, KafkaConsumerOptions options, Handler handler)
      : outbox_(outbox), inbox_(inbox), opt_(std::move(options)), handler_(std::move(handler)) {
    bool mock = std::any_of(opt_.config.begin(), opt_.config.end(),
                            [](const auto& kv) { return kv.first == "test.mock.num.brokers"; });
    std::string topics;
    for (const auto& t : opt_.topics)
      topics += (topics.empty() ? "" : ",") + t;
    where_ = fmt::format("Kafka consumer of group '{}' (topics {}) at {}", opt_.group_id, topics,
                         mock ? std::string("the librdkafka mock cluster") : "brokers " + opt_.bootstrap_servers);
  }

  ~Impl() {
    RequestStop();
    if (thread_.joinable()) thread_.join();
    if (rk_ != nullptr) {
      if (!closed_) rd_kafka_consumer_close(rk_);
      rd_kafka_destroy(rk_);
    }
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Creates the consumer and subscribes; kInvalidArgument for a bad property.
  Status Create();
  void StartThread() {
    thread_ = std::thread([this] { Run(); });
  }

  bool WaitAssigned(milliseconds timeout) const EXCLUDES(mu_) {
    return WaitFor(timeout, [&]() REQUIRES(mu_) { return assigned_; });
  }
  bool WaitSettled(uint64_t n, milliseconds timeout) const EXCLUDES(mu_) {
    return WaitFor(timeout, [&]() REQUIRES(mu_) { return stats_.applied + stats_.duplicates + stats_.invalid >= n; });
  }

 private:
  void Log(LogLevel level, std::string_view message, const std::string& detail, std::string_view event_id = {});
  void Run();
  // Handles one message; false when it was refused (sought back).
  bool HandleMessage(const rd_kafka_message_t& msg);
  // Seeks the message's partition back to it and counts the failure.
  void Refuse(const KafkaMessage& m, std::string why);
  void CommitOffset(const KafkaMessage& m);
  void Settled(const KafkaMessage& m, ReceiveOutcome outcome);
  std::string Where(const KafkaMessage& m) const {
    return fmt::format("{}: topic '{}' partition {} offset {}", where_, m.topic, m.partition, m.offset);
  }

  static void OnError(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    std::string why =
        fmt::format("{}: {}: {}", self->where_, rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
    self->Log(LogLevel::kWarn, "kafka consumer client error", why);
    self->SetError(std::move(why));
  }
  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque);

  Outbox& outbox_;
  Inbox& inbox_;
  const KafkaConsumerOptions opt_;
  const Handler handler_;
  std::string where_{};
  rd_kafka_t* rk_ = nullptr;
  std::thread thread_{};

  // The consumer's thread only.
  int failures_ = 0;     // messages refused in a row
  bool closed_ = false;  // kStop: left the group (then the thread ended)

  bool assigned_ GUARDED_BY(mu_) = false;
};

Status KafkaConsumer::Impl::Create() {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> props = {{"client.id", "jaiminho-consumer"},
                                                            {"auto.offset.reset", "earliest"}};
  if (!opt_.bootstrap_servers.empty()) props.emplace_back("bootstrap.servers", opt_.bootstrap_servers);
  props.insert(props.end(), opt_.config.begin(), opt_.config.end());
  props.emplace_back("group.id", opt_.group_id);
  props.emplace_back("enable.auto.commit", "false");
  props.emplace_back("enable.auto.offset.store", "false");
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("KafkaConsumerOptions::config: {}={}: {}", k, v, errstr));
    }
  }
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_error_cb(conf, &Impl::OnError);
  rd_kafka_conf_set_rebalance_cb(conf, &Impl::OnRebalance);
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: cannot create the consumer: {}", where_, errstr));
  }
  rd_kafka_poll_set_consumer(rk_);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(static_cast<int>(opt_.topics.size()));
  for (const auto& t : opt_.topics)
    rd_kafka_topic_partition_list_add(topics, t.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: subscribe failed: {}", where_, rd_kafka_err2str(err)));
  }
  return {};
}

void KafkaConsumer::Impl::OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                                      void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
  const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (cooperative) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, parts); e != nullptr) rd_kafka_error_destroy(e);
    } else {
      rd_kafka_assign(rk, parts);
    }
    std::string list;
    for (int i = 0; i < parts->cnt; ++i)
      list += fmt::format("{}{}[{}]", i == 0 ? "" : ", ", parts->elems[i].topic, parts->elems[i].partition);
    self->Log(LogLevel::kInfo, "kafka consumer assigned", list);
    internal::MutexLock l(self->mu_);
    self->assigned_ = self->assigned_ || parts->cnt > 0;
    self->cv_.SignalAll();
    return;
  }
  // Revoked (or an error): nothing is pending, each offset was committed after its message.
  if (cooperative) {
    if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts); e != nullptr) rd_kafka_error_destroy(e);
  } else {
    rd_kafka_assign(rk, nullptr);
  }
  internal::MutexLock l(self->mu_);
  if (!cooperative) self->assigned_ = false;
  self->cv_.SignalAll();
}

void KafkaConsumer::Impl::Log(LogLevel level, std::string_view message, const std::string& detail,
                              std::string_view event_id) {
  if (!opt_.logger || !opt_.logger->Enabled(level)) return;
  LogRecord r;
  r.level = level;
  r.message = message;
  r.event_id = event_id;
  r.fields.emplace_back("group", opt_.group_id);
  r.fields.emplace_back("detail", detail);
  try {
    opt_.logger->Log(r);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a logger must not throw (logger.h); dropped
  }
}

void KafkaConsumer::Impl::Run() {
  while (!stopping()) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk_, kPollSliceMs);
    if (msg == nullptr) continue;
    bool refused = false;
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::string why = msg->rkt != nullptr
                              ? fmt::format("{}: topic '{}' partition {}: {}", where_, rd_kafka_topic_name(msg->rkt),
                                            msg->partition, rd_kafka_message_errstr(msg))
                              : fmt::format("{}: {}", where_, rd_kafka_message_errstr(msg));
        Log(LogLevel::kWarn, "kafka consumer error", why);
        SetError(std::move(why));
      }
    } else {
      refused = !HandleMessage(*msg);
    }
    rd_kafka_message_destroy(msg);
    if (!refused) {
      continue;
    }
    if (opt_.on_failure == KafkaFailurePolicy::kStop) {
      // Leaves the group without committing: the group's next consumer
      // starts at the refused message.
      rd_kafka_consumer_close(rk_);
      closed_ = true;
      internal::MutexLock l(mu_);
      stopped_ = true;
      cv_.SignalAll();
      return;
    }
    // Retry pace (a backoff, not a wait for an event): doubling from
    // retry_min while messages keep being refused.
    ++failures_;
    Backoff(failures_, opt_.retry_min, opt_.retry_max);
  }
}

bool KafkaConsumer::Impl::HandleMessage(const rd_kafka_message_t& msg) {
  KafkaMessage m;
  m.topic = rd_kafka_topic_name(msg.rkt);
  m.partition = msg.partition;
  m.offset = msg.offset;
  m.key = msg.key != nullptr ? std::string_view(static_cast<const char*>(msg.key), msg.key_len) : std::string_view();
  m.payload =
      msg.payload != nullptr ? std::string_view(static_cast<const char*>(msg.payload), msg.len) : std::string_view();
  rd_kafka_headers_t* hdrs = nullptr;
  // rd_kafka_message_headers takes a non-const message (it parses them lazily).
  if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(&msg), &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
      m.headers.emplace_back(name, value != nullptr ? std::string(static_cast<const char*>(value), size) : "");
    }
  }
  const std::string* raw = nullptr;
  for (const auto& [n, v] : m.headers) {
    if (n == opt_.id_header) {
      raw = &v;
      break;
    }
  }
  auto invalid = [&](const std::string& why) {
    Log(LogLevel::kWarn, "kafka message skipped", fmt::format("{}: {}; offset committed", Where(m), why));
    {
      internal::MutexLock l(mu_);
      ++stats_.invalid;
    }
    failures_ = 0;
    CommitOffset(m);
    return true;
  };
  if (raw == nullptr) return invalid(fmt::format("no header '{}'", opt_.id_header));
  m.raw_id = *raw;
  auto id = Inbox::ParseEventId(m.raw_id);
  if (!id) return invalid(id.error().ToString());
  m.id = *id;

  Transaction txn = outbox_.Begin();
  auto outcome = inbox_.Receive(txn, m.id);
  if (!outcome) {
    Refuse(m, fmt::format("{}: event {} not committed: {}", Where(m), m.raw_id, outcome.error().ToString()));
    return false;
  }
  switch (*outcome) {
    case ReceiveOutcome::kDuplicate: {
      {
        internal::MutexLock l(mu_);
        ++stats_.duplicates;
      }
      failures_ = 0;
      Settled(m, ReceiveOutcome::kDuplicate);
      CommitOffset(m);
      return true;
    }
    case ReceiveOutcome::kOutOfOrder:
    case ReceiveOutcome::kInFlight:
      Refuse(m, fmt::format("{}: event {} not committed: inbox says {}", Where(m), m.raw_id, ToString(*outcome)));
      return false;
    case ReceiveOutcome::kNew:
      break;
  }
  Status handled;
  try {
    handled = handler_(m, txn);
  } catch (const std::exception& e) {
    handled = MakeError(ErrorCode::kInternal, fmt::format("handler threw: {}", e.what()));
  } catch (...) {
    handled = MakeError(ErrorCode::kInternal, "handler threw a non-standard exception");
  }
  if (!handled) {
    Refuse(m, fmt::format("{}: event {} not committed: handler failed: {}", Where(m), m.raw_id,
                          handled.error().ToString()));
    return false;
  }
  if (auto committed = txn.Commit(); !committed) {
    Refuse(m, fmt::format("{}: event {} not committed: commit failed: {}", Where(m), m.raw_id,
                          committed.error().ToString()));
    return false;
  }
  failures_ = 0;
  Settled(m, ReceiveOutcome::kNew);
  {
    internal::MutexLock l(mu_);
    ++stats_.applied;
    last_error_.clear();
  }
  CommitOffset(m);
  internal::MutexLock l(mu_);
  cv_.SignalAll();
  return true;
}

void KafkaConsumer::Impl::CommitOffset(const KafkaMessage& m) {
  const std::string topic(m.topic);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), m.partition)->offset = m.offset + 1;
  rd_kafka_resp_err_t err = rd_kafka_commit(rk_, list, /*async=*/0);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) err = list->elems[0].err;
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::string why = fmt::format(
        "{}: committing offset {} failed (the message will be read again and dropped by "
        "the inbox): {}",
        Where(m), m.offset + 1, rd_kafka_err2str(err));
    Log(LogLevel::kWarn, "kafka offset commit failed", why, m.raw_id);
    internal::MutexLock l(mu_);
    ++stats_.offset_commit_failures;
    last_error_ = std::move(why);
  }
  internal::MutexLock l(mu_);
  cv_.SignalAll();
}

void KafkaConsumer::Impl::Refuse(const KafkaMessage& m, std::string why) {
  const std::string topic(m.topic);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), m.partition)->offset = m.offset;
  rd_kafka_error_t* error = rd_kafka_seek_partitions(rk_, list, kSeekTimeoutMs);
  if (error != nullptr) {
    why += fmt::format("; seeking back to offset {} failed: {}", m.offset, rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  } else if (list->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    why += fmt::format("; seeking back to offset {} failed: {}", m.offset, rd_kafka_err2str(list->elems[0].err));
  }
  rd_kafka_topic_partition_list_destroy(list);
  Log(LogLevel::kError, "kafka message not committed", why, m.raw_id);
  internal::MutexLock l(mu_);
  ++stats_.not_committed;
  last_error_ = std::move(why);
}

void KafkaConsumer::Impl::Settled(const KafkaMessage& m, ReceiveOutcome outcome) {
  if (!opt_.on_outcome) return;
  try {
    opt_.on_outcome(m, outcome);
  } catch (...) {  // NOLINT(bugprone-empty-catch): must not throw (the header); dropped
  }
}

KafkaConsumer::KafkaConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaConsumer::~KafkaConsumer() = default;

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Start(Outbox& outbox, Inbox& inbox, KafkaConsumerOptions o,
                                                            Handler handler) {
  auto invalid = [](const std::string& msg) {
    return MakeError(ErrorCode::kInvalidArgument, "KafkaConsumerOptions::" + msg);
  };
  const bool mock =
      std::any_of(o.config.begin(), o.config.end(), [](const auto& kv) { return kv.first == "test.mock.num.brokers"; });
  if (o.bootstrap_servers.empty() && !mock) return invalid("bootstrap_servers is empty");
  if (o.group_id.empty()) return invalid("group_id is empty: committed offsets belong to a consumer group");
  if (o.topics.empty()) return invalid("topics is empty");
  for (const auto& t : o.topics) {
    if (t.empty()) return invalid("topics: an empty topic name");
  }
  if (o.id_header.empty()) return invalid("id_header is empty");
  if (o.retry_min <= milliseconds(0) || o.retry_max < o.retry_min) {
    return invalid(fmt::format("retry_min = {} ms, retry_max = {} ms: need 0 < min <= max", o.retry_min.count(),
                               o.retry_max.count()));
  }
  if (o.on_failure != KafkaFailurePolicy::kRetry && o.on_failure != KafkaFailurePolicy::kStop) {
    return invalid("on_failure is not a KafkaFailurePolicy");
  }
  for (const auto& [k, v] : o.config) {
    for (const char* own : kOwnProperties) {
      if (k == own) {
        return invalid(
            fmt::format("config: {} is set by the consumer (group_id; offsets are committed after the "
                        "inbox commit)",
                        k));
      }
    }
  }
  if (!handler) return MakeError(ErrorCode::kInvalidArgument, "KafkaConsumer::Start: the handler is empty");
  auto impl = std::make_unique<Impl>(outbox, inbox, std::move(o), std::move(handler));
  if (Status s = impl->Create(); !s) return tl::unexpected(s.error());
  impl->StartThread();
  return std::unique_ptr<KafkaConsumer>(new KafkaConsumer(std::move(impl)));
}

ReceivedEvent KafkaConsumer::ToReceivedEvent(const KafkaMessage& m) {
  ReceivedEvent e{
      .id = m.id, .raw_id = m.raw_id, .key = m.key, .payload = m.payload, .topic = m.topic, .headers = m.headers};
  for (const auto& [name, value] : m.headers) {
    if (name == "jaiminho-type") {
      e.type = value;
    } else if (name == "content-type") {
      e.encoding = value;
    }
  }
  return e;
}

Result<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Start(Outbox& outbox, Inbox& inbox, KafkaConsumerOptions o,
                                                            ConsumerHandlers handlers) {
  return Start(outbox, inbox, std::move(o), [handlers = std::move(handlers)](const KafkaMessage& m, Transaction& txn) {
    return handlers.Handle(ToReceivedEvent(m), txn);
  });
}

KafkaConsumerStats KafkaConsumer::stats() const {
  return impl_->stats();
}
std::string KafkaConsumer::last_error() const {
  return impl_->last_error();
}
bool KafkaConsumer::stopped() const {
  return impl_->stopped();
}
bool KafkaConsumer::WaitAssigned(std::chrono::milliseconds timeout) const {
  return impl_->WaitAssigned(timeout);
}
bool KafkaConsumer::WaitApplied(uint64_t n, std::chrono::milliseconds timeout) const {
  return impl_->WaitApplied(n, timeout);
}
bool KafkaConsumer::WaitSettled(uint64_t n, std::chrono::milliseconds timeout) const {
  return impl_->WaitSettled(n, timeout);
}

}  // namespace jaiminho
