// Messages (what a program enqueues) and Events (what a publisher receives).
//
//   txn.Enqueue(*stream, {.type = "reading.v1", .key = "dev/42", .payload = bytes});
//   ...
//   Status MyPublisher::Publish(const jaiminho::Event& e) {
//     broker.send(topic(e.type), e.id.ToString(), e.payload);   // id for dedup
//   }
//
// Thread-safety: values. An Event's string_views point into a buffer owned by
// whoever passed the Event; they are valid only during that call.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/clock.h"
#include "jaiminho/options.h"

namespace jaiminho {

// A database's identity: 16 random bytes chosen when it was created.
struct DatabaseId {
  std::array<uint8_t, 16> bytes{};
  // 32 lowercase hex digits.
  std::string ToHex() const;
  bool operator==(const DatabaseId&) const = default;
};

// Identifies an event for consumer deduplication: unique across databases,
// streams and restarts (a seq is never reused in a stream).
struct EventId {
  DatabaseId db{};
  std::string_view stream{};
  uint64_t seq = 0;
  // "<db hex>/<stream>/<seq>"
  std::string ToString() const;
};

struct Header {
  std::string_view name{};
  std::string_view value{};
};

// What a program enqueues into a stream.
struct Message {
  // The handler name (django-jaiminho's function): 1-256 bytes. Required.
  std::string_view type{};
  // Business key (for example the device or order id); may be empty.
  std::string_view key{};
  // Encoded payload, at most OutboxOptions::max_payload_bytes.
  std::string_view payload{};
  // Media type of the payload. Default: "application/octet-stream".
  std::string_view encoding = "application/octet-stream";
  std::span<const Header> headers{};
  // Overrides the stream's strategy for this event.
  std::optional<Strategy> strategy{};
};

// Where a record is.
enum class EventState : uint8_t {
  kPending = 1,   // waiting for delivery (first attempt, or a keep-order head retrying)
  kRetrying = 2,  // a publish-on-commit event waiting for its next attempt
  kSent = 3,      // delivered; kept until time_to_delete (delete_after_send=false)
  kParked = 4,    // dead-lettered: attempts exhausted, unknown handler, bad record, skipped
};
std::string_view ToString(EventState s);  // "pending", "retrying", "sent", "parked"

// One operator action on a stored event (Outbox::Requeue, RequeueAllParked,
// Skip), kept in Event::history.
struct HistoryEntry {
  Timestamp at{};
  // Who: the actor given to the call (jaiminho-tool gives its OS user), else
  // the user the process runs as.
  std::string_view user{};
  // "requeue" or "skip".
  std::string_view action{};
  // Why, as given (may be empty for a requeue).
  std::string_view reason{};
  // The event's note that the action replaced.
  std::string_view previous_note{};
};

// An event keeps the last kMaxHistoryEntries actions (Event::history_dropped
// counts the older ones); reasons, notes and users are cut to
// kMaxHistoryText bytes (at a UTF-8 character, marked with "…"). A record's
// history thus stays under about 26 KiB however often it is requeued (an
// action with a short reason takes about 100 bytes).
inline constexpr size_t kMaxHistoryEntries = 16;
inline constexpr size_t kMaxHistoryText = 512;

// A stored event, as given to publishers, observers and inspection.
struct Event {
  EventId id{};
  EventState state = EventState::kPending;
  std::string_view type{};
  std::string_view key{};
  std::string_view payload{};
  std::string_view encoding{};
  std::vector<Header> headers{};
  Timestamp created_at{};
  Strategy strategy = Strategy::kPublishOnCommit;
  // Failed attempts so far.
  uint32_t attempts = 0;
  std::string_view last_error{};
  // Zero when not scheduled.
  Timestamp next_attempt_at{};
  // Zero when not sent.
  Timestamp sent_at{};
  // Why it is parked or blocked, or the last operator action.
  std::string_view note{};
  // Id of the signing key, empty when unsigned.
  std::string_view key_id{};
  // Operator actions on it, oldest first (empty in records written before
  // histories were kept: their note is as it was).
  std::vector<HistoryEntry> history{};
  // Older actions dropped from `history` to keep it bounded.
  uint32_t history_dropped = 0;
};

}  // namespace jaiminho
