// Misuse by the caller (issue 13, items 3, 4 and 6): calls after Close, streams
// and business families of another Outbox, extreme durations. None may crash,
// half-apply a commit or lose data.
//
// Calls that crashed before the fix run in a child process (gtest death-test
// machinery, "threadsafe" style: the child re-runs the test body alone), so a
// crash fails the test instead of killing the test binary.
#include <cfloat>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <limits>
#include <set>

#include "delivery/retry.h"
#include "support/child.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::RecordingPublisher;
using testing::TempDir;

constexpr int64_t kT0 = 1'700'000'000'000'000;

// "" when `r` failed with kClosed naming `path`; otherwise what happened.
template <class R>
std::string ClosedError(const R& r, const std::string& path) {
  if (r.has_value()) return "the call succeeded after Close";
  if (r.error().code() != ErrorCode::kClosed) return "expected kClosed, got " + r.error().ToString();
  if (r.error().message().find(path) == std::string::npos) {
    return "the error does not name the path " + path + ": " + r.error().ToString();
  }
  return "";
}

// An outbox with a stream, a business family and one committed event (seq 1),
// then closed.
struct ClosedOutbox {
  TempDir dir;
  std::string path = dir.Sub("db");
  std::unique_ptr<Outbox> outbox;
  Stream* stream = nullptr;
  BusinessFamily family;
  std::string setup_error;

  ClosedOutbox() {
    outbox = MustOpen(path, {.business_families = {{.name = "devices"}}, .strategy = Strategy::kKeepOrder});
    if (!outbox) {
      setup_error = "open failed";
      return;
    }
    auto s = outbox->OpenStream("s");
    auto f = outbox->FindBusinessFamily("devices");
    if (!s || !f) {
      setup_error = "stream or family";
      return;
    }
    stream = *s;
    family = *f;
    auto txn = outbox->Begin();
    if (!txn.Put(family, "k", "v") || !txn.Enqueue(*stream, {.type = "t", .payload = "p"}) || !txn.Commit()) {
      setup_error = "commit failed";
      return;
    }
    if (auto c = outbox->Close(); !c) setup_error = "close: " + c.error().ToString();
  }
};

std::string AfterClose(const std::function<std::string(ClosedOutbox&)>& call) {
  ClosedOutbox c;
  if (!c.setup_error.empty()) return c.setup_error;
  return call(c);
}

// --- Item 3: every call after Close returns kClosed naming the path.

TEST(AfterClose, Commit) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) {
    auto txn = c.outbox->Begin();
    (void)txn.Put(c.family, "k2", "v2");
    (void)txn.Enqueue(*c.stream, {.type = "t", .payload = "p2"});
    return ClosedError(txn.Commit(), c.path);
  }));
}

TEST(AfterClose, CommitBusinessOnly) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) {
    auto txn = c.outbox->Begin();
    (void)txn.Put(c.family, "k2", "v2");
    return ClosedError(txn.Commit({.sync = false}), c.path);
  }));
}

TEST(AfterClose, Get) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) { return ClosedError(c.outbox->Get(c.family, "k"), c.path); }));
}

TEST(AfterClose, OpenStreamNewAndExisting) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) {
    auto e = ClosedError(c.outbox->OpenStream("fresh"), c.path);
    if (!e.empty()) return "new stream: " + e;
    e = ClosedError(c.outbox->OpenStream("s", {.strategy = Strategy::kPublishOnCommit}), c.path);
    if (!e.empty()) return "existing stream: " + e;
    return std::string();
  }));
}

TEST(AfterClose, FindStreamStreamsBusiness) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) {
    auto e = ClosedError(c.outbox->FindStream("s"), c.path);
    if (!e.empty()) return "FindStream: " + e;
    if (!c.outbox->Streams().empty()) return std::string("Streams() is not empty after Close");
    e = ClosedError(c.outbox->FindBusinessFamily("devices"), c.path);
    if (!e.empty()) return "FindBusinessFamily: " + e;
    // The Stream itself stays valid until the Outbox is destroyed.
    if (c.stream->name() != "s") return std::string("Stream::name changed");
    return std::string();
  }));
}

TEST(AfterClose, Clean) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) { return ClosedError(c.outbox->Clean(), c.path); }));
}

