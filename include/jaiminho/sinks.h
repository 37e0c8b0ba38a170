// Built-in publishers (sinks) for programs without a broker yet, for the
// demo, and for `jaiminho-tool relay --sink ...`.
//
//   auto sink = std::make_shared<jaiminho::JsonLinesSink>(std::cout);
//   auto relay = jaiminho::Relay::Make(*outbox, sink);
//
// Thread-safety: each sink is safe for concurrent Publish calls.
#pragma once

#include <chrono>
#include <mutex>
#include <ostream>
#include <string>

#include "jaiminho/event.h"
#include "jaiminho/publisher.h"

namespace jaiminho {

// One JSON object per event: {"id":..., "stream":..., "seq":..., "type":...,
// "key":..., "encoding":..., "strategy":..., "created_at_us":..., "attempts":...,
// "headers":{...}, "payload":"<text>" or "payload_hex":"<hex>"}. The payload is
// written as text when it is printable UTF-8, else as hex.
std::string EventToJson(const Event& event);

// Writes each event as a JSON line to `out` and flushes; success once written.
class JsonLinesSink final : public Publisher {
 public:
  explicit JsonLinesSink(std::ostream& out) : out_(out) {}
  Status Publish(const Event& event) override;

 private:
  std::mutex mu_;
  std::ostream& out_;
};

// Runs `command` with /bin/sh -c for each event, the event's JSON line on its
// stdin and JAIMINHO_EVENT_ID, JAIMINHO_STREAM, JAIMINHO_SEQ, JAIMINHO_TYPE in
// its environment. Exit status 0 is success; anything else (or running longer
// than `timeout`, after which it is killed) is a retryable failure whose
// message holds the status and the first line of stderr.
class ExecSink final : public Publisher {
 public:
  explicit ExecSink(std::string command, std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : command_(std::move(command)), timeout_(timeout) {}
  Status Publish(const Event& event) override;

 private:
  std::string command_;
  std::chrono::milliseconds timeout_;
};

}  // namespace jaiminho
