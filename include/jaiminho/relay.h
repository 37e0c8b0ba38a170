// Relay: delivers committed events to a Publisher, in seq order per stream,
// until each is acknowledged (django-jaiminho's events_relay command).
//
//   auto relay = jaiminho::Relay::Make(*outbox, handlers, {.streams = {"telemetry"}});
//   if (!relay) return relay.error();       // invalid options, unknown stream
//   auto stats = (*relay)->RunOnce();       // once: everything due now
//   (*relay)->Start();                      // or: a background loop, woken by commits
//   ...
//   (*relay)->Stop();
//
// Per stream, a pass reads the due retries, then the pending range from the
// stream's cursor up to the last durable seq (syncing the WAL first when
// commits were not synced: the relay never publishes an event a power cut
// could take back). After success an event is deleted (delete_after_send) or
// kept as sent with sent_at; the acks of a run go in one WriteBatch with the
// cursor. On failure: a keep-order event stays at the head and blocks its
// stream, retried with backoff (or parked once its attempts are exhausted when
// the stream says kPark); a publish-on-commit event moves to the retry range
// and the stream goes on. Permanent failures (kRejected, kTampered, corrupt
// records) are parked with their reason. An event whose type has no handler
// (kUnknownHandler) is not an attempt: it blocks a keep-order stream, or waits
// in the retry range, until the handler is registered (see publisher.h).
//
// Outages: the relay reports the publisher going down and up, and each
// keep-order stream blocked at a failing head and unblocked again, once per
// change, to the Observers (OnPublisherDown/Up, OnStreamBlocked/Unblocked) and
// OutboxOptions::logger. It registers a ready listener with its publisher
// (Publisher::AddReadyListener) for its lifetime: when the publisher says it is
// ready again, the loop wakes at once and retries every blocked head and
// waiting retry of its streams whatever their backoff (attempt counts are
// unchanged; a head that exhausted its attempts still waits for an operator).
//
// Thread-safety: a Relay is safe to use from several threads. Several relays
// may run in one process; a stream is delivered by one of them at a time
// (others skip it), and never at the same time as a publish-on-commit attempt
// of the same event.
//
// Closing the Outbox while a Relay exists is safe: a pass in progress finishes
// first (Close waits for it), later passes do nothing and return kClosed, and a
// Start()ed loop reports kClosed to capture_error and ends (Stop() still joins
// it). REQUIRES: every Relay of an Outbox is destroyed before the Outbox is
// destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "jaiminho/outbox.h"
#include "jaiminho/publisher.h"
#include "jaiminho/result.h"

namespace jaiminho {

struct RelayOptions {
  // Streams to deliver. Empty = every stream, including streams created later.
  // Unlike django-jaiminho, this really means all of them.
  std::vector<std::string> streams{};
  // Longest idle wait of the loop, and the poll bound for retries that become
  // due. New commits wake the loop at once. Must be > 0. Default: 1 s.
  std::chrono::microseconds interval = std::chrono::seconds(1);
  // Events read and published per batch. Must be in [1, 65536]. Default: 256.
  size_t batch_size = 256;
  // Seed for the backoff jitter; 0 picks a random seed. Default: 0.
  uint64_t seed = 0;
};

struct RelayStats {
  uint64_t published = 0;  // acknowledged by the publisher
  uint64_t failed = 0;     // failed attempts
  uint64_t retried = 0;    // attempts scheduled for later
  uint64_t parked = 0;     // dead-lettered
  // Keep-order streams of this relay blocked at a failing head after the pass
  // (a stream counts once however many passes its head failed). A state, not
  // a counter: in totals (Run(), stats()) the value after the latest pass.
  uint64_t blocked = 0;
  uint64_t busy = 0;  // streams skipped because another relay was delivering them
  // Sums the counters; `blocked` becomes o.blocked (the later state).
  RelayStats& operator+=(const RelayStats& o);
};

class Relay {
 public:
  // The only way to build a Relay (as Outbox::Open and MqttPublisher::Create
  // build theirs). Validates everything before constructing, so an invalid
  // Relay never exists: a publisher is given, interval > 0,
  // batch_size in [1, 65536] (kInvalidArgument naming the option and value),
  // and every stream named in options.streams exists (kNotFound naming it).
  [[nodiscard]] static Result<std::unique_ptr<Relay>> Make(Outbox& outbox, std::shared_ptr<Publisher> publisher,
                                                           RelayOptions options = {});

  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Delivers every selected stream until nothing is due (or the stream is blocked).
  [[nodiscard]] Result<RelayStats> RunOnce();

  // Loops until `stop` is requested: RunOnce, then waits for a commit, the next
  // due retry, or the interval. A failing pass (for example an I/O error) is
  // reported to capture_error and retried after the interval; it does not end
  // the loop. Returns the totals.
  [[nodiscard]] Result<RelayStats> Run(std::stop_token stop);

  // Run() on a background thread, until Stop().
  void Start();
  void Stop();

  // Totals since construction.
  RelayStats stats() const;

 private:
  Relay(Outbox& outbox, std::shared_ptr<Publisher> publisher, RelayOptions options);

  class Impl;
  std::unique_ptr<Impl> impl_{};
};

}  // namespace jaiminho
