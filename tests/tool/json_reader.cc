#include "tool/json_reader.h"

#include <cctype>
#include <string>

#include "util/json.h"

namespace jaiminho::testing {

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  bool ParseValue(Json& out, int depth) {
    if (depth > 64) return Fail("nested too deeply");
    SkipSpace();
    if (pos_ >= s_.size()) return Fail("unexpected end");
    char c = s_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      out.kind_ = Json::Kind::kString;
      return ParseString(out.text_);
    }
    if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) return ParseNumber(out);
    if (Literal("true")) {
      out.kind_ = Json::Kind::kBool;
      out.bool_ = true;
      return true;
    }
    if (Literal("false")) {
      out.kind_ = Json::Kind::kBool;
      return true;
    }
    if (Literal("null")) return true;
    return Fail("unexpected character");
  }

  bool AtEnd() {
    SkipSpace();
    return pos_ == s_.size();
  }
  std::string error() const { return error_ + " at offset " + std::to_string(pos_); }

 private:
  bool Fail(const std::string& why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool ParseNumber(Json& out) {
    size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t d = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_])))
        ++pos_;
      return pos_ > d;
    };
    if (!digits()) return Fail("bad number");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return Fail("bad fraction");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return Fail("bad exponent");
    }
    out.kind_ = Json::Kind::kNumber;
    out.text_ = std::string(s_.substr(start, pos_ - start));
    return true;
  }
  bool ParseString(std::string& out) {
    // The library's reader: the tests read the tool's JSON as strictly as consumers decode payloads.
    if (const char* why = internal::ReadJsonString(s_, pos_, out); why != nullptr) return Fail(why);
    return true;
  }
  bool ParseArray(Json& out, int depth) {
    out.kind_ = Json::Kind::kArray;
    ++pos_;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      Json v;
      if (!ParseValue(v, depth + 1)) return false;
      out.array_.push_back(std::move(v));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return Fail("expected , or ]");
    }
  }
  bool ParseObject(Json& out, int depth) {
    out.kind_ = Json::Kind::kObject;
    ++pos_;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a member name");
      std::string key;
      if (!ParseString(key)) return false;
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected :");
      ++pos_;
      Json v;
      if (!ParseValue(v, depth + 1)) return false;
      if (!out.object_.emplace(key, std::move(v)).second) return Fail("duplicate member " + key);
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return Fail("expected , or }");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

std::optional<Json> Json::Parse(std::string_view text, std::string* error) {
  JsonParser p(text);
  Json out;
  if (!p.ParseValue(out, 0)) {
    if (error != nullptr) *error = p.error();
    return std::nullopt;
  }
  if (!p.AtEnd()) {
    if (error != nullptr) *error = "trailing text after the value";
    return std::nullopt;
  }
  return out;
}

const Json& Json::operator[](std::string_view key) const {
  static const Json kNull;
  auto it = object_.find(std::string(key));
  return it == object_.end() ? kNull : it->second;
}

}  // namespace jaiminho::testing
