// The comparison report: collects every run of the suite (all repetitions),
// then writes the ratio table, one `RATIO <name> <ours/baseline>` line per
// comparison, the latency percentiles, the values held against a bound
// (`VALUE <name> <median>`) and the data files bench/run plots.
//
// Benchmarks declare what they compare when they are registered:
//
//   jbench::Report::Get().Compare({.name = "commit_nosync_1t_vs_rocksdb",
//                                  .ours = "commit/nosync/ours", .baseline = "commit/nosync/rocksdb"});
//
// A key is the registered benchmark name, plus "/threads:N" when the benchmark
// was registered with Threads(). Throughput is Google Benchmark's
// items_per_second; a ratio > 1 means ours is faster. The ratio shown is the
// ratio of the medians over repetitions; the spread is the range of the
// per-repetition ratios (repetition i of ours over repetition i of the baseline).
#pragma once

#include <benchmark/benchmark.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace jbench {

std::string Key(std::string_view name, int threads = 0);

struct Comparison {
  std::string name;                // RATIO name
  std::string section;             // table heading, for example "Commit, no sync, 1 thread"
  std::string ours;                // key
  std::string baseline;            // key
  std::string label;               // what the row compares, for example "ours / raw RocksDB"
  std::optional<double> target{};  // the minimum ratio, shown beside the result
  // The counter compared (default: throughput). With lower_is_better (a cost
  // such as CPU per event) the ratio is baseline / ours, so that > 1 still
  // means jaiminho is better.
  std::string counter = "items_per_second";
  bool lower_is_better = false;
};

struct LatencyRow {
  std::string name;
  std::string key;
  std::string label;
};

// Write volume of one system's relay pass: the counters written_B, wal_B,
// flush_B, compact_B (bytes per delivered event) and committed_B (bytes of one
// committed event). Printed as a table and as one line
//   WRITEVOL <name> bytes_per_event=<written_B> committed_bytes=<committed_B> vs_committed=<ratio>
// where a smaller ratio is better (0 would be a relay that writes nothing).
struct WriteVolumeRow {
  std::string name;
  std::string key;
  std::string label;
  std::optional<double> max_target{};  // the largest vs_committed
};

// One counter of one benchmark held against a bound (for example WAL syncs per
// second under interval sync). Printed as a table row and as one line
//   VALUE <name> <median>
// A missing counter prints `VALUE <name> n/a`.
struct ValueRow {
  std::string name;
  std::string key;
  std::string counter;
  std::string label;                   // what the value is, for example "WAL syncs/s, interval sync, 1 thread"
  std::optional<double> max_target{};  // the largest value
  std::optional<double> min_target{};  // the smallest value
};

// A table of counters (medians over repetitions), one row per benchmark.
struct CounterTable {
  std::string title{};
  std::vector<std::pair<std::string, std::string>> columns{};  // counter, heading
  std::vector<std::pair<std::string, std::string>> rows{};     // label, key
};

struct PlotPoint {
  std::string file;    // data file name, for example "relay_backlog.dat"
  std::string column;  // series name
  double x = 0;
  std::string key;
};

class Report {
 public:
  static Report& Get();

  void Compare(Comparison c) { comparisons_.push_back(std::move(c)); }
  void Latency(LatencyRow r) { latencies_.push_back(std::move(r)); }
  void Plot(PlotPoint p) { points_.push_back(std::move(p)); }
  void Table(CounterTable t) { tables_.push_back(std::move(t)); }
  void WriteVolumeOf(WriteVolumeRow r) { write_volumes_.push_back(std::move(r)); }
  void Value(ValueRow r) { values_.push_back(std::move(r)); }
  // A benchmark not registered, and why: printed as a `SKIP <why>` line.
  void Skip(std::string why) { skipped_.push_back(std::move(why)); }

  void Record(const benchmark::BenchmarkReporter::Run& run);

  // Prints the tables to stdout. When `dir` is empty, prints the RATIO / LATENCY
  // lines too; otherwise writes them to dir/ratios.txt (bench/run prints them
  // last), the tables to dir/table.md and the plot data files.
  // Returns false when a benchmark failed (a comparison whose runs were filtered
  // out is shown as n/a).
  bool Finish(const std::string& dir);

 private:
  struct Sample {
    int64_t repetition = 0;
    double items_per_second = 0;
    std::map<std::string, double> counters;
  };
  // Median of a counter ("items_per_second" or a user counter) over repetitions.
  std::optional<double> Median(const std::string& key, const std::string& counter) const;
  std::vector<double> Values(const std::string& key, const std::string& counter) const;

  std::vector<Comparison> comparisons_;
  std::vector<LatencyRow> latencies_;
  std::vector<PlotPoint> points_;
  std::vector<CounterTable> tables_;
  std::vector<WriteVolumeRow> write_volumes_;
  std::vector<ValueRow> values_;
  std::vector<std::string> skipped_;
  std::map<std::string, std::vector<Sample>> samples_;
  std::vector<std::string> errors_;
};

// The console reporter, recording every run into Report::Get() as well.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override;
};

}  // namespace jbench
