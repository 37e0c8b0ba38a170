// Power loss: FaultFileSystem cuts the power (Deactivate: nothing written
// after it reaches the disk), the Outbox is destroyed, everything not synced is
// dropped (DropUnsyncedData), and the database is reopened.
//
// With sync=true no acknowledged commit is lost; with sync=false, and under
// the durability profiles kInterval and kNone, the database opens consistent:
// the commits present are a prefix of the commit order, each one whole. In
// every case nothing was published before it was durable, a reopened outbox
// carries on with fresh seqs, and a relay delivers every surviving event. The
// checks are crash_check.h's, shared with the crash harness.
//
//   JAIMINHO_POWER_ROUNDS=50 ./fault_test --gtest_filter='PowerLoss.*'
#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "reliability/crash_check.h"
#include "reliability/machine.h"
#include "reliability/workload.h"
#include "support/fault_fs.h"
#include "support/test_util.h"

namespace jaiminho::testing::crash {
namespace {

int Rounds() {
  return EnvInt("JAIMINHO_POWER_ROUNDS", 8);
}

CheckOptions PowerLossCheck(bool final) {
  // Outcome writes are not synced, so after a power cut any delivered event
  // may come again: no bound on the re-delivered run, only its shape.
  return CheckOptions{.keep_order_streams = {"ko.a", "ko.b"}, .max_inflight = SIZE_MAX, .final = final};
}

std::string Describe(const CheckReport& r) {
  return r.Summary() + "\n(" + std::to_string(r.commits_acked) + " acknowledged, " + std::to_string(r.commits_present) +
         " present)";
}

// Writers commit with sync=true until the power goes (after a random number of
// syncs or appends, so the cut lands anywhere: in a commit, in a relay pass, in
// an inline publish). A commit that returned while the power was still on is
// required.
TEST(PowerLoss, SyncedCommitsSurviveEveryCutPoint) {
  const uint64_t seed = SeedFromEnv("JAIMINHO_POWER_SEED");
  std::mt19937_64 rng(seed);
  size_t total_required = 0, total_present = 0, total_deliveries = 0, total_dropped = 0;
  const int rounds = Rounds();
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + " seed " + std::to_string(seed));
    Machine m;
    const bool inline_publisher = round % 2 == 1;
    const bool with_relay = round % 4 != 0;
    const bool delete_after_send = round % 3 == 2;
    ASSERT_NO_FATAL_FAILURE(
        m.Open(m.Options({.inline_publisher = inline_publisher, .delete_after_send = delete_after_send})));
    std::unique_ptr<Relay> relay;
    if (with_relay) {
      ASSERT_OK_AND_ASSIGN(
          relay, Relay::Make(*m.outbox, m.deliveries, {.interval = std::chrono::milliseconds(5), .batch_size = 8}));
      relay->Start();
    }
    // The cut: right after a sync, or after an append (often between a write and its sync).
    if (round % 3 == 0) {
      m.fs->DeactivateAfterSyncs(std::uniform_int_distribution<uint64_t>(10, 150)(rng));
    } else {
      m.fs->DeactivateAfterAppends(std::uniform_int_distribution<uint64_t>(20, 400)(rng));
    }
    std::mutex mu;
    std::vector<Ack> required;
    std::vector<std::thread> writers;
    for (int t = 0; t < 2; ++t) {
      writers.emplace_back([&, t, wseed = rng()] {
        std::mt19937_64 wrng(wseed);
        for (int i = 0; m.fs->active() && i < 100000; ++i) {
          auto ack = CommitIdentified(*m.outbox, m.w, "r" + std::to_string(t) + "." + std::to_string(i), wrng, true);
          if (!ack) {
            // Without power RocksDB cannot create files; nothing is acknowledged then.
            ASSERT_FALSE(m.fs->active()) << ack.error().ToString();
            break;
          }
          if (m.fs->active()) {
            std::lock_guard l(mu);
            required.push_back(*ack);
          }
        }
      });
    }
    for (auto& t : writers)
      t.join();
    if (relay) relay->Stop();
    relay.reset();
    total_dropped += m.PowerLoss(round % 2 == 0 ? &rng : nullptr);

