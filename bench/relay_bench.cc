// Relay throughput: a backlog of N committed events delivered to a no-op
// publisher, acknowledged by deleting them (delete-after-send) or by keeping
// them as sent (mark-sent).
//
//   relay/{delete,marksent}/{ours,rocksdb,sqlite}/backlog:N
//   relay/rawread/backlog:N
//   relay/{delete,marksent}/ours_flushed/backlog:N (the smallest N only)
//
// ours:    Relay::RunOnce() with default RelayOptions (batches of 256).
// ours_flushed: the same, the backlog flushed to table files before the pass
//          (relay_*_scaling_*_flushed: the largest backlog against it).
// rocksdb: the raw lower bound: one iterator over the pending range, the value
//          read, every 256 events one WriteBatch with a DeleteRange of the run
//          (mark-sent: plus a Put of each value under its sent key).
// sqlite:  select-in-order + delete batch loop: per transaction
//          SELECT ... WHERE id > last AND sent_at IS NULL ORDER BY id LIMIT 256,
//          then DELETE (or UPDATE sent_at) of that id range.
// rawread: the raw read-only pass, the floor of any relay that must read each
//          record: the same records (count, value bytes, one column family)
//          iterated from a cursor, each value read, and per 256 events one
//          small write (a Put of the cursor key); no write per event. Both
//          modes are compared with it (relay_{delete,marksent}_N_vs_rawread).
//
// Write volume per delivered event (one repetition; N = --jm_writevol_events):
//
//   relay/writevol/{ours,rocksdb,sqlite}_{delete,marksent}/events:N
//   relay/writevol/rawread/events:N
//
// The backlog is written, then flushed (every column family) and left to
// settle, so the fill's own writes are not counted; then the pass (timed as
// above), then a flush of every column family and a wait for the flushes and
// the compactions they trigger, so that the writes the pass deferred to its
// memtables are counted (compactions that only later writes would trigger are
// not). RocksDB: the statistics tickers WAL_FILE_BYTES + FLUSH_WRITE_BYTES +
// COMPACT_WRITE_BYTES over that window. SQLite: WAL frames written (24-byte
// header + page) + pages checkpointed into the database file (its automatic
// checkpoints and a final TRUNCATE one), counted by a WAL hook (harness.h).
// Divided by the events delivered. committed_B is the bytes of one committed
// event in the stream family (key + envelope, the same for every system);
// fill_written_B what committing the backlog wrote per event, counted the same
// way.
//
// The backlog is written before the timed pass (ours through transactions of
// 1000 events, raw and SQLite the same bytes in batches of 1000), and RocksDB's
// flushes and compactions are left to finish; only the pass is timed.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"
#include "report.h"

namespace jbench {
namespace {

// `flushed`: the backlog is flushed to table files before the pass, as a
// large backlog is (the memtables hold 16 MiB, about 40k events).
void RelayOursPass(benchmark::State& st, size_t backlog, bool del, bool flushed) {
  auto publisher = std::make_shared<NoopPublisher>();
  double cpu = 0;
  for (auto _ : st) {
    auto ours = OpenOurs("relay-ours", {.delete_after_send = del});
    FillOurs(*ours, backlog);
    if (flushed) {
      FlushAndSettle(ours->outbox->db());
    } else {
      WaitForBackgroundWork(ours->outbox->db());
    }
    auto relay = Check(jaiminho::Relay::Make(*ours->outbox, publisher), "relay");
    auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = ThreadCpuSeconds();
    jaiminho::RelayStats stats = Check(relay->RunOnce(), "relay");
    st.SetIterationTime(SecondsSince(t0));
    cpu += ThreadCpuSeconds() - cpu0;
    if (stats.published != backlog) Die(fmt::format("relay published {} of {}", stats.published, backlog));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * backlog));
  st.counters["pass_cpu_ms"] = cpu * 1e3 / static_cast<double>(st.iterations());
}

void RelayOurs(benchmark::State& st, size_t backlog, bool del) {
  RelayOursPass(st, backlog, del, false);
}

void RelayOursFlushed(benchmark::State& st, size_t backlog, bool del) {
  RelayOursPass(st, backlog, del, true);
}

void RelayRaw(benchmark::State& st, size_t backlog, bool del) {
  double cpu = 0;
  for (auto _ : st) {
    auto raw = OpenRaw("relay-raw");
    FillRaw(*raw, backlog);
    WaitForBackgroundWork(raw->db.get());
    auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = ThreadCpuSeconds();
    size_t n = RawRelayPass(*raw, del);
    st.SetIterationTime(SecondsSince(t0));
    cpu += ThreadCpuSeconds() - cpu0;
    if (n != backlog) Die(fmt::format("raw pass saw {} of {}", n, backlog));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * backlog));
  st.counters["pass_cpu_ms"] = cpu * 1e3 / static_cast<double>(st.iterations());
}

