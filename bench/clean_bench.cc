// The cleaner: time and bytes reclaimed for N sent events (default 1M).
//
//   clean/{ours,rocksdb,sqlite}/events:N
//
// Setup (untimed): N events committed and delivered with mark-sent, so N sent
// events are on disk; background work finished.
// ours:    Outbox::Clean() once the events are past time_to_delete (an injected
//          clock moves 8 days on): flush, then compactions of the delivered
//          head and the sent range in which our filter drops each expired event.
// rocksdb: the raw lower bound, which drops every sent key without reading it:
//          flush, one DeleteRange of the sent range, CompactRange of the stream.
// sqlite:  django-jaiminho's event_cleaner (DELETE ... WHERE sent_at < ?), then
//          VACUUM and a WAL checkpoint so that the file really shrinks.
// Throughput is events removed per second; counters before_MB / after_MB are
// the stream family's live SST bytes (SQLite: database + WAL file bytes).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <filesystem>

#include "harness.h"
#include "report.h"

namespace jbench {
namespace {

constexpr double kMB = 1 << 20;

void CleanOurs(benchmark::State& st, size_t n) {
  for (auto _ : st) {
    auto clock = std::make_shared<jaiminho::ManualClock>(jaiminho::FromMicros(1'700'000'000'000'000));
    auto ours = OpenOurs("clean-ours", {.clean_interval = std::chrono::seconds(0), .clock = clock});
    FillOurs(*ours, n);
    {
      auto relay = Check(jaiminho::Relay::Make(*ours->outbox, std::make_shared<NoopPublisher>()), "relay");
      if (Check(relay->RunOnce(), "relay").published != n) Die("clean: relay did not deliver everything");
    }
    WaitForBackgroundWork(ours->outbox->db());
    clock->Advance(std::chrono::hours(24 * 8));
    auto t0 = std::chrono::steady_clock::now();
    jaiminho::CleanReport r = Check(ours->outbox->Clean(), "clean");
    st.SetIterationTime(SecondsSince(t0));
    if (r.removed != n) Die(fmt::format("clean removed {} of {} sent events", r.removed, n));
    st.counters["before_MB"] = static_cast<double>(r.bytes_before) / kMB;
    st.counters["after_MB"] = static_cast<double>(r.bytes_after) / kMB;
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * n));
}

uint64_t LiveBytes(Raw& raw) {
  uint64_t v = 0;
  if (!raw.db->GetIntProperty(raw.stream, "rocksdb.live-sst-files-size", &v)) Die("no live-sst-files-size");
  return v;
}

void CleanRaw(benchmark::State& st, size_t n) {
  for (auto _ : st) {
    auto raw = OpenRaw("clean-raw");
    FillRaw(*raw, n);
    if (RawRelayPass(*raw, /*del=*/false) != n) Die("clean: raw pass did not deliver everything");
    WaitForBackgroundWork(raw->db.get());
    auto t0 = std::chrono::steady_clock::now();
    rocksdb::FlushOptions fo;
    fo.wait = true;
    Check(raw->db->Flush(fo, raw->stream), "raw flush");
    uint64_t before = LiveBytes(*raw);
    Check(raw->db->DeleteRange(rocksdb::WriteOptions(), raw->stream, "s", "t"), "raw delete range");
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
    Check(raw->db->CompactRange(co, raw->stream, nullptr, nullptr), "raw compact");
    st.SetIterationTime(SecondsSince(t0));
    st.counters["before_MB"] = static_cast<double>(before) / kMB;
    st.counters["after_MB"] = static_cast<double>(LiveBytes(*raw)) / kMB;
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * n));
}

uint64_t FileBytes(const std::string& path) {
  uint64_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    auto size = std::filesystem::file_size(path + suffix, ec);
    if (!ec) total += size;
  }
  return total;
}

void CleanSqlite(benchmark::State& st, size_t n) {
  for (auto _ : st) {
    auto sql = OpenSqlite("clean-sqlite", SqliteSync::kOff);
    sql->Fill(n);
    const int64_t sent_at = 1'700'000'000'000'000;
    if (sql->RelayLoop(/*del=*/false, sent_at) != n) Die("clean: sqlite loop did not deliver everything");
    sql->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const uint64_t before = FileBytes(sql->path());
    auto t0 = std::chrono::steady_clock::now();
    sql->Exec(fmt::format("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < {}", sent_at + 1));
    const auto removed = static_cast<size_t>(sqlite3_changes(sql->db()));
    sql->Exec("VACUUM");
    sql->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
    st.SetIterationTime(SecondsSince(t0));
    if (removed != n) Die(fmt::format("sqlite clean removed {} of {}", removed, n));
    st.counters["before_MB"] = static_cast<double>(before) / kMB;
    st.counters["after_MB"] = static_cast<double>(FileBytes(sql->path())) / kMB;
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * n));
}

}  // namespace

void RegisterCleanBenchmarks() {
  const size_t n = config().clean_events;
  struct System {
    const char* name;
    const char* label;
    void (*fn)(benchmark::State&, size_t);
  };
  const System systems[] = {{"ours", "ours: Outbox::Clean()", CleanOurs},
                            {"rocksdb", "raw RocksDB: DeleteRange + CompactRange", CleanRaw},
                            {"sqlite", "SQLite: DELETE + VACUUM", CleanSqlite}};
  CounterTable table{
      .title = fmt::format("cleaner, {} sent events", ShortCount(n)),
      .columns = {{"items_per_second", "removed/s"}, {"before_MB", "MB before"}, {"after_MB", "MB after"}}};
  for (const System& s : systems) {
    std::string name = fmt::format("clean/{}/events:{}", s.name, n);
    benchmark::RegisterBenchmark(name.c_str(), s.fn, n)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
    table.rows.emplace_back(s.label, name);
  }
  Report& report = Report::Get();
  report.Table(std::move(table));
  const std::string section = fmt::format("Cleaner, {} sent events (removed events/s)", ShortCount(n));
  report.Compare({.name = fmt::format("clean_{}_vs_rocksdb", ShortCount(n)),
                  .section = section,
                  .ours = fmt::format("clean/ours/events:{}", n),
                  .baseline = fmt::format("clean/rocksdb/events:{}", n),
                  .label = "ours / raw DeleteRange + CompactRange"});
  report.Compare({.name = fmt::format("clean_{}_vs_sqlite", ShortCount(n)),
                  .section = section,
                  .ours = fmt::format("clean/ours/events:{}", n),
                  .baseline = fmt::format("clean/sqlite/events:{}", n),
                  .label = "ours / SQLite DELETE + VACUUM"});
}

}  // namespace jbench
