// Bad input beyond open_test and relay_test: valid envelopes cut short (from the
// codec) in both strategies and in the retry range, records that name another
// stream or seq, an envelope from a newer library, malformed keys, an unknown
// handler in a keep-order stream, limits at their edge, options the existing
// tests do not cover, and corrupt meta records. Each gives a clear error or a
// parked record with its reason, and nothing else is lost or blocked beyond
// what the strategy says.
#include <rocksdb/db.h>

#include <cmath>
#include <cstdio>
#include <set>

#include "core/outbox_impl.h"
#include "jaiminho/fb/envelope_generated.h"
#include "storage/delivery_log.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/meta.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::RawKeys;
using testing::RecordingPublisher;
using testing::StreamFamily;
using testing::TempDir;

struct Bed {
  TempDir dir;
  std::vector<Error> captured;
  std::mutex mu;
  std::unique_ptr<Outbox> outbox;
  std::shared_ptr<RecordingPublisher> publisher = std::make_shared<RecordingPublisher>();

  void Open(OutboxOptions o = {}) {
    o.capture_error = [this](const Error& e) {
      std::lock_guard l(mu);
      captured.push_back(e);
    };
    outbox = MustOpen(dir.Sub("db"), std::move(o));
    ASSERT_NE(outbox, nullptr);
  }
  void Commit(Stream* s, int n) {
    for (int i = 0; i < n; ++i) {
      auto txn = outbox->Begin();
      std::string payload = "payload-" + std::to_string(i);
      ASSERT_OK(txn.Enqueue(*s, {.type = "t", .payload = payload}));
      ASSERT_OK(txn.Commit());
    }
  }
  // Writes raw bytes under a raw key of the stream's column family.
  void Raw(Stream* s, std::string_view key, std::string_view value) {
    ASSERT_TRUE(outbox->db()->Put(rocksdb::WriteOptions(), StreamFamily(*s), key, value).ok());
  }
  // A valid envelope of `stream` with `seq`, as the library writes it.
  static std::string Envelope(std::string_view stream, uint64_t seq, Strategy strategy, std::string_view payload) {
    internal::EnvelopeFields f;
    f.seq = seq;
    f.stream = stream;
    f.type = "t";
    f.payload = payload;
    f.encoding = "application/octet-stream";
    f.created_at = 1;
    f.strategy = strategy;
    std::string out;
    internal::EncodeEnvelope(f, &out);
    return out;
  }
  std::vector<uint64_t> Delivered(std::string_view stream) {
    std::vector<uint64_t> out;
    for (const auto& d : publisher->deliveries()) {
      if (d.stream == stream) out.push_back(d.seq);
    }
    return out;
  }
  bool Captured(std::string_view needle) {
    std::lock_guard l(mu);
    for (const auto& e : captured) {
      if (e.message().find(needle) != std::string::npos) return true;
    }
    return false;
  }
};

std::string Pending(uint64_t seq) {
  return std::string(internal::SeqKey(internal::kPendingTag, seq).view());
}

// Every length of a valid envelope cut short, over seq 2 of a stream of 3, in
// each strategy: the record is parked as corrupt with its bytes kept (or, when
// the cut only removed padding, delivered intact); seqs 1 and 3 are delivered,
// a keep-order stream in order and not blocked by it.
TEST(BadInput, TruncatedEnvelopesAreParkedWithTheirBytesAndBlockNothing) {
  for (Strategy strategy : {Strategy::kKeepOrder, Strategy::kPublishOnCommit}) {
    SCOPED_TRACE(std::string(ToString(strategy)));
    // One stream per cut: about a dozen cuts spread over the envelope, and the last byte.
    const size_t size = Bed::Envelope("cut.000", 2, strategy, "the real payload").size();
    std::vector<size_t> cuts;
    for (size_t cut = 0; cut < size; cut += std::max<size_t>(1, size / 12))
      cuts.push_back(cut);
    cuts.push_back(size - 1);
    Bed b;
    b.Open();
    std::vector<std::pair<Stream*, std::string>> streams;
    for (size_t cut : cuts) {
      char name[16];
      std::snprintf(name, sizeof name, "cut.%03zu", cut);
      ASSERT_OK_AND_ASSIGN(Stream * s, b.outbox->OpenStream(name, {.strategy = strategy}));
      b.Commit(s, 3);
      std::string truncated = Bed::Envelope(name, 2, strategy, "the real payload").substr(0, cut);
      b.Raw(s, Pending(2), truncated);
      streams.emplace_back(s, std::move(truncated));
    }
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*b.outbox, b.publisher));
    ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
    size_t parked = 0, intact = 0;
    for (const auto& [s, truncated] : streams) {
      SCOPED_TRACE(s->name());
      ASSERT_OK_AND_ASSIGN(StoredEvent e, b.outbox->FindEvent(*s, 2));
      if (e->state == EventState::kParked) {
        ++parked;
        EXPECT_EQ(e->type, "jaiminho.corrupt");
        EXPECT_EQ(e->payload, truncated) << "the bad bytes are kept";
        EXPECT_NE(e->note.find("corrupt record"), std::string_view::npos) << e->note;
        EXPECT_EQ(b.Delivered(s->name()), (std::vector<uint64_t>{1, 3}));
      } else {
        ++intact;
        EXPECT_EQ(e->state, EventState::kSent);
        EXPECT_EQ(e->payload, "the real payload");
        EXPECT_EQ(b.Delivered(s->name()), (std::vector<uint64_t>{1, 2, 3}));
      }
    }
    EXPECT_EQ(st.parked, parked);
    EXPECT_GT(parked, cuts.size() - 3);
    EXPECT_LE(intact, 1u) << "only a cut into the trailing padding may decode";
  }
}

