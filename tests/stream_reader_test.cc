// storage/stream_reader: StateRange's bounds and seek, CheckRecord's rules,
// the seq-keyed states and IsBlockedHead.
#include "storage/stream_reader.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "support/test_util.h"

namespace jaiminho {
namespace {

using internal::CheckedRecord;
using internal::RecordProblem;
using internal::StateRange;

std::string Key(internal::KeyBuf k) {
  return std::string(k.view());
}

// A RocksDB with two stream families, "a" and "b", holding records of every state.
class StreamReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {{rocksdb::kDefaultColumnFamilyName, {}}, {"a", {}}, {"b", {}}};
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir_.path(), cfs, &handles_, &db).ok());
    db_.reset(db);
    a_ = handles_[1];
    b_ = handles_[2];
    // Stream a: pending 1..5, retrying 6 (due 300) and 7 (due 100), sent 8, parked 9.
    for (uint64_t seq = 1; seq <= 5; ++seq)
      Put(a_, Key(internal::SeqKey(internal::kPendingTag, seq)), testing::EncodedEnvelope(seq, "a"));
    Put(a_, Key(internal::RetryKey(300, 6)), testing::EncodedEnvelope(6, "a", 300));
    Put(a_, Key(internal::RetryKey(100, 7)), testing::EncodedEnvelope(7, "a", 100));
    Put(a_, Key(internal::SeqKey(internal::kSentTag, 8)), testing::EncodedEnvelope(8, "a", 0, 50));
    Put(a_, Key(internal::SeqKey(internal::kParkedTag, 9)), testing::EncodedEnvelope(9, "a"));
    // Stream b: pending 100, parked 101.
    Put(b_, Key(internal::SeqKey(internal::kPendingTag, 100)), testing::EncodedEnvelope(100, "b"));
    Put(b_, Key(internal::SeqKey(internal::kParkedTag, 101)), testing::EncodedEnvelope(101, "b"));
  }

  void TearDown() override {
    for (auto* h : handles_)
      (void)db_->DestroyColumnFamilyHandle(h);
    handles_.clear();
    db_.reset();
  }

  void Put(rocksdb::ColumnFamilyHandle* cf, const std::string& k, const std::string& v) {
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), cf, k, v).ok());
  }

  // The seqs (or due times for the retry range) a range visits.
  static std::vector<uint64_t> Seqs(StateRange& r) {
    std::vector<uint64_t> out;
    for (; r.Valid(); r.Next()) {
      auto k = r.key();
      out.push_back(k ? k->seq : UINT64_MAX);
    }
    EXPECT_TRUE(r.status("read"));
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* a_ = nullptr;
  rocksdb::ColumnFamilyHandle* b_ = nullptr;
};

