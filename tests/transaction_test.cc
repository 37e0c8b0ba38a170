// Transactions: business writes and events in one WriteBatch, envelopes that
// round-trip, validation that poisons the transaction, failures that write nothing.
#include <rocksdb/listener.h>
#include <rocksdb/merge_operator.h>

#include <condition_variable>

#include "support/fault_fs.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::TempDir;

constexpr int64_t kT0 = 1'700'000'000'000'000;

class AppendOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* out,
             rocksdb::Logger*) const override {
    *out = existing ? existing->ToString() + "," + value.ToString() : value.ToString();
    return true;
  }
  const char* Name() const override { return "AppendOperator"; }
};

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_ = std::make_shared<ManualClock>(FromMicros(kT0));
    outbox_ =
        MustOpen(dir_.Sub("db"),
                 {.business_families = {{.name = "devices"},
                                        {.name = "counters", .merge_operator = std::make_shared<AppendOperator>()}},
                  .clock = clock_});
    ASSERT_NE(outbox_, nullptr);
    ASSERT_OK_AND_ASSIGN(devices_, outbox_->FindBusinessFamily("devices"));
    ASSERT_OK_AND_ASSIGN(telemetry_, outbox_->OpenStream("telemetry"));
    ASSERT_OK_AND_ASSIGN(fills_, outbox_->OpenStream("fills", {.strategy = Strategy::kKeepOrder}));
  }

  TempDir dir_;
  std::shared_ptr<ManualClock> clock_;
  std::unique_ptr<Outbox> outbox_;
  BusinessFamily devices_;
  Stream* telemetry_ = nullptr;
  Stream* fills_ = nullptr;
};

TEST_F(TransactionTest, CommitWritesBusinessAndEventsTogether) {
  auto txn = outbox_->Begin();
  ASSERT_OK(txn.Put(devices_, "dev/42", "state-1"));
  Header headers[] = {{"trace", "abc"}, {"tenant", "t1"}};
  ASSERT_OK(txn.Enqueue(*telemetry_, {.type = "reading.v1",
                                      .key = "dev/42",
                                      .payload = std::string_view("\x00\x01payload", 9),
                                      .encoding = "application/x-test",
                                      .headers = headers}));
  ASSERT_OK(txn.Enqueue(*fills_, {.type = "fill.v1", .key = "ord/1", .payload = "fill"}));
  EXPECT_EQ(txn.event_count(), 2u);
  ASSERT_OK_AND_ASSIGN(Receipt receipt, txn.Commit());
  EXPECT_TRUE(txn.empty()) << "a committed transaction is cleared for reuse";

  ASSERT_EQ(receipt.events.size(), 2u);
  EXPECT_EQ(receipt.events[0].stream, "telemetry");
  EXPECT_EQ(receipt.events[0].seq, 1u);
  EXPECT_EQ(receipt.events[1].stream, "fills");
  EXPECT_EQ(receipt.events[1].seq, 1u);
  EXPECT_EQ(receipt.events[0].db, outbox_->id());
  EXPECT_EQ(receipt.events[0].ToString(), outbox_->id().ToHex() + "/telemetry/1");

  ASSERT_OK_AND_ASSIGN(auto state, outbox_->Get(devices_, "dev/42"));
  EXPECT_EQ(state, "state-1");

  ASSERT_OK_AND_ASSIGN(StoredEvent e, outbox_->FindEvent(*telemetry_, 1));
  EXPECT_EQ(e->state, EventState::kPending);
  EXPECT_EQ(e->type, "reading.v1");
  EXPECT_EQ(e->key, "dev/42");
  EXPECT_EQ(e->payload, std::string_view("\x00\x01payload", 9));
  EXPECT_EQ(e->encoding, "application/x-test");
  ASSERT_EQ(e->headers.size(), 2u);
  EXPECT_EQ(e->headers[1].name, "tenant");
  EXPECT_EQ(e->headers[1].value, "t1");
  EXPECT_EQ(ToMicros(e->created_at), kT0);
  EXPECT_EQ(e->strategy, Strategy::kPublishOnCommit);
  EXPECT_EQ(e->attempts, 0u);
  EXPECT_EQ(ToMicros(e->sent_at), 0);
  EXPECT_EQ(e->id.stream, "telemetry");
  EXPECT_EQ(e->id.seq, 1u);

  ASSERT_OK_AND_ASSIGN(StoredEvent f, outbox_->FindEvent(*fills_, 1));
  EXPECT_EQ(f->strategy, Strategy::kKeepOrder) << "the stream's strategy is stored in the record";
}

