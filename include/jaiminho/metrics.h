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

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "jaiminho/options.h"
#include "jaiminho/result.h"

namespace jaiminho {

class Outbox;

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
};

[[nodiscard]] Result<std::vector<StreamMetrics>> CollectMetrics(const Outbox& outbox);

// Options of RenderPrometheus.
struct PrometheusOptions {
  // Include the *_total counter families. They count inside the process that
  // has the database open; a reader of the files has none.
  // Default: true.
  bool counters = true;
};

// The Prometheus text exposition format (version 0.0.4), metric names
// prefixed "jaiminho_", one series per stream (label stream="...").
std::string RenderPrometheus(std::span<const StreamMetrics> metrics, PrometheusOptions options = {});

}  // namespace jaiminho
