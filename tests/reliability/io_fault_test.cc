// I/O faults beyond transaction_test's failed appends: failed syncs, torn
// appends, faults during the relay's and publish-on-commit's outcome writes,
// ENOSPC under concurrent commits, EIO during a flush, and faults while the
// database is first created. In each case: the call reports a clear error, no
// commit is torn, and once the fault clears the outbox carries on (in place
// after ENOSPC, kResourceExhausted: the next write resumes RocksDB; after a
// reopen for EIO on the log, kFatal for the RocksDB instance) and nothing
// committed before is lost.
#include <rocksdb/db.h>

#include <condition_variable>
#include <random>
#include <thread>

#include "reliability/crash_check.h"
#include "reliability/machine.h"
#include "support/test_util.h"

namespace jaiminho::testing::crash {
namespace {

constexpr auto kRecoveryTimeout = std::chrono::seconds(60);

CheckOptions Consistency(bool final) {
  return CheckOptions{.keep_order_streams = {"ko.a", "ko.b"}, .max_inflight = SIZE_MAX, .final = final};
}

// Checks the database on disk (read-only) against what was acknowledged and
// delivered; `final` after a drain.
void ExpectConsistent(Machine& m, const std::vector<Ack>& acked, bool final) {
  Logs logs = m.deliveries->logs();
  logs.acks = acked;
  ASSERT_OK_AND_ASSIGN(DbContents db, ReadDatabase(m.path()));
  CheckReport r = Check(logs, db, Consistency(final));
  EXPECT_TRUE(r.ok()) << r.Summary();
}

std::vector<Ack> CommitSome(Machine& m, std::mt19937_64& rng, const std::string& prefix, int n) {
  std::vector<Ack> out;
  for (int i = 0; i < n; ++i) {
    auto a = CommitIdentified(*m.outbox, m.w, prefix + std::to_string(i), rng, /*sync=*/true);
    EXPECT_TRUE(a.has_value()) << a.error().ToString();
    if (a) out.push_back(*a);
  }
  return out;
}

void ExpectError(const Error& e, const std::string& path, ErrorCode code) {
  EXPECT_EQ(e.code(), code) << e.ToString();
  EXPECT_NE(e.message().find(path), std::string::npos) << "the error names the database: " << e.message();
}
void ExpectIoError(const Error& e, const std::string& path) {
  ExpectError(e, path, ErrorCode::kIOError);
}
// Out of space: retry later (kResourceExhausted); EIO on the log: close and reopen (kFatal).
ErrorCode CodeOf(FaultKind kind) {
  return kind == FaultKind::kNoSpace ? ErrorCode::kResourceExhausted : ErrorCode::kFatal;
}

// ---------------------------------------------------------------------------
// Failed syncs.

// EIO from fsync of the log: the commit fails and must not be acknowledged.
// Its bytes did reach the file (only the sync failed), so whether it survives a
// reopen is not decided by the library; what must hold is that it is whole or
// absent, that nothing acknowledged is lost, and that seqs stay unique.
TEST(IoFault, FailedLogSyncIsAnErrorAndTheCommitIsWholeOrAbsentAfterReopen) {
  Machine m;
  std::mt19937_64 rng(1);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  std::vector<Ack> acked = CommitSome(m, rng, "before.", 5);
  m.fs->SetFaultFilter(".log");
  m.fs->FailSyncs(FaultKind::kIOError);
  auto failed = CommitIdentified(*m.outbox, m.w, "during", rng, /*sync=*/true);
  ASSERT_FALSE(failed.has_value()) << "a commit whose sync failed was acknowledged";
  ExpectError(failed.error(), m.path(), ErrorCode::kFatal);
  ASSERT_OK_AND_ASSIGN(auto visible, m.outbox->Get(m.w.accounts, "c/during"));
  EXPECT_FALSE(visible.has_value()) << "a failed commit is not visible while the instance lives";
  m.fs->ClearFaults();
  auto again = CommitIdentified(*m.outbox, m.w, "after-fault", rng, /*sync=*/true);
  if (!again) {
    EXPECT_NE(again.error().message().find("reopen"), std::string::npos) << again.error().message();
    m.Close();
    ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  } else {
    acked.push_back(*again);
  }
  auto more = CommitSome(m, rng, "reopened.", 5);
  acked.insert(acked.end(), more.begin(), more.end());
  ASSERT_NO_FATAL_FAILURE(m.Drain());
  m.Close();
  ExpectConsistent(m, acked, /*final=*/true);
  ASSERT_OK_AND_ASSIGN(DbContents db, ReadDatabase(m.path()));
  std::cout << "the commit whose log sync failed is " << (db.business.contains("during") ? "present" : "absent")
            << " after the reopen\n";
}

// ENOSPC from fsync: the same, and the next commit resumes RocksDB in place. The failed
// commit's record is in the log file; a later commit must not reuse its seqs
// in a way that a restart could expose (its business write without its event).
TEST(IoFault, NoSpaceOnLogSyncRecoversAndARestartShowsNoTornCommit) {
  Machine m;
  std::mt19937_64 rng(2);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  std::vector<Ack> acked = CommitSome(m, rng, "before.", 3);
  m.fs->SetFaultFilter(".log");
  m.fs->FailSyncs(FaultKind::kNoSpace);
  auto failed = CommitIdentified(*m.outbox, m.w, "during", rng, /*sync=*/true);
  ASSERT_FALSE(failed.has_value());
  ExpectError(failed.error(), m.path(), ErrorCode::kResourceExhausted);
  m.fs->ClearFaults();
  auto after = CommitSome(m, rng, "after.", 5);
  EXPECT_EQ(after.size(), 5u) << "the commits after ENOSPC did not resume in place";
  acked.insert(acked.end(), after.begin(), after.end());
  m.Close();
  ExpectConsistent(m, acked, /*final=*/false);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  ASSERT_NO_FATAL_FAILURE(m.Drain());
  m.Close();
  ExpectConsistent(m, acked, /*final=*/true);
}

// ENOSPC in the middle of a log append (half the record reaches the file),
// repeatedly, under concurrent committers; then the disk has room again.
// Every acknowledged commit survives a restart and a power cut; no commit is
// torn; commits after the torn records are not cut off by them.
TEST(IoFault, TornAppendsUnderConcurrentCommitsLoseNothingAcknowledged) {
  Machine m;
  std::mt19937_64 rng(3);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options({.inline_publisher = true})));
  m.fs->SetFaultFilter(".log");
  m.fs->SetPartialAppends(true);
  std::mutex mu;
  std::condition_variable progress;
  std::vector<Ack> acked;
  int failures = 0;
  bool stop = false, faulty = false;  // faulty: from the fault until it clears
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      std::mt19937_64 wrng(100 + t);
      for (int i = 0;; ++i) {
        auto a = CommitIdentified(*m.outbox, m.w, "w" + std::to_string(t) + "." + std::to_string(i), wrng, true);
        std::unique_lock l(mu);
        if (a) {
          acked.push_back(*a);
        } else {
          ++failures;
          EXPECT_EQ(a.error().code(), ErrorCode::kResourceExhausted) << a.error().ToString();
        }
        progress.notify_all();
        // While the disk is full, a failed writer waits instead of spinning.
        if (!a) progress.wait(l, [&] { return !faulty || stop; });
        if (stop) break;
      }
    });
  }
  bool recovered = true;
  for (int round = 0; round < 3 && recovered; ++round) {
    {
      // Some commits succeed, then the disk fills up until a commit fails.
      std::unique_lock l(mu);
      const size_t ok_before = acked.size();
      // After a fault cleared, these are the commits that resumed RocksDB.
      recovered = progress.wait_for(l, kRecoveryTimeout, [&] { return acked.size() >= ok_before + 30; });
      if (!recovered) break;
      m.deliveries->set_generation(round + 1);  // a duplicate needs a fault in between
      faulty = true;
      m.fs->FailWrites(FaultKind::kNoSpace);
      const int failed_before = failures;
      progress.wait(l, [&] { return failures > failed_before; });
    }
    m.fs->ClearFaults();
    {
      std::lock_guard l(mu);
      faulty = false;
    }
    progress.notify_all();
  }
  if (recovered) {
    std::unique_lock l(mu);
    const size_t ok_before = acked.size();
    recovered = progress.wait_for(l, kRecoveryTimeout, [&] { return acked.size() >= ok_before + 30; });
  }
  {
    std::lock_guard l(mu);
    stop = true;
  }
  progress.notify_all();
  for (auto& w : writers)
    w.join();
  ASSERT_TRUE(recovered) << "commits never resumed after ENOSPC";
  EXPECT_GT(failures, 0);
  ASSERT_GT(acked.size(), 0u);
  const size_t acked_before_restart = acked.size();
  m.Close();
  ExpectConsistent(m, acked, /*final=*/false);

  // Commits after a restart, then a power cut: still nothing acknowledged lost.
  m.deliveries->set_generation(10);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  auto more = CommitSome(m, rng, "after-restart.", 10);
  acked.insert(acked.end(), more.begin(), more.end());
  m.PowerLoss(nullptr);
  ExpectConsistent(m, acked, /*final=*/false);
  m.deliveries->set_generation(11);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  ASSERT_NO_FATAL_FAILURE(m.Drain());
  m.Close();
  ExpectConsistent(m, acked, /*final=*/true);
  std::cout << "torn appends: " << failures << " failed commits, " << acked_before_restart
            << " acknowledged under faults, all present\n";
  RecordProperty("failed_commits", failures);
  RecordProperty("acknowledged", static_cast<int>(acked.size()));
}

