#include "jaiminho/adapters/mqtt.h"

#include <fmt/format.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "adapters/mqtt_tls.h"
#include "adapters/tcp_probe.h"
#include "adapters/uri.h"
#include "jaiminho/adapters/topic.h"
#include "util/mutex.h"

namespace jaiminho {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

std::string RandomClientId() {
  std::random_device rd;
  return fmt::format("jaiminho-{:08x}{:08x}", rd(), rd());
}

// True for PUBACK reason codes that will not change when the same message is
// sent again: the event is parked rather than retried forever.
bool PermanentReason(int reason) {
  return reason == MQTT_RC_TOPIC_NAME_INVALID || reason == MQTT_RC_PAYLOAD_FORMAT_INVALID ||
         reason == MQTT_RC_NOT_AUTHORIZED || reason == MQTT_RC_PACKET_TOO_LARGE;
}

std::string MosquittoError(int rc, int saved_errno) {
  if (rc == MOSQ_ERR_ERRNO) return std::strerror(saved_errno);
  return mosquitto_strerror(rc);
}

// Acknowledges what was read at once instead of after Linux's delayed-ACK
// timer (40 ms). A broker with Nagle's algorithm on (mosquitto's default,
// set_tcp_nodelay false) holds every PUBACK behind an unacknowledged one, so a
// publisher waiting for a batch's last PUBACK otherwise waits for that timer.
// TCP_QUICKACK is not sticky (the kernel goes back to delaying once we send),
// hence once per loop pass; setting it also sends an ACK that is pending.
void QuickAck(mosquitto* m) {
  const int fd = mosquitto_socket(m);
  if (fd < 0) return;
  const int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

}  // namespace

Result<MqttOptions> ParseMqttUri(std::string_view text) {
  const bool tls = text.starts_with("mqtts://");
  auto uri = internal::ParseUri(text, tls ? "mqtts" : "mqtt");
  if (!uri) return tl::unexpected(uri.error());
  MqttOptions o;
  o.tls = tls;
  auto hp = internal::SplitHostPort(uri->authority, tls ? 8883 : 1883);
  if (!hp) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': {}", text, hp.error().message()));
  o.host = hp->first;
  o.port = hp->second;
  if (uri->has_userinfo) {
    o.username = uri->user;
    o.password = uri->password;
  }
  if (!uri->path.empty()) o.topic = uri->path;
  for (const auto& [name, value] : uri->query) {
    std::string what = fmt::format("'{}': {}", text, name);
    auto ms = [&, &v = value](milliseconds& out) -> Status {
      auto n = internal::ParseNumber(v, 1, 86'400'000, what);
      if (!n) return tl::unexpected(n.error());
      out = milliseconds(*n);
      return {};
    };
    Status st;
    auto flag = [&, &v = value](bool& out) -> Status {
      auto b = internal::ParseBool(v, what);
      if (!b) return tl::unexpected(b.error());
      out = *b;
      return {};
    };
    if (name == "client_id") {
      o.client_id = value;
    } else if (name == "id_property") {
      o.id_property = value;
    } else if (name == "type_property") {
      o.type_property = value;
    } else if (name == "retain") {
      auto b = internal::ParseBool(value, what);
      if (!b) return tl::unexpected(b.error());
      o.retain = *b;
    } else if (name == "headers") {
      auto b = internal::ParseBool(value, what);
      if (!b) return tl::unexpected(b.error());
      o.headers_as_properties = *b;
    } else if (name == "keepalive_s") {
      auto n = internal::ParseNumber(value, 5, 65535, what);
      if (!n) return tl::unexpected(n.error());
      o.keepalive = std::chrono::seconds(*n);
    } else if (name == "max_inflight") {
      auto n = internal::ParseNumber(value, 1, 65535, what);
      if (!n) return tl::unexpected(n.error());
      o.max_inflight = static_cast<uint32_t>(*n);
    } else if (name == "ack_timeout_ms") {
      st = ms(o.ack_timeout);
    } else if (name == "connect_timeout_ms") {
      st = ms(o.connect_timeout);
    } else if (name == "reconnect_min_ms") {
      st = ms(o.reconnect_min);
    } else if (name == "reconnect_max_ms") {
      st = ms(o.reconnect_max);
    } else if (name == "password_file") {
      o.password_file = value;
    } else if (name == "password_env") {
      o.password_env = value;
    } else if (name == "tls") {
      st = flag(o.tls);
    } else if (name == "ca_file") {
      o.ca_file = value;
    } else if (name == "ca_path") {
      o.ca_path = value;
    } else if (name == "cert_file") {
      o.cert_file = value;
    } else if (name == "key_file") {
      o.key_file = value;
    } else if (name == "key_password_file") {
      o.key_password_file = value;
    } else if (name == "key_password_env") {
      o.key_password_env = value;
    } else if (name == "tls_version") {
      o.tls_version = value;
    } else if (name == "verify_hostname") {
      st = flag(o.verify_hostname);
    } else if (name == "alpn") {
      o.alpn = value;
    } else {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("'{}': unknown option '{}' (known: client_id, retain, id_property, type_property, headers, "
                      "keepalive_s, ack_timeout_ms, connect_timeout_ms, reconnect_min_ms, "
                      "reconnect_max_ms, max_inflight, password_file, password_env, tls, ca_file, "
                      "ca_path, cert_file, key_file, key_password_file, key_password_env, "
                      "tls_version, verify_hostname, alpn)",
                      text, name));
    }
    if (!st) return tl::unexpected(st.error());
  }
  return o;
}

