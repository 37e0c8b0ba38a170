#include "jaiminho/adapters/mqtt_consumer.h"

#include <fmt/format.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "adapters/consumer_state.h"
#include "adapters/mqtt_tls.h"
#include "adapters/tcp_probe.h"
#include "jaiminho/inbox.h"
#include "jaiminho/logger.h"
#include "jaiminho/outbox.h"
#include "util/mutex.h"

namespace jaiminho {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// Longest time the consumer's thread spends in one mosquitto_loop pass, so
// that the destructor is prompt.
constexpr int kLoopSliceMs = 100;

}  // namespace

class MqttConsumer::Impl : public internal::ConsumerState<MqttConsumerStats> {
 public:
  Impl(Outbox& outbox, Inbox& inbox, MqttConsumerOptions options, Handler handler)
      : outbox_(outbox),
        inbox_(inbox),
        opt_(std::move(options)),
        tls_(internal::MqttTlsSettingsOf(opt_)),
        handler_(std::move(handler)),
        endpoint_(fmt::format("{}:{}", opt_.host, opt_.port)) {}

  ~Impl() {
    RequestStop();
    probe_stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  bool WaitSubscribed(milliseconds timeout) const EXCLUDES(mu_) {
    return WaitFor(timeout, [&]() REQUIRES(mu_) { return subscribed_; });
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void Log(LogLevel level, std::string_view message, const std::string& detail, std::string_view event_id = {});
  void Run();
  // One connection: from mosquitto_new to mosquitto_destroy.
  void Session();
  void HandleConnect(int rc);
  void HandleSubscribe(int count, const int* granted);
  void HandleMessage(const mosquitto_message& msg, const mosquitto_property* props);
  // Drops the connection before the PUBACKs queued for the message in
  // progress (and any later one) can be written: see the header.
  void Refuse(std::string why);
  void Settled(const MqttMessage& m, ReceiveOutcome outcome);

  static void OnConnect(mosquitto*, void* self, int rc, int, const mosquitto_property*) {
    static_cast<Impl*>(self)->HandleConnect(rc);
  }
  static void OnSubscribe(mosquitto*, void* self, int, int count, const int* granted, const mosquitto_property*) {
    static_cast<Impl*>(self)->HandleSubscribe(count, granted);
  }
  static void OnMessage(mosquitto*, void* self, const mosquitto_message* msg, const mosquitto_property* props) {
    static_cast<Impl*>(self)->HandleMessage(*msg, props);
  }
  // libmosquitto reports OpenSSL's reason for a TLS failure only in its log:
  // the first error of a connection attempt is kept (consumer's thread).
  static void OnLog(mosquitto*, void* self, int level, const char* text) {
    auto* impl = static_cast<Impl*>(self);
    if (level == MOSQ_LOG_ERR && text != nullptr && impl->logged_error_.empty()) impl->logged_error_ = text;
  }
  // Passes key_password to OpenSSL for an encrypted key_file.
  static int OnKeyPassword(char* buf, int size, int /*rwflag*/, void* mosq) {
    const auto* self = static_cast<const Impl*>(mosquitto_userdata(static_cast<mosquitto*>(mosq)));
    return internal::CopyMqttKeyPassword(self->opt_.key_password, buf, size);
  }
  // `plain`, or for a TLS failure OpenSSL's reason with the options to check.
  std::string ConnectError(std::string plain, int rc) const {
    return internal::MqttConnectError(tls_, opt_.host, endpoint_, std::move(plain), rc, logged_error_);
  }

  Outbox& outbox_;
  Inbox& inbox_;
  const MqttConsumerOptions opt_;
  const internal::MqttTlsSettings tls_;  // opt_'s TLS fields (key_password resolved)
  const Handler handler_;
  const std::string endpoint_;
  std::thread thread_{};
  std::atomic<bool> probe_stop_{false};  // stop_, for the TCP probe

  // The consumer's thread only.
  mosquitto* mosq_ = nullptr;
  bool broken_ = false;       // Refuse shut the socket: ignore what is still buffered
  bool session_end_ = false;  // refused connection or subscription: end the session
  bool progress_ = false;     // a message was acknowledged during the session
  bool connacked_ = false;    // the broker accepted the session's connection
  std::string logged_error_;  // libmosquitto's first logged error of the session (OnLog)
  int failures_ = 0;          // connections ended without progress, in a row

  bool subscribed_ GUARDED_BY(mu_) = false;
};

void MqttConsumer::Impl::Log(LogLevel level, std::string_view message, const std::string& detail,
                             std::string_view event_id) {
  if (!opt_.logger || !opt_.logger->Enabled(level)) return;
  LogRecord r;
  r.level = level;
  r.message = message;
  r.event_id = event_id;
  r.fields.emplace_back("broker", endpoint_);
  r.fields.emplace_back("filter", opt_.filter);
  r.fields.emplace_back("detail", detail);
  try {
    opt_.logger->Log(r);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a logger must not throw (logger.h); dropped
  }
}

void MqttConsumer::Impl::Run() {
  while (!stopping()) {
    progress_ = false;
    Session();
    {
      internal::MutexLock l(mu_);
      subscribed_ = false;
      cv_.SignalAll();
    }
    if (stopping()) break;
    if (broken_ && opt_.on_failure == MqttFailurePolicy::kStop) {
      internal::MutexLock l(mu_);
      stopped_ = true;
      cv_.SignalAll();
      break;
    }
    failures_ = progress_ ? 1 : failures_ + 1;
    // Reconnect pace: doubling from reconnect_min while sessions end without progress.
    Backoff(failures_, opt_.reconnect_min, opt_.reconnect_max);
  }
}

void MqttConsumer::Impl::Session() {
  broken_ = false;
  session_end_ = false;
  connacked_ = false;
  logged_error_.clear();
  if (Status probe = internal::ProbeTcp(opt_.host, opt_.port, opt_.connect_timeout, probe_stop_, "consumer stopped");
      !probe) {
    SetError(fmt::format("MQTT consumer of '{}': {}", opt_.filter, probe.error().message()));
    return;
  }
  // A new handle per connection: nothing queued on an old connection (a PUBACK
  // that must not be sent) can reach a new one.
  mosq_ = mosquitto_new(opt_.client_id.c_str(), /*clean_session=*/false, this);
  if (mosq_ == nullptr) {
    SetError(fmt::format("MQTT consumer of '{}' at {}: mosquitto_new failed: {}", opt_.filter, endpoint_,
                         std::strerror(errno)));
    return;
  }
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  // Threaded mode: the PUBACK of a message is queued before the message
  // callback and written by this thread after it returns (see the header).
  mosquitto_threaded_set(mosq_, true);
  mosquitto_connect_v5_callback_set(mosq_, &Impl::OnConnect);
  mosquitto_subscribe_v5_callback_set(mosq_, &Impl::OnSubscribe);
  mosquitto_message_v5_callback_set(mosq_, &Impl::OnMessage);
  if (opt_.tls) {
    std::string error = internal::SetUpMqttTls(mosq_, tls_, &Impl::OnKeyPassword, endpoint_, "MqttConsumerOptions");
    if (!error.empty()) {
      SetError(fmt::format("MQTT consumer of '{}': {}", opt_.filter, error));
      mosquitto_destroy(mosq_);
      mosq_ = nullptr;
      return;
    }
    mosquitto_log_callback_set(mosq_, &Impl::OnLog);
  }
  if (!opt_.username.empty()) {
    mosquitto_username_pw_set(mosq_, opt_.username.c_str(), opt_.password.empty() ? nullptr : opt_.password.c_str());
  }
  mosquitto_property* props = nullptr;
  mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                               static_cast<uint32_t>(opt_.session_expiry.count()));
  int rc = mosquitto_connect_bind_v5(mosq_, opt_.host.c_str(), opt_.port, static_cast<int>(opt_.keepalive.count()),
                                     nullptr, props);
  const int saved_errno = errno;
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) {
    SetError(fmt::format(
        "MQTT consumer of '{}': {}", opt_.filter,
        ConnectError(fmt::format("cannot connect to MQTT broker {}: {}", endpoint_,
                                 rc == MOSQ_ERR_ERRNO ? std::strerror(saved_errno) : mosquitto_strerror(rc)),
                     rc)));
  } else {
    while (!broken_ && !session_end_ && !stopping()) {
      rc = mosquitto_loop(mosq_, kLoopSliceMs, 1);
      if (rc != MOSQ_ERR_SUCCESS) {
        if (!broken_ && !session_end_) {
          const std::string cause = rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc);
          std::string why =
              connacked_
                  ? fmt::format("MQTT consumer of '{}': connection to MQTT broker {} lost: {}", opt_.filter, endpoint_,
                                cause)
                  : fmt::format(
                        "MQTT consumer of '{}': {}", opt_.filter,
                        internal::MqttClosedBeforeConnackError(
                            tls_, opt_.host, endpoint_,
                            fmt::format("MQTT broker {} closed the connection before CONNACK: {}", endpoint_, cause),
                            rc, logged_error_));
          Log(LogLevel::kWarn, "mqtt consumer disconnected", why);
          SetError(std::move(why));
        }
        break;
      }
    }
    if (!broken_ && rc == MOSQ_ERR_SUCCESS) {
      // Stopping: write the PUBACKs of what was committed, then DISCONNECT
      // (the session stays, session_expiry).
      mosquitto_disconnect(mosq_);
      for (int i = 0; i < 20 && mosquitto_loop(mosq_, kLoopSliceMs, 1) == MOSQ_ERR_SUCCESS; ++i) {
      }
    }
  }
  mosquitto_destroy(mosq_);
  mosq_ = nullptr;
}

