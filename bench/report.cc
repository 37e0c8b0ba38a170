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
    auto ours = Median(c.ours, c.counter);
    auto base = Median(c.baseline, c.counter);
    if (!ours || !base || *base <= 0) {  // filtered out, or failed (then in errors_)
      ratios << fmt::format("RATIO {} n/a\n", c.name);
      table << fmt::format("| {} | {} | missing | missing | n/a | | |\n", c.name, c.label);
      continue;
    }
    if (c.lower_is_better && *ours <= 0) {
      ratios << fmt::format("RATIO {} n/a\n", c.name);
      continue;
    }
    auto of = [&c](double o, double b) { return c.lower_is_better ? b / o : o / b; };
    double ratio = of(*ours, *base);
    // Pair repetition i of ours with repetition i of the baseline.
    auto ov = Values(c.ours, c.counter), bv = Values(c.baseline, c.counter);
    double lo = ratio, hi = ratio;
    for (size_t i = 0; i < std::min(ov.size(), bv.size()); ++i) {
      lo = std::min(lo, of(ov[i], bv[i]));
      hi = std::max(hi, of(ov[i], bv[i]));
    }
    std::string spread = std::min(ov.size(), bv.size()) > 1 ? fmt::format("{:.2f}–{:.2f}", lo, hi) : "1 run";
    std::string target;
    if (c.target) target = fmt::format("≥ {:.2f} {}", *c.target, ratio >= *c.target ? "met" : "**missed**");
    if (c.section != section) {
      section = c.section;
      table << fmt::format("| **{}** | | | | | | |\n", section);
    }
    auto shown = [&c](double v) {
      return c.counter == "items_per_second" ? Rate(v) : fmt::format("{:.3g} {}", v, c.counter);
    };
    table << fmt::format("| `{}` | {} | {} | {} | **{:.2f}** | {} | {} |\n", c.name, c.label, shown(*ours),
                         shown(*base), ratio, spread, target);
    ratios << fmt::format("RATIO {} {:.3f}\n", c.name, ratio);
  }

  if (!latencies_.empty()) {
    latency << "| latency | p50 | p99 | p99.9 | max | commit call p50 | after-ack p50 / p99 | samples |\n"
            << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  }
  for (const LatencyRow& l : latencies_) {
    auto us = [&](const char* counter) {
      auto v = Median(l.key, counter);
      if (!v) return std::string("–");  // a column this benchmark does not measure
      return *v < 100 ? fmt::format("{:.1f} µs", *v) : fmt::format("{:.0f} µs", *v);
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
  std::ostringstream volume;
  if (!write_volumes_.empty()) {
    volume << "| write volume per delivered event | written | WAL | flush | compaction | committed event | "
              "written / committed | target | committing wrote |\n"
           << "|---|---:|---:|---:|---:|---:|---:|---|---:|\n";
  }
  for (const WriteVolumeRow& w : write_volumes_) {
    auto written = Median(w.key, "written_B"), committed = Median(w.key, "committed_B");
    if (!written || !committed || *committed <= 0) {
      ratios << fmt::format("WRITEVOL {} n/a\n", w.name);
      volume << fmt::format("| `{}` {} | n/a | | | | | | | |\n", w.name, w.label);
      continue;
    }
    auto bytes = [&](const char* counter) {
      auto v = Median(w.key, counter);
      return v ? fmt::format("{:.0f} B", *v) : std::string("n/a");
    };
    const double ratio = *written / *committed;
    std::string target;
    if (w.max_target) target = fmt::format("≤ {:.2f} {}", *w.max_target, ratio <= *w.max_target ? "met" : "**missed**");
    volume << fmt::format("| `{}` {} | {} | {} | {} | {} | {} | **{:.2f}** | {} | {} |\n", w.name, w.label,
                          bytes("written_B"), bytes("wal_B"), bytes("flush_B"), bytes("compact_B"),
                          bytes("committed_B"), ratio, target, bytes("fill_written_B"));
    ratios << fmt::format("WRITEVOL {} bytes_per_event={:.1f} committed_bytes={:.0f} vs_committed={:.3f}\n", w.name,
                          *written, *committed, ratio);
  }
  std::ostringstream value;
  if (!values_.empty()) {
    value << "| value | what | median | spread (per repetition) | target |\n"
          << "|---|---|---:|---:|---|\n";
  }
  for (const ValueRow& v : values_) {
    auto median = Median(v.key, v.counter);
    if (!median) {
      ratios << fmt::format("VALUE {} n/a\n", v.name);
      value << fmt::format("| `{}` | {} | n/a | | |\n", v.name, v.label);
      continue;
    }
    auto all = Values(v.key, v.counter);
    auto [lo, hi] = std::minmax_element(all.begin(), all.end());
    std::string spread = all.size() > 1 ? fmt::format("{:.3g}–{:.3g}", *lo, *hi) : "1 run";
    std::string target;
    if (v.max_target)
      target = fmt::format("≤ {:.3g} {}", *v.max_target, *median <= *v.max_target ? "met" : "**missed**");
    if (v.min_target) {
      if (!target.empty()) target += ", ";
      target += fmt::format("≥ {:.3g} {}", *v.min_target, *median >= *v.min_target ? "met" : "**missed**");
    }
    value << fmt::format("| `{}` | {} | **{:.4g}** | {} | {} |\n", v.name, v.label, *median, spread, target);
    ratios << fmt::format("VALUE {} {:.4g}\n", v.name, *median);
  }
  for (const auto& e : errors_)
    ratios << "ERROR " << e << "\n";
  for (const auto& why : skipped_) {
    ratios << "SKIP " << why << "\n";
    std::cout << "SKIP " << why << "\n";
  }

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
                     : std::abs(*v) >= 1000          ? fmt::format("{:.0f}", *v)
                                                     : fmt::format("{:.3g}", *v));
      }
      counters << " |\n";
    }
    counters << "\n";
  }

  std::cout << "\n"
            << table.str() << "\n"
            << latency.str() << "\n"
            << volume.str() << "\n"
            << value.str() << "\n"
            << counters.str();
  if (dir.empty()) {
    std::cout << ratios.str() << std::flush;
    return ok;
  }

  std::ofstream(dir + "/table.md") << table.str() << "\n"
                                   << latency.str() << "\n"
                                   << volume.str() << "\n"
                                   << value.str() << "\n"
                                   << counters.str();
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
