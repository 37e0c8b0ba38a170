// Durability profiles (issue 18): OutboxOptions::durability and sync_interval,
// the receipts (durable, position), Outbox::WaitDurable, the interval syncer,
// what a relay publishes under each profile, and Close. Durability is proved
// on FaultFileSystem (support/fault_fs.h): the power is cut, everything not
// synced is dropped, and the database is reopened.
//
// No sleep stands in for synchronization: waits are bounded polls of a
// condition (a delivery, a cut, a sync count). Only IdleOutboxIsNeverSynced
// lets time pass on purpose, and asserts only on a count.
#include <filesystem>
#include <future>
#include <thread>

#include "support/fault_fs.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::FaultFileSystem;
using testing::MustMakeRelay;
using testing::RecordingPublisher;
using testing::TempDir;

constexpr auto kPatience = std::chrono::seconds(20);  // a bound for failures, never reached when passing

// Polls `done` until it holds or kPatience passed; returns whether it held.
template <typename F>
bool Eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::string Name(Durability d) {
  switch (d) {
    case Durability::kSyncEachCommit:
      return "SyncEachCommit";
    case Durability::kInterval:
      return "Interval";
    case Durability::kNone:
      return "None";
  }
  return "unknown";
}

// One database on a FaultFileSystem, reopened after each power cut.
struct Machine {
  TempDir dir;
  std::shared_ptr<FaultFileSystem> fs = std::make_shared<FaultFileSystem>();
  std::unique_ptr<rocksdb::Env> env = fs->NewEnv();
  std::unique_ptr<Outbox> outbox;
  Stream* stream = nullptr;
  BusinessFamily family;

  std::string path() const { return dir.Sub("db"); }
  OutboxOptions Options(Durability d, std::chrono::milliseconds interval = std::chrono::milliseconds(10)) const {
    OutboxOptions o;
    o.path = path();
    o.env = env.get();
    o.durability = d;
    o.sync_interval = interval;
    o.strategy = Strategy::kKeepOrder;  // the relay's: nothing is published inline unless asked
    return o;
  }
  void Open(OutboxOptions o) {
    outbox = testing::MustOpen(path(), std::move(o));
    ASSERT_NE(outbox, nullptr);
    ASSERT_OK_AND_ASSIGN(stream, outbox->OpenStream("s"));
    ASSERT_OK_AND_ASSIGN(family, outbox->FindBusinessFamily("default"));
  }
  // Business key `key` and one event in stream "s".
  Result<Receipt> Commit(const std::string& key, CommitOptions c = {}) {
    auto txn = outbox->Begin();
    if (auto s = txn.Put(family, key, "v." + key); !s) return tl::unexpected(s.error());
    if (auto s = txn.Enqueue(*stream, {.type = "t", .key = key, .payload = key}); !s) return tl::unexpected(s.error());
    return txn.Commit(c);
  }
  // The first commit to a fresh stream reserves seqs, which is always synced:
  // after this one, commits follow the profile.
  void WarmUp() {
    ASSERT_OK_AND_ASSIGN(Receipt r, Commit("warm-up"));
    ASSERT_OK(outbox->WaitDurable(r));
  }
  // Cuts the power now, destroys the outbox, drops what was not synced and
  // reopens with `o`. Returns the bytes dropped.
  uint64_t PowerCutAndReopen(OutboxOptions o) {
    fs->Deactivate();
    outbox.reset();
    const uint64_t dropped = fs->DropUnsyncedData();
    Open(std::move(o));
    return dropped;
  }
  bool Has(const std::string& key) {
    auto v = outbox->Get(family, key);
    EXPECT_TRUE(v.has_value()) << v.error().ToString();
    return v && v->has_value() && **v == "v." + key;
  }
};

// --- options -----------------------------------------------------------------

