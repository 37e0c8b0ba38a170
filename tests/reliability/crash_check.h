// The crash harness's checker: compares the logs of the killed processes
// (crash_log.h) with what the database holds, and lists every violation of
// the invariants in ../shared/DESIGN.md it can see.
//
// After every kill (before any process recovers the database):
//   - every acknowledged commit has its business write, and each of its events
//     is stored under the (stream, seq) of its receipt, or was delivered (and
//     then deleted);
//   - atomicity: a commit whose business write is present has all its events
//     (stored or delivered); every stored or delivered event belongs to a
//     commit whose business write is present (so nothing was published before
//     its commit was durable);
//   - uniqueness: one (stream, seq) never names two different events, across
//     deliveries, receipts and the database.
// After the drain (Options::final), also:
//   - at-least-once: every event of every present commit was delivered;
//   - nothing is left pending, retrying or parked.
// At both times, in streams under a drop-oldest quota
// (CheckOptions::drop_oldest_streams; the harness runs them with the relay
// only: no inline publish claims an event, and no event is parked). A drop deletes the stream's oldest droppable
// (pending or retrying) events in the WriteBatch of the commit that needs the
// room, then reports them (drops.log) before that Commit returns; a kill can
// land in between, so an acknowledged commit's drops are all reported but
// the last, unacknowledged commit of a process may have dropped unreported
// (one per stream: the commit holds the stream's delivery lock from its plan
// until it returns; how many events that drop took is not bounded here).
// There, an event of a present commit that is neither stored nor delivered
// ("missing") is not a loss when:
//   D1 reported: its seq is in a reported range [first, last] of its stream;
//      a range excuses at most `count` missing events;
//   D2 unreported: (a) no event of its stream with a lower seq is stored
//      pending or retrying (a drop takes the oldest first: everything below
//      it was then delivered, dropped or parked, and stays so; later commits
//      get higher seqs), and (b) a commit that is present but unacknowledged
//      (the only kind whose drop can be unreported) could have carried the
//      drop: it has an event of that stream with a higher seq, or an event
//      that is itself missing (dropped later);
//   D3 an event of an unacknowledged commit (its receipt unknown, so no
//      stream or seq to check) counts as dropped when the harness has a
//      drop-oldest stream (reported as unattributed).
// Every missing event not excused is a violation (torn commit, lost
// acknowledged event, at-least-once). And the drops must be the oldest:
//   D4 no event of the stream at or below a reported range's last seq is
//      stored pending or retrying (the drop would have taken it first), and
//      a reported range is well formed (first <= last, 1 <= count <= the span)
//      and in a drop-oldest stream.
// At both times, on the delivery log:
//   - no event is delivered twice by one process (a duplicate needs a crash);
//   - an event whose outcome a process reported written (outcomes.log) is
//     never delivered by a later process;
//   - keep-order streams, per process: seqs strictly increase. A process may
//     begin with a re-delivery of the in-flight run of an earlier one: when its
//     first delivery x is not beyond the highest seq M delivered so far, then x
//     was delivered before, its re-deliveries are exactly the seqs delivered
//     from x on, in the same order, with no hole (all of them up to M before it
//     delivers anything new), that run holds at most `max_inflight` events (the
//     relay's batch: outcomes are written per batch), and x is above every seq
//     whose outcome an earlier process reported written. Anything else
//     (going back further, skipping, reordering) is a violation.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "jaiminho/result.h"
#include "reliability/crash_log.h"

namespace jaiminho::testing::crash {

struct DbRecord {
  char state = 0;  // 'p', 'r', 's', 'd'
  std::string payload;
  bool corrupt = false;
};

struct DbContents {
  bool exists = false;                          // the directory holds a database (CURRENT)
  std::map<std::string, std::string> business;  // commit -> value
  std::map<EventRef, DbRecord> events;
};

// Reads the database read-only (nothing is written, no lock is taken): what a
// crash left, before any recovery by jaiminho.
Result<DbContents> ReadDatabase(const std::string& path);

struct CheckOptions {
  std::set<std::string> keep_order_streams;
  std::set<std::string> drop_oldest_streams{};  // under a drop-oldest quota (rules D1-D4)
  size_t max_inflight = 256;
  bool final = false;
};

struct CheckReport {
  std::vector<std::string> violations;  // the first 50
  size_t violation_count = 0;
  size_t commits_acked = 0;
  size_t commits_present = 0;
  size_t events_committed = 0;
  size_t deliveries = 0;
  size_t redeliveries = 0;          // deliveries of an event an earlier process had delivered
  size_t drops_reported = 0;        // events, summed over drops.log
  size_t missing_reported = 0;      // missing events excused by a reported drop (D1)
  size_t missing_unreported = 0;    // ... by an unreported drop (D2)
  size_t missing_unattributed = 0;  // ... of unacknowledged commits (D3)
  bool ok() const { return violation_count == 0; }
  std::string Summary() const;  // the violations, one per line
};

CheckReport Check(const Logs& logs, const DbContents& db, const CheckOptions& options);

}  // namespace jaiminho::testing::crash
