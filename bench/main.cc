// jaiminho-bench: ours beside raw RocksDB and SQLite, in one binary and one run.
//
//   jaiminho-bench [--jm_quick] [--jm_dir=DIR] [--jm_report=DIR] [--jm_payload=BYTES]
//                  [--jm_threads=1,4,16,64] [--jm_backlogs=10000,100000,1000000]
//                  [--jm_latency_commits=N] [--jm_clean_events=N] [--jm_writevol_events=N] [--jm_mqtt_events=N]
//                  [--benchmark_* flags]
//
// --jm_quick picks a small workload (backlogs 10k and 100k, fewer latency
// samples, a 100k-event clean, 50k-event write-volume passes, 10k events to
// mosquitto) for CI; bench/run passes the rest. After the
// runs it prints the ratio table and one `RATIO <name> <ours/baseline>` line per
// comparison (see report.h), and exits non-zero when a benchmark failed.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "harness.h"
#include "report.h"

namespace jbench {
void RegisterCommitBenchmarks();
void RegisterDurabilityBenchmarks();
void RegisterRelayBenchmarks();
void RegisterLatencyBenchmarks();
void RegisterCleanBenchmarks();
void RegisterMqttBenchmarks();
void RegisterInboxBenchmarks();
}  // namespace jbench

namespace {

template <class T>
bool ParseNumber(std::string_view s, T* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && *out > 0;
}

template <class T>
bool ParseList(std::string_view s, std::vector<T>* out) {
  out->clear();
  while (!s.empty()) {
    size_t comma = s.find(',');
    T v{};
    if (!ParseNumber(s.substr(0, comma), &v)) return false;
    out->push_back(v);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
  }
  return !out->empty();
}

}  // namespace

int main(int argc, char** argv) {
  jbench::Config& c = jbench::mutable_config();
  std::string report_dir;
  std::vector<char*> rest = {argv[0]};
  // --jm_quick first, so that explicit flags override its defaults.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--jm_quick") {
      c.quick = true;
      c.backlogs = {10'000, 100'000};
      c.relay_min_events = 50'000;
      c.latency_commits = 1000;
      c.clean_events = 100'000;
      c.writevol_events = 50'000;
      c.mqtt_events = 10'000;
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!a.starts_with("--jm_")) {
      rest.push_back(argv[i]);
      continue;
    }
    size_t eq = a.find('=');
    std::string_view flag = a.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : a.substr(eq + 1);
    bool ok = true;
    if (flag == "--jm_quick") {
      ok = eq == std::string_view::npos;
    } else if (flag == "--jm_dir") {
      c.dir = std::string(value);
      ok = !value.empty();
    } else if (flag == "--jm_report") {
      report_dir = std::string(value);
      ok = !value.empty();
    } else if (flag == "--jm_payload") {
      ok = ParseNumber(value, &c.payload) && c.payload >= 8;
    } else if (flag == "--jm_threads") {
      ok = ParseList(value, &c.threads);
    } else if (flag == "--jm_backlogs") {
      ok = ParseList(value, &c.backlogs);
    } else if (flag == "--jm_latency_commits") {
      ok = ParseNumber(value, &c.latency_commits);
    } else if (flag == "--jm_clean_events") {
      ok = ParseNumber(value, &c.clean_events);
    } else if (flag == "--jm_mqtt_events") {
      ok = ParseNumber(value, &c.mqtt_events);
    } else if (flag == "--jm_writevol_events") {
      ok = ParseNumber(value, &c.writevol_events);
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "jaiminho-bench: bad flag " << a << " (see bench/main.cc)\n";
      return 2;
    }
  }

  jbench::RegisterCommitBenchmarks();
  jbench::RegisterDurabilityBenchmarks();
  jbench::RegisterRelayBenchmarks();
  jbench::RegisterLatencyBenchmarks();
  jbench::RegisterCleanBenchmarks();
  jbench::RegisterMqttBenchmarks();
  jbench::RegisterInboxBenchmarks();

  int bargc = static_cast<int>(rest.size());
  benchmark::Initialize(&bargc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(bargc, rest.data())) return 2;
  if (!report_dir.empty()) {
    std::filesystem::create_directories(report_dir);
    std::ofstream(report_dir + "/workload.txt") << fmt::format(
        "{}payload {} bytes; commit threads {}; backlogs {}; latency {} commits per thread; clean {} events; "
        "write volume {} events; MQTT end to end {} events",
        c.quick ? "quick: " : "", c.payload, fmt::join(c.threads, "/"), fmt::join(c.backlogs, "/"), c.latency_commits,
        c.clean_events, c.writevol_events, c.mqtt_events);
  }
  jbench::RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(c.dir, ec);
  return jbench::Report::Get().Finish(report_dir) ? 0 : 1;
}
