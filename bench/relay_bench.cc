// Relay throughput: a backlog of N committed events delivered to a no-op
// publisher, acknowledged by deleting them (delete-after-send) or by keeping
// them as sent (mark-sent).
//
//   relay/{delete,marksent}/{ours,rocksdb,sqlite}/backlog:N
//
// ours:    Relay::RunOnce() with default RelayOptions (batches of 256).
// rocksdb: the raw lower bound: one iterator over the pending range, the value
//          read, every 256 events one WriteBatch with a DeleteRange of the run
//          (mark-sent: plus a Put of each value under its sent key).
// sqlite:  select-in-order + delete batch loop: per transaction
//          SELECT ... WHERE id > last AND sent_at IS NULL ORDER BY id LIMIT 256,
//          then DELETE (or UPDATE sent_at) of that id range.
//
// The backlog is written before the timed pass (ours through transactions of
// 1000 events, raw and SQLite the same bytes in batches of 1000), and RocksDB's
// flushes and compactions are left to finish; only the pass is timed.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <chrono>

#include "harness.h"
#include "report.h"

namespace jbench {
namespace {

constexpr size_t kBatch = 256;  // RelayOptions::batch_size's default

class NoopPublisher final : public jaiminho::Publisher {
 public:
  jaiminho::Status Publish(const jaiminho::Event&) override { return {}; }
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void RelayOurs(benchmark::State& st, size_t backlog, bool del) {
  auto publisher = std::make_shared<NoopPublisher>();
  for (auto _ : st) {
    auto ours = OpenOurs("relay-ours", {.delete_after_send = del});
    FillOurs(*ours, backlog);
    WaitForBackgroundWork(ours->outbox->db());
    jaiminho::Relay relay(*ours->outbox, publisher);
    auto t0 = std::chrono::steady_clock::now();
    jaiminho::RelayStats stats = Check(relay.RunOnce(), "relay");
    st.SetIterationTime(Seconds(std::chrono::steady_clock::now() - t0));
    if (stats.published != backlog) Die(fmt::format("relay published {} of {}", stats.published, backlog));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * backlog));
}

uint64_t SeqOf(const rocksdb::Slice& key) {
  uint64_t seq = 0;
  for (int i = 1; i <= 8; ++i)
    seq = (seq << 8) | static_cast<uint8_t>(key[i]);
  return seq;
}

void RelayRaw(benchmark::State& st, size_t backlog, bool del) {
  for (auto _ : st) {
    auto raw = OpenRaw("relay-raw");
    FillRaw(*raw, backlog);
    WaitForBackgroundWork(raw->db.get());
    auto t0 = std::chrono::steady_clock::now();
    rocksdb::ReadOptions ro;
    const std::string upper = "q";  // the first key after the pending range
    rocksdb::Slice ub(upper);
    ro.iterate_upper_bound = &ub;
    std::unique_ptr<rocksdb::Iterator> it(raw->db->NewIterator(ro, raw->stream));
    rocksdb::WriteBatch batch;
    size_t n = 0, in_batch = 0;
    uint64_t first = 0, last = 0, touched = 0;
    auto ack = [&] {
      batch.DeleteRange(raw->stream, PendingKey(first), PendingKey(last + 1));
      Check(raw->db->Write(rocksdb::WriteOptions(), &batch), "raw ack");
      batch.Clear();
      in_batch = 0;
    };
    for (it->Seek("p"); it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key(), v = it->value();
      touched += v.size() + static_cast<uint8_t>(v[0]);  // the no-op publisher reads the value
      last = SeqOf(k);
      if (in_batch++ == 0) first = last;
      if (!del) batch.Put(raw->stream, SentKey(last), v);
      ++n;
      if (in_batch == kBatch) ack();
    }
    Check(it->status(), "raw iterate");
    if (in_batch > 0) ack();
    st.SetIterationTime(Seconds(std::chrono::steady_clock::now() - t0));
    benchmark::DoNotOptimize(touched);
    if (n != backlog) Die(fmt::format("raw pass saw {} of {}", n, backlog));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * backlog));
}

void RelaySqlite(benchmark::State& st, size_t backlog, bool del) {
  const std::string payload = Bytes(config().payload, 'e');
  for (auto _ : st) {
    auto sql = OpenSqlite("relay-sqlite", SqliteSync::kOff);
    sql->Fill(backlog, payload);
    auto t0 = std::chrono::steady_clock::now();
    Stmt begin(sql->db(), "BEGIN"), commit(sql->db(), "COMMIT");
    Stmt select(sql->db(), fmt::format("SELECT id, stream, type, key, payload, encoding, created_at FROM outbox "
                                       "WHERE id > ?1 AND sent_at IS NULL ORDER BY id LIMIT {}",
                                       kBatch));
    Stmt ack(sql->db(), del ? "DELETE FROM outbox WHERE id > ?1 AND id <= ?2"
                            : "UPDATE outbox SET sent_at = ?3 WHERE id > ?1 AND id <= ?2");
    int64_t last = 0;
    size_t n = 0;
    uint64_t touched = 0;
    while (true) {
      begin.Step();
      select.Bind(1, last);
      int64_t id = last;
      while (select.Step()) {
        id = sqlite3_column_int64(select.get(), 0);
        auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(select.get(), 4));
        touched += static_cast<uint64_t>(sqlite3_column_bytes(select.get(), 4)) + (p ? p[0] : 0);
        touched += static_cast<uint64_t>(sqlite3_column_bytes(select.get(), 2) + sqlite3_column_bytes(select.get(), 3));
        ++n;
      }
      if (id == last) {
        commit.Step();
        break;
      }
      ack.Bind(1, last);
      ack.Bind(2, id);
      if (!del) ack.Bind(3, NowMicros());
      ack.Step();
      commit.Step();
      last = id;
    }
    st.SetIterationTime(Seconds(std::chrono::steady_clock::now() - t0));
    benchmark::DoNotOptimize(touched);
    if (n != backlog) Die(fmt::format("sqlite loop saw {} of {}", n, backlog));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * backlog));
}

