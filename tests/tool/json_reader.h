// A tiny JSON reader for the tool tests: enough to parse the tool's output back
// and check it field by field (no dependency of the library on a JSON parser).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jaiminho::testing {

class Json {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  // Parses one complete JSON value (surrounding whitespace allowed); nullopt and
  // *error (position and reason) when `text` is not valid JSON.
  static std::optional<Json> Parse(std::string_view text, std::string* error = nullptr);

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool boolean() const { return bool_; }
  // The number's text as written, and as integers/double.
  const std::string& number_text() const { return text_; }
  uint64_t u64() const { return std::stoull(text_); }
  int64_t i64() const { return std::stoll(text_); }
  double number() const { return std::stod(text_); }
  // String value with escapes decoded (\uXXXX as UTF-8).
  const std::string& str() const { return text_; }
  const std::vector<Json>& array() const { return array_; }

  bool Has(std::string_view key) const { return object_.find(std::string(key)) != object_.end(); }
  // A member; a null value when absent (check Has() to tell them apart).
  const Json& operator[](std::string_view key) const;
  const std::map<std::string, Json>& object() const { return object_; }

 private:
  friend class JsonParser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  std::string text_;
  std::vector<Json> array_;
  std::map<std::string, Json> object_;
};

}  // namespace jaiminho::testing
