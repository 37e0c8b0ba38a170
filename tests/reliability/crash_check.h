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
//   - nothing is left pending, retrying or parked;
// and at both times, on the delivery log:
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
  size_t redeliveries = 0;  // deliveries of an event an earlier process had delivered
  bool ok() const { return violation_count == 0; }
  std::string Summary() const;  // the violations, one per line
};

CheckReport Check(const Logs& logs, const DbContents& db, const CheckOptions& options);

}  // namespace jaiminho::testing::crash