TEST(DurabilityOptions, SyncIntervalOutOfRangeIsRefusedNamingTheOption) {
  for (auto interval : {std::chrono::milliseconds(0), std::chrono::milliseconds(11000)}) {
    TempDir dir;
    OutboxOptions o{.path = dir.Sub("db")};
    o.durability = Durability::kInterval;
    o.sync_interval = interval;
    auto r = Outbox::Open(o);
    ASSERT_FALSE(r.has_value()) << interval.count() << " ms accepted";
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("sync_interval"), std::string::npos) << r.error().ToString();
    EXPECT_NE(r.error().message().find(std::to_string(interval.count())), std::string::npos) << r.error().ToString();
    EXPECT_FALSE(std::filesystem::exists(dir.Sub("db"))) << "a refused Open created the database";
  }
  // The bounds themselves are accepted.
  for (auto interval : {std::chrono::milliseconds(1), std::chrono::milliseconds(10000)}) {
    TempDir dir;
    OutboxOptions o{.path = dir.Sub("db")};
    o.durability = Durability::kInterval;
    o.sync_interval = interval;
    ASSERT_OK_AND_ASSIGN(auto outbox, Outbox::Open(o));
    ASSERT_OK(outbox->Close());
  }
}

TEST(DurabilityOptions, UnknownDurabilityIsRefused) {
  TempDir dir;
  OutboxOptions o{.path = dir.Sub("db")};
  o.durability = static_cast<Durability>(9);
  auto r = Outbox::Open(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("durability"), std::string::npos) << r.error().ToString();
  EXPECT_NE(r.error().message().find('9'), std::string::npos) << r.error().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("db")));
}

// --- receipts ------------------------------------------------------------------

class DurabilityProfiles : public ::testing::TestWithParam<Durability> {};

INSTANTIATE_TEST_SUITE_P(All, DurabilityProfiles,
                         ::testing::Values(Durability::kSyncEachCommit, Durability::kInterval, Durability::kNone),
                         [](const ::testing::TestParamInfo<Durability>& p) { return Name(p.param); });

TEST_P(DurabilityProfiles, ReceiptsSayWhetherTheCommitIsDurableAndWhereItIs) {
  Machine m;
  // A long interval: the syncer does not run during the test (it would not
  // change the receipts, only what is durable later).
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(GetParam(), std::chrono::seconds(10))));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(Receipt r, m.Commit("k" + std::to_string(i)));
    EXPECT_EQ(r.durable, GetParam() == Durability::kSyncEachCommit) << "commit " << i;
    EXPECT_GT(r.position, last) << "commit " << i << ": positions must strictly increase in commit order";
    last = r.position;
    ASSERT_EQ(r.events.size(), 1u);
  }
  // Per commit: sync=true is durable under every profile, sync=false under none.
  ASSERT_OK_AND_ASSIGN(Receipt forced, m.Commit("forced", {.sync = true}));
  EXPECT_TRUE(forced.durable);
  EXPECT_GT(forced.position, last);
  ASSERT_OK_AND_ASSIGN(Receipt relaxed, m.Commit("relaxed", {.sync = false}));
  EXPECT_FALSE(relaxed.durable);
  EXPECT_GT(relaxed.position, forced.position);
  // An empty transaction wrote nothing: position 0, and nothing to wait for.
  auto empty = m.outbox->Begin();
  ASSERT_OK_AND_ASSIGN(Receipt e, empty.Commit());
  EXPECT_EQ(e.position, 0u);
  EXPECT_TRUE(e.events.empty());
  ASSERT_OK(m.outbox->WaitDurable(e));
  ASSERT_OK(m.outbox->Close());
}

// After WaitDurable returns, a power cut keeps the commit (and every commit
// before it).
TEST_P(DurabilityProfiles, WaitDurableThenPowerCutKeepsTheCommit) {
  Machine m;
  // Interval: long enough that WaitDurable's commit is not synced by chance
  // before it waits, short enough for a quick test.
  const auto interval = std::chrono::milliseconds(200);
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(GetParam(), interval)));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  for (int i = 0; i < 5; ++i)
    ASSERT_OK(m.Commit("k" + std::to_string(i)));
  ASSERT_OK_AND_ASSIGN(Receipt r, m.Commit("waited"));
  ASSERT_OK(m.outbox->WaitDurable(r));
  ASSERT_OK(m.outbox->WaitDurable(r));  // again: at once
  m.PowerCutAndReopen(m.Options(GetParam(), interval));
  EXPECT_TRUE(m.Has("waited")) << "WaitDurable returned but a power cut lost the commit";
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(m.Has("k" + std::to_string(i))) << "an earlier commit was lost while a later one survived";
  ASSERT_OK(m.outbox->Close());
}