TEST_F(TransactionTest, StrategyPerEnqueueOverridesStreamAndGlobal) {
  auto txn = outbox_->Begin();
  ASSERT_OK(txn.Enqueue(*telemetry_, {.type = "a", .strategy = Strategy::kKeepOrder}));
  ASSERT_OK(txn.Enqueue(*fills_, {.type = "b", .strategy = Strategy::kPublishOnCommit}));
  ASSERT_OK(txn.Commit());
  ASSERT_OK_AND_ASSIGN(StoredEvent a, outbox_->FindEvent(*telemetry_, 1));
  ASSERT_OK_AND_ASSIGN(StoredEvent b, outbox_->FindEvent(*fills_, 1));
  EXPECT_EQ(a->strategy, Strategy::kKeepOrder);
  EXPECT_EQ(b->strategy, Strategy::kPublishOnCommit);
}

struct Upper {
  static constexpr std::string_view kEncoding = "text/upper";
  static std::string Encode(const std::string& s) {
    std::string o = s;
    for (char& c : o)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return o;
  }
};

TEST_F(TransactionTest, EmitEncodesWithTheDefaultCodecOrAGivenOne) {
  auto txn = outbox_->Begin();
  ASSERT_OK(txn.Emit(*telemetry_, "n.v1", 42));
  ASSERT_OK(txn.Emit(*telemetry_, "s.v1", std::string("hi"), {.key = "k"}, Upper{}));
  ASSERT_OK(txn.Emit(*telemetry_, "m.v1", std::map<std::string, std::string>{{"a", "1"}, {"q\"", "x\ny"}}));
  ASSERT_OK(txn.Commit());
  ASSERT_OK_AND_ASSIGN(StoredEvent n, outbox_->FindEvent(*telemetry_, 1));
  EXPECT_EQ(n->payload, "42");
  EXPECT_EQ(n->encoding, "text/plain");
  ASSERT_OK_AND_ASSIGN(StoredEvent s, outbox_->FindEvent(*telemetry_, 2));
  EXPECT_EQ(s->payload, "HI");
  EXPECT_EQ(s->encoding, "text/upper");
  EXPECT_EQ(s->key, "k");
  ASSERT_OK_AND_ASSIGN(StoredEvent m, outbox_->FindEvent(*telemetry_, 3));
  EXPECT_EQ(m->payload, R"({"a":"1","q\"":"x\ny"})");
  EXPECT_EQ(m->encoding, "application/json");
}

// A codec with state: Emit must encode with the instance it is given.
struct Prefixed {
  std::string prefix;
  std::string kEncoding;
  std::string Encode(const std::string& s) const { return prefix + s; }
};

TEST_F(TransactionTest, EmitEncodesWithTheCodecInstanceItIsGiven) {
  auto txn = outbox_->Begin();
  ASSERT_OK(txn.Emit(*telemetry_, "a.v1", std::string("hi"), {}, Prefixed{"a:", "text/a"}));
  Prefixed b{"b:", "text/b"};
  ASSERT_OK(txn.Emit(*telemetry_, "b.v1", std::string("hi"), {}, b));
  ASSERT_OK(txn.Commit());
  ASSERT_OK_AND_ASSIGN(StoredEvent a, outbox_->FindEvent(*telemetry_, 1));
  EXPECT_EQ(a->payload, "a:hi");
  EXPECT_EQ(a->encoding, "text/a");
  ASSERT_OK_AND_ASSIGN(StoredEvent bb, outbox_->FindEvent(*telemetry_, 2));
  EXPECT_EQ(bb->payload, "b:hi");
  EXPECT_EQ(bb->encoding, "text/b");
}

