// Inbox: exactly-once effects on the consuming side. New vs duplicate, across
// restarts; atomic with the business writes (a dropped or failed transaction
// records nothing); out-of-order seqs folding into the watermark; gaps past
// the horizon reported and kept; keep-order refusals; concurrent receivers;
// bad ids; the record's format and its size.
#include "jaiminho/inbox.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <rocksdb/db.h>

#include <atomic>
#include <barrier>
#include <random>
#include <thread>

#include "core/outbox_impl.h"
#include "storage/inbox_record.h"
#include "support/fault_fs.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::TempDir;

constexpr int64_t kT0 = 1'700'000'000'000'000;

DatabaseId Producer(uint8_t n) {
  DatabaseId id;
  for (size_t i = 0; i < id.bytes.size(); ++i)
    id.bytes[i] = static_cast<uint8_t>(n + i);
  return id;
}

class InboxTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(InboxOptions io = {}) {
    inbox_.reset();
    if (outbox_) ASSERT_OK(outbox_->Close());
    outbox_.reset();
    outbox_ = MustOpen(dir_.Sub("db"),
                       {.business_families = {{.name = "orders"}}, .durability = Durability::kNone, .clock = clock_});
    ASSERT_NE(outbox_, nullptr);
    ASSERT_OK_AND_ASSIGN(orders_, outbox_->FindBusinessFamily("orders"));
    ASSERT_OK_AND_ASSIGN(inbox_, Inbox::Open(*outbox_, std::move(io)));
  }

  // Receives `seq` of (producer 1, stream) in its own transaction with a
  // business write, committed when kNew.
  ReceiveOutcome Deliver(uint64_t seq, std::string_view stream = "fills", ReceiveOptions ro = {}) {
    if (!inbox_) {
      ADD_FAILURE() << "no inbox";
      return ReceiveOutcome::kDuplicate;
    }
    Transaction txn = outbox_->Begin();
    auto outcome = inbox_->Receive(txn, EventId{Producer(1), stream, seq}, ro);
    EXPECT_TRUE(outcome.has_value()) << outcome.error().ToString();
    if (!outcome) return ReceiveOutcome::kDuplicate;
    if (*outcome == ReceiveOutcome::kNew) {
      EXPECT_OK(txn.Put(orders_, fmt::format("{}/{}", stream, seq), "applied"));
      auto r = txn.Commit();
      EXPECT_TRUE(r.has_value()) << r.error().ToString();
    }
    return *outcome;
  }

  InboxStreamState StateOf(std::string_view stream = "fills") {
    if (!inbox_) {
      ADD_FAILURE() << "no inbox";
      return {};
    }
    auto s = inbox_->State(Producer(1), stream);
    EXPECT_TRUE(s.has_value());
    return s.value_or(InboxStreamState{});
  }

  rocksdb::ColumnFamilyHandle* InboxFamily() const { return OutboxAccess::Of(*outbox_).inbox_cf; }

  TempDir dir_;
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>(FromMicros(kT0));
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<Inbox> inbox_;
  BusinessFamily orders_;
};