void MqttConsumer::Impl::HandleConnect(int rc) {
  if (rc != 0) {
    std::string why = fmt::format("MQTT consumer of '{}': MQTT broker {} refused the connection of client '{}': {}",
                                  opt_.filter, endpoint_, opt_.client_id, mosquitto_reason_string(rc));
    Log(LogLevel::kError, "mqtt consumer refused", why);
    SetError(std::move(why));
    session_end_ = true;
    return;
  }
  connacked_ = true;
  {
    internal::MutexLock l(mu_);
    ++stats_.connects;
  }
  rc = mosquitto_subscribe_v5(mosq_, nullptr, opt_.filter.c_str(), 1, 0, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    SetError(fmt::format("MQTT consumer: subscribing to '{}' at MQTT broker {} failed: {}", opt_.filter, endpoint_,
                         mosquitto_strerror(rc)));
    session_end_ = true;
  }
}

void MqttConsumer::Impl::HandleSubscribe(int count, const int* granted) {
  if (count == 1 && granted[0] == 1) {
    Log(LogLevel::kInfo, "mqtt consumer subscribed", "qos 1");
    internal::MutexLock l(mu_);
    subscribed_ = true;
    cv_.SignalAll();
    return;
  }
  const int g = count == 1 ? granted[0] : -1;
  std::string why = fmt::format(
      "MQTT consumer: MQTT broker {} did not grant QoS 1 on '{}' ({}): without it nothing is redelivered", endpoint_,
      opt_.filter, g >= 0x80 ? std::string(mosquitto_reason_string(g)) : fmt::format("granted QoS {}", g));
  Log(LogLevel::kError, "mqtt consumer subscription refused", why);
  SetError(std::move(why));
  session_end_ = true;
}

