#include "report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace jbench {

std::string Key(std::string_view name, int threads) {
  return threads > 0 ? fmt::format("{}/threads:{}", name, threads) : std::string(name);
}

Report& Report::Get() {
  static Report r;
  return r;
}

void Report::Record(const benchmark::BenchmarkReporter::Run& run) {
  if (run.run_type != benchmark::BenchmarkReporter::Run::RT_Iteration) return;
  std::string key = run.run_name.function_name;
  if (!run.run_name.threads.empty()) key += "/" + run.run_name.threads;
  if (run.error_occurred) {
    errors_.push_back(fmt::format("{}: {}", key, run.error_message));
    return;
  }
  Sample s;
  s.repetition = run.repetition_index;
  for (const auto& [name, counter] : run.counters)
    s.counters[name] = counter.value;
  if (auto it = s.counters.find("items_per_second"); it != s.counters.end()) s.items_per_second = it->second;
  samples_[key].push_back(std::move(s));
}

std::vector<double> Report::Values(const std::string& key, const std::string& counter) const {
  std::vector<double> out;
  auto it = samples_.find(key);
  if (it == samples_.end()) return out;
  for (const Sample& s : it->second) {
    if (auto c = s.counters.find(counter); c != s.counters.end()) out.push_back(c->second);
  }
  return out;
}

namespace {
double MedianOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Rate(double per_second) {
  if (per_second >= 1e6) return fmt::format("{:.2f}M/s", per_second / 1e6);
  if (per_second >= 1e3) return fmt::format("{:.1f}k/s", per_second / 1e3);
  return fmt::format("{:.0f}/s", per_second);
}
}  // namespace

std::optional<double> Report::Median(const std::string& key, const std::string& counter) const {
  auto v = Values(key, counter);
  if (v.empty()) return std::nullopt;
  return MedianOf(std::move(v));
}

bool Report::Finish(const std::string& dir) {
  bool ok = errors_.empty();
  std::ostringstream table, ratios, latency;
  table << "| comparison | what | ours | baseline | ratio (median) | spread (per repetition) | target |\n"
        << "|---|---|---:|---:|---:|---:|---|\n";
  std::string section;
  for (const Comparison& c : comparisons_) {
    auto ours = Median(c.ours, "items_per_second");
    auto base = Median(c.baseline, "items_per_second");
    if (!ours || !base || *base <= 0) {  // filtered out, or failed (then in errors_)
      ratios << fmt::format("RATIO {} n/a\n", c.name);
      table << fmt::format("| {} | {} | missing | missing | n/a | | |\n", c.name, c.label);
      continue;
    }
    double ratio = *ours / *base;
    // Pair repetition i of ours with repetition i of the baseline.
    auto ov = Values(c.ours, "items_per_second"), bv = Values(c.baseline, "items_per_second");
    double lo = ratio, hi = ratio;
    for (size_t i = 0; i < std::min(ov.size(), bv.size()); ++i) {
      lo = std::min(lo, ov[i] / bv[i]);
      hi = std::max(hi, ov[i] / bv[i]);
    }
    std::string spread = std::min(ov.size(), bv.size()) > 1 ? fmt::format("{:.2f}–{:.2f}", lo, hi) : "1 run";
    std::string target;
    if (c.target) target = fmt::format("≥ {:.2f} {}", *c.target, ratio >= *c.target ? "met" : "**missed**");
    if (c.section != section) {
      section = c.section;
      table << fmt::format("| **{}** | | | | | | |\n", section);
    }
    table << fmt::format("| `{}` | {} | {} | {} | **{:.2f}** | {} | {} |\n", c.name, c.label, Rate(*ours), Rate(*base),
                         ratio, spread, target);
    ratios << fmt::format("RATIO {} {:.3f}\n", c.name, ratio);
  }

  if (!latencies_.empty()) {
    latency << "| latency | p50 | p99 | p99.9 | max | commit call p50 | after-ack p50 / p99 | samples |\n"
            << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  }
  for (const LatencyRow& l : latencies_) {
    auto us = [&](const char* counter) {
      auto v = Median(l.key, counter);
      return v ? fmt::format("{:.0f} µs", *v) : std::string("n/a");
    };
    auto p50 = Median(l.key, "p50_us"), p99 = Median(l.key, "p99_us"), p999 = Median(l.key, "p999_us");
    auto n = Median(l.key, "samples");
    if (!p50 || !p99 || !p999) {
      ratios << fmt::format("LATENCY {} n/a\n", l.name);
      continue;
    }
    latency << fmt::format("| `{}` {} | {} | {} | {} | {} | {} | {} / {} | {:.0f} |\n", l.name, l.label, us("p50_us"),
                           us("p99_us"), us("p999_us"), us("max_us"), us("commit_p50_us"), us("ack_p50_us"),
                           us("ack_p99_us"), n.value_or(0));
    ratios << fmt::format("LATENCY {} p50_us={:.1f} p99_us={:.1f} p999_us={:.1f}\n", l.name, *p50, *p99, *p999);
  }
  for (const auto& e : errors_)
    ratios << "ERROR " << e << "\n";

  std::ostringstream counters;
  for (const CounterTable& t : tables_) {
    counters << "| " << t.title;
    for (const auto& [counter, heading] : t.columns)
      counters << " | " << heading;
    counters << " |\n|---";
    for (size_t i = 0; i < t.columns.size(); ++i)
      counters << "|---:";
    counters << "|\n";
    for (const auto& [label, key] : t.rows) {
      counters << "| " << label;
      for (const auto& [counter, heading] : t.columns) {
        auto v = Median(key, counter);
        counters << " | "
                 << (!v                              ? std::string("n/a")
                     : counter == "items_per_second" ? Rate(*v)
                                                     : fmt::format("{:.3g}", *v));
      }
      counters << " |\n";
    }
    counters << "\n";
  }

  std::cout << "\n" << table.str() << "\n" << latency.str() << "\n" << counters.str();
  if (dir.empty()) {
    std::cout << ratios.str() << std::flush;
    return ok;
  }

  std::ofstream(dir + "/table.md") << table.str() << "\n" << latency.str() << "\n" << counters.str();
  std::ofstream(dir + "/ratios.txt") << ratios.str();
  // Plot data: one file per plot, one row per x, one column per series (median items/s).
  std::map<std::string, std::vector<std::string>> columns;
  std::map<std::string, std::map<double, std::map<std::string, double>>> rows;
  for (const PlotPoint& p : points_) {
    auto& cols = columns[p.file];
    if (std::find(cols.begin(), cols.end(), p.column) == cols.end()) cols.push_back(p.column);
    if (auto v = Median(p.key, "items_per_second")) rows[p.file][p.x][p.column] = *v;
  }
  for (const auto& [file, cols] : columns) {
    std::ofstream out(dir + "/" + file);
    out << "x";
    for (const auto& c : cols)
      out << " " << c;
    out << "\n";
    for (const auto& [x, values] : rows[file]) {
      out << fmt::format("{:.0f}", x);
      for (const auto& c : cols) {
        auto it = values.find(c);
        out << " " << (it == values.end() ? std::string("?") : fmt::format("{:.1f}", it->second));
      }
      out << "\n";
    }
  }
  return ok;
}

void RecordingReporter::ReportRuns(const std::vector<Run>& runs) {
  for (const Run& r : runs)
    Report::Get().Record(r);
  ConsoleReporter::ReportRuns(runs);
}

}  // namespace jbench
