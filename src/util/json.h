// Minimal JSON writing shared by the JSON codec, the tool and the metrics.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "jaiminho/result.h"

namespace jaiminho::internal {

// Appends `s` as a quoted JSON string. Bytes that are not valid UTF-8 are
// written as \u00XX escapes of their Latin-1 value, so the output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

// True when `s` is valid UTF-8 without control characters other than \t \n \r.
bool IsPrintableUtf8(std::string_view s);

// Reads the JSON string whose opening quote is at in[pos] into `out`
// (appended), unescaping; pos moves past its closing quote. Returns nullptr,
// or what is wrong with pos at the fault (escapes and UTF-8 strictly: RFC 8259).
const char* ReadJsonString(std::string_view in, size_t& pos, std::string& out);

// Parses a JSON object whose values are all strings (what the JSON codec
// writes), strictly (RFC 8259: no trailing commas, no duplicate names, nothing
// after the object but whitespace). Escapes, \u ones with surrogate pairs
// included, become UTF-8. kInvalidArgument naming the byte offset and what is
// wrong.
Result<std::map<std::string, std::string>> ParseJsonStringObject(std::string_view json);

// Lowercase hex.
std::string ToHex(std::string_view bytes);

}  // namespace jaiminho::internal
