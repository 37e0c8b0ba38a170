#include "adapters/testing/mqtt_subscriber.h"

#include <fmt/format.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <cstdlib>

namespace jaiminho::testing {

std::optional<std::string> ReceivedMessage::Property(std::string_view name) const {
  for (const auto& [n, v] : user_properties) {
    if (n == name) return v;
  }
  return std::nullopt;
}

Result<std::unique_ptr<MqttSubscriber>> MqttSubscriber::Connect(MqttSubscriberOptions options) {
  static std::once_flag lib_init;
  std::call_once(lib_init, [] { mosquitto_lib_init(); });
  std::unique_ptr<MqttSubscriber> sub(new MqttSubscriber(std::move(options)));
  sub->mosq_ = mosquitto_new(sub->options_.client_id.c_str(), !sub->options_.persistent, sub.get());
  if (sub->mosq_ == nullptr) return MakeError(ErrorCode::kInternal, "mosquitto_new failed");
  mosquitto_int_option(sub->mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_threaded_set(sub->mosq_, true);
  mosquitto_connect_v5_callback_set(sub->mosq_, &MqttSubscriber::OnConnect);
  mosquitto_subscribe_v5_callback_set(sub->mosq_, &MqttSubscriber::OnSubscribe);
  mosquitto_message_v5_callback_set(sub->mosq_, &MqttSubscriber::OnMessage);
  sub->thread_ = std::thread([s = sub.get()] { s->Run(); });
  if (!sub->WaitSubscribed(sub->options_.timeout)) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("test subscriber could not subscribe to '{}' at {}:{}", sub->options_.filter,
                                 sub->options_.host, sub->options_.port));
  }
  return sub;
}

MqttSubscriber::~MqttSubscriber() {
  {
    internal::MutexLock l(mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  mosquitto_disconnect(mosq_);
  if (thread_.joinable()) thread_.join();
  mosquitto_destroy(mosq_);
}

int MqttSubscriber::ConnectOnce() {
  mosquitto_property* props = nullptr;
  if (options_.persistent) mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 86400);
  int rc = mosquitto_connect_bind_v5(mosq_, options_.host.c_str(), options_.port, 30, nullptr, props);
  mosquitto_property_free_all(&props);
  return rc;
}

void MqttSubscriber::Run() {
  auto stopping = [&] {
    internal::MutexLock l(mu_);
    return stop_;
  };
  while (!stopping()) {
    int rc = ConnectOnce();
    while (rc == MOSQ_ERR_SUCCESS && !stopping()) {
      rc = mosquitto_loop(mosq_, 100, 1);
    }
    internal::MutexLock l(mu_);
    subscribed_ = false;
    // Reconnect pace while the broker is away (a retry interval, not a wait
    // for some event of ours).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (!stop_ && cv_.WaitUntil(mu_, deadline)) {
    }
  }
}

void MqttSubscriber::OnConnect(mosquitto* m, void* self, int rc, int, const mosquitto_property*) {
  auto* s = static_cast<MqttSubscriber*>(self);
  if (rc == 0) mosquitto_subscribe_v5(m, nullptr, s->options_.filter.c_str(), 1, 0, nullptr);
}

void MqttSubscriber::OnSubscribe(mosquitto*, void* self, int, int count, const int* granted,
                                 const mosquitto_property*) {
  auto* s = static_cast<MqttSubscriber*>(self);
  internal::MutexLock l(s->mu_);
  s->subscribed_ = count == 1 && granted[0] == 1;
  s->cv_.SignalAll();
}

void MqttSubscriber::OnMessage(mosquitto*, void* self, const mosquitto_message* msg, const mosquitto_property* props) {
  auto* s = static_cast<MqttSubscriber*>(self);
  ReceivedMessage r;
  r.topic = msg->topic;
  r.payload.assign(static_cast<const char*>(msg->payload), static_cast<size_t>(msg->payloadlen));
  char* name = nullptr;
  char* value = nullptr;
  for (const mosquitto_property* p =
           mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
       p != nullptr; p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
    r.user_properties.emplace_back(name, value);
    std::free(name);
    std::free(value);
  }
  if (mosquitto_property_read_string(props, MQTT_PROP_CONTENT_TYPE, &value, false) != nullptr) {
    r.content_type = value;
    std::free(value);
  }
  internal::MutexLock l(s->mu_);
  s->messages_.push_back(std::move(r));
  s->cv_.SignalAll();
}

std::vector<ReceivedMessage> MqttSubscriber::messages() const {
  internal::MutexLock l(mu_);
  return messages_;
}

size_t MqttSubscriber::count() const {
  internal::MutexLock l(mu_);
  return messages_.size();
}

bool MqttSubscriber::WaitFor(size_t n, std::chrono::milliseconds timeout) const {
  internal::MutexLock l(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (messages_.size() < n) {
    if (!cv_.WaitUntil(mu_, deadline)) return messages_.size() >= n;
  }
  return true;
}

bool MqttSubscriber::WaitUntil(const std::function<bool(const std::vector<ReceivedMessage>&)>& done,
                               std::chrono::milliseconds timeout) const {
  internal::MutexLock l(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done(messages_)) {
    if (!cv_.WaitUntil(mu_, deadline)) return done(messages_);
  }
  return true;
}

bool MqttSubscriber::WaitSubscribed(std::chrono::milliseconds timeout) const {
  internal::MutexLock l(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!subscribed_) {
    if (!cv_.WaitUntil(mu_, deadline)) return subscribed_;
  }
  return true;
}

}  // namespace jaiminho::testing
