// Outbox: a RocksDB database holding the program's own data and its outbox.
//
//   auto outbox = jaiminho::Outbox::Open({.path = "var/gw.db",
//                                         .business_families = {{.name = "devices"}}});
//   if (!outbox) { std::cerr << outbox.error().ToString() << "\n"; return 1; }
//   jaiminho::Stream* telemetry = *(*outbox)->OpenStream("telemetry", {.strategy = jaiminho::Strategy::kKeepOrder});
//   jaiminho::BusinessFamily devices = *(*outbox)->FindBusinessFamily("devices");
//   auto txn = (*outbox)->Begin();
//   ...
//
// Layout: business data in the caller's column families; one column family per
// stream ("jaiminho.stream.<name>"); "jaiminho.meta" for the format version, the
// database id, stream configuration, seq reservations and relay cursors;
// "jaiminho.inbox" for the records of an Inbox (inbox.h), once one is opened.
//
// Thread-safety: an Outbox is safe for concurrent use by many threads without
// external synchronization, Close() included: after Close() every call returns
// ErrorCode::kClosed naming the path (Streams() returns an empty list). Stream
// pointers stay valid until the Outbox is destroyed. A Stream or BusinessFamily
// belongs to the Outbox that returned it: another Outbox refuses it
// (kInvalidArgument, nothing written).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/event.h"
#include "jaiminho/options.h"
#include "jaiminho/result.h"
#include "jaiminho/transaction.h"

namespace rocksdb {
class DB;
}

namespace jaiminho {

class OutboxImpl;
class StreamState;

// A stream: one ordered sequence of events in its own column family.
class Stream {
 public:
  ~Stream();
  const std::string& name() const;
  // The stream's resolved settings (outbox-wide defaults applied).
  Strategy strategy() const;
  RetryPolicy retry() const;
  OnExhaustion on_exhaustion() const;
  std::chrono::seconds time_to_delete() const;

 private:
  friend class OutboxImpl;
  friend class StreamAccess;
  explicit Stream(std::unique_ptr<StreamState> state);
  std::unique_ptr<StreamState> state_;
};

// What Outbox::Clean did.
struct CleanReport {
  uint64_t removed = 0;       // sent events dropped by the filter during the call
  uint64_t kept_corrupt = 0;  // values the filter could not decode: kept, never dropped
  uint64_t bytes_before = 0;  // live SST bytes of all stream column families, before
  uint64_t bytes_after = 0;   // and after
};

// A stored event with its own copy of the bytes (Event's views point into it).
class StoredEvent {
 public:
  const Event& event() const { return event_; }
  const Event* operator->() const { return &event_; }

 private:
  friend class StoredEventAccess;
  std::shared_ptr<const void> buffer_;
  std::string stream_;
  Event event_;
};

class Outbox {
 public:
  // Opens the database at options.path, creating it when create_if_missing and
  // the directory does not exist or is empty. Fails, and creates or changes
  // nothing, when: an option is invalid (kInvalidArgument, naming it); the path
  // is a file, or a directory that is not a jaiminho database (kNotADatabase);
  // the database's format is newer than this library (kFormatTooNew); another
  // process holds it open or is creating it (kBusy); the database is damaged
  // (kCorruption, naming the path and the file). On a full disk it fails with
  // kResourceExhausted (RocksDB writes a new MANIFEST at every open).
  [[nodiscard]] static Result<std::unique_ptr<Outbox>> Open(OutboxOptions options);

  // Refuses new calls (kClosed), waits for the calls in flight (a commit racing
  // Close either completes, and is durable, or fails with kClosed), stops the
  // dispatcher, records where each stream's seqs continue (so a clean restart
  // leaves no gap) and closes the database. Idempotent; safe from any thread,
  // but not from a publisher, observer or capture_error callback of this Outbox
  // (it would wait for the call that runs the callback).
  [[nodiscard]] Status Close();
  ~Outbox();

