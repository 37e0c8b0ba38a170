#include "tool/format.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <optional>

#include "tool/inspect.h"
#include "util/json.h"
#include "util/macros.h"

namespace jaiminho::tool {

std::string FormatTime(Timestamp t) {
  int64_t us = ToMicros(t);
  if (us == 0) return "";
  // Floor division, so times before 1970 print correctly too.
  int64_t secs = us / 1'000'000;
  int64_t frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  if (gmtime_r(&tt, &tm) == nullptr) return fmt::format("@{}us", us);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

std::string FormatAge(std::chrono::microseconds d) {
  int64_t us = d.count();
  std::string sign = us < 0 ? "-" : "";
  if (us < 0) us = -us;
  if (us < 1'000'000) return fmt::format("{}{}ms", sign, us / 1000);
  int64_t s = us / 1'000'000;
  if (s < 60) return fmt::format("{}{:.1f}s", sign, static_cast<double>(us) / 1e6);
  if (s < 3600) return fmt::format("{}{}m{:02}s", sign, s / 60, s % 60);
  if (s < 86400) return fmt::format("{}{}h{:02}m", sign, s / 3600, (s % 3600) / 60);
  return fmt::format("{}{}d{:02}h", sign, s / 86400, (s % 86400) / 3600);
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

Result<std::chrono::microseconds> ParseDuration(std::string_view text, std::string_view what) {
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is not a positive duration (examples: 250ms, 2s, 1.5m, 1h)", what, text));
  };
  size_t unit_at = 0;
  while (unit_at < text.size() && (std::isdigit(static_cast<unsigned char>(text[unit_at])) || text[unit_at] == '.'))
    ++unit_at;
  std::string_view number = text.substr(0, unit_at), unit = text.substr(unit_at);
  if (number.empty()) return bad();
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || ptr != number.data() + number.size()) return bad();
  double scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1e6;
  } else if (unit == "ms") {
    scale = 1e3;
  } else if (unit == "us") {
    scale = 1;
  } else if (unit == "m" || unit == "min") {
    scale = 60e6;
  } else if (unit == "h") {
    scale = 3600e6;
  } else {
    return bad();
  }
  double us = std::round(value * scale);
  if (!(us >= 1) || us > 1e15) return bad();
  return std::chrono::microseconds(static_cast<int64_t>(us));
}

namespace {
// Digits of `text` from `pos`, at least `min` and at most `max` of them, as a number.
std::optional<int64_t> TakeDigits(std::string_view text, size_t& pos, size_t min, size_t max) {
  size_t start = pos;
  int64_t v = 0;
  while (pos < text.size() && pos - start < max && std::isdigit(static_cast<unsigned char>(text[pos]))) {
    v = v * 10 + (text[pos] - '0');
    ++pos;
  }
  if (pos - start < min) return std::nullopt;
  return v;
}

// "2024-05-01[THH:MM[:SS[.frac]](Z|+00:00)]" as microseconds since the epoch.
std::optional<int64_t> ParseIsoUtc(std::string_view text) {
  size_t pos = 0;
  auto expect = [&](char c) {
    if (pos >= text.size() || text[pos] != c) return false;
    ++pos;
    return true;
  };
  auto year = TakeDigits(text, pos, 4, 4);
  if (!year || !expect('-')) return std::nullopt;
  auto month = TakeDigits(text, pos, 2, 2);
  if (!month || !expect('-')) return std::nullopt;
  auto day = TakeDigits(text, pos, 2, 2);
  if (!day) return std::nullopt;
  int64_t hour = 0, minute = 0, second = 0, micros = 0;
  if (pos < text.size()) {
    if (!expect('T') && !expect('t') && !expect(' ')) return std::nullopt;
    auto h = TakeDigits(text, pos, 2, 2);
    if (!h || !expect(':')) return std::nullopt;
    auto m = TakeDigits(text, pos, 2, 2);
    if (!m) return std::nullopt;
    hour = *h;
    minute = *m;
    if (expect(':')) {
      auto sec = TakeDigits(text, pos, 2, 2);
      if (!sec) return std::nullopt;
      second = *sec;
      if (expect('.')) {
        size_t start = pos;
        auto frac = TakeDigits(text, pos, 1, 6);
        if (!frac) return std::nullopt;
        micros = *frac;
        for (size_t n = pos - start; n < 6; ++n)
          micros *= 10;
        while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])))
          ++pos;  // finer than microseconds: cut
      }
    }
    std::string_view zone = text.substr(pos);
    if (zone != "Z" && zone != "z" && zone != "+00:00") return std::nullopt;
    pos = text.size();
  }
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = static_cast<int>(*year - 1900);
  tm.tm_mon = static_cast<int>(*month - 1);
  tm.tm_mday = static_cast<int>(*day);
  tm.tm_hour = static_cast<int>(hour);
  tm.tm_min = static_cast<int>(minute);
  tm.tm_sec = static_cast<int>(second);
  const std::time_t secs = timegm(&tm);
  // timegm normalizes (Feb 30 becomes Mar 2): a date that moved did not exist.
  if (tm.tm_mday != *day || tm.tm_mon != *month - 1) return std::nullopt;
  return static_cast<int64_t>(secs) * 1'000'000 + micros;
}