TEST_F(TransactionTest, OversizedPayloadPoisonsTheTransactionAndWritesNothing) {
  auto txn = outbox_->Begin();
  ASSERT_OK(txn.Put(devices_, "dev/1", "v"));
  std::string big(outbox_->options().max_payload_bytes + 1, 'x');
  auto r = txn.Enqueue(*telemetry_, {.type = "big", .payload = big});
  ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("telemetry"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("max_payload_bytes"), std::string::npos) << r.error().message();
  ASSERT_ERROR(txn.Commit(), ErrorCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(auto v, outbox_->Get(devices_, "dev/1"));
  EXPECT_FALSE(v.has_value()) << "a poisoned transaction writes nothing";
  EXPECT_TRUE(testing::RawKeys(*outbox_, *telemetry_).empty());
}

TEST_F(TransactionTest, EventTypeIsRequired) {
  auto txn = outbox_->Begin();
  ASSERT_ERROR(txn.Enqueue(*telemetry_, {.type = ""}), ErrorCode::kInvalidArgument);
  auto txn2 = outbox_->Begin();
  ASSERT_ERROR(txn2.Enqueue(*telemetry_, {.type = std::string(257, 't')}), ErrorCode::kInvalidArgument);
}

TEST_F(TransactionTest, MergeNeedsAMergeOperator) {
  auto txn = outbox_->Begin();
  auto r = txn.Merge(devices_, "k", "v");
  ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("devices"), std::string::npos);

  ASSERT_OK_AND_ASSIGN(BusinessFamily counters, outbox_->FindBusinessFamily("counters"));
  auto t2 = outbox_->Begin();
  ASSERT_OK(t2.Merge(counters, "k", "a"));
  ASSERT_OK(t2.Merge(counters, "k", "b"));
  ASSERT_OK(t2.Enqueue(*telemetry_, {.type = "merged"}));
  ASSERT_OK(t2.Commit());
  ASSERT_OK_AND_ASSIGN(auto v, outbox_->Get(counters, "k"));
  EXPECT_EQ(v, "a,b");
}

TEST_F(TransactionTest, DeleteRemovesBusinessData) {
  auto t1 = outbox_->Begin();
  ASSERT_OK(t1.Put(devices_, "gone", "x"));
  ASSERT_OK(t1.Commit());
  auto t2 = outbox_->Begin();
  ASSERT_OK(t2.Delete(devices_, "gone"));
  ASSERT_OK(t2.Enqueue(*telemetry_, {.type = "deleted"}));
  ASSERT_OK(t2.Commit());
  ASSERT_OK_AND_ASSIGN(auto v, outbox_->Get(devices_, "gone"));
  EXPECT_FALSE(v.has_value());
}

TEST_F(TransactionTest, EmptyTransactionCommitsNothing) {
  auto txn = outbox_->Begin();
  ASSERT_OK_AND_ASSIGN(Receipt r, txn.Commit());
  EXPECT_TRUE(r.events.empty());
}

// A thread reuses the buffers of the transaction it destroyed last (spare
// buffers, commit/transaction.cc): a new transaction starts empty, whether the
// one before was committed or dropped uncommitted, and writes only its own.
TEST_F(TransactionTest, ANewTransactionStartsEmptyAfterOneWasDropped) {
  {
    auto dropped = outbox_->Begin();
    ASSERT_OK(dropped.Put(devices_, "dev/dropped", "never"));
    ASSERT_OK(dropped.Enqueue(*telemetry_, {.type = "dropped.v1", .payload = std::string(300, 'x')}));
  }
  {
    auto committed = outbox_->Begin();
    EXPECT_TRUE(committed.empty());
    ASSERT_OK(committed.Enqueue(*telemetry_, {.type = "first.v1", .payload = "1"}));
    ASSERT_OK(committed.Commit());
    ASSERT_OK(committed.Enqueue(*telemetry_, {.type = "left.v1", .payload = "left"}));  // dropped with it
  }
  auto txn = outbox_->Begin();
  EXPECT_TRUE(txn.empty());
  EXPECT_EQ(txn.op_count(), 0u);
  EXPECT_EQ(txn.event_count(), 0u);
  ASSERT_OK(txn.Put(devices_, "dev/1", "v"));
  ASSERT_OK(txn.Enqueue(*telemetry_, {.type = "second.v1", .payload = "2"}));
  ASSERT_OK_AND_ASSIGN(Receipt r, txn.Commit());
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].seq, 2u);
  ASSERT_OK_AND_ASSIGN(StoredEvent e, outbox_->FindEvent(*telemetry_, 2));
  EXPECT_EQ(e->type, "second.v1");
  EXPECT_EQ(e->payload, "2");
  ASSERT_OK_AND_ASSIGN(auto dropped, outbox_->Get(devices_, "dev/dropped"));
  EXPECT_FALSE(dropped.has_value());
  EXPECT_FALSE(outbox_->FindEvent(*telemetry_, 3).has_value());
}

// The write itself fails (injected ENOSPC / EIO): nothing of the transaction is
// visible, no seq is consumed, and once the fault clears the outbox carries on:
// by itself after ENOSPC (RocksDB's recovery), after a reopen for EIO on the log
// (RocksDB treats it as fatal for the instance).
class RecoveryListener : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo&) override {
    std::lock_guard l(mu_);
    ++ended_;
    cv_.notify_all();
  }
  bool WaitForRecovery(std::chrono::seconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return ended_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int ended_ = 0;
};

