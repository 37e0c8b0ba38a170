// Options: plain structs with documented defaults, validated once at
// Outbox::Open / Outbox::OpenStream (an invalid value is an ErrorCode::kInvalidArgument
// error that names the option and the value).
//
//   auto outbox = jaiminho::Outbox::Open({
//       .path = "var/gw.db",
//       .business_families = {{.name = "devices"}},
//       .strategy = jaiminho::Strategy::kKeepOrder,
//   });
//
// Thread-safety: values; copy freely.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/clock.h"
#include "jaiminho/result.h"

namespace jaiminho {

class Logger;
class Observer;
class Publisher;

// How an event is delivered (django-jaiminho's PUBLISH_STRATEGY). Stored in every
// record: the values are on-disk format, never renumber.
enum class Strategy : uint8_t {
  // Published right after its commit is durable (by the committing thread, or a
  // dispatcher thread); on failure the relay retries it. No order guarantee.
  kPublishOnCommit = 1,
  // Never published inline: the relay publishes the stream in seq order, and a
  // failing event stops its stream until it succeeds or an operator acts.
  kKeepOrder = 2,
};

// "publish-on-commit" / "keep-order".
std::string_view ToString(Strategy s);
// Accepts "publish-on-commit" and "keep-order".
Result<Strategy> ParseStrategy(std::string_view name);

// What happens when a keep-order event has used all its attempts.
enum class OnExhaustion : uint8_t {
  kBlock = 1,  // the stream stays blocked until an operator requeues or skips the head
  kPark = 2,   // the event is parked (dead-lettered) and the stream continues
};

// Retries after a failed publish: exponential backoff with jitter.
struct RetryPolicy {
  // Attempts before an event is parked (publish-on-commit) or the stream's
  // exhaustion rule applies (keep-order). 0 = unlimited, as in django-jaiminho.
  // Default: 0.
  uint32_t max_attempts = 0;
  // Delay before the second attempt. Must be > 0. Default: 1 s.
  std::chrono::microseconds initial_backoff = std::chrono::seconds(1);
  // Upper bound of the delay. Must be >= initial_backoff. Default: 5 min.
  std::chrono::microseconds max_backoff = std::chrono::minutes(5);
  // Growth of the delay per attempt. Must be >= 1 and finite. Default: 2.
  // No upper bounds: delays are computed with saturating arithmetic, and a
  // delay (with jitter) or due time beyond the int64 microsecond range (about
  // 292,000 years) means the event is not retried automatically; it waits for
  // an operator (Outbox::Requeue).
  double multiplier = 2.0;
  // The delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
  // Must be in [0, 1). Default: 0.2.
  double jitter = 0.2;
};

// What a stream does when a commit would take it past its quota.
enum class QuotaPolicy : uint8_t {
  // The commit fails with kResourceExhausted (naming the stream, the limit and
  // the usage) and writes nothing, business writes included: the program decides.
  kReject = 1,
  // The oldest undelivered events of the stream (pending and retrying, by
  // seq; never parked ones, nor one being published on commit) are deleted
  // to make room, in the commit's own WriteBatch (atomic with it); at least
  // 1% of the limit at a time. Each drop is counted (dropped_events_total),
  // reported to Observer::OnDropped and logged with its seq range. A commit
  // still fails with kResourceExhausted when parked events fill the quota.
  // For telemetry-like publish-on-commit streams; a keep-order stream's
  // consumers would see a gap, so it needs StreamQuota::drop_keep_order.
  // While a commit drops, the stream's relay skips it (they share its lock);
  // a publisher must not commit to a stream it is delivering that is over a
  // drop-oldest quota (the commit would wait for the relay's pass).
  kDropOldest = 2,
};

// A bound on what waits for delivery in one stream: pending, retrying and
// parked events (sent ones do not count). Bytes are the events' own bytes
// (type, key, payload, header names and values), not RocksDB's overhead.
// Concurrent commits are checked against the usage before the others in
// flight are counted: the bound holds within one commit group.
struct StreamQuota {
  // Most events waiting; 0 = no limit. Default: 0.
  uint64_t max_events = 0;
  // Most bytes waiting; 0 = no limit. Default: 0.
  uint64_t max_bytes = 0;
  // Default: kReject.
  QuotaPolicy policy = QuotaPolicy::kReject;
  // kDropOldest on a keep-order stream: allowed only when true (a gap in its
  // order). Default: false.
  bool drop_keep_order = false;
};

// Per-stream settings, stored with the stream. When Outbox::OpenStream creates
// a stream, unset fields take the defaults below. When the stream exists, only
// the fields given change it (and are stored); unset fields keep the stored
// value, so OpenStream(name) never changes a stream.
struct StreamOptions {
  // Default strategy of events enqueued into this stream. Default: OutboxOptions::strategy.
  std::optional<Strategy> strategy{};
  // Default: OutboxOptions::retry.
  std::optional<RetryPolicy> retry{};
  // Keep-order events that exhaust their attempts. Default: kBlock.
  std::optional<OnExhaustion> on_exhaustion{};
  // Sent events older than this are dropped by the cleaner. Must be > 0; no
  // upper bound (see OutboxOptions::time_to_delete). Default: OutboxOptions::time_to_delete.
  std::optional<std::chrono::seconds> time_to_delete{};
  // Bounds what waits for delivery (see StreamQuota); StreamQuota{} (both
  // limits 0) removes a stored quota. Default: none.
  std::optional<StreamQuota> quota{};
};

// A column family holding the program's own data.
struct BusinessFamilyOptions {
  // Column family name. "default" always exists; names starting with "jaiminho."
  // are reserved.
  std::string name{};
  // Needed for Transaction::Merge on this family. RocksDB does not store merge
  // operators, so pass the same one every time the database is opened.
  std::shared_ptr<rocksdb::MergeOperator> merge_operator{};
};

// A key for signing events (HMAC-SHA256). Keys come from the program (a
// secrets file, the environment), never from the database.
struct SigningKey {
  // Stored in each signed record so keys can rotate: 1-64 bytes. Required.
  std::string id{};
  // At least 16 bytes. Required.
  std::string secret{};
};

// Event signing (django-jaiminho's SIGN_EVENTS / VERIFY_EVENTS_SIGNATURE), over
// every field that matters: database id, stream, seq, type, key, payload,
// encoding, headers, strategy, created_at and the key id (the seed signs only
// the call). A record that fails verification is parked as tampered and never
// published.
struct SigningOptions {
  // Accepted keys; keys[0] signs new events, all of them verify. Empty (the
  // default): records are written unsigned and signatures are not checked.
  std::vector<SigningKey> keys{};
  // Sign new events. Default: on when keys are given.
  std::optional<bool> sign_events{};
  // Check signatures before publishing. Default: on when keys are given.
  std::optional<bool> verify_signatures{};
  // Refuse (park as tampered) records that carry no signature. Default: on when
  // events are signed. Turn it off while records written before signing was
  // enabled are still pending. Turning signing off never makes signed records
  // fail: they are still verified with their key.
  std::optional<bool> require_signature{};
};

// Where publish-on-commit events of a sync commit are published.
enum class InlineDispatch : uint8_t {
  kCommittingThread = 1,  // inside Commit(), after the write is durable
  kDispatcherThread = 2,  // handed to one background thread; Commit() returns at once
};

// When a commit reaches the disk: OutboxOptions::durability. Every profile
// keeps the invariants that matter downstream: a commit is written whole or
// not at all, seqs are never reused, and nothing is published (inline or by a
// relay) before it is durable, so a power cut never loses a published event.
// What a power cut may lose (a process crash without a power cut loses
// nothing in any profile: the write is in the kernel's page cache):
enum class Durability : uint8_t {
  // Commit returns once the write-ahead log is synced; concurrent commits
  // share one sync (group commit). Loses nothing acknowledged. For a trading
  // daemon.
  kSyncEachCommit = 1,
  // Commit returns after the write; a background syncer makes the log durable
  // every `sync_interval` (only when something was written). Loses the
  // commits since the last completed sync (about one interval, plus a sync in
  // flight and the syncer's scheduling delay), always a suffix of the commit
  // order, never a published event. Outbox::WaitDurable(receipt) waits for one commit's sync.
  // For a gateway on flash: one fsync per interval, not per reading.
  kInterval = 2,
  // Commit returns after the write; nothing syncs on a timer. The log reaches
  // the disk when a relay syncs before it publishes, a synced commit, a flush
  // or Close. Loses an unbounded suffix of the commit order, never a published
  // event.
  kNone = 3,
};

struct OutboxOptions {
  // Directory of the RocksDB database. Required.
  std::string path{};
  // Create the database when the directory does not exist or is empty, with
  // its missing parent directories (an ancestor that is a file is named in the
  // error). Default: true.
  bool create_if_missing = true;
  // Business column families, created when missing. Default: none ("default" only).
  std::vector<BusinessFamilyOptions> business_families{};
  // The free-space guard. While the volume of `path` has less free space than
  // this reserve, Transaction::Commit fails with kResourceExhausted (naming the
  // path, the space left and the reserve) and writes nothing, before RocksDB
  // ever meets a full disk. The relay, the cleaner, Outbox::Clean and operator
  // actions are not held back: they free space, and the reserve is the room
  // they do it in. Commits resume by themselves once there is room again (the
  // volume is checked at least every 100 ms, and at once near the reserve).
  // The reserve is the larger of min_free_bytes and min_free_percent of the
  // volume's size, of those set; with neither set, 10% of the volume, at most
  // 128 MiB. min_free_bytes = 0 (and no percent) turns the guard off.
  // min_free_percent must be in [0, 50]. Default: unset (10%, at most 128 MiB).
  std::optional<uint64_t> min_free_bytes{};
  std::optional<double> min_free_percent{};