// "1714564800" or "1714564800.25": seconds since the epoch.
std::optional<int64_t> ParseEpoch(std::string_view text) {
  size_t pos = 0;
  auto secs = TakeDigits(text, pos, 1, 12);
  if (!secs) return std::nullopt;
  int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t start = pos;
    auto frac = TakeDigits(text, pos, 1, 6);
    if (!frac) return std::nullopt;
    micros = *frac;
    for (size_t n = pos - start; n < 6; ++n)
      micros *= 10;
  }
  if (pos != text.size()) return std::nullopt;
  return *secs * 1'000'000 + micros;
}
}  // namespace

Result<int64_t> ParseTime(std::string_view text, std::string_view what) {
  std::optional<int64_t> us = text.find('-') != std::string_view::npos ? ParseIsoUtc(text) : ParseEpoch(text);
  if (!us) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is not a time: ISO-8601 UTC (2024-05-01T12:00:00Z, 2024-05-01) or "
                                 "seconds since the epoch (1714564800)",
                                 what, text));
  }
  return *us;
}

Result<uint64_t> ParseCount(std::string_view text, std::string_view what, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  const bool digits = !text.empty() && std::isdigit(static_cast<unsigned char>(text[0]));
  if (!digits || ec != std::errc() || ptr != text.data() + text.size() || v < min || v > max) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: '{}' is not a whole number from {} to {}", what, text, min, max));
  }
  return v;
}

namespace {
// Length of the longest prefix of `s` with at most `limit` bytes that does not
// split a UTF-8 sequence.
size_t Utf8Prefix(std::string_view s, size_t limit) {
  if (s.size() <= limit) return s.size();
  size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
    --n;
  return n;
}

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Byte offset of the first `chars` UTF-8 characters.
size_t Utf8Offset(std::string_view s, size_t chars) {
  size_t i = 0;
  for (size_t seen = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (seen == chars) break;
      ++seen;
    }
  }
  return i;
}
}  // namespace

std::string RenderPayload(std::string_view payload, bool full, size_t limit) {
  if (internal::IsPrintableUtf8(payload)) {
    if (full || payload.size() <= limit) return std::string(payload);
    return fmt::format("{}…({} bytes)", payload.substr(0, Utf8Prefix(payload, limit)), payload.size());
  }
  size_t keep = full ? payload.size() : std::min(payload.size(), limit / 2);
  std::string out = "hex:" + internal::ToHex(payload.substr(0, keep));
  if (keep < payload.size()) out += fmt::format("…({} bytes)", payload.size());
  return out;
}

std::string Shorten(std::string_view text, size_t limit) {
  if (Utf8Length(text) <= limit || limit == 0) return std::string(text);
  return std::string(text.substr(0, Utf8Offset(text, limit - 1))) + "…";
}

