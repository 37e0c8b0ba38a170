// The inbox (issue 19): a consumer's transaction that receives one event id
// and makes the business write its handler makes, against the same business
// write alone and against an SQLite processed-messages table.
//
//   inbox/receive/ours         Begin, Inbox::Receive(txn, raw id), Put, Commit
//   inbox/business_only/ours   Begin, Put, Commit: the same write without the inbox
//   inbox/receive/sqlite       BEGIN, INSERT OR IGNORE INTO processed(id), and when
//                              it inserted a row the business upsert, COMMIT
//   inbox/state                10M ids (100k with --jm_quick) from 4 streams, 1% out of order, received
//                              in transactions of 1000: the inbox's state after
//
// One thread, no sync (OutboxOptions::durability kNone; SQLite WAL with
// synchronous=OFF): with a sync per commit every system measures its fsync.
// Ids arrive as the consumer adapters hand them over, as text
// ("<db hex>/<stream>/<seq>"), round-robin over 4 streams, each in seq order.
//
// Counters of inbox/state: state_B (key and value bytes of the inbox's column
// family, read back after Close from the files), records, above_ranges and
// gaps (from Inbox::State before Close).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <rocksdb/db.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "report.h"

namespace jbench {
namespace {

constexpr std::array<std::string_view, 4> kStreams = {"fills", "orders", "quotes", "risk"};
constexpr size_t kStateBatch = 1000;

// The producer's database id and the ids' text, made once per run.
class Ids {
 public:
  Ids() {
    for (size_t i = 0; i < producer_.bytes.size(); ++i)
      producer_.bytes[i] = static_cast<uint8_t>(0xa0 + i);
    prefix_ = producer_.ToHex() + "/";
  }
  // Id number n: stream n % 4, seq n / 4 + 1.
  std::string_view For(uint64_t n) {
    text_.assign(prefix_);
    fmt::format_to(std::back_inserter(text_), "{}/{}", kStreams[n % kStreams.size()], n / kStreams.size() + 1);
    return text_;
  }

 private:
  jaiminho::DatabaseId producer_;
  std::string prefix_;
  std::string text_;
};

std::unique_ptr<Ours> OpenConsumer(std::string_view name) {
  return OpenOurs(name, {.durability = jaiminho::Durability::kNone});
}

void ReceiveOurs(benchmark::State& st) {
  std::unique_ptr<Ours> ours = OpenConsumer("inbox-ours");
  auto inbox = Check(jaiminho::Inbox::Open(*ours->outbox), "open inbox");
  Ids ids;
  Workload w(0);
  uint64_t n = 0;
  for (auto _ : st) {
    w.Next();
    jaiminho::Transaction txn = ours->outbox->Begin();
    auto outcome = inbox->Receive(txn, ids.For(n++));
    if (!outcome || *outcome != jaiminho::ReceiveOutcome::kNew) Die("receive: not new");
    Check(txn.Put(ours->business, w.key, w.value), "put");
    Check(txn.Commit().map([](auto&&) {}), "commit");
  }
  st.SetItemsProcessed(st.iterations());
}

void BusinessOnlyOurs(benchmark::State& st) {
  std::unique_ptr<Ours> ours = OpenConsumer("inbox-business-only");
  Ids ids;
  Workload w(0);
  uint64_t n = 0;
  for (auto _ : st) {
    w.Next();
    benchmark::DoNotOptimize(ids.For(n++));  // the id arrives all the same
    jaiminho::Transaction txn = ours->outbox->Begin();
    Check(txn.Put(ours->business, w.key, w.value), "put");
    Check(txn.Commit().map([](auto&&) {}), "commit");
  }
  st.SetItemsProcessed(st.iterations());
}

void ReceiveSqlite(benchmark::State& st) {
  std::unique_ptr<Sqlite> sql = OpenSqlite("inbox-sqlite", SqliteSync::kOff);
  sql->Exec("CREATE TABLE processed(id TEXT PRIMARY KEY) WITHOUT ROWID");
  Stmt begin(sql->db(), "BEGIN");
  Stmt commit(sql->db(), "COMMIT");
  Stmt mark(sql->db(), "INSERT OR IGNORE INTO processed(id) VALUES(?1)");
  Stmt put(sql->db(), "INSERT OR REPLACE INTO business(key, value) VALUES(?1, ?2)");
  Ids ids;
  Workload w(0);
  uint64_t n = 0;
  for (auto _ : st) {
    w.Next();
    begin.Step();
    begin.Reset();
    mark.Bind(1, ids.For(n++));
    mark.Step();
    mark.Reset();
    if (sqlite3_changes(sql->db()) != 1) Die("sqlite: the id was not new");
    put.Bind(1, w.key);
    put.BindBlob(2, w.value);
    put.Step();
    put.Reset();
    commit.Step();
    commit.Reset();
  }
  st.SetItemsProcessed(st.iterations());
}

// Key and value bytes, and records, of `family` in the database at `path`
// (closed), read from its files.
std::pair<double, double> FamilySize(const std::string& path, const std::string& family) {
  std::vector<std::string> names;
  Check(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names), "list families");
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& n : names)
    families.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  Check(rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path, families, &handles, &raw), "open read-only");
  std::unique_ptr<rocksdb::DB> db(raw);
  double bytes = 0, records = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != family) continue;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handles[i]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      bytes += static_cast<double>(it->key().size() + it->value().size());
      ++records;
    }
    Check(it->status(), "iterate " + family);
  }
  for (auto* h : handles)
    Check(db->DestroyColumnFamilyHandle(h), "destroy handle");
  return {bytes, records};
}

