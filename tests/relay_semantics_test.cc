// Misuse that used to fail silently or surprise (issue 13, items 8 and 9): a
// relay with invalid options, tampered and corrupt records reported only to
// OnParked, a missing handler that reordered a keep-order stream, OpenStream
// without options resetting a stream, headers outside max_payload_bytes.
#include <condition_variable>
#include <mutex>

#include "core/outbox_impl.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::RecordingPublisher;
using testing::TempDir;

constexpr int64_t kT0 = 1'700'000'000'000'000;

class CountingObserver : public Observer {
 public:
  void OnFailedToPublish(const Event&, const Error&) override { ++failed; }
  void OnFailedToPublishByRelay(const Event&, const Error&) override { ++failed_by_relay; }
  void OnParked(const Event&, std::string_view) override { ++parked; }
  std::atomic<int> failed{0}, failed_by_relay{0}, parked{0};
};

struct Fixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(FromMicros(kT0));
  std::shared_ptr<RecordingPublisher> publisher = std::make_shared<RecordingPublisher>();
  std::shared_ptr<CountingObserver> observer = std::make_shared<CountingObserver>();
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Error> captured;
  std::unique_ptr<Outbox> outbox;

  OutboxOptions Options() {
    OutboxOptions o;
    o.clock = clock;
    o.observers = {observer};
    o.clean_interval = std::chrono::seconds(0);
    o.retry = RetryPolicy{.initial_backoff = std::chrono::seconds(1),
                          .max_backoff = std::chrono::seconds(60),
                          .multiplier = 2.0,
                          .jitter = 0.0};
    o.capture_error = [this](const Error& e) {
      std::lock_guard l(mu);
      captured.push_back(e);
      cv.notify_all();
    };
    return o;
  }
  void Open(OutboxOptions o) {
    outbox = MustOpen(dir.Sub("db"), std::move(o));
    ASSERT_NE(outbox, nullptr);
  }
  void Commit(Stream* s, std::string_view type, std::string_view payload = "p") {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*s, {.type = type, .key = "k", .payload = payload}));
    ASSERT_OK(txn.Commit());
  }
  // Captured errors whose text contains every one of `words`.
  size_t CapturedWith(std::initializer_list<std::string_view> words) {
    std::lock_guard l(mu);
    size_t n = 0;
    for (const Error& e : captured) {
      std::string m = e.ToString();
      bool all = true;
      for (auto w : words)
        all &= m.find(w) != std::string::npos;
      n += all ? 1 : 0;
    }
    return n;
  }
  std::string AllCaptured() {
    std::lock_guard l(mu);
    std::string out;
    for (const Error& e : captured)
      out += e.ToString() + "\n";
    return out;
  }
  void PutRaw(Stream* s, char tag, uint64_t seq, const std::string& v) {
    auto k = internal::SeqKey(tag, seq);
    ASSERT_TRUE(
        outbox->db()->Put(rocksdb::WriteOptions(), testing::StreamFamily(*s), rocksdb::Slice(k.bytes, k.size), v).ok());
  }
  std::string GetRaw(Stream* s, char tag, uint64_t seq) {
    auto k = internal::SeqKey(tag, seq);
    std::string v;
    EXPECT_TRUE(
        outbox->db()->Get(rocksdb::ReadOptions(), testing::StreamFamily(*s), rocksdb::Slice(k.bytes, k.size), &v).ok());
    return v;
  }
  std::vector<uint64_t> DeliveredSeqs() {
    std::vector<uint64_t> out;
    for (const auto& d : publisher->deliveries())
      out.push_back(d.seq);
    return out;
  }
};

// ---------------------------------------------------------------------------
// Item 8: invalid relays and bad records are reported.

