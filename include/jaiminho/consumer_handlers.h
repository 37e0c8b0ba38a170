// ConsumerHandlers: typed handlers for consumed events, one per event type,
// each decoding the payload with the codec the producer's Transaction::Emit
// encoded it with (jaiminho/codec.h). The consuming half of HandlerRegistry
// (jaiminho/publisher.h): the consumer adapters (MqttConsumer, KafkaConsumer)
// take one in place of a handler function.
//
//   struct Fill { std::string symbol; int64_t qty; };
//   template <> struct jaiminho::Codec<Fill> {           // the producer's codec, with Decode
//     static constexpr std::string_view kEncoding = "application/x-fill";
//     static std::string Encode(const Fill& f);
//     static jaiminho::Result<Fill> Decode(std::string_view payload);
//   };
//   jaiminho::ConsumerHandlers handlers;
//   auto ok = handlers.Register<Fill>("fill.v1", [&](const Fill& f, jaiminho::Transaction& txn) {
//     return txn.Put(positions, f.symbol, ...);          // business writes go into txn
//   });
//   auto consumer = jaiminho::KafkaConsumer::Start(outbox, inbox, options, handlers);
//
// Per event (Handle): the handler registered for ReceivedEvent::type is found;
// the event's encoding, when the message carries one, must be the codec's
// kEncoding; the payload is decoded with the codec's Decode; the handler runs
// with the value (and, if it takes one, the ReceivedEvent) and the consumer's
// transaction. Failures, each naming the event id, its type and encoding:
//   kUnknownHandler: no handler for the type (with UnknownTypes::kRefuse, the
//     default): the consumer does not acknowledge the event, so it waits for a
//     deployment that handles it (as the relay waits for a missing publisher
//     handler); with UnknownTypes::kSkip it is recorded as received with no
//     effect and acknowledged;
//   kInvalidArgument: the encoding is not the codec's, or Decode failed;
//   what the handler returns.
// An event without a type (a message from a producer that does not send it)
// is an unknown type.
//
// Codecs. Decode is any const member or static function taking the payload
// (std::string_view) and returning Result<T> (or something convertible). The
// built-in codecs decode too: bytes (for a T constructible from a
// std::string_view; a std::string_view points into the message, valid during
// the call), numbers (decimal text, the whole payload), and the flat string
// map (a JSON object of strings; a string the producer wrote with invalid
// UTF-8 comes back with its bytes as the Latin-1 characters Encode escaped
// them to).
//
// Thread-safety: Register before handing the handlers to a consumer (it takes a
// copy: later registrations do not reach it); Handle and Contains may be called
// concurrently. Handlers run on the consumer's thread.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "jaiminho/codec.h"
#include "jaiminho/event.h"
#include "jaiminho/result.h"
#include "jaiminho/transaction.h"

namespace jaiminho {

// An event as a consumer adapter received it. The views are valid during the call.
struct ReceivedEvent {
  EventId id{};                 // parsed; its stream points into raw_id
  std::string_view raw_id{};    // EventId::ToString()
  std::string_view type{};      // the event type ("" when the message carries none)
  std::string_view encoding{};  // the payload's media type ("" when the message carries none)
  std::string_view key{};       // the event key where the broker carries it (a Kafka record key), else ""
  std::string_view payload{};
  std::string_view topic{};                                        // where it came from (MQTT topic, Kafka topic)
  std::span<const std::pair<std::string, std::string>> headers{};  // Kafka headers / MQTT user properties
};

// What an event of a type without a handler does (see the class comment).
enum class UnknownTypes : uint8_t {
  kRefuse = 1,  // kUnknownHandler: not acknowledged, waits for a handler
  kSkip = 2,    // recorded as received with no effect, acknowledged
};

template <class C, class T>
concept DecoderFor = requires(const C& c, std::string_view payload) {
  { c.Decode(payload) } -> std::convertible_to<Result<T>>;
};

class ConsumerHandlers {
 public:
  // Adds the handler's writes for one event to the transaction; an error
  // aborts the event (nothing of it is committed, it is not acknowledged).
  using RawHandler = std::function<Status(const ReceivedEvent& event, Transaction& txn)>;

  explicit ConsumerHandlers(UnknownTypes unknown = UnknownTypes::kRefuse) : unknown_(unknown) {}

  // A typed handler: `handler` is callable as (const T&, Transaction&) or
  // (const T&, const ReceivedEvent&, Transaction&) and returns Status; the
  // payload is decoded with `codec` (default Codec<T>), which needs Decode.
  // kInvalidArgument when the type is empty or already registered.
  template <class T, class C = Codec<T>, class F>
  [[nodiscard]] Status Register(std::string type, F handler, C codec = {}) {
    static_assert(DecoderFor<C, T>,
                  "the codec has no Decode(std::string_view) returning Result<T>: add one to Codec<T>, or pass a "
                  "codec that has one");
    static_assert(std::is_invocable_r_v<Status, F&, const T&, Transaction&> ||
                      std::is_invocable_r_v<Status, F&, const T&, const ReceivedEvent&, Transaction&>,
                  "a handler takes (const T&, Transaction&) or (const T&, const ReceivedEvent&, Transaction&) and "
                  "returns Status");
    const std::string encoding(codec.kEncoding);
    RawHandler raw = [handler = std::move(handler), codec = std::move(codec)](const ReceivedEvent& e,
                                                                              Transaction& txn) mutable -> Status {
      Result<T> value = codec.Decode(e.payload);
      if (!value) return DecodeFailed(e, codec.kEncoding, value.error());
      if constexpr (std::is_invocable_r_v<Status, F&, const T&, const ReceivedEvent&, Transaction&>) {
        return handler(*value, e, txn);
      } else {
        return handler(*value, txn);
      }
    };
    return Add(std::move(type), encoding, std::move(raw));
  }

  // A handler of the raw event (no decoding, no encoding check).
  [[nodiscard]] Status RegisterRaw(std::string type, RawHandler handler) {
    return Add(std::move(type), std::string(), std::move(handler));
  }

  bool Contains(std::string_view type) const { return handlers_->count(type) != 0; }

  // Runs the handler for `event` in `txn` (see the class comment).
  [[nodiscard]] Status Handle(const ReceivedEvent& event, Transaction& txn) const;

 private:
  struct Entry {
    std::string encoding;  // "" for a raw handler: not checked
    RawHandler handler;
  };
  [[nodiscard]] Status Add(std::string type, std::string encoding, RawHandler handler);
  static Status DecodeFailed(const ReceivedEvent& e, std::string_view encoding, const Error& why);

  UnknownTypes unknown_;
  // Shared by copies (a consumer's copy and the caller's) until one registers.
  std::shared_ptr<const std::map<std::string, Entry, std::less<>>> handlers_ =
      std::make_shared<const std::map<std::string, Entry, std::less<>>>();
};

}  // namespace jaiminho
