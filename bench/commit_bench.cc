// Commit cost: one business put + one event, ours vs a raw RocksDB WriteBatch
// of the same bytes vs SQLite (business row + outbox row in one transaction).
//
//   commit/nosync/{ours,rocksdb,sqlite}            one thread, no sync (SQLite synchronous=OFF)
//   commit/sync/{ours,rocksdb,sqlite}/threads:N    sync=true (SQLite synchronous=FULL)
//
// With N threads every thread commits on the same database: ours merges them
// in its group commit; raw is RocksDB's own group commit (N threads calling
// DB::Write with sync=true); SQLite has one writer at a time, so its threads
// share one connection behind a mutex (the best an SQLite outbox can do
// without batching commits itself).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <atomic>
#include <mutex>

#include "harness.h"
#include "report.h"

namespace jbench {
namespace {

// Set by thread 0 before the timed loop, reset by it after; the other threads
// only touch it inside the loop (Google Benchmark starts and ends the loop of
// all threads together).
struct Shared {
  std::unique_ptr<Ours> ours;
  std::unique_ptr<Raw> raw;
  std::unique_ptr<Sqlite> sql;
  std::mutex sql_mu;
  std::atomic<uint64_t> raw_seq{0};
} g;

// A 16-byte business key, unique per thread and iteration, without allocating.
struct KeyGen {
  explicit KeyGen(int thread) : next(static_cast<uint64_t>(thread) * 10'000'000'000ULL) {}
  std::string_view Next() {
    auto r = fmt::format_to_n(buf, sizeof buf, "dev/{:012d}", next++);
    return {buf, r.size};
  }
  uint64_t next;
  char buf[16];
};

void CommitOurs(benchmark::State& st, bool sync) {
  if (st.thread_index() == 0) g.ours = OpenOurs(fmt::format("commit-ours-{}", sync ? "sync" : "nosync"));
  const std::string value = Bytes(config().payload, 'b');
  const std::string payload = Bytes(config().payload, 'e');
  KeyGen keys(st.thread_index());
  for (auto _ : st) {
    Ours& o = *g.ours;
    std::string_view key = keys.Next();
    auto txn = o.outbox->Begin();
    Check(txn.Put(o.business, key, value), "put");
    Check(txn.Enqueue(*o.stream, {.type = kType, .key = key, .payload = payload}), "enqueue");
    auto r = txn.Commit({.sync = sync});
    if (!r) Die("commit: " + r.error().ToString());
  }
  st.SetItemsProcessed(st.iterations());
  if (st.thread_index() == 0) g.ours.reset();
}

void CommitRaw(benchmark::State& st, bool sync) {
  if (st.thread_index() == 0) {
    g.raw = OpenRaw(fmt::format("commit-raw-{}", sync ? "sync" : "nosync"));
    g.raw_seq = 0;
  }
  const std::string value = Bytes(config().payload, 'b');
  const std::string& envelope = EnvelopeBytes();
  KeyGen keys(st.thread_index());
  rocksdb::WriteBatch batch;
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  char event_key[9] = {'p'};
  for (auto _ : st) {
    Raw& r = *g.raw;
    uint64_t seq = g.raw_seq.fetch_add(1, std::memory_order_relaxed) + 1;
    for (int i = 0; i < 8; ++i)
      event_key[1 + i] = static_cast<char>(seq >> (56 - 8 * i));
    std::string_view key = keys.Next();
    batch.Clear();
    batch.Put(r.business, rocksdb::Slice(key.data(), key.size()), value);
    batch.Put(r.stream, rocksdb::Slice(event_key, sizeof event_key), envelope);
    Check(r.db->Write(wo, &batch), "raw write");
  }
  st.SetItemsProcessed(st.iterations());
  if (st.thread_index() == 0) g.raw.reset();
}

void CommitSqlite(benchmark::State& st, bool sync) {
  if (st.thread_index() == 0) {
    g.sql = OpenSqlite(fmt::format("commit-sqlite-{}", sync ? "sync" : "nosync"),
                       sync ? SqliteSync::kFull : SqliteSync::kOff);
  }
  const std::string value = Bytes(config().payload, 'b');
  const std::string payload = Bytes(config().payload, 'e');
  KeyGen keys(st.thread_index());
  for (auto _ : st) {
    std::string_view key = keys.Next();
    std::lock_guard l(g.sql_mu);
    g.sql->Commit(key, value, payload);
  }
  st.SetItemsProcessed(st.iterations());
  if (st.thread_index() == 0) g.sql.reset();
}

struct System {
  const char* name;
  const char* label;
  void (*fn)(benchmark::State&, bool);
};
constexpr System kSystems[] = {
    {"ours", "jaiminho", CommitOurs},
    {"rocksdb", "raw RocksDB", CommitRaw},
    {"sqlite", "SQLite", CommitSqlite},
};

}  // namespace

void RegisterCommitBenchmarks() {
  Report& report = Report::Get();
  // (1) no sync, one thread.
  for (const System& s : kSystems) {
    benchmark::RegisterBenchmark(fmt::format("commit/nosync/{}", s.name).c_str(), s.fn, false)->UseRealTime();
  }
  const std::string section1 = fmt::format("Commit, no sync, 1 thread, {}-byte payload", config().payload);
  report.Compare({.name = "commit_nosync_1t_vs_rocksdb",
                  .section = section1,
                  .ours = Key("commit/nosync/ours"),
                  .baseline = Key("commit/nosync/rocksdb"),
                  .label = "ours / raw RocksDB WriteBatch",
                  .target = 0.85});
  report.Compare({.name = "commit_nosync_1t_vs_sqlite",
                  .section = section1,
                  .ours = Key("commit/nosync/ours"),
                  .baseline = Key("commit/nosync/sqlite"),
                  .label = "ours / SQLite (WAL, synchronous=OFF)",
                  .target = 4.0});

  // (2) sync=true at several thread counts.
  for (const System& s : kSystems) {
    auto* b = benchmark::RegisterBenchmark(fmt::format("commit/sync/{}", s.name).c_str(), s.fn, true);
    for (int t : config().threads)
      b->Threads(t);
    b->UseRealTime();
    for (int t : config().threads) {
      report.Plot({.file = "commit_threads.dat",
                   .column = s.name,
                   .x = static_cast<double>(t),
                   .key = Key(fmt::format("commit/sync/{}", s.name), t)});
    }
  }
  const std::string section2 = "Commit, sync=true (SQLite synchronous=FULL)";
  for (int t : config().threads) {
    std::optional<double> vs_raw, vs_sqlite;
    if (t == 64) {  // the targets
      vs_raw = 1.5;
      vs_sqlite = 3.0;
    }
    report.Compare({.name = fmt::format("commit_sync_{}t_vs_rocksdb", t),
                    .section = section2,
                    .ours = Key("commit/sync/ours", t),
                    .baseline = Key("commit/sync/rocksdb", t),
                    .label = fmt::format("{} threads: ours / RocksDB group commit", t),
                    .target = vs_raw});
    report.Compare({.name = fmt::format("commit_sync_{}t_vs_sqlite", t),
                    .section = section2,
                    .ours = Key("commit/sync/ours", t),
                    .baseline = Key("commit/sync/sqlite", t),
                    .label = fmt::format("{} threads: ours / SQLite", t),
                    .target = vs_sqlite});
  }
}

}  // namespace jbench