// ---------------------------------------------------------------------------
// Faults while recording delivery outcomes: the event was delivered, but the
// write that records it fails. Nothing is lost: it is delivered again later.

struct OutcomeFaultCase {
  FaultKind kind;
  bool inline_publish;  // the outcome of an inline publish-on-commit, else the relay's
};

class OutcomeWriteFault : public ::testing::TestWithParam<OutcomeFaultCase> {};

TEST_P(OutcomeWriteFault, EventIsDeliveredAgainAndNothingIsLost) {
  const OutcomeFaultCase c = GetParam();
  Machine m;
  std::mt19937_64 rng(4);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options({.inline_publisher = c.inline_publish})));
  std::vector<Ack> acked = CommitSome(m, rng, "before.", 4);
  if (!c.inline_publish) m.Drain();
  const size_t delivered_before = m.deliveries->logs().deliveries.size();

  // The fault starts once the publisher has delivered: the outcome write fails.
  m.fs->SetFaultFilter(".log");
  std::atomic<bool> armed{true};
  auto trigger = std::make_shared<HandlerRegistry>();
  auto faulting = [&](const Event& e) -> Status {
    auto s = m.deliveries->Publish(e);
    if (armed.exchange(false)) m.fs->FailWrites(c.kind);
    return s;
  };
  ASSERT_OK(trigger->Register(std::string(kEventType), faulting));
  Ack during;
  if (c.inline_publish) {
    // Reopen with the faulting publisher inline; the commit itself succeeds (it
    // is durable before the publish), only the outcome write fails.
    m.Close();
    OutboxOptions o = m.Options({.inline_publisher = true});
    o.publisher = trigger;
    ASSERT_NO_FATAL_FAILURE(m.Open(o));
    armed.store(true);
    m.fs->ClearFaults();
    ASSERT_OK_AND_ASSIGN(during, CommitIdentified(*m.outbox, m.w, "during", rng, /*sync=*/true));
  } else {
    ASSERT_OK_AND_ASSIGN(during, CommitIdentified(*m.outbox, m.w, "during", rng, /*sync=*/true));
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*m.outbox, trigger));
    auto r = relay->RunOnce();
    ASSERT_FALSE(r.has_value()) << "the relay reported success although its outcome write failed";
    ExpectError(r.error(), m.path(), CodeOf(c.kind));
  }
  acked.push_back(during);
  EXPECT_GT(m.deliveries->logs().deliveries.size(), delivered_before) << "the event was delivered once";
  EXPECT_GT(m.fs->injected(), 0u);
  m.fs->ClearFaults();
  m.deliveries->set_generation(1);  // a duplicate needs a fault in between
  if (c.kind == FaultKind::kNoSpace) {
    // Out of space: the relay's next write resumes; the same instance delivers it again.
    ASSERT_NO_FATAL_FAILURE(m.Drain());
  } else {
    m.Close();
    ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
    ASSERT_NO_FATAL_FAILURE(m.Drain());
  }
  auto more = CommitSome(m, rng, "after.", 3);
  acked.insert(acked.end(), more.begin(), more.end());
  ASSERT_NO_FATAL_FAILURE(m.Drain());
  m.Close();
  ExpectConsistent(m, acked, /*final=*/true);
  size_t times = 0;
  for (const auto& d : m.deliveries->logs().deliveries)
    times += ParsePayload(d.payload)->commit == "during";
  EXPECT_GE(times, static_cast<size_t>(during.count) + 1) << "delivered again after the failed outcome write";
}

