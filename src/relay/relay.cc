#include "jaiminho/relay.h"

#include <fmt/format.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <random>

#include "core/outbox_impl.h"
#include "delivery/delivery.h"
#include "delivery/retry.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/status.h"
#include "storage/stream_reader.h"
#include "util/json.h"
#include "util/macros.h"

namespace jaiminho {

using internal::AlignedArena;
using internal::DecodedEnvelope;
using internal::DeliveryBatch;
using internal::KeyBuf;

RelayStats& RelayStats::operator+=(const RelayStats& o) {
  published += o.published;
  failed += o.failed;
  retried += o.retried;
  parked += o.parked;
  blocked = o.blocked;  // a state: the later one
  busy += o.busy;
  return *this;
}

namespace {
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

struct Record {
  KeyBuf key;
  uint64_t seq = 0;
  // The value as read (the arena's copy) and, when it checked, the envelope.
  internal::CheckedRecord checked;
  const DecodedEnvelope* env() const { return checked.envelope ? &*checked.envelope : nullptr; }
  std::optional<Error> corrupt;   // the value failed verification
  std::optional<Error> tampered;  // the signature does not verify: never published
  bool claimed = false;           // being published inline; not ours
  bool bad_key = false;           // the key itself is malformed
  size_t event_index = 0;         // into the publish vector
};

}  // namespace

class Relay::Impl {
 public:
  Impl(Outbox& outbox, std::shared_ptr<Publisher> publisher, RelayOptions options)
      : o_(OutboxAccess::Of(outbox)),
        publisher_(std::move(publisher)),
        options_(std::move(options)),
        rng_(options_.seed != 0 ? options_.seed : std::random_device{}()) {
    // Removed in ~Impl before anything the listener touches goes away.
    ready_listener_ = publisher_->AddReadyListener([this] {
      ready_epoch_.fetch_add(1, std::memory_order_acq_rel);
      o_.InterruptWaiters();
    });
  }

  // What Relay::Make checks before building one (named streams included).
  static Status Validate(Outbox& outbox, const Publisher* publisher, const RelayOptions& options) {
    if (publisher == nullptr) return tl::unexpected(Error(ErrorCode::kInvalidArgument, "Relay: no publisher given"));
    if (options.interval.count() <= 0) {
      return tl::unexpected(
          Error(ErrorCode::kInvalidArgument,
                fmt::format("RelayOptions.interval must be > 0, got {} us", options.interval.count())));
    }
    if (options.batch_size == 0 || options.batch_size > 65536) {
      return tl::unexpected(
          Error(ErrorCode::kInvalidArgument,
                fmt::format("RelayOptions.batch_size must be in [1, 65536], got {}", options.batch_size)));
    }
    for (const auto& name : options.streams)
      JM_RETURN_IF_ERROR(OutboxAccess::Of(outbox).FindStream(name));
    return {};
  }

  ~Impl() {
    // Returns once a running listener call is done: none starts after it.
    publisher_->RemoveReadyListener(ready_listener_);
    Stop();
  }

  Result<RelayStats> RunOnce() EXCLUDES(run_mu_) {
    internal::MutexLock l(run_mu_);
    return RunStreams(/*only_changed=*/false);
  }

  Result<RelayStats> Run(std::stop_token stop) EXCLUDES(run_mu_) {
    std::stop_callback wake(stop, [this] { o_.InterruptWaiters(); });
    RelayStats total;
    while (!stop.stop_requested()) {
      uint64_t epoch = o_.commit_epoch();
      // Copied out of the pass under run_mu_: a RunOnce on another thread
      // may run a pass while this loop waits.
      int64_t next_due_us = kNever;
      bool more = false;
      {
        internal::MutexLock l(run_mu_);
        next_due_us_ = kNever;
        auto r = RunStreams(/*only_changed=*/true);
        if (r) {
          total += *r;
        } else {
          o_.Capture(r.error());
          // The Outbox was closed: stop delivering (the loop cannot resume).
          if (r.error().code() == ErrorCode::kClosed) return tl::unexpected(r.error());
          next_due_us_ = kNever;
        }
        next_due_us = next_due_us_;
        // A ready notification during the pass: run again at once.
        more = more_ || ready_epoch_.load(std::memory_order_acquire) != seen_ready_epoch_;
      }
      if (stop.stop_requested()) break;
      auto deadline = std::chrono::steady_clock::now() + options_.interval;
      if (next_due_us != kNever) {
        // Only a due time sooner than the interval shortens the wait (a far one,
        // up to INT64_MAX, must not overflow the steady clock).
        int64_t now_us = ToMicros(o_.Now());
        if (next_due_us < now_us + options_.interval.count()) {
          auto due =
              std::chrono::steady_clock::now() + std::chrono::microseconds(std::max<int64_t>(next_due_us - now_us, 0));
          deadline = std::min(deadline, due);
        }
      }
      if (more) continue;
      o_.WaitForCommit(epoch, deadline);
    }
    return total;
  }

