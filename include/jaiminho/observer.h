// Observers: django-jaiminho's signals, made robust.
//
//   struct Metrics : jaiminho::Observer {
//     void OnFailedToPublishByRelay(const jaiminho::Event& e, const jaiminho::Error& err) override {
//       log_metric("event-failed-to-publish-by-relay", e.type);
//     }
//   };
//   options.observers.push_back(std::make_shared<Metrics>());
//
// Each callback runs after the delivery state it reports is written. An
// observer that throws is isolated (like Django's send_robust): the exception
// is reported to OutboxOptions::capture_error and changes nothing else.
//
// Thread-safety: callbacks may run concurrently from committing threads, the
// dispatcher and relays; implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "jaiminho/event.h"
#include "jaiminho/result.h"

namespace jaiminho {

class Observer {
 public:
  virtual ~Observer() = default;
  // event_published: a publish-on-commit event was published inline.
  virtual void OnPublished(const Event& /*event*/) {}
  // event_failed_to_publish: the inline attempt failed; the relay will retry.
  virtual void OnFailedToPublish(const Event& /*event*/, const Error& /*error*/) {}
  // event_published_by_events_relay.
  virtual void OnPublishedByRelay(const Event& /*event*/) {}
  // event_failed_to_publish_by_events_relay.
  virtual void OnFailedToPublishByRelay(const Event& /*event*/, const Error& /*error*/) {}
  // A drop-oldest quota (QuotaPolicy::kDropOldest) dropped `count` of the
  // stream's oldest undelivered events, seqs first_seq..last_seq (parked or
  // already delivered seqs in between excepted), in the commit that needed the room.
  virtual void OnDropped(std::string_view /*stream*/, uint64_t /*first_seq*/, uint64_t /*last_seq*/,
                         uint64_t /*count*/) {}
  // The event was parked (dead-lettered) with this reason.
  virtual void OnParked(const Event& /*event*/, std::string_view /*reason*/) {}

  // Outages, reported by each Relay once per change, never per retry (also
  // logged through OutboxOptions::logger).
  // The publisher went down: a publish failed with a retryable error (not
  // permanent, not a missing handler) after the last success, or at the
  // relay's first attempt.
  virtual void OnPublisherDown(const Error& /*error*/) {}
  // The publisher is back: the first success after OnPublisherDown, or the
  // publisher's ready notification (Publisher::NotifyReady).
  virtual void OnPublisherUp() {}
  // A keep-order stream stopped at its failing head `seq` (once per head:
  // not again at each retry of it).
  virtual void OnStreamBlocked(std::string_view /*stream*/, uint64_t /*seq*/, const Error& /*error*/) {}
  // The head `seq` that blocked the stream was delivered, skipped or parked.
  virtual void OnStreamUnblocked(std::string_view /*stream*/, uint64_t /*seq*/) {}
};

}  // namespace jaiminho