// The control of the test above: without WaitDurable (or a timer) the cut
// does lose an unsynced commit, so the power cut is real.
TEST(Durability, NoneWithoutWaitDurableLosesTheCommitOnAPowerCut) {
  Machine m;
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(Durability::kNone)));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  ASSERT_OK_AND_ASSIGN(Receipt r, m.Commit("unsynced"));
  EXPECT_FALSE(r.durable);
  EXPECT_GT(m.PowerCutAndReopen(m.Options(Durability::kNone)), 0u);
  EXPECT_FALSE(m.Has("unsynced"));
  EXPECT_TRUE(m.Has("warm-up"));
  ASSERT_OK(m.outbox->Close());
}

// --- the interval syncer ---------------------------------------------------------

// Nobody calls anything after the commit: the syncer makes it durable. The
// power goes right after the next WAL sync (which only the syncer can do).
TEST(DurabilityInterval, SyncerMakesCommitsDurableWithoutAnyCall) {
  Machine m;
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(Durability::kInterval, std::chrono::milliseconds(5))));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  m.fs->SetFaultFilter(".log");
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(Receipt r, m.Commit("k" + std::to_string(i)));
    EXPECT_FALSE(r.durable);
  }
  m.fs->DeactivateAfterSyncs(1);
  ASSERT_TRUE(Eventually([&] { return !m.fs->active(); })) << "the syncer never synced the WAL";
  m.fs->SetFaultFilter("");
  m.PowerCutAndReopen(m.Options(Durability::kInterval));
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(m.Has("k" + std::to_string(i))) << "k" << i << " was not made durable by the syncer";
  ASSERT_OK(m.outbox->Close());
}

// An idle outbox (a relay running, nothing written) is never synced: over
// hundreds of intervals the file system sees no sync. The time passed is
// measured, not waited on; only the count is asserted. Then one commit: the
// syncer syncs it (the counter would have seen syncs).
TEST(DurabilityInterval, IdleOutboxIsNeverSynced) {
  Machine m;
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(Durability::kInterval, std::chrono::milliseconds(1))));
  auto publisher = std::make_shared<RecordingPublisher>();
  auto relay = MustMakeRelay(*m.outbox, publisher, {.interval = std::chrono::milliseconds(1)});
  ASSERT_NE(relay, nullptr);
  relay->Start();
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  ASSERT_TRUE(publisher->WaitFor(1));
  const uint64_t before = m.fs->syncs();
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(300))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(m.fs->syncs(), before) << "an idle outbox was synced";
  ASSERT_OK_AND_ASSIGN(Receipt r, m.Commit("k"));
  EXPECT_FALSE(r.durable);
  EXPECT_TRUE(Eventually([&] { return m.fs->syncs() > before; })) << "the syncer did not sync a commit";
  EXPECT_TRUE(publisher->WaitFor(2));
  relay->Stop();
  ASSERT_OK(m.outbox->Close());
}