TEST(RelayMake, RefusesInvalidOptionsNamingThem) {
  Fixture f;
  f.Open(f.Options());
  ASSERT_OK(f.outbox->OpenStream("s"));
  auto no_publisher = Relay::Make(*f.outbox, nullptr);
  ASSERT_ERROR(no_publisher, ErrorCode::kInvalidArgument);
  auto batch0 = Relay::Make(*f.outbox, f.publisher, {.batch_size = 0});
  ASSERT_ERROR(batch0, ErrorCode::kInvalidArgument);
  EXPECT_NE(batch0.error().message().find("batch_size"), std::string::npos) << batch0.error().ToString();
  ASSERT_ERROR(Relay::Make(*f.outbox, f.publisher, {.batch_size = 65537}), ErrorCode::kInvalidArgument);
  auto interval0 = Relay::Make(*f.outbox, f.publisher, {.interval = std::chrono::microseconds(0)});
  ASSERT_ERROR(interval0, ErrorCode::kInvalidArgument);
  EXPECT_NE(interval0.error().message().find("interval"), std::string::npos) << interval0.error().ToString();
  auto unknown = Relay::Make(*f.outbox, f.publisher, {.streams = {"s", "nope"}});
  ASSERT_ERROR(unknown, ErrorCode::kNotFound);
  EXPECT_NE(unknown.error().message().find("'nope'"), std::string::npos) << unknown.error().ToString();

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Relay> relay, Relay::Make(*f.outbox, f.publisher, {.streams = {"s"}}));
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->FindStream("s"));
  f.Commit(s, "t");
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.published, 1u);
}

// A relay with invalid options cannot be built, so it can never be Start()ed:
// Make refuses it, naming the option, and nothing reaches capture_error.
void ExpectMakeRefuses(RelayOptions options, ErrorCode code, std::string_view word) {
  Fixture f;
  f.Open(f.Options());
  ASSERT_OK(f.outbox->OpenStream("s"));
  auto relay = Relay::Make(*f.outbox, f.publisher, std::move(options));
  ASSERT_ERROR(relay, code);
  EXPECT_NE(relay.error().message().find(word), std::string::npos)
      << "Make refused an invalid relay without naming " << word << ": " << relay.error().ToString();
  std::unique_lock l(f.mu);
  EXPECT_TRUE(f.captured.empty());
}

TEST(RelayMake, AnInvalidRelayCannotBeStarted) {
  ExpectMakeRefuses({.batch_size = 0}, ErrorCode::kInvalidArgument, "batch_size");
  ExpectMakeRefuses({.interval = std::chrono::microseconds(0)}, ErrorCode::kInvalidArgument, "interval");
  ExpectMakeRefuses({.streams = {"nope"}}, ErrorCode::kNotFound, "'nope'");
}

TEST(RelayReports, TamperedAndCorruptRecordsReachCaptureError) {
  Fixture f;
  OutboxOptions o = f.Options();
  o.signing.keys = {{.id = "key-a", .secret = "0123456789abcdef0123456789abcdef"}};
  f.Open(std::move(o));
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s"));
  f.Commit(s, "t", "good");
  f.Commit(s, "t", "good");
  // Seq 1: same record with another payload (the signature no longer matches).
  {
    internal::AlignedArena arena;
    auto d = internal::DecodeEnvelope(arena.Copy(f.GetRaw(s, 'p', 1)));
    ASSERT_TRUE(d.has_value());
    internal::EnvelopeFields fields = internal::FieldsOf(*d);
    fields.payload = "evil";
    std::string out;
    internal::EncodeEnvelope(fields, &out);
    f.PutRaw(s, 'p', 1, out);
  }
  // Seq 2: bytes that are no envelope at all.
  f.PutRaw(s, 'p', 2, "garbage");
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, f.publisher));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.parked, 2u);
  EXPECT_EQ(f.observer->parked.load(), 2);
  EXPECT_EQ(f.CapturedWith({"stream 's'", "seq 1", "tampered"}), 1u) << f.AllCaptured();
  EXPECT_EQ(f.CapturedWith({"stream 's'", "seq 2", "corrupt"}), 1u) << f.AllCaptured();
}

// ---------------------------------------------------------------------------
// Item 9a: a missing handler is a deployment error, not a failure.