// A corrupt record in the retry range (a publish-on-commit event waiting for
// its next attempt) is parked when due; the other retries are delivered.
TEST(BadInput, CorruptRetryRecordIsParkedAndTheOtherRetriesGoOut) {
  Bed b;
  auto clock = std::make_shared<ManualClock>(FromMicros(1'700'000'000'000'000));
  b.Open({.retry = RetryPolicy{.initial_backoff = std::chrono::seconds(1), .jitter = 0}, .clock = clock});
  ASSERT_OK_AND_ASSIGN(Stream * s, b.outbox->OpenStream("s"));
  b.Commit(s, 3);
  b.publisher->fail = [](const Event&) { return Error(ErrorCode::kUnavailable, "down"); };
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*b.outbox, b.publisher));
  ASSERT_OK(relay->RunOnce());
  ASSERT_OK_AND_ASSIGN(auto retrying, b.outbox->ListEvents(*s, EventState::kRetrying));
  ASSERT_EQ(retrying.size(), 3u);
  // Overwrite seq 2's retry record with a cut envelope.
  const int64_t due = ToMicros(retrying[1]->next_attempt_at);
  std::string bytes = Bed::Envelope("s", 2, Strategy::kPublishOnCommit, "x");
  b.Raw(s, internal::RetryKey(due, 2).view(), bytes.substr(0, bytes.size() / 2));
  b.publisher->fail = nullptr;
  clock->Advance(std::chrono::seconds(2));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.parked, 1u);
  auto d = b.Delivered("s");
  std::sort(d.begin(), d.end());
  EXPECT_EQ(d, (std::vector<uint64_t>{1, 3}));
  ASSERT_OK_AND_ASSIGN(StoredEvent e, b.outbox->FindEvent(*s, 2));
  EXPECT_EQ(e->state, EventState::kParked);
  EXPECT_NE(e->note.find("corrupt record"), std::string_view::npos);
}

// A well-formed envelope under the wrong key (another stream's, or another
// seq's: a misplaced copy) is not published as if it belonged there: it is
// parked with a reason naming both, and the stream goes on.
TEST(BadInput, EnvelopeOfAnotherStreamOrSeqIsParkedNotPublished) {
  Bed b;
  b.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, b.outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder}));
  b.Commit(s, 4);
  b.Raw(s, Pending(2), Bed::Envelope("other", 2, Strategy::kKeepOrder, "not ours"));
  b.Raw(s, Pending(3), Bed::Envelope("s", 7, Strategy::kKeepOrder, "misplaced"));
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*b.outbox, b.publisher));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.parked, 2u);
  EXPECT_EQ(b.Delivered("s"), (std::vector<uint64_t>{1, 4}));
  ASSERT_OK_AND_ASSIGN(StoredEvent two, b.outbox->FindEvent(*s, 2));
  EXPECT_EQ(two->state, EventState::kParked);
  EXPECT_NE(two->note.find("'other'"), std::string_view::npos) << two->note;
  ASSERT_OK_AND_ASSIGN(StoredEvent three, b.outbox->FindEvent(*s, 3));
  EXPECT_NE(three->note.find("seq 7"), std::string_view::npos) << three->note;
}