    // What the disk holds, before jaiminho recovers anything.
    Logs logs = m.deliveries->logs();
    logs.acks = required;
    ASSERT_OK_AND_ASSIGN(DbContents db, ReadDatabase(m.path()));
    ASSERT_TRUE(db.exists);
    CheckReport after_cut = Check(logs, db, PowerLossCheck(false));
    ASSERT_TRUE(after_cut.ok()) << Describe(after_cut);
    ASSERT_FALSE(required.empty()) << "no commit was acknowledged before the cut";

    // Reopened, it carries on: new commits get new seqs, and every event is delivered.
    m.deliveries->set_generation(1);
    ASSERT_NO_FATAL_FAILURE(
        m.Open(m.Options({.inline_publisher = inline_publisher, .delete_after_send = delete_after_send})));
    for (int i = 0; i < 20; ++i) {
      ASSERT_OK_AND_ASSIGN(Ack ack, CommitIdentified(*m.outbox, m.w, "after." + std::to_string(i), rng, true));
      logs.acks.push_back(ack);
    }
    ASSERT_NO_FATAL_FAILURE(m.Drain());
    ASSERT_OK(m.outbox->Close());
    m.outbox.reset();
    Logs final_logs = m.deliveries->logs();
    final_logs.acks = logs.acks;
    ASSERT_OK_AND_ASSIGN(DbContents final_db, ReadDatabase(m.path()));
    CheckReport final_report = Check(final_logs, final_db, PowerLossCheck(true));
    ASSERT_TRUE(final_report.ok()) << Describe(final_report);
    total_required += required.size();
    total_present += after_cut.commits_present;
    total_deliveries += final_report.deliveries;
  }
  std::cout << "power loss (sync=true): " << rounds << " cuts, " << total_required << " acknowledged commits required, "
            << total_present << " present after the cut, " << total_deliveries << " deliveries checked, "
            << total_dropped << " unsynced bytes dropped\n";
  RecordProperty("rounds", rounds);
  RecordProperty("required_commits", static_cast<int>(total_required));
  RecordProperty("deliveries", static_cast<int>(total_deliveries));
}

