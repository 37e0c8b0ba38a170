// Parsing of the broker URIs accepted by ParseMqttUri and ParseKafkaUri:
//   scheme://[user[:password]@]authority[/path][?name=value&...]
// Percent-escapes (%XX) are decoded in the user info, the path and the query.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jaiminho/result.h"

namespace jaiminho::internal {

struct Uri {
  std::string scheme{};
  bool has_userinfo = false;
  std::string user{};
  std::string password{};
  // Everything between the user info and the path: "host:port" or a list.
  std::string authority{};
  // The path without its leading '/'; empty when absent.
  std::string path{};
  std::vector<std::pair<std::string, std::string>> query{};
};

// Fails with kInvalidArgument (quoting `text`) when the scheme is not
// `scheme`, the authority is empty or an escape is malformed.
[[nodiscard]] Result<Uri> ParseUri(std::string_view text, std::string_view scheme);

// "host", "host:port", "[v6]:port" -> host and port (default_port when absent).
[[nodiscard]] Result<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view hostport, uint16_t default_port);

// A decimal number in [min, max]; the error names `what`.
[[nodiscard]] Result<uint64_t> ParseNumber(std::string_view value, uint64_t min, uint64_t max, std::string_view what);
// "1", "true", "yes", "0", "false", "no".
[[nodiscard]] Result<bool> ParseBool(std::string_view value, std::string_view what);

}  // namespace jaiminho::internal
