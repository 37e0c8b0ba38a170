// streams: each stream's configuration and delivery state.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <vector>

#include "tool/commands.h"
#include "tool/format.h"
#include "tool/inspect.h"
#include "util/json.h"

namespace jaiminho::tool {
namespace {

// "reject", "drop-oldest".
std::string_view PolicyName(const StreamQuota& q) {
  return q.policy == QuotaPolicy::kDropOldest ? "drop-oldest" : "reject";
}

std::string StreamJson(const StreamInfo& info) {
  const StreamMetrics& m = info.metrics;
  std::string out = "{\"stream\":";
  internal::AppendJsonString(out, m.stream);
  out += ",\"strategy\":";
  internal::AppendJsonString(out, info.config ? ToString(m.strategy) : std::string_view("unknown"));
  out += fmt::format(",\"pending\":{},\"retrying\":{},\"parked\":{}", m.pending, m.retrying, m.parked_records);
  out += ",\"oldest_pending_age_us\":" +
         (m.oldest_pending_age ? std::to_string(m.oldest_pending_age->count()) : std::string("null"));
  out += fmt::format(",\"last_seq\":{},\"cursor\":{}", m.last_seq, m.cursor);
  out += ",\"reserved\":" + (info.reserved ? std::to_string(*info.reserved) : std::string("null"));
  out += fmt::format(",\"blocked\":{}", m.blocked ? "true" : "false");
  if (m.blocked) {
    out += fmt::format(",\"blocked_seq\":{},\"blocked_error\":", m.blocked_seq);
    internal::AppendJsonString(out, m.blocked_error);
  } else {
    out += ",\"blocked_seq\":null,\"blocked_error\":null";
  }
  if (info.config) {
    const internal::StreamConfig& c = *info.config;
    out += fmt::format(
        ",\"config\":{{\"max_attempts\":{},\"initial_backoff_us\":{},\"max_backoff_us\":{},\"multiplier\":{},"
        "\"jitter\":{},\"on_exhaustion\":\"{}\",\"time_to_delete_s\":{}}}",
        c.retry.max_attempts, c.retry.initial_backoff.count(), c.retry.max_backoff.count(), c.retry.multiplier,
        c.retry.jitter, c.on_exhaustion == OnExhaustion::kPark ? "park" : "block", c.time_to_delete.count());
    out.pop_back();  // the config object's "}": the quota goes inside
    if (c.has_quota()) {
      out += fmt::format(
          ",\"quota\":{{\"max_events\":{},\"max_bytes\":{},\"policy\":\"{}\",\"waiting_events\":{},"
          "\"waiting_bytes\":{}}}}}",
          c.quota.max_events, c.quota.max_bytes, PolicyName(c.quota), m.pending + m.retrying + m.parked_records,
          m.waiting_bytes.value_or(0));
    } else {
      out += ",\"quota\":null}";
    }
  } else {
    out += ",\"config\":null";
  }
  out += "}";
  return out;
}

// "-", or what waits against the quota's limits: "3/100 events, 0.1/1.0 MiB, reject".
std::string Quota(const StreamInfo& info) {
  if (!info.config || !info.config->has_quota()) return "-";
  const StreamMetrics& m = info.metrics;
  const auto& q = info.config->quota;
  std::vector<std::string> parts;
  if (q.max_events != 0)
    parts.push_back(fmt::format("{}/{} events", m.pending + m.retrying + m.parked_records, q.max_events));
  if (q.max_bytes != 0) {
    parts.push_back(fmt::format("{}/{} bytes", m.waiting_bytes.value_or(0), q.max_bytes));
  }
  parts.emplace_back(PolicyName(q));
  return fmt::format("{}", fmt::join(parts, ", "));
}

// "unlimited", or "5, then park" / "5, then block" (keep-order streams block by default).
std::string MaxAttempts(const std::optional<internal::StreamConfig>& c) {
  if (!c) return "?";
  if (c->retry.max_attempts == 0) return "unlimited";
  return fmt::format("{}, then {}", c->retry.max_attempts, c->on_exhaustion == OnExhaustion::kPark ? "park" : "block");
}

}  // namespace

int Streams(const StreamsOptions& o, Io& io) {
  auto db = OpenForReading(o.path);
  if (!db) return ReportOpenError(io, "streams", db.error());
  auto names = SelectStreams(**db, o.path, o.streams);
  if (!names) return Report(io, "streams", names.error());
  auto infos = InspectStreams(**db, *names, SystemClock()->Now());
  if (!infos) return Report(io, "streams", infos.error());
  if (o.json) {
    for (const StreamInfo& info : *infos)
      io.out << StreamJson(info) << "\n";
    io.out.flush();
    return kExitOk;
  }
  Table table(io.out,
              {"stream", "strategy", "pending", "retrying", "oldest_pending", "last_seq", "cursor", "parked",
               "max_attempts", "quota", "blocked"},
              io.out_tty);
  for (const StreamInfo& info : *infos) {
    const StreamMetrics& m = info.metrics;
    std::string blocked = "no";
    if (m.blocked) {
      std::string error = io.out_tty ? Shorten(m.blocked_error, 60) : m.blocked_error;
      blocked = fmt::format("by seq {}: {}", m.blocked_seq, error);
    }
    table.Add({m.stream, info.config ? std::string(ToString(m.strategy)) : "unknown", std::to_string(m.pending),
               std::to_string(m.retrying), m.oldest_pending_age ? FormatAge(*m.oldest_pending_age) : "-",
               std::to_string(m.last_seq), std::to_string(m.cursor), std::to_string(m.parked_records),
               MaxAttempts(info.config), Quota(info), blocked});
  }
  table.Flush();
  return kExitOk;
}

}  // namespace jaiminho::tool
