// Signed events: HMAC-SHA256 over every field that matters, key ids for
// rotation, tampered records parked and never published.
#include "storage/envelope.h"
#include "storage/keys.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::RecordingPublisher;
using testing::TempDir;

const SigningKey kKeyA{"key-a", "0123456789abcdef-secret-a"};
const SigningKey kKeyB{"key-b", "0123456789abcdef-secret-b"};

struct SignFixture {
  TempDir dir;
  std::shared_ptr<RecordingPublisher> publisher = std::make_shared<RecordingPublisher>();
  std::unique_ptr<Outbox> outbox;
  Stream* s = nullptr;

  void Open(SigningOptions signing, std::string name = "db") {
    outbox.reset();
    outbox = MustOpen(dir.Sub(name), {.signing = std::move(signing)});
    ASSERT_NE(outbox, nullptr);
    ASSERT_OK_AND_ASSIGN(s, outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder}));
  }
  void Commit(int n) {
    auto txn = outbox->Begin();
    Header h[] = {{"h", "v"}};
    for (int i = 0; i < n; ++i) {
      std::string payload = "payload-" + std::to_string(i);
      ASSERT_OK(txn.Enqueue(*s, {.type = "t", .key = "k", .payload = payload, .headers = h}));
    }
    ASSERT_OK(txn.Commit());
  }
  RelayStats Deliver() {
    auto relay = MustMakeRelay(*outbox, publisher);
    if (!relay) return RelayStats{};
    auto r = relay->RunOnce();
    EXPECT_TRUE(r.has_value());
    return r ? *r : RelayStats{};
  }
  std::string Raw(char tag, uint64_t seq) {
    auto k = internal::SeqKey(tag, seq);
    std::string v;
    EXPECT_TRUE(
        outbox->db()->Get(rocksdb::ReadOptions(), testing::StreamFamily(*s), rocksdb::Slice(k.bytes, k.size), &v).ok());
    return v;
  }
  void PutRaw(char tag, uint64_t seq, const std::string& v) {
    auto k = internal::SeqKey(tag, seq);
    ASSERT_TRUE(
        outbox->db()->Put(rocksdb::WriteOptions(), testing::StreamFamily(*s), rocksdb::Slice(k.bytes, k.size), v).ok());
  }
  // Re-encodes a stored pending record with `change` applied, keeping its signature.
  void Tamper(uint64_t seq, const std::function<void(internal::EnvelopeFields&)>& change, uint64_t to_seq = 0) {
    internal::AlignedArena arena;
    std::string raw = Raw('p', seq);
    auto d = internal::DecodeEnvelope(arena.Copy(raw));
    ASSERT_TRUE(d.has_value());
    internal::EnvelopeFields f = internal::FieldsOf(*d);
    change(f);
    std::string out;
    internal::EncodeEnvelope(f, &out);
    PutRaw('p', to_seq ? to_seq : seq, out);
  }
  // One relay pass parks exactly one record, whose note contains `text`.
  void ExpectOneParked(std::string_view text) {
    EXPECT_EQ(Deliver().parked, 1u);
    auto notes = ParkedNotes();
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find(text), std::string::npos) << notes[0];
  }
  std::vector<std::string> ParkedNotes() {
    std::vector<std::string> out;
    auto l = outbox->ListEvents(*s, EventState::kParked);
    EXPECT_TRUE(l.has_value());
    for (const auto& e : *l)
      out.emplace_back(e->note);
    return out;
  }
};

TEST(Sign, SignedEventsCarryKeyIdAndAreDelivered) {
  SignFixture f;
  f.Open({.keys = {kKeyA}});
  f.Commit(3);
  ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*f.s, 2));
  EXPECT_EQ(e->key_id, "key-a");
  EXPECT_EQ(f.Deliver().published, 3u);
}

TEST(Sign, AnyTamperedFieldIsParkedAndNeverPublished) {
  SignFixture f;
  f.Open({.keys = {kKeyA}});
  f.Commit(9);
  f.Tamper(1, [](auto& x) { x.payload = "evil"; });
  f.Tamper(2, [](auto& x) { x.type = "other"; });
  f.Tamper(3, [](auto& x) { x.key = "k2"; });
  f.Tamper(4, [](auto& x) { x.strategy = Strategy::kPublishOnCommit; });
  f.Tamper(5, [](auto& x) { x.created_at += 1; });
  static const Header h2[] = {{"h", "w"}};
  f.Tamper(6, [](auto& x) { x.headers = h2; });
  f.Tamper(7, [](auto& x) { x.encoding = "text/plain"; });
  // Replay: seq 8's record copied over seq 9 with its seq field changed (seq is covered).
  f.Tamper(
      8, [](auto& x) { x.seq = 9; }, 9);
  RelayStats st = f.Deliver();
  EXPECT_EQ(st.parked, 8u);
  EXPECT_EQ(st.published, 1u);
  ASSERT_EQ(f.publisher->count(), 1u);
  EXPECT_EQ(f.publisher->deliveries()[0].seq, 8u) << "only the untouched record is published";
  for (const auto& note : f.ParkedNotes())
    EXPECT_NE(note.find("tampered"), std::string::npos) << note;
}

