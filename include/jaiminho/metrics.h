// Metrics per stream, and their Prometheus text form.
//
//   auto m = jaiminho::CollectMetrics(*outbox);
//   std::cout << jaiminho::RenderPrometheus(*m);
//
// Gauges come from the records on disk (pending and retrying records are
// counted from the relay cursor, so the cost grows with the backlog, not with
// deleted history); counters count since the Outbox was opened.
// Thread-safety: CollectMetrics may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "jaiminho/options.h"
#include "jaiminho/result.h"

namespace jaiminho {

class Outbox;

// A histogram of durations in seconds, as Prometheus exposes it.
struct Histogram {
  // Finite upper bounds of the buckets, ascending; the +Inf bucket is implied.
  std::vector<double> upper_bounds{};
  // Observations per bucket, not cumulative: upper_bounds.size() + 1 entries,
  // the last for values above every bound. Empty when nothing was set up.
  std::vector<uint64_t> bucket_counts{};
  double sum = 0;      // seconds
  uint64_t count = 0;  // the total of bucket_counts
};

struct StreamMetrics {
  std::string stream{};
  Strategy strategy = Strategy::kPublishOnCommit;
  // Records waiting for delivery (pending + retrying) and parked, on disk.
  uint64_t pending = 0;
  uint64_t retrying = 0;
  uint64_t parked_records = 0;
  // Age of the oldest pending or retrying event (by created_at); unset when none.
  std::optional<std::chrono::microseconds> oldest_pending_age{};
  // The last seq assigned, and the relay cursor.
  uint64_t last_seq = 0;
  uint64_t cursor = 0;
  // Set when the head of a keep-order stream has failed and blocks the stream.
  bool blocked = false;
  uint64_t blocked_seq = 0;
  std::string blocked_error{};
  // Counters since open.
  uint64_t committed = 0;
  uint64_t published = 0;
  uint64_t failed = 0;
  uint64_t retried = 0;
  uint64_t parked = 0;
  // Events dropped by a drop-oldest quota since open.
  uint64_t dropped = 0;
  // Seconds from an event's created_at (its commit) to the write that records
  // its acknowledgement, for every acknowledged event since open (relay and
  // publish-on-commit). Buckets 1 ms .. 10 min.
  Histogram commit_to_publish_seconds{};
  // Seconds inside one Publisher call since open: one PublishBatch call of the
  // relay (a batch of the stream's events) or one Publish call of
  // publish-on-commit (one event). Buckets 100 us .. 10 s.
  Histogram publish_duration_seconds{};
  // Bytes of the stream's records on disk: its column family's SST files
  // (rocksdb.total-sst-files-size) plus the records not yet flushed from its
  // memtables (RocksDB's approximate memtable size; they are in the WAL). Shared
  // WAL and MANIFEST files are not counted. Unset when RocksDB does not report them.
  std::optional<uint64_t> bytes_on_disk{};
  // The stream's quota (StreamQuota; 0 = no limit), and the events' own bytes
  // waiting for delivery (pending, retrying, parked), which the quota counts:
  // set when the stream has a quota (maintained in the process that has the
  // database open; counted from the records by jaiminho-tool).
  uint64_t quota_max_events = 0;
  uint64_t quota_max_bytes = 0;
  std::optional<uint64_t> waiting_bytes{};
};

[[nodiscard]] Result<std::vector<StreamMetrics>> CollectMetrics(const Outbox& outbox);

// Options of RenderPrometheus.
struct PrometheusOptions {
  // Include the *_total counter families. They count inside the process that
  // has the database open; a reader of the files has none.
  // Default: true.
  bool counters = true;
  // The jaiminho_publisher_connected gauge (1 or 0), for example from an
  // adapter's connection state; omitted when unset.
  // Default: unset.
  std::optional<bool> publisher_connected{};
  // Include jaiminho_build_info{version="..."} 1.
  // Default: true.
  bool build_info = true;
};

// The Prometheus text exposition format (version 0.0.4), metric names
// prefixed "jaiminho_", one series per stream (label stream="..."). The
// histograms are written with the counters (they count since open).
std::string RenderPrometheus(std::span<const StreamMetrics> metrics, PrometheusOptions options = {});

}  // namespace jaiminho
