// Restarts do not pile up files (issue 17): a gateway that power-cycles daily
// opens, commits a little and closes its database over and over. Each open
// flushes what the write-ahead log recovered into one small SST file per
// family with data; left alone, RocksDB moves those files down without
// merging them, so the file count (and the open time, which reads every
// file's footer) grows with the number of restarts.
//
// JAIMINHO_RESTART_CYCLES sets the number of cycles (default 50, what CI runs;
// the long mode is 500). Each cycle's live SST count and open time are printed
// every tenth cycle; the test asserts a bound on the file count that does not
// depend on the number of cycles.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/test_util.h"

namespace jaiminho::testing {
namespace {
namespace fs = std::filesystem;

int Cycles() {
  const char* v = std::getenv("JAIMINHO_RESTART_CYCLES");
  return v != nullptr && *v != '\0' ? std::atoi(v) : 50;
}

size_t LiveSstFiles(const std::string& path) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.path().extension() == ".sst") ++n;
  }
  return n;
}

TEST(RestartCycles, SstFileCountStaysBoundedOverManyOpenCommitCloseCycles) {
  TempDir dir;
  const std::string path = dir.Sub("gw.db");
  const int cycles = Cycles();
  size_t peak = 0;
  double first_open_ms = 0;
  double last_open_ms = 0;
  uint64_t committed = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    auto start = std::chrono::steady_clock::now();
    auto outbox = Outbox::Open({.path = path, .business_families = {{.name = "devices"}}});
    ASSERT_TRUE(outbox) << outbox.error().ToString();
    double open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (cycle == 0) first_open_ms = open_ms;
    last_open_ms = open_ms;
    auto stream = (*outbox)->OpenStream("telemetry");
    ASSERT_TRUE(stream) << stream.error().ToString();
    auto devices = (*outbox)->FindBusinessFamily("devices");
    ASSERT_TRUE(devices) << devices.error().ToString();
    for (int i = 0; i < 3; ++i) {
      auto txn = (*outbox)->Begin();
      ASSERT_TRUE(txn.Put(*devices, "dev-" + std::to_string(i), std::to_string(cycle)));
      ASSERT_TRUE(txn.Enqueue(**stream, {.type = "reading.v1", .key = "dev", .payload = std::to_string(cycle)}));
      auto receipt = txn.Commit();
      ASSERT_TRUE(receipt) << receipt.error().ToString();
      ++committed;
    }
    ASSERT_TRUE((*outbox)->Close());
    outbox->reset();
    size_t files = LiveSstFiles(path);
    peak = std::max(peak, files);
    if ((cycle + 1) % 10 == 0 || cycle + 1 == cycles) {
      std::printf("cycle %d: %zu live SST files, open %.1f ms\n", cycle + 1, files, open_ms);
    }
  }
  std::printf("%d cycles, %llu commits: peak %zu live SST files, open %.1f ms first, %.1f ms last\n", cycles,
              static_cast<unsigned long long>(committed), peak, first_open_ms, last_open_ms);
  // Four families (default, meta, devices, telemetry); the bound allows each
  // its kMaxSmallFiles small files plus one more flushed by the open, whatever the cycle count.
  EXPECT_LE(peak, 32U) << "small SST files accumulate across restarts";

  // Nothing was lost on the way: every committed event is still pending.
  auto outbox = Outbox::Open({.path = path, .business_families = {{.name = "devices"}}});
  ASSERT_TRUE(outbox) << outbox.error().ToString();
  auto metrics = CollectMetrics(**outbox);
  ASSERT_TRUE(metrics) << metrics.error().ToString();
  ASSERT_EQ(metrics->size(), 1U);
  EXPECT_EQ((*metrics)[0].pending, committed);
  EXPECT_EQ((*metrics)[0].last_seq, committed);
}

}  // namespace
}  // namespace jaiminho::testing