std::string Short(size_t n) {
  if (n >= 1'000'000 && n % 1'000'000 == 0) return fmt::format("{}M", n / 1'000'000);
  if (n >= 1000 && n % 1000 == 0) return fmt::format("{}k", n / 1000);
  return fmt::format("{}", n);
}

}  // namespace

void RegisterRelayBenchmarks() {
  Report& report = Report::Get();
  struct System {
    const char* name;
    void (*fn)(benchmark::State&, size_t, bool);
  };
  const System systems[] = {{"ours", RelayOurs}, {"rocksdb", RelayRaw}, {"sqlite", RelaySqlite}};
  const auto& backlogs = config().backlogs;
  for (bool del : {true, false}) {
    const char* mode = del ? "delete" : "marksent";
    const std::string section =
        fmt::format("Relay, no-op publisher, {}", del ? "delete-after-send" : "mark-sent (kept as sent)");
    for (size_t n : backlogs) {
      for (const System& s : systems) {
        std::string name = fmt::format("relay/{}/{}/backlog:{}", mode, s.name, n);
        benchmark::RegisterBenchmark(name.c_str(), s.fn, n, del)
            ->UseManualTime()
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
        report.Plot({.file = "relay_backlog.dat",
                     .column = fmt::format("{}_{}", s.name, mode),
                     .x = static_cast<double>(n),
                     .key = name});
      }
      std::string ours = fmt::format("relay/{}/ours/backlog:{}", mode, n);
      report.Compare({.name = fmt::format("relay_{}_{}_vs_rocksdb", mode, Short(n)),
                      .section = section,
                      .ours = ours,
                      .baseline = fmt::format("relay/{}/rocksdb/backlog:{}", mode, n),
                      .label = fmt::format("backlog {}: ours / raw iterate+delete pass", Short(n)),
                      .target = del ? std::optional<double>(0.5) : std::nullopt});
      report.Compare(
          {.name = fmt::format("relay_{}_{}_vs_sqlite", mode, Short(n)),
           .section = section,
           .ours = ours,
           .baseline = fmt::format("relay/{}/sqlite/backlog:{}", mode, n),
           .label = fmt::format("backlog {}: ours / SQLite select+{} loop", Short(n), del ? "delete" : "update"),
           .target = del ? std::optional<double>(1.5) : std::nullopt});
    }
    if (backlogs.size() > 1) {
      size_t lo = backlogs.front(), hi = backlogs.back();
      report.Compare({.name = fmt::format("relay_{}_scaling_{}_vs_{}", mode, Short(hi), Short(lo)),
                      .section = section,
                      .ours = fmt::format("relay/{}/ours/backlog:{}", mode, hi),
                      .baseline = fmt::format("relay/{}/ours/backlog:{}", mode, lo),
                      .label = fmt::format("ours at backlog {} / ours at {}", Short(hi), Short(lo)),
                      .target = del ? std::optional<double>(0.8) : std::nullopt});
    }
  }
}

}  // namespace jbench