// sync=false: commits are acknowledged before they are durable, so a cut may
// lose the last ones, but never tears one, and never loses one while keeping a
// later one. Every commit's first event goes to stream "ko.a", so its seq
// there is the commit order. A relay, when running, syncs the log before it
// publishes: what it delivered must survive.
TEST(PowerLoss, UnsyncedCommitsRecoverToAPrefixOfWholeCommits) {
  const uint64_t seed = SeedFromEnv("JAIMINHO_POWER_SEED");
  std::mt19937_64 rng(seed);
  const int rounds = Rounds();
  size_t total_acked = 0, total_present = 0;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + " seed " + std::to_string(seed));
    Machine m;
    const bool with_relay = round % 2 == 1;
    ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
    std::unique_ptr<Relay> relay;
    if (with_relay) {
      ASSERT_OK_AND_ASSIGN(relay, Relay::Make(*m.outbox, m.deliveries, {.interval = std::chrono::milliseconds(2)}));
      relay->Start();
    }
    std::mutex mu;
    std::vector<Ack> acked;
    std::vector<std::thread> writers;
    const int per_writer = std::uniform_int_distribution<int>(1, 300)(rng);
    for (int t = 0; t < 2; ++t) {
      writers.emplace_back([&, t, wseed = rng()] {
        std::mt19937_64 wrng(wseed);
        for (int i = 0; i < per_writer; ++i) {
          auto ack = CommitIdentified(*m.outbox, m.w, "u" + std::to_string(t) + "." + std::to_string(i), wrng,
                                      /*sync=*/false, /*first_stream=*/0);
          ASSERT_TRUE(ack.has_value()) << ack.error().ToString();
          std::lock_guard l(mu);
          acked.push_back(*ack);
        }
      });
    }
    for (auto& t : writers)
      t.join();
    if (relay) relay->Stop();
    relay.reset();
    m.PowerLoss(&rng);  // keeps a random part of the unsynced log: the cut lands anywhere in it

    Logs logs = m.deliveries->logs();  // acks stay empty: nothing is required
    ASSERT_OK_AND_ASSIGN(DbContents db, ReadDatabase(m.path()));
    ASSERT_TRUE(db.exists);
    CheckReport report = Check(logs, db, PowerLossCheck(false));
    ASSERT_TRUE(report.ok()) << Describe(report);
    // A prefix of the commit order (by seq in ko.a).
    std::sort(acked.begin(), acked.end(),
              [](const Ack& a, const Ack& b) { return a.events.at(0).seq < b.events.at(0).seq; });
    size_t present = 0;
    while (present < acked.size() && db.business.contains(acked[present].commit))
      ++present;
    for (size_t i = present; i < acked.size(); ++i) {
      ASSERT_FALSE(db.business.contains(acked[i].commit))
          << "commit " << acked[i].commit << " (order " << i << ") survived but commit " << acked[present].commit
          << " (order " << present << ") was lost: not a prefix";
    }
    EXPECT_EQ(report.commits_present, present) << "a present commit that was never acknowledged";

    // And it carries on: new commits continue after every seq issued before.
    ASSERT_NO_FATAL_FAILURE(m.Open(m.Options()));
    std::map<std::string, uint64_t> highest;
    for (const Ack& a : acked) {
      for (const auto& e : a.events)
        highest[e.stream] = std::max(highest[e.stream], e.seq);
    }
    for (int i = 0; i < 10; ++i) {
      ASSERT_OK_AND_ASSIGN(Ack ack, CommitIdentified(*m.outbox, m.w, "after." + std::to_string(i), rng, true));
      for (const auto& e : ack.events)
        EXPECT_GT(e.seq, highest[e.stream]) << "seq " << e.seq << " of " << e.stream << " reused after the cut";
    }
    total_acked += acked.size();
    total_present += present;
  }
  std::cout << "power loss (sync=false): " << rounds << " cuts, " << total_acked << " commits acknowledged, "
            << total_present << " survived as a prefix\n";
  RecordProperty("rounds", rounds);
  RecordProperty("acknowledged", static_cast<int>(total_acked));
  RecordProperty("survived", static_cast<int>(total_present));
}