// A relay under kInterval publishes an event only once it is durable: the
// power goes at its first publish, and the published events survive.
TEST(DurabilityInterval, RelayPublishesOnlyDurableEvents) {
  Machine m;
  // The relay wakes at each commit, long before the syncer's next run.
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(Durability::kInterval, std::chrono::milliseconds(300))));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  auto publisher = std::make_shared<RecordingPublisher>();
  auto relay = MustMakeRelay(*m.outbox, publisher, {.interval = std::chrono::milliseconds(1)});
  ASSERT_NE(relay, nullptr);
  relay->Start();
  ASSERT_TRUE(publisher->WaitFor(1));  // the warm-up (synced)
  publisher->fail = [fs = m.fs](const Event&) -> std::optional<Error> {
    fs->Deactivate();  // the broker has it: the power goes now
    return std::nullopt;
  };
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(Receipt r, m.Commit("k" + std::to_string(i)));
    EXPECT_FALSE(r.durable);
  }
  ASSERT_TRUE(publisher->WaitFor(2));
  relay->Stop();
  relay.reset();
  const auto published = publisher->deliveries();
  m.PowerCutAndReopen(m.Options(Durability::kInterval));
  for (const auto& d : published) {
    EXPECT_TRUE(m.Has(d.key)) << "event " << d.seq << " (" << d.key << ") was published but lost in a power cut";
    auto stored = m.outbox->FindEvent(*m.stream, d.seq);
    EXPECT_TRUE(stored.has_value()) << "event " << d.seq << " published, then lost";
  }
  ASSERT_OK(m.outbox->Close());
}

// sync=true under kInterval: durable when Commit returns, and its
// publish-on-commit event published inline by the committing thread; an
// interval commit is not (it goes to the relay once durable).
TEST(DurabilityInterval, PerCommitSyncIsDurableAndPublishedInline) {
  Machine m;
  auto publisher = std::make_shared<RecordingPublisher>();
  OutboxOptions o = m.Options(Durability::kInterval, std::chrono::seconds(10));  // the syncer stays out
  o.strategy = Strategy::kPublishOnCommit;
  o.publisher = publisher;
  ASSERT_NO_FATAL_FAILURE(m.Open(o));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  const size_t warm = publisher->count();
  ASSERT_OK_AND_ASSIGN(Receipt lazy, m.Commit("lazy"));
  EXPECT_FALSE(lazy.durable);
  EXPECT_EQ(publisher->count(), warm) << "an event published inline before its commit was durable";
  ASSERT_OK_AND_ASSIGN(Receipt forced, m.Commit("forced", {.sync = true}));
  EXPECT_TRUE(forced.durable);
  EXPECT_GT(forced.position, lazy.position);
  ASSERT_EQ(publisher->count(), warm + 1) << "the synced commit's event was not published inline";
  EXPECT_EQ(publisher->deliveries().back().key, "forced");
  // The synced commit's sync covered the one before it.
  ASSERT_OK(m.outbox->WaitDurable(lazy));
  m.PowerCutAndReopen(m.Options(Durability::kInterval, std::chrono::seconds(10)));
  EXPECT_TRUE(m.Has("forced"));
  EXPECT_TRUE(m.Has("lazy"));
  ASSERT_OK(m.outbox->Close());
}

// Regression: an interval commit followed by a synced one (whose sync covers
// it) before the syncer runs. The syncer then found nothing unsynced and
// never moved the first commit's stream to durable, so a relay (which does not
// sync under kInterval) never published it.
TEST(DurabilityInterval, RelayPublishesACommitCoveredByALaterSyncedOne) {
  Machine m;
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(Durability::kInterval, std::chrono::milliseconds(50))));
  ASSERT_OK_AND_ASSIGN(Stream * other, m.outbox->OpenStream("other"));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  {
    auto txn = m.outbox->Begin();
    ASSERT_OK(txn.Enqueue(*other, {.type = "t", .payload = "warm-up"}));
    ASSERT_OK(txn.Commit({.sync = true}));
  }
  auto publisher = std::make_shared<RecordingPublisher>();
  auto relay = MustMakeRelay(*m.outbox, publisher, {.interval = std::chrono::milliseconds(1)});
  ASSERT_NE(relay, nullptr);
  relay->Start();
  ASSERT_TRUE(publisher->WaitFor(2));
  ASSERT_OK_AND_ASSIGN(Receipt lazy, m.Commit("lazy"));  // stream "s", not synced
  EXPECT_FALSE(lazy.durable);
  auto txn = m.outbox->Begin();
  ASSERT_OK(txn.Enqueue(*other, {.type = "t", .payload = "forced"}));
  ASSERT_OK_AND_ASSIGN(Receipt forced, txn.Commit({.sync = true}));  // stream "other": its sync covers "lazy"
  EXPECT_TRUE(forced.durable);
  EXPECT_TRUE(publisher->WaitFor(4)) << "published: " << publisher->count() << " of 4";
  relay->Stop();
  ASSERT_OK(m.outbox->Close());
}