void RelaySqlite(benchmark::State& st, size_t backlog, bool del) {
  double cpu = 0;
  for (auto _ : st) {
    auto sql = OpenSqlite("relay-sqlite", SqliteSync::kOff);
    sql->Fill(backlog);
    auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = ThreadCpuSeconds();
    size_t n = sql->RelayLoop(del, NowMicros());
    st.SetIterationTime(SecondsSince(t0));
    cpu += ThreadCpuSeconds() - cpu0;
    if (n != backlog) Die(fmt::format("sqlite loop saw {} of {}", n, backlog));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * backlog));
  st.counters["pass_cpu_ms"] = cpu * 1e3 / static_cast<double>(st.iterations());
}

void RelayRawRead(benchmark::State& st, size_t backlog, bool /*del*/) {
  double cpu = 0;
  for (auto _ : st) {
    auto raw = OpenRaw("relay-rawread");
    FillRaw(*raw, backlog);
    WaitForBackgroundWork(raw->db.get());
    auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = ThreadCpuSeconds();
    size_t n = RawReadPass(*raw);
    st.SetIterationTime(SecondsSince(t0));
    cpu += ThreadCpuSeconds() - cpu0;
    if (n != backlog) Die(fmt::format("raw read pass saw {} of {}", n, backlog));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * backlog));
  st.counters["pass_cpu_ms"] = cpu * 1e3 / static_cast<double>(st.iterations());
}

// --- Write volume.

void SetVolume(benchmark::State& st, const WriteVolume& fill, const WriteVolume& pass, size_t n) {
  const auto per = [n](double bytes) { return bytes / static_cast<double>(n); };
  st.SetItemsProcessed(static_cast<int64_t>(n));
  st.counters["written_B"] = per(pass.total());
  st.counters["wal_B"] = per(pass.wal);
  st.counters["flush_B"] = per(pass.flush);
  st.counters["compact_B"] = per(pass.compact);
  st.counters["fill_written_B"] = per(fill.total());
  st.counters["committed_B"] = static_cast<double>(EventBytes());
}

void VolumeOurs(benchmark::State& st, size_t n, bool del) {
  auto stats = NewTickerStatistics();
  auto publisher = std::make_shared<NoopPublisher>();
  for (auto _ : st) {
    auto ours = OpenOurs("writevol-ours", {.delete_after_send = del,
                                           .tune_db = [stats](rocksdb::DBOptions& o) { o.statistics = stats; }});
    const WriteVolume opened = Written(*stats);
    FillOurs(*ours, n);
    FlushAndSettle(ours->outbox->db());
    const WriteVolume filled = Written(*stats);
    auto t0 = std::chrono::steady_clock::now();
    auto relay = Check(jaiminho::Relay::Make(*ours->outbox, publisher), "relay");
    jaiminho::RelayStats r = Check(relay->RunOnce(), "relay");
    st.SetIterationTime(SecondsSince(t0));
    if (r.published != n) Die(fmt::format("relay published {} of {}", r.published, n));
    FlushAndSettle(ours->outbox->db());
    SetVolume(st, filled - opened, Written(*stats) - filled, n);
  }
}