TEST_F(StreamReaderTest, EachStateRangeReadsOnlyItsStateAndItsFamily) {
  StateRange pending(db_.get(), a_, EventState::kPending);
  EXPECT_EQ(Seqs(pending), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  StateRange retrying(db_.get(), a_, EventState::kRetrying);
  EXPECT_EQ(Seqs(retrying), (std::vector<uint64_t>{7, 6}));  // due-time order
  StateRange sent(db_.get(), a_, EventState::kSent);
  EXPECT_EQ(Seqs(sent), (std::vector<uint64_t>{8}));
  StateRange parked(db_.get(), a_, EventState::kParked);
  EXPECT_EQ(Seqs(parked), (std::vector<uint64_t>{9}));
  StateRange b_pending(db_.get(), b_, EventState::kPending);
  EXPECT_EQ(Seqs(b_pending), (std::vector<uint64_t>{100}));
  StateRange b_sent(db_.get(), b_, EventState::kSent);
  EXPECT_EQ(Seqs(b_sent), (std::vector<uint64_t>{}));
}

TEST_F(StreamReaderTest, FromSeqAndEndSeqBoundTheRange) {
  StateRange from3(db_.get(), a_, EventState::kPending, {.from_seq = 3});
  EXPECT_EQ(Seqs(from3), (std::vector<uint64_t>{3, 4, 5}));
  StateRange window(db_.get(), a_, EventState::kPending, {.from_seq = 2, .end_seq = 4});
  EXPECT_EQ(Seqs(window), (std::vector<uint64_t>{2, 3}));
  StateRange past(db_.get(), a_, EventState::kPending, {.from_seq = 6});
  EXPECT_FALSE(past.Valid());
  // A seek below the lower bound stays inside the range.
  StateRange seek(db_.get(), a_, EventState::kPending, {.from_seq = 4});
  seek.Seek(Key(internal::SeqKey(internal::kPendingTag, 1)));
  EXPECT_EQ(Seqs(seek), (std::vector<uint64_t>{4, 5}));
  // The retry range is ordered by due time: from_seq does not apply.
  StateRange retry(db_.get(), a_, EventState::kRetrying, {.from_seq = 7});
  EXPECT_EQ(Seqs(retry), (std::vector<uint64_t>{7, 6}));
}

TEST_F(StreamReaderTest, SeekToLastStaysInTheState) {
  StateRange pending(db_.get(), a_, EventState::kPending);
  pending.SeekToLast();
  ASSERT_TRUE(pending.Valid());
  EXPECT_EQ(pending.key()->seq, 5u);
  EXPECT_EQ(pending.key()->state, EventState::kPending);
  StateRange b_sent(db_.get(), b_, EventState::kSent);
  b_sent.SeekToLast();
  EXPECT_FALSE(b_sent.Valid());
}

TEST_F(StreamReaderTest, TheWholeFamilyIncludesMalformedKeys) {
  Put(a_, "x-not-a-key", "junk");
  StateRange all(db_.get(), a_);
  size_t n = 0, malformed = 0;
  for (; all.Valid(); all.Next()) {
    ++n;
    if (!all.key()) ++malformed;
  }
  EXPECT_EQ(n, 10u);
  EXPECT_EQ(malformed, 1u);
}

TEST_F(StreamReaderTest, StatusReportsAReadingErrorNamingWhatWasRead) {
  // A block whose checksum fails: the iterator stops with a Corruption status.
  ASSERT_TRUE(db_->Flush(rocksdb::FlushOptions(), a_).ok());
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  std::string sst;
  for (const auto& f : files) {
    if (f.column_family_name == "a") sst = f.db_path + f.name;
  }
  ASSERT_FALSE(sst.empty());
  {
    std::FILE* f = std::fopen(sst.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 40, SEEK_SET);
    std::fputc(0x5a, f);
    std::fseek(f, 41, SEEK_SET);
    std::fputc(0xa5, f);
    std::fclose(f);
  }
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  StateRange pending(db_.get(), a_, EventState::kPending, {}, ro);
  while (pending.Valid())
    pending.Next();
  Status st = pending.status("read pending of stream 'a'");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kCorruption) << st.error().message();
  EXPECT_NE(st.error().message().find("read pending of stream 'a'"), std::string::npos) << st.error().message();
}

TEST(CheckRecord, AGoodRecordComesWithItsIdAndState) {
  internal::AlignedArena arena;
  DatabaseId id;
  id.bytes[0] = 7;
  std::string k = Key(internal::RetryKey(100, 3));
  CheckedRecord r = internal::CheckRecord("s", k, testing::EncodedEnvelope(3, "s", 100), id, arena);
  ASSERT_TRUE(r.ok()) << r.error->message();
  ASSERT_TRUE(r.envelope);
  EXPECT_EQ(r.envelope->event.id.seq, 3u);
  EXPECT_EQ(r.envelope->event.id.stream, "s");
  EXPECT_EQ(r.envelope->event.id.db, id);
  EXPECT_EQ(r.envelope->event.state, EventState::kRetrying);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r.value.data()) % 8, 0u);  // the aligned copy
}