class MqttPublisher::Impl {
 public:
  Impl(MqttOptions options, TopicTemplate topic)
      : opt_(std::move(options)),
        tls_(internal::MqttTlsSettingsOf(opt_)),
        topic_(std::move(topic)),
        endpoint_(fmt::format("{}:{}", opt_.host, opt_.port)) {}

  ~Impl() {
    {
      internal::MutexLock l(mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    // The network thread sends the DISCONNECT and ends.
    WakeLoop();
    if (thread_.joinable()) thread_.join();
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  // `on_ready` is called after each accepted (re)connect.
  void Start(std::function<void()> on_ready) {
    on_ready_ = std::move(on_ready);
    thread_ = std::thread([this] { Run(); });
  }

  void PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) EXCLUDES(mu_);

  bool connected() const EXCLUDES(mu_) {
    internal::MutexLock l(mu_);
    return state_ == State::kConnected;
  }
  std::string last_error() const EXCLUDES(mu_) {
    internal::MutexLock l(mu_);
    return last_error_;
  }
  bool WaitConnected(milliseconds timeout) const EXCLUDES(mu_) {
    internal::MutexLock l(mu_);
    const auto deadline = SteadyClock::now() + timeout;
    while (state_ != State::kConnected && !stop_ && cv_.WaitUntil(mu_, deadline)) {
    }
    return state_ == State::kConnected;
  }
  const std::string& endpoint() const { return endpoint_; }
  // 0, or the errno of the wake-up descriptor's creation (the publisher cannot work).
  int setup_errno() const { return wake_errno_; }

 private:
  enum class State { kConnecting, kConnected, kDown, kStopped };

  // The publishes of one PublishBatch call that await a PUBACK.
  struct Batch {
    size_t outstanding = 0;
    SteadyClock::time_point last_ack{};  // when the last PUBACK (or the send) was
    Order order = Order::kAny;
    bool stopped = false;  // kKeep: a send failed, the rest is not sent
  };
  struct Slot {
    Batch* batch = nullptr;
    const Event* event = nullptr;
    int mid = -1;
    bool done = false;
    Status result{};
  };

  void Run();
  mosquitto* NewHandle(std::string* error);
  void SetDown(std::string why);
  // Fails every awaited PUBACK with `why`.
  void FailInflight(const std::string& why) REQUIRES(mu_);
  // Marks `slot` finished with `result`.
  void Finish(Slot& slot, Status result) REQUIRES(mu_);
  // Sends one event. REQUIRES: state_ == kConnected; called on the network thread.
  Status SendLocked(mosquitto* m, const Event& event, Slot& slot) REQUIRES(mu_);
  // The network thread: sends what PublishBatch queued in to_send_.
  void SendQueued(mosquitto* m) EXCLUDES(mu_);
  // Wakes the network thread from its poll (PublishBatch queued events, or a stop).
  void WakeLoop() const {
    const uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
  }
  // One connection's network loop (poll on the socket and wake_fd_); returns
  // libmosquitto's error that ended it, or MOSQ_ERR_SUCCESS after a stop.
  int Loop(mosquitto* m) EXCLUDES(mu_);
  // Waits for backoff, waking early on stop.
  void Backoff(milliseconds delay) EXCLUDES(mu_) {
    internal::MutexLock l(mu_);
    const auto deadline = SteadyClock::now() + delay;
    while (!stop_.load() && cv_.WaitUntil(mu_, deadline)) {
    }
  }

  static void OnConnect(mosquitto*, void* self, int rc, int /*flags*/, const mosquitto_property*) {
    static_cast<Impl*>(self)->HandleConnect(rc);
  }
  static void OnPublish(mosquitto*, void* self, int mid, int reason, const mosquitto_property*) {
    static_cast<Impl*>(self)->HandlePuback(mid, reason);
  }
  // libmosquitto reports OpenSSL's reason for a TLS failure only in its log.
  static void OnLog(mosquitto*, void* self, int level, const char* text) {
    if (level == MOSQ_LOG_ERR && text != nullptr) static_cast<Impl*>(self)->HandleLogError(text);
  }
  // Passes key_password to OpenSSL for an encrypted key_file.
  static int OnKeyPassword(char* buf, int size, int /*rwflag*/, void* mosq) {
    const auto* self = static_cast<const Impl*>(mosquitto_userdata(static_cast<mosquitto*>(mosq)));
    return internal::CopyMqttKeyPassword(self->opt_.key_password, buf, size);
  }
  void HandleLogError(const char* text) EXCLUDES(mu_);
  // The error of a failed connection attempt: `plain`, or for a TLS failure
  // OpenSSL's reason with the options to check.
  std::string ConnectError(std::string plain, int rc) REQUIRES(mu_);
  void HandleConnect(int rc) EXCLUDES(mu_);
  void HandlePuback(int mid, int reason) EXCLUDES(mu_);

  const MqttOptions opt_;
  const internal::MqttTlsSettings tls_;  // opt_'s TLS fields (key_password resolved)
  const TopicTemplate topic_;
  const std::string endpoint_;

  mutable internal::Mutex mu_;
  // Signalled on state changes and PUBACKs.
  mutable internal::CondVar cv_;
  std::atomic<bool> stop_{false};
  // Guarded by mu_ (and a Slot's fields, which the analysis cannot name).
  State state_ GUARDED_BY(mu_) = State::kConnecting;
  std::string last_error_ GUARDED_BY(mu_){};
  // Why the broker refused the current connection attempt, "" when it did not.
  std::string refused_ GUARDED_BY(mu_){};
  // The last error libmosquitto logged during the current connection attempt
  // (OpenSSL's reason for a TLS failure), "" when none.
  std::string logged_error_ GUARDED_BY(mu_){};
  // The handle of the current connection; null between connections. Only the
  // network thread creates, uses and destroys it: every libmosquitto call on
  // it is made there (publishers queue their events in to_send_), so a
  // packet is allocated and freed by one thread and sent by the publish call
  // itself. Set under mu_; publishers read it to know a connection is up.
  mosquitto* mosq_ GUARDED_BY(mu_) = nullptr;
  std::unordered_map<int, Slot*> inflight_ GUARDED_BY(mu_){};  // by message id
  // Events PublishBatch queued for the network thread to send, in order.
  std::vector<Slot*> to_send_ GUARDED_BY(mu_){};
  // Written to wake the network thread; created with the publisher.
  const int wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const int wake_errno_ = wake_fd_ < 0 ? errno : 0;
  std::function<void()> on_ready_;  // set before the thread starts
  std::thread thread_;
};

mosquitto* MqttPublisher::Impl::NewHandle(std::string* error) {
  mosquitto* m = mosquitto_new(opt_.client_id.c_str(), true, this);
  if (m == nullptr) {
    *error = fmt::format("mosquitto_new failed for MQTT broker {}: {}", endpoint_, std::strerror(errno));
    return nullptr;
  }
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, static_cast<int>(opt_.max_inflight));
  // Threaded while connecting: the CONNECT is then only queued, and a TLS
  // handshake the broker ends (no client certificate) fails in the loop with
  // OpenSSL's reason logged, not inside the connect call. Run clears it after.
  mosquitto_threaded_set(m, true);
  if (!opt_.username.empty()) {
    mosquitto_username_pw_set(m, opt_.username.c_str(), opt_.password.empty() ? nullptr : opt_.password.c_str());
  }
  if (opt_.tls) {
    *error = internal::SetUpMqttTls(m, tls_, &Impl::OnKeyPassword, endpoint_, "MqttOptions");
    if (!error->empty()) {
      mosquitto_destroy(m);
      return nullptr;
    }
    mosquitto_log_callback_set(m, &Impl::OnLog);
  }
  mosquitto_connect_v5_callback_set(m, &Impl::OnConnect);
  mosquitto_publish_v5_callback_set(m, &Impl::OnPublish);
  return m;
}

void MqttPublisher::Impl::SetDown(std::string why) {
  internal::MutexLock l(mu_);
  last_error_ = std::move(why);
  state_ = State::kDown;
  cv_.SignalAll();
}

void MqttPublisher::Impl::Run() {
  milliseconds delay = opt_.reconnect_min;
  while (!stop_) {
    {
      internal::MutexLock l(mu_);
      state_ = State::kConnecting;
      refused_.clear();
      logged_error_.clear();
      cv_.SignalAll();
    }
    if (Status probe = internal::ProbeTcp(opt_.host, opt_.port, opt_.connect_timeout, stop_, "publisher stopped");
        !probe) {
      SetDown(probe.error().message());
      Backoff(delay);
      delay = std::min(delay * 2, opt_.reconnect_max);
      continue;
    }
    std::string error;
    mosquitto* m = NewHandle(&error);
    int rc = MOSQ_ERR_NOMEM;
    if (m != nullptr) {
      rc = mosquitto_connect_bind_v5(m, opt_.host.c_str(), opt_.port, static_cast<int>(opt_.keepalive.count()), nullptr,
                                     nullptr);
      if (rc != MOSQ_ERR_SUCCESS) {
        int saved_errno = errno;
        internal::MutexLock l(mu_);
        error = ConnectError(
            fmt::format("cannot connect to MQTT broker {}: {}", endpoint_, MosquittoError(rc, saved_errno)), rc);
      }
    }
    if (rc != MOSQ_ERR_SUCCESS) {
      if (m != nullptr) mosquitto_destroy(m);
      SetDown(error);
      Backoff(delay);
      delay = std::min(delay * 2, opt_.reconnect_max);
      continue;
    }
    // Only this thread calls libmosquitto on the handle (Loop): unthreaded, a
    // publish writes its packet at once instead of waking a loop thread.
    mosquitto_threaded_set(m, false);
    {
      internal::MutexLock l(mu_);
      mosq_ = m;
    }
    rc = Loop(m);
    int loop_errno = errno;
    bool was_connected = false;
    {
      internal::MutexLock l(mu_);
      was_connected = state_ == State::kConnected;
      std::string why;
      if (stop_) {
        why = fmt::format("MQTT publisher for {} stopped", endpoint_);
      } else if (!refused_.empty()) {
        why = refused_;
      } else if (was_connected) {
        why = fmt::format("connection to MQTT broker {} lost: {}", endpoint_, MosquittoError(rc, loop_errno));
      } else {
        why = internal::MqttClosedBeforeConnackError(
            tls_, opt_.host, endpoint_,
            fmt::format("MQTT broker {} closed the connection before CONNACK: {}", endpoint_,
                        MosquittoError(rc, loop_errno)),
            rc, logged_error_);
      }
      FailInflight(why);
      mosq_ = nullptr;
      last_error_ = std::move(why);
      state_ = State::kDown;
      cv_.SignalAll();
    }
    mosquitto_destroy(m);
    if (was_connected) delay = opt_.reconnect_min;
    if (stop_) break;
    Backoff(delay);
    if (!was_connected) delay = std::min(delay * 2, opt_.reconnect_max);
  }
  internal::MutexLock l(mu_);
  state_ = State::kStopped;
  cv_.SignalAll();
}

void MqttPublisher::Impl::HandleLogError(const char* text) {
  internal::MutexLock l(mu_);
  // The first error is the cause; later ones tell of the disconnect it led to.
  if (logged_error_.empty()) logged_error_ = text;
}

std::string MqttPublisher::Impl::ConnectError(std::string plain, int rc) {
  return internal::MqttConnectError(tls_, opt_.host, endpoint_, std::move(plain), rc, logged_error_);
}

void MqttPublisher::Impl::HandleConnect(int rc) {
  {
    internal::MutexLock l(mu_);
    if (rc == 0) {
      state_ = State::kConnected;
      last_error_.clear();
    } else {
      refused_ = fmt::format("MQTT broker {} refused the connection: {}", endpoint_, mosquitto_reason_string(rc));
      last_error_ = refused_;
      state_ = State::kDown;
    }
    cv_.SignalAll();
  }
  // Outside mu_: a listener may ask connected() or last_error(). It runs on
  // this thread, which sends every publish: a listener must not publish.
  if (rc == 0) on_ready_();
}

void MqttPublisher::Impl::Finish(Slot& slot, Status result) {
  slot.done = true;
  slot.result = std::move(result);
  --slot.batch->outstanding;
}

void MqttPublisher::Impl::HandlePuback(int mid, int reason) {
  internal::MutexLock l(mu_);
  auto it = inflight_.find(mid);
  if (it == inflight_.end()) return;  // its publisher gave up waiting
  Slot& slot = *it->second;
  inflight_.erase(it);
  if (reason < 0x80) {
    Finish(slot, {});
  } else {
    ErrorCode code = PermanentReason(reason) ? ErrorCode::kRejected : ErrorCode::kUnavailable;
    Finish(slot, MakeError(code, fmt::format("MQTT broker {} refused event {}: {} (reason code {})", endpoint_,
                                             slot.event->id.ToString(), mosquitto_reason_string(reason), reason)));
  }
  // The publisher waits for its whole batch: wake it once, at the batch's last
  // PUBACK, not at every one (a context switch per event otherwise).
  slot.batch->last_ack = SteadyClock::now();
  if (slot.batch->outstanding == 0) cv_.SignalAll();
}

void MqttPublisher::Impl::FailInflight(const std::string& why) {
  for (auto& [mid, slot] : inflight_) {
    Finish(*slot, MakeError(ErrorCode::kUnavailable,
                            fmt::format("{}; no PUBACK for event {}", why, slot->event->id.ToString())));
  }
  inflight_.clear();
  for (Slot* slot : to_send_) {
    Finish(*slot, MakeError(ErrorCode::kUnavailable,
                            fmt::format("{}; event {} was not sent", why, slot->event->id.ToString())));
  }
  to_send_.clear();
  cv_.SignalAll();
}

void MqttPublisher::Impl::SendQueued(mosquitto* m) {
  // Publishing under mu_ is safe because every publish is QoS 1: an
  // unthreaded handle writes the packet inside mosquitto_publish_v5, and
  // libmosquitto calls on_publish from that write only for QoS 0 (which would
  // take mu_ again in HandlePuback).
  internal::MutexLock l(mu_);
  for (Slot* slot : to_send_) {
    Batch& b = *slot->batch;
    if (b.stopped) {
      Finish(*slot, tl::unexpected(AbortedError()));
    } else if (Status st = SendLocked(m, *slot->event, *slot); !st) {
      Finish(*slot, std::move(st));
      if (b.order == Order::kKeep) b.stopped = true;
    }
    if (b.outstanding == 0) cv_.SignalAll();
  }
  to_send_.clear();
}

int MqttPublisher::Impl::Loop(mosquitto* m) {
  int rc = MOSQ_ERR_SUCCESS;
  while (rc == MOSQ_ERR_SUCCESS) {
    if (stop_) {
      mosquitto_disconnect(m);  // best effort: the DISCONNECT is written at once
      return MOSQ_ERR_SUCCESS;
    }
    const int fd = mosquitto_socket(m);
    if (fd < 0) return MOSQ_ERR_NO_CONN;
    pollfd fds[2] = {{fd, static_cast<short>(POLLIN | (mosquitto_want_write(m) ? POLLOUT : 0)), 0},
                     {wake_fd_, POLLIN, 0}};
    // Wakes at least once a second for the keepalive (mosquitto_loop_misc).
    if (poll(fds, 2, 1000) < 0 && errno != EINTR) return MOSQ_ERR_ERRNO;
    if ((fds[1].revents & POLLIN) != 0) {
      uint64_t n = 0;
      (void)!read(wake_fd_, &n, sizeof n);
      SendQueued(m);
    }
    if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) rc = mosquitto_loop_read(m, 1);
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(m)) rc = mosquitto_loop_write(m, 1);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_misc(m);
    if (rc == MOSQ_ERR_SUCCESS) QuickAck(m);  // not after a failure: errno is its cause
  }
  return rc;
}

