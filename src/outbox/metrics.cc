#include "jaiminho/metrics.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/outbox_impl.h"
#include "jaiminho/version.h"
#include "outbox/metrics_internal.h"
#include "storage/envelope.h"
#include "storage/status.h"
#include "storage/stream_reader.h"
#include "util/json.h"
#include "util/macros.h"

namespace jaiminho {
namespace internal {

Status ScanStream(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, uint64_t cursor, Timestamp now, StreamMetrics* m) {
  AlignedArena arena;
  std::optional<int64_t> oldest;
  auto count_range = [&](EventState state, uint64_t from, uint64_t* n, bool inspect_all, bool inspect_head) -> Status {
    StateRange it(db, cf, state, {.from_seq = from});
    bool head = true;
    for (; it.Valid(); it.Next()) {
      ++*n;
      if (inspect_all || (inspect_head && head)) {
        arena.Reset();
        auto d = DecodeEnvelope(arena.Copy(it.value()));
        if (d) {
          int64_t c = ToMicros(d->event.created_at);
          oldest = oldest ? std::min(*oldest, c) : c;
          if (head && state == EventState::kPending && IsBlockedHead(d->event, now)) {
            m->blocked = true;
            m->blocked_seq = d->event.id.seq;
            m->blocked_error = std::string(d->event.last_error);
          }
        }
      }
      head = false;
    }
    return it.status("scan stream");
  };
  JM_RETURN_IF_ERROR(count_range(EventState::kPending, cursor, &m->pending, false, true));
  JM_RETURN_IF_ERROR(count_range(EventState::kRetrying, 0, &m->retrying, true, false));
  JM_RETURN_IF_ERROR(count_range(EventState::kParked, 0, &m->parked_records, false, false));
  if (oldest) m->oldest_pending_age = std::chrono::microseconds(std::max<int64_t>(0, ToMicros(now) - *oldest));
  // Not yet flushed records are in the WAL on disk and in the memtables: count
  // their size, not the memtables' allocated arena (about 1 MB even for a few records).
  uint64_t sst = 0, mem_records = 0, mem_bytes = 0;
  if (db->GetIntProperty(cf, rocksdb::DB::Properties::kTotalSstFilesSize, &sst)) {
    const rocksdb::Range all("", "\xff");  // every key of a stream family starts with an ASCII tag
    db->GetApproximateMemTableStats(cf, all, &mem_records, &mem_bytes);
    m->bytes_on_disk = sst + mem_bytes;
  }
  return {};
}

}  // namespace internal

Result<std::vector<StreamMetrics>> CollectMetrics(const Outbox& outbox) {
  OutboxImpl& o = OutboxAccess::Of(outbox);
  JM_ASSIGN_OR_RETURN(auto guard, o.Enter("CollectMetrics"));
  std::vector<StreamMetrics> out;
  for (Stream* stream : o.Streams()) {
    StreamState& s = StreamAccess::Of(*stream);
    StreamMetrics m;
    m.stream = s.name;
    m.strategy = s.strategy();
    m.cursor = s.cursor.load(std::memory_order_acquire);
    m.last_seq = s.written_seq.load(std::memory_order_acquire);
    m.committed = s.committed.load(std::memory_order_relaxed);
    m.published = s.published.load(std::memory_order_relaxed);
    m.failed = s.failed.load(std::memory_order_relaxed);
    m.retried = s.retried.load(std::memory_order_relaxed);
    m.parked = s.parked.load(std::memory_order_relaxed);
    m.dropped = s.dropped.load(std::memory_order_relaxed);
    m.quota_max_events = s.quota_events();
    m.quota_max_bytes = s.quota_bytes();
    if ((m.quota_max_events != 0 || m.quota_max_bytes != 0) && s.usage_known.load(std::memory_order_acquire)) {
      m.waiting_bytes = s.WaitingBytes();
    }
    m.commit_to_publish_seconds = s.commit_to_publish.Snapshot();
    m.publish_duration_seconds = s.publish_duration.Snapshot();
    auto st = internal::ScanStream(o.db.get(), s.cf, m.cursor, o.Now(), &m);
    if (!st) {
      return MakeError(st.error().code(), fmt::format("metrics of stream '{}': {}", s.name, st.error().message()));
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::string RenderPrometheus(std::span<const StreamMetrics> metrics, PrometheusOptions options) {
  std::string out;
  auto label = [](const StreamMetrics& m) {
    // Stream names are [A-Za-z0-9._-]: nothing to escape, but be safe.
    std::string l;
    internal::AppendJsonString(l, m.stream);
    return fmt::format("stream={}", l);
  };
  auto header = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP jaiminho_{} {}\n# TYPE jaiminho_{} {}\n", name, help, name, type);
  };
  auto family = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    if (type == "counter" && !options.counters) return;
    header(name, type, help);
    for (const StreamMetrics& m : metrics)
      out += fmt::format("jaiminho_{}{{{}}} {}\n", name, label(m), value(m));
  };
  // Cumulative buckets, then _sum and _count, per stream.
  auto histogram = [&](std::string_view name, std::string_view help, auto get) {
    if (!options.counters) return;
    header(name, "histogram", help);
    for (const StreamMetrics& m : metrics) {
      const Histogram& h = get(m);
      const std::string l = label(m);
      uint64_t cumulative = 0;
      for (size_t i = 0; i < h.upper_bounds.size(); ++i) {
        cumulative += i < h.bucket_counts.size() ? h.bucket_counts[i] : 0;
        out += fmt::format("jaiminho_{}_bucket{{{},le=\"{}\"}} {}\n", name, l, h.upper_bounds[i], cumulative);
      }
      out += fmt::format("jaiminho_{}_bucket{{{},le=\"+Inf\"}} {}\n", name, l, h.count);
      out += fmt::format("jaiminho_{}_sum{{{}}} {}\n", name, l, h.sum);
      out += fmt::format("jaiminho_{}_count{{{}}} {}\n", name, l, h.count);
    }
  };
  if (options.build_info) {
    header("build_info", "gauge", "Always 1; the version label is the jaiminho library's.");
    out += "jaiminho_build_info{version=\"" JAIMINHO_VERSION_STRING "\"} 1\n";
  }
  if (options.publisher_connected) {
    header("publisher_connected", "gauge", "1 when the publisher reports a connection to its broker.");
    out += fmt::format("jaiminho_publisher_connected {}\n", *options.publisher_connected ? 1 : 0);
  }
  family("pending_events", "gauge", "Events waiting for their first delivery.",
         [](const StreamMetrics& m) { return m.pending; });
  family("retrying_events", "gauge", "Publish-on-commit events waiting for a retry.",
         [](const StreamMetrics& m) { return m.retrying; });
  family("parked_events", "gauge", "Dead-lettered events on disk.",
         [](const StreamMetrics& m) { return m.parked_records; });
  family("oldest_pending_age_seconds", "gauge", "Age of the oldest undelivered event (0 when none).",
         [](const StreamMetrics& m) {
           return m.oldest_pending_age ? static_cast<double>(m.oldest_pending_age->count()) / 1e6 : 0.0;
         });
  family("blocked", "gauge", "1 when a keep-order stream is stopped at a failing head.",
         [](const StreamMetrics& m) { return m.blocked ? 1 : 0; });
  family("last_seq", "gauge", "Last sequence number assigned.", [](const StreamMetrics& m) { return m.last_seq; });
  family("disk_bytes", "gauge", "Bytes of the stream's records on disk: SST files plus records not yet flushed.",
         [](const StreamMetrics& m) { return m.bytes_on_disk.value_or(0); });
  family("quota_max_events", "gauge", "The stream's quota of waiting events (pending, retrying, parked); 0: none.",
         [](const StreamMetrics& m) { return m.quota_max_events; });
  family("quota_max_bytes", "gauge", "The stream's quota of waiting bytes (the events' own bytes); 0: none.",
         [](const StreamMetrics& m) { return m.quota_max_bytes; });
  if (std::any_of(metrics.begin(), metrics.end(), [](const StreamMetrics& m) { return m.waiting_bytes.has_value(); })) {
    header("waiting_bytes", "gauge", "The events' own bytes waiting for delivery (streams with a quota).");
    for (const StreamMetrics& m : metrics) {
      if (m.waiting_bytes) out += fmt::format("jaiminho_waiting_bytes{{{}}} {}\n", label(m), *m.waiting_bytes);
    }
  }
  family("committed_events_total", "counter", "Events committed since open.",
         [](const StreamMetrics& m) { return m.committed; });
  family("published_events_total", "counter", "Events acknowledged by the publisher since open.",
         [](const StreamMetrics& m) { return m.published; });
  family("failed_attempts_total", "counter", "Failed publish attempts since open.",
         [](const StreamMetrics& m) { return m.failed; });
  family("retried_events_total", "counter", "Attempts scheduled for retry since open.",
         [](const StreamMetrics& m) { return m.retried; });
  family("parked_events_total", "counter", "Events parked since open.",
         [](const StreamMetrics& m) { return m.parked; });
  family("dropped_events_total", "counter", "Events dropped by a drop-oldest quota since open.",
         [](const StreamMetrics& m) { return m.dropped; });
  histogram("commit_to_publish_seconds", "Seconds from an event's commit to the write of its acknowledgement.",
            [](const StreamMetrics& m) -> const Histogram& { return m.commit_to_publish_seconds; });
  histogram("publish_duration_seconds",
            "Seconds inside one Publisher call: a relay PublishBatch (one batch) or a publish-on-commit Publish.",
            [](const StreamMetrics& m) -> const Histogram& { return m.publish_duration_seconds; });
  return out;
}

}  // namespace jaiminho