void MqttConsumer::Impl::Refuse(std::string why) {
  broken_ = true;
  // The loop's next write fails with EPIPE: mosquitto_new ignores SIGPIPE
  // (libmosquitto 2.0: signal(SIGPIPE, SIG_IGN)).
  if (int fd = mosquitto_socket(mosq_); fd >= 0) ::shutdown(fd, SHUT_RDWR);
  Log(LogLevel::kError, "mqtt message not acknowledged", why);
  internal::MutexLock l(mu_);
  ++stats_.not_acknowledged;
  last_error_ = std::move(why);
}

void MqttConsumer::Impl::HandleMessage(const mosquitto_message& msg, const mosquitto_property* props) {
  if (broken_) return;  // after Refuse: its PUBACK is never written; redelivered
  MqttMessage m;
  m.topic = msg.topic != nullptr ? std::string_view(msg.topic) : std::string_view();
  m.payload = std::string_view(static_cast<const char*>(msg.payload), static_cast<size_t>(msg.payloadlen));
  char* name = nullptr;
  char* value = nullptr;
  for (const mosquitto_property* p =
           mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
       p != nullptr; p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
    m.properties.emplace_back(name, value);
    std::free(name);
    std::free(value);
  }
  std::string content_type;
  if (mosquitto_property_read_string(props, MQTT_PROP_CONTENT_TYPE, &value, false) != nullptr) {
    content_type = value;
    std::free(value);
  }
  m.content_type = content_type;
  const std::string* raw = nullptr;
  for (const auto& [n, v] : m.properties) {
    if (n == opt_.id_property) {
      raw = &v;
      break;
    }
  }
  auto invalid = [&](const std::string& why) {
    Log(LogLevel::kWarn, "mqtt message skipped", fmt::format("topic '{}': {}; acknowledged", m.topic, why));
    progress_ = true;
    internal::MutexLock l(mu_);
    ++stats_.invalid;
  };
  if (raw == nullptr) return invalid(fmt::format("no user property '{}'", opt_.id_property));
  m.raw_id = *raw;
  auto id = Inbox::ParseEventId(m.raw_id);
  if (!id) return invalid(id.error().ToString());
  m.id = *id;

  Transaction txn = outbox_.Begin();
  auto outcome = inbox_.Receive(txn, m.id);
  if (!outcome) {
    return Refuse(fmt::format("MQTT consumer of '{}' at {}: event {} (topic '{}') not acknowledged: {}", opt_.filter,
                              endpoint_, m.raw_id, m.topic, outcome.error().ToString()));
  }
  switch (*outcome) {
    case ReceiveOutcome::kDuplicate: {
      {
        internal::MutexLock l(mu_);
        ++stats_.duplicates;
      }
      progress_ = true;
      Settled(m, ReceiveOutcome::kDuplicate);
      return;
    }
    case ReceiveOutcome::kOutOfOrder:
    case ReceiveOutcome::kInFlight:
      return Refuse(fmt::format("MQTT consumer of '{}' at {}: event {} (topic '{}') not acknowledged: inbox says {}",
                                opt_.filter, endpoint_, m.raw_id, m.topic, ToString(*outcome)));
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
    return Refuse(fmt::format("MQTT consumer of '{}' at {}: event {} (topic '{}') not acknowledged: handler failed: {}",
                              opt_.filter, endpoint_, m.raw_id, m.topic, handled.error().ToString()));
  }
  if (auto committed = txn.Commit(); !committed) {
    return Refuse(fmt::format("MQTT consumer of '{}' at {}: event {} (topic '{}') not acknowledged: commit failed: {}",
                              opt_.filter, endpoint_, m.raw_id, m.topic, committed.error().ToString()));
  }
  progress_ = true;
  Settled(m, ReceiveOutcome::kNew);
  internal::MutexLock l(mu_);
  ++stats_.applied;
  last_error_.clear();
  cv_.SignalAll();
}

