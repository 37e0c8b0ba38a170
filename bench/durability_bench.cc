// The durability profiles side by side (issue 18): ours alone, commit_bench's
// workload (one business put + one keep-order event per commit), Commit()
// with CommitOptions::sync unset, so that OutboxOptions::durability decides.
//
//   durability/{sync,interval,none}/threads:{1,8}
//
// sync: Durability::kSyncEachCommit (Commit returns once the WAL is synced);
// interval: kInterval with sync_interval 10 ms (Commit returns after the
// write, a syncer thread syncs the WAL every 10 ms); none: kNone (no timer).
// With 8 threads every thread commits on the same outbox.
//
// Counters, over the timed loop:
//   fsyncs_per_s, fsyncs_per_commit  WAL syncs (RocksDB ticker WAL_FILE_SYNCED)
//   wal_B_per_commit                 bytes appended to the WAL (WAL_FILE_BYTES)
//   dev_B_per_commit                 bytes the process sent to the storage layer
//                                    (/proc/self/io write_bytes): counted when a
//                                    page is dirtied, so a WAL page written again
//                                    after each sync counts again (what flash
//                                    wears with); memtable flushes included
//   p50_us, p99_us, p999_us, max_us  one Commit() call (not Begin, Put, Enqueue),
//                                    every thread's samples merged
//   stalled_share                    the share of the threads' loop time spent in
//                                    Commit() calls longer than 100 µs (under
//                                    interval sync: commits held up by a sync)
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"
#include "report.h"