// A record written by a newer library (envelope version 2) is not guessed at:
// it is parked with the version in its reason and its bytes kept, so a newer
// library can requeue it; the stream goes on.
TEST(BadInput, EnvelopeFromANewerLibraryIsParkedWithItsVersion) {
  Bed b;
  b.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, b.outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder}));
  b.Commit(s, 3);
  std::string newer = Bed::Envelope("s", 2, Strategy::kKeepOrder, "from the future");
  ASSERT_TRUE(fb::GetMutableEnvelope(newer.data())->mutate_version(2));
  b.Raw(s, Pending(2), newer);
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*b.outbox, b.publisher));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(b.Delivered("s"), (std::vector<uint64_t>{1, 3}));
  ASSERT_OK_AND_ASSIGN(StoredEvent e, b.outbox->FindEvent(*s, 2));
  EXPECT_EQ(e->state, EventState::kParked);
  EXPECT_NE(e->note.find("unknown envelope version 2"), std::string_view::npos) << e->note;
  EXPECT_EQ(e->payload, newer);
}

// Keys that are not of the stream's key format (wrong length, unknown tag) are
// left alone (for the operator's tools), reported, and do not stop delivery.
TEST(BadInput, MalformedKeysAreReportedAndSkipped) {
  Bed b;
  b.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, b.outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder}));
  b.Commit(s, 3);
  const std::string valid = Bed::Envelope("s", 1, Strategy::kKeepOrder, "x");
  b.Raw(s, Pending(1) + "extra", valid);                     // 'p' with a long key, sorts between 1 and 2
  b.Raw(s, Pending(2).substr(0, 5), valid);                  // 'p' with a short key, sorts before 1
  b.Raw(s, std::string("q") + std::string(8, '\0'), valid);  // no such state
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*b.outbox, b.publisher));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.published, 3u);
  EXPECT_EQ(b.Delivered("s"), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(b.Captured("malformed key")) << "the relay reports what it skipped";
  size_t left = 0;
  for (auto [tag, seq] : RawKeys(*b.outbox, *s))
    left += seq == 0 && tag != internal::kRunTag;  // not decodable, and not the delivery log
  EXPECT_EQ(left, 3u) << "malformed keys are kept, not deleted";
}

// An unknown handler is a deployment error (issue 13): a keep-order stream
// blocks at the event, without counting an attempt, until an operator skips it
// (or the handler is registered); then the stream goes on in order.
TEST(BadInput, UnknownHandlerInAKeepOrderStreamBlocksUntilSkipped) {
  Bed b;
  b.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, b.outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder}));
  for (std::string_view type : {"known", "unknown.v9", "known"}) {
    auto txn = b.outbox->Begin();
    ASSERT_OK(txn.Enqueue(*s, {.type = type}));
    ASSERT_OK(txn.Commit());
  }
  auto handlers = std::make_shared<HandlerRegistry>();
  std::vector<uint64_t> handled;
  ASSERT_OK(handlers->Register("known", [&](const Event& e) -> Status {
    handled.push_back(e.id.seq);
    return {};
  }));
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*b.outbox, handlers));
  ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
  EXPECT_EQ(st.parked, 0u);
  EXPECT_EQ(st.blocked, 1u);
  EXPECT_EQ(handled, (std::vector<uint64_t>{1}));
  ASSERT_OK_AND_ASSIGN(StoredEvent e, b.outbox->FindEvent(*s, 2));
  EXPECT_EQ(e->state, EventState::kPending);
  EXPECT_EQ(e->attempts, 0u);
  EXPECT_NE(e->note.find("no handler for type 'unknown.v9'"), std::string_view::npos) << e->note;
  ASSERT_OK(b.outbox->Skip(*s, 2, "retired event type"));
  ASSERT_OK(relay->RunOnce());
  EXPECT_EQ(handled, (std::vector<uint64_t>{1, 3}));
}

