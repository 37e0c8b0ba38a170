#include "jaiminho/adapters/kafka.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>
#include <utility>

#include "adapters/uri.h"
#include "jaiminho/adapters/topic.h"
#include "util/mutex.h"

namespace jaiminho {
namespace {

using std::chrono::milliseconds;

// Extra wait beyond delivery_timeout for a delivery report while some broker
// is up (librdkafka reports a record by then). With every broker down it is
// not waited: librdkafka may then hold a record past message.timeout.ms (the
// idempotent producer's queue for a partition whose leader is down), and the
// publish fails at delivery_timeout.
constexpr milliseconds kReportGrace(5000);
// How often a wait past delivery_timeout checks whether every broker is down.
constexpr milliseconds kDownCheck(50);

// The delivery reports of one PublishBatch call.
struct BatchState {
  explicit BatchState(size_t n) : results(n), done(n, 0) {}
  internal::Mutex mu;
  internal::CondVar cv;
  size_t outstanding GUARDED_BY(mu) = 0;
  std::vector<Status> results GUARDED_BY(mu){};
  std::vector<char> done GUARDED_BY(mu){};
  void Set(size_t i, Status s) REQUIRES(mu) {
    results[i] = std::move(s);
    done[i] = 1;
  }
};

// librdkafka's per-message opaque: owned by the record from a successful
// produce until its delivery report, which deletes it. The batch is shared so
// that a report arriving after its publisher gave up waiting stays harmless.
struct Pending {
  std::shared_ptr<BatchState> batch;
  size_t index;
  std::string id;
  std::string stream;
};

bool PermanentError(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return true;
    default:
      return false;
  }
}

bool ValidTopic(std::string_view t) {
  if (t.empty() || t.size() > 249 || t == "." || t == "..") return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

int32_t PartitionByStream(const rd_kafka_topic_t* rkt, const void* /*key*/, size_t /*keylen*/, int32_t partition_cnt,
                          void* rkt_opaque, void* msg_opaque) {
  const auto* p = static_cast<const Pending*>(msg_opaque);
  return rd_kafka_msg_partitioner_murmur2(rkt, p->stream.data(), p->stream.size(), partition_cnt, rkt_opaque, nullptr);
}

}  // namespace

Result<KafkaOptions> ParseKafkaUri(std::string_view text) {
  auto uri = internal::ParseUri(text, "kafka");
  if (!uri) return tl::unexpected(uri.error());
  if (uri->has_userinfo) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'{}': give credentials as librdkafka properties (sasl.username=...)", text));
  }
  KafkaOptions o;
  std::string_view hosts = uri->authority;
  while (!hosts.empty()) {
    size_t comma = hosts.find(',');
    auto hp = internal::SplitHostPort(hosts.substr(0, comma), 9092);
    if (!hp) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': {}", text, hp.error().message()));
    if (!o.bootstrap_servers.empty()) o.bootstrap_servers += ",";
    bool v6 = hp->first.find(':') != std::string::npos;
    o.bootstrap_servers +=
        v6 ? fmt::format("[{}]:{}", hp->first, hp->second) : fmt::format("{}:{}", hp->first, hp->second);
    hosts = comma == std::string_view::npos ? std::string_view() : hosts.substr(comma + 1);
  }
  if (!uri->path.empty()) o.topic = uri->path;
  for (const auto& [name, value] : uri->query) {
    if (name == "partitioning") {
      if (value == "key") {
        o.partitioning = KafkaPartitioning::kByKey;
      } else if (value == "stream") {
        o.partitioning = KafkaPartitioning::kByStream;
      } else {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("'{}': partitioning '{}': expected 'key' or 'stream'", text, value));
      }
    } else if (name == "id_header") {
      o.id_header = value;
    } else if (name == "delivery_timeout_ms") {
      auto n = internal::ParseNumber(value, 1, 86'400'000, fmt::format("'{}': delivery_timeout_ms", text));
      if (!n) return tl::unexpected(n.error());
      o.delivery_timeout = milliseconds(*n);
    } else {
      o.config.emplace_back(name, value);
    }
  }
  return o;
}

class KafkaPublisher::Impl {
 public:
  Impl(KafkaOptions options, TopicTemplate topic) : opt_(std::move(options)), topic_(std::move(topic)) {
    for (const auto& [k, v] : opt_.config) {
      if (k == "test.mock.num.brokers") mock_ = true;
    }
    where_ = mock_ ? "the librdkafka mock cluster" : fmt::format("Kafka brokers {}", opt_.bootstrap_servers);
  }

  ~Impl() {
    stop_ = true;
    if (poller_.joinable()) poller_.join();
    std::shared_ptr<Handle> h;
    {
      internal::MutexLock l(mu_);
      h = std::move(handle_);
    }
    // Destroyed here, outside mu_: destroying serves delivery reports, whose
    // callback takes mu_.
  }

