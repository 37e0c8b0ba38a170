// ConsumerHandlers (include/jaiminho/consumer_handlers.h) and the codecs'
// Decode: typed dispatch by event type, the encoding check, refusal and skip
// of unknown types, decode failures naming the event; the built-in codecs
// round-trip what Encode wrote; the JSON object parser refuses what is not a
// JSON object of strings, naming the offset.
#include "jaiminho/consumer_handlers.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

#include "jaiminho/inbox.h"
#include "jaiminho/outbox.h"
#include "support/test_util.h"

namespace jaiminho {

struct Fill {
  std::string symbol;
  int64_t qty = 0;
};

// A user codec with Decode, as a producer and a consumer would share it.
template <>
struct Codec<Fill> {
  static constexpr std::string_view kEncoding = "application/x-fill";
  static std::string Encode(const Fill& f) { return f.symbol + ":" + std::to_string(f.qty); }
  static Result<Fill> Decode(std::string_view p) {
    const size_t colon = p.find(':');
    if (colon == std::string_view::npos) return MakeError(ErrorCode::kInvalidArgument, "no ':'");
    auto qty = Codec<int64_t>::Decode(p.substr(colon + 1));
    if (!qty) return tl::unexpected(qty.error());
    return Fill{std::string(p.substr(0, colon)), *qty};
  }
};

namespace {

using ::testing::HasSubstr;
using testing::MustOpen;
using testing::TempDir;

// A codec without Decode: Register<T, NoDecode> does not compile (checked by
// the static_assert's condition here).
struct NoDecode {
  static constexpr std::string_view kEncoding = "x/none";
  static std::string Encode(int) { return ""; }
};
static_assert(!DecoderFor<NoDecode, int>);
static_assert(CodecFor<NoDecode, int>);
static_assert(DecoderFor<Codec<Fill>, Fill>);
static_assert(DecoderFor<Codec<std::string>, std::string>);
static_assert(DecoderFor<Codec<double>, double>);

class ConsumerHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    outbox_ = MustOpen(dir_.Sub("db"), {.business_families = {{.name = "positions"}}, .durability = Durability::kNone});
    ASSERT_NE(outbox_, nullptr);
    ASSERT_OK_AND_ASSIGN(positions_, outbox_->FindBusinessFamily("positions"));
    ASSERT_OK_AND_ASSIGN(inbox_, Inbox::Open(*outbox_));
  }

  ReceivedEvent Event(uint64_t seq, std::string_view type, std::string_view encoding, std::string_view payload) {
    raw_ = fmt::format("{}/fills/{}", std::string(32, 'a'), seq);
    auto id = Inbox::ParseEventId(raw_);
    EXPECT_TRUE(id.has_value());
    return ReceivedEvent{.id = id.value_or(EventId{}),
                         .raw_id = raw_,
                         .type = type,
                         .encoding = encoding,
                         .payload = payload,
                         .topic = "trading.fills"};
  }