void VolumeRaw(benchmark::State& st, size_t n, int mode) {  // 0 delete, 1 mark-sent, 2 read-only
  auto stats = NewTickerStatistics();
  for (auto _ : st) {
    auto raw = OpenRaw("writevol-raw", stats);
    const WriteVolume opened = Written(*stats);
    FillRaw(*raw, n);
    FlushAndSettle(raw->db.get());
    const WriteVolume filled = Written(*stats);
    auto t0 = std::chrono::steady_clock::now();
    size_t done = mode == 2 ? RawReadPass(*raw) : RawRelayPass(*raw, mode == 0);
    st.SetIterationTime(SecondsSince(t0));
    if (done != n) Die(fmt::format("raw pass saw {} of {}", done, n));
    FlushAndSettle(raw->db.get());
    SetVolume(st, filled - opened, Written(*stats) - filled, n);
  }
}

void VolumeSqlite(benchmark::State& st, size_t n, bool del) {
  for (auto _ : st) {
    auto sql = OpenSqlite("writevol-sqlite", SqliteSync::kOff);
    // SQLite's "flush" is its checkpoint: WAL frames copied into the database.
    auto volume = [&] { return WriteVolume{.wal = sql->wal_bytes(), .flush = sql->checkpoint_bytes()}; };
    const WriteVolume opened = volume();
    sql->Fill(n);
    sql->Checkpoint();
    const WriteVolume filled = volume();
    auto t0 = std::chrono::steady_clock::now();
    size_t done = sql->RelayLoop(del, NowMicros());
    st.SetIterationTime(SecondsSince(t0));
    if (done != n) Die(fmt::format("sqlite loop saw {} of {}", done, n));
    sql->Checkpoint();
    SetVolume(st, filled - opened, volume() - filled, n);
  }
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
  const auto iterations = [](size_t n) {
    return static_cast<benchmark::IterationCount>(std::max<size_t>(1, config().relay_min_events / n));
  };
  for (size_t n : backlogs) {
    std::string name = fmt::format("relay/rawread/backlog:{}", n);
    benchmark::RegisterBenchmark(name.c_str(), RelayRawRead, n, false)
        ->UseManualTime()
        ->Iterations(iterations(n))
        ->Unit(benchmark::kMillisecond);
  }
  for (bool del : {true, false}) {
    const char* mode = del ? "delete" : "marksent";
    const std::string section =
        fmt::format("Relay, no-op publisher, {}", del ? "delete-after-send" : "mark-sent (kept as sent)");
    for (size_t n : backlogs) {
      for (const System& s : systems) {
        std::string name = fmt::format("relay/{}/{}/backlog:{}", mode, s.name, n);
        // Small backlogs are delivered several times (a fresh fill each time)
        // so that a pass of a few ms does not stand alone against scheduling
        // noise: at least config().relay_min_events events per measurement.
        benchmark::RegisterBenchmark(name.c_str(), s.fn, n, del)
            ->UseManualTime()
            ->Iterations(iterations(n))
            ->Unit(benchmark::kMillisecond);
        report.Plot({.file = "relay_backlog.dat",
                     .column = fmt::format("{}_{}", s.name, mode),
                     .x = static_cast<double>(n),
                     .key = name});
      }
      std::string ours = fmt::format("relay/{}/ours/backlog:{}", mode, n);
      report.Compare(
          {.name = fmt::format("relay_{}_{}_vs_rocksdb", mode, ShortCount(n)),
           .section = section,
           .ours = ours,
           .baseline = fmt::format("relay/{}/rocksdb/backlog:{}", mode, n),
           .label = fmt::format("backlog {}: ours / raw iterate+{}delete pass", ShortCount(n), del ? "" : "put-sent+"),
           .target = del ? std::optional<double>(0.5) : std::nullopt});
      report.Compare(
          {.name = fmt::format("relay_{}_{}_vs_sqlite", mode, ShortCount(n)),
           .section = section,
           .ours = ours,
           .baseline = fmt::format("relay/{}/sqlite/backlog:{}", mode, n),
           .label = fmt::format("backlog {}: ours / SQLite select+{} loop", ShortCount(n), del ? "delete" : "update"),
           .target = 2.0});
      report.Compare(
          {.name = fmt::format("relay_{}_{}_vs_rawread", mode, ShortCount(n)),
           .section = section,
           .ours = ours,
           .baseline = fmt::format("relay/rawread/backlog:{}", n),
           .label = fmt::format("backlog {}: ours / raw read-only pass (cursor put per batch)", ShortCount(n)),
           .target = 0.6});
    }
    if (backlogs.size() > 1) {
      size_t lo = backlogs.front(), hi = backlogs.back();
      report.Compare({.name = fmt::format("relay_{}_scaling_{}_vs_{}", mode, ShortCount(hi), ShortCount(lo)),
                      .section = section,
                      .ours = fmt::format("relay/{}/ours/backlog:{}", mode, hi),
                      .baseline = fmt::format("relay/{}/ours/backlog:{}", mode, lo),
                      .label = fmt::format("ours at backlog {} / ours at {}", ShortCount(hi), ShortCount(lo)),
                      .target = 0.8});
      // The same with the small backlog read from table files too: how flat
      // the relay is on like storage (the line above also compares RocksDB's
      // memtable with its table files).
      std::string flushed = fmt::format("relay/{}/ours_flushed/backlog:{}", mode, lo);
      benchmark::RegisterBenchmark(flushed.c_str(), RelayOursFlushed, lo, del)
          ->UseManualTime()
          ->Iterations(iterations(lo))
          ->Unit(benchmark::kMillisecond);
      report.Compare({.name = fmt::format("relay_{}_scaling_{}_vs_{}_flushed", mode, ShortCount(hi), ShortCount(lo)),
                      .section = section,
                      .ours = fmt::format("relay/{}/ours/backlog:{}", mode, hi),
                      .baseline = flushed,
                      .label = fmt::format("ours at backlog {} / ours at {} flushed to table files first",
                                           ShortCount(hi), ShortCount(lo))});
    }
  }

  for (size_t n : backlogs) {  // the plot's last column
    report.Plot({.file = "relay_backlog.dat",
                 .column = "rawread",
                 .x = static_cast<double>(n),
                 .key = fmt::format("relay/rawread/backlog:{}", n)});
  }

  // Write volume: one repetition (bytes written vary little between runs).
  const size_t n = config().writevol_events;
  struct Volume {
    std::string system;
    std::string label;
    std::function<void(benchmark::State&)> fn;
    std::optional<double> max_target{};
  };
  const std::vector<Volume> volumes = {
      {"ours_marksent", "ours, mark-sent", [n](auto& st) { VolumeOurs(st, n, false); }, 0.1},
      {"ours_delete", "ours, delete-after-send", [n](auto& st) { VolumeOurs(st, n, true); }},
      {"rocksdb_marksent", "raw iterate+put-sent+delete pass", [n](auto& st) { VolumeRaw(st, n, 1); }},
      {"rocksdb_delete", "raw iterate+delete pass", [n](auto& st) { VolumeRaw(st, n, 0); }},
      {"rawread", "raw read-only pass", [n](auto& st) { VolumeRaw(st, n, 2); }},
      {"sqlite_marksent", "SQLite select+update loop", [n](auto& st) { VolumeSqlite(st, n, false); }},
      {"sqlite_delete", "SQLite select+delete loop", [n](auto& st) { VolumeSqlite(st, n, true); }},
  };
  for (const Volume& v : volumes) {
    std::string name = fmt::format("relay/writevol/{}/events:{}", v.system, n);
    benchmark::RegisterBenchmark(name.c_str(), v.fn)
        ->UseManualTime()
        ->Iterations(1)
        ->Repetitions(1)
        ->Unit(benchmark::kMillisecond);
    report.WriteVolumeOf({.name = fmt::format("writevol_{}_{}", v.system, ShortCount(n)),
                          .key = name,
                          .label = fmt::format("{} ({} events)", v.label, ShortCount(n)),
                          .max_target = v.max_target});
  }
}

}  // namespace jbench