// Durability::kInterval and kNone: Commit returns before the commit is
// durable. Writers commit (sync unset: the profile) until the power goes,
// after a random number of syncs or appends; now and then one waits for its
// commit (Outbox::WaitDurable). After the cut:
//   - nothing published is lost: every delivered event's commit is present
//     (Check), with a relay and an inline publisher running in some rounds;
//   - every commit whose WaitDurable returned before the cut is present;
//   - what is lost is a suffix of the commit order, of whole commits (every
//     commit's first event goes to "ko.a": its seq there is the commit order);
//   - a reopened outbox never reuses a seq, and a relay delivers everything.
void ProfileSurvivesPowerLoss(Durability durability, const std::string& label) {
  const uint64_t seed = SeedFromEnv("JAIMINHO_POWER_SEED");
  std::mt19937_64 rng(seed);
  const int rounds = Rounds();
  size_t total_acked = 0, total_waited = 0, total_present = 0, total_deliveries = 0;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(label + " round " + std::to_string(round) + " seed " + std::to_string(seed));
    Machine m;
    const bool inline_publisher = round % 2 == 1;
    const bool with_relay = round % 4 != 0;
    OutboxOptions o = m.Options({.inline_publisher = inline_publisher, .delete_after_send = round % 3 == 2});
    o.durability = durability;
    o.sync_interval = std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 5)(rng));
    ASSERT_NO_FATAL_FAILURE(m.Open(o));
    std::unique_ptr<Relay> relay;
    if (with_relay) {
      ASSERT_OK_AND_ASSIGN(
          relay, Relay::Make(*m.outbox, m.deliveries, {.interval = std::chrono::milliseconds(2), .batch_size = 8}));
      relay->Start();
    }
    if (round % 3 == 0) {
      m.fs->DeactivateAfterSyncs(std::uniform_int_distribution<uint64_t>(3, 60)(rng));
    } else {
      m.fs->DeactivateAfterAppends(std::uniform_int_distribution<uint64_t>(20, 400)(rng));
    }
    std::mutex mu;
    std::vector<Ack> acked, waited;
    std::vector<std::thread> writers;
    writers.reserve(2);
    for (int t = 0; t < 2; ++t) {
      writers.emplace_back([&, t, wseed = rng()] {
        std::mt19937_64 wrng(wseed);
        for (int i = 0; m.fs->active() && i < 100000; ++i) {
          Receipt receipt;
          auto ack = CommitIdentified(*m.outbox, m.w, "p" + std::to_string(t) + "." + std::to_string(i), wrng,
                                      std::nullopt, /*first_stream=*/0, &receipt);
          if (!ack) {
            ASSERT_FALSE(m.fs->active()) << ack.error().ToString();
            break;
          }
          {
            std::lock_guard l(mu);
            acked.push_back(*ack);
          }
          if (wrng() % 4 != 0) continue;
          auto durable = m.outbox->WaitDurable(receipt);
          if (!durable) {
            ASSERT_FALSE(m.fs->active()) << durable.error().ToString();
            break;
          }
          // Still powered after it returned: its sync ran before the cut.
          if (m.fs->active()) {
            std::lock_guard l(mu);
            waited.push_back(*ack);
          }
        }
      });
    }
    for (auto& t : writers)
      t.join();
    if (relay) relay->Stop();
    relay.reset();
    m.PowerLoss(round % 2 == 0 ? &rng : nullptr);

    Logs logs = m.deliveries->logs();
    logs.acks = waited;  // required: WaitDurable returned before the cut
    ASSERT_OK_AND_ASSIGN(DbContents db, ReadDatabase(m.path()));
    ASSERT_TRUE(db.exists);
    CheckReport after_cut = Check(logs, db, PowerLossCheck(false));
    ASSERT_TRUE(after_cut.ok()) << Describe(after_cut);
    std::sort(acked.begin(), acked.end(),
              [](const Ack& a, const Ack& b) { return a.events.at(0).seq < b.events.at(0).seq; });
    size_t present = 0;
    while (present < acked.size() && db.business.contains(acked[present].commit))
      ++present;
    for (size_t i = present; i < acked.size(); ++i) {
      ASSERT_FALSE(db.business.contains(acked[i].commit))
          << "commit " << acked[i].commit << " (order " << i << ") survived but commit " << acked[present].commit
          << " (order " << present << ") was lost: not a suffix";
    }
    EXPECT_EQ(after_cut.commits_present, present) << "a present commit that was never acknowledged";

    // Reopened, it carries on with fresh seqs, and every event is delivered.
    std::map<std::string, uint64_t> highest;
    for (const Ack& a : acked) {
      for (const auto& e : a.events)
        highest[e.stream] = std::max(highest[e.stream], e.seq);
    }
    m.deliveries->set_generation(1);
    ASSERT_NO_FATAL_FAILURE(m.Open(o));
    Receipt last;
    for (int i = 0; i < 20; ++i) {
      ASSERT_OK_AND_ASSIGN(
          Ack ack, CommitIdentified(*m.outbox, m.w, "after." + std::to_string(i), rng, std::nullopt, -1, &last));
      for (const auto& e : ack.events)
        EXPECT_GT(e.seq, highest[e.stream]) << "seq " << e.seq << " of " << e.stream << " reused after the cut";
      logs.acks.push_back(ack);
    }
    ASSERT_OK(m.outbox->WaitDurable(last));
    ASSERT_NO_FATAL_FAILURE(m.Drain());
    ASSERT_OK(m.outbox->Close());
    m.outbox.reset();
    Logs final_logs = m.deliveries->logs();
    final_logs.acks = logs.acks;
    ASSERT_OK_AND_ASSIGN(DbContents final_db, ReadDatabase(m.path()));
    CheckReport final_report = Check(final_logs, final_db, PowerLossCheck(true));
    ASSERT_TRUE(final_report.ok()) << Describe(final_report);
    total_acked += acked.size();
    total_waited += waited.size();
    total_present += present;
    total_deliveries += final_report.deliveries;
  }
  std::cout << "power loss (" << label << "): " << rounds << " cuts, " << total_acked << " commits acknowledged, "
            << total_waited << " waited durable (required), " << total_present << " present after the cut (a prefix), "
            << total_deliveries << " deliveries checked\n";
  ::testing::Test::RecordProperty("rounds", rounds);
  ::testing::Test::RecordProperty("acknowledged", static_cast<int>(total_acked));
  ::testing::Test::RecordProperty("waited", static_cast<int>(total_waited));
  ::testing::Test::RecordProperty("survived", static_cast<int>(total_present));
}

