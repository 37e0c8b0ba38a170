// The checks Outbox::Open and `jaiminho-tool verify` make of what is on disk
// (issue 13, items 5 and 10): meta records that disagree with the stream's keys
// (a seq reservation below the highest seq, a cursor past pending events), and
// a write-ahead log that lost acknowledged commits.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>

#include "clean/cleaner.h"
#include "core/outbox_impl.h"
#include "storage/check.h"
#include "storage/keys.h"
#include "storage/meta.h"
#include "support/test_util.h"
#include "tool/commands.h"
#include "tool/common.h"

namespace jaiminho {
namespace {

namespace fs = std::filesystem;
using testing::MustOpen;
using testing::RawKeys;
using testing::RecordingPublisher;
using testing::TempDir;

struct Captured {
  std::mutex mu;
  std::vector<Error> errors;
  std::function<void(const Error&)> Hook() {
    return [this](const Error& e) {
      std::lock_guard l(mu);
      errors.push_back(e);
    };
  }
  // The captured messages that contain every one of `words`.
  std::vector<std::string> Matching(std::initializer_list<std::string_view> words) {
    std::lock_guard l(mu);
    std::vector<std::string> out;
    for (const Error& e : errors) {
      std::string m = e.ToString();
      bool all = true;
      for (auto w : words)
        all &= m.find(w) != std::string::npos;
      if (all) out.push_back(m);
    }
    return out;
  }
  std::string All() {
    std::lock_guard l(mu);
    std::string out;
    for (const Error& e : errors)
      out += e.ToString() + "\n";
    return out;
  }
};

// Writes jaiminho.meta records directly, as a damaged or hand-edited database would have them.
void TamperMeta(const std::string& path, const std::string& key, uint64_t value) {
  testing::RawDb(path).Put(internal::kMetaFamily, key, internal::EncodeU64(value));
}

struct VerifyRun {
  int code;
  std::string out, err;
};
VerifyRun RunVerify(const std::string& path) {
  std::ostringstream out, err;
  tool::Io io{out, err, false, false};
  int code = tool::Verify({.path = path}, io);
  return {code, out.str(), err.str()};
}

void CommitN(Outbox& outbox, Stream& s, int n, std::string_view prefix = "e") {
  for (int i = 0; i < n; ++i) {
    auto txn = outbox.Begin();
    std::string payload = std::string(prefix) + std::to_string(i);
    ASSERT_OK(txn.Enqueue(s, {.type = "t", .key = "k", .payload = payload}));
    ASSERT_OK(txn.Commit({.sync = true}));
  }
}

// Keep-order events are only delivered by a relay, so they stay pending here.
OutboxOptions KeepOrder(Captured* c) {
  OutboxOptions o;
  o.strategy = Strategy::kKeepOrder;
  o.clean_interval = std::chrono::seconds(0);
  if (c) o.capture_error = c->Hook();
  return o;
}

// ---------------------------------------------------------------------------
// Item 5: meta records are cross-checked against the stream's keys.

TEST(OpenCheck, SeqReservationBelowHighestSeqIsRaisedAndNoSeqIsReused) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path, KeepOrder(nullptr));
    ASSERT_NE(outbox, nullptr);
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
    CommitN(*outbox, *s, 5);
    ASSERT_OK(outbox->Close());
  }
  TamperMeta(path, internal::StreamMetaKey("s", "hwm"), 2);

  VerifyRun v = RunVerify(path);
  EXPECT_NE(v.code, 0) << v.err;
  EXPECT_NE(v.err.find("stream 's'"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("seq reservation 2"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("highest seq 5"), std::string::npos) << v.err;

  Captured captured;
  auto outbox = MustOpen(path, KeepOrder(&captured));
  ASSERT_NE(outbox, nullptr);
  EXPECT_EQ(captured.Matching({"stream 's'", "seq reservation 2", "highest seq 5"}).size(), 1u) << captured.All();
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream("s"));
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(*s, {.type = "t", .key = "k", .payload = "new"}));
  ASSERT_OK_AND_ASSIGN(Receipt r, txn.Commit());
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_GT(r.events[0].seq, 5u) << "a seq of an acknowledged event was issued again";
  // The five acknowledged events are intact, and listed as pending.
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_OK_AND_ASSIGN(StoredEvent e, outbox->FindEvent(*s, seq));
    EXPECT_EQ(e->payload, "e" + std::to_string(seq - 1)) << "seq " << seq << " was overwritten";
  }
  ASSERT_OK_AND_ASSIGN(auto pending, outbox->ListEvents(*s, EventState::kPending));
  EXPECT_EQ(pending.size(), 6u);
  // Repaired on disk: verify is clean and the next Open reports nothing.
  ASSERT_OK(outbox->Close());
  outbox.reset();
  VerifyRun after = RunVerify(path);
  EXPECT_EQ(after.code, 0) << after.err;
}

TEST(OpenCheck, CursorPastPendingEventsIsLoweredAndTheyAreDelivered) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path, KeepOrder(nullptr));
    ASSERT_NE(outbox, nullptr);
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
    CommitN(*outbox, *s, 4);
    ASSERT_OK(outbox->Close());
  }
  TamperMeta(path, internal::StreamMetaKey("s", "cursor"), 1000);

  VerifyRun v = RunVerify(path);
  EXPECT_NE(v.code, 0) << v.err;
  EXPECT_NE(v.err.find("stream 's'"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("cursor 1000"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("pending seq 1"), std::string::npos) << v.err;

  Captured captured;
  auto outbox = MustOpen(path, KeepOrder(&captured));
  ASSERT_NE(outbox, nullptr);
  EXPECT_EQ(captured.Matching({"stream 's'", "cursor 1000", "pending seq 1"}).size(), 1u) << captured.All();
  ASSERT_OK_AND_ASSIGN(auto metrics, CollectMetrics(*outbox));
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(metrics[0].pending, 4u) << "the gauges hid the pending events";
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream("s"));
  CommitN(*outbox, *s, 1, "late");
  auto publisher = std::make_shared<RecordingPublisher>();
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.published, 5u);
  auto ds = publisher->deliveries();
  ASSERT_EQ(ds.size(), 5u);
  for (size_t i = 0; i < ds.size(); ++i)
    EXPECT_EQ(ds[i].seq, i + 1) << "in order, none hidden";
  EXPECT_EQ(ds[4].payload, "late0");
}

