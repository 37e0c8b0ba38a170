#include "util/json.h"

#include <fmt/format.h>

namespace jaiminho::internal {
namespace {
// Length of the valid UTF-8 sequence starting at s[i], or 0 when invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Reject overlong forms, surrogates and out-of-range code points.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}
}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = Utf8SequenceLength(s, i);
      if (n == 0) {
        out += fmt::format("\\u{:04x}", c);
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

bool IsPrintableUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) return false;
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

namespace {

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Four hex digits at in[pos].
bool Hex4(std::string_view in, size_t& pos, uint32_t& v) {
  if (in.size() - pos < 4) return false;
  v = 0;
  for (size_t k = 0; k < 4; ++k) {
    const char c = in[pos + k];
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
    v = v * 16 + d;
  }
  pos += 4;
  return true;
}

bool Eat(std::string_view in, size_t& pos, char c) {
  if (pos < in.size() && in[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

}  // namespace

const char* ReadJsonString(std::string_view in, size_t& pos, std::string& out) {
  if (!Eat(in, pos, '"')) return "expected a string";
  for (;;) {
    if (pos >= in.size()) return "an unterminated string";
    const auto c = static_cast<unsigned char>(in[pos]);
    if (c == '"') {
      ++pos;
      return nullptr;
    }
    if (c < 0x20) return "a control character in a string";
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(in, pos);
      if (n == 0) return "invalid UTF-8";
      out.append(in.substr(pos, n));
      pos += n;
      continue;
    }
    ++pos;
    if (c != '\\') {
      out.push_back(static_cast<char>(c));
      continue;
    }
    if (pos >= in.size()) return "an unterminated escape";
    const char e = in[pos++];
    switch (e) {
      case '"':
      case '\\':
      case '/':
        out.push_back(e);
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        uint32_t cp;
        if (!Hex4(in, pos, cp)) return "a \\u escape without four hex digits";
        if (cp >= 0xDC00 && cp <= 0xDFFF) return "a lone low surrogate";
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t low;
          if (!Eat(in, pos, '\\') || !Eat(in, pos, 'u') || !Hex4(in, pos, low) || low < 0xDC00 || low > 0xDFFF) {
            return "a high surrogate without its low surrogate";
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        AppendUtf8(out, cp);
        break;
      }
      default:
        --pos;
        return "an unknown escape";
    }
  }
}

namespace {

class StringObjectParser {
 public:
  explicit StringObjectParser(std::string_view in) : in_(in) {}

  Result<std::map<std::string, std::string>> Parse() {
    std::map<std::string, std::string> out;
    SkipSpace();
    if (!Eat('{')) return Fail("expected '{'");
    SkipSpace();
    if (!Eat('}')) {
      for (;;) {
        SkipSpace();
        const size_t at = pos_;
        std::string name, value;
        if (auto s = String(name); !s) return tl::unexpected(s.error());
        SkipSpace();
        if (!Eat(':')) return Fail("expected ':' after a name");
        SkipSpace();
        if (pos_ < in_.size() && in_[pos_] != '"') return Fail("a value that is not a string");
        if (auto s = String(value); !s) return tl::unexpected(s.error());
        if (!out.emplace(std::move(name), std::move(value)).second) {
          pos_ = at;
          return Fail("a name given twice");
        }
        SkipSpace();
        if (Eat('}')) break;
        if (!Eat(',')) return Fail("expected ',' or '}'");
      }
    }
    SkipSpace();
    if (pos_ != in_.size()) return Fail("bytes after the object");
    return out;
  }

 private:
  tl::unexpected<Error> Fail(std::string_view why) const {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("not a JSON object of strings: {} at byte {} of {}", why, pos_, in_.size()));
  }
  void SkipSpace() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r'))
      ++pos_;
  }
  bool Eat(char c) {
    if (pos_ < in_.size() && in_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  Status String(std::string& out) {
    if (const char* why = ReadJsonString(in_, pos_, out); why != nullptr) return Fail(why);
    return {};
  }

  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace

Result<std::map<std::string, std::string>> ParseJsonStringObject(std::string_view json) {
  return StringObjectParser(json).Parse();
}

}  // namespace jaiminho::internal