  void Start() EXCLUDES(thread_mu_) {
    internal::MutexLock l(thread_mu_);
    if (thread_.joinable()) return;
    thread_ = std::jthread([this](std::stop_token st) { (void)Run(st); });
  }

  void Stop() EXCLUDES(thread_mu_) {
    internal::MutexLock l(thread_mu_);
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
  }

  RelayStats stats() const EXCLUDES(stats_mu_) {
    internal::MutexLock l(stats_mu_);
    return totals_;
  }

 private:
  struct Memo {
    uint64_t written = UINT64_MAX;
    uint64_t poke = UINT64_MAX;
    int64_t next_due_us = 0;
    std::optional<uint64_t> blocked_seq;  // the head the stream is blocked at (reported)
    bool backlog_high = false;            // past OutboxOptions::backlog_log_threshold (reported)
  };

  Result<std::vector<StreamState*>> Selected() {
    std::vector<StreamState*> out;
    if (options_.streams.empty()) {
      for (Stream* s : o_.Streams())
        out.push_back(&StreamAccess::Of(*s));
      return out;
    }
    for (const auto& name : options_.streams) {
      JM_ASSIGN_OR_RETURN(Stream * s, o_.FindStream(name));
      out.push_back(&StreamAccess::Of(*s));
    }
    return out;
  }

  Result<RelayStats> RunStreams(bool only_changed) REQUIRES(run_mu_) {
    // Holds the Outbox open for the pass (never across the loop's wait).
    JM_ASSIGN_OR_RETURN(auto guard, o_.Enter("Relay"));
    JM_ASSIGN_OR_RETURN(auto streams, Selected());
    RelayStats stats;
    more_ = false;
    // The publisher said it is ready: everything waiting for a backoff is due now.
    const uint64_t ready = ready_epoch_.load(std::memory_order_acquire);
    force_due_ = ready != seen_ready_epoch_;
    seen_ready_epoch_ = ready;
    if (force_due_) PublisherUp("ready notification");
    std::optional<Error> first_error;
    for (StreamState* s : streams) {
      Memo& m = memo_[s];
      // What the stream holds that the last pass did not see: commits, or
      // under kInterval (where the relay does not sync) what became durable.
      const uint64_t written = o_.options.durability == Durability::kInterval
                                   ? s->durable_seq.load(std::memory_order_acquire)
                                   : s->written_seq.load(std::memory_order_acquire);
      const uint64_t poke = s->poke.load(std::memory_order_acquire);
      const int64_t now = ToMicros(o_.Now());
      if (only_changed && !force_due_ && written == m.written && poke == m.poke && now < m.next_due_us) {
        next_due_us_ = std::min(next_due_us_, m.next_due_us);
        continue;
      }
      NoteBacklog(*s, m);
      // In loop mode a stream gets a bounded number of batches per round, so a
      // large backlog in one stream does not starve the others.
      auto r = Drain(*s, only_changed ? 16 : SIZE_MAX, stats);
      if (!r) {
        if (!first_error) first_error = r.error();
        m.written = UINT64_MAX;  // look again next round
        continue;
      }
      if (!r->busy) NoteBlocked(*s, m, *r);
      NoteBacklog(*s, m);
      if (r->unfinished) {
        more_ = true;
        m.written = UINT64_MAX;
      } else {
        m.written = written;
        m.poke = poke;
      }
      m.next_due_us = r->next_due_us;
      next_due_us_ = std::min(next_due_us_, r->next_due_us);
    }
    force_due_ = false;
    stats.blocked = 0;
    for (StreamState* s : streams)
      stats.blocked += memo_[s].blocked_seq ? 1 : 0;
    {
      internal::MutexLock l(stats_mu_);
      totals_ += stats;
    }
    if (first_error) return tl::unexpected(*first_error);
    return stats;
  }

