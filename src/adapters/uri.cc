#include "adapters/uri.h"

#include <fmt/format.h>

#include <charconv>

namespace jaiminho::internal {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> Decode(std::string_view s, std::string_view uri) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 2 < s.size() ? HexValue(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("'{}': malformed percent-escape at '{}'", uri, s.substr(i, 3)));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace

Result<Uri> ParseUri(std::string_view text, std::string_view scheme) {
  Uri uri;
  size_t sep = text.find("://");
  if (sep == std::string_view::npos || text.substr(0, sep) != scheme) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': expected {}://HOST[:PORT]/...", text, scheme));
  }
  uri.scheme = std::string(scheme);
  std::string_view rest = text.substr(sep + 3);
  std::string_view query;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view path;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    uri.has_userinfo = true;
    size_t colon = info.find(':');
    auto user = Decode(info.substr(0, colon), text);
    if (!user) return tl::unexpected(user.error());
    uri.user = std::move(*user);
    if (colon != std::string_view::npos) {
      auto password = Decode(info.substr(colon + 1), text);
      if (!password) return tl::unexpected(password.error());
      uri.password = std::move(*password);
    }
  }
  if (rest.empty()) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': no host", text));
  uri.authority = std::string(rest);
  auto decoded_path = Decode(path, text);
  if (!decoded_path) return tl::unexpected(decoded_path.error());
  uri.path = std::move(*decoded_path);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': query item '{}' is not NAME=VALUE", text, item));
    }
    auto name = Decode(item.substr(0, eq), text);
    if (!name) return tl::unexpected(name.error());
    auto value = Decode(item.substr(eq + 1), text);
    if (!value) return tl::unexpected(value.error());
    uri.query.emplace_back(std::move(*name), std::move(*value));
  }
  return uri;
}

Result<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view hostport, uint16_t default_port) {
  std::string_view host = hostport, port;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': unmatched '['", hostport));
    }
    host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': expected ':PORT' after ']'", hostport));
      }
      port = after.substr(1);
    }
  } else if (size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (host.empty()) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': empty host", hostport));
  uint16_t p = default_port;
  if (!port.empty() || hostport.ends_with(':')) {
    auto n = ParseNumber(port, 1, 65535, fmt::format("port of '{}'", hostport));
    if (!n) return tl::unexpected(n.error());
    p = static_cast<uint16_t>(*n);
  }
  return std::pair<std::string, uint16_t>(std::string(host), p);
}

Result<uint64_t> ParseNumber(std::string_view value, uint64_t min, uint64_t max, std::string_view what) {
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || n < min || n > max) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is not a number in [{}, {}]", what, value, min, max));
  }
  return n;
}

Result<bool> ParseBool(std::string_view value, std::string_view what) {
  if (value == "1" || value == "true" || value == "yes") return true;
  if (value == "0" || value == "false" || value == "no") return false;
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{}: '{}' is not a boolean (1/0, true/false, yes/no)", what, value));
}

}  // namespace jaiminho::internal
