// An MQTT v5 subscriber that records what it receives, for the adapter tests
// and the examples. Not part of the installed library.
//
//   auto sub = jaiminho::testing::MqttSubscriber::Connect({.port = broker->port(), .filter = "gw/#"});
//   ASSERT_TRUE((*sub)->WaitFor(100, std::chrono::seconds(20)));
//   for (const auto& m : (*sub)->messages()) ... m.topic, m.payload, m.Property("jaiminho-event-id")
//
// With `persistent`, the session (subscription and queued QoS 1 messages)
// outlives the connection and, with a broker that persists, a broker restart:
// the subscriber reconnects by itself (every 50 ms while disconnected) and the
// broker delivers what was queued meanwhile.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "jaiminho/result.h"
#include "util/mutex.h"

struct mosquitto;
struct mosquitto_message;
struct mqtt5__property;

namespace jaiminho::testing {

struct ReceivedMessage {
  std::string topic;
  std::string payload;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> user_properties;
  // The first user property named `name`, if any.
  std::optional<std::string> Property(std::string_view name) const;
};

struct MqttSubscriberOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  // Topic filter subscribed at QoS 1. Default: "#".
  std::string filter = "#";
  // Default: "jaiminho-test-sub".
  std::string client_id = "jaiminho-test-sub";
  // Keep the session across disconnects and broker restarts. Default: true.
  bool persistent = true;
  // How long Connect waits for CONNACK and SUBACK. Default: 10 s.
  std::chrono::milliseconds timeout = std::chrono::seconds(10);
};

class MqttSubscriber {
 public:
  // Connects and subscribes; fails with kUnavailable when either does not
  // happen within options.timeout.
  [[nodiscard]] static Result<std::unique_ptr<MqttSubscriber>> Connect(MqttSubscriberOptions options);
  ~MqttSubscriber();
  MqttSubscriber(const MqttSubscriber&) = delete;
  MqttSubscriber& operator=(const MqttSubscriber&) = delete;

  std::vector<ReceivedMessage> messages() const EXCLUDES(mu_);
  size_t count() const EXCLUDES(mu_);
  // Waits until at least `n` messages arrived; false on timeout.
  bool WaitFor(size_t n, std::chrono::milliseconds timeout) const EXCLUDES(mu_);
  // Waits until `done(messages)` holds; false on timeout.
  bool WaitUntil(const std::function<bool(const std::vector<ReceivedMessage>&)>& done,
                 std::chrono::milliseconds timeout) const EXCLUDES(mu_);
  // Waits until subscribed on a live connection; false on timeout.
  bool WaitSubscribed(std::chrono::milliseconds timeout) const EXCLUDES(mu_);

 private:
  explicit MqttSubscriber(MqttSubscriberOptions options) : options_(std::move(options)) {}
  void Run();
  int ConnectOnce();
  static void OnConnect(mosquitto*, void*, int, int, const mqtt5__property*);
  static void OnSubscribe(mosquitto*, void*, int, int, const int*, const mqtt5__property*);
  static void OnMessage(mosquitto*, void*, const mosquitto_message*, const mqtt5__property*);

  MqttSubscriberOptions options_;
  mosquitto* mosq_ = nullptr;
  std::thread thread_{};
  mutable internal::Mutex mu_;
  mutable internal::CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  bool subscribed_ GUARDED_BY(mu_) = false;
  std::vector<ReceivedMessage> messages_ GUARDED_BY(mu_){};
};

}  // namespace jaiminho::testing