TEST(AfterClose, ListAndFind) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) {
    auto e = ClosedError(c.outbox->ListEvents(*c.stream, EventState::kPending), c.path);
    if (!e.empty()) return "ListEvents: " + e;
    e = ClosedError(c.outbox->FindEvent(*c.stream, 1), c.path);
    if (!e.empty()) return "FindEvent: " + e;
    return std::string();
  }));
}

TEST(AfterClose, OperatorActions) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) {
    auto e = ClosedError(c.outbox->Requeue(*c.stream, 1), c.path);
    if (!e.empty()) return "Requeue: " + e;
    e = ClosedError(c.outbox->RequeueAllParked(*c.stream), c.path);
    if (!e.empty()) return "RequeueAllParked: " + e;
    e = ClosedError(c.outbox->Skip(*c.stream, 1, "why"), c.path);
    if (!e.empty()) return "Skip: " + e;
    return std::string();
  }));
}

TEST(AfterClose, Metrics) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) { return ClosedError(CollectMetrics(*c.outbox), c.path); }));
}

TEST(AfterClose, CloseAgainAndDestroy) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) {
    if (auto s = c.outbox->Close(); !s) return "second Close: " + s.error().ToString();
    c.outbox.reset();
    return std::string();
  }));
}

TEST(AfterClose, RelayRunOnceAndRun) {
  EXPECT_IN_CHILD(AfterClose([](ClosedOutbox& c) {
    auto made = Relay::Make(*c.outbox, std::make_shared<RecordingPublisher>());
    if (!made) return "Relay::Make: " + made.error().ToString();
    auto relay = std::move(*made);
    auto e = ClosedError(relay->RunOnce(), c.path);
    if (!e.empty()) return "RunOnce: " + e;
    std::stop_source never;
    e = ClosedError(relay->Run(never.get_token()), c.path);
    if (!e.empty()) return "Run: " + e;
    return std::string();
  }));
}

// Collects errors given to capture_error.
struct Captured {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Error> errors;
  std::function<void(const Error&)> Hook() {
    return [this](const Error& e) {
      std::lock_guard l(mu);
      errors.push_back(e);
      cv.notify_all();
    };
  }
  // Waits (condition variable, bounded) for an error with `code`.
  std::optional<Error> WaitFor(ErrorCode code) {
    std::unique_lock l(mu);
    std::optional<Error> found;
    cv.wait_for(l, std::chrono::seconds(20), [&] {
      for (const auto& e : errors) {
        if (e.code() == code) found = e;
      }
      return found.has_value();
    });
    return found;
  }
};

TEST(AfterClose, RelayStartReportsClosed) {
  EXPECT_IN_CHILD([] {
    TempDir dir;
    std::string path = dir.Sub("db");
    Captured captured;
    auto outbox = MustOpen(path, {.capture_error = captured.Hook()});
    if (!outbox) return std::string("open");
    if (auto s = outbox->Close(); !s) return s.error().ToString();
    auto publisher = std::make_shared<RecordingPublisher>();
    auto made = Relay::Make(*outbox, publisher);
    if (!made) return "Relay::Make: " + made.error().ToString();
    auto relay = std::move(*made);
    relay->Start();
    auto e = captured.WaitFor(ErrorCode::kClosed);
    relay->Stop();
    if (!e) return std::string("the started relay reported no kClosed");
    return ClosedError(Result<void>(tl::unexpected(*e)), path);
  }());
}

// --- Item 4: streams and business families of another Outbox.

struct TwoOutboxes {
  TempDir dir;
  std::string path_a = dir.Sub("a"), path_b = dir.Sub("b");
  std::unique_ptr<Outbox> a, b;
  void Open() {
    // Same layouts: B's column family ids exist in A too, and B has more.
    a = MustOpen(path_a, {.business_families = {{.name = "devices"}}, .strategy = Strategy::kKeepOrder});
    b = MustOpen(
        path_b, {.business_families = {{.name = "x"}, {.name = "y"}, {.name = "z"}}, .strategy = Strategy::kKeepOrder});
  }
};

