// Group commit under concurrency: seqs are assigned in commit order and become
// visible in that order: a reader never sees seq N+1 of a stream without N.
#include <thread>

#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::TempDir;

std::vector<uint64_t> PendingSeqs(Outbox& outbox, const Stream& s) {
  std::vector<uint64_t> out;
  for (auto [tag, seq] : testing::RawKeys(outbox, s)) {
    if (tag == 'p') out.push_back(seq);
  }
  return out;
}

void RunConcurrentCommits(bool sync) {
  TempDir dir;
  auto outbox = MustOpen(dir.Sub("db"), {.business_families = {{.name = "state"}}});
  ASSERT_NE(outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(BusinessFamily state, outbox->FindBusinessFamily("state"));
  ASSERT_OK_AND_ASSIGN(Stream * a, outbox->OpenStream("a"));
  ASSERT_OK_AND_ASSIGN(Stream * b, outbox->OpenStream("b", {.strategy = Strategy::kKeepOrder}));

  constexpr int kThreads = 16;
  const int per_thread = sync ? 150 : 600;
  std::atomic<bool> done{false};
  std::atomic<int> scans{0};
  std::atomic<int> violations{0};
  std::string violation_text;
  std::mutex violation_mu;

  std::thread reader([&] {
    while (!done.load()) {
      for (Stream* s : {a, b}) {
        auto seqs = PendingSeqs(*outbox, *s);
        for (size_t i = 0; i < seqs.size(); ++i) {
          if (seqs[i] != i + 1) {
            violations.fetch_add(1);
            std::lock_guard l(violation_mu);
            violation_text =
                "stream " + s->name() + ": position " + std::to_string(i) + " holds seq " + std::to_string(seqs[i]);
            break;
          }
        }
      }
      scans.fetch_add(1);
    }
  });

  std::vector<std::vector<Receipt>> receipts(kThreads);
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto txn = outbox->Begin();
        std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        bool ok = txn.Put(state, key, key).has_value() &&
                  txn.Enqueue((i % 2 == 0) ? *a : *b, {.type = "e", .key = key, .payload = key}).has_value();
        if (i % 5 == 0) ok = ok && txn.Enqueue(*a, {.type = "extra", .key = key, .payload = key}).has_value();
        auto r = ok ? txn.Commit({.sync = sync}) : Result<Receipt>(MakeError(ErrorCode::kInternal, "build"));
        if (!r) {
          failures.fetch_add(1);
          continue;
        }
        receipts[t].push_back(std::move(*r));
      }
    });
  }
  for (auto& w : writers)
    w.join();
  done.store(true);
  reader.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(violations.load(), 0) << violation_text;
  EXPECT_GT(scans.load(), 0);

  // Every acknowledged commit: its business write and its events, at the seqs
  // the receipt gave.
  std::map<std::string, std::set<uint64_t>> seen;
  size_t events = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < receipts[t].size(); ++i) {
      for (const EventId& id : receipts[t][i].events) {
        EXPECT_TRUE(seen[std::string(id.stream)].insert(id.seq).second) << "seq given twice: " << id.ToString();
        ++events;
        ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream(id.stream));
        ASSERT_OK_AND_ASSIGN(StoredEvent e, outbox->FindEvent(*s, id.seq));
        std::string key(e->key);
        ASSERT_OK_AND_ASSIGN(auto v, outbox->Get(state, key));
        EXPECT_EQ(v, key);
      }
    }
  }
  for (Stream* s : {a, b}) {
    auto seqs = PendingSeqs(*outbox, *s);
    ASSERT_EQ(seqs.size(), seen[s->name()].size());
    for (size_t i = 0; i < seqs.size(); ++i)
      ASSERT_EQ(seqs[i], i + 1) << s->name();
  }
  ::testing::Test::RecordProperty("events", static_cast<int>(events));
  ::testing::Test::RecordProperty("scans", scans.load());
}

TEST(CommitConcurrency, SixteenThreadsTwoStreamsReaderSeesGapFreePrefixSync) {
  RunConcurrentCommits(true);
}
TEST(CommitConcurrency, SixteenThreadsTwoStreamsReaderSeesGapFreePrefixNoSync) {
  RunConcurrentCommits(false);
}

}  // namespace
}  // namespace jaiminho