TEST(Sign, DelayedFieldsMayChangeWithoutBreakingTheSignature) {
  SignFixture f;
  f.Open({.keys = {kKeyA}});
  f.Commit(1);
  f.Tamper(1, [](auto& x) {
    x.attempts = 3;
    x.last_error = "delivery state is not signed";
    x.note = "neither is the note";
  });
  EXPECT_EQ(f.Deliver().published, 1u);
}

TEST(Sign, KeysRotate) {
  SignFixture f;
  f.Open({.keys = {kKeyA}});
  f.Commit(2);
  ASSERT_OK(f.outbox->Close());
  f.Open({.keys = {kKeyB, kKeyA}});  // B signs, A still accepted
  f.Commit(1);
  ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*f.s, 3));
  EXPECT_EQ(e->key_id, "key-b");
  EXPECT_EQ(f.Deliver().published, 3u);

  f.Commit(1);  // signed with B
  ASSERT_OK(f.outbox->Close());
  f.Open({.keys = {kKeyA}});  // B dropped: its records no longer verify
  f.ExpectOneParked("'key-b'");
}

TEST(Sign, TurningSigningOffDoesNotMakeSignedRecordsFail) {
  SignFixture f;
  f.Open({.keys = {kKeyA}});
  f.Commit(2);
  ASSERT_OK(f.outbox->Close());
  f.Open({.keys = {kKeyA}, .sign_events = false});
  f.Commit(1);  // unsigned
  ASSERT_OK_AND_ASSIGN(StoredEvent e, f.outbox->FindEvent(*f.s, 3));
  EXPECT_TRUE(e->key_id.empty());
  EXPECT_EQ(f.Deliver().published, 3u);
  // And without any key at all: nothing is verified.
  f.Commit(1);
  ASSERT_OK(f.outbox->Close());
  f.Open({});
  EXPECT_EQ(f.Deliver().published, 1u);
}

TEST(Sign, UnsignedRecordsAreRefusedWhenSignaturesAreRequired) {
  SignFixture f;
  f.Open({});
  f.Commit(2);  // written before signing was enabled
  ASSERT_OK(f.outbox->Close());
  f.Open({.keys = {kKeyA}, .require_signature = false});  // the migration setting
  f.Commit(1);
  EXPECT_EQ(f.Deliver().published, 3u);

  ASSERT_OK(f.outbox->Close());
  f.Open({});
  f.Commit(1);  // unsigned again
  ASSERT_OK(f.outbox->Close());
  f.Open({.keys = {kKeyA}});
  f.ExpectOneParked("carries no signature");
}

TEST(Sign, SignatureIsBoundToTheDatabase) {
  SignFixture a, b;
  a.Open({.keys = {kKeyA}});
  b.Open({.keys = {kKeyA}});
  a.Commit(1);
  b.Commit(1);
  b.PutRaw('p', 1, a.Raw('p', 1));  // same key, same stream and seq, other database
  EXPECT_EQ(b.Deliver().parked, 1u);
  EXPECT_EQ(a.Deliver().published, 1u);
}

TEST(Sign, InvalidSigningOptionsAreRefused) {
  TempDir dir;
  struct Case {
    SigningOptions o;
    std::string mentions;
  };
  std::vector<Case> cases = {
      {{.keys = {{"k", "short"}}}, "at least 16 bytes"},
      {{.keys = {{"", "0123456789abcdef"}}}, "id must be 1-64 bytes"},
      {{.keys = {kKeyA, kKeyA}}, "twice"},
      {{.verify_signatures = true}, "need at least one key"},
  };
  for (auto& c : cases) {
    auto r = Outbox::Open({.path = dir.Sub("db"), .signing = c.o});
    ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.mentions), std::string::npos) << r.error().message();
    EXPECT_FALSE(std::filesystem::exists(dir.Sub("db"))) << "nothing created";
  }
}

}  // namespace
}  // namespace jaiminho