Status MqttPublisher::Impl::SendLocked(mosquitto* m, const Event& event, Slot& slot) {
  std::string topic = topic_.Expand(event);
  auto reject = [&](std::string_view why) {
    return MakeError(ErrorCode::kRejected, fmt::format("event {}: MQTT topic '{}' (from template '{}') {}",
                                                       event.id.ToString(), topic, topic_.text(), why));
  };
  if (topic.empty()) return reject("is empty");
  if (topic.size() > 65535) return reject("is longer than 65535 bytes");
  if (topic.find('\0') != std::string::npos) return reject("contains NUL");
  if (mosquitto_validate_utf8(topic.data(), static_cast<int>(topic.size())) != MOSQ_ERR_SUCCESS) {
    return reject("is not valid UTF-8");
  }
  if (mosquitto_pub_topic_check2(topic.data(), topic.size()) != MOSQ_ERR_SUCCESS) {
    return reject("contains a wildcard ('+' or '#')");
  }
  mosquitto_property* props = nullptr;
  struct PropsGuard {
    mosquitto_property** p;
    ~PropsGuard() { mosquitto_property_free_all(p); }
  } guard{&props};
  std::string id = event.id.ToString();
  if (mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, opt_.id_property.c_str(), id.c_str()) !=
      MOSQ_ERR_SUCCESS) {
    return MakeError(ErrorCode::kRejected,
                     fmt::format("event {}: cannot add user property '{}'", id, opt_.id_property));
  }
  if (!opt_.type_property.empty()) {
    std::string type(event.type);
    if (type.size() != event.type.size() ||
        mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, opt_.type_property.c_str(), type.c_str()) !=
            MOSQ_ERR_SUCCESS) {
      return MakeError(
          ErrorCode::kRejected,
          fmt::format("event {}: type '{}' is not a valid MQTT user property (UTF-8 without NUL)", id, event.type));
    }
  }
  if (!event.encoding.empty()) {
    std::string encoding(event.encoding);
    if (mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, encoding.c_str()) != MOSQ_ERR_SUCCESS) {
      return MakeError(ErrorCode::kRejected,
                       fmt::format("event {}: encoding '{}' is not a valid MQTT content type", id, encoding));
    }
  }
  if (opt_.headers_as_properties) {
    for (const Header& h : event.headers) {
      std::string name(h.name), value(h.value);
      if (name.size() != h.name.size() || value.find('\0') != std::string::npos ||
          mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, name.c_str(), value.c_str()) !=
              MOSQ_ERR_SUCCESS) {
        return MakeError(
            ErrorCode::kRejected,
            fmt::format("event {}: header '{}' is not a valid MQTT user property (UTF-8 without NUL)", id, name));
      }
    }
  }
  if (event.payload.size() > static_cast<size_t>(MQTT_MAX_PAYLOAD)) {
    return MakeError(ErrorCode::kRejected,
                     fmt::format("event {}: payload of {} bytes exceeds the MQTT limit", id, event.payload.size()));
  }
  int mid = 0;
  int rc = mosquitto_publish_v5(m, &mid, topic.c_str(), static_cast<int>(event.payload.size()), event.payload.data(), 1,
                                opt_.retain, props);
  if (rc != MOSQ_ERR_SUCCESS) {
    bool permanent = rc == MOSQ_ERR_PAYLOAD_SIZE || rc == MOSQ_ERR_OVERSIZE_PACKET || rc == MOSQ_ERR_MALFORMED_UTF8 ||
                     rc == MOSQ_ERR_INVAL || rc == MOSQ_ERR_DUPLICATE_PROPERTY;
    return MakeError(
        permanent ? ErrorCode::kRejected : ErrorCode::kUnavailable,
        fmt::format("publishing event {} to MQTT broker {} failed: {}", id, endpoint_, MosquittoError(rc, errno)));
  }
  slot.mid = mid;
  inflight_[mid] = &slot;
  return {};
}