TEST(Foreign, StreamOfAnotherOutboxIsRefused) {
  TwoOutboxes t;
  t.Open();
  ASSERT_TRUE(t.a && t.b);
  ASSERT_OK_AND_ASSIGN(Stream * sa, t.a->OpenStream("s"));
  ASSERT_OK_AND_ASSIGN(Stream * sb, t.b->OpenStream("s"));
  Receipt first;
  {
    auto txn = t.a->Begin();
    ASSERT_OK(txn.Enqueue(*sa, {.type = "t", .payload = "original"}));
    ASSERT_OK_AND_ASSIGN(first, txn.Commit());
  }
  {
    auto txn = t.a->Begin();
    auto s = txn.Enqueue(*sb, {.type = "t", .payload = "intruder"});
    ASSERT_ERROR(s, ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message().find("'s'"), std::string::npos) << s.error().ToString();
    EXPECT_NE(s.error().message().find(t.path_a), std::string::npos) << s.error().ToString();
    ASSERT_ERROR(txn.Commit(), ErrorCode::kInvalidArgument);  // the transaction is poisoned
  }
  // The existing event is unchanged, B's stream untouched.
  ASSERT_OK_AND_ASSIGN(StoredEvent ev, t.a->FindEvent(*sa, 1));
  EXPECT_EQ(ev->payload, "original");
  ASSERT_ERROR(t.b->FindEvent(*sb, 1), ErrorCode::kNotFound);
  // Later commits go on with fresh seqs: receipts stay unique.
  Receipt second;
  {
    auto txn = t.a->Begin();
    ASSERT_OK(txn.Enqueue(*sa, {.type = "t", .payload = "next"}));
    ASSERT_OK_AND_ASSIGN(second, txn.Commit());
  }
  ASSERT_EQ(first.events.size(), 1u);
  ASSERT_EQ(second.events.size(), 1u);
  EXPECT_NE(first.events[0].seq, second.events[0].seq);
  ASSERT_OK_AND_ASSIGN(auto pending, t.a->ListEvents(*sa, EventState::kPending));
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0]->payload, "original");
  EXPECT_EQ(pending[1]->payload, "next");
}