INSTANTIATE_TEST_SUITE_P(Faults, OutcomeWriteFault,
                         ::testing::Values(OutcomeFaultCase{FaultKind::kNoSpace, false},
                                           OutcomeFaultCase{FaultKind::kIOError, false},
                                           OutcomeFaultCase{FaultKind::kNoSpace, true},
                                           OutcomeFaultCase{FaultKind::kIOError, true}),
                         [](const ::testing::TestParamInfo<OutcomeFaultCase>& p) {
                           return std::string(p.param.kind == FaultKind::kNoSpace ? "NoSpace" : "IoError") +
                                  (p.param.inline_publish ? "_InlinePublish" : "_Relay");
                         });

// ---------------------------------------------------------------------------
// EIO while RocksDB flushes a memtable to an SST: a background error. Commits
// then fail with a clear error; a reopen carries on with nothing lost.
TEST(IoFault, IoErrorDuringFlushStopsCommitsUntilAReopenAndLosesNothing) {
  Machine m;
  std::mt19937_64 rng(5);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  std::vector<Ack> acked = CommitSome(m, rng, "before.", 20);
  m.fs->SetFaultFilter(".sst");
  m.fs->FailWrites(FaultKind::kIOError);
  rocksdb::FlushOptions fo;
  auto s = m.outbox->db()->Flush(fo, m.w.accounts.handle);
  EXPECT_FALSE(s.ok()) << "the injected fault did not reach the flush";
  auto during = CommitIdentified(*m.outbox, m.w, "during", rng, true);
  if (during) {
    acked.push_back(*during);
  } else {
    // A background error RocksDB does not recover from in place: close and reopen.
    ExpectError(during.error(), m.path(), ErrorCode::kFatal);
  }
  m.fs->ClearFaults();
  m.Close();
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  auto more = CommitSome(m, rng, "after.", 5);
  acked.insert(acked.end(), more.begin(), more.end());
  ASSERT_NO_FATAL_FAILURE(m.Drain());
  m.Close();
  ExpectConsistent(m, acked, /*final=*/true);
}

