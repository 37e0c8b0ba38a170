// TopicTemplate: builds a broker topic (MQTT topic, Kafka topic) from an
// event's fields. Shared by the MQTT and Kafka publishers.
//
//   auto t = jaiminho::TopicTemplate::Parse("gw/{stream}/{type}/{key}");
//   if (!t) return t.error();
//   std::string topic = t->Expand(event);   // "gw/telemetry/reading.v1/dev/42"
//
// Placeholders:
//   {stream}  the stream name (event.id.stream)
//   {type}    the event type
//   {key}     the event key (may be empty)
//   {seq}     the event's seq in its stream, in decimal
//   {id}      EventId::ToString(): "<db hex>/<stream>/<seq>"
//   {db}      the database id, 32 hex digits
// "{{" and "}}" stand for literal braces. Anything else in braces is an error.
//
// Thread-safety: immutable after Parse; Expand may be called concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/event.h"
#include "jaiminho/result.h"

namespace jaiminho {

class TopicTemplate {
 public:
  // Fails with kInvalidArgument (naming the template and the offending part)
  // on an unknown placeholder, an unbalanced brace or an empty template.
  [[nodiscard]] static Result<TopicTemplate> Parse(std::string_view text);

  // The topic of `event`. Never fails; the broker adapter validates the result
  // against its own topic rules.
  std::string Expand(const Event& event) const;

  // True when the expansion does not depend on the event's type, key, seq or
  // id (only on the stream and literals).
  bool StreamOnly() const;

  const std::string& text() const { return text_; }

 private:
  enum class Field : uint8_t { kLiteral, kStream, kType, kKey, kSeq, kId, kDb };
  struct Part {
    Field field = Field::kLiteral;
    std::string literal{};
  };
  TopicTemplate() = default;

  std::string text_{};
  std::vector<Part> parts_{};
};

}  // namespace jaiminho