void MqttPublisher::Impl::PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) {
  const size_t n = events.size();
  Batch batch;
  std::vector<Slot> slots(n);
  internal::ReleasableMutexLock l(mu_);
  // A connection attempt in progress (start-up, reconnect) is worth waiting
  // for; a broker known to be down is not: the relay's retry policy decides.
  const auto connect_deadline = SteadyClock::now() + opt_.connect_timeout;
  while (state_ == State::kConnecting && !stop_ && cv_.WaitUntil(mu_, connect_deadline)) {
  }
  if (state_ != State::kConnected || mosq_ == nullptr) {
    Error e(ErrorCode::kUnavailable,
            last_error_.empty() ? fmt::format("not connected to MQTT broker {} yet", endpoint_) : last_error_);
    for (size_t i = 0; i < n; ++i)
      results[i] = tl::unexpected(order == Order::kKeep && i > 0 ? AbortedError() : e);
    return;
  }
  // The network thread sends them (SendQueued), in order.
  batch.order = order;
  for (size_t i = 0; i < n; ++i) {
    Slot& s = slots[i];
    s.batch = &batch;
    s.event = &events[i];
    ++batch.outstanding;
    to_send_.push_back(&s);
  }
  WakeLoop();
  // Wait while PUBACKs keep coming: the timeout counts from the last progress
  // (HandlePuback records it; it wakes this thread only at the last PUBACK).
  batch.last_ack = SteadyClock::now();
  auto deadline = batch.last_ack + opt_.ack_timeout;
  while (batch.outstanding > 0) {
    if (cv_.WaitUntil(mu_, deadline)) continue;
    deadline = batch.last_ack + opt_.ack_timeout;
    if (batch.outstanding > 0 && deadline <= SteadyClock::now()) break;
  }
  // Not sent yet (the network thread is stuck) or not acknowledged: neither
  // list may keep this batch's slots once it returns.
  std::erase_if(to_send_, [&](Slot* s) { return s->batch == &batch; });
  for (Slot& s : slots) {
    if (s.done) continue;
    if (s.mid >= 0) inflight_.erase(s.mid);
    Finish(s, MakeError(ErrorCode::kUnavailable,
                        fmt::format("no PUBACK from MQTT broker {} within {} ms for event {}", endpoint_,
                                    opt_.ack_timeout.count(), s.event->id.ToString())));
  }
  l.Release();
  bool failed = false;
  for (size_t i = 0; i < n; ++i) {
    if (failed && order == Order::kKeep && slots[i].result) {
      results[i] = MakeError(ErrorCode::kAborted,
                             fmt::format("event {} was acknowledged after an earlier event of the ordered batch "
                                         "failed; it will be sent again",
                                         events[i].id.ToString()));
      continue;
    }
    results[i] = std::move(slots[i].result);
    if (!results[i]) failed = true;
  }
}