  struct DrainResult {
    bool unfinished = false;  // stopped by the batch budget with more to do
    bool busy = false;        // another relay delivers the stream: nothing known
    int64_t next_due_us = kNever;
    std::optional<uint64_t> blocked_seq;  // blocked at this head
    std::optional<Error> blocked_error;   // why
  };

  // Reports the changes of `s`'s blocked state (once per head).
  void NoteBlocked(const StreamState& s, Memo& m, const DrainResult& r) REQUIRES(run_mu_) {
    if (r.blocked_seq) {
      if (m.blocked_seq == r.blocked_seq) return;
      if (m.blocked_seq) StreamUnblocked(s, *m.blocked_seq);
      m.blocked_seq = r.blocked_seq;
      StreamBlocked(s, *r.blocked_seq, *r.blocked_error);
      return;
    }
    // Not blocked now: the head went (delivered, skipped, parked) when the
    // drain finished or the cursor passed it.
    if (m.blocked_seq && (!r.unfinished || s.cursor.load(std::memory_order_acquire) > *m.blocked_seq)) {
      StreamUnblocked(s, *m.blocked_seq);
      m.blocked_seq.reset();
    }
  }

  // Logs the backlog of `s` crossing OutboxOptions::backlog_log_threshold
  // (up), or half of it (down), once per crossing.
  void NoteBacklog(const StreamState& s, Memo& m) REQUIRES(run_mu_) {
    const uint64_t limit = o_.options.backlog_log_threshold;
    if (limit == 0) return;
    // Seqs start at 1; the cursor is the first seq not known delivered.
    const uint64_t last = s.written_seq.load(std::memory_order_acquire);
    const uint64_t first = std::max<uint64_t>(s.cursor.load(std::memory_order_acquire), 1);
    const uint64_t backlog = last >= first ? last - first + 1 : 0;
    if (m.backlog_high == (backlog >= limit / 2 && (m.backlog_high || backlog >= limit))) return;
    m.backlog_high = !m.backlog_high;
    o_.Log({.level = m.backlog_high ? LogLevel::kWarn : LogLevel::kInfo,
            .message = m.backlog_high ? "backlog above threshold" : "backlog back below half the threshold",
            .stream = s.name,
            .fields = {{"backlog", std::to_string(backlog)}, {"threshold", std::to_string(limit)}}});
  }

  void StreamBlocked(const StreamState& s, uint64_t seq, const Error& error) REQUIRES(run_mu_) {
    o_.Log({.level = LogLevel::kWarn, .message = "stream blocked", .stream = s.name, .seq = seq, .error = &error});
    o_.Notify([&](Observer& ob) { ob.OnStreamBlocked(s.name, seq, error); });
  }
  void StreamUnblocked(const StreamState& s, uint64_t seq) REQUIRES(run_mu_) {
    o_.Log({.level = LogLevel::kInfo, .message = "stream unblocked", .stream = s.name, .seq = seq});
    o_.Notify([&](Observer& ob) { ob.OnStreamUnblocked(s.name, seq); });
  }

  // The publisher's health, from the outcomes of a publish call.
  void NoteOutcomes() REQUIRES(run_mu_) {
    const Error* down = nullptr;
    for (const Status& st : results_) {
      if (st) {
        PublisherUp("delivery");
        return;
      }
      const ErrorCode c = st.error().code();
      if (c == ErrorCode::kAborted || c == ErrorCode::kUnknownHandler || IsPermanent(c)) continue;
      if (down == nullptr) down = &st.error();
    }
    if (down != nullptr) PublisherDown(*down);
  }
  void PublisherDown(const Error& error) REQUIRES(run_mu_) {
    if (publisher_down_) return;
    publisher_down_ = true;
    o_.Log({.level = LogLevel::kWarn, .message = "publisher down", .error = &error});
    o_.Notify([&](Observer& ob) { ob.OnPublisherDown(error); });
  }
  void PublisherUp(std::string_view by) REQUIRES(run_mu_) {
    if (!publisher_down_) return;
    publisher_down_ = false;
    o_.Log({.level = LogLevel::kInfo, .message = "publisher up", .fields = {{"by", std::string(by)}}});
    o_.Notify([](Observer& ob) { ob.OnPublisherUp(); });
  }