namespace jbench {
namespace {

struct Profile {
  const char* name;   // benchmark name part
  const char* label;  // table label
  jaiminho::Durability durability;
};
constexpr Profile kProfiles[] = {
    {"sync", "sync-each-commit", jaiminho::Durability::kSyncEachCommit},
    {"interval", "interval (10 ms)", jaiminho::Durability::kInterval},
    {"none", "none", jaiminho::Durability::kNone},
};
constexpr int kThreads[] = {1, 8};
constexpr int kMaxThreads = 8;
constexpr std::chrono::milliseconds kInterval{10};

// /proc/self/io write_bytes, or nullopt where the kernel does not account it.
std::optional<double> DeviceBytesWritten() {
  std::ifstream io("/proc/self/io");
  std::string name;
  double value = 0;
  while (io >> name >> value) {
    if (name == "write_bytes:") return value;
  }
  return std::nullopt;
}

struct Snapshot {
  double synced = 0, wal = 0;
  std::optional<double> dev;
  std::chrono::steady_clock::time_point at;
};
Snapshot Take(const rocksdb::Statistics& stats) {
  return {.synced = static_cast<double>(stats.getTickerCount(rocksdb::WAL_FILE_SYNCED)),
          .wal = static_cast<double>(stats.getTickerCount(rocksdb::WAL_FILE_BYTES)),
          .dev = DeviceBytesWritten(),
          .at = std::chrono::steady_clock::now()};
}

// Set by thread 0 before the timed loop, reset by it after; the other threads
// touch `ours` only inside the loop and their own `samples` slot only (Google
// Benchmark starts and ends the loop of all threads together, so thread 0
// reads every slot after the loop).
struct Shared {
  std::unique_ptr<Ours> ours;
  std::shared_ptr<rocksdb::Statistics> stats;
  Snapshot before;
  std::array<std::vector<int64_t>, kMaxThreads> samples;  // Commit() nanoseconds, per thread
} g;

void CommitWithProfile(benchmark::State& st, jaiminho::Durability durability) {
  const auto tid = static_cast<size_t>(st.thread_index());
  if (tid >= g.samples.size()) Die("durability: more threads than sample slots");
  if (tid == 0) {
    g.stats = NewTickerStatistics();
    jaiminho::OutboxOptions options;
    options.durability = durability;
    options.sync_interval = kInterval;
    options.tune_db = [stats = g.stats](rocksdb::DBOptions& db) { db.statistics = stats; };
    const char* profile = "";
    for (const Profile& p : kProfiles) {
      if (p.durability == durability) profile = p.name;
    }
    g.ours = OpenOurs(fmt::format("durability-{}", profile), std::move(options));
    Workload w(kWarmupThread);
    w.Next();
    auto txn = g.ours->outbox->Begin();
    Check(txn.Put(g.ours->business, w.key, w.value), "warmup put");
    Check(txn.Enqueue(*g.ours->stream, {.type = kType, .key = w.key, .payload = w.payload}), "warmup enqueue");
    auto receipt = Check(txn.Commit(), "warmup commit");
    Check(g.ours->outbox->WaitDurable(receipt), "warmup: wait durable");
    g.before = Take(*g.stats);
  }
  std::vector<int64_t>& samples = g.samples[tid];
  samples.clear();
  samples.reserve(static_cast<size_t>(st.max_iterations));
  Workload w(st.thread_index());
  for (auto _ : st) {
    Ours& o = *g.ours;
    w.Next();
    auto txn = o.outbox->Begin();
    Check(txn.Put(o.business, w.key, w.value), "put");
    Check(txn.Enqueue(*o.stream, {.type = kType, .key = w.key, .payload = w.payload}), "enqueue");
    const auto t0 = std::chrono::steady_clock::now();
    auto r = txn.Commit();
    const auto t1 = std::chrono::steady_clock::now();
    if (!r) Die("commit: " + r.error().ToString());
    samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  st.SetItemsProcessed(st.iterations());
  if (tid != 0) return;

  const Snapshot after = Take(*g.stats);
  std::vector<double> all;  // microseconds
  for (int t = 0; t < st.threads(); ++t) {
    for (int64_t ns : g.samples[static_cast<size_t>(t)])
      all.push_back(static_cast<double>(ns) / 1e3);
  }
  SetLatencyCounters(st, all);  // sorts `all`
  const double commits = static_cast<double>(all.size());
  const double seconds = std::chrono::duration<double>(after.at - g.before.at).count();
  if (commits > 0 && seconds > 0) {
    st.counters["fsyncs_per_s"] = (after.synced - g.before.synced) / seconds;
    st.counters["fsyncs_per_commit"] = (after.synced - g.before.synced) / commits;
    st.counters["wal_B_per_commit"] = (after.wal - g.before.wal) / commits;
    if (after.dev && g.before.dev) st.counters["dev_B_per_commit"] = (*after.dev - *g.before.dev) / commits;
  }
  // Sorted: the calls over 100 µs are the tail.
  const auto slow = std::upper_bound(all.begin(), all.end(), 100.0);
  double stalled_us = 0;
  for (auto it = slow; it != all.end(); ++it)
    stalled_us += *it;
  if (seconds > 0) st.counters["stalled_share"] = stalled_us / 1e6 / (seconds * st.threads());
  g.ours.reset();
  g.stats.reset();
}

std::string Threads(int t) {
  return fmt::format("{} thread{}", t, t > 1 ? "s" : "");
}

}  // namespace

void RegisterDurabilityBenchmarks() {
  Report& report = Report::Get();
  CounterTable table{.title = "durability profile (commit_bench's workload, sync unset)",
                     .columns = {{"items_per_second", "commits/s"},
                                 {"fsyncs_per_s", "fsyncs/s"},
                                 {"fsyncs_per_commit", "fsyncs/commit"},
                                 {"wal_B_per_commit", "WAL B/commit"},
                                 {"dev_B_per_commit", "device B/commit"},
                                 {"p50_us", "p50 µs"},
                                 {"p99_us", "p99 µs"},
                                 {"p999_us", "p99.9 µs"},
                                 {"stalled_share", "time in calls > 100 µs"},
                                 {"samples", "samples"}}};
  for (const Profile& p : kProfiles) {
    const std::string name = fmt::format("durability/{}", p.name);
    auto* b = benchmark::RegisterBenchmark(name.c_str(), CommitWithProfile, p.durability);
    for (int t : kThreads)
      b->Threads(t);
    b->UseRealTime();
    for (int t : kThreads) {
      table.rows.emplace_back(fmt::format("{}, {}", p.label, Threads(t)), Key(name, t));
      report.Latency({.name = fmt::format("commit_latency_{}_{}t", p.name, t),
                      .key = Key(name, t),
                      .label = fmt::format("Commit() call, {}, {}", p.label, Threads(t))});
    }
  }
  report.Table(std::move(table));

  const std::string section = "Durability profiles: interval sync (10 ms) / none";
  for (int t : kThreads) {
    std::optional<double> target;
    if (t == 1) target = 0.8;  // issue 18
    report.Compare({.name = fmt::format("durability_interval_{}t_vs_none", t),
                    .section = section,
                    .ours = Key("durability/interval", t),
                    .baseline = Key("durability/none", t),
                    .label = fmt::format("{}: interval sync / no sync (commits/s)", Threads(t)),
                    .target = target});
  }
  for (int t : kThreads) {
    std::optional<double> max;
    if (t == 1) max = 110;  // issue 18
    report.Value({.name = fmt::format("durability_interval_{}t_fsyncs_per_s", t),
                  .key = Key("durability/interval", t),
                  .counter = "fsyncs_per_s",
                  .label = fmt::format("WAL syncs/s, interval sync (10 ms), {}", Threads(t)),
                  .max_target = max});
  }
}

}  // namespace jbench