MqttPublisher::MqttPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MqttPublisher::~MqttPublisher() = default;

Result<std::shared_ptr<MqttPublisher>> MqttPublisher::Create(MqttOptions o) {
  auto invalid = [](const std::string& msg) { return MakeError(ErrorCode::kInvalidArgument, "MqttOptions::" + msg); };
  if (o.host.empty()) return invalid("host is empty");
  if (o.id_property.empty()) return invalid("id_property is empty");
  if (o.keepalive < std::chrono::seconds(5) || o.keepalive > std::chrono::seconds(65535)) {
    return invalid(fmt::format("keepalive = {} s: must be in [5, 65535]", o.keepalive.count()));
  }
  if (o.ack_timeout <= milliseconds(0)) return invalid("ack_timeout must be > 0");
  if (o.connect_timeout <= milliseconds(0)) return invalid("connect_timeout must be > 0");
  if (o.reconnect_min <= milliseconds(0) || o.reconnect_max < o.reconnect_min) {
    return invalid(fmt::format("reconnect_min = {} ms, reconnect_max = {} ms: need 0 < min <= max",
                               o.reconnect_min.count(), o.reconnect_max.count()));
  }
  if (o.max_inflight < 1 || o.max_inflight > 65535) {
    return invalid(fmt::format("max_inflight = {}: must be in [1, 65535]", o.max_inflight));
  }
  if (o.client_id.size() > 65535 ||
      mosquitto_validate_utf8(o.client_id.data(), static_cast<int>(o.client_id.size())) != MOSQ_ERR_SUCCESS) {
    return invalid("client_id is not valid UTF-8");
  }
  auto topic = TopicTemplate::Parse(o.topic);
  if (!topic) return invalid("topic: " + topic.error().message());
  if (o.port == 0) o.port = o.tls ? 8883 : 1883;
  auto password = internal::ReadMqttSecret("MqttOptions", "password", o.password, o.password_file, o.password_env);
  if (!password) return tl::unexpected(password.error());
  o.password = std::move(*password);
  if (!o.password.empty() && o.username.empty()) return invalid("password is set but username is empty");
  internal::MqttTlsSettings tls = internal::MqttTlsSettingsOf(o);
  if (Status st = internal::ResolveMqttTls("MqttOptions", tls); !st) return tl::unexpected(st.error());
  o.key_password = std::move(tls.key_password);
  static std::once_flag lib_init;
  std::call_once(lib_init, [] { mosquitto_lib_init(); });
  if (o.client_id.empty()) o.client_id = RandomClientId();
  auto impl = std::make_unique<Impl>(std::move(o), std::move(*topic));
  if (int e = impl->setup_errno(); e != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("MQTT publisher for {}: eventfd failed: {}", impl->endpoint(), std::strerror(e)));
  }
  Impl* started = impl.get();
  std::shared_ptr<MqttPublisher> publisher(new MqttPublisher(std::move(impl)));
  // The thread ends in ~Impl, before the base Publisher (its listeners) goes.
  started->Start([p = publisher.get()] { p->NotifyReady(); });
  return publisher;
}

Status MqttPublisher::Publish(const Event& event) {
  Status result;
  impl_->PublishBatch(std::span<const Event>(&event, 1), Order::kKeep, std::span<Status>(&result, 1));
  return result;
}

void MqttPublisher::PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) {
  impl_->PublishBatch(events, order, results);
}

bool MqttPublisher::connected() const {
  return impl_->connected();
}
std::string MqttPublisher::last_error() const {
  return impl_->last_error();
}
bool MqttPublisher::WaitConnected(std::chrono::milliseconds timeout) const {
  return impl_->WaitConnected(timeout);
}
const std::string& MqttPublisher::endpoint() const {
  return impl_->endpoint();
}

}  // namespace jaiminho