  // Returns the stream, creating its column family on first use. Names are 1-128
  // bytes of [A-Za-z0-9._-]. Options given here are stored; on an existing
  // stream only the fields set change it, unset ones keep the stored value
  // (OpenStream(name) opens the stream as it is).
  [[nodiscard]] Result<Stream*> OpenStream(std::string_view name, StreamOptions options = {});
  // An existing stream, or kNotFound.
  [[nodiscard]] Result<Stream*> FindStream(std::string_view name) const;
  // Every stream of the database, by name.
  std::vector<Stream*> Streams() const;

  // A business column family given in OutboxOptions::business_families, one that
  // already existed in the database, or "default". Otherwise kNotFound.
  [[nodiscard]] Result<BusinessFamily> FindBusinessFamily(std::string_view name) const;

  Transaction Begin();

  // Returns once the commit of `receipt` is durable (its write-ahead log
  // synced): at once when it already is (Receipt::durable, or a later sync
  // covered it). Under Durability::kInterval it waits for the syncer (at most
  // one sync_interval, no extra sync); otherwise it syncs, sharing the sync
  // with concurrent callers and commits. Errors: the sync's (kIOError,
  // kResourceExhausted, kFatal), kClosed.
  [[nodiscard]] Status WaitDurable(const Receipt& receipt);

  // Reads business data (nullopt when absent).
  [[nodiscard]] Result<std::optional<std::string>> Get(const BusinessFamily& family, std::string_view key) const;

  // Events of a stream in a state, in seq order, at most `limit`.
  [[nodiscard]] Result<std::vector<StoredEvent>> ListEvents(const Stream& stream, EventState state,
                                                            size_t limit = 1000) const;
  // One event by seq, whatever its state; kNotFound when absent.
  [[nodiscard]] Result<StoredEvent> FindEvent(const Stream& stream, uint64_t seq) const;

  // Operator actions; each appends an entry to the event's history (time,
  // `actor`, action, reason and the note it replaced; Event::history, the last
  // kMaxHistoryEntries kept) and sets its note ("requeued by operator ACTOR:
  // REASON"), never silent. An empty `actor` records the user this process
  // runs as; a program acting for someone else (a control socket) names them.
  // Requeue: a parked event, a retrying one, or a blocked keep-order head
  // (pending, and failed or waiting: see `jaiminho-tool streams`) goes back to
  // delivery at once with its attempts reset. Any other event is refused with
  // kInvalidArgument naming the stream, seq and state: a pending event that is
  // not blocked is delivered without it, a sent one was delivered.
  [[nodiscard]] Status Requeue(const Stream& stream, uint64_t seq, std::string_view reason = {},
                               std::string_view actor = {});
  // Requeues every parked event of the stream; returns how many.
  [[nodiscard]] Result<size_t> RequeueAllParked(const Stream& stream, std::string_view reason = {},
                                                std::string_view actor = {});
  // Skip: the pending (or retrying) event `seq` is parked with `reason`, which
  // unblocks a keep-order stream stuck on it. It can be requeued later.
  [[nodiscard]] Status Skip(const Stream& stream, uint64_t seq, std::string_view reason, std::string_view actor = {});

  // The cleaner (django-jaiminho's event_cleaner): forces a compaction of the
  // sent range of every stream, in which the compaction filter drops sent
  // events whose sent_at is older than the stream's time_to_delete. Pending and
  // parked events are never dropped, whatever their age. The same filter runs in
  // every background compaction, and periodic compaction guarantees it runs on
  // an idle database too (see OutboxOptions::clean_interval).
  [[nodiscard]] Result<CleanReport> Clean();

  // This database's identity (part of every EventId).
  const DatabaseId& id() const;
  const OutboxOptions& options() const;
  // The underlying database, for reads of business data (null after Close).
  // Never write to the jaiminho.* column families directly.
  rocksdb::DB* db() const;

 private:
  friend class OutboxAccess;
  explicit Outbox(std::unique_ptr<OutboxImpl> impl);
  std::unique_ptr<OutboxImpl> impl_;
};

}  // namespace jaiminho
