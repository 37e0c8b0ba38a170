// Minimal JSON writing shared by the JSON codec, the tool and the metrics.
#pragma once

#include <string>
#include <string_view>

namespace jaiminho::internal {

// Appends `s` as a quoted JSON string. Bytes that are not valid UTF-8 are
// written as \u00XX escapes of their Latin-1 value, so the output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

// True when `s` is valid UTF-8 without control characters other than \t \n \r.
bool IsPrintableUtf8(std::string_view s);

// Lowercase hex.
std::string ToHex(std::string_view bytes);

}  // namespace jaiminho::internal
