// A database written by the on-disk format 1 code (tests/fixtures/format-v1,
// made by make_fixture.cc there) must stay readable: the tool shows the same
// records, verify finds nothing bad, and the library opens it and delivers what
// was waiting, in order, keeping what was sent with its sent_at.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "storage/meta.h"
#include "support/fault_fs.h"
#include "support/test_util.h"
#include "tool/commands.h"
#include "tool/run_tool.h"

namespace jaiminho {
namespace {

namespace fs = std::filesystem;

// A copy of the fixture (opening a database may write to it).
std::string CopyFixture(const testing::TempDir& dir) {
  std::string db = dir.Sub("db");
  fs::copy(fs::path(JM_FIXTURES) / "format-v1" / "db", db, fs::copy_options::recursive);
  return db;
}

std::vector<std::string> SortedLines(const std::string& text) {
  std::vector<std::string> lines = testing::SplitLines(text);
  std::sort(lines.begin(), lines.end());
  return lines;
}

std::string Golden() {
  std::ifstream golden(fs::path(JM_FIXTURES) / "format-v1" / "dump.jsonl");
  EXPECT_TRUE(golden.good());
  std::stringstream expected;
  expected << golden.rdbuf();
  return expected.str();
}

// `jaiminho-tool dump --json` of `db`: one line per record, sorted (the order
// of the lines is not part of the format).
std::vector<std::string> DumpLines(const std::string& db) {
  std::ostringstream out, err;
  tool::Io io{out, err};
  EXPECT_EQ(tool::Dump({.path = db, .json = true}, io), tool::kExitOk) << err.str();
  return SortedLines(out.str());
}

// The fixture's time: a day after its relay pass (2023-11-14T23:13:20Z), so
// every retry is due and its sent events are inside time_to_delete (7 days).
// With the real clock they are years past it, and the cleaner drops them at its
// first compaction, which RocksDB's periodic compaction starts on its own once
// the fixture's table files are older than 7 days (FormatV1.YearsLater...).
std::shared_ptr<ManualClock> FixtureClock() {
  return std::make_shared<ManualClock>(FromMicros(1'700'003'600'000'000) + std::chrono::hours(24));
}

std::optional<uint32_t> StoredFormat(const std::string& db) {
  auto v = testing::RawDb(db, /*read_only=*/true).Get(internal::kMetaFamily, internal::kFormatKey);
  if (!v) return std::nullopt;
  auto f = internal::DecodeU32(*v, "format");
  return f ? std::optional<uint32_t>(*f) : std::nullopt;
}

TEST(FormatV1, ToolShowsEveryRecordAsFormat1WroteIt) {
  testing::TempDir dir;
  const std::string db = CopyFixture(dir);
  // The same records with the same fields (sent events with their sent_at).
  EXPECT_EQ(DumpLines(db), SortedLines(Golden()));
  EXPECT_EQ(DumpLines(db).size(), 12u);
  EXPECT_EQ(StoredFormat(db), 1u);  // the tool reads without upgrading

  std::ostringstream vout, verr;
  tool::Io vio{vout, verr};
  EXPECT_EQ(tool::Verify({.path = db}, vio), tool::kExitOk) << vout.str() << verr.str();
}

TEST(FormatV1, OpenUpgradesToFormat2InPlaceAndTheRecordsReadTheSame) {
  testing::TempDir dir;
  const std::string db = CopyFixture(dir);
  {
    ASSERT_OK_AND_ASSIGN(auto ob, Outbox::Open({.path = db, .clock = FixtureClock()}));
    ASSERT_OK(ob->Close());
  }
  EXPECT_EQ(StoredFormat(db), 2u);
  EXPECT_EQ(DumpLines(db), SortedLines(Golden()));
}

// Opened with the real clock, years after its events were sent: the cleaner
// drops the sent ones (past the streams' time_to_delete of 7 days) and nothing
// else. RocksDB's periodic compaction does the same on its own once the
// table files are 7 days old; Clean() makes it happen now.
TEST(FormatV1, YearsLaterTheCleanerDropsTheSentEventsAndNothingElse) {
  testing::TempDir dir;
  const std::string db = CopyFixture(dir);
  std::vector<std::string> kept;
  for (const std::string& line : SortedLines(Golden())) {
    if (line.find("\"state\":\"sent\"") == std::string::npos) kept.push_back(line);
  }
  ASSERT_EQ(kept.size(), 8u);  // orders 1-2 and alerts 1-2 were sent
  {
    ASSERT_OK_AND_ASSIGN(auto ob, Outbox::Open({.path = db}));
    ASSERT_OK(ob->Clean());
    ASSERT_OK(ob->Close());
  }
  EXPECT_EQ(DumpLines(db), kept);
}

// A power cut at every sync point of the upgrading Open: the database is
// opened afterwards (at format 1 or 2), with every record as it was.
TEST(FormatV1, PowerCutDuringTheUpgradeLosesNothing) {
  const std::vector<std::string> golden = SortedLines(Golden());
  bool finished = false;
  for (uint64_t cut = 1; !finished && cut < 64; ++cut) {
    SCOPED_TRACE("power cut after sync " + std::to_string(cut));
    testing::TempDir dir;
    const std::string db = CopyFixture(dir);
    auto fs = std::make_shared<testing::FaultFileSystem>();
    auto env = fs->NewEnv();
    fs->DeactivateAfterSyncs(cut);
    {
      auto ob = Outbox::Open(
          {.path = db, .clean_interval = std::chrono::seconds(0), .clock = FixtureClock(), .env = env.get()});
      if (ob) (void)(*ob)->Close();
    }
    finished = fs->active();  // the whole Open and Close ran before the cut
    fs->DropUnsyncedData();
    {
      ASSERT_OK_AND_ASSIGN(auto ob, Outbox::Open({.path = db, .clock = FixtureClock()}));
      ASSERT_OK(ob->Close());
    }
    EXPECT_EQ(StoredFormat(db), 2u);
    EXPECT_EQ(DumpLines(db), golden);
  }
  EXPECT_TRUE(finished) << "the upgrade took more syncs than the test tries";
}

// Records written before histories (issue 20) read with an empty history and
// their note as it was; the first action keeps that note in its entry.
TEST(FormatV1, OldNotesStayAndTheFirstActionKeepsThemInTheHistory) {
  testing::TempDir dir;
  const std::string db = CopyFixture(dir);
  ASSERT_OK_AND_ASSIGN(auto ob, Outbox::Open({.path = db, .clock = FixtureClock()}));
  ASSERT_OK_AND_ASSIGN(Stream * alerts, ob->FindStream("alerts"));
  ASSERT_OK_AND_ASSIGN(Stream * orders, ob->FindStream("orders"));
  {
    ASSERT_OK_AND_ASSIGN(StoredEvent parked, ob->FindEvent(*alerts, 4));
    EXPECT_EQ(parked->note, "permanent failure: rejected: rejected by broker");
    EXPECT_TRUE(parked->history.empty());
    EXPECT_EQ(parked->history_dropped, 0u);
  }
  ASSERT_OK(ob->Requeue(*alerts, 4, "broker schema fixed", "tester"));
  ASSERT_OK_AND_ASSIGN(StoredEvent requeued, ob->FindEvent(*alerts, 4));
  EXPECT_EQ(requeued->note, "requeued by operator tester: broker schema fixed");
  ASSERT_EQ(requeued->history.size(), 1u);
  EXPECT_EQ(requeued->history[0].previous_note, "permanent failure: rejected: rejected by broker");
  EXPECT_EQ(requeued->history[0].action, "requeue");
  // The fixture's blocked keep-order head (one failed attempt) can be requeued;
  // the events waiting behind it cannot.
  ASSERT_ERROR(ob->Requeue(*orders, 4), ErrorCode::kInvalidArgument);
  ASSERT_OK(ob->Requeue(*orders, 3, "", "tester"));
  ASSERT_OK(ob->Close());
}

TEST(FormatV1, OpensAndDeliversWhatWasWaitingInOrder) {
  testing::TempDir dir;
  const std::string db = CopyFixture(dir);
  ASSERT_OK_AND_ASSIGN(auto ob,
                       Outbox::Open({.path = db, .business_families = {{.name = "devices"}}, .clock = FixtureClock()}));
  ASSERT_OK_AND_ASSIGN(BusinessFamily devices, ob->FindBusinessFamily("devices"));
  for (auto [key, value] : {std::pair{"dev/1", "on"}, {"dev/2", "off"}, {"dev/3", "on"}}) {
    ASSERT_OK_AND_ASSIGN(auto v, ob->Get(devices, key));
    EXPECT_EQ(v, std::optional<std::string>(value)) << key;
  }
  ASSERT_OK_AND_ASSIGN(Stream * orders, ob->FindStream("orders"));
  ASSERT_OK_AND_ASSIGN(Stream * alerts, ob->FindStream("alerts"));
  ASSERT_OK_AND_ASSIGN(Stream * late, ob->FindStream("late"));
  EXPECT_EQ(orders->strategy(), Strategy::kKeepOrder);

  auto pub = std::make_shared<testing::RecordingPublisher>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*ob, pub));
  ASSERT_OK(relay->RunOnce());
  std::map<std::string, std::vector<uint64_t>> seqs;
  for (const auto& d : pub->deliveries())
    seqs[d.stream].push_back(d.seq);
  // The blocked head first, then what waited behind it; the due retries; no
  // sent or parked event again.
  EXPECT_EQ(seqs["orders"], (std::vector<uint64_t>{3, 4, 5}));
  std::sort(seqs["alerts"].begin(), seqs["alerts"].end());
  EXPECT_EQ(seqs["alerts"], (std::vector<uint64_t>{3, 5}));
  std::sort(seqs["late"].begin(), seqs["late"].end());
  EXPECT_EQ(seqs["late"], (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(seqs.size(), 3u);

  ASSERT_OK_AND_ASSIGN(auto sent, ob->ListEvents(*orders, EventState::kSent));
  ASSERT_EQ(sent.size(), 5u);
  EXPECT_EQ(ToMicros(sent[0]->sent_at), 1'700'003'600'050'000);  // kept from format 1
  ASSERT_OK_AND_ASSIGN(auto parked, ob->ListEvents(*alerts, EventState::kParked));
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0]->id.seq, 4u);
  EXPECT_EQ(parked[0]->attempts, 2u);

  // New commits continue the seqs.
  auto t = ob->Begin();
  ASSERT_OK(t.Enqueue(*late, {.type = "late.v1", .payload = "three"}));
  ASSERT_OK(t.Commit());
  ASSERT_OK_AND_ASSIGN(auto after, ob->ListEvents(*late, EventState::kSent));
  ASSERT_OK_AND_ASSIGN(auto pending, ob->ListEvents(*late, EventState::kPending));
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0]->id.seq, 3u);
  EXPECT_EQ(after.size(), 2u);
  relay.reset();
  ASSERT_OK(ob->Close());
}

}  // namespace
}  // namespace jaiminho