// Limits at their edge: exactly max_payload_bytes is accepted, one more is
// refused naming the stream and the limit; the same for the key, encoding and
// header count. A refused Enqueue poisons only its own transaction.
TEST(BadInput, LimitsAreExactAndARefusalPoisonsOnlyItsTransaction) {
  Bed b;
  b.Open({.max_payload_bytes = 16});
  ASSERT_OK_AND_ASSIGN(Stream * s, b.outbox->OpenStream("limits"));
  auto ok = b.outbox->Begin();
  ASSERT_OK(ok.Enqueue(*s, {.type = "t", .payload = std::string(16, 'x')}));
  ASSERT_OK(ok.Enqueue(*s, {.type = std::string(256, 't')}));
  ASSERT_OK(ok.Enqueue(*s, {.type = "t", .key = std::string(64 << 10, 'k')}));
  ASSERT_OK(ok.Enqueue(*s, {.type = "t", .encoding = std::string(256, 'e')}));
  // Empty headers: their bytes count toward max_payload_bytes (16 here).
  std::vector<Header> many(64, Header{});
  ASSERT_OK(ok.Enqueue(*s, {.type = "t", .headers = many}));
  std::vector<Header> too_many(65, Header{"h", "v"});
  struct Case {
    Message m;
    std::string mentions;
  };
  const std::string big_payload(17, 'x'), big_key((64 << 10) + 1, 'k'), big_encoding(257, 'e');
  std::vector<Case> cases = {
      {{.type = "t", .payload = big_payload}, "max_payload_bytes (16)"},
      {{.type = "t", .key = big_key}, "key of 65537 bytes"},
      {{.type = "t", .encoding = big_encoding}, "encoding of 257 bytes"},
      {{.type = "t", .headers = too_many}, "65 headers"},
      {{.type = "t", .strategy = static_cast<Strategy>(9)}, "unknown strategy 9"},
  };
  for (const auto& c : cases) {
    auto bad = b.outbox->Begin();
    auto r = bad.Enqueue(*s, c.m);
    ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("limits"), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find(c.mentions), std::string::npos) << r.error().message();
    ASSERT_ERROR(bad.Commit(), ErrorCode::kInvalidArgument);
  }
  ASSERT_OK_AND_ASSIGN(Receipt receipt, ok.Commit());
  EXPECT_EQ(receipt.events.size(), 5u);
  EXPECT_EQ(receipt.events.front().seq, 1u) << "the refused transactions consumed no seq";
  EXPECT_EQ(RawKeys(*b.outbox, *s).size(), 5u);
}

// Options open_test does not cover: each refused at Open with
// kInvalidArgument naming it, creating nothing.
TEST(BadInput, MoreInvalidOptionsAreRefusedByName) {
  TempDir dir;
  struct Case {
    OutboxOptions options;
    std::string mentions;
  };
  std::vector<Case> cases;
  cases.push_back({{.path = dir.Sub("a"), .max_payload_bytes = (64u << 20) + 1}, "max_payload_bytes"});
  cases.push_back({{.path = dir.Sub("b"), .inline_dispatch = static_cast<InlineDispatch>(9)}, "inline_dispatch"});
  cases.push_back({{.path = dir.Sub("c"), .observers = {nullptr}}, "null observer"});
  cases.push_back({{.path = dir.Sub("d"), .retry = {.jitter = -0.1}}, "jitter"});
  cases.push_back({{.path = dir.Sub("e"), .retry = {.multiplier = std::nan("")}}, "multiplier"});
  cases.push_back({{.path = dir.Sub("f"), .business_families = {{.name = ""}}}, "empty name"});
  cases.push_back({{.path = dir.Sub("g"), .time_to_delete = std::chrono::seconds(-5)}, "time_to_delete"});
  for (auto& c : cases) {
    auto r = Outbox::Open(c.options);
    ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.mentions), std::string::npos) << r.error().message();
    EXPECT_FALSE(std::filesystem::exists(c.options.path)) << c.options.path;
  }
  auto outbox = MustOpen(dir.Sub("ok"));
  auto r = outbox->OpenStream("s", {.on_exhaustion = static_cast<OnExhaustion>(7)});
  ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("on_exhaustion"), std::string::npos) << r.error().message();
  auto r2 = outbox->OpenStream("s", {.strategy = static_cast<Strategy>(0)});
  ASSERT_ERROR(r2, ErrorCode::kInvalidArgument);
  EXPECT_NE(r2.error().message().find("strategy"), std::string::npos) << r2.error().message();
}