  // When commits reach the disk (see Durability). A commit can ask for its own
  // (CommitOptions::sync). Default: kSyncEachCommit.
  Durability durability = Durability::kSyncEachCommit;
  // kInterval: how often the syncer runs. Must be in [1 ms, 10 s]. Default: 10 ms.
  std::chrono::milliseconds sync_interval{10};

  // django-jaiminho's settings, with its defaults.
  // PERSIST_ALL_EVENTS: keep a publish-on-commit event after a successful inline
  // publish (then delete_after_send decides). Every event is written in the
  // commit's batch anyway; this only decides what remains. Default: false.
  bool persist_all_events = false;
  // DELETE_AFTER_SEND: delete a delivered event instead of keeping it as sent
  // (with sent_at) until the cleaner drops it. Default: false.
  bool delete_after_send = false;
  // PUBLISH_STRATEGY. Default: kPublishOnCommit.
  Strategy strategy = Strategy::kPublishOnCommit;
  // TIME_TO_DELETE: how long sent events are kept. Must be > 0. No upper bound: a
  // value beyond the int64 microsecond range (about 292,000 years, for example
  // std::chrono::seconds::max()) keeps sent events forever. Default: 7 days.
  std::chrono::seconds time_to_delete = std::chrono::hours(24 * 7);

