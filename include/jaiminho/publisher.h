// Publisher: the broker-agnostic interface the relay and publish-on-commit use
// to deliver events. HandlerRegistry is the implementation that mirrors
// django-jaiminho's decorated functions: one handler per event type.
//
//   auto handlers = std::make_shared<jaiminho::HandlerRegistry>();
//   handlers->Register("reading.v1", [&](const jaiminho::Event& e) -> jaiminho::Status {
//     return mqtt.Publish("telemetry/" + std::string(e.key), e.payload);
//   });
//
// A publisher returns success only once the broker has acknowledged the event.
// Failures are classified by ErrorCode:
//   kRejected, kTampered, kCorruption: permanent, the event is parked;
//   kUnknownHandler (no handler for the event's type): a deployment error, not
//     an attempt. A keep-order stream blocks at the event (blocked reason
//     "no handler for type 'X'" in metrics and `jaiminho-tool streams`) until a
//     handler exists, then resumes in order, or an operator skips it; any other
//     event waits in the retry range. Never parked for it, no failure signal
//     (django-jaiminho sends none for a missing function); reported once to
//     capture_error. Rechecked every RetryPolicy::initial_backoff;
//   anything else (kUnavailable, kIOError, ...): retried per the stream's RetryPolicy.
// A publisher that throws is treated as a retryable failure.
//
// Readiness: a publisher that knows its connection came back (a broker
// reconnect) calls NotifyReady(); every Relay using it then wakes at once and
// retries its blocked heads and waiting retries without waiting for their
// backoff (their attempt counts are unchanged). The MQTT adapter notifies on
// each accepted (re)connect, the Kafka adapter when a broker is up again after
// all were down.
//
// Thread-safety: the relay calls a publisher from one thread at a time per
// stream, but different streams and publish-on-commit may call it concurrently:
// implementations must be safe for concurrent calls.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "jaiminho/event.h"
#include "jaiminho/result.h"

namespace jaiminho {

// How PublishBatch treats a failure; the stream's Strategy decides.
enum class Order {
  kKeep,  // a keep-order run: nothing after the first failure is delivered
  kAny,   // independent events: each is attempted whatever the others' outcome
};

// The outcome PublishBatch reports for an event of an Order::kKeep batch that
// it did not attempt because an earlier one failed (ErrorCode::kAborted).
Error AbortedError();

class Publisher {
 public:
  virtual ~Publisher() = default;

  // Delivers one event. Returns once the broker acknowledged it.
  virtual Status Publish(const Event& event) = 0;

  // Delivers events in order; results[i] is the outcome of events[i]
  // (results.size() == events.size()). With Order::kKeep (a keep-order run),
  // the publisher must not deliver anything after the first failure and reports
  // AbortedError() for the events it did not attempt. The default calls
  // Publish() for each event.
  virtual void PublishBatch(std::span<const Event> events, Order order, std::span<Status> results);

  // Whether the publisher is connected to its broker; nullopt (the default)
  // when it has no notion of a connection.
  virtual std::optional<bool> IsConnected() const { return std::nullopt; }

  // Calls `listener` at each NotifyReady() until RemoveReadyListener(id).
  // A listener runs on the notifying thread (an adapter's network thread),
  // under the publisher's listener lock: it must be quick and must not call
  // Add/RemoveReadyListener, nor publish (an adapter's network thread is the
  // one that would send it and read its acknowledgement). Once
  // RemoveReadyListener returns, the listener is not running and will not run
  // again.
  uint64_t AddReadyListener(std::function<void()> listener);
  void RemoveReadyListener(uint64_t id);

 protected:
  // Tells the listeners the publisher can deliver again.
  void NotifyReady();

 private:
  std::mutex ready_mu_;
  uint64_t next_listener_ = 1;
  std::unordered_map<uint64_t, std::function<void()>> ready_listeners_;
};

// True when a failure with this code is permanent (the event is parked, not retried).
bool IsPermanent(ErrorCode code);

// One handler per event type. Publishing an event whose type has no handler
// fails with kUnknownHandler (see above: it waits for the handler). Handlers
// may be registered while relays run.
// Thread-safety: Register and Publish may be called concurrently.
class HandlerRegistry final : public Publisher {
 public:
  using Handler = std::function<Status(const Event&)>;

  // Fails with kInvalidArgument when the type is empty or already registered.
  [[nodiscard]] Status Register(std::string type, Handler handler);
  bool Contains(std::string_view type) const;

  Status Publish(const Event& event) override;

 private:
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, Handler> handlers_;
};

}  // namespace jaiminho