TEST_F(InboxTest, NewThenDuplicate) {
  EXPECT_EQ(Deliver(1), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(1), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(Deliver(2), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(2), ReceiveOutcome::kDuplicate);
  // Another stream and another producer are separate.
  EXPECT_EQ(Deliver(1, "commands"), ReceiveOutcome::kNew);
  Transaction txn = outbox_->Begin();
  ASSERT_OK_AND_ASSIGN(auto other, inbox_->Receive(txn, EventId{Producer(2), "fills", 1}));
  EXPECT_EQ(other, ReceiveOutcome::kNew);
  InboxStreamState s = StateOf();
  EXPECT_EQ(s.watermark, 2u);
  EXPECT_EQ(s.received, 2u);
  EXPECT_TRUE(s.above.empty());
  EXPECT_TRUE(s.gaps.empty());
  // Only committed records are state: producer 2's is still in txn.
  EXPECT_EQ(inbox_->State().size(), 2u);
}

TEST_F(InboxTest, SameIdTwiceInOneTransactionIsADuplicate) {
  Transaction txn = outbox_->Begin();
  ASSERT_OK_AND_ASSIGN(auto first, inbox_->Receive(txn, EventId{Producer(1), "fills", 7}));
  ASSERT_OK_AND_ASSIGN(auto second, inbox_->Receive(txn, EventId{Producer(1), "fills", 7}));
  EXPECT_EQ(first, ReceiveOutcome::kNew);
  EXPECT_EQ(second, ReceiveOutcome::kDuplicate);
  EXPECT_FALSE(txn.empty());  // a Receive alone is something to commit
  ASSERT_OK(txn.Commit());
  EXPECT_EQ(StateOf().received, 1u);
}

TEST_F(InboxTest, DuplicateSkippedAfterRestart) {
  for (uint64_t seq : {1, 2, 3, 5})
    EXPECT_EQ(Deliver(seq), ReceiveOutcome::kNew);
  Reopen();
  for (uint64_t seq : {1, 2, 3, 5})
    EXPECT_EQ(Deliver(seq), ReceiveOutcome::kDuplicate) << seq;
  EXPECT_EQ(Deliver(4), ReceiveOutcome::kNew);
  EXPECT_EQ(StateOf().watermark, 5u);
}

TEST_F(InboxTest, HandlerFailureRecordsNothing) {
  {
    Transaction txn = outbox_->Begin();
    ASSERT_OK_AND_ASSIGN(auto outcome, inbox_->Receive(txn, "0102030405060708090a0b0c0d0e0f10/fills/1"));
    ASSERT_EQ(outcome, ReceiveOutcome::kNew);
    ASSERT_OK(txn.Put(orders_, "fills/1", "half"));
    // The handler fails: the transaction is dropped without Commit.
  }
  EXPECT_FALSE(inbox_->State(Producer(1), "fills").has_value());
  ASSERT_OK_AND_ASSIGN(auto v, outbox_->Get(orders_, "fills/1"));
  EXPECT_FALSE(v.has_value());
  // Clear() forgets the receipt too.
  Transaction txn = outbox_->Begin();
  ASSERT_OK_AND_ASSIGN(auto again, inbox_->Receive(txn, EventId{Producer(1), "fills", 1}));
  EXPECT_EQ(again, ReceiveOutcome::kNew);
  txn.Clear();
  EXPECT_TRUE(txn.empty());
  EXPECT_EQ(Deliver(1), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(1), ReceiveOutcome::kDuplicate);
}

// The commit's write fails (ENOSPC on the write-ahead log): neither the
// business write nor the inbox record is there, in memory, after the next
// commit of the stream, or after a reopen; the id stays claimed by the failed
// transaction until it is dropped, then it is new.
TEST(InboxFaultTest, FailedCommitWritesNeitherBusinessNorInbox) {
  TempDir dir;
  auto fs = std::make_shared<testing::FaultFileSystem>();
  auto env = fs->NewEnv();
  OutboxOptions o{.business_families = {{.name = "orders"}}, .env = env.get()};
  auto outbox = MustOpen(dir.Sub("db"), o);
  ASSERT_NE(outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(auto orders, outbox->FindBusinessFamily("orders"));
  ASSERT_OK_AND_ASSIGN(auto inbox, Inbox::Open(*outbox));
  const EventId id{Producer(1), "fills", 1};
  auto applied = [&](std::string_view key) {
    auto v = outbox->Get(orders, key);
    EXPECT_TRUE(v.has_value());
    return v.has_value() && v->has_value();
  };
  auto commit = [&](uint64_t seq) {
    Transaction txn = outbox->Begin();
    auto outcome = inbox->Receive(txn, EventId{id.db, id.stream, seq});
    ASSERT_TRUE(outcome.has_value());
    ASSERT_EQ(*outcome, ReceiveOutcome::kNew);
    ASSERT_OK(txn.Put(orders, fmt::format("fills/{}", seq), "applied"));
    ASSERT_OK(txn.Commit());
  };
  {
    Transaction txn = outbox->Begin();
    ASSERT_OK_AND_ASSIGN(auto outcome, inbox->Receive(txn, id));
    ASSERT_EQ(outcome, ReceiveOutcome::kNew);
    ASSERT_OK(txn.Put(orders, "fills/1", "applied"));
    fs->FailWrites(testing::FaultKind::kNoSpace);
    auto r = txn.Commit();
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted) << r.error().ToString();
    fs->ClearFaults();
    EXPECT_FALSE(inbox->State(id.db, id.stream).has_value());
    EXPECT_FALSE(applied("fills/1"));
    Transaction other = outbox->Begin();
    ASSERT_OK_AND_ASSIGN(auto meanwhile, inbox->Receive(other, id));
    EXPECT_EQ(meanwhile, ReceiveOutcome::kInFlight);
  }
  // The next commit of the stream (it resumes the database) records only its own seq.
  commit(2);
  InboxStreamState s = inbox->State(id.db, id.stream).value_or(InboxStreamState{});
  EXPECT_EQ(s.watermark, 0u);
  EXPECT_EQ(s.above, (std::vector<SeqRange>{{2, 2}}));
  inbox.reset();
  ASSERT_OK(outbox->Close());
  outbox = MustOpen(dir.Sub("db"), o);
  ASSERT_NE(outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(inbox, Inbox::Open(*outbox));
  ASSERT_OK_AND_ASSIGN(orders, outbox->FindBusinessFamily("orders"));
  s = inbox->State(id.db, id.stream).value_or(InboxStreamState{});
  EXPECT_EQ(s.watermark, 0u);
  EXPECT_EQ(s.above, (std::vector<SeqRange>{{2, 2}}));
  EXPECT_FALSE(applied("fills/1"));
  commit(1);
  EXPECT_TRUE(applied("fills/1"));
  EXPECT_EQ(inbox->State(id.db, id.stream)->watermark, 2u);
}

TEST_F(InboxTest, OutOfOrderFoldsIntoTheWatermark) {
  EXPECT_EQ(Deliver(1), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(3), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(6), ReceiveOutcome::kNew);
  EXPECT_EQ(StateOf().watermark, 1u);
  EXPECT_EQ(StateOf().above, (std::vector<SeqRange>{{3, 3}, {6, 6}}));
  EXPECT_EQ(Deliver(3), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(Deliver(5), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(4), ReceiveOutcome::kNew);  // joins 3 and 5-6
  EXPECT_EQ(StateOf().above, (std::vector<SeqRange>{{3, 6}}));
  EXPECT_EQ(Deliver(2), ReceiveOutcome::kNew);  // the hole fills: everything folds
  InboxStreamState s = StateOf();
  EXPECT_EQ(s.watermark, 6u);
  EXPECT_TRUE(s.above.empty());
  EXPECT_TRUE(s.gaps.empty());
  EXPECT_EQ(s.received, 6u);
  for (uint64_t seq = 1; seq <= 6; ++seq)
    EXPECT_EQ(Deliver(seq), ReceiveOutcome::kDuplicate) << seq;
}

TEST_F(InboxTest, GapBeyondTheSeqHorizonIsReportedAndSurvivesRestart) {
  Reopen({.horizon_seqs = 10});
  EXPECT_EQ(Deliver(1), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(8), ReceiveOutcome::kNew);  // within the horizon: a hole 2-7
  EXPECT_EQ(StateOf().watermark, 1u);
  EXPECT_EQ(Deliver(20), ReceiveOutcome::kNew);  // 20 - 1 > 10: 2-7 becomes a gap, then 9-19
  InboxStreamState s = StateOf();
  EXPECT_EQ(s.watermark, 20u);
  EXPECT_EQ(s.gaps, (std::vector<SeqRange>{{2, 7}, {9, 19}}));
  EXPECT_EQ(s.gap_seqs, 17u);
  Reopen({.horizon_seqs = 10});
  s = StateOf();
  EXPECT_EQ(s.watermark, 20u);
  EXPECT_EQ(s.gaps, (std::vector<SeqRange>{{2, 7}, {9, 19}}));
  // A late event of a gap is new (once), and leaves the gap list.
  EXPECT_EQ(Deliver(5), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(5), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(Deliver(8), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(Deliver(2), ReceiveOutcome::kNew);
  EXPECT_EQ(StateOf().gaps, (std::vector<SeqRange>{{3, 4}, {6, 7}, {9, 19}}));
  Reopen({.horizon_seqs = 10});
  EXPECT_EQ(StateOf().gaps, (std::vector<SeqRange>{{3, 4}, {6, 7}, {9, 19}}));
  EXPECT_EQ(Deliver(5), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(Deliver(6), ReceiveOutcome::kNew);
}

TEST_F(InboxTest, GapOlderThanTheAgeHorizonIsReported) {
  Reopen({.horizon_age = std::chrono::minutes(1)});
  EXPECT_EQ(Deliver(1), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(3), ReceiveOutcome::kNew);
  clock_->Advance(std::chrono::seconds(59));
  EXPECT_EQ(Deliver(5), ReceiveOutcome::kNew);
  EXPECT_TRUE(StateOf().gaps.empty());
  clock_->Advance(std::chrono::seconds(2));  // the hole 2 waited 61 s, the hole 4 only 2 s
  EXPECT_EQ(Deliver(7), ReceiveOutcome::kNew);
  InboxStreamState s = StateOf();
  EXPECT_EQ(s.gaps, (std::vector<SeqRange>{{2, 2}}));
  EXPECT_EQ(s.watermark, 3u);
  EXPECT_EQ(s.above, (std::vector<SeqRange>{{5, 5}, {7, 7}}));
}

TEST_F(InboxTest, GapListIsBoundedAndCountsWhatItDrops) {
  Reopen({.horizon_seqs = 1, .max_gap_ranges = 2});
  for (uint64_t seq = 1; seq <= 9; seq += 2)
    EXPECT_EQ(Deliver(seq), ReceiveOutcome::kNew);  // 2, 4, 6, 8 are gaps
  InboxStreamState s = StateOf();
  EXPECT_EQ(s.gaps, (std::vector<SeqRange>{{6, 6}, {8, 8}}));
  EXPECT_EQ(s.gap_seqs, 4u);
  EXPECT_EQ(s.forgotten, 2u);
}

TEST_F(InboxTest, KeepOrderRefusesASeqPastTheNext) {
  Reopen({.keep_order_streams = {"commands"}});
  EXPECT_EQ(Deliver(1, "commands"), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(3, "commands"), ReceiveOutcome::kOutOfOrder);
  EXPECT_EQ(StateOf("commands").watermark, 1u);
  EXPECT_TRUE(StateOf("commands").above.empty());
  EXPECT_EQ(Deliver(2, "commands"), ReceiveOutcome::kNew);
  EXPECT_EQ(Deliver(1, "commands"), ReceiveOutcome::kDuplicate);
  {
    // One transaction may take several in order.
    Transaction txn = outbox_->Begin();
    ASSERT_OK_AND_ASSIGN(auto a, inbox_->Receive(txn, EventId{Producer(1), "commands", 3}));
    ASSERT_OK_AND_ASSIGN(auto b, inbox_->Receive(txn, EventId{Producer(1), "commands", 4}));
    ASSERT_OK_AND_ASSIGN(auto c, inbox_->Receive(txn, EventId{Producer(1), "commands", 6}));
    EXPECT_EQ(a, ReceiveOutcome::kNew);
    EXPECT_EQ(b, ReceiveOutcome::kNew);
    EXPECT_EQ(c, ReceiveOutcome::kOutOfOrder);
    ASSERT_OK(txn.Commit());
  }
  EXPECT_EQ(StateOf("commands").watermark, 4u);
  // Per call: another stream in order, this one not.
  EXPECT_EQ(Deliver(3, "fills", {.keep_order = true}), ReceiveOutcome::kOutOfOrder);
  EXPECT_EQ(Deliver(6, "commands", {.keep_order = false}), ReceiveOutcome::kNew);
  EXPECT_EQ(StateOf("commands").above, (std::vector<SeqRange>{{6, 6}}));
}

// A consumer that takes a batch of messages per transaction (Kafka's poll):
// thousands of ids of a few streams in one transaction, in order, out of
// order and repeated; another transaction sees each one in flight; the
// commit records them all, and a dropped batch releases every claim.
TEST_F(InboxTest, ManyIdsInOneTransaction) {
  Reopen({.horizon_seqs = 1u << 20, .keep_order_streams = {"commands"}});
  constexpr uint64_t kIds = 5000;
  {
    Transaction dropped = outbox_->Begin();
    for (uint64_t seq = 1; seq <= kIds; ++seq) {
      ASSERT_OK_AND_ASSIGN(auto o, inbox_->Receive(dropped, EventId{Producer(1), "fills", seq}));
      ASSERT_EQ(o, ReceiveOutcome::kNew) << seq;
    }
    Transaction other = outbox_->Begin();
    ASSERT_OK_AND_ASSIGN(auto first, inbox_->Receive(other, EventId{Producer(1), "fills", 1}));
    ASSERT_OK_AND_ASSIGN(auto last, inbox_->Receive(other, EventId{Producer(1), "fills", kIds}));
    EXPECT_EQ(first, ReceiveOutcome::kInFlight);
    EXPECT_EQ(last, ReceiveOutcome::kInFlight);
  }  // dropped: nothing recorded, every claim released
  EXPECT_EQ(inbox_->State(Producer(1), "fills"), std::nullopt);

  Transaction txn = outbox_->Begin();
  // fills: even seqs first (out of order), then the odd ones, then all again.
  for (uint64_t seq = 2; seq <= kIds; seq += 2) {
    ASSERT_OK_AND_ASSIGN(auto o, inbox_->Receive(txn, EventId{Producer(1), "fills", seq}));
    ASSERT_EQ(o, ReceiveOutcome::kNew) << seq;
  }
  for (uint64_t seq = 1; seq <= kIds; seq += 2) {
    ASSERT_OK_AND_ASSIGN(auto o, inbox_->Receive(txn, EventId{Producer(1), "fills", seq}));
    ASSERT_EQ(o, ReceiveOutcome::kNew) << seq;
  }
  for (uint64_t seq = 1; seq <= kIds; ++seq) {
    ASSERT_OK_AND_ASSIGN(auto o, inbox_->Receive(txn, EventId{Producer(1), "fills", seq}));
    ASSERT_EQ(o, ReceiveOutcome::kDuplicate) << seq;
  }
  // commands (keep-order), interleaved with a second producer: each next one
  // in order is new, one past it is not.
  for (uint64_t seq = 1; seq <= kIds; ++seq) {
    ASSERT_OK_AND_ASSIGN(auto skip, inbox_->Receive(txn, EventId{Producer(1), "commands", seq + 1}));
    ASSERT_EQ(skip, ReceiveOutcome::kOutOfOrder) << seq;
    ASSERT_OK_AND_ASSIGN(auto o, inbox_->Receive(txn, EventId{Producer(1), "commands", seq}));
    ASSERT_EQ(o, ReceiveOutcome::kNew) << seq;
    ASSERT_OK_AND_ASSIGN(auto p2, inbox_->Receive(txn, EventId{Producer(2), "fills", seq}));
    ASSERT_EQ(p2, ReceiveOutcome::kNew) << seq;
  }
  ASSERT_OK(txn.Commit());

  for (const auto& [db, stream] : std::vector<std::pair<DatabaseId, std::string>>{
           {Producer(1), "fills"}, {Producer(1), "commands"}, {Producer(2), "fills"}}) {
    auto s = inbox_->State(db, stream);
    ASSERT_TRUE(s.has_value()) << stream;
    EXPECT_EQ(s->watermark, kIds) << stream;
    EXPECT_EQ(s->received, kIds) << stream;
    EXPECT_TRUE(s->above.empty()) << stream;
    EXPECT_TRUE(s->gaps.empty()) << stream;
  }
  // After a restart too: every id is a duplicate, the next one new.
  Reopen({.keep_order_streams = {"commands"}});
  EXPECT_EQ(Deliver(kIds), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(Deliver(kIds + 1, "commands"), ReceiveOutcome::kNew);
}

// Threads receive the same ids of one stream in rounds (a barrier starts each
// round): in round k, threads 0 and 2 take the k-th id of one shuffled order,
// threads 1 and 3 of another, so each id is raced for by two threads at once
// while the other pair records other seqs of the stream out of order (commit
// groups then hold several records of the stream). Each kNew commits a
// business write; some handlers fail (the transaction is dropped) and the id
// is received again. Every id is applied exactly once, and the record ends
// with every seq folded in (no update lost to a race).
TEST_F(InboxTest, ConcurrentReceiversApplyEachIdOnce) {
  constexpr int kThreads = 4;
  constexpr uint64_t kIds = 400;
  std::atomic<uint64_t> applied{0}, duplicates{0}, in_flight{0};
  std::barrier round(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint64_t> order(kIds);
      for (uint64_t i = 0; i < kIds; ++i)
        order[i] = i + 1;
      std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<uint32_t>(t % 2)));
      int failures = 0;
      struct LeaveOnFailure {  // a failed ASSERT returns: the others must not wait for this thread
        std::barrier<>& b;
        bool done = false;
        ~LeaveOnFailure() {
          if (!done) b.arrive_and_drop();
        }
      } leave{round};
      for (size_t i = 0; i < order.size(); ++i) {
        round.arrive_and_wait();
        const uint64_t seq = order[i];
        for (;;) {
          Transaction txn = outbox_->Begin();
          auto outcome = inbox_->Receive(txn, EventId{Producer(1), "fills", seq});
          ASSERT_TRUE(outcome.has_value()) << outcome.error().ToString();
          if (*outcome == ReceiveOutcome::kInFlight) {
            in_flight.fetch_add(1);
            std::this_thread::yield();  // the other thread holds it: ask again
            continue;
          }
          if (*outcome == ReceiveOutcome::kDuplicate) {
            duplicates.fetch_add(1);
            break;
          }
          ASSERT_EQ(*outcome, ReceiveOutcome::kNew);
          if ((seq + static_cast<uint64_t>(t)) % 7 == 0 && failures++ % 2 == 0) continue;  // the handler fails
          ASSERT_OK(txn.Put(orders_, fmt::format("fills/{}/{}", seq, t), "applied"));
          ASSERT_OK(txn.Commit({.sync = true}));  // synced: commits queue up and share groups
          applied.fetch_add(1);
          break;
        }
      }
      leave.done = true;
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(applied.load(), kIds);
  EXPECT_EQ(duplicates.load(), kIds * (kThreads - 1));
  // The business data holds each id exactly once.
  std::map<uint64_t, int> per_seq;
  {
    std::unique_ptr<rocksdb::Iterator> it(outbox_->db()->NewIterator(rocksdb::ReadOptions(), orders_.handle));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string key = it->key().ToString();
      ++per_seq[std::stoull(key.substr(6, key.rfind('/') - 6))];
    }
  }
  EXPECT_EQ(per_seq.size(), kIds);
  for (const auto& [seq, n] : per_seq)
    EXPECT_EQ(n, 1) << "seq " << seq;
  InboxStreamState s = StateOf();
  EXPECT_EQ(s.watermark, kIds);
  EXPECT_TRUE(s.above.empty());
  EXPECT_EQ(s.received, kIds);
  Reopen();
  s = StateOf();
  EXPECT_EQ(s.watermark, kIds);
  EXPECT_TRUE(s.above.empty());
  std::printf("concurrent receivers: %llu applied, %llu duplicates, %llu in-flight answers\n",
              static_cast<unsigned long long>(applied.load()), static_cast<unsigned long long>(duplicates.load()),
              static_cast<unsigned long long>(in_flight.load()));
}

TEST_F(InboxTest, BadRawIdsAreRefusedNamingTheId) {
  const std::string hex = "0102030405060708090a0b0c0d0e0f10";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "no '/'"},
      {"garbage", "no '/'"},
      {"0102/fills/1", "has 4 characters, not 32"},
      {"0102030405060708090a0b0c0d0e0fzz/fills/1", "not a hex digit at offset 30"},
      {hex + "/fills", "no '/' between the stream and the seq"},
      {hex + "//1", "stream name must be 1-128 bytes"},
      {hex + "/fi/lls/1", "has byte 0x2f"},
      {hex + "/fills/", "no seq after the stream"},
      {hex + "/fills/-1", "not a decimal number"},
      {hex + "/fills/1x", "not a decimal number"},
      {hex + "/fills/0", "seq 0"},
      {hex + "/fills/18446744073709551616", "past 2^64 - 1"},
      {hex + "/fills/1\n", "not a decimal number"},
  };
  for (const auto& [raw, why] : cases) {
    Transaction txn = outbox_->Begin();
    auto r = inbox_->Receive(txn, raw);
    ASSERT_FALSE(r.has_value()) << raw;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(r.error().message(), ::testing::HasSubstr(why)) << raw;
    std::string shown = raw == hex + "/fills/1\n" ? hex + "/fills/1\\x0a" : raw;
    EXPECT_THAT(r.error().message(), ::testing::HasSubstr("'" + shown + "'")) << r.error().message();
    EXPECT_TRUE(txn.empty());
  }
  // EventId::ToString() parses back.
  EventId id{Producer(9), "telemetry.v2_x-y", 18446744073709551615ull};
  const std::string s = id.ToString();
  ASSERT_OK_AND_ASSIGN(EventId parsed, Inbox::ParseEventId(s));
  EXPECT_EQ(parsed.db, id.db);
  EXPECT_EQ(parsed.stream, id.stream);
  EXPECT_EQ(parsed.seq, id.seq);
  // An EventId with seq 0 or a bad stream, a transaction of another Outbox.
  Transaction txn = outbox_->Begin();
  auto zero = inbox_->Receive(txn, EventId{Producer(1), "fills", 0});
  ASSERT_ERROR(zero, ErrorCode::kInvalidArgument);
  EXPECT_THAT(zero.error().message(), ::testing::HasSubstr("/fills/0: seq 0"));
  ASSERT_ERROR(inbox_->Receive(txn, EventId{Producer(1), "", 1}), ErrorCode::kInvalidArgument);
  TempDir other_dir;
  auto other = MustOpen(other_dir.Sub("db"));
  ASSERT_NE(other, nullptr);
  Transaction foreign = other->Begin();
  auto refused = inbox_->Receive(foreign, EventId{Producer(1), "fills", 1});
  ASSERT_ERROR(refused, ErrorCode::kInvalidArgument);
  EXPECT_THAT(refused.error().message(), ::testing::HasSubstr("another Outbox"));
}

TEST_F(InboxTest, OpenChecksOptionsAndOneInboxPerOutbox) {
  ASSERT_ERROR(Inbox::Open(*outbox_), ErrorCode::kBusy);
  inbox_.reset();
  ASSERT_ERROR(Inbox::Open(*outbox_, {.horizon_seqs = 0}), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(Inbox::Open(*outbox_, {.max_gap_ranges = 0}), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(Inbox::Open(*outbox_, {.keep_order_streams = {"a/b"}}), ErrorCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(inbox_, Inbox::Open(*outbox_));
  // The inbox family is not a business family.
  ASSERT_ERROR(outbox_->FindBusinessFamily("jaiminho.inbox"), ErrorCode::kNotFound);
  ASSERT_OK(outbox_->Close());
  Transaction txn = outbox_->Begin();
  ASSERT_ERROR(inbox_->Receive(txn, EventId{Producer(1), "fills", 1}), ErrorCode::kClosed);
}

TEST(InboxRecordTest, RoundTripsAndRefusesDamage) {
  internal::InboxRecord r;
  r.watermark = 1000;
  r.above = {{1002, 1005, kT0}, {1010, 1010, kT0 + 5}};
  r.gaps = {{3, 9, 0}, {500, 500, 0}};
  r.received = 990;
  r.gap_seqs = 8;
  r.forgotten = 1;
  std::string bytes;
  internal::EncodeInboxRecord(r, &bytes);
  ASSERT_OK_AND_ASSIGN(auto back, internal::DecodeInboxRecord(bytes, "test"));
  EXPECT_EQ(back, r);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    auto d = internal::DecodeInboxRecord(bad, "test record");
    ASSERT_FALSE(d.has_value()) << "byte " << i;
    EXPECT_EQ(d.error().code(), ErrorCode::kCorruption);
    EXPECT_THAT(d.error().message(), ::testing::HasSubstr("test record"));
  }
  ASSERT_ERROR(internal::DecodeInboxRecord(bytes.substr(0, bytes.size() - 1), "t"), ErrorCode::kCorruption);
  ASSERT_ERROR(internal::DecodeInboxRecord("", "t"), ErrorCode::kCorruption);
  EXPECT_EQ(internal::Crc32c("123456789"), 0xE3069283u);  // the standard check value
}

TEST_F(InboxTest, OpenRefusesADamagedRecordNamingIt) {
  EXPECT_EQ(Deliver(1), ReceiveOutcome::kNew);
  inbox_.reset();
  ASSERT_OK(outbox_->Close());
  outbox_.reset();
  {
    testing::RawDb raw(dir_.Sub("db"));
    auto value = raw.Get("jaiminho.inbox", internal::InboxKey(Producer(1), "fills"));
    ASSERT_TRUE(value.has_value());
    (*value)[2] = static_cast<char>((*value)[2] ^ 1);
    raw.Put("jaiminho.inbox", internal::InboxKey(Producer(1), "fills"), *value);
  }
  outbox_ = MustOpen(dir_.Sub("db"), {.business_families = {{.name = "orders"}}});
  ASSERT_NE(outbox_, nullptr);
  auto r = Inbox::Open(*outbox_);
  ASSERT_ERROR(r, ErrorCode::kCorruption);
  EXPECT_THAT(r.error().message(), ::testing::HasSubstr("stream 'fills'"));
  EXPECT_THAT(r.error().message(), ::testing::HasSubstr("checksum"));
}

// 100k ids of one stream, in order but for 1% that arrive 250 seqs late (as
// publish-on-commit retries do), then 100k more from 3 other streams: the
// state stays one small record per stream.
TEST_F(InboxTest, StateStaysSmall) {
  constexpr uint64_t kIds = 100'000;
  size_t max_record = 0;  // sampled after every commit of the first stream
  uint64_t max_above = 0;
  std::vector<uint64_t> order;
  std::vector<uint64_t> late;
  for (uint64_t seq = 1; seq <= kIds; ++seq) {
    if (seq % 100 == 7) {
      late.push_back(seq);
    } else {
      order.push_back(seq);
    }
    if (!late.empty() && late.front() + 250 <= seq) {
      order.push_back(late.front());
      late.erase(late.begin());
    }
  }
  order.insert(order.end(), late.begin(), late.end());
  ASSERT_EQ(order.size(), kIds);
  const std::array<std::string_view, 4> streams = {"fills", "orders", "quotes", "commands"};
  for (std::string_view stream : streams) {
    for (uint64_t seq : order) {
      Transaction txn = outbox_->Begin();
      ASSERT_OK_AND_ASSIGN(auto outcome, inbox_->Receive(txn, EventId{Producer(1), stream, seq}));
      ASSERT_EQ(outcome, ReceiveOutcome::kNew) << seq;
      ASSERT_OK(txn.Commit());
      if (stream == "fills") {
        InboxStreamState s = StateOf(stream);
        max_above = std::max<uint64_t>(max_above, s.above.size());
        std::string value;
        ASSERT_TRUE(outbox_->db()
                        ->Get(rocksdb::ReadOptions(), InboxFamily(), internal::InboxKey(Producer(1), stream), &value)
                        .ok());
        max_record = std::max(max_record, value.size());
      }
    }
    InboxStreamState s = StateOf(stream);
    EXPECT_EQ(s.watermark, kIds);
    EXPECT_TRUE(s.above.empty());
    EXPECT_TRUE(s.gaps.empty());
  }
  ASSERT_TRUE(outbox_->db()->Flush(rocksdb::FlushOptions(), InboxFamily()).ok());
  ASSERT_TRUE(outbox_->db()->CompactRange(rocksdb::CompactRangeOptions(), InboxFamily(), nullptr, nullptr).ok());
  uint64_t sst = 0;
  ASSERT_TRUE(outbox_->db()->GetIntProperty(InboxFamily(), "rocksdb.live-sst-files-size", &sst));
  std::string value;
  ASSERT_TRUE(
      outbox_->db()->Get(rocksdb::ReadOptions(), InboxFamily(), internal::InboxKey(Producer(1), "fills"), &value).ok());
  std::printf(
      "inbox state: 4 streams x %llu ids (1%% 250 seqs late): final record %zu bytes, largest record "
      "sampled %zu bytes (%llu ranges above the watermark), jaiminho.inbox SST after compaction %llu bytes\n",
      static_cast<unsigned long long>(kIds), value.size(), max_record, static_cast<unsigned long long>(max_above),
      static_cast<unsigned long long>(sst));
  EXPECT_LE(value.size(), 24u);
  EXPECT_LE(max_record, 128u);
  EXPECT_LT(sst, 8u << 10);
}

}  // namespace
}  // namespace jaiminho