// Regression: after a reopen under kInterval the streams' durable seq is
// unknown (0) and nothing new is written, so the syncer never ran and a relay
// (which does not sync under kInterval) never published the backlog.
TEST(DurabilityInterval, RelayPublishesTheBacklogAfterAReopen) {
  Machine m;
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(Durability::kInterval, std::chrono::milliseconds(5))));
  for (int i = 0; i < 3; ++i)
    ASSERT_OK(m.Commit("k" + std::to_string(i)));
  ASSERT_OK(m.outbox->Close());
  m.outbox.reset();
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(Durability::kInterval, std::chrono::milliseconds(5))));
  auto publisher = std::make_shared<RecordingPublisher>();
  auto relay = MustMakeRelay(*m.outbox, publisher, {.interval = std::chrono::milliseconds(1)});
  ASSERT_NE(relay, nullptr);
  relay->Start();
  EXPECT_TRUE(publisher->WaitFor(3)) << "published: " << publisher->count() << " of 3";
  relay->Stop();
  ASSERT_OK(m.outbox->Close());
}

// Close makes every commit durable: a power cut right after it loses nothing.
TEST_P(DurabilityProfiles, CloseMakesEverythingDurable) {
  Machine m;
  const auto interval = std::chrono::seconds(10);  // the syncer stays out
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(GetParam(), interval)));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  for (int i = 0; i < 50; ++i)
    ASSERT_OK(m.Commit("k" + std::to_string(i)));
  ASSERT_OK(m.outbox->Close());
  m.PowerCutAndReopen(m.Options(GetParam(), interval));
  for (int i = 0; i < 50; ++i)
    EXPECT_TRUE(m.Has("k" + std::to_string(i))) << "k" << i << " lost after Close and a power cut";
  ASSERT_OK(m.outbox->Close());
}

// The interval syncer's sync fails (the disk fails fsync): WaitDurable returns
// that error instead of waiting for a sync that does not come; once the disk
// is back, the next sync makes the commit durable and WaitDurable says so.
TEST(DurabilityInterval, WaitDurableReturnsTheSyncersFailure) {
  Machine m;
  ASSERT_NO_FATAL_FAILURE(m.Open(m.Options(Durability::kInterval, std::chrono::milliseconds(5))));
  ASSERT_NO_FATAL_FAILURE(m.WarmUp());
  ASSERT_OK_AND_ASSIGN(Receipt r, m.Commit("k"));
  ASSERT_FALSE(r.durable);
  m.fs->SetFaultFilter(".log");
  m.fs->FailSyncs(testing::FaultKind::kIOError);
  auto waited = std::async(std::launch::async, [&] { return m.outbox->WaitDurable(r); });
  ASSERT_EQ(waited.wait_for(kPatience), std::future_status::ready) << "WaitDurable still waits for a failing syncer";
  Status s = waited.get();
  ASSERT_FALSE(s.has_value()) << "WaitDurable succeeded while every sync failed";
  EXPECT_NE(s.error().message().find(m.path()), std::string::npos) << s.error().ToString();
  m.fs->ClearFaults();
  m.fs->SetFaultFilter("");
  Status again = m.outbox->WaitDurable(r);
  if (!again) {
    // The failed sync stopped RocksDB's writes for good in this instance
    // (kFatal): then reopening is the way on, and the commit is whole or absent.
    EXPECT_EQ(again.error().code(), ErrorCode::kFatal) << again.error().ToString();
  }
  (void)m.outbox->Close();
}

}  // namespace
}  // namespace jaiminho