void MqttConsumer::Impl::Settled(const MqttMessage& m, ReceiveOutcome outcome) {
  if (!opt_.on_outcome) return;
  try {
    opt_.on_outcome(m, outcome);
  } catch (...) {  // NOLINT(bugprone-empty-catch): must not throw (the header); dropped
  }
}

MqttConsumer::MqttConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MqttConsumer::~MqttConsumer() = default;

Result<std::unique_ptr<MqttConsumer>> MqttConsumer::Start(Outbox& outbox, Inbox& inbox, MqttConsumerOptions o,
                                                          Handler handler) {
  auto invalid = [](const std::string& msg) {
    return MakeError(ErrorCode::kInvalidArgument, "MqttConsumerOptions::" + msg);
  };
  if (o.host.empty()) return invalid("host is empty");
  if (o.port == 0) return invalid("port is 0");
  if (o.client_id.empty()) {
    return invalid("client_id is empty: a persistent session needs a stable client id");
  }
  if (o.client_id.size() > 65535 ||
      mosquitto_validate_utf8(o.client_id.data(), static_cast<int>(o.client_id.size())) != MOSQ_ERR_SUCCESS) {
    return invalid("client_id is not valid UTF-8");
  }
  if (o.filter.empty() || o.filter.size() > 65535 ||
      mosquitto_sub_topic_check2(o.filter.data(), o.filter.size()) != MOSQ_ERR_SUCCESS) {
    return invalid(fmt::format("filter = '{}': not a valid MQTT topic filter", o.filter));
  }
  if (o.id_property.empty()) return invalid("id_property is empty");
  if (o.session_expiry <= std::chrono::seconds(0) || o.session_expiry.count() > 0xFFFFFFFFLL) {
    return invalid(fmt::format("session_expiry = {} s: must be in [1, 4294967295]", o.session_expiry.count()));
  }
  if (o.keepalive < std::chrono::seconds(5) || o.keepalive > std::chrono::seconds(65535)) {
    return invalid(fmt::format("keepalive = {} s: must be in [5, 65535]", o.keepalive.count()));
  }
  if (o.connect_timeout <= milliseconds(0)) return invalid("connect_timeout must be > 0");
  if (o.reconnect_min <= milliseconds(0) || o.reconnect_max < o.reconnect_min) {
    return invalid(fmt::format("reconnect_min = {} ms, reconnect_max = {} ms: need 0 < min <= max",
                               o.reconnect_min.count(), o.reconnect_max.count()));
  }
  if (o.on_failure != MqttFailurePolicy::kReconnect && o.on_failure != MqttFailurePolicy::kStop) {
    return invalid("on_failure is not a MqttFailurePolicy");
  }
  if (!o.password.empty() && o.username.empty()) return invalid("password is set but username is empty");
  internal::MqttTlsSettings tls = internal::MqttTlsSettingsOf(o);
  if (Status st = internal::ResolveMqttTls("MqttConsumerOptions", tls); !st) return tl::unexpected(st.error());
  o.key_password = std::move(tls.key_password);
  if (!handler) return MakeError(ErrorCode::kInvalidArgument, "MqttConsumer::Start: the handler is empty");
  static std::once_flag lib_init;
  std::call_once(lib_init, [] { mosquitto_lib_init(); });
  auto impl = std::make_unique<Impl>(outbox, inbox, std::move(o), std::move(handler));
  impl->Start();
  return std::unique_ptr<MqttConsumer>(new MqttConsumer(std::move(impl)));
}

