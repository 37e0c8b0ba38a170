// Commit→publish latency with an idle relay woken by commits.
//
//   latency/commit_to_publish/threads:N
//
// N threads each commit (sync=true, the default: a commit is published only
// once it is durable) one business put + one keep-order event, then wait until
// the relay has published it before committing the next, so the relay is idle
// (waiting for a commit) when each commit arrives. Latency is measured from the
// moment Commit() is called to the moment the publisher receives the event;
// "after-ack" is from the moment Commit() returned (negative when the relay
// published before the committing thread was scheduled again).
//
// Counters (microseconds): p50_us, p99_us, p999_us, max_us of commit→publish;
// commit_p50_us (the Commit() call alone); ack_p50_us, ack_p99_us.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "harness.h"
#include "report.h"

namespace jbench {
namespace {

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Per committed event (slot = thread * iterations + i): when Commit() was
// called, when it returned, when the publisher got it.
struct Times {
  std::atomic<int64_t> start{0}, acked{0}, published{0};
};

struct PerThread {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t published = 0;  // events of this thread published so far
};

struct Shared {
  std::unique_ptr<Ours> ours;
  std::unique_ptr<jaiminho::Relay> relay;
  std::unique_ptr<Times[]> times;
  std::unique_ptr<PerThread[]> threads;
  size_t per_thread = 0;
} g;

class TimingPublisher final : public jaiminho::Publisher {
 public:
  jaiminho::Status Publish(const jaiminho::Event& e) override {
    const int64_t now = NowNanos();
    uint64_t slot = 0;
    if (e.payload.size() < sizeof slot) Die("latency: short payload");
    std::memcpy(&slot, e.payload.data(), sizeof slot);
    g.times[slot].published.store(now, std::memory_order_relaxed);
    PerThread& t = g.threads[slot / g.per_thread];
    {
      std::lock_guard l(t.mu);
      ++t.published;
    }
    t.cv.notify_one();
    return {};
  }
};

void CommitToPublish(benchmark::State& st) {
  const size_t n = static_cast<size_t>(st.max_iterations);
  const int nthreads = st.threads();
  if (st.thread_index() == 0) {
    g.per_thread = n;
    g.times = std::make_unique<Times[]>(n * static_cast<size_t>(nthreads));
    g.threads = std::make_unique<PerThread[]>(static_cast<size_t>(nthreads));
    g.ours = OpenOurs(fmt::format("latency-{}", nthreads));
    g.relay = Check(jaiminho::Relay::Make(*g.ours->outbox, std::make_shared<TimingPublisher>()), "relay");
    g.relay->Start();
  }
  std::string payload;
  uint64_t i = 0;
  const uint64_t base = static_cast<uint64_t>(st.thread_index()) * n;
  for (auto _ : st) {
    Ours& o = *g.ours;
    const uint64_t slot = base + i;
    const std::string key = KeyOf(slot);
    payload = Payload(2 * slot + 1);
    std::memcpy(payload.data(), &slot, sizeof slot);  // config().payload >= 8
    auto txn = o.outbox->Begin();
    Check(txn.Put(o.business, key, Payload(2 * slot)), "put");
    Check(txn.Enqueue(*o.stream, {.type = kType, .key = key, .payload = payload}), "enqueue");
    g.times[slot].start.store(NowNanos(), std::memory_order_relaxed);
    auto r = txn.Commit();
    g.times[slot].acked.store(NowNanos(), std::memory_order_relaxed);
    if (!r) Die("commit: " + r.error().ToString());
    ++i;
    PerThread& t = g.threads[static_cast<size_t>(st.thread_index())];
    std::unique_lock l(t.mu);
    if (!t.cv.wait_for(l, std::chrono::seconds(30), [&] { return t.published >= i; })) {
      Die("latency: an event was not published within 30 s");
    }
  }
  st.SetItemsProcessed(st.iterations());
  if (st.thread_index() == 0) {
    g.relay->Stop();
    std::vector<double> e2e, commit, ack;
    for (size_t s = 0; s < n * static_cast<size_t>(nthreads); ++s) {
      const Times& t = g.times[s];
      e2e.push_back(static_cast<double>(t.published - t.start) / 1e3);
      commit.push_back(static_cast<double>(t.acked - t.start) / 1e3);
      ack.push_back(static_cast<double>(t.published - t.acked) / 1e3);
    }
    SetLatencyCounters(st, e2e);
    st.counters["commit_p50_us"] = Percentile(commit, 0.50);
    st.counters["ack_p50_us"] = Percentile(ack, 0.50);
    st.counters["ack_p99_us"] = Percentile(ack, 0.99);
    g.relay.reset();
    g.ours.reset();
    g.times.reset();
    g.threads.reset();
  }
}

}  // namespace

void RegisterLatencyBenchmarks() {
  auto* b = benchmark::RegisterBenchmark("latency/commit_to_publish", CommitToPublish);
  b->Iterations(static_cast<benchmark::IterationCount>(config().latency_commits))->UseRealTime();
  for (int t : {1, 8}) {
    b->Threads(t);
    Report::Get().Latency({.name = fmt::format("commit_to_publish_{}t", t),
                           .key = Key("latency/commit_to_publish", t),
                           .label = fmt::format("{} committing thread{}", t, t > 1 ? "s" : "")});
  }
}

}  // namespace jbench
