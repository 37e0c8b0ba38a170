// Crash harness: a child process (crash_child.cc) commits and relays while the
// test SIGKILLs it at random moments, restarts it, and checks after every kill
// and after a final drain that the invariants hold (crash_check.h says which).
//
//   JAIMINHO_CRASH_CYCLES=500 ./crash_test     # more kills (default 20)
//   JAIMINHO_CRASH_SEED=1234 ./crash_test      # repeat a run's random choices
//   JAIMINHO_CRASH_KEEP=/tmp/x ./crash_test    # keep the database and logs there
//
// The random delay before each kill is the point of the test, not a stand-in
// for synchronization: it decides where in the child's work the crash lands.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "reliability/crash_check.h"
#include "reliability/crash_log.h"
#include "reliability/workload.h"
#include "support/child.h"
#include "support/test_util.h"

namespace jaiminho::testing::crash {
namespace {

void RandomPause(std::mt19937_64& rng, std::chrono::microseconds max) {
  auto us = std::uniform_int_distribution<int64_t>(0, max.count())(rng);
  std::this_thread::sleep_for(std::chrono::microseconds(us));
}

void AppendMarkers(const std::string& dir, int generation, int* torn) {
  for (auto name : {kDeliveriesLog, kOutcomesLog, kAcksLog, kDropsLog}) {
    if (RepairTornTail(dir + "/" + std::string(name))) ++*torn;
  }
  for (auto name : {kDeliveriesLog, kOutcomesLog, kDropsLog}) {
    DurableLog(dir + "/" + std::string(name), /*sync=*/true).Append(MarkerLine(generation));
  }
}

// SIGKILLs the child and reaps it; false when it had already ended by itself.
bool Kill(Child& child) {
  ::kill(child.pid(), SIGKILL);
  return child.Wait() == 128 + SIGKILL;
}

// Copies the work directory to $JAIMINHO_CRASH_KEEP (for a post-mortem) when set.
struct KeepOnExit {
  const TempDir& dir;
  ~KeepOnExit() {
    const char* to = std::getenv("JAIMINHO_CRASH_KEEP");
    if (to == nullptr || *to == '\0') return;
    std::error_code ec;
    std::filesystem::remove_all(to, ec);
    std::filesystem::copy(dir.path(), to, std::filesystem::copy_options::recursive, ec);
    std::cout << "work directory kept in " << to << (ec ? " (copy failed: " + ec.message() + ")" : "") << "\n";
  }
};

// The parameter: the child's mode (crash_child.cc): "relay" (the relay
// publishes everything), "inline" (publish-on-commit events are also
// published inline, claimed by the committing thread or the dispatcher), or
// "drop-oldest" (relay, and a publish-on-commit stream under a small
// drop-oldest quota: crash_check.h's rules D1-D4).
class CrashHarness : public ::testing::TestWithParam<std::string> {};

TEST_P(CrashHarness, RandomKillsLoseNothingDuplicateOnlyInFlightAndKeepOrder) {
  const std::string mode = GetParam();
  const bool drop_oldest = mode == "drop-oldest";
  const int cycles = EnvInt("JAIMINHO_CRASH_CYCLES", 20);
  const uint64_t seed = SeedFromEnv("JAIMINHO_CRASH_SEED");
  std::mt19937_64 rng(seed);
  TempDir dir;
  KeepOnExit keep{dir};
  CheckOptions options{.keep_order_streams = {"ko.a", "ko.b"}, .max_inflight = 256};
  if (drop_oldest) {
    options.keep_order_streams = {"ko.a"};
    options.drop_oldest_streams = {std::string(kDropStream)};
  }
  int early_kills = 0, torn = 0;
  size_t checked_records = 0;

  for (int generation = 0; generation < cycles; ++generation) {
    AppendMarkers(dir.path(), generation, &torn);
    Child child({JM_CRASH_CHILD, "run", dir.path(), std::to_string(seed), std::to_string(generation), mode});
    if (rng() % 8 == 0) {
      // While it opens: creating the database, replaying the log, opening streams.
      ++early_kills;
      RandomPause(rng, std::chrono::milliseconds(60));
    } else {
      ASSERT_EQ(child.ReadLine(), "ready") << "generation " << generation << " did not open (stderr above)";
      RandomPause(rng, std::chrono::milliseconds(300));
    }
    ASSERT_TRUE(Kill(child)) << "generation " << generation << " ended by itself (stderr above)";

    Logs logs = ReadLogs(dir.path());
    ASSERT_OK_AND_ASSIGN(DbContents db, ReadDatabase(dir.Sub("db")));
    if (!db.exists) {
      ASSERT_TRUE(logs.acks.empty() && logs.deliveries.empty()) << "acknowledged work but no database";
      continue;
    }
    CheckReport report = Check(logs, db, options);
    checked_records += db.events.size() + db.business.size();
    ASSERT_TRUE(report.ok()) << "after kill " << generation << " (seed " << seed << "): " << report.Summary();
  }

  AppendMarkers(dir.path(), cycles, &torn);
  {
    Child drain({JM_CRASH_CHILD, "drain", dir.path(), std::to_string(cycles), mode});
    std::string line = drain.ReadLine();
    ASSERT_EQ(line.rfind("drained ", 0), 0u) << line;
    ASSERT_EQ(drain.Wait(), 0);
  }
  Logs logs = ReadLogs(dir.path());
  ASSERT_OK_AND_ASSIGN(DbContents db, ReadDatabase(dir.Sub("db")));
  CheckOptions final_options = options;
  final_options.final = true;
  CheckReport report = Check(logs, db, final_options);
  EXPECT_TRUE(report.ok()) << "after the drain (seed " << seed << "): " << report.Summary();
  checked_records += db.events.size() + db.business.size();

  std::cout << "crash harness: " << cycles << " kills (" << early_kills << " while opening), " << report.commits_acked
            << " acknowledged commits, " << report.commits_present << " commits present, " << report.events_committed
            << " events, " << report.deliveries << " deliveries (" << report.redeliveries
            << " re-deliveries after a crash), " << torn << " torn log lines, " << checked_records
            << " database records checked\n";
  if (drop_oldest) {
    std::cout << "drop-oldest: " << logs.drops.size() << " drops reported (" << report.drops_reported
              << " events); missing events excused: " << report.missing_reported << " in a reported drop, "
              << report.missing_unreported << " by an unreported drop, " << report.missing_unattributed
              << " of unacknowledged commits\n";
    RecordProperty("drops_reported", static_cast<int>(report.drops_reported));
    RecordProperty("missing_unreported", static_cast<int>(report.missing_unreported));
    EXPECT_GT(logs.drops.size(), static_cast<size_t>(cycles)) << "the quota hardly dropped anything";
  }
  RecordProperty("cycles", cycles);
  RecordProperty("early_kills", early_kills);
  RecordProperty("commits_acked", static_cast<int>(report.commits_acked));
  RecordProperty("commits_present", static_cast<int>(report.commits_present));
  RecordProperty("events", static_cast<int>(report.events_committed));
  RecordProperty("deliveries", static_cast<int>(report.deliveries));
  RecordProperty("redeliveries", static_cast<int>(report.redeliveries));
  RecordProperty("records_checked", static_cast<int>(checked_records));
  EXPECT_GT(report.commits_acked, static_cast<size_t>(cycles)) << "the children hardly committed anything";
  if (!drop_oldest) {
    EXPECT_GE(report.deliveries, report.events_committed);
  }
}

INSTANTIATE_TEST_SUITE_P(RelayOnly, CrashHarness, ::testing::Values("relay"));
// With inline publish-on-commit: the relay never persists its cursor past an
// event still claimed by an inline publish (it once did, stranding the event).
INSTANTIATE_TEST_SUITE_P(WithInlinePublishOnCommit, CrashHarness, ::testing::Values("inline"));
// Kills during drop-oldest commits (issue 17): no acknowledged event lost
// except those dropped (reported, or by the killed commit), the oldest first.
INSTANTIATE_TEST_SUITE_P(DropOldestQuota, CrashHarness, ::testing::Values("drop-oldest"));

// ---------------------------------------------------------------------------
// The checker itself, on hand-made logs: each rule must catch its violation
// (so the harness above can fail).

struct Scenario {
  Logs logs;
  DbContents db;
  CheckOptions options{.keep_order_streams = {"k"}, .max_inflight = 4};

