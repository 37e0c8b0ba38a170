// The process the crash harness (crash_test.cc) kills.
//
//   jaiminho_crash_child run WORKDIR SEED GENERATION MODE
//     Opens WORKDIR/db (creating it), starts a relay and writer threads that
//     commit business writes and events into keep-order and publish-on-commit
//     streams (sync on), logs every acknowledged commit to acks.log, every
//     delivery to deliveries.log, every outcome reported written to
//     outcomes.log and every drop reported to drops.log (crash_log.h), prints
//     "ready" once open, and runs until it is killed (or its stdin closes). The
//     publisher fails a few attempts at random.
//     MODE inline also publishes publish-on-commit events inline
//     (OutboxOptions::publisher); relay leaves them to the relay; drop-oldest
//     is relay with DropOldestStreams() (workload.h): a publish-on-commit
//     stream under a small drop-oldest quota whose publishes fail often, so
//     its backlog passes the quota and commits drop its oldest events.
//   jaiminho_crash_child drain WORKDIR GENERATION MODE
//     Opens the database with a clock a day ahead (every retry is due), runs
//     the relay until nothing is pending or retrying, closes, prints
//     "drained <published>".
//
// The settings that vary per process (inline dispatch, persist_all_events,
// delete_after_send, relay batch size) come from SEED and GENERATION, so a
// failing run can be repeated.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "jaiminho/jaiminho.h"
#include "reliability/crash_log.h"
#include "reliability/workload.h"

namespace jaiminho::testing::crash {
namespace {

constexpr int kWriters = 3;
constexpr size_t kBatchSizes[] = {1, 3, 16, 256};
// Publishes to kDropStream that fail: its backlog grows past the quota.
constexpr int kDropFailPercent = 60;

[[noreturn]] void Fail(const std::string& what) {
  std::cerr << "crash_child: " << what << std::endl;
  std::_Exit(3);
}

// Logs each delivery durably before acknowledging it; fails `fail_percent` of
// the attempts (`drop_fail_percent` in kDropStream) with a retryable error.
class LoggingPublisher final : public Publisher {
 public:
  LoggingPublisher(const std::string& dir, int fail_percent, int drop_fail_percent, uint64_t seed)
      : log_(dir + "/" + std::string(kDeliveriesLog), /*sync=*/true),
        fail_percent_(fail_percent),
        drop_fail_percent_(drop_fail_percent),
        rng_(seed) {}

  Status Publish(const Event& e) override {
    const int fail_percent = e.id.stream == kDropStream ? drop_fail_percent_ : fail_percent_;
    if (fail_percent > 0) {
      std::lock_guard l(mu_);
      if (static_cast<int>(rng_() % 100) < fail_percent) {
        return MakeError(ErrorCode::kUnavailable, "crash_child: injected broker failure");
      }
    }
    log_.Append(DeliveryLine(e.id.stream, e.id.seq, e.type, e.payload));
    return {};
  }

 private:
  DurableLog log_;
  const int fail_percent_;
  const int drop_fail_percent_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

// Logs the outcomes the library reports written, and the drops (synced: the
// checker relies on an acknowledged commit's drops being logged before its ack).
class OutcomeLogger final : public Observer {
 public:
  explicit OutcomeLogger(const std::string& dir)
      : log_(dir + "/" + std::string(kOutcomesLog), /*sync=*/false),
        drops_(dir + "/" + std::string(kDropsLog), /*sync=*/true) {}
  void OnPublished(const Event& e) override { log_.Append(OutcomeLine(e.id.stream, e.id.seq, e.payload)); }
  void OnPublishedByRelay(const Event& e) override { log_.Append(OutcomeLine(e.id.stream, e.id.seq, e.payload)); }
  void OnDropped(std::string_view stream, uint64_t first_seq, uint64_t last_seq, uint64_t count) override {
    drops_.Append(DropLine(stream, first_seq, last_seq, count));
  }

