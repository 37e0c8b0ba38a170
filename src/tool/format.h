// Text helpers of jaiminho-tool: times, ages, durations, payloads and tables.
//
//   tool::Table t(out, {"stream", "seq"}, /*aligned=*/isatty(1));
//   t.Add({"fills", "42"});
//   t.Flush();
//
// Thread-safety: functions are pure; a Table is used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/clock.h"
#include "jaiminho/result.h"

namespace jaiminho::tool {

// ISO-8601 UTC with microseconds: "2024-05-01T12:00:00.000123Z". Empty for the
// zero timestamp (jaiminho's "not set").
std::string FormatTime(Timestamp t);

// A short human age or duration: "850ms", "12.3s", "5m07s", "3h05m", "2d04h".
std::string FormatAge(std::chrono::microseconds d);

// "0 B", "12.0 KiB", "3.4 MiB", ...
std::string FormatBytes(uint64_t bytes);

// Parses "250ms", "2s", "1.5s", "1m", "1h", "100us"; a bare number is seconds.
// kInvalidArgument (naming `what` and the text) unless > 0.
Result<std::chrono::microseconds> ParseDuration(std::string_view text, std::string_view what);

// Parses a point in time as microseconds since the epoch: ISO-8601 UTC
// ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5Z", "2024-05-01T12:00Z", a
// date "2024-05-01" for its midnight; "+00:00" for "Z"; other offsets are
// refused) or seconds since the epoch ("1714564800", "1714564800.25").
// kInvalidArgument naming `what` and the text otherwise.
Result<int64_t> ParseTime(std::string_view text, std::string_view what);

// A count or seq given on the command line: decimal digits only, from `min` to
// `max`. kInvalidArgument "<what>: '<text>' is not a whole number from <min> to <max>".
Result<uint64_t> ParseCount(std::string_view text, std::string_view what, uint64_t min, uint64_t max);

// A payload for humans: the text when it is printable UTF-8, else "hex:" and its
// hex digits. Unless `full`, at most `limit` bytes of text (cut at a character
// boundary) or limit/2 bytes of hex are kept, followed by "…(N bytes)".
std::string RenderPayload(std::string_view payload, bool full, size_t limit = 64);

// Keeps at most `limit` characters of UTF-8 text, marking a cut with "…".
std::string Shorten(std::string_view text, size_t limit);

// Makes a cell one line: backslash, tab, newline and carriage return become
// \\ \t \n \r, so tab-separated output can be split and read back.
std::string EscapeCell(std::string_view s);

// One JSON object, written member by member (names and strings escaped):
// the one writer of the tool's JSON output, so that a fact has one name, unit
// and type wherever it appears (README, "JSON schema").
//
//   std::string line = tool::JsonObject().Str("stream", "fills").U64("pending_events", 3).Done();
class JsonObject {
 public:
  JsonObject& Str(std::string_view name, std::string_view value);
  // A string, or null when absent.
  JsonObject& StrOrNull(std::string_view name, const std::optional<std::string_view>& value);
  JsonObject& U64(std::string_view name, uint64_t value);
  // A whole number, or null when absent.
  JsonObject& U64OrNull(std::string_view name, const std::optional<uint64_t>& value);
  JsonObject& I64(std::string_view name, int64_t value);
  JsonObject& Double(std::string_view name, double value);
  JsonObject& Bool(std::string_view name, bool value);
  JsonObject& Null(std::string_view name);
  // A duration as seconds (a number, microsecond precision), or null when absent.
  JsonObject& Seconds(std::string_view name, const std::optional<std::chrono::microseconds>& value);
  // A point in time: ISO-8601 UTC (FormatTime), or null for the zero timestamp.
  JsonObject& Time(std::string_view name, Timestamp value);
  // `json` as the member's value, as it is (an object or array built elsewhere).
  JsonObject& Raw(std::string_view name, std::string_view json);
  // The object's text ("{...}", without a newline).
  std::string Done();

 private:
  std::string& Name(std::string_view name);
  std::string out_ = "{";
};

struct StreamInfo;  // tool/inspect.h

// The facts of a stream that `streams --json` and `stats --json` both give,
// with the same names, units and types (README, "JSON schema"): stream,
// strategy, pending_events, retrying_events, parked_events, waiting_events,
// waiting_bytes, oldest_pending_age_seconds, last_seq, cursor, blocked,
// blocked_seq, blocked_error, quota_max_events, quota_max_bytes, quota_policy.
void AddStreamFacts(JsonObject& out, const StreamInfo& info);

// Rows for humans. Aligned: columns padded to their width, separated by two
// spaces, header in capitals (widths come from the first rows buffered, and
// grow afterwards). Otherwise: tab-separated, with a header line before the
// first row. Either way the header is written even without rows (by Flush or
// the destructor). Cells are escaped with EscapeCell.
class Table {
 public:
  Table(std::ostream& out, std::vector<std::string> header, bool aligned);
  ~Table();
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  // REQUIRES: row.size() == header.size().
  void Add(std::vector<std::string> row);
  // Writes buffered rows (aligned mode buffers up to 256 rows to size columns).
  void Flush();

 private:
  void Write(const std::vector<std::string>& row);

  std::ostream& out_;
  bool aligned_;
  bool header_written_ = false;
  std::vector<std::string> header_;
  std::vector<size_t> widths_;
  std::vector<std::vector<std::string>> buffered_;
};

}  // namespace jaiminho::tool