TEST(Foreign, StreamOfAnotherOutboxInOperatorCalls) {
  TwoOutboxes t;
  t.Open();
  ASSERT_TRUE(t.a && t.b);
  ASSERT_OK_AND_ASSIGN(Stream * sa, t.a->OpenStream("s"));
  ASSERT_OK_AND_ASSIGN(Stream * sb, t.b->OpenStream("s"));
  {
    auto txn = t.a->Begin();
    ASSERT_OK(txn.Enqueue(*sa, {.type = "t", .payload = "original"}));
    ASSERT_OK(txn.Commit());
  }
  ASSERT_ERROR(t.a->ListEvents(*sb, EventState::kPending), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(t.a->FindEvent(*sb, 1), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(t.a->Skip(*sb, 1, "no"), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(t.a->Requeue(*sb, 1), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(t.a->RequeueAllParked(*sb), ErrorCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(StoredEvent ev, t.a->FindEvent(*sa, 1));
  EXPECT_EQ(ev->state, EventState::kPending);
}

TEST(Foreign, FamilyOfAnotherOutboxIsRefusedAndNothingIsWritten) {
  // Before the fix this failed the commit half-applied and later commits as
  // fatal; RocksDB may also assert, so run it in a child.
  EXPECT_IN_CHILD([] {
    TwoOutboxes t;
    t.Open();
    if (!t.a || !t.b) return std::string("open");
    auto own = t.a->FindBusinessFamily("devices");
    auto foreign = t.b->FindBusinessFamily("z");  // column family id 4: absent in A
    auto s = t.a->OpenStream("s");
    if (!own || !foreign || !s) return std::string("setup");
    {
      auto txn = t.a->Begin();
      if (!txn.Put(*own, "mine", "1")) return std::string("own Put failed");
      auto put = txn.Put(*foreign, "theirs", "2");
      if (put) return std::string("foreign Put accepted");
      if (put.error().code() != ErrorCode::kInvalidArgument) return "foreign Put: " + put.error().ToString();
      if (put.error().message().find("'z'") == std::string::npos ||
          put.error().message().find(t.path_a) == std::string::npos) {
        return "error names neither family nor path: " + put.error().ToString();
      }
      if (txn.Delete(*foreign, "theirs")) return std::string("foreign Delete accepted");
      if (txn.Merge(*foreign, "theirs", "x")) return std::string("foreign Merge accepted");
      (void)txn.Enqueue(**s, {.type = "t", .payload = "p"});
      auto c = txn.Commit();
      if (c || c.error().code() != ErrorCode::kInvalidArgument) return std::string("commit not refused");
    }
    // A later commit succeeds.
    {
      auto txn = t.a->Begin();
      if (!txn.Put(*own, "later", "3")) return std::string("later Put");
      if (auto c = txn.Commit(); !c) return "later commit failed: " + c.error().ToString();
    }
    if (auto c = t.a->Close(); !c) return "close: " + c.error().ToString();
    t.a.reset();
    auto a = Outbox::Open({.path = t.path_a, .business_families = {{.name = "devices"}}});
    if (!a) return "reopen: " + a.error().ToString();
    auto fam = (*a)->FindBusinessFamily("devices");
    if (!fam) return std::string("family after reopen");
    auto mine = (*a)->Get(*fam, "mine");
    auto later = (*a)->Get(*fam, "later");
    if (!mine || !later) return std::string("reads after reopen");
    if (mine->has_value()) return std::string("the refused transaction's own Put is visible after reopen");
    if (!later->has_value()) return std::string("the later commit is missing after reopen");
    auto st = (*a)->FindStream("s");
    if (!st) return std::string("stream after reopen");
    if ((*a)->FindEvent(**st, 1)) return std::string("the refused transaction's event is visible after reopen");
    return std::string();
  }());
}

TEST(Foreign, DefaultConstructedAndHandMadeFamiliesAreRefused) {
  TempDir dir;
  auto a = MustOpen(dir.Sub("a"), {.business_families = {{.name = "devices"}}});
  ASSERT_NE(a, nullptr);
  ASSERT_OK_AND_ASSIGN(BusinessFamily real, a->FindBusinessFamily("devices"));
  {
    auto txn = a->Begin();
    ASSERT_ERROR(txn.Put(BusinessFamily{}, "k", "v"), ErrorCode::kInvalidArgument);
  }
  {
    // Hand-made: the right handle and name, but not from Outbox::FindBusinessFamily.
    auto txn = a->Begin();
    BusinessFamily hand{.handle = real.handle, .name = "devices", .has_merge_operator = true};
    ASSERT_ERROR(txn.Put(hand, "k", "v"), ErrorCode::kInvalidArgument);
    ASSERT_ERROR(txn.Merge(hand, "k", "v"), ErrorCode::kInvalidArgument);
  }
  {
    // A copy of the real one is the real one.
    auto txn = a->Begin();
    BusinessFamily copy = real;
    ASSERT_OK(txn.Put(copy, "k", "v"));
    ASSERT_OK(txn.Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto v, a->Get(real, "k"));
  EXPECT_EQ(v, std::optional<std::string>("v"));
}

// --- Item 6: extreme durations.

struct Delivered {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(FromMicros(kT0));
  std::shared_ptr<RecordingPublisher> publisher = std::make_shared<RecordingPublisher>();
  std::unique_ptr<Outbox> outbox;
  Stream* stream = nullptr;

  // A keep-order stream with one event delivered by a relay and kept as sent.
  void Run(OutboxOptions o, StreamOptions so) {
    o.clock = clock;
    o.clean_interval = std::chrono::seconds(0);
    outbox = MustOpen(dir.Sub("db"), std::move(o));
    ASSERT_NE(outbox, nullptr);
    so.strategy = Strategy::kKeepOrder;
    ASSERT_OK_AND_ASSIGN(stream, outbox->OpenStream("s", so));
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*stream, {.type = "t", .payload = "p"}));
    ASSERT_OK(txn.Commit());
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
    ASSERT_EQ(stats.published, 1u);
    ASSERT_OK_AND_ASSIGN(StoredEvent ev, outbox->FindEvent(*stream, 1));
    ASSERT_EQ(ev->state, EventState::kSent);
  }
};

TEST(ExtremeDurations, TimeToDeleteMaxOutboxWideKeepsSentEvents) {
  Delivered d;
  d.Run({.time_to_delete = std::chrono::seconds::max()}, {});
  ASSERT_OK_AND_ASSIGN(CleanReport r, d.outbox->Clean());
  EXPECT_EQ(r.removed, 0u);
  d.clock->Advance(std::chrono::hours(24 * 365 * 1000));
  ASSERT_OK_AND_ASSIGN(r, d.outbox->Clean());
  EXPECT_EQ(r.removed, 0u);
  ASSERT_OK_AND_ASSIGN(StoredEvent ev, d.outbox->FindEvent(*d.stream, 1));
  EXPECT_EQ(ev->state, EventState::kSent);
  EXPECT_EQ(d.stream->time_to_delete(), std::chrono::seconds::max());
}

TEST(ExtremeDurations, TimeToDeleteMaxPerStreamKeepsSentEvents) {
  Delivered d;
  d.Run({}, {.time_to_delete = std::chrono::seconds::max()});
  ASSERT_OK_AND_ASSIGN(CleanReport r, d.outbox->Clean());
  EXPECT_EQ(r.removed, 0u);
  ASSERT_OK_AND_ASSIGN(StoredEvent ev, d.outbox->FindEvent(*d.stream, 1));
  EXPECT_EQ(ev->state, EventState::kSent);
  // Changed on an open stream, then reopened: still kept.
  ASSERT_OK(d.outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder,
                                       .time_to_delete = std::chrono::seconds::max() - std::chrono::seconds(1)}));
  ASSERT_OK_AND_ASSIGN(r, d.outbox->Clean());
  EXPECT_EQ(r.removed, 0u);
  ASSERT_OK(d.outbox->Close());
  d.outbox = MustOpen(d.dir.Sub("db"), {.clock = d.clock});
  ASSERT_NE(d.outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(Stream * s, d.outbox->FindStream("s"));
  ASSERT_OK_AND_ASSIGN(r, d.outbox->Clean());
  EXPECT_EQ(r.removed, 0u);
  ASSERT_OK_AND_ASSIGN(ev, d.outbox->FindEvent(*s, 1));
  EXPECT_EQ(ev->state, EventState::kSent);
}

TEST(ExtremeDurations, TimeToDeleteLowerBound) {
  ASSERT_FALSE(Outbox::Open({.path = "unused", .time_to_delete = std::chrono::seconds(0)}).has_value());
  Delivered d;
  d.Run({}, {.time_to_delete = std::chrono::seconds(1)});
  ASSERT_OK_AND_ASSIGN(CleanReport r, d.outbox->Clean());
  EXPECT_EQ(r.removed, 0u);
  d.clock->Advance(std::chrono::seconds(2));
  ASSERT_OK_AND_ASSIGN(r, d.outbox->Clean());
  EXPECT_EQ(r.removed, 1u);
}

TEST(ExtremeDurations, BackoffNeverNegative) {
  using us = std::chrono::microseconds;
  std::vector<RetryPolicy> policies = {
      {.initial_backoff = us(1), .max_backoff = us::max(), .multiplier = 2.0, .jitter = 0.2},
      {.initial_backoff = us::max(), .max_backoff = us::max(), .multiplier = 1.0, .jitter = 0.0},
      {.initial_backoff = us::max() / 2, .max_backoff = us::max(), .multiplier = 1.0, .jitter = 0.9},
      {.initial_backoff = us(1), .max_backoff = us::max(), .multiplier = 1e300, .jitter = 0.5},
      {.initial_backoff = us(1), .max_backoff = us::max(), .multiplier = DBL_MAX, .jitter = 0.0},
      {.initial_backoff = us(1), .max_backoff = us(1), .multiplier = 1.0, .jitter = 0.0},
  };
  std::mt19937_64 rng(7);
  for (const auto& p : policies) {
    int64_t previous = 0;
    for (uint32_t attempts : {1u, 2u, 3u, 10u, 64u, 1000u, UINT32_MAX}) {
      auto d = internal::Backoff(p, attempts, rng);
      EXPECT_GE(d.count(), 0) << "initial " << p.initial_backoff.count() << " multiplier " << p.multiplier
                              << " attempts " << attempts;
      // Without jitter the delay never shrinks as attempts grow.
      if (p.jitter == 0.0) {
        EXPECT_GE(d.count(), previous) << "attempts " << attempts;
      }
      previous = d.count();
    }
  }
  // Saturated: the largest delays are microseconds::max(), never a wrapped value.
  EXPECT_EQ(internal::Backoff(policies[1], 1, rng), us::max());
  EXPECT_EQ(internal::Backoff(policies[4], 3, rng), us::max());
  EXPECT_EQ(internal::DueAfter(kT0, us::max()), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(internal::DueAfter(kT0, us(5)), kT0 + 5);
  auto d = internal::Backoff({.initial_backoff = us(1), .max_backoff = us(1), .jitter = 0.0}, 5, rng);
  EXPECT_EQ(d.count(), 1);
}

// A keep-order stream whose publisher always fails: how many attempts do
// `passes` relay passes make, the clock advancing `step` before each?
uint64_t AttemptsWith(RetryPolicy policy, int passes, std::chrono::microseconds step, Strategy strategy) {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>(FromMicros(kT0));
  auto publisher = std::make_shared<RecordingPublisher>();
  publisher->fail = [](const Event&) { return std::optional<Error>(Error(ErrorCode::kUnavailable, "down")); };
  auto outbox = MustOpen(dir.Sub("db"), {.clean_interval = std::chrono::seconds(0), .clock = clock});
  if (!outbox) return UINT64_MAX;
  auto s = outbox->OpenStream("s", {.strategy = strategy, .retry = policy});
  if (!s) return UINT64_MAX;
  auto txn = outbox->Begin();
  if (!txn.Enqueue(**s, {.type = "t", .payload = "p"}) || !txn.Commit()) return UINT64_MAX;
  auto relay = MustMakeRelay(*outbox, publisher);
  if (!relay) return UINT64_MAX;
  for (int i = 0; i < passes; ++i) {
    clock->Advance(step);
    if (!relay->RunOnce()) return UINT64_MAX;
  }
  return publisher->attempts.load();
}

TEST(ExtremeDurations, HugeBackoffDoesNotRetryAtOnce) {
  using us = std::chrono::microseconds;
  for (Strategy strategy : {Strategy::kKeepOrder, Strategy::kPublishOnCommit}) {
    SCOPED_TRACE(std::string(ToString(strategy)));
    // The first delay is already "forever".
    EXPECT_EQ(
        AttemptsWith({.initial_backoff = us::max(), .max_backoff = us::max(), .jitter = 0.0}, 5, us(1000), strategy),
        1u);
    EXPECT_EQ(AttemptsWith({.initial_backoff = us::max() / 2, .max_backoff = us::max(), .jitter = 0.5}, 5, us(1000),
                           strategy),
              1u);
    // 1 s, then a delay capped by the largest max_backoff.
    EXPECT_EQ(
        AttemptsWith(
            {.initial_backoff = std::chrono::seconds(1), .max_backoff = us::max(), .multiplier = 1e300, .jitter = 0.0},
            5, std::chrono::seconds(2), strategy),
        2u);
    // The smallest delay: one attempt per pass.
    EXPECT_EQ(AttemptsWith({.initial_backoff = us(1), .max_backoff = us(1), .jitter = 0.0}, 3, us(2), strategy), 3u);
  }
}

TEST(ExtremeDurations, CleanIntervalBounds) {
  TempDir dir;
  const auto kMax = std::chrono::seconds(366LL * 24 * 3600);
  for (auto bad : {std::chrono::seconds::max(), kMax + std::chrono::seconds(1), std::chrono::seconds(-1),
                   std::chrono::seconds::min()}) {
    auto r = Outbox::Open({.path = dir.Sub("bad"), .clean_interval = bad});
    ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("clean_interval"), std::string::npos) << r.error().ToString();
    EXPECT_NE(r.error().message().find(std::to_string(kMax.count())), std::string::npos) << r.error().ToString();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("bad")));
  for (auto good : {kMax, std::chrono::seconds(0), std::chrono::seconds(1)}) {
    auto o = MustOpen(dir.Sub("good" + std::to_string(good.count())), {.clean_interval = good});
    ASSERT_NE(o, nullptr);
    ASSERT_OK(o->Close());
  }
}

}  // namespace
}  // namespace jaiminho