  // How often a background pass flushes stream data and compacts away expired
  // sent events, so they disappear within time_to_delete + clean_interval even
  // on an idle database; it also syncs the WAL and records the durable watermark
  // that lets Open detect a damaged WAL (README, "Failures and known limits").
  // 0 disables the pass (Outbox::Clean still works).
  // Must be in [0, 366 days] (31622400 s). Default: 1 hour.
  std::chrono::seconds clean_interval = std::chrono::hours(1);

  // Retry policy of streams that do not set their own.
  RetryPolicy retry{};
  // Largest payload accepted by Enqueue, headers included (the payload plus every
  // header's name and value). Must be in [1, 64 MiB]. Default: 1 MiB. The
  // other limits of an event (key up to 64 KiB, ...) are in transaction.h.
  size_t max_payload_bytes = 1 << 20;

  // Publishes publish-on-commit events inline after a durable commit. When null,
  // those events wait for a Relay. Default: null.
  std::shared_ptr<Publisher> publisher{};
  // Default: kCommittingThread.
  InlineDispatch inline_dispatch = InlineDispatch::kCommittingThread;
  // Signals (django-jaiminho's event_published and friends). An observer that
  // throws is isolated: the exception goes to capture_error and nothing else changes.
  std::vector<std::shared_ptr<Observer>> observers{};
  // django-jaiminho's DEFAULT_CAPTURE_EXCEPTION: receives every publish failure
  // and every exception thrown by an observer. Default: none.
  std::function<void(const Error&)> capture_error{};
  // Where the library logs its state changes (logger.h): publisher down/up,
  // streams blocked/unblocked, parked and tampered events, write errors.
  // Default: none (nothing is written).
  std::shared_ptr<Logger> logger{};
  // A stream's backlog (events committed and not yet delivered, as a relay
  // sees it at each pass over the stream) reaching this many events is logged
  // once as a warning; going back below half of it, once as info. 0 = never.
  // Default: 10000.
  uint64_t backlog_log_threshold = 10000;