  // `on_ready` is called when a broker answers again after all were down.
  Status Start(std::function<void()> on_ready) {
    on_ready_ = std::move(on_ready);
    auto h = NewHandle();
    if (!h) return tl::unexpected(h.error());
    {
      internal::MutexLock l(mu_);
      handle_ = std::move(*h);
    }
    poller_ = std::thread([this] { Poll(); });
    return {};
  }

  void PublishBatch(std::span<const Event> events, Order order, std::span<Status> results);

  std::string last_error() const {
    internal::MutexLock l(mu_);
    return last_error_;
  }

  // False from librdkafka's all-brokers-down error until a broker answers.
  bool connected() const { return !brokers_down_; }

 private:
  // One librdkafka producer. Shared by the publishes using it and the poll
  // thread; the last one to let go destroys it (a fatal error replaces it).
  struct Handle {
    rd_kafka_t* rk = nullptr;
    ~Handle() {
      if (rk == nullptr) return;
      rd_kafka_flush(rk, 1000);
      rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(rk, 1000);  // serves the purged records' reports
      rd_kafka_destroy(rk);
    }
  };

  Result<std::shared_ptr<Handle>> NewHandle();
  // The current producer; replaces it first when it hit a fatal error, and
  // then says why in *replaced.
  std::shared_ptr<Handle> Current(std::string* replaced);
  void Poll();
  Status Produce(rd_kafka_t* rk, const Event& event, const std::shared_ptr<BatchState>& batch, size_t index);
  std::string Context() const;

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);
  static void OnError(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) self->brokers_down_ = true;
    internal::MutexLock l(self->mu_);
    self->last_error_ = fmt::format("{}: {}", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
  }
  // Called by the poll thread: after all brokers were down, a broker that
  // answers (a delivery, or a metadata probe) makes the publisher ready.
  void BrokerAnswered() {
    if (brokers_down_.exchange(false)) on_ready_();
  }

  const KafkaOptions opt_;
  const TopicTemplate topic_;
  bool mock_ = false;
  std::string where_{};
  std::atomic<bool> stop_{false};
  mutable internal::Mutex mu_;
  std::shared_ptr<Handle> handle_ GUARDED_BY(mu_){};
  std::string last_error_ GUARDED_BY(mu_){};
  std::thread poller_{};
  std::atomic<bool> brokers_down_{false};
  std::function<void()> on_ready_{};  // set before the poll thread starts
};

Result<std::shared_ptr<KafkaPublisher::Impl::Handle>> KafkaPublisher::Impl::NewHandle() {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_topic_conf_t* tconf = rd_kafka_topic_conf_new();
  auto fail = [&](std::string msg) {
    rd_kafka_conf_destroy(conf);
    if (tconf != nullptr) rd_kafka_topic_conf_destroy(tconf);
    return MakeError(ErrorCode::kInvalidArgument, std::move(msg));
  };
  std::vector<std::pair<std::string, std::string>> props = {
      {"client.id", "jaiminho"},
      {"enable.idempotence", "true"},
      {"linger.ms", "0"},
      {"message.timeout.ms", std::to_string(opt_.delivery_timeout.count())},
  };
  if (!opt_.bootstrap_servers.empty()) props.emplace_back("bootstrap.servers", opt_.bootstrap_servers);
  props.insert(props.end(), opt_.config.begin(), opt_.config.end());
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      return fail(fmt::format("KafkaOptions::config: {}={}: {}", k, v, errstr));
    }
  }
  if (opt_.partitioning == KafkaPartitioning::kByStream) {
    rd_kafka_topic_conf_set_partitioner_cb(tconf, &PartitionByStream);
  } else if (rd_kafka_topic_conf_set(tconf, "partitioner", "murmur2_random", errstr, sizeof errstr) !=
             RD_KAFKA_CONF_OK) {
    return fail(fmt::format("KafkaOptions: partitioner: {}", errstr));
  }
  rd_kafka_conf_set_default_topic_conf(conf, tconf);
  tconf = nullptr;
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_dr_msg_cb(conf, &Impl::OnDelivery);
  rd_kafka_conf_set_error_cb(conf, &Impl::OnError);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == nullptr) return fail(fmt::format("KafkaOptions: cannot create the producer: {}", errstr));
  auto h = std::make_shared<Handle>();
  h->rk = rk;
  return h;
}

