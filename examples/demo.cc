// The main job: the real flow on the embedded default.
//
//   jaiminho-demo [DB_DIR] [TRANSACTIONS]     (--help: usage)
//
// Opens (or creates) a RocksDB database in DB_DIR (default var/demo.db), commits
// TRANSACTIONS (default 5000) business writes with their events from four
// threads, while a relay, woken by each commit, delivers them to the built-in
// JSON-lines sink (DB_DIR/../demo-sink.jsonl). Telemetry is publish-on-commit
// (published inline right after each durable commit), fills are keep-order
// (delivered by the relay in strict seq order). Then it prints what it stored
// and delivered.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include "example_args.h"
#include "jaiminho/jaiminho.h"

namespace {

// Counts deliveries per stream and checks the keep-order stream's order.
class CheckingSink final : public jaiminho::Publisher {
 public:
  explicit CheckingSink(std::ostream& out) : sink_(out) {}
  jaiminho::Status Publish(const jaiminho::Event& e) override {
    auto s = sink_.Publish(e);
    if (!s) return s;
    std::lock_guard l(mu_);
    if (e.id.stream == "fills") {
      if (e.id.seq <= last_fill_) ++out_of_order_;
      last_fill_ = e.id.seq;
      ++fills_;
    } else {
      ++telemetry_;
    }
    return {};
  }
  uint64_t telemetry_ = 0, fills_ = 0, out_of_order_ = 0, last_fill_ = 0;
  std::mutex mu_;

 private:
  jaiminho::JsonLinesSink sink_;
};

int Fail(const jaiminho::Error& e) {
  std::cerr << "jaiminho-demo: " << e.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = "var/demo.db";
  int transactions = 5000;
  example::CommandLine cli("jaiminho-demo", "[DB_DIR] [TRANSACTIONS]",
                           "Commits TRANSACTIONS business writes with their events from four threads into the\n"
                           "RocksDB database DB_DIR while a relay delivers them to a JSON-lines file beside it,\n"
                           "then prints what it stored and delivered.");
  cli.Positional("DB_DIR", "database directory, created with its parents when missing (default var/demo.db)",
                 [&](const std::string& v) { path = v; });
  cli.Positional("TRANSACTIONS", "how many (default 5000)",
                 [&](const std::string& v) { transactions = cli.Int("TRANSACTIONS", v, 1); });
  cli.Parse(argc, argv);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path().empty()
                                          ? std::filesystem::path(".")
                                          : std::filesystem::path(path).parent_path());
  std::string sink_path = (std::filesystem::path(path).parent_path() / "demo-sink.jsonl").string();
  std::ofstream sink_file(sink_path, std::ios::app);
  auto sink = std::make_shared<CheckingSink>(sink_file);

  auto opened = jaiminho::Outbox::Open({
      .path = path,
      .business_families = {{.name = "devices"}, {.name = "orders"}},
      .publisher = sink,  // publish-on-commit events go out right after each commit
  });
  if (!opened) return Fail(opened.error());
  jaiminho::Outbox& outbox = **opened;
  auto telemetry = outbox.OpenStream("telemetry", {.strategy = jaiminho::Strategy::kPublishOnCommit});
  auto fills = outbox.OpenStream("fills", {.strategy = jaiminho::Strategy::kKeepOrder});
  if (!telemetry) return Fail(telemetry.error());
  if (!fills) return Fail(fills.error());
  jaiminho::BusinessFamily devices = *outbox.FindBusinessFamily("devices");
  jaiminho::BusinessFamily orders = *outbox.FindBusinessFamily("orders");

  auto relay = jaiminho::Relay::Make(outbox, sink);
  if (!relay) return Fail(relay.error());
  (*relay)->Start();

  std::cout << "jaiminho-demo: " << transactions << " transactions into " << path << " (sync commits, 4 threads)\n";
  auto start = std::chrono::steady_clock::now();
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < transactions; i = next++) {
        auto txn = outbox.Begin();
        std::string device = "dev/" + std::to_string(i % 100);
        std::string reading = "{\"device\":\"" + device + "\",\"temp\":" + std::to_string(20 + i % 7) + "}";
        bool ok = txn.Put(devices, device, reading).has_value() &&
                  txn.Enqueue(**telemetry,
                              {.type = "reading.v1", .key = device, .payload = reading, .encoding = "application/json"})
                      .has_value();
        if (i % 4 == 0) {
          std::string order = "ord/" + std::to_string(i);
          std::string fill = "{\"order\":\"" + order + "\",\"qty\":" + std::to_string(1 + i % 10) + "}";
          ok = ok && txn.Put(orders, order, fill).has_value() &&
               txn.Enqueue(**fills, {.type = "fill.v1", .key = order, .payload = fill, .encoding = "application/json"})
                   .has_value();
        }
        if (!ok || !txn.Commit({.sync = true})) ++failed;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (*relay)->Stop();
  auto drained = (*relay)->RunOnce();  // whatever the loop had not reached yet
  if (!drained) return Fail(drained.error());

  auto metrics = jaiminho::CollectMetrics(outbox);
  if (!metrics) return Fail(metrics.error());
  std::cout << "committed " << transactions - failed << " transactions in " << seconds << " s ("
            << static_cast<int>((transactions - failed) / seconds) << "/s), " << failed << " failed\n";
  {
    std::lock_guard l(sink->mu_);
    std::cout << "delivered to " << sink_path << ": " << sink->telemetry_ << " telemetry, " << sink->fills_
              << " fills (" << sink->out_of_order_ << " out of order)\n";
  }
  std::cout << "stored (database id " << outbox.id().ToHex() << "):\n";
  for (const auto& m : *metrics) {
    std::cout << "  stream " << m.stream << " (" << jaiminho::ToString(m.strategy) << "): last seq " << m.last_seq
              << ", pending " << m.pending << ", retrying " << m.retrying << ", parked " << m.parked_records
              << ", published since open " << m.published << "\n";
  }
  auto sent = outbox.ListEvents(**fills, jaiminho::EventState::kSent, 1);
  if (sent && !sent->empty()) {
    const auto& e = sent->front();
    std::cout << "  first sent fill: " << e->id.ToString() << " " << e->payload << "\n";
  }
  auto state = outbox.Get(devices, "dev/7");
  if (state && *state) std::cout << "  business row devices/dev/7 = " << **state << "\n";
  if (auto s = outbox.Close(); !s) return Fail(s.error());
  return failed == 0 ? 0 : 1;
}
