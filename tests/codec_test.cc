// The on-disk codecs: envelope, keys, meta values, and the JSON writer.
#include <fmt/format.h>

#include <random>

#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/meta.h"
#include "support/envelope_compare.h"
#include "support/test_util.h"
#include "util/json.h"

namespace jaiminho::internal {
namespace {

std::string Encode(const EnvelopeFields& f, ScalarOffsets* offsets = nullptr) {
  std::string out;
  ScalarOffsets o = EncodeEnvelope(f, &out);
  if (offsets) *offsets = o;
  return out;
}

EnvelopeFields Sample() {
  static const Header headers[] = {{"h1", "v1"}};
  EnvelopeFields f;
  f.seq = 77;
  f.stream = "s";
  f.type = "type.v1";
  f.key = "key";
  f.payload = std::string_view("pay\0load", 8);
  f.encoding = "application/octet-stream";
  f.headers = headers;
  f.created_at = 123;
  f.strategy = Strategy::kKeepOrder;
  f.attempts = 3;
  f.last_error = "boom";
  f.next_attempt_at = 456;
  f.sent_at = 789;
  f.note = "note";
  return f;
}

TEST(Envelope, RoundTripsEveryField) {
  AlignedArena arena;
  std::string bytes = Encode(Sample());
  ASSERT_OK_AND_ASSIGN(DecodedEnvelope d, DecodeEnvelope(arena.Copy(bytes)));
  const Event& e = d.event;
  EXPECT_EQ(e.id.seq, 77u);
  EXPECT_EQ(d.stream, "s");
  EXPECT_EQ(e.type, "type.v1");
  EXPECT_EQ(e.key, "key");
  EXPECT_EQ(e.payload, std::string_view("pay\0load", 8));
  ASSERT_EQ(e.headers.size(), 1u);
  EXPECT_EQ(e.headers[0].value, "v1");
  EXPECT_EQ(ToMicros(e.created_at), 123);
  EXPECT_EQ(e.strategy, Strategy::kKeepOrder);
  EXPECT_EQ(e.attempts, 3u);
  EXPECT_EQ(e.last_error, "boom");
  EXPECT_EQ(ToMicros(e.next_attempt_at), 456);
  EXPECT_EQ(ToMicros(e.sent_at), 789);
  EXPECT_EQ(e.note, "note");
}

// EncodeEnvelope writes envelopes without headers itself, not through
// FlatBufferBuilder: the bytes and offsets must be the builder's, for every
// size and presence of the fields (a layout depends on nothing else), and the
// builder's own output must keep matching the frozen schema's tests.
TEST(Envelope, DirectEncodingIsTheBuildersByteForByte) {
  std::mt19937_64 rng(18);
  std::string pool(300, '\0');
  for (char& c : pool)
    c = static_cast<char>(rng());
  auto piece = [&](size_t n) { return std::string_view(pool).substr(rng() % 32, n); };
  auto check = [&](const EnvelopeFields& f, const char* what) {
    std::string direct, built;
    ScalarOffsets od = EncodeEnvelope(f, &direct);
    ScalarOffsets ob = EncodeEnvelopeWithBuilder(f, &built);
    ASSERT_EQ(direct, built) << what;
    EXPECT_EQ(od.seq, ob.seq) << what;
    EXPECT_EQ(od.attempts, ob.attempts) << what;
    EXPECT_EQ(od.next_attempt_at, ob.next_attempt_at) << what;
    EXPECT_EQ(od.sent_at, ob.sent_at) << what;
    EXPECT_EQ(od.signature, ob.signature) << what;
    if (f.type.empty()) return;  // encodable, refused by the decoder
    AlignedArena arena;
    ASSERT_OK_AND_ASSIGN(DecodedEnvelope d, DecodeEnvelope(arena.Copy(direct)));
    EXPECT_EQ(d.event.payload, f.payload);
    EXPECT_EQ(d.signature, f.signature);
  };
  // Every length 0-9 of each string field in turn (all alignments), the others fixed.
  for (int field = 0; field < 9; ++field) {
    for (size_t n = 0; n < 10; ++n) {
      EnvelopeFields f;
      f.stream = piece(field == 0 ? n : 3);
      f.type = piece(field == 1 ? n : 7);
      f.key = piece(field == 2 ? n : 16);
      f.payload = piece(field == 3 ? n : 200);
      f.encoding = piece(field == 4 ? n : 0);
      f.last_error = piece(field == 5 ? n : 0);
      f.key_id = piece(field == 6 ? n : 0);
      f.note = piece(field == 7 ? n : 0);
      f.signature = piece(field == 8 ? n : 0);
      f.seq = rng();
      f.created_at = static_cast<int64_t>(rng());
      f.strategy = Strategy::kKeepOrder;
      check(f, "one field varies");
    }
  }
  // Random sizes and presence.
  for (int i = 0; i < 2000; ++i) {
    EnvelopeFields f;
    f.stream = piece(rng() % 12);
    f.type = piece(1 + rng() % 12);
    f.key = piece(rng() % 40);
    f.payload = piece(rng() % 260);
    f.encoding = piece(rng() % 9);
    if (rng() % 2) f.last_error = piece(rng() % 20);
    if (rng() % 2) f.key_id = piece(rng() % 20);
    if (rng() % 2) f.note = piece(rng() % 20);
    if (rng() % 2) f.signature = piece(32);
    f.seq = rng();
    f.created_at = static_cast<int64_t>(rng());
    f.attempts = static_cast<uint32_t>(rng());
    f.next_attempt_at = static_cast<int64_t>(rng());
    f.sent_at = static_cast<int64_t>(rng());
    f.strategy = rng() % 2 ? Strategy::kKeepOrder : Strategy::kPublishOnCommit;
    check(f, "random");
    if (HasFatalFailure()) return;
  }
  // Runs of envelopes with the same sizes (the direct encoder then rewrites
  // the previous one's contents and scalars), broken by other sizes, by
  // envelopes with headers (the builder) and by a large one (a new scratch
  // buffer), with and without the optional fields.
  std::string big(9000, 'b');
  for (int run = 0; run < 40; ++run) {
    const size_t payload = rng() % 260, key = rng() % 40;
    const bool optional = run % 2 == 1;
    for (int i = 0; i < 12; ++i) {
      EnvelopeFields f;
      f.stream = piece(5);
      f.type = piece(9);
      f.key = piece(key);
      f.payload = piece(payload);
      f.encoding = piece(4);
      if (optional) {
        f.last_error = piece(6);
        f.key_id = piece(7);
        f.note = piece(3);
        f.signature = piece(32);
      }
      f.seq = rng();
      f.created_at = static_cast<int64_t>(rng());
      f.attempts = static_cast<uint32_t>(rng());
      f.next_attempt_at = static_cast<int64_t>(rng());
      f.sent_at = static_cast<int64_t>(rng());
      f.strategy = rng() % 2 ? Strategy::kKeepOrder : Strategy::kPublishOnCommit;
      check(f, "same sizes");
      if (HasFatalFailure()) return;
    }
    EnvelopeFields other = Sample();
    if (run % 3 == 0) check(other, "headers between runs");
    if (run % 3 == 1) {
      other.headers = {};
      other.payload = big;
      check(other, "large between runs");
    }
  }
  // With headers, both are the builder.
  EnvelopeFields f = Sample();
  check(f, "headers");
}

TEST(Envelope, ScalarsArePatchedInPlace) {
  AlignedArena arena;
  EnvelopeFields f = Sample();
  f.seq = 0;
  f.sent_at = 0;
  ScalarOffsets off;
  std::string bytes = Encode(f, &off);
  PatchU64(bytes.data(), off.seq, 0x0102030405060708ull);
  PatchU64(bytes.data(), off.sent_at, 99);
  PatchU32(bytes.data(), off.attempts, 5);
  ASSERT_OK_AND_ASSIGN(DecodedEnvelope d, DecodeEnvelope(arena.Copy(bytes)));
  EXPECT_EQ(d.event.id.seq, 0x0102030405060708ull);
  EXPECT_EQ(ToMicros(d.event.sent_at), 99);
  EXPECT_EQ(d.event.attempts, 5u);
}

TEST(Envelope, GarbageAndTruncationAreCorruptionNeverACrash) {
  AlignedArena arena;
  std::string good = Encode(Sample());
  size_t truncations_rejected = 0;
  for (size_t n = 0; n < good.size(); ++n) {
    auto r = DecodeEnvelope(arena.Copy(std::string_view(good).substr(0, n)));
    if (r) {
      // Only trailing alignment padding may go without loss.
      EXPECT_EQ(r->event.payload, std::string_view("pay\0load", 8)) << "truncated to " << n;
      EXPECT_GE(n + 8, good.size()) << "truncated to " << n;
    } else {
      EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
      ++truncations_rejected;
    }
  }
  EXPECT_GE(truncations_rejected + 8, good.size());
  std::mt19937 rng(7);
  int rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string b = good;
    for (int k = 0; k < 3; ++k)
      b[rng() % b.size()] = static_cast<char>(rng());
    auto r = DecodeEnvelope(arena.Copy(b));
    if (!r) {
      EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  ASSERT_ERROR(DecodeEnvelope(arena.Copy("garbage bytes that are not an envelope")), ErrorCode::kCorruption);
}

// The relay decodes every record it reads, and a stream's records share one
// structure, so DecodeEnvelopeInto verifies an envelope with the structure of
// the last one it verified in full by checking only what differs (its strings'
// and vectors' bounds). It must accept and decode exactly what the full path
// does: every one-byte change, truncation and extension of envelopes of
// several structures, decoded with the original's structure memoized, against
// the same bytes decoded in full.
TEST(Envelope, MemoizedStructureVerifiesExactlyAsTheFullPath) {
  AlignedArena arena;
  std::vector<std::string> originals;
  {
    EnvelopeFields f = Sample();
    f.headers = {};
    originals.push_back(Encode(f));  // with last_error and note
    f.last_error = "";
    f.note = "";
    originals.push_back(Encode(f));  // what a commit writes
    f.key_id = "k1";
    f.signature = "0123456789abcdef0123456789abcdef";
    originals.push_back(Encode(f));  // signed
    f.payload = "";
    f.key = "";
    originals.push_back(Encode(f));         // empty strings
    originals.push_back(Encode(Sample()));  // headers: never memoized
  }
  std::mt19937 rng(11);
  size_t shortcuts = 0, accepted_by_shortcut = 0, compared = 0;
  auto compare = [&](const std::string& original, const std::string& variant, const std::string& what) {
    ForgetEnvelopeShape();
    ASSERT_TRUE(DecodeEnvelope(arena.Copy(original)).has_value()) << what;
    const uint64_t hits = EnvelopeShapeHits();
    auto shortcut = DecodeEnvelope(arena.Copy(variant));
    const bool took_shortcut = EnvelopeShapeHits() != hits;
    ForgetEnvelopeShape();
    auto full = DecodeEnvelope(arena.Copy(variant));
    ++compared;
    shortcuts += took_shortcut;
    accepted_by_shortcut += took_shortcut && shortcut.has_value();
    ASSERT_EQ(shortcut.has_value(), full.has_value())
        << what << (full ? "" : ": " + full.error().message()) << (shortcut ? "" : ": " + shortcut.error().message());
    if (full) {
      EXPECT_TRUE(SameDecoded(*shortcut, *full)) << what;
    } else {
      EXPECT_EQ(shortcut.error().message(), full.error().message()) << what;
    }
  };
  for (size_t o = 0; o < originals.size(); ++o) {
    const std::string& original = originals[o];
    for (size_t at = 0; at < original.size(); ++at) {
      for (int value : {0x00, 0x01, 0x7f, 0x80, 0xff, static_cast<int>(rng() & 0xff)}) {
        std::string variant = original;
        variant[at] = static_cast<char>(value);
        compare(original, variant, fmt::format("envelope {} byte {} set to {:#x}", o, at, value));
      }
    }
    for (size_t n = 0; n < original.size(); ++n)
      compare(original, original.substr(0, n), fmt::format("envelope {} truncated to {}", o, n));
    for (size_t extra : {1, 4, 8, 64})
      compare(original, original + std::string(extra, '\0'), fmt::format("envelope {} with {} more", o, extra));
  }
  // The shortcut was taken, and it accepted variants (payload bytes, scalars)
  // and refused others (lengths, offsets) — both compared above.
  EXPECT_GT(shortcuts, compared / 4);
  EXPECT_GT(accepted_by_shortcut, compared / 8);
  // An envelope with headers is never memoized.
  ForgetEnvelopeShape();
  const std::string& with_headers = originals.back();
  ASSERT_TRUE(DecodeEnvelope(arena.Copy(with_headers)).has_value());
  const uint64_t hits = EnvelopeShapeHits();
  ASSERT_TRUE(DecodeEnvelope(arena.Copy(with_headers)).has_value());
  EXPECT_EQ(EnvelopeShapeHits(), hits);
}

// Issue 20: operator actions are appended to a history (field 17, the count of
// dropped entries field 18). Records written before it have neither and read
// with an empty history, their note as it was; with a history the bytes are the
// builder's.
TEST(Envelope, HistoryRoundTripsAndOldRecordsReadWithout) {
  AlignedArena arena;
  EnvelopeFields f = Sample();
  f.headers = {};
  f.note = "requeued by operator at 1700000000000000";
  {
    ASSERT_OK_AND_ASSIGN(DecodedEnvelope old, DecodeEnvelope(arena.Copy(Encode(f))));
    EXPECT_TRUE(old.event.history.empty());
    EXPECT_EQ(old.event.history_dropped, 0u);
    EXPECT_EQ(old.event.note, "requeued by operator at 1700000000000000");
  }
  const HistoryEntry entries[] = {
      {.at = FromMicros(1'700'000'000'000'001),
       .user = "alice",
       .action = "skip",
       .reason = "poison",
       .previous_note = "blocked: 3 attempts exhausted"},
      {.at = FromMicros(1'700'000'000'000'002),
       .user = "bob",
       .action = "requeue",
       .reason = "",
       .previous_note = "skipped by operator alice: poison"},
  };
  f.history = entries;
  f.history_dropped = 7;
  std::string with, built;
  ScalarOffsets o1 = EncodeEnvelope(f, &with);
  ScalarOffsets o2 = EncodeEnvelopeWithBuilder(f, &built);
  EXPECT_EQ(with, built);
  EXPECT_EQ(o1.attempts, o2.attempts);
  ASSERT_OK_AND_ASSIGN(DecodedEnvelope d, DecodeEnvelope(arena.Copy(with)));
  ASSERT_EQ(d.event.history.size(), 2u);
  EXPECT_EQ(d.event.history_dropped, 7u);
  EXPECT_EQ(ToMicros(d.event.history[0].at), 1'700'000'000'000'001);
  EXPECT_EQ(d.event.history[0].user, "alice");
  EXPECT_EQ(d.event.history[0].action, "skip");
  EXPECT_EQ(d.event.history[0].reason, "poison");
  EXPECT_EQ(d.event.history[0].previous_note, "blocked: 3 attempts exhausted");
  EXPECT_EQ(d.event.history[1].user, "bob");
  EXPECT_EQ(d.event.history[1].reason, "");
  EXPECT_EQ(d.event.note, f.note);
  // Re-encoding keeps it (the relay rewrites records with FieldsOf).
  std::string again;
  EncodeEnvelope(FieldsOf(d), &again);
  EXPECT_EQ(again, with);
  // The relay still patches scalars in place.
  PatchU32(with.data(), d.offsets.attempts, 4);
  ASSERT_OK_AND_ASSIGN(DecodedEnvelope patched, DecodeEnvelope(arena.Copy(with)));
  EXPECT_EQ(patched.event.attempts, 4u);
  EXPECT_EQ(patched.event.history.size(), 2u);
}

TEST(Envelope, HistoryKeepsTheLastEntriesAndCutsLongTexts) {
  Event e;
  std::vector<HistoryEntry> old(kMaxHistoryEntries);
  for (size_t i = 0; i < old.size(); ++i)
    old[i].action = i == 0 ? "oldest" : "requeue";
  e.history = old;
  e.history_dropped = 3;
  const std::string long_text = std::string(kMaxHistoryText - 4, 'x') + "é and more";  // é across the cut
  e.note = long_text;
  HistoryUpdate u;
  AppendHistory(e, {.at = FromMicros(5), .user = "ops", .action = "skip", .reason = long_text}, &u);
  ASSERT_EQ(u.entries.size(), kMaxHistoryEntries);
  EXPECT_EQ(u.dropped, 4u);
  EXPECT_EQ(u.entries.front().action, "requeue") << "the oldest dropped";
  const HistoryEntry& last = u.entries.back();
  EXPECT_EQ(last.action, "skip");
  EXPECT_EQ(ToMicros(last.at), 5);
  EXPECT_LE(last.reason.size(), kMaxHistoryText);
  EXPECT_LE(last.previous_note.size(), kMaxHistoryText);
  EXPECT_TRUE(last.reason.ends_with("…")) << last.reason;
  EXPECT_TRUE(IsPrintableUtf8(last.reason)) << "cut at a character boundary";
  EXPECT_EQ(last.previous_note, last.reason);

  Event fresh;
  HistoryUpdate one;
  AppendHistory(fresh, {.user = "ops", .action = "requeue", .reason = "short"}, &one);
  ASSERT_EQ(one.entries.size(), 1u);
  EXPECT_EQ(one.dropped, 0u);
  EXPECT_EQ(one.entries[0].reason, "short");
  EXPECT_EQ(one.entries[0].previous_note, "");
}

// The bytes on disk: the history's field ids are fixed (FlatBuffers vtable
// slots 17 and 18). A renumbering would make older records unreadable.
TEST(Envelope, HistoryFieldIdsAreFixed) {
  EnvelopeFields f = Sample();
  const HistoryEntry entry{.at = FromMicros(1), .user = "u", .action = "skip", .reason = "r"};
  f.history = {&entry, 1};
  f.history_dropped = 0x01020304;
  std::string bytes = Encode(f);
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  auto u32 = [&](size_t at) {
    return uint32_t{base[at]} | base[at + 1] << 8 | base[at + 2] << 16 | uint32_t{base[at + 3]} << 24;
  };
  auto u16 = [&](size_t at) { return static_cast<uint16_t>(base[at] | base[at + 1] << 8); };
  const size_t table = u32(0);
  const size_t vtable = table - static_cast<int32_t>(u32(table));
  ASSERT_GE(u16(vtable), 4 + 2 * 19) << "the vtable has slots for fields 17 and 18";
  const uint16_t dropped = u16(vtable + 4 + 2 * 18);
  ASSERT_NE(dropped, 0);
  EXPECT_EQ(u32(table + dropped), 0x01020304u);
  ASSERT_NE(u16(vtable + 4 + 2 * 17), 0) << "the history vector";
}

TEST(Envelope, UnknownStrategyAndVersionAreRejected) {
  AlignedArena arena;
  EnvelopeFields f = Sample();
  f.strategy = static_cast<Strategy>(9);
  ASSERT_ERROR(DecodeEnvelope(arena.Copy(Encode(f))), ErrorCode::kCorruption);
}

TEST(Keys, OrderIsStateThenSeqAndRoundTrips) {
  std::vector<std::string> keys;
  for (char tag : {kParkedTag, kPendingTag, kSentTag}) {
    for (uint64_t seq : {1ull, 255ull, 256ull, 1ull << 40})
      keys.emplace_back(SeqKey(tag, seq).view());
  }
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  auto d = DecodeKey(SeqKey(kPendingTag, 1ull << 40).view());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, EventState::kPending);
  EXPECT_EQ(d->seq, 1ull << 40);
  auto r = DecodeKey(RetryKey(500, 7).view());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, EventState::kRetrying);
  EXPECT_EQ(r->seq, 7u);
  EXPECT_EQ(r->due_us, 500);
  EXPECT_LT(RetryKey(1, 999).view(), RetryKey(2, 1).view()) << "retries sort by due time";
  EXPECT_LT(SeqKey(kPendingTag, UINT64_MAX).view(), RetryKey(0, 0).view());
  EXPECT_FALSE(DecodeKey(""));
  EXPECT_FALSE(DecodeKey("p123"));
  EXPECT_FALSE(DecodeKey(std::string("x") + std::string(8, '\0')));
}

TEST(Meta, StreamConfigRoundTripsAndIsVerified) {
  StreamConfig c;
  c.strategy = Strategy::kKeepOrder;
  c.retry.max_attempts = 9;
  c.on_exhaustion = OnExhaustion::kPark;
  c.time_to_delete = std::chrono::seconds(60);
  std::string b = EncodeStreamConfig(c);
  ASSERT_OK_AND_ASSIGN(StreamConfig d, DecodeStreamConfig(b, "s"));
  EXPECT_TRUE(d == c);
  auto r = DecodeStreamConfig("nope", "mystream");
  ASSERT_ERROR(r, ErrorCode::kCorruption);
  EXPECT_NE(r.error().message().find("mystream"), std::string::npos);
  ASSERT_ERROR(DecodeU64("short", "x"), ErrorCode::kCorruption);
}

TEST(Json, EscapesAndAlwaysProducesValidText) {
  std::string out;
  AppendJsonString(out, "a\"b\\c\n\x01\xc3\xa9\xff");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\u00ff\"");
  EXPECT_TRUE(IsPrintableUtf8("héllo\tworld\n"));
  EXPECT_FALSE(IsPrintableUtf8(std::string_view("\x00", 1)));
  EXPECT_FALSE(IsPrintableUtf8("\xff"));
  EXPECT_FALSE(IsPrintableUtf8("\xc0\x80")) << "overlong encoding";
  EXPECT_EQ(ToHex("\x01\xab"), "01ab");
}

}  // namespace
}  // namespace jaiminho::internal