std::shared_ptr<KafkaPublisher::Impl::Handle> KafkaPublisher::Impl::Current(std::string* replaced) {
  // The old producer is destroyed outside mu_: destroying serves delivery
  // reports, whose callback takes mu_.
  std::shared_ptr<Handle> old;
  internal::MutexLock l(mu_);
  char reason[512];
  rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(handle_->rk, reason, sizeof reason);
  if (fatal != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // The idempotent producer cannot go on after a fatal error: start afresh.
    auto h = NewHandle();
    if (h) {
      *replaced = fmt::format("producer replaced after a fatal error: {}", reason);
      old = std::exchange(handle_, std::move(*h));
    }
  }
  return handle_;
}

void KafkaPublisher::Impl::Poll() {
  while (!stop_) {
    std::shared_ptr<Handle> h;
    {
      internal::MutexLock l(mu_);
      h = handle_;
    }
    // Serves delivery reports as they come; the timeout only bounds how long
    // a stop waits.
    rd_kafka_poll(h->rk, 100);
    if (brokers_down_) {
      // Probes the cluster (metadata of no topic) until a broker answers.
      const struct rd_kafka_metadata* md = nullptr;
      if (rd_kafka_metadata(h->rk, 0, nullptr, &md, 200) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        BrokerAnswered();
      }
    }
  }
}

std::string KafkaPublisher::Impl::Context() const {
  internal::MutexLock l(mu_);
  return last_error_.empty() ? fmt::format(" ({})", where_)
                             : fmt::format(" ({}; last client error: {})", where_, last_error_);
}

void KafkaPublisher::Impl::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
  std::unique_ptr<Pending> p(static_cast<Pending*>(msg->_private));
  Status st;
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) self->BrokerAnswered();
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ErrorCode code = PermanentError(msg->err) ? ErrorCode::kRejected : ErrorCode::kUnavailable;
    st = MakeError(code, fmt::format("Kafka delivery of event {} to topic '{}' failed: {}{}", p->id,
                                     rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err), self->Context()));
  }
  internal::MutexLock l(p->batch->mu);
  p->batch->Set(p->index, std::move(st));
  --p->batch->outstanding;
  p->batch->cv.SignalAll();
}

Status KafkaPublisher::Impl::Produce(rd_kafka_t* rk, const Event& e, const std::shared_ptr<BatchState>& batch,
                                     size_t index) {
  std::string topic = topic_.Expand(e);
  std::string id = e.id.ToString();
  if (!ValidTopic(topic)) {
    return MakeError(ErrorCode::kRejected,
                     fmt::format("event {}: '{}' (from template '{}') is not a valid Kafka topic name "
                                 "([A-Za-z0-9._-]{{1,249}})",
                                 id, topic, topic_.text()));
  }
  rd_kafka_headers_t* headers = rd_kafka_headers_new(3 + e.headers.size());
  rd_kafka_header_add(headers, opt_.id_header.data(), static_cast<ssize_t>(opt_.id_header.size()), id.data(),
                      static_cast<ssize_t>(id.size()));
  rd_kafka_header_add(headers, "jaiminho-type", -1, e.type.data(), static_cast<ssize_t>(e.type.size()));
  if (!e.encoding.empty()) {
    rd_kafka_header_add(headers, "content-type", -1, e.encoding.data(), static_cast<ssize_t>(e.encoding.size()));
  }
  for (const Header& h : e.headers) {
    rd_kafka_header_add(headers, h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                        static_cast<ssize_t>(h.value.size()));
  }
  auto pending = std::make_unique<Pending>(Pending{batch, index, id, std::string(e.id.stream)});
  std::vector<rd_kafka_vu_t> vus(7);
  size_t n = 0;
  vus[n].vtype = RD_KAFKA_VTYPE_TOPIC;
  vus[n++].u.cstr = topic.c_str();
  vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[n++].u.mem = {const_cast<char*>(e.payload.data()), e.payload.size()};
  if (!e.key.empty()) {
    vus[n].vtype = RD_KAFKA_VTYPE_KEY;
    vus[n++].u.mem = {const_cast<char*>(e.key.data()), e.key.size()};
  }
  vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vus[n++].u.i = RD_KAFKA_MSG_F_COPY;
  vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vus[n++].u.ptr = pending.get();
  vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
  vus[n++].u.headers = headers;
  if (int64_t ms = ToMicros(e.created_at) / 1000; ms > 0) {
    vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    vus[n++].u.i64 = ms;
  }
  {
    internal::MutexLock l(batch->mu);
    ++batch->outstanding;
  }
  rd_kafka_error_t* error = rd_kafka_produceva(rk, vus.data(), n);
  if (error == nullptr) {
    (void)pending.release();  // owned by the record until its delivery report
    return {};
  }
  rd_kafka_resp_err_t code = rd_kafka_error_code(error);
  std::string what = rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  rd_kafka_headers_destroy(headers);
  {
    internal::MutexLock l(batch->mu);
    --batch->outstanding;
  }
  return MakeError(PermanentError(code) ? ErrorCode::kRejected : ErrorCode::kUnavailable,
                   fmt::format("cannot produce event {} to Kafka topic '{}': {}{}", id, topic, what, Context()));
}