TEST(MissingHandler, BlocksKeepOrderStreamUntilRegisteredThenDeliversInOrder) {
  Fixture f;
  f.Open(f.Options());
  // One attempt, then park: a missing handler must not count as an attempt.
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder,
                                                              .retry = RetryPolicy{.max_attempts = 1},
                                                              .on_exhaustion = OnExhaustion::kPark}));
  auto handlers = std::make_shared<HandlerRegistry>();
  std::vector<std::string> handled;
  std::mutex handled_mu;
  auto record = [&](const Event& e) -> Status {
    std::lock_guard l(handled_mu);
    handled.push_back(std::string(e.payload));
    return {};
  };
  ASSERT_OK(handlers->Register("known", record));
  f.Commit(s, "later.v1", "first");
  f.Commit(s, "known", "second");
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, handlers));
  for (int pass = 0; pass < 3; ++pass) {
    ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
    EXPECT_EQ(st.parked, 0u) << "pass " << pass;
    EXPECT_EQ(st.failed, 0u) << "pass " << pass;
    EXPECT_EQ(st.blocked, 1u) << "pass " << pass;
    f.clock->Advance(std::chrono::minutes(10));
  }
  EXPECT_TRUE(handled.empty()) << "the stream went on past its head";
  EXPECT_EQ(f.observer->failed_by_relay.load(), 0) << "no failure signal for a missing handler";
  EXPECT_EQ(f.observer->parked.load(), 0);
  ASSERT_OK_AND_ASSIGN(StoredEvent head, f.outbox->FindEvent(*s, 1));
  EXPECT_EQ(head->state, EventState::kPending);
  EXPECT_EQ(head->attempts, 0u) << "no attempt counted toward parking";
  ASSERT_OK_AND_ASSIGN(auto metrics, CollectMetrics(*f.outbox));
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_TRUE(metrics[0].blocked);
  EXPECT_EQ(metrics[0].blocked_seq, 1u);
  EXPECT_NE(metrics[0].blocked_error.find("no handler for type 'later.v1'"), std::string::npos)
      << metrics[0].blocked_error;
  EXPECT_EQ(f.CapturedWith({"stream 's'", "no handler for type 'later.v1'"}), 1u)
      << "reported once, not at every pass:\n"
      << f.AllCaptured();

  ASSERT_OK(handlers->Register("later.v1", record));
  f.clock->Advance(std::chrono::hours(1));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.published, 2u);
  EXPECT_EQ(handled, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(f.observer->parked.load(), 0);
}

TEST(MissingHandler, PublishOnCommitEventWaitsForRetryAndIsNotParked) {
  Fixture f;
  auto handlers = std::make_shared<HandlerRegistry>();
  OutboxOptions o = f.Options();
  o.publisher = handlers;
  f.Open(std::move(o));
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s", {.retry = RetryPolicy{.max_attempts = 1}}));
  f.Commit(s, "later.v1", "first");  // published inline: no handler yet
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*f.outbox, handlers));
  for (int pass = 0; pass < 3; ++pass) {
    f.clock->Advance(std::chrono::minutes(10));
    ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
    EXPECT_EQ(st.parked, 0u) << "pass " << pass;
  }
  EXPECT_EQ(f.observer->failed.load() + f.observer->failed_by_relay.load(), 0) << "no failure signal";
  EXPECT_EQ(f.observer->parked.load(), 0);
  ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*s, 1));
  EXPECT_EQ(e->state, EventState::kRetrying);
  EXPECT_EQ(e->attempts, 0u);
  EXPECT_EQ(f.CapturedWith({"stream 's'", "no handler for type 'later.v1'"}), 1u) << f.AllCaptured();

  std::atomic<int> handled{0};
  ASSERT_OK(handlers->Register("later.v1", [&](const Event&) -> Status {
    ++handled;
    return {};
  }));
  f.clock->Advance(std::chrono::hours(1));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.published, 1u);
  EXPECT_EQ(handled.load(), 1);
}