  // What a consumer adapter does: Receive, Handle, Commit when both succeed.
  Status Consume(const ConsumerHandlers& h, const ReceivedEvent& e) {
    Transaction txn = outbox_->Begin();
    auto outcome = inbox_->Receive(txn, e.id);
    if (!outcome) return tl::unexpected(outcome.error());
    if (*outcome != ReceiveOutcome::kNew) return {};
    if (auto s = h.Handle(e, txn); !s) return s;
    auto r = txn.Commit();
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  std::optional<std::string> Position(std::string_view symbol) {
    auto v = outbox_->Get(positions_, symbol);
    EXPECT_TRUE(v.has_value());
    return v.value_or(std::nullopt);
  }

  TempDir dir_;
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<Inbox> inbox_;
  BusinessFamily positions_;
  std::string raw_;
};

TEST_F(ConsumerHandlersTest, DispatchesByTypeDecodingWithTheCodec) {
  ConsumerHandlers h;
  std::vector<std::string> seen;
  ASSERT_OK(h.Register<Fill>("fill.v1", [&](const Fill& f, Transaction& txn) {
    seen.push_back(fmt::format("{} {}", f.symbol, f.qty));
    return txn.Put(positions_, f.symbol, std::to_string(f.qty));
  }));
  using Map = std::map<std::string, std::string>;
  ASSERT_OK(h.Register<Map>("note.v1",
                            [&](const std::map<std::string, std::string>& m, const ReceivedEvent& e, Transaction& txn) {
                              seen.push_back(fmt::format("note {} from {}", m.at("text"), e.topic));
                              return txn.Put(positions_, "note", m.at("text"));
                            }));
  ASSERT_OK(h.RegisterRaw("raw.v1", [&](const ReceivedEvent& e, Transaction& txn) {
    seen.push_back(fmt::format("raw {}", e.payload));
    return txn.Put(positions_, "raw", e.payload);
  }));
  EXPECT_TRUE(h.Contains("fill.v1"));
  EXPECT_FALSE(h.Contains("fill.v2"));

  ASSERT_OK(Consume(h, Event(1, "fill.v1", "application/x-fill", Codec<Fill>::Encode({"ACME", -42}))));
  const Map note{{"text", "caf\xc3\xa9 \"q\"\n"}};
  ASSERT_OK(Consume(h, Event(2, "note.v1", "application/json", Codec<Map>::Encode(note))));
  ASSERT_OK(Consume(h, Event(3, "raw.v1", "whatever/any", "bytes")));
  // A message without a content type is taken for the codec's.
  ASSERT_OK(Consume(h, Event(4, "fill.v1", "", "BOLT:7")));
  EXPECT_THAT(seen,
              ::testing::ElementsAre("ACME -42", "note caf\xc3\xa9 \"q\"\n from trading.fills", "raw bytes", "BOLT 7"));
  EXPECT_EQ(Position("ACME"), "-42");
  EXPECT_EQ(Position("BOLT"), "7");
  EXPECT_EQ(Position("note"), "caf\xc3\xa9 \"q\"\n");
  // A duplicate does not reach the handler.
  ASSERT_OK(Consume(h, Event(1, "fill.v1", "application/x-fill", "ACME:1000")));
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_EQ(Position("ACME"), "-42");
}

TEST_F(ConsumerHandlersTest, FailuresNameTheEventAndWriteNothing) {
  ConsumerHandlers h;
  int ran = 0;
  ASSERT_OK(h.Register<Fill>("fill.v1", [&](const Fill& f, Transaction& txn) {
    ++ran;
    if (f.qty == 0) return Status(MakeError(ErrorCode::kRejected, "zero fill"));
    return txn.Put(positions_, f.symbol, std::to_string(f.qty));
  }));
  // Unknown type (and no type at all): kUnknownHandler, naming what is registered.
  auto unknown = Consume(h, Event(1, "fill.v9", "application/x-fill", "ACME:1"));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code(), ErrorCode::kUnknownHandler);
  EXPECT_THAT(unknown.error().message(), HasSubstr("fills/1 (type 'fill.v9'"));
  EXPECT_THAT(unknown.error().message(), HasSubstr("registered: 'fill.v1'"));
  auto untyped = Consume(h, Event(1, "", "", "ACME:1"));
  ASSERT_FALSE(untyped.has_value());
  EXPECT_THAT(untyped.error().message(), HasSubstr("the message carries no type"));
  // Another encoding than the codec's.
  auto wrong = Consume(h, Event(1, "fill.v1", "application/json", "{}"));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(wrong.error().message(), HasSubstr("decodes 'application/x-fill', not 'application/json'"));
  // A payload the codec refuses.
  auto bad = Consume(h, Event(1, "fill.v1", "application/x-fill", "ACME:lots"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad.error().message(), HasSubstr("does not decode as 'application/x-fill'"));
  EXPECT_THAT(bad.error().message(), HasSubstr("not a decimal number"));
  // The handler's own error.
  auto refused = Consume(h, Event(1, "fill.v1", "application/x-fill", "ACME:0"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kRejected);
  EXPECT_EQ(ran, 1);
  // None of them was recorded: the id is still new, and applies once fixed.
  EXPECT_EQ(inbox_->State(Event(1, "", "", "").id.db, "fills"), std::nullopt);
  ASSERT_OK(Consume(h, Event(1, "fill.v1", "application/x-fill", "ACME:5")));
  EXPECT_EQ(Position("ACME"), "5");
}

TEST_F(ConsumerHandlersTest, SkipRecordsUnknownTypesWithoutEffect) {
  ConsumerHandlers h(UnknownTypes::kSkip);
  ASSERT_OK(Consume(h, Event(1, "fill.v9", "", "ACME:1")));
  auto s = inbox_->State(Event(1, "", "", "").id.db, "fills");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->watermark, 1u);  // recorded: a redelivery is a duplicate
  EXPECT_EQ(Position("ACME"), std::nullopt);
}

TEST(ConsumerHandlers, RegisterRefusesEmptyAndRepeatedTypesAndCopiesStayApart) {
  ConsumerHandlers h;
  auto ok = [](const Fill&, Transaction&) -> Status { return {}; };
  auto empty = h.Register<Fill>("", ok);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
  ASSERT_OK(h.Register<Fill>("fill.v1", ok));
  auto twice = h.Register<Fill>("fill.v1", ok);
  ASSERT_FALSE(twice.has_value());
  EXPECT_THAT(twice.error().message(), HasSubstr("'fill.v1' already has a handler"));
  auto null = h.RegisterRaw("raw.v1", nullptr);
  ASSERT_FALSE(null.has_value());
  EXPECT_THAT(null.error().message(), HasSubstr("the handler is empty"));
  // A copy (what a consumer takes) does not see later registrations.
  ConsumerHandlers copy = h;
  ASSERT_OK(h.Register<Fill>("fill.v2", ok));
  EXPECT_TRUE(h.Contains("fill.v2"));
  EXPECT_FALSE(copy.Contains("fill.v2"));
  EXPECT_TRUE(copy.Contains("fill.v1"));
}

TEST(CodecDecode, BuiltInCodecsRoundTrip) {
  EXPECT_EQ(Codec<std::string>::Decode(std::string_view("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(Codec<std::string_view>::Decode("view"), std::string_view("view"));
  EXPECT_EQ(Codec<int64_t>::Decode(Codec<int64_t>::Encode(INT64_MIN)), INT64_MIN);
  EXPECT_EQ(Codec<uint64_t>::Decode(Codec<uint64_t>::Encode(UINT64_MAX)), UINT64_MAX);
  EXPECT_EQ(Codec<double>::Decode(Codec<double>::Encode(0.1)), 0.1);
  EXPECT_EQ(Codec<int>::Decode("12").value_or(0), 12);
  for (std::string_view bad : {"", " 1", "1 ", "1x", "0x10", "+"}) {
    auto r = Codec<int>::Decode(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
  auto range = Codec<uint8_t>::Decode("256");
  ASSERT_FALSE(range.has_value());
  EXPECT_THAT(range.error().message(), HasSubstr("out of range"));
  EXPECT_FALSE(Codec<uint32_t>::Decode("-1").has_value());

  // The JSON map: what Encode writes comes back, for random valid UTF-8
  // strings with every escaped character.
  using Map = std::map<std::string, std::string>;
  std::mt19937 rng(7);
  const std::vector<std::string> pieces = {"a",
                                           "\"",
                                           "\\",
                                           "\n",
                                           "\r",
                                           "\t",
                                           std::string(1, '\0'),
                                           "\x01",
                                           "\x7f",
                                           "/",
                                           "\xc3\xa9",
                                           "\xe2\x82\xac",
                                           "\xf0\x9f\x98\x80",
                                           " ",
                                           "{",
                                           "}",
                                           ":"};
  for (int round = 0; round < 200; ++round) {
    Map m;
    const int entries = static_cast<int>(rng() % 5);
    for (int i = 0; i < entries; ++i) {
      std::string k, v;
      for (unsigned n = rng() % 6; n > 0; --n)
        k += pieces[rng() % pieces.size()];
      for (unsigned n = rng() % 12; n > 0; --n)
        v += pieces[rng() % pieces.size()];
      m[k] = v;
    }
    auto back = Codec<Map>::Decode(Codec<Map>::Encode(m));
    ASSERT_TRUE(back.has_value()) << Codec<Map>::Encode(m) << ": " << back.error().ToString();
    EXPECT_EQ(*back, m) << Codec<Map>::Encode(m);
  }
  // Foreign JSON: whitespace, \u escapes, a surrogate pair, \/ \b \f.
  auto foreign = Codec<Map>::Decode(" {\n \"k\" : \"\\u00e9\\ud83d\\ude00\\/\\b\\f\" , \"\":\"\" }\t");
  ASSERT_TRUE(foreign.has_value()) << foreign.error().ToString();
  EXPECT_EQ(*foreign, (Map{{"k", "\xc3\xa9\xf0\x9f\x98\x80/\b\f"}, {"", ""}}));
  // An invalid byte the producer sent comes back as its Latin-1 character.
  EXPECT_EQ(Codec<Map>::Decode(Codec<Map>::Encode({{"k", "\xff"}})), (Map{{"k", "\xc3\xbf"}}));
}

TEST(CodecDecode, JsonObjectParserRefusesWhatIsNotAnObjectOfStringsNamingTheOffset) {
  using Map = std::map<std::string, std::string>;
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {"", "expected '{' at byte 0"},
      {"[]", "expected '{' at byte 0"},
      {"{", "expected a string at byte 1"},
      {"{\"a\":1}", "a value that is not a string at byte 5"},
      {"{\"a\":\"b\",}", "expected a string at byte 9"},
      {"{\"a\" \"b\"}", "expected ':' after a name at byte 5"},
      {"{\"a\":\"b\"} x", "bytes after the object at byte 10"},
      {"{\"a\":\"b\",\"a\":\"c\"}", "a name given twice at byte 9"},
      {"{\"a\":\"b", "an unterminated string at byte 7"},
      {"{\"a\":\"\n\"}", "a control character in a string at byte 6"},
      {"{\"a\":\"\\x\"}", "an unknown escape at byte 7"},
      {"{\"a\":\"\\u12\"}", "without four hex digits"},
      {"{\"a\":\"\\ud800\"}", "a high surrogate without its low surrogate"},
      {"{\"a\":\"\\udc00\"}", "a lone low surrogate"},
      {"{\"a\":\"\xff\"}", "invalid UTF-8 at byte 6"},
      {"{\"a\":\"b\"", "expected ',' or '}' at byte 8"},
  };
  for (const auto& [json, why] : cases) {
    auto r = Codec<Map>::Decode(json);
    ASSERT_FALSE(r.has_value()) << json;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(r.error().message(), HasSubstr(why)) << json;
  }
}

}  // namespace
}  // namespace jaiminho