// Corrupt records in jaiminho.meta: Open refuses the database with
// kCorruption naming what is wrong, and changes nothing.
TEST(BadInput, CorruptMetaRecordsAreRefusedAtOpenNamingThem) {
  struct Case {
    std::string key;
    std::string value;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {internal::StreamMetaKey("s", "hwm"), "abc", "seq reservation"},
      {internal::StreamMetaKey("s", "cursor"), std::string(9, '\1'), "relay cursor"},
      {internal::StreamMetaKey("s", "config"), "not a flatbuffer", "stream 's': bad stored config"},
      {std::string(internal::kDbIdKey), "short", "database id"},
      {std::string(internal::kFormatKey), "x", "format record"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key);
    TempDir dir;
    std::string path = dir.Sub("db");
    {
      auto outbox = MustOpen(path);
      ASSERT_OK(outbox->OpenStream("s"));
      ASSERT_OK(outbox->Close());
      // Written with plain RocksDB, as a disk error or a foreign tool would.
      testing::RawDb(path).Put(internal::kMetaFamily, c.key, c.value);
    }
    auto before = testing::Snapshot(path);
    auto r = Outbox::Open({.path = path});
    ASSERT_ERROR(r, ErrorCode::kCorruption);
    EXPECT_NE(r.error().message().find(c.mentions), std::string::npos) << r.error().message();
    EXPECT_EQ(testing::Snapshot(path), before) << "refusing a database must not write to it";
  }
}

// Regression (found by tests/fuzz/envelope_fuzz): a crafted
// envelope that passes FlatBuffers verification can place a patchable scalar
// on bytes that belong to something else: in the first input seq and sent_at
// share offset 88; in the second, sent_at lies on the stream name's string.
// DecodeEnvelope accepted both. The relay marks an event sent by patching
// sent_at in place (DeliveryBatch::Succeeded), so it then rewrites the seq of
// the first (the sent record names another seq than its key) and corrupts the
// second (a delivered record becomes unreadable). The decoder now rejects,
// as corrupt, envelopes whose patchable scalars (seq, attempts,
// next_attempt_at, sent_at) overlap each other, the vtable, or any string or
// vector the envelope references.
std::string FromHex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

TEST(BadInput, EnvelopeWithOverlappingScalarsIsRejected) {
  const std::string seq_on_sent_at = FromHex(
      "340000004a4d4556000000000000260048000600240020001c001800140010000000340005000c0000002c0024000000"
      "00000800260000000001010040000000000000005c000000840000008c00000090000000a40000000000000000000000"
      "00000000000000000000000000000000010000000000000000001b000000000000007272757074207265636f72643a20"
      "62616420656e76656c6f706500000000250000006170706c69636174696f6e2f782d6a61696d696e686f2d636f727275"
      "70742d7265636f72640000000700000067617262616765000000000000000000100000006a61696d696e686f2e636f72"
      "72757074000000000100000073000000");
  const std::string sent_at_on_stream_name = FromHex(
      "280000004a4d455620004400060038001c001800140010000c0000003000050008000000280060002000000000010100"
      "00000000340000003c0000003c0000004000000044000000000000000000000000000000070000000000000000000000"
      "010000000000000000000000000000000000000000000000000000000000000001000000740000000100000073000000");
  internal::AlignedArena arena;
  for (const std::string& bytes : {seq_on_sent_at, sent_at_on_stream_name}) {
    auto d = internal::DecodeEnvelope(arena.Copy(bytes));
    EXPECT_FALSE(d.has_value()) << "accepted an envelope whose scalars overlap other data";
  }

  // What the relay does to them today.
  Bed b;
  b.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, b.outbox->OpenStream("s"));
  b.Commit(s, 1);  // seq 1, so that the relay reads up to it; then overwritten
  b.Raw(s, Pending(0), seq_on_sent_at);
  b.Raw(s, Pending(1), sent_at_on_stream_name);
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*b.outbox, b.publisher));
  ASSERT_OK(relay->RunOnce());
  auto first = b.outbox->FindEvent(*s, 0);
  ASSERT_OK(first);
  EXPECT_EQ((*first)->id.seq, 0u) << "the record under seq 0 now names seq " << (*first)->id.seq;
  auto second = b.outbox->FindEvent(*s, 1);
  ASSERT_TRUE(second.has_value()) << "the delivered record of seq 1 became unreadable: " << second.error().ToString();
  EXPECT_EQ((*second)->id.stream, "s") << "state " << ToString((*second)->state) << ", note " << (*second)->note;
}

}  // namespace
}  // namespace jaiminho