TEST(PowerLoss, IntervalProfileLosesOnlyAnUnpublishedSuffix) {
  ProfileSurvivesPowerLoss(Durability::kInterval, "interval");
}

TEST(PowerLoss, NoneProfileLosesOnlyAnUnpublishedSuffix) {
  ProfileSurvivesPowerLoss(Durability::kNone, "none");
}

// Regression: a publish-on-commit event claimed by an
// inline publish that has not finished must stay at or above the relay's
// persisted cursor. The relay once compared claims only with its in-memory cursor,
// which an earlier pass already moved past the claim, so a later pass
// persisted a cursor beyond it; a crash before the inline outcome is written
// then leaves the event pending below the cursor, where no relay looks again.
TEST(PowerLoss, ClaimedEventBelowThePersistedCursorIsDeliveredAfterACrash) {
  // Blocks the inline publish of seq 1 until released.
  struct BlockingPublisher : Publisher {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, released = false;
    Status Publish(const Event& e) override {
      if (e.id.seq != 1) return {};
      std::unique_lock l(mu);
      entered = true;
      cv.notify_all();
      cv.wait(l, [&] { return released; });
      return {};
    }
  };
  Machine m;
  auto blocking = std::make_shared<BlockingPublisher>();
  OutboxOptions o = m.Options();
  o.publisher = blocking;
  o.inline_dispatch = InlineDispatch::kDispatcherThread;
  m.outbox = MustOpen(m.path(), o);
  ASSERT_NE(m.outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(Stream * s, m.outbox->OpenStream("s"));
  auto commit = [&](std::optional<Strategy> strategy, bool sync) {
    auto txn = m.outbox->Begin();
    EXPECT_OK(txn.Enqueue(*s, {.type = "t", .strategy = strategy}));
    EXPECT_OK(txn.Commit({.sync = sync}));
  };
  commit(std::nullopt, true);  // seq 1: claimed, its inline publish blocks
  {
    std::unique_lock l(blocking->mu);
    blocking->cv.wait(l, [&] { return blocking->entered; });
  }
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*m.outbox, m.deliveries));
  ASSERT_OK(relay->RunOnce());          // skips the claimed seq 1; its memory cursor moves to 2
  commit(Strategy::kKeepOrder, false);  // seq 2: the relay's to publish
  ASSERT_OK(relay->RunOnce());          // publishes seq 2 and persists its cursor
  commit(Strategy::kKeepOrder, true);   // seq 3: syncs the log, cursor write included
  m.fs->Deactivate();                   // the power goes before seq 1's outcome is written
  {
    std::lock_guard l(blocking->mu);
    blocking->released = true;
  }
  blocking->cv.notify_all();
  relay.reset();
  m.outbox.reset();
  m.fs->DropUnsyncedData();

  m.deliveries->set_generation(1);
  m.outbox = MustOpen(m.path(), m.Options());
  ASSERT_NE(m.outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(s, m.outbox->FindStream("s"));
  ASSERT_OK_AND_ASSIGN(auto after, Relay::Make(*m.outbox, m.deliveries));
  ASSERT_OK(after->RunOnce());
  std::set<uint64_t> delivered;
  for (const auto& d : m.deliveries->logs().deliveries)
    delivered.insert(d.id.seq);
  EXPECT_TRUE(delivered.contains(1)) << "seq 1 was committed (synced) but is never delivered";
  ASSERT_OK_AND_ASSIGN(auto pending, m.outbox->ListEvents(*s, EventState::kPending));
  EXPECT_TRUE(pending.empty()) << pending.size() << " event(s) left pending below the relay cursor";
}

}  // namespace
}  // namespace jaiminho::testing::crash
