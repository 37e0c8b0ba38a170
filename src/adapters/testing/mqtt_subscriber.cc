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
    std::lock_guard l(mu_);
    stop_ = true;
    cv_.notify_all();
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
    std::lock_guard l(mu_);
    return stop_;
  };
  while (!stopping()) {
    int rc = ConnectOnce();
    while (rc == MOSQ_ERR_SUCCESS && !stopping()) {
      rc = mosquitto_loop(mosq_, 100, 1);
    }
    std::unique_lock l(mu_);
    subscribed_ = false;
    // Reconnect pace while the broker is away (a retry interval, not a wait
    // for some event of ours).
    cv_.wait_for(l, std::chrono::milliseconds(50), [&] { return stop_; });
  }
}

void MqttSubscriber::OnConnect(mosquitto* m, void* self, int rc, int, const mosquitto_property*) {
  auto* s = static_cast<MqttSubscriber*>(self);
  if (rc == 0) mosquitto_subscribe_v5(m, nullptr, s->options_.filter.c_str(), 1, 0, nullptr);
}

void MqttSubscriber::OnSubscribe(mosquitto*, void* self, int, int count, const int* granted,
                                 const mosquitto_property*) {
  auto* s = static_cast<MqttSubscriber*>(self);
  std::lock_guard l(s->mu_);
  s->subscribed_ = count == 1 && granted[0] == 1;
  s->cv_.notify_all();
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
  std::lock_guard l(s->mu_);
  s->messages_.push_back(std::move(r));
  s->cv_.notify_all();
}

std::vector<ReceivedMessage> MqttSubscriber::messages() const {
  std::lock_guard l(mu_);
  return messages_;
}

size_t MqttSubscriber::count() const {
  std::lock_guard l(mu_);
  return messages_.size();
}

bool MqttSubscriber::WaitFor(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock l(mu_);
  return cv_.wait_for(l, timeout, [&] { return messages_.size() >= n; });
}

bool MqttSubscriber::WaitUntil(const std::function<bool(const std::vector<ReceivedMessage>&)>& done,
                               std::chrono::milliseconds timeout) const {
  std::unique_lock l(mu_);
  return cv_.wait_for(l, timeout, [&] { return done(messages_); });
}

bool MqttSubscriber::WaitSubscribed(std::chrono::milliseconds timeout) const {
  std::unique_lock l(mu_);
  return cv_.wait_for(l, timeout, [&] { return subscribed_; });
}

}  // namespace jaiminho::testing