// ---------------------------------------------------------------------------
// Item 9b: only options given explicitly change a stored stream.

TEST(OpenStreamOptions, UnsetFieldsKeepTheStoredValues) {
  Fixture f;
  f.Open(f.Options());
  const RetryPolicy r1{.max_attempts = 3, .initial_backoff = std::chrono::seconds(2)};
  ASSERT_OK(f.outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder,
                                       .retry = r1,
                                       .on_exhaustion = OnExhaustion::kPark,
                                       .time_to_delete = std::chrono::hours(2)}));
  auto check = [&](Stream* s, uint32_t attempts) {
    EXPECT_EQ(s->strategy(), Strategy::kKeepOrder);
    EXPECT_EQ(s->retry().max_attempts, attempts);
    EXPECT_EQ(s->on_exhaustion(), OnExhaustion::kPark);
    EXPECT_EQ(s->time_to_delete(), std::chrono::hours(2));
  };
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s"));
  check(s, 3);
  ASSERT_OK(f.outbox->Close());
  f.outbox.reset();
  f.Open(f.Options());
  ASSERT_OK_AND_ASSIGN(s, f.outbox->OpenStream("s"));
  check(s, 3);
  // One field given: only that one changes, and it is stored.
  ASSERT_OK_AND_ASSIGN(s, f.outbox->OpenStream("s", {.retry = RetryPolicy{.max_attempts = 7}}));
  check(s, 7);
  ASSERT_OK(f.outbox->Close());
  f.outbox.reset();
  f.Open(f.Options());
  ASSERT_OK_AND_ASSIGN(s, f.outbox->FindStream("s"));
  check(s, 7);
  // A new stream still takes the outbox-wide defaults for unset fields.
  ASSERT_OK_AND_ASSIGN(Stream * t, f.outbox->OpenStream("t"));
  EXPECT_EQ(t->strategy(), Strategy::kPublishOnCommit);
  EXPECT_EQ(t->on_exhaustion(), OnExhaustion::kBlock);
}

// ---------------------------------------------------------------------------
// Item 9c: limits of Enqueue.

TEST(EnqueueLimits, HeadersCountTowardMaxPayloadBytes) {
  Fixture f;
  OutboxOptions o = f.Options();
  o.max_payload_bytes = 64;
  f.Open(std::move(o));
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s"));
  const std::string payload(40, 'x');
  const std::string fits(23, 'v');     // 40 + 1 + 23 = 64
  const std::string too_big(24, 'v');  // 65
  const std::string huge(4096, 'v');
  auto txn = f.outbox->Begin();
  Header ok_h[] = {{"h", fits}};
  ASSERT_OK(txn.Enqueue(*s, {.type = "t", .payload = payload, .headers = ok_h}));
  Header big_h[] = {{"h", too_big}};
  auto r = txn.Enqueue(*s, {.type = "t", .payload = payload, .headers = big_h});
  ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("headers"), std::string::npos) << r.error().ToString();
  EXPECT_NE(r.error().message().find("max_payload_bytes"), std::string::npos) << r.error().ToString();
  auto txn2 = f.outbox->Begin();
  Header huge_h[] = {{"h", huge}};
  ASSERT_ERROR(txn2.Enqueue(*s, {.type = "t", .payload = "", .headers = huge_h}), ErrorCode::kInvalidArgument);
}

TEST(EnqueueLimits, KeyOfMoreThan64KiBIsRefused) {
  Fixture f;
  f.Open(f.Options());
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s"));
  const std::string max_key(kMaxEventKeyBytes, 'k');
  const std::string long_key(kMaxEventKeyBytes + 1, 'k');
  auto txn = f.outbox->Begin();
  ASSERT_OK(txn.Enqueue(*s, {.type = "t", .key = max_key, .payload = "p"}));
  auto r = txn.Enqueue(*s, {.type = "t", .key = long_key, .payload = "p"});
  ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("key"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(kMaxEventKeyBytes, 64u * 1024u);
}

}  // namespace
}  // namespace jaiminho