TEST(CheckRecord, RejectsWhatTheToolsVerifyRejects) {
  internal::AlignedArena arena;
  DatabaseId id;
  auto check = [&](std::string_view key, const std::string& value) {
    return internal::CheckRecord("s", key, value, id, arena);
  };
  const std::string p3 = Key(internal::SeqKey(internal::kPendingTag, 3));

  CheckedRecord bad_key = check("x", testing::EncodedEnvelope(3, "s"));
  EXPECT_EQ(bad_key.problem, RecordProblem::kBadKey);
  EXPECT_FALSE(bad_key.key);
  EXPECT_EQ(bad_key.error->message(), "unrecognized key 78 (1 bytes)");

  CheckedRecord garbage = check(p3, "garbage!");
  EXPECT_EQ(garbage.problem, RecordProblem::kCorrupt);
  EXPECT_EQ(garbage.error->code(), ErrorCode::kCorruption);
  EXPECT_FALSE(garbage.envelope);

  CheckedRecord wrong_seq = check(p3, testing::EncodedEnvelope(4, "s"));
  EXPECT_EQ(wrong_seq.problem, RecordProblem::kCorrupt);
  EXPECT_EQ(wrong_seq.error->message(), "envelope has seq 4 but is stored under seq 3");
  EXPECT_FALSE(wrong_seq.envelope);

  EXPECT_EQ(check(p3, testing::EncodedEnvelope(3, "other")).error->message(),
            "envelope names stream 'other' but is stored in stream 's'");
  EXPECT_EQ(check(Key(internal::RetryKey(100, 3)), testing::EncodedEnvelope(3, "s", 200)).error->message(),
            "retry key is due at 100 but the envelope's next_attempt_at is 200");
  EXPECT_EQ(check(Key(internal::SeqKey(internal::kSentTag, 3)), testing::EncodedEnvelope(3, "s")).error->message(),
            "sent record without sent_at");
}

TEST(CheckRecord, AnUnsignedRecordIsTamperedOnlyWhenASignerRequiresSignatures) {
  internal::AlignedArena arena;
  DatabaseId id;
  SigningOptions so{.keys = {SigningKey{.id = "k1", .secret = "0123456789abcdef0123"}}};
  ASSERT_TRUE(internal::Signer::Validate(so));
  auto signer = internal::Signer::Make(so, id);
  ASSERT_TRUE(signer);
  const std::string p3 = Key(internal::SeqKey(internal::kPendingTag, 3));
  const std::string v = testing::EncodedEnvelope(3, "s");

  EXPECT_TRUE(internal::CheckRecord("s", p3, v, id, arena).ok());  // no signer: not checked
  CheckedRecord r = internal::CheckRecord("s", p3, v, id, arena, signer->get());
  EXPECT_EQ(r.problem, RecordProblem::kTampered);
  EXPECT_EQ(r.error->code(), ErrorCode::kTampered);
  // Tampered records decoded: the envelope is there to be parked, id filled.
  ASSERT_TRUE(r.envelope);
  EXPECT_EQ(r.envelope->event.id.seq, 3u);
  EXPECT_EQ(r.envelope->event.id.stream, "s");
}

TEST(SeqKeyedStates, AreTheStatesKeyedBySeq) {
  EXPECT_TRUE(internal::IsSeqKeyedTag(internal::kPendingTag));
  EXPECT_TRUE(internal::IsSeqKeyedTag(internal::kSentTag));
  EXPECT_TRUE(internal::IsSeqKeyedTag(internal::kParkedTag));
  EXPECT_FALSE(internal::IsSeqKeyedTag(internal::kRetryTag));
  EXPECT_FALSE(internal::IsSeqKeyedTag('x'));
  for (EventState s : internal::kSeqKeyedStates)
    EXPECT_NE(s, EventState::kRetrying);
}

TEST(BlockedHead, KeepOrderHeadsThatFailedWaitOrAreNotDue) {
  const Timestamp now = FromMicros(1000);
  Event e;
  e.strategy = Strategy::kKeepOrder;
  EXPECT_FALSE(internal::IsBlockedHead(e, now));  // fresh
  e.attempts = 1;
  e.next_attempt_at = FromMicros(2000);
  EXPECT_TRUE(internal::IsBlockedHead(e, now));
  EXPECT_TRUE(internal::BlockedHeadWaits(e, now));
  e.next_attempt_at = FromMicros(500);  // due again: still blocked, but the relay tries it
  EXPECT_TRUE(internal::IsBlockedHead(e, now));
  EXPECT_FALSE(internal::BlockedHeadWaits(e, now));
  Event handler;
  handler.strategy = Strategy::kKeepOrder;
  handler.note = "blocked: no handler for type 't'; register one or skip the event";
  EXPECT_TRUE(internal::IsBlockedHead(handler, now));
  Event poc = e;
  poc.strategy = Strategy::kPublishOnCommit;
  poc.next_attempt_at = FromMicros(2000);
  EXPECT_FALSE(internal::IsBlockedHead(poc, now));
  EXPECT_FALSE(internal::BlockedHeadWaits(poc, now));
}

}  // namespace
}  // namespace jaiminho