 private:
  DurableLog log_;
  DurableLog drops_;
};

enum class Mode { kRelay, kInline, kDropOldest };

Mode ParseMode(const std::string& m) {
  if (m == "relay") return Mode::kRelay;
  if (m == "inline") return Mode::kInline;
  if (m == "drop-oldest") return Mode::kDropOldest;
  Fail("unknown mode '" + m + "' (relay, inline, drop-oldest)");
}

std::vector<StreamSpec> StreamsOf(Mode mode) {
  return mode == Mode::kDropOldest ? DropOldestStreams() : DefaultStreams();
}

struct Opened {
  std::unique_ptr<Outbox> outbox;
  Workload w;
};

Opened Open(OutboxOptions o, Mode mode) {
  Opened out;
  auto outbox = Outbox::Open(std::move(o));
  if (!outbox) Fail("open: " + outbox.error().ToString());
  out.outbox = std::move(*outbox);
  auto w = OpenWorkload(*out.outbox, StreamsOf(mode));
  if (!w) Fail("open streams: " + w.error().ToString());
  out.w = std::move(*w);
  return out;
}

RetryPolicy FastRetries() {
  return RetryPolicy{.max_attempts = 0,
                     .initial_backoff = std::chrono::milliseconds(1),
                     .max_backoff = std::chrono::milliseconds(20),
                     .multiplier = 2.0,
                     .jitter = 0.5};
}

int Run(const std::string& dir, uint64_t seed, int generation, Mode mode) {
  const bool inline_publish = mode == Mode::kInline;
  std::mt19937_64 rng(seed * 1'000'003 + static_cast<uint64_t>(generation));
  auto publisher =
      std::make_shared<LoggingPublisher>(dir, /*fail_percent=*/5, /*drop_fail_percent=*/kDropFailPercent, rng());
  OutboxOptions o;
  o.path = dir + "/db";
  o.business_families = {{.name = std::string(kBusinessFamily)}};
  o.persist_all_events = rng() % 2 == 0;
  o.delete_after_send = rng() % 3 == 0;
  o.retry = FastRetries();
  if (inline_publish) o.publisher = publisher;
  o.inline_dispatch = rng() % 2 == 0 ? InlineDispatch::kCommittingThread : InlineDispatch::kDispatcherThread;
  o.observers = {std::make_shared<OutcomeLogger>(dir)};
  const size_t batch = kBatchSizes[rng() % std::size(kBatchSizes)];
  Opened db = Open(std::move(o), mode);

  auto relay = Relay::Make(*db.outbox, publisher,
                           {.interval = std::chrono::milliseconds(20), .batch_size = batch, .seed = rng()});
  if (!relay) Fail("relay: " + relay.error().ToString());
  (*relay)->Start();

  DurableLog acks(dir + "/" + std::string(kAcksLog), /*sync=*/true);
  std::vector<std::jthread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w, wseed = rng()](std::stop_token stop) {
      std::mt19937_64 wrng(wseed);
      for (uint64_t i = 0; !stop.stop_requested(); ++i) {
        std::string commit = "g" + std::to_string(generation) + ".w" + std::to_string(w) + "." + std::to_string(i);
        auto ack = CommitIdentified(*db.outbox, db.w, commit, wrng, /*sync=*/true);
        if (!ack) Fail("commit: " + ack.error().ToString());
        acks.Append(AckLine(ack->commit, ack->count, ack->events));
      }
    });
  }
  std::cout << "ready" << std::endl;
  // Runs until killed; a closed stdin means the harness is gone.
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  for (auto& w : writers)
    w.request_stop();
  writers.clear();
  (*relay)->Stop();
  return 0;
}

int Drain(const std::string& dir, int generation, Mode mode) {
  (void)generation;
  auto publisher = std::make_shared<LoggingPublisher>(dir, /*fail_percent=*/0, /*drop_fail_percent=*/0, 0);
  // A day ahead: every scheduled retry and blocked head is due now.
  auto clock = std::make_shared<ManualClock>(SystemClock()->Now() + std::chrono::hours(24));
  OutboxOptions o;
  o.path = dir + "/db";
  o.create_if_missing = false;
  o.business_families = {{.name = std::string(kBusinessFamily)}};
  o.retry = FastRetries();
  o.clock = clock;
  o.observers = {std::make_shared<OutcomeLogger>(dir)};
  Opened db = Open(std::move(o), mode);
  RelayStats total;
  {
    auto relay = Relay::Make(*db.outbox, publisher, {.seed = 1});
    if (!relay) Fail("drain: " + relay.error().ToString());
    for (int pass = 0;; ++pass) {
      if (pass == 1000) Fail("drain: still not done after 1000 passes");
      auto st = (*relay)->RunOnce();
      if (!st) Fail("drain: " + st.error().ToString());
      total += *st;
      auto m = CollectMetrics(*db.outbox);
      if (!m) Fail("drain: " + m.error().ToString());
      uint64_t waiting = 0;
      for (const auto& sm : *m)
        waiting += sm.pending + sm.retrying;
      if (waiting == 0 && st->published == 0) break;
    }
  }
  if (auto s = db.outbox->Close(); !s) Fail("close: " + s.error().ToString());
  std::cout << "drained " << total.published << std::endl;
  return 0;
}

}  // namespace
}  // namespace jaiminho::testing::crash

int main(int argc, char** argv) {
  using namespace jaiminho::testing::crash;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 5 && args[0] == "run") {
    return Run(args[1], std::stoull(args[2]), std::stoi(args[3]), ParseMode(args[4]));
  }
  if (args.size() == 4 && args[0] == "drain") return Drain(args[1], std::stoi(args[2]), ParseMode(args[3]));
  std::cerr << "usage: jaiminho_crash_child run WORKDIR SEED GENERATION MODE | drain WORKDIR GENERATION MODE\n"
               "  MODE: relay, inline or drop-oldest\n";
  return 2;
}