  // Runs batches of stream `s` until it has nothing due, is blocked, or has
  // used `max_batches`; adds what they did to `stats` (batch by batch, so an
  // error keeps the counts of the batches before it).
  Result<DrainResult> Drain(StreamState& s, size_t max_batches, RelayStats& stats) REQUIRES(run_mu_) {
    DrainResult out;
    if (!s.delivery_mu.TryLock()) {
      ++stats.busy;
      out.busy = true;
      out.next_due_us = ToMicros(o_.Now()) + options_.interval.count();
      return out;
    }
    internal::MutexLock dl(s.delivery_mu, std::adopt_lock);
    s.claims.BeginPass();
    struct PassEnd {
      StreamState& s;
      ~PassEnd() { s.claims.EndPass(); }
    } pass_end{s};
    DrainIterators iters;
    Flow flow{.more = true};
    for (size_t n = 0; flow.more && !flow.blocked; ++n) {
      if (n == max_batches) {
        out.unfinished = true;
        break;
      }
      JM_ASSIGN_OR_RETURN(BatchResult r, Batch(s, iters));
      flow = r.flow;
      out.next_due_us = std::min(out.next_due_us, flow.next_due_us);
      stats += r.counts;
    }
    if (flow.blocked) {
      out.blocked_seq = flow.blocked_seq;
      out.blocked_error = std::move(flow.blocked_error);
    }
    JM_ASSIGN_OR_RETURN(int64_t retry_due, FirstRetryDue(s));
    out.next_due_us = std::min(out.next_due_us, retry_due);
    return out;
  }

  // When the first retry of `s` falls due (kNever when there is none).
  Result<int64_t> FirstRetryDue(const StreamState& s) {
    internal::StateRange it(o_.db.get(), s.cf, EventState::kRetrying);
    int64_t due = kNever;
    for (; it.Valid(); it.Next()) {
      auto k = it.key();
      if (!k) continue;
      due = k->due_us;
      break;
    }
    JM_RETURN_IF_ERROR(it.status(fmt::format("read retries of stream '{}'", s.name)));
    return due;
  }

  // The iterators of one drain, kept from batch to batch: creating an iterator
  // makes RocksDB 7.8 fragment every range tombstone of the memtable again (one
  // per acknowledged run), which made a long drain quadratic. Each iterator
  // reads the snapshot it was created with; what is committed later is read by
  // the next drain (the relay loop sees the commit and runs again).
  struct DrainIterators {
    std::unique_ptr<internal::StateRange> pending, retry;
    uint64_t next_seq = 0;  // `pending` stands at the first key >= this seq
    uint64_t horizon = 0;   // `pending` reads seqs up to here

    void Reset() {
      pending.reset();
      retry.reset();
    }
  };

  // How far a batch got: Drain goes on while `more` and not `blocked`.
  struct Flow {
    bool more = false;                     // stopped by the batch limit or an unattempted event
    bool blocked = false;                  // a keep-order head waits for its next attempt
    bool keep_iterators = true;            // the pending iterator stands where the next batch starts
    int64_t next_due_us = kNever;          // the earliest next attempt seen
    uint64_t blocked_seq = 0;              // with `blocked`: the head
    std::optional<Error> blocked_error{};  // with `blocked`: why it failed
  };

  // What one batch did.
  struct BatchResult {
    Flow flow;
    RelayStats counts;  // of the committed batch
  };

  // Where a batch reads: from the cursor up to the last durable seq.
  struct Window {
    uint64_t cursor = 0;
    uint64_t horizon = 0;
  };