// ---------------------------------------------------------------------------
// Item 10: a write-ahead log that lost acknowledged commits is reported.

// The newest (highest-numbered) WAL file of a database.
std::string NewestWal(const std::string& path) {
  std::string newest;
  for (const auto& e : fs::directory_iterator(path)) {
    std::string n = e.path().filename().string();
    if (n.ends_with(".log") && (newest.empty() || n > fs::path(newest).filename().string())) newest = e.path().string();
  }
  return newest;
}

// How much of a live WAL file holds records: the database preallocates log
// files with their size (storage/wal_env.h), so the file's size says nothing
// until the log is closed; the records end at the last non-zero byte (give
// or take trailing zero bytes of the last record, which only cuts it shorter).
uintmax_t WrittenSize(const std::string& wal) {
  std::ifstream in(wal, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t end = bytes.find_last_not_of('\0');
  return end == std::string::npos ? 0 : end + 1;
}

enum class Damage { kTruncate, kCorrupt };

void ExpectLossReported(Damage damage) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  std::string wal;
  uintmax_t kept_size = 0;
  {
    auto outbox = MustOpen(path, KeepOrder(nullptr));
    ASSERT_NE(outbox, nullptr);
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
    CommitN(*outbox, *s, 2);
    wal = NewestWal(path);
    ASSERT_FALSE(wal.empty());
    kept_size = WrittenSize(wal);
    ASSERT_GT(kept_size, 0u);
    CommitN(*outbox, *s, 20, "lost");
    ASSERT_OK(outbox->Close());
  }
  ASSERT_EQ(NewestWal(path), wal) << "the commits went to one WAL file";
  ASSERT_GT(fs::file_size(wal), kept_size);
  if (damage == Damage::kTruncate) {
    fs::resize_file(wal, kept_size);
  } else {
    // Flip bytes just after the surviving prefix: a checksum mismatch there,
    // and point-in-time recovery stops at it.
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(kept_size + 20));
    std::string junk(16, '\xa5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    ASSERT_TRUE(f.good());
  }

  VerifyRun v = RunVerify(path);
  EXPECT_NE(v.code, 0) << v.err;
  EXPECT_NE(v.err.find("write-ahead log"), std::string::npos) << v.err;

  Captured captured;
  auto outbox = MustOpen(path, KeepOrder(&captured));
  ASSERT_NE(outbox, nullptr);
  EXPECT_EQ(captured.Matching({"write-ahead log", "lost"}).size(), 1u) << captured.All();
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream("s"));
  // The scenario is real: the acknowledged commits are gone.
  EXPECT_LT(RawKeys(*outbox, *s).size(), 22u);
  // The lost seqs were acknowledged (and maybe delivered): never issued again.
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(*s, {.type = "t", .key = "k", .payload = "after"}));
  ASSERT_OK_AND_ASSIGN(Receipt r, txn.Commit());
  EXPECT_GT(r.events.at(0).seq, 22u);
}

TEST(OpenCheck, TruncatedWalLosingAcknowledgedCommitsIsReported) {
  ExpectLossReported(Damage::kTruncate);
}

TEST(OpenCheck, CorruptWalLosingAcknowledgedCommitsIsReported) {
  ExpectLossReported(Damage::kCorrupt);
}

// The maintenance pass records the watermark too, so damage of what was
// written before it is detected after a crash (no clean Close).
TEST(OpenCheck, MaintenanceRecordsTheDurableWatermark) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  auto outbox = MustOpen(path, KeepOrder(nullptr));
  ASSERT_NE(outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(*s, {.type = "t", .payload = "unsynced"}));
  ASSERT_OK(txn.Commit({.sync = false}));
  const uint64_t latest = outbox->db()->GetLatestSequenceNumber();
  ASSERT_OK(OutboxAccess::Of(*outbox).maintenance->Maintain());
  std::ifstream in(path + "/" + std::string(internal::kDurableFile));
  ASSERT_TRUE(in.good()) << "no durable watermark after a maintenance pass";
  std::string magic;
  int version = 0;
  uint64_t seq = 0;
  in >> magic >> version >> seq;
  EXPECT_EQ(magic, "jaiminho-durable");
  EXPECT_EQ(version, 1);
  EXPECT_EQ(seq, latest);
}

TEST(OpenCheck, CleanCloseAndReopenReportNothing) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  Captured captured;
  for (int round = 0; round < 3; ++round) {
    auto outbox = MustOpen(path, KeepOrder(&captured));
    ASSERT_NE(outbox, nullptr);
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
    CommitN(*outbox, *s, 3);
    auto publisher = std::make_shared<RecordingPublisher>();
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK(relay->RunOnce());
    ASSERT_OK(outbox->Close());
  }
  EXPECT_EQ(captured.All(), "");
  VerifyRun v = RunVerify(path);
  EXPECT_EQ(v.code, 0) << v.err;
}

}  // namespace
}  // namespace jaiminho
