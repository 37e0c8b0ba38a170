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
  JsonObject out;
  AddStreamFacts(out, info);
  out.U64OrNull("reserved", info.reserved);
  if (info.config) {
    const internal::StreamConfig& c = *info.config;
    auto seconds = [](auto d) { return std::optional<std::chrono::microseconds>(d); };
    out.Raw("config", JsonObject()
                          .U64("max_attempts", c.retry.max_attempts)
                          .Seconds("initial_backoff_seconds", seconds(c.retry.initial_backoff))
                          .Seconds("max_backoff_seconds", seconds(c.retry.max_backoff))
                          .Double("multiplier", c.retry.multiplier)
                          .Double("jitter", c.retry.jitter)
                          .Str("on_exhaustion", c.on_exhaustion == OnExhaustion::kPark ? "park" : "block")
                          .U64("time_to_delete_seconds", static_cast<uint64_t>(c.time_to_delete.count()))
                          .Done());
  } else {
    out.Null("config");
  }
  return out.Done();
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