  // Reads, publishes and acknowledges one batch of stream `s`, in named steps:
  // Settle, OpenIterators, the claims' Snapshot, ReadBatch, AckRetries, AckPending,
  // CommitBatch.
  // s.claims.BeginPass() called.
  Result<BatchResult> Batch(StreamState& s, DrainIterators& iters) REQUIRES(run_mu_, s.delivery_mu) {
    const internal::StreamConfig config = s.config();
    const Timestamp now = o_.Now();
    JM_ASSIGN_OR_RETURN(const Window w, Settle(s));
    OpenIterators(s, iters, w);
    s.claims.Snapshot(w.cursor, claims_);  // the seqs not ours to touch
    // The persisted cursor stops at the first of them, and at a rewind that
    // arrived since Settle (a failed publish-on-commit outcome write).
    persist_limit_ = std::min(claims_.empty() ? UINT64_MAX : claims_.front(), s.rewind.load(std::memory_order_acquire));
    JM_ASSIGN_OR_RETURN(Flow flow, ReadBatch(s, iters, now));
    if (retries_.empty() && pendings_.empty()) {
      if (!flow.keep_iterators) iters.Reset();
      return BatchResult{flow, {}};
    }
    DeliveryBatch batch(o_, s, internal::Source::kRelay);
    batch.Reset(config, now);
    AckRetries(batch);
    const Walk walk = AckPending(batch, config, w.cursor, flow);
    JM_RETURN_IF_ERROR(CommitBatch(s, batch, walk.new_cursor));
    flow = walk.flow;
    // The pending iterator stands just past the last record read; a malformed
    // last key leaves the cursor before it, so the next batch seeks again.
    if (!pendings_.empty() && pendings_.back().bad_key) flow.keep_iterators = false;
    if (!pendings_.empty()) iters.next_seq = walk.new_cursor;
    if (!flow.keep_iterators) iters.Reset();
    return BatchResult{flow, batch.counts()};
  }

  // Applies a publish-on-commit rewind and makes the stream's commits durable
  // (the relay publishes durable records only). Under Durability::kInterval
  // the syncer makes them durable (and wakes the relay): no sync here.
  Result<Window> Settle(StreamState& s) {
    if (uint64_t r = s.rewind.exchange(UINT64_MAX, std::memory_order_acq_rel); r < s.cursor.load()) {
      s.cursor.store(r, std::memory_order_release);
    }
    if (o_.options.durability != Durability::kInterval &&
        s.written_seq.load(std::memory_order_acquire) > s.durable_seq.load(std::memory_order_acquire)) {
      JM_RETURN_IF_ERROR(o_.MakeDurable());
    }
    Window w;
    w.horizon = s.durable_seq.load(std::memory_order_acquire);
    w.cursor = s.cursor.load(std::memory_order_acquire);
    return w;
  }

  // New iterators when the cursor is not where the pending one stands (a
  // rewind, a batch that stopped early) or when it has read everything up to
  // its horizon and more has become durable since.
  void OpenIterators(StreamState& s, DrainIterators& iters, const Window& w) REQUIRES(run_mu_) {
    const bool pending_done = !iters.pending || !iters.pending->Valid();
    if (iters.retry && (iters.next_seq != w.cursor || (pending_done && w.horizon > iters.horizon))) iters.Reset();
    if (iters.retry) return;
    // A claim released before this point cannot show in the new iterators
    // (core/claim_table.h).
    s.claims.IteratorsCreating();
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;  // each record is read once
    iters.retry =
        std::make_unique<internal::StateRange>(o_.db.get(), s.cf, EventState::kRetrying, internal::SeqBounds{}, ro);
    iters.next_seq = w.cursor;
    iters.horizon = w.horizon;
    if (w.horizon + 1 > w.cursor) {
      iters.pending = std::make_unique<internal::StateRange>(
          o_.db.get(), s.cf, EventState::kPending, internal::SeqBounds{.from_seq = w.cursor, .end_seq = w.horizon + 1},
          ro);
    }
  }

  bool IsClaimed(uint64_t seq) const REQUIRES(run_mu_) {
    return std::binary_search(claims_.begin(), claims_.end(), seq);
  }