  // A commit with `n` events at the given refs, stored in state `state` (0: not stored).
  void Commit(const std::string& commit, const std::vector<EventRef>& refs, char state = 's', bool acked = true) {
    db.exists = true;
    db.business[commit] = std::to_string(refs.size());
    for (size_t k = 0; k < refs.size(); ++k) {
      if (state != 0) {
        db.events[refs[k]] = DbRecord{state, EventPayload(commit, static_cast<int>(k), static_cast<int>(refs.size()))};
      }
    }
    if (acked) logs.acks.push_back(Ack{commit, static_cast<int>(refs.size()), refs});
  }
  void Deliver(int generation, const EventRef& ref, const std::string& payload) {
    logs.deliveries.push_back(Delivery{generation, ref, std::string(kEventType), payload});
  }
  // Delivers seq `seq` of stream k, committed as "c<seq>" with one event.
  void DeliverK(int generation, uint64_t seq) {
    Deliver(generation, {"k", seq}, EventPayload("c" + std::to_string(seq), 0, 1));
  }
  void Record(int generation, uint64_t seq) {
    logs.outcomes.push_back(Outcome{generation, {"k", seq}, EventPayload("c" + std::to_string(seq), 0, 1)});
  }
  // Commits c1..cN into stream k, one event each.
  void CommitK(uint64_t n) {
    for (uint64_t s = 1; s <= n; ++s)
      Commit("c" + std::to_string(s), {{"k", s}});
  }
  std::string Violations(bool final = false) {
    CheckOptions o = options;
    o.final = final;
    return Check(logs, db, o).Summary();
  }
};

TEST(CrashChecker, AcceptsAConsistentHistoryWithAnInFlightRedelivery) {
  Scenario s;
  s.CommitK(6);
  for (uint64_t q : {1, 2, 3})
    s.DeliverK(0, q);
  s.Record(0, 1);
  // Crash: 2 and 3 were in flight; process 1 delivers them again, then goes on.
  for (uint64_t q : {2, 3, 4, 5, 6})
    s.DeliverK(1, q);
  EXPECT_EQ(s.Violations(/*final=*/true), "0 violation(s)");
}

TEST(CrashChecker, CatchesALostAcknowledgedCommit) {
  Scenario s;
  s.CommitK(2);
  s.db.business.erase("c2");
  s.db.events.erase({"k", 2});
  EXPECT_NE(s.Violations().find("acknowledged commit c2 lost"), std::string::npos) << s.Violations();
}

TEST(CrashChecker, CatchesATornCommitEitherWay) {
  Scenario s;
  s.Commit("a", {{"k", 1}, {"p", 1}});
  s.db.events.erase({"p", 1});
  EXPECT_NE(s.Violations().find("torn commit: a"), std::string::npos) << s.Violations();
  Scenario t;
  t.Commit("b", {{"k", 1}}, 'p', /*acked=*/false);
  t.db.business.clear();
  EXPECT_NE(t.Violations().find("without its commit's business write"), std::string::npos) << t.Violations();
}

TEST(CrashChecker, CatchesAReusedSeq) {
  Scenario s;
  s.Commit("a", {{"k", 1}});
  s.Commit("b", {{"k", 1}}, 0);
  EXPECT_NE(s.Violations().find("seq reused"), std::string::npos) << s.Violations();
}

TEST(CrashChecker, CatchesAnUndeliveredEventAfterTheDrain) {
  Scenario s;
  s.CommitK(2);
  s.DeliverK(0, 1);
  EXPECT_EQ(s.Violations(), "0 violation(s)");
  EXPECT_NE(s.Violations(true).find("never delivered"), std::string::npos);
  s.db.events[{"k", 2}].state = 'p';
  EXPECT_NE(s.Violations(true).find("left in state 'p'"), std::string::npos);
}

TEST(CrashChecker, CatchesKeepOrderViolations) {
  {
    Scenario s;  // reordered within a process
    s.CommitK(3);
    for (uint64_t q : {1, 3, 2})
      s.DeliverK(0, q);
    EXPECT_NE(s.Violations().find("delivered seq 2 after seq 3"), std::string::npos) << s.Violations();
  }
  {
    Scenario s;  // a later process delivers a skipped seq
    s.CommitK(3);
    for (uint64_t q : {1, 3})
      s.DeliverK(0, q);
    s.DeliverK(1, 2);
    EXPECT_NE(s.Violations().find("out of order"), std::string::npos) << s.Violations();
  }
  {
    Scenario s;  // a duplicate without a crash
    s.CommitK(2);
    for (uint64_t q : {1, 2})
      s.DeliverK(0, q);
    s.DeliverK(0, 2);
    EXPECT_NE(s.Violations().find("delivered twice by process 0"), std::string::npos) << s.Violations();
  }
  {
    Scenario s;  // re-delivery of an event whose outcome was written
    s.CommitK(3);
    for (uint64_t q : {1, 2, 3})
      s.DeliverK(0, q);
    s.Record(0, 1);
    s.Record(0, 2);
    for (uint64_t q : {2, 3})
      s.DeliverK(1, q);
    EXPECT_NE(s.Violations().find("although process 0 had written its outcome"), std::string::npos) << s.Violations();
    EXPECT_NE(s.Violations().find("went back to seq 2"), std::string::npos) << s.Violations();
  }
  {
    Scenario s;  // part of the run re-delivered, then a jump
    s.CommitK(5);
    for (uint64_t q : {1, 2, 3, 4})
      s.DeliverK(0, q);
    for (uint64_t q : {2, 3, 5})
      s.DeliverK(1, q);
    EXPECT_NE(s.Violations().find("then went on to seq 5"), std::string::npos) << s.Violations();
  }
  {
    Scenario s;  // a re-delivered run longer than a relay has in flight
    s.CommitK(7);
    for (uint64_t q = 1; q <= 6; ++q)
      s.DeliverK(0, q);
    for (uint64_t q = 1; q <= 7; ++q)
      s.DeliverK(1, q);
    EXPECT_NE(s.Violations().find("more than the 4"), std::string::npos) << s.Violations();
  }
}

// Drop-oldest (rules D1-D4): stream t has a drop-oldest quota; commits
// t1..tN put one event each at t:1..t:N.
struct DropScenario : Scenario {
  DropScenario() { options.drop_oldest_streams = {"t"}; }
  void CommitT(uint64_t n, char state = 'p') {
    for (uint64_t q = 1; q <= n; ++q)
      Commit("t" + std::to_string(q), {{"t", q}}, state);
  }
  void Dropped(uint64_t seq) { db.events.erase({"t", seq}); }
  void Report(uint64_t first, uint64_t last, uint64_t count, const std::string& stream = "t") {
    logs.drops.push_back(Drop{0, stream, first, last, count});
  }
};

TEST(CrashChecker, AcceptsEventsMissingInAReportedDrop) {
  DropScenario s;
  s.CommitT(4);
  s.Dropped(1);
  s.Dropped(2);
  s.Report(1, 2, 2);
  EXPECT_EQ(s.Violations(), "0 violation(s)");
  for (uint64_t q : {3, 4}) {
    s.db.events[{"t", q}].state = 's';
    s.Deliver(0, {"t", q}, EventPayload("t" + std::to_string(q), 0, 1));
  }
  EXPECT_EQ(s.Violations(/*final=*/true), "0 violation(s)");
}

TEST(CrashChecker, CatchesALossOutsideTheReportedDrops) {
  DropScenario s;
  s.CommitT(4);
  s.Dropped(1);
  s.Dropped(2);
  s.Dropped(3);
  s.Report(1, 2, 2);
  EXPECT_NE(s.Violations().find("acknowledged event t:3 (t3#0/1) lost"), std::string::npos) << s.Violations();
  EXPECT_NE(s.Violations().find("no unacknowledged commit could have dropped it"), std::string::npos) << s.Violations();
  // Without the report, none of them is excused.
  s.logs.drops.clear();
  EXPECT_NE(s.Violations().find("t:1 (t1#0/1) lost"), std::string::npos) << s.Violations();
}

TEST(CrashChecker, AcceptsAnUnreportedDropOnlyByAnUnacknowledgedCommitAndOldestFirst) {
  DropScenario s;
  s.CommitT(4, 's');
  s.Dropped(1);
  s.Dropped(2);
  s.Commit("t5", {{"t", 5}}, 'p', /*acked=*/false);  // killed after its write, before its report
  EXPECT_EQ(s.Violations(), "0 violation(s)");
  // Missing above a waiting event: the drop would have taken the older one first.
  s.db.events[{"t", 3}].state = 'p';
  s.Dropped(4);
  EXPECT_NE(s.Violations().find("t:4 (t4#0/1) lost: neither stored nor delivered; in no reported drop, and an "
                                "older seq 3 of its stream is still waiting"),
            std::string::npos)
      << s.Violations();
  EXPECT_EQ(s.Violations().find("t:1 (t1#0/1) lost"), std::string::npos) << s.Violations();
  // No unacknowledged commit: every drop was reported, and these were not.
  DropScenario t;
  t.CommitT(4, 's');
  t.Dropped(1);
  EXPECT_NE(t.Violations().find("acknowledged event t:1 (t1#0/1) lost"), std::string::npos) << t.Violations();
}

TEST(CrashChecker, CatchesADropThatIsNotTheOldestOrNotAsReported) {
  {
    DropScenario s;  // seq 2 dropped while seq 1 waits
    s.CommitT(3);
    s.Dropped(2);
    s.Report(2, 2, 1);
    EXPECT_NE(s.Violations().find("seq 1 is still waiting for delivery although process 0 reported dropping 2..2"),
              std::string::npos)
        << s.Violations();
  }
  {
    DropScenario s;  // more missing in a range than it reported
    s.CommitT(3, 's');
    s.Dropped(1);
    s.Dropped(3);
    s.Report(1, 3, 1);
    EXPECT_NE(s.Violations().find("reported 1 events dropped in 1..3, but 2 events"), std::string::npos)
        << s.Violations();
  }
  {
    DropScenario s;  // a drop in a stream without a drop-oldest quota, or malformed
    s.CommitK(2);
    s.Report(1, 1, 1, "k");
    s.Report(3, 2, 1);
    EXPECT_NE(s.Violations().find("which has no drop-oldest quota"), std::string::npos) << s.Violations();
    EXPECT_NE(s.Violations().find("malformed drop report"), std::string::npos) << s.Violations();
  }
}

}  // namespace
}  // namespace jaiminho::testing::crash
