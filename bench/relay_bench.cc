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

#include <algorithm>
#include <chrono>

#include "harness.h"
#include "report.h"

namespace jbench {
namespace {

void RelayOurs(benchmark::State& st, size_t backlog, bool del) {
  auto publisher = std::make_shared<NoopPublisher>();
  double cpu = 0;
  for (auto _ : st) {
    auto ours = OpenOurs("relay-ours", {.delete_after_send = del});
    FillOurs(*ours, backlog);
    WaitForBackgroundWork(ours->outbox->db());
    jaiminho::Relay relay(*ours->outbox, publisher);
    auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = ThreadCpuSeconds();
    jaiminho::RelayStats stats = Check(relay.RunOnce(), "relay");
    st.SetIterationTime(SecondsSince(t0));
    cpu += ThreadCpuSeconds() - cpu0;
    if (stats.published != backlog) Die(fmt::format("relay published {} of {}", stats.published, backlog));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * backlog));
  st.counters["pass_cpu_ms"] = cpu * 1e3 / static_cast<double>(st.iterations());
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
        // Small backlogs are delivered several times (a fresh fill each time)
        // so that a pass of a few ms does not stand alone against scheduling
        // noise: at least config().relay_min_events events per measurement.
        benchmark::RegisterBenchmark(name.c_str(), s.fn, n, del)
            ->UseManualTime()
            ->Iterations(static_cast<benchmark::IterationCount>(std::max<size_t>(1, config().relay_min_events / n)))
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
           .target = del ? std::optional<double>(1.5) : std::nullopt});
    }
    if (backlogs.size() > 1) {
      size_t lo = backlogs.front(), hi = backlogs.back();
      report.Compare({.name = fmt::format("relay_{}_scaling_{}_vs_{}", mode, ShortCount(hi), ShortCount(lo)),
                      .section = section,
                      .ours = fmt::format("relay/{}/ours/backlog:{}", mode, hi),
                      .baseline = fmt::format("relay/{}/ours/backlog:{}", mode, lo),
                      .label = fmt::format("ours at backlog {} / ours at {}", ShortCount(hi), ShortCount(lo)),
                      .target = del ? std::optional<double>(0.8) : std::nullopt});
    }
  }
}

}  // namespace jbench