// ---------------------------------------------------------------------------
// Faults while the database is first created. The failed Open reports the
// error; once the fault clears, opening the same path must work (a program
// whose first start hit a full or failing disk, or a power cut, must be able
// to start again without an operator deleting the directory).

// Regression: Open creates the RocksDB database, then writes the
// format and database id records; when that write fails (or the process dies
// before it), the directory holds a database whose jaiminho.meta has no format
// record, and every later Open refused it with kCorruption "jaiminho.meta has
// no format record".
// Creates the database with writes to files named like `filter` failing, then
// opens it again once the fault is gone and commits.
void FailFirstOpenThenRecover(const std::string& filter, uint64_t seed) {
  Machine m;
  m.fs->SetFaultFilter(filter);
  m.fs->FailWrites(FaultKind::kIOError);
  OutboxOptions o = m.Options();
  o.path = m.path();
  auto first = Outbox::Open(std::move(o));
  EXPECT_FALSE(first.has_value()) << "the injected fault did not reach the creation";
  if (!first) ExpectIoError(first.error(), m.path());
  m.fs->ClearFaults();
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
  std::mt19937_64 rng(seed);
  EXPECT_EQ(CommitSome(m, rng, "c.", 3).size(), 3u);
}

TEST(IoFault, FailedFirstOpenLeavesAPathThatOpensOnceTheFaultClears_MetaWrite) {
  FailFirstOpenThenRecover(".log", 6);
}

// Regression: when RocksDB's creation itself fails before it writes
// CURRENT (here: writing CURRENT's temporary file fails), the directory keeps
// LOCK, LOG, IDENTITY and a MANIFEST, and every later Open refuses it with
// kNotADatabase ("a non-empty directory that is not a database").
TEST(IoFault, FailedFirstOpenLeavesAPathThatOpensOnceTheFaultClears_Current) {
  FailFirstOpenThenRecover("dbtmp", 7);
}

}  // namespace
}  // namespace jaiminho::testing::crash