  // Reads the record under `it` into `r` (a new Record, built in place): its
  // key, and unless claimed its value, checked by internal::CheckRecord (the
  // tool's `verify` check, signature included).
  void ReadRecord(const StreamState& s, const internal::StateRange& it, Record& r) REQUIRES(run_mu_) {
    std::string_view key = it.raw_key();
    std::memcpy(r.key.bytes, key.data(), std::min<size_t>(key.size(), sizeof r.key.bytes));
    r.key.size = static_cast<uint8_t>(std::min<size_t>(key.size(), sizeof r.key.bytes));
    auto dk = it.key();
    if (!dk) {
      r.bad_key = true;
      o_.Capture(Error(ErrorCode::kCorruption, fmt::format("stream '{}': malformed key {} skipped by the relay", s.name,
                                                           internal::ToHex(key))));
      return;
    }
    r.seq = dk->seq;
    if (IsClaimed(r.seq)) {
      r.claimed = true;
      return;
    }
    internal::CheckedRecord& c = r.checked;
    internal::CheckRecordInto(s.name, key, it.value(), o_.id, arena_, o_.signer.get(), &c);
    if (!c.envelope) {
      r.corrupt = *c.error;
      return;
    }
    if (c.problem == internal::RecordProblem::kTampered) r.tampered = *c.error;
  }

  // Reads the due retries into retries_ (keys ordered by due time; the
  // iterator stays on the first one not yet due), then pending records from
  // the cursor into pendings_: batch_size records at most.
  Result<Flow> ReadBatch(const StreamState& s, DrainIterators& iters, Timestamp now) REQUIRES(run_mu_) {
    const int64_t now_us = ToMicros(now);
    arena_.Reset();
    retries_.clear();
    pendings_.clear();
    const size_t limit = options_.batch_size;
    Flow flow;
    internal::StateRange& rit = *iters.retry;
    // After a ready notification every retry is due, but those waiting for an operator.
    const int64_t due_limit = force_due_ ? kNever - 1 : now_us;
    for (; rit.Valid(); rit.Next()) {
      auto k = rit.key();
      if (k && k->due_us > due_limit) break;
      if (retries_.size() == limit) {
        flow.more = true;
        break;
      }
      ReadRecord(s, rit, retries_.emplace_back());
    }
    JM_RETURN_IF_ERROR(rit.status(fmt::format("read retries of stream '{}'", s.name)));
    if (!iters.pending) return flow;
    internal::StateRange& pit = *iters.pending;
    for (; pit.Valid(); pit.Next()) {
      if (retries_.size() + pendings_.size() >= limit) {
        flow.more = true;
        break;
      }
      ReadRecord(s, pit, pendings_.emplace_back());
      const Record& r = pendings_.back();
      if (r.env() && internal::BlockedHeadWaits(r.env()->event, now) &&
          !(force_due_ && ToMicros(r.env()->event.next_attempt_at) != kNever)) {
        // A keep-order head waiting for its backoff (or for an operator).
        flow.next_due_us = std::min(flow.next_due_us, ToMicros(r.env()->event.next_attempt_at));
        flow.blocked = true;
        flow.blocked_seq = r.seq;
        flow.blocked_error = WaitingHeadError(r.env()->event);
        pendings_.pop_back();
        flow.keep_iterators = false;
        break;
      }
    }
    JM_RETURN_IF_ERROR(pit.status(fmt::format("read pending of stream '{}'", s.name)));
    return flow;
  }

  // Why a head that this pass did not attempt blocks its stream (its last failure).
  static Error WaitingHeadError(const Event& head) {
    const bool no_handler = head.note.starts_with("blocked: no handler");
    const std::string then = ToMicros(head.next_attempt_at) == kNever
                                 ? std::string("its attempts are exhausted: requeue or skip it")
                                 : fmt::format("attempt {} is due later", head.attempts + 1);
    return Error(no_handler ? ErrorCode::kUnknownHandler : ErrorCode::kUnavailable,
                 fmt::format("{} ({})", head.last_error, then));
  }

  // Publishes the decoded, untampered events of `recs` in one call; each
  // record's outcome is results_[r.event_index].
  void Publish(std::vector<Record>& recs, Order order, internal::AtomicHistogram& duration) REQUIRES(run_mu_) {
    events_.clear();
    for (Record& r : recs) {
      if (!r.env() || r.tampered) continue;
      r.event_index = events_.size();
      events_.push_back(r.env()->event);
    }
    // Sized only: CallPublishBatch sets every result before the publisher runs.
    results_.resize(events_.size());
    if (events_.empty()) return;
    {
      internal::ScopedDuration timed(duration);
      internal::CallPublishBatch(*publisher_, events_, order, results_);
    }
    NoteOutcomes();
  }

