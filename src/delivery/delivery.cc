#include "delivery/delivery.h"

#include <fmt/format.h>

#include "delivery/retry.h"
#include "storage/status.h"

namespace jaiminho::internal {

DeliveryBatch::DeliveryBatch(OutboxImpl& outbox, StreamState& stream, Source source)
    : outbox_(outbox), stream_(stream), source_(source) {}

void DeliveryBatch::Reset(const StreamConfig& config, Timestamp now) {
  config_ = config;
  now_ = now;
  batch_.Clear();
  signals_.clear();
  owned_events_.clear();
  run_.reset();
  n_published_ = n_failed_ = n_retried_ = n_parked_ = 0;
  bytes_published_ = 0;
}

void DeliveryBatch::Succeeded(const DecodedEnvelope& d, std::string_view raw, bool keep_as_sent) {
  if (keep_as_sent) {
    // Same bytes with sent_at set: patch the scalar instead of re-encoding.
    uint8_t le[8];
    auto v = static_cast<uint64_t>(ToMicros(now_));
    for (int i = 0; i < 8; ++i)
      le[i] = static_cast<uint8_t>(v >> (8 * i));
    rocksdb::Slice parts[3] = {rocksdb::Slice(raw.data(), d.offsets.sent_at),
                               rocksdb::Slice(reinterpret_cast<const char*>(le), 8),
                               rocksdb::Slice(raw.data() + d.offsets.sent_at + 8, raw.size() - d.offsets.sent_at - 8)};
    auto key = SeqKey(kSentTag, d.event.id.seq);
    rocksdb::Slice key_slice(key.bytes, key.size);
    batch_.Put(stream_.cf, rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(parts, 3));
  }
  ++n_published_;
  bytes_published_ += EventBytes(d.event);
  signals_.push_back({Signal::kPublished, &d.event, std::nullopt, {}});
}

void DeliveryBatch::DeliveredInPlace(const DecodedEnvelope& d, bool log_run) {
  const uint64_t seq = d.event.id.seq;
  if (log_run) {
    if (!run_) {
      run_ = SentRun{seq, seq, ToMicros(now_)};
    } else {
      run_->first = std::min(run_->first, seq);
      run_->last = std::max(run_->last, seq);
    }
  }
  ++n_published_;
  bytes_published_ += EventBytes(d.event);
  signals_.push_back({Signal::kPublished, &d.event, std::nullopt, {}});
}

void DeliveryBatch::Rewrite(std::string_view key, const DecodedEnvelope& d, uint32_t attempts,
                            std::string_view last_error, int64_t next_attempt_at, std::string_view note,
                            const HistoryEntry* action) {
  EnvelopeFields f = FieldsOf(d);
  f.attempts = attempts;
  f.last_error = last_error;
  f.next_attempt_at = next_attempt_at;
  f.note = note;
  if (action != nullptr) {
    AppendHistory(d.event, *action, &history_);
    f.history = history_.entries;
    f.history_dropped = history_.dropped;
  }
  scratch_.clear();
  EncodeEnvelope(f, &scratch_);
  batch_.Put(stream_.cf, rocksdb::Slice(key.data(), key.size()), scratch_);
}

FailOutcome DeliveryBatch::MissingHandler(const DecodedEnvelope& d, const Error& error, std::mt19937_64& rng,
                                          bool blocks) {
  // A deployment error, not a failed attempt: no failure signal, no attempt
  // counted (so never parked for it); the event waits, in place at the head of
  // a keep-order stream, and is tried again every initial backoff.
  const std::string reason = fmt::format("no handler for type '{}'", d.event.type);
  const std::string last_error = fmt::format("{}: {}", reason, error.message());
  const std::string note = blocks ? fmt::format("blocked: {}; register one or skip the event", reason)
                                  : fmt::format("waiting: {}; retried until one is registered", reason);
  const int64_t due = ToMicros(now_) + Backoff(config_.retry, std::max<uint32_t>(d.event.attempts, 1), rng).count();
  last_due_us_ = due;
  if (d.event.note != note) {
    // Reported once per event, not at every recheck.
    signals_.push_back({Signal::kReport,
                        &d.event,
                        Error(ErrorCode::kUnknownHandler,
                              fmt::format("stream '{}' seq {}: {} ({})", stream_.name, d.event.id.seq, reason,
                                          blocks ? "the keep-order stream is blocked until a handler is registered "
                                                   "or the event is skipped"
                                                 : "the event is retried until a handler is registered")),
                        {}});
  }
  if (blocks) {
    auto key = SeqKey(kPendingTag, d.event.id.seq);
    Rewrite(key.view(), d, d.event.attempts, last_error, due, note);
    return FailOutcome::kBlocked;
  }
  ++n_retried_;
  auto key = RetryKey(due, d.event.id.seq);
  Rewrite(key.view(), d, d.event.attempts, last_error, due, note);
  return FailOutcome::kRetryScheduled;
}

FailOutcome DeliveryBatch::Failed(const DecodedEnvelope& d, const Error& error, std::mt19937_64& rng, bool at_head) {
  if (error.code() == ErrorCode::kUnknownHandler) {
    return MissingHandler(d, error, rng, at_head && d.event.strategy == Strategy::kKeepOrder);
  }
  ++n_failed_;
  signals_.push_back({Signal::kFailed, &d.event, error, {}});
  const uint32_t attempts = d.event.attempts + 1;
  const std::string message = error.ToString();
  if (IsPermanent(error.code())) {
    ++n_parked_;
    std::string reason = fmt::format("permanent failure: {}", message);
    auto key = SeqKey(kParkedTag, d.event.id.seq);
    Rewrite(key.view(), d, attempts, message, 0, reason);
    signals_.push_back({Signal::kParked, &d.event, error, std::move(reason)});
    return FailOutcome::kParked;
  }
  const bool exhausted = Exhausted(config_.retry, attempts);
  const bool blocks = at_head && d.event.strategy == Strategy::kKeepOrder;
  if (exhausted && (!blocks || config_.on_exhaustion == OnExhaustion::kPark)) {
    ++n_parked_;
    std::string reason = fmt::format("{} attempts exhausted; last error: {}", attempts, message);
    auto key = SeqKey(kParkedTag, d.event.id.seq);
    Rewrite(key.view(), d, attempts, message, 0, reason);
    signals_.push_back({Signal::kParked, &d.event, error, std::move(reason)});
    return FailOutcome::kParked;
  }
  int64_t due = DueAfter(ToMicros(now_), Backoff(config_.retry, attempts, rng));
  last_due_us_ = exhausted ? std::numeric_limits<int64_t>::max() : due;
  if (blocks) {
    // The head stays where it is and blocks the stream. When exhausted (and the
    // stream blocks), it waits for an operator: no further automatic attempt.
    auto key = SeqKey(kPendingTag, d.event.id.seq);
    std::string note = exhausted ? fmt::format("blocked: {} attempts exhausted; requeue or skip it", attempts)
                                 : std::string(d.event.note);
    Rewrite(key.view(), d, attempts, message, exhausted ? std::numeric_limits<int64_t>::max() : due, note);
    if (!exhausted) ++n_retried_;
    return FailOutcome::kBlocked;
  }
  ++n_retried_;
  auto key = RetryKey(due, d.event.id.seq);
  Rewrite(key.view(), d, attempts, message, due, d.event.note);
  return FailOutcome::kRetryScheduled;
}

void DeliveryBatch::Park(const DecodedEnvelope& d, std::string_view reason, const Error* error,
                         const HistoryEntry* action) {
  ++n_parked_;
  auto key = SeqKey(kParkedTag, d.event.id.seq);
  Rewrite(key.view(), d, d.event.attempts, error ? std::string_view(error->message()) : d.event.last_error, 0, reason,
          action);
  signals_.push_back({Signal::kParked, &d.event, error ? std::optional<Error>(*error) : std::nullopt,
                      std::string(reason), error != nullptr && source_ != Source::kOperator});
}

void DeliveryBatch::ParkCorrupt(uint64_t seq, std::string_view raw, const Error& error, const HistoryEntry* action) {
  ++n_parked_;
  std::string reason = fmt::format("corrupt record: {}", error.message());
  EnvelopeFields f;
  f.seq = seq;
  f.stream = stream_.name;
  f.type = "jaiminho.corrupt";
  f.payload = raw;
  f.encoding = "application/x-jaiminho-corrupt-record";
  f.created_at = ToMicros(now_);
  f.strategy = stream_.strategy();
  f.last_error = error.message();
  f.note = reason;
  if (action != nullptr) {
    AppendHistory(Event{}, *action, &history_);
    f.history = history_.entries;
    f.history_dropped = history_.dropped;
  }
  scratch_.clear();
  EncodeEnvelope(f, &scratch_);
  auto key = SeqKey(kParkedTag, seq);
  batch_.Put(stream_.cf, rocksdb::Slice(key.bytes, key.size), scratch_);
  auto e = std::make_unique<Event>();
  e->id = EventId{outbox_.id, stream_.name, seq};
  e->state = EventState::kParked;
  e->type = "jaiminho.corrupt";
  e->strategy = f.strategy;
  signals_.push_back({Signal::kParked, e.get(), error, std::move(reason), source_ != Source::kOperator});
  owned_events_.push_back(std::move(e));
}

void DeliveryBatch::Requeue(const DecodedEnvelope& d, std::string_view note, const HistoryEntry& action) {
  auto key = RetryKey(ToMicros(now_), d.event.id.seq);
  Rewrite(key.view(), d, 0, d.event.last_error, ToMicros(now_), note, &action);
}

void DeliveryBatch::RemoveKey(std::string_view key, bool single) {
  if (single) {
    batch_.SingleDelete(stream_.cf, rocksdb::Slice(key.data(), key.size()));
  } else {
    batch_.Delete(stream_.cf, rocksdb::Slice(key.data(), key.size()));
  }
}

void DeliveryBatch::RemoveRange(std::string_view begin, std::string_view end) {
  batch_.DeleteRange(stream_.cf, rocksdb::Slice(begin.data(), begin.size()), rocksdb::Slice(end.data(), end.size()));
}

void DeliveryBatch::SetCursor(uint64_t cursor) {
  batch_.Put(outbox_.meta_cf, StreamMetaKey(stream_.name, "cursor"), EncodeU64(cursor));
}

Status DeliveryBatch::Commit() {
  if (run_) {
    const KeyBuf key = RunKey(run_->first);
    batch_.Put(stream_.cf, rocksdb::Slice(key.bytes, key.size), EncodeRunValue(*run_));
  }
  if (batch_.Count() > 0) {
    auto s = outbox_.recovery->Write(
        outbox_.db.get(), rocksdb::WriteOptions(), &batch_,
        fmt::format("record deliveries of stream '{}' in {}", stream_.name, outbox_.options.path));
    if (!s) {
      Error e = s.error();
      outbox_.Log({.level = LogLevel::kError, .message = "write failed", .stream = stream_.name, .error = &e});
      outbox_.Capture(e);
      batch_.Clear();
      signals_.clear();
      return tl::unexpected(e);
    }
  }
  stream_.published.fetch_add(n_published_, std::memory_order_relaxed);
  stream_.waiting_events.fetch_sub(static_cast<int64_t>(n_published_), std::memory_order_relaxed);
  stream_.waiting_bytes.fetch_sub(static_cast<int64_t>(bytes_published_), std::memory_order_relaxed);
  stream_.failed.fetch_add(n_failed_, std::memory_order_relaxed);
  stream_.retried.fetch_add(n_retried_, std::memory_order_relaxed);
  stream_.parked.fetch_add(n_parked_, std::memory_order_relaxed);
  if (n_published_ > 0) RecordLatencies();
  const bool relay = source_ != Source::kInline;
  for (const Pending& p : signals_) {
    switch (p.signal) {
      case Signal::kPublished:
        outbox_.Notify([&](Observer& o) { relay ? o.OnPublishedByRelay(*p.event) : o.OnPublished(*p.event); });
        break;
      case Signal::kFailed:
        outbox_.Capture(*p.error);
        outbox_.Notify([&](Observer& o) {
          relay ? o.OnFailedToPublishByRelay(*p.event, *p.error) : o.OnFailedToPublish(*p.event, *p.error);
        });
        break;
      case Signal::kReport:
        outbox_.Capture(*p.error);
        break;
      case Signal::kParked:
        if (outbox_.LogEnabled(LogLevel::kWarn)) {
          const std::string id = p.event->id.ToString();
          // A tampered or corrupt record is an error; an exhausted or rejected event a warning.
          outbox_.Log({.level = p.capture ? LogLevel::kError : LogLevel::kWarn,
                       .message = p.capture ? "bad record parked" : "event parked",
                       .stream = stream_.name,
                       .seq = p.event->id.seq,
                       .event_id = id,
                       .error = p.error ? &*p.error : nullptr,
                       .fields = {{"reason", p.reason}}});
        }
        if (p.capture) {
          // Tampered or corrupt records are reported like publish failures
          // (django-jaiminho reports tampering), not only to OnParked.
          outbox_.Capture(Error(p.error ? p.error->code() : ErrorCode::kCorruption,
                                fmt::format("stream '{}' seq {} parked: {}", stream_.name, p.event->id.seq, p.reason)));
        }
        outbox_.Notify([&](Observer& o) { o.OnParked(*p.event, p.reason); });
        break;
    }
  }
  batch_.Clear();
  signals_.clear();
  return {};
}

void DeliveryBatch::RecordLatencies() {
  // One clock read and one merge per batch: the relay's per-event cost stays a bucket search.
  const int64_t acked_us = ToMicros(outbox_.Now());
  LocalHistogram latency;
  for (const Pending& p : signals_) {
    if (p.signal == Signal::kPublished) latency.Record(LatencyBounds(), acked_us - ToMicros(p.event->created_at));
  }
  stream_.commit_to_publish.Merge(latency);
}

}  // namespace jaiminho::internal
