// What is written after a publish attempt, shared by the relay, publish-on-commit
// and the operator actions: one WriteBatch of state changes, then the signals
// and metrics once the batch is written.
#pragma once

#include <rocksdb/write_batch.h>

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/outbox_impl.h"
#include "jaiminho/relay.h"
#include "storage/delivery_log.h"
#include "storage/envelope.h"
#include "storage/keys.h"

namespace jaiminho::internal {

enum class Source { kInline, kRelay, kOperator };

enum class FailOutcome {
  kRetryScheduled,  // publish-on-commit: moved to the retry range
  kParked,          // moved to the parked range
  kBlocked,         // keep-order: rewritten in place, the stream stops here
};

class DeliveryBatch {
 public:
  DeliveryBatch(OutboxImpl& outbox, StreamState& stream, Source source);

  // Starts a new batch for `config` at time `now`.
  void Reset(const StreamConfig& config, Timestamp now);

  // The event was acknowledged. With `keep_as_sent` it is written to the sent
  // range with sent_at = now. The caller removes its old key.
  void Succeeded(const DecodedEnvelope& d, std::string_view raw, bool keep_as_sent);

  // The event was acknowledged and stays under its pending key (format 2,
  // storage/delivery_log.h): it is sent once the batch persists a cursor past
  // it. With `log_run` (delete_after_send = false) its seq joins the batch's
  // run record, which gives it its sent_at. The caller removes nothing.
  void DeliveredInPlace(const DecodedEnvelope& d, bool log_run);
  // The run record the batch writes (valid after Commit until the next Reset).
  const std::optional<SentRun>& run() const { return run_; }

  // The attempt failed. `at_head`: the event is the head of the pending range
  // (a keep-order event there blocks its stream in place); elsewhere it is
  // retried from the retry range. The caller removes the old key unless kBlocked.
  // kUnknownHandler (no handler for the type) is no attempt: see MissingHandler.
  FailOutcome Failed(const DecodedEnvelope& d, const Error& error, std::mt19937_64& rng, bool at_head);

  // Parks the event with `reason` (attempts unchanged). The caller removes the old key.
  // With `error` (a tampered record), the relay also reports it to capture_error.
  // With `action` (an operator's skip), it is appended to the event's history
  // (AppendHistory: the note it replaces kept in the entry).
  void Park(const DecodedEnvelope& d, std::string_view reason, const Error* error = nullptr,
            const HistoryEntry* action = nullptr);

  // Parks a record that cannot be decoded: its bytes become the payload of an
  // envelope of type "jaiminho.corrupt", so nothing is lost. The relay also
  // reports it to capture_error (an operator's skip does not, and records `action`).
  void ParkCorrupt(uint64_t seq, std::string_view raw, const Error& error, const HistoryEntry* action = nullptr);

  // Requeue: a parked event goes to the retry range, due now, attempts reset,
  // with `note`, and `action` appended to its history.
  void Requeue(const DecodedEnvelope& d, std::string_view note, const HistoryEntry& action);

  // Removes a record's old key. `single` when it was written exactly once.
  void RemoveKey(std::string_view key, bool single);
  void RemoveRange(std::string_view begin, std::string_view end);
  void SetCursor(uint64_t cursor);

  bool empty() const { return batch_.Count() == 0; }
  // What this batch did (valid after Commit until the next Reset).
  RelayStats counts() const { return {n_published_, n_failed_, n_retried_, n_parked_, 0, 0}; }
  // The next attempt time set by the last Failed() that scheduled one.
  int64_t last_due_us() const { return last_due_us_; }

  // Writes the batch, then updates metrics and calls observers.
  Status Commit();

  rocksdb::WriteBatch& batch() { return batch_; }
  // Where the caller records the time of its Publisher calls for this stream.
  AtomicHistogram& publish_duration() { return stream_.publish_duration; }

 private:
  enum class Signal { kPublished, kFailed, kParked, kReport /* capture_error only */ };
  struct Pending {
    Signal signal;
    const Event* event;
    std::optional<Error> error;
    std::string reason;
    bool capture = false;  // kParked: also report to capture_error (bad records)
  };
  // No handler for the event's type: blocks a keep-order head in place (`blocks`),
  // else moves the event to the retry range; attempts unchanged, no failure
  // signal, reported once to capture_error.
  FailOutcome MissingHandler(const DecodedEnvelope& d, const Error& error, std::mt19937_64& rng, bool blocks);
  // Records commit -> acknowledgement of the published events (stream_.commit_to_publish).
  void RecordLatencies();
  void Rewrite(std::string_view key, const DecodedEnvelope& d, uint32_t attempts, std::string_view last_error,
               int64_t next_attempt_at, std::string_view note, const HistoryEntry* action = nullptr);

  OutboxImpl& outbox_;
  StreamState& stream_;
  const Source source_;
  StreamConfig config_;
  Timestamp now_{};
  rocksdb::WriteBatch batch_;
  std::vector<Pending> signals_;
  std::vector<std::unique_ptr<Event>> owned_events_;  // for corrupt records
  std::string scratch_;
  HistoryUpdate history_;  // Rewrite's, with an operator's action
  std::optional<SentRun> run_;
  uint64_t n_published_ = 0, n_failed_ = 0, n_retried_ = 0, n_parked_ = 0;
  uint64_t bytes_published_ = 0;  // the delivered events' own bytes, for the quota
  int64_t last_due_us_ = 0;
};

}  // namespace jaiminho::internal
