// Sequence numbers are never reused: not across close/reopen, not after every
// event was deleted, not after a crash.
#include "support/child.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::TempDir;

uint64_t CommitOne(Outbox& outbox, Stream& s, bool sync = true) {
  auto txn = outbox.Begin();
  EXPECT_OK(txn.Enqueue(s, {.type = "t", .payload = "p"}));
  auto r = txn.Commit({.sync = sync});
  EXPECT_TRUE(r.has_value());
  return r ? r->events.at(0).seq : 0;
}

TEST(Seq, StartsAtOneAndContinuesAfterCleanReopenWithoutGap) {
  TempDir dir;
  {
    auto outbox = MustOpen(dir.Sub("db"));
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
    for (uint64_t i = 1; i <= 5; ++i)
      EXPECT_EQ(CommitOne(*outbox, *s), i);
    ASSERT_OK(outbox->Close());
  }
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream("s"));
  EXPECT_EQ(CommitOne(*outbox, *s), 6u);
}

TEST(Seq, NotReusedAfterEveryEventWasDeleted) {
  TempDir dir;
  auto publisher = std::make_shared<testing::RecordingPublisher>();
  {
    auto outbox = MustOpen(dir.Sub("db"), {.delete_after_send = true});
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
    for (int i = 0; i < 3; ++i)
      CommitOne(*outbox, *s);
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK(relay->RunOnce());
    // Delivered events are dropped by the cleaner's compaction (format 2).
    ASSERT_OK(outbox->Clean());
    EXPECT_TRUE(testing::RawKeys(*outbox, *s).empty()) << "everything delivered and deleted";
  }
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream("s"));
  EXPECT_EQ(CommitOne(*outbox, *s), 4u);
  EXPECT_EQ(publisher->count(), 3u);
}

TEST(Seq, NotReusedAfterACrash) {
  TempDir dir;
  std::string path = dir.Sub("db");
  {
    testing::Child writer({JM_HOLD_DB, path, "s", "10"});
    ASSERT_EQ(writer.ReadLine().rfind("ready", 0), 0u);
    writer.WriteLine("crash");  // exits without a clean close
    EXPECT_EQ(writer.Wait(), 0);
  }
  auto outbox = MustOpen(path);
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream("s"));
  auto keys = testing::RawKeys(*outbox, *s);
  ASSERT_EQ(keys.size(), 10u) << "synced commits survive";
  uint64_t next = CommitOne(*outbox, *s);
  EXPECT_GT(next, 10u);
  // And again after a clean close: continues from there, never below.
  ASSERT_OK(outbox->Close());
  outbox = MustOpen(path);
  ASSERT_OK_AND_ASSIGN(s, outbox->FindStream("s"));
  EXPECT_EQ(CommitOne(*outbox, *s), next + 1);
}

TEST(Seq, NoSyncCommitsCrossingTheReservationStayUnique) {
  TempDir dir;
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
  // More than one reservation block in a few large transactions.
  uint64_t last = 0;
  for (int t = 0; t < 3; ++t) {
    auto txn = outbox->Begin();
    for (int i = 0; i < 30000; ++i)
      ASSERT_OK(txn.Enqueue(*s, {.type = "t"}));
    ASSERT_OK_AND_ASSIGN(Receipt r, txn.Commit({.sync = false}));
    for (const auto& id : r.events) {
      ASSERT_EQ(id.seq, last + 1);
      last = id.seq;
    }
  }
  EXPECT_EQ(last, 90000u);
}

}  // namespace
}  // namespace jaiminho