  // Parks a record that failed verification (corrupt or tampered).
  static void ParkUnreadable(DeliveryBatch& batch, const Record& r) {
    if (r.corrupt) {
      batch.ParkCorrupt(r.seq, r.checked.value, *r.corrupt);
    } else {
      batch.Park(*r.env(), fmt::format("tampered: {}", r.tampered->message()), &*r.tampered);
    }
  }

  // Publishes the due retries (unordered) and records their outcomes.
  void AckRetries(DeliveryBatch& batch) REQUIRES(run_mu_) {
    Publish(retries_, Order::kAny, batch.publish_duration());
    const bool keep_as_sent = !o_.options.delete_after_send;
    for (Record& r : retries_) {
      if (r.claimed || r.bad_key) continue;
      if (r.corrupt || r.tampered) {
        ParkUnreadable(batch, r);
        batch.RemoveKey(r.key.view(), false);
        continue;
      }
      const Status& st = results_[r.event_index];
      if (st) {
        batch.Succeeded(*r.env(), r.checked.value, keep_as_sent);
      } else if (st.error().code() == ErrorCode::kAborted) {
        continue;  // not attempted; stays due
      } else {
        batch.Failed(*r.env(), st.error(), rng_, /*at_head=*/false);
      }
      batch.RemoveKey(r.key.view(), false);
    }
  }

  // How the walk over the pending records ended.
  struct Walk {
    Flow flow;
    uint64_t new_cursor = 0;
  };

  // Publishes the pending run (ordered when keep-order) and records the
  // outcomes in seq order. A delivered event stays where it is (format 2,
  // storage/delivery_log.h): the cursor persisted with the batch says it was
  // sent, and its run says when. Stops at an unattempted event or a blocked
  // keep-order head.
  Walk AckPending(DeliveryBatch& batch, const internal::StreamConfig& config, uint64_t cursor, Flow flow)
      REQUIRES(run_mu_) {
    bool ordered = config.strategy == Strategy::kKeepOrder;
    for (const Record& r : pendings_)
      ordered |= r.env() && r.env()->event.strategy == Strategy::kKeepOrder;
    Publish(pendings_, ordered ? Order::kKeep : Order::kAny, batch.publish_duration());
    const bool keep_as_sent = !o_.options.delete_after_send;
    Walk w{std::move(flow), cursor};
    for (const Record& r : pendings_) {
      if (r.bad_key || r.claimed) {
        // Not ours to remove: a malformed key stays for `verify`; a claimed
        // event is resolved by publish-on-commit.
        if (r.claimed) w.new_cursor = r.seq + 1;
        continue;
      }
      if (r.corrupt || r.tampered) {
        ParkUnreadable(batch, r);
        batch.RemoveKey(r.key.view(), /*single=*/false);
        w.new_cursor = r.seq + 1;
        continue;
      }
      const Status& st = results_[r.event_index];
      if (st) {
        if (AbovePersistable(r.seq)) {
          // Past a seq publish-on-commit is still publishing, where the
          // persisted cursor cannot reach yet: moved as in format 1.
          batch.Succeeded(*r.env(), r.checked.value, keep_as_sent);
          batch.RemoveKey(r.key.view(), r.env()->event.attempts == 0);
        } else {
          batch.DeliveredInPlace(*r.env(), keep_as_sent);
        }
      } else if (st.error().code() == ErrorCode::kAborted) {
        w.flow.more = true;  // not attempted: resume here next batch
        w.flow.keep_iterators = false;
        break;
      } else {
        const internal::FailOutcome outcome = batch.Failed(*r.env(), st.error(), rng_, /*at_head=*/true);
        if (outcome == internal::FailOutcome::kBlocked) {
          // The head was rewritten in place with its next attempt time.
          w.flow.blocked = true;
          w.flow.blocked_seq = r.seq;
          w.flow.blocked_error = st.error();
          w.flow.more = false;
          w.flow.next_due_us = std::min(w.flow.next_due_us, batch.last_due_us());
          w.flow.keep_iterators = false;
          break;
        }
        batch.RemoveKey(r.key.view(), r.env()->event.attempts == 0);
      }
      w.new_cursor = r.seq + 1;
    }
    return w;
  }