  // Event signing. Default: off (no keys).
  SigningOptions signing{};

  // Live control: serve operator actions (jaiminho-tool requeue, skip, clean,
  // and stats with this process's counters) on the Unix socket
  // "<path>/control.sock", from Open until Close, which removes it. The socket
  // has mode 0600: this process's user (and root) may connect; others are
  // refused. A socket file left by a process that is gone is replaced; Open
  // fails with kBusy when a process listens on it, and with kInvalidArgument
  // when the socket's path is longer than a Unix socket address holds (107
  // bytes: open the database by a shorter path). One request at a time, on
  // one thread; a client that sends nothing is dropped after 5 s, and Close
  // never waits for one. Protocol: README, "Live control".
  // Default: false (no socket file, nothing listens).
  bool control_socket = false;

  // Injectable clock (created_at, sent_at, backoff, cleaner). Default: system clock.
  std::shared_ptr<Clock> clock{};
  // RocksDB's own log. Debian's build logs at DEBUG unless told. Default: WARN.
  rocksdb::InfoLogLevel info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // Where RocksDB's info log goes. Empty: the last 64 KiB of lines are kept in
  // memory and no LOG file is written. A path: lines are appended to that file
  // (renamed to "<path>.old" at 4 MiB). Either way jaiminho writes it, not
  // RocksDB: a line that cannot be written (a full disk) is dropped, never an
  // error or an abort. Put the file on another disk than the database to keep
  // the lines about a full disk. Default: empty (in memory).
  std::string info_log_path{};
  // Also pass RocksDB's info log lines (at or above info_log_level) to
  // `logger`, as records "rocksdb" with the line in field `line`, at the
  // matching level (DEBUG, INFO, WARN, ERROR/FATAL as error). Default: false.
  bool info_log_to_logger = false;
  // A RocksDB Env to run on (tests inject faults through it). Default: the default Env.
  rocksdb::Env* env = nullptr;
  // Called on the DBOptions before open, to tune RocksDB. Default: none.
  // Leave allow_concurrent_memtable_write off (our default): the inbox's
  // family updates its records in place, which RocksDB refuses with it.
  std::function<void(rocksdb::DBOptions&)> tune_db{};
};

// Per-commit options; pass to Transaction::Commit.
struct CommitOptions {
  // true: wait for the write-ahead log to reach the disk before returning (as
  // Durability::kSyncEachCommit); false: return after the write (the commit
  // becomes durable as the outbox's profile says: at the next interval sync
  // under kInterval). Only a commit that was durable when Commit returned has
  // its publish-on-commit events published inline; the others go to the
  // relay, which publishes durable events only. Default: unset, the outbox's
  // OutboxOptions::durability.
  std::optional<bool> sync{};
};

}  // namespace jaiminho
