#include "jaiminho/adapters/topic.h"

#include <fmt/format.h>

namespace jaiminho {

Result<TopicTemplate> TopicTemplate::Parse(std::string_view text) {
  if (text.empty()) return MakeError(ErrorCode::kInvalidArgument, "topic template is empty");
  TopicTemplate t;
  t.text_ = std::string(text);
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) t.parts_.push_back(Part{Field::kLiteral, std::move(literal)});
    literal.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literal.push_back('}');
        ++i;
        continue;
      }
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("topic template '{}': unmatched '}}' at offset {}", text, i));
    }
    if (c != '{') {
      literal.push_back(c);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      literal.push_back('{');
      ++i;
      continue;
    }
    size_t end = text.find('}', i);
    if (end == std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("topic template '{}': unmatched '{{' at offset {}", text, i));
    }
    std::string_view name = text.substr(i + 1, end - i - 1);
    Field f;
    if (name == "stream") {
      f = Field::kStream;
    } else if (name == "type") {
      f = Field::kType;
    } else if (name == "key") {
      f = Field::kKey;
    } else if (name == "seq") {
      f = Field::kSeq;
    } else if (name == "id") {
      f = Field::kId;
    } else if (name == "db") {
      f = Field::kDb;
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("topic template '{}': unknown placeholder '{{{}}}' (known: {{stream}}, {{type}}, "
                                   "{{key}}, {{seq}}, {{id}}, {{db}})",
                                   text, name));
    }
    flush();
    t.parts_.push_back(Part{f, {}});
    i = end;
  }
  flush();
  return t;
}

std::string TopicTemplate::Expand(const Event& event) const {
  std::string out;
  for (const Part& p : parts_) {
    switch (p.field) {
      case Field::kLiteral:
        out += p.literal;
        break;
      case Field::kStream:
        out += event.id.stream;
        break;
      case Field::kType:
        out += event.type;
        break;
      case Field::kKey:
        out += event.key;
        break;
      case Field::kSeq:
        out += std::to_string(event.id.seq);
        break;
      case Field::kId:
        out += event.id.ToString();
        break;
      case Field::kDb:
        out += event.id.db.ToHex();
        break;
    }
  }
  return out;
}

bool TopicTemplate::StreamOnly() const {
  for (const Part& p : parts_) {
    if (p.field != Field::kLiteral && p.field != Field::kStream) return false;
  }
  return true;
}

}  // namespace jaiminho