  // Whether `seq` lies past the first seq the pass must not touch: the
  // persisted cursor stops there (CommitBatch), so a delivery there cannot be
  // implied by it.
  bool AbovePersistable(uint64_t seq) const REQUIRES(run_mu_) { return seq > persist_limit_; }

  // Writes the batch with the cursor, then advances the in-memory cursor.
  // The persisted cursor never passes a claimed seq, wherever an earlier pass
  // left the cursor (core/claim_table.h).
  Status CommitBatch(StreamState& s, DeliveryBatch& batch, uint64_t new_cursor) REQUIRES(run_mu_, s.delivery_mu) {
    const uint64_t persist = std::min({new_cursor, persist_limit_, s.rewind.load(std::memory_order_acquire)});
    if (persist != s.persisted_cursor) batch.SetCursor(persist);
    JM_RETURN_IF_ERROR(batch.Commit());
    s.persisted_cursor = persist;
    s.cleaner->AddDelivered(persist, batch.run());
    s.cursor.store(new_cursor, std::memory_order_release);
    return {};
  }

  OutboxImpl& o_;
  std::shared_ptr<Publisher> publisher_;
  RelayOptions options_;

  // One pass at a time (RunOnce, the loop); the pass's state and scratch
  // buffers.
  internal::Mutex run_mu_;
  // Guarded by run_mu_.
  std::mt19937_64 rng_ GUARDED_BY(run_mu_);
  std::map<StreamState*, Memo> memo_ GUARDED_BY(run_mu_);
  int64_t next_due_us_ GUARDED_BY(run_mu_) = kNever;
  bool more_ GUARDED_BY(run_mu_) = false;
  AlignedArena arena_ GUARDED_BY(run_mu_);
  std::vector<Record> retries_ GUARDED_BY(run_mu_), pendings_ GUARDED_BY(run_mu_);
  std::vector<Event> events_ GUARDED_BY(run_mu_);
  std::vector<Status> results_ GUARDED_BY(run_mu_);
  std::vector<uint64_t> claims_ GUARDED_BY(run_mu_);

  uint64_t persist_limit_ GUARDED_BY(run_mu_) = UINT64_MAX;  // of the current batch: see Batch
  // The publisher's last known health (reported on change).
  bool publisher_down_ GUARDED_BY(run_mu_) = false;
  // Ready notifications: counted by the listener, consumed by a pass, which
  // then treats every backoff as elapsed (force_due_).
  uint64_t ready_listener_ = 0;
  std::atomic<uint64_t> ready_epoch_{0};
  uint64_t seen_ready_epoch_ GUARDED_BY(run_mu_) = 0;
  bool force_due_ GUARDED_BY(run_mu_) = false;

  mutable internal::Mutex stats_mu_;
  RelayStats totals_ GUARDED_BY(stats_mu_);

  internal::Mutex thread_mu_;
  std::jthread thread_ GUARDED_BY(thread_mu_);
};

Relay::Relay(Outbox& outbox, std::shared_ptr<Publisher> publisher, RelayOptions options)
    : impl_(std::make_unique<Impl>(outbox, std::move(publisher), std::move(options))) {}
Result<std::unique_ptr<Relay>> Relay::Make(Outbox& outbox, std::shared_ptr<Publisher> publisher, RelayOptions options) {
  JM_RETURN_IF_ERROR(Impl::Validate(outbox, publisher.get(), options));
  return std::unique_ptr<Relay>(new Relay(outbox, std::move(publisher), std::move(options)));
}
Relay::~Relay() = default;
Result<RelayStats> Relay::RunOnce() {
  return impl_->RunOnce();
}
Result<RelayStats> Relay::Run(std::stop_token stop) {
  return impl_->Run(std::move(stop));
}
void Relay::Start() {
  impl_->Start();
}
void Relay::Stop() {
  impl_->Stop();
}
RelayStats Relay::stats() const {
  return impl_->stats();
}

}  // namespace jaiminho