struct FaultCase {
  TempDir dir;
  std::shared_ptr<testing::FaultFileSystem> fs = std::make_shared<testing::FaultFileSystem>();
  std::unique_ptr<rocksdb::Env> env = fs->NewEnv();
  std::shared_ptr<RecoveryListener> listener = std::make_shared<RecoveryListener>();
  std::unique_ptr<Outbox> outbox;
  BusinessFamily devices;
  Stream* s = nullptr;

  OutboxOptions Options() {
    return {.business_families = {{.name = "devices"}},
            .env = env.get(),
            .tune_db = [l = listener](rocksdb::DBOptions& o) { o.listeners.push_back(l); }};
  }
  void Open() {
    outbox = MustOpen(dir.Sub("db"), Options());
    ASSERT_NE(outbox, nullptr);
    ASSERT_OK_AND_ASSIGN(devices, outbox->FindBusinessFamily("devices"));
    ASSERT_OK_AND_ASSIGN(s, outbox->OpenStream("s"));
  }
  // Commits "before", then fails a commit of "during" with `kind`.
  void FailOneCommit(testing::FaultKind kind, Transaction* txn) {
    auto ok = outbox->Begin();
    ASSERT_OK(ok.Put(devices, "before", "1"));
    ASSERT_OK(ok.Enqueue(*s, {.type = "t"}));
    ASSERT_OK(ok.Commit());
    fs->FailWrites(kind);
    ASSERT_OK(txn->Put(devices, "during", "1"));
    ASSERT_OK(txn->Enqueue(*s, {.type = "t"}));
    auto r = txn->Commit();
    ASSERT_FALSE(r.has_value());
    // Out of space: retry later (kResourceExhausted); EIO on the log: close and reopen (kFatal).
    EXPECT_EQ(r.error().code(),
              kind == testing::FaultKind::kNoSpace ? ErrorCode::kResourceExhausted : ErrorCode::kFatal)
        << r.error().ToString();
    EXPECT_NE(r.error().message().find(dir.Sub("db")), std::string::npos) << r.error().message();
    EXPECT_GT(fs->injected(), 0u);
    EXPECT_FALSE(outbox->Get(devices, "during")->has_value()) << "no partial state";
    auto keys = testing::RawKeys(*outbox, *s);
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_EQ(keys[0].second, 1u);
    EXPECT_FALSE(txn->empty()) << "a failed commit keeps the transaction's content";
    fs->ClearFaults();
  }
};

TEST(TransactionFault, NoSpaceWritesNothingAndRecoversWhenSpaceReturns) {
  FaultCase c;
  c.Open();
  auto txn = c.outbox->Begin();
  c.FailOneCommit(testing::FaultKind::kNoSpace, &txn);
  // The next commit resumes RocksDB itself: no wait for its own recovery.
  ASSERT_OK_AND_ASSIGN(Receipt ok, txn.Commit());
  ASSERT_EQ(ok.events.size(), 1u);
  EXPECT_EQ(ok.events[0].seq, 2u) << "the failed commit assigned no seq";
  EXPECT_EQ(c.outbox->Get(c.devices, "during")->value_or(""), "1");
  EXPECT_EQ(c.outbox->Get(c.devices, "before")->value_or(""), "1");
}

TEST(TransactionFault, IoErrorWritesNothingAndAReopenCarriesOn) {
  FaultCase c;
  c.Open();
  auto txn = c.outbox->Begin();
  c.FailOneCommit(testing::FaultKind::kIOError, &txn);
  auto again = txn.Commit();
  ASSERT_FALSE(again.has_value()) << "RocksDB refuses writes after EIO on its log";
  EXPECT_EQ(again.error().code(), ErrorCode::kFatal) << again.error().ToString();
  EXPECT_NE(again.error().message().find("reopen"), std::string::npos) << again.error().message();
  (void)c.outbox->Close();
  c.outbox.reset();
  c.Open();
  EXPECT_EQ(c.outbox->Get(c.devices, "before")->value_or(""), "1") << "nothing committed before is lost";
  EXPECT_FALSE(c.outbox->Get(c.devices, "during")->has_value());
  auto retry = c.outbox->Begin();
  ASSERT_OK(retry.Put(c.devices, "during", "2"));
  ASSERT_OK(retry.Enqueue(*c.s, {.type = "t"}));
  ASSERT_OK_AND_ASSIGN(Receipt ok, retry.Commit());
  EXPECT_GT(ok.events.at(0).seq, 1u);
  auto keys = testing::RawKeys(*c.outbox, *c.s);
  EXPECT_EQ(keys.size(), 2u);
}

}  // namespace
}  // namespace jaiminho