// Id number i of the state run: in order, except that 1% of the pairs
// (2k, 2k+1) of a stream arrive swapped (a publish-on-commit stream's
// out-of-order arrivals).
uint64_t StateOrder(uint64_t i) {
  const uint64_t pair = i / (2 * kStreams.size());
  // A fixed pseudo-random choice per pair (splitmix64's finalizer).
  uint64_t z = pair + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  if (z % 100 != 0) return i;
  const uint64_t within = i % (2 * kStreams.size());  // stream = within % 4, half = within / 4
  const uint64_t other = within < kStreams.size() ? within + kStreams.size() : within - kStreams.size();
  return pair * 2 * kStreams.size() + other;
}

void InboxState(benchmark::State& st, uint64_t events) {
  for (auto _ : st) {
    std::unique_ptr<Ours> ours = OpenConsumer("inbox-state");
    const std::string path = ours->path + "/db";  // OpenOurs' database
    double above = 0, gaps = 0;
    {
      auto inbox = Check(jaiminho::Inbox::Open(*ours->outbox), "open inbox");
      Ids ids;
      uint64_t i = 0;
      while (i < events) {
        jaiminho::Transaction txn = ours->outbox->Begin();
        for (size_t k = 0; k < kStateBatch && i < events; ++k, ++i) {
          auto outcome = inbox->Receive(txn, ids.For(StateOrder(i)));
          if (!outcome || *outcome != jaiminho::ReceiveOutcome::kNew) Die("state: receive not new");
        }
        Check(txn.Commit().map([](auto&&) {}), "state commit");
      }
      for (const jaiminho::InboxStreamState& s : inbox->State()) {
        above += static_cast<double>(s.above.size());
        gaps += static_cast<double>(s.gaps.size());
        if (s.watermark != events / kStreams.size())
          Die(fmt::format("state: watermark {} of {}", s.watermark, s.stream));
      }
    }
    Check(ours->outbox->Close(), "close");
    auto [bytes, records] = FamilySize(path, "jaiminho.inbox");
    ours.reset();
    st.counters["state_B"] = bytes;
    st.counters["records"] = records;
    st.counters["above_ranges"] = above;
    st.counters["gaps"] = gaps;
  }
  st.SetItemsProcessed(static_cast<int64_t>(events) * st.iterations());
}

}  // namespace

void RegisterInboxBenchmarks() {
  Report& report = Report::Get();
  benchmark::RegisterBenchmark("inbox/receive/ours", ReceiveOurs)->UseRealTime();
  benchmark::RegisterBenchmark("inbox/business_only/ours", BusinessOnlyOurs)->UseRealTime();
  benchmark::RegisterBenchmark("inbox/receive/sqlite", ReceiveSqlite)->UseRealTime();
  const uint64_t state_events = config().quick ? 100'000 : 10'000'000;
  benchmark::RegisterBenchmark("inbox/state", [state_events](benchmark::State& st) { InboxState(st, state_events); })
      ->Iterations(1)
      ->Unit(benchmark::kSecond)
      ->UseRealTime();

  const std::string section = "Inbox: receive an id and make the business write, 1 thread, no sync";
  report.Compare({.name = "inbox_vs_business_write",
                  .section = section,
                  .ours = Key("inbox/receive/ours"),
                  .baseline = Key("inbox/business_only/ours"),
                  .label = "inbox receive + business write / the business write alone",
                  .target = 0.8});
  report.Compare({.name = "inbox_vs_sqlite",
                  .section = section,
                  .ours = Key("inbox/receive/ours"),
                  .baseline = Key("inbox/receive/sqlite"),
                  .label = "ours / SQLite INSERT OR IGNORE processed(id) + business upsert",
                  .target = 3.0});
  report.Value({.name = "inbox_state_bytes",
                .key = Key("inbox/state"),
                .counter = "state_B",
                .label = fmt::format("inbox state on disk after {} ids from 4 streams, 1% out of order (bytes)",
                                     ShortCount(static_cast<size_t>(state_events))),
                .max_target = 1024});
}

}  // namespace jbench