void KafkaPublisher::Impl::PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) {
  const size_t n = events.size();
  std::string replaced;
  std::shared_ptr<Handle> h = Current(&replaced);
  auto batch = std::make_shared<BatchState>(n);
  bool stopped = false;
  for (size_t i = 0; i < n; ++i) {
    Status st = stopped ? tl::unexpected(AbortedError()) : Produce(h->rk, events[i], batch, i);
    if (!st) {
      internal::MutexLock l(batch->mu);
      batch->Set(i, std::move(st));
      if (order == Order::kKeep) stopped = true;
    }
  }
  std::vector<Status> out;
  {
    internal::MutexLock l(batch->mu);
    const auto start = std::chrono::steady_clock::now();
    const auto timeout_at = start + opt_.delivery_timeout;
    const auto deadline = timeout_at + kReportGrace;
    bool all_down = false;
    while (batch->outstanding != 0) {
      const auto now = std::chrono::steady_clock::now();
      all_down = now >= timeout_at && brokers_down_;
      if (now >= deadline || all_down) break;
      batch->cv.WaitUntil(batch->mu, now < timeout_at ? timeout_at : std::min(deadline, now + kDownCheck));
    }
    const auto waited = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    for (size_t i = 0; i < n; ++i) {
      if (!batch->done[i]) {
        batch->Set(i, MakeError(ErrorCode::kUnavailable,
                                fmt::format("no delivery report for event {} within {} ms{}{}", events[i].id.ToString(),
                                            waited.count(), all_down ? ", every broker down" : "", Context())));
      }
    }
    out = batch->results;
  }
  bool failed = false;
  for (size_t i = 0; i < n; ++i) {
    if (failed && order == Order::kKeep && out[i]) {
      results[i] = MakeError(ErrorCode::kAborted,
                             fmt::format("event {} was delivered after an earlier event of the ordered batch "
                                         "failed; it will be sent again",
                                         events[i].id.ToString()));
      continue;
    }
    results[i] = std::move(out[i]);
    if (!results[i]) {
      failed = true;
      if (!replaced.empty()) {
        results[i] = MakeError(results[i].error().code(), results[i].error().message() + "; " + replaced);
      }
    }
  }
}

KafkaPublisher::KafkaPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KafkaPublisher::~KafkaPublisher() = default;

Result<std::shared_ptr<KafkaPublisher>> KafkaPublisher::Create(KafkaOptions o) {
  auto invalid = [](const std::string& msg) { return MakeError(ErrorCode::kInvalidArgument, "KafkaOptions::" + msg); };
  bool mock =
      std::any_of(o.config.begin(), o.config.end(), [](const auto& kv) { return kv.first == "test.mock.num.brokers"; });
  if (o.bootstrap_servers.empty() && !mock) return invalid("bootstrap_servers is empty");
  if (o.id_header.empty()) return invalid("id_header is empty");
  if (o.delivery_timeout < milliseconds(1) || o.delivery_timeout > std::chrono::hours(24)) {
    return invalid(fmt::format("delivery_timeout = {} ms: must be in [1 ms, 24 h]", o.delivery_timeout.count()));
  }
  if (o.partitioning != KafkaPartitioning::kByKey && o.partitioning != KafkaPartitioning::kByStream) {
    return invalid("partitioning is not kByKey or kByStream");
  }
  auto topic = TopicTemplate::Parse(o.topic);
  if (!topic) return invalid("topic: " + topic.error().message());
  auto impl = std::make_unique<Impl>(std::move(o), std::move(*topic));
  Impl* started = impl.get();
  std::shared_ptr<KafkaPublisher> publisher(new KafkaPublisher(std::move(impl)));
  // The poll thread ends in ~Impl, before the base Publisher (its listeners) goes.
  if (Status s = started->Start([p = publisher.get()] { p->NotifyReady(); }); !s) return tl::unexpected(s.error());
  return publisher;
}

Status KafkaPublisher::Publish(const Event& event) {
  Status result;
  impl_->PublishBatch(std::span<const Event>(&event, 1), Order::kKeep, std::span<Status>(&result, 1));
  return result;
}

void KafkaPublisher::PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) {
  impl_->PublishBatch(events, order, results);
}

std::optional<bool> KafkaPublisher::IsConnected() const {
  return impl_->connected();
}

std::string KafkaPublisher::last_error() const {
  return impl_->last_error();
}

}  // namespace jaiminho