ReceivedEvent MqttConsumer::ToReceivedEvent(const MqttMessage& m, std::string_view type_property) {
  ReceivedEvent e{.id = m.id,
                  .raw_id = m.raw_id,
                  .encoding = m.content_type,
                  .payload = m.payload,
                  .topic = m.topic,
                  .headers = m.properties};
  for (const auto& [name, value] : m.properties) {
    if (name == type_property) {
      e.type = value;
      break;
    }
  }
  return e;
}

Result<std::unique_ptr<MqttConsumer>> MqttConsumer::Start(Outbox& outbox, Inbox& inbox, MqttConsumerOptions o,
                                                          ConsumerHandlers handlers) {
  std::string type_property = o.type_property;
  return Start(
      outbox, inbox, std::move(o),
      [handlers = std::move(handlers), type_property = std::move(type_property)](
          const MqttMessage& m, Transaction& txn) { return handlers.Handle(ToReceivedEvent(m, type_property), txn); });
}

MqttConsumerStats MqttConsumer::stats() const {
  return impl_->stats();
}
std::string MqttConsumer::last_error() const {
  return impl_->last_error();
}
bool MqttConsumer::stopped() const {
  return impl_->stopped();
}
bool MqttConsumer::WaitSubscribed(std::chrono::milliseconds timeout) const {
  return impl_->WaitSubscribed(timeout);
}
bool MqttConsumer::WaitApplied(uint64_t n, std::chrono::milliseconds timeout) const {
  return impl_->WaitApplied(n, timeout);
}
const std::string& MqttConsumer::endpoint() const {
  return impl_->endpoint();
}

}  // namespace jaiminho