std::string EscapeCell(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string& JsonObject::Name(std::string_view name) {
  if (out_.size() > 1) out_.push_back(',');
  internal::AppendJsonString(out_, name);
  out_.push_back(':');
  return out_;
}

JsonObject& JsonObject::Str(std::string_view name, std::string_view value) {
  internal::AppendJsonString(Name(name), value);
  return *this;
}

JsonObject& JsonObject::StrOrNull(std::string_view name, const std::optional<std::string_view>& value) {
  if (!value) return Null(name);
  return Str(name, *value);
}

JsonObject& JsonObject::U64(std::string_view name, uint64_t value) {
  Name(name) += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::U64OrNull(std::string_view name, const std::optional<uint64_t>& value) {
  if (!value) return Null(name);
  return U64(name, *value);
}

JsonObject& JsonObject::I64(std::string_view name, int64_t value) {
  Name(name) += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::Double(std::string_view name, double value) {
  if (!std::isfinite(value)) return Null(name);
  Name(name) += fmt::format("{}", value);
  return *this;
}

JsonObject& JsonObject::Bool(std::string_view name, bool value) {
  Name(name) += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::Null(std::string_view name) {
  Name(name) += "null";
  return *this;
}

JsonObject& JsonObject::Seconds(std::string_view name, const std::optional<std::chrono::microseconds>& value) {
  if (!value) return Null(name);
  return Double(name, static_cast<double>(value->count()) / 1e6);
}

JsonObject& JsonObject::Time(std::string_view name, Timestamp value) {
  if (ToMicros(value) == 0) return Null(name);
  return Str(name, FormatTime(value));
}

JsonObject& JsonObject::Raw(std::string_view name, std::string_view json) {
  Name(name) += json;
  return *this;
}

std::string JsonObject::Done() {
  out_.push_back('}');
  return std::move(out_);
}

void AddStreamFacts(JsonObject& out, const StreamInfo& info) {
  const StreamMetrics& m = info.metrics;
  const bool quota = info.config && info.config->has_quota();
  out.Str("stream", m.stream)
      .Str("strategy", info.config || info.live ? ToString(m.strategy) : std::string_view("unknown"))
      .U64("pending_events", m.pending)
      .U64("retrying_events", m.retrying)
      .U64("parked_events", m.parked_records)
      .U64("waiting_events", m.pending + m.retrying + m.parked_records)
      .U64OrNull("waiting_bytes", m.waiting_bytes)
      .Seconds("oldest_pending_age_seconds", m.oldest_pending_age)
      .U64("last_seq", m.last_seq)
      .U64("cursor", m.cursor)
      .Bool("blocked", m.blocked)
      .U64OrNull("blocked_seq", m.blocked ? std::optional<uint64_t>(m.blocked_seq) : std::nullopt)
      .StrOrNull("blocked_error", m.blocked ? std::optional<std::string_view>(m.blocked_error) : std::nullopt)
      .U64("quota_max_events", m.quota_max_events)
      .U64("quota_max_bytes", m.quota_max_bytes)
      .StrOrNull("quota_policy",
                 quota ? std::optional<std::string_view>(
                             info.config->quota.policy == QuotaPolicy::kDropOldest ? "drop-oldest" : "reject")
                       : std::nullopt);
}

Table::Table(std::ostream& out, std::vector<std::string> header, bool aligned)
    : out_(out), aligned_(aligned), header_(std::move(header)), widths_(header_.size(), 0) {
  for (size_t i = 0; i < header_.size(); ++i) {
    if (aligned_) {
      for (char& c : header_[i])
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    widths_[i] = Utf8Length(header_[i]);
  }
}

Table::~Table() {
  Flush();
}

void Table::Add(std::vector<std::string> row) {
  row.resize(header_.size());
  for (auto& cell : row)
    cell = EscapeCell(cell);
  if (!aligned_) {
    if (!header_written_) {
      Write(header_);
      header_written_ = true;
    }
    Write(row);
    return;
  }
  for (size_t i = 0; i < row.size(); ++i)
    widths_[i] = std::max(widths_[i], Utf8Length(row[i]));
  buffered_.push_back(std::move(row));
  if (buffered_.size() >= 256) Flush();
}

void Table::Flush() {
  if (!header_written_) {
    Write(header_);
    header_written_ = true;
  }
  for (const auto& row : buffered_)
    Write(row);
  buffered_.clear();
  out_.flush();
}

void Table::Write(const std::vector<std::string>& row) {
  std::string line;
  for (size_t i = 0; i < row.size(); ++i) {
    if (!aligned_) {
      if (i > 0) line.push_back('\t');
      line += row[i];
      continue;
    }
    if (i > 0) line += "  ";
    line += row[i];
    if (i + 1 < row.size()) line.append(widths_[i] - std::min(widths_[i], Utf8Length(row[i])), ' ');
  }
  line.push_back('\n');
  out_ << line;
}

}  // namespace jaiminho::tool
