// jaiminho-tool inbox through the built binary (JM_TOOL): an inbox with
// in-order, out-of-order and gap-declared streams from two producer database
// ids, checked cell by cell against Inbox::State(); filters, --gaps, --json; a
// corrupt record; a database without an inbox; a database held by a process.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "jaiminho/jaiminho.h"
#include "storage/inbox_record.h"
#include "support/child.h"
#include "support/test_util.h"
#include "tool/commands.h"
#include "tool/json_reader.h"
#include "tool/run_tool.h"

namespace jaiminho {
namespace {

using testing::Child;
using testing::Describe;
using testing::Json;
using testing::MustOpen;
using testing::ParseLines;
using testing::RawDb;
using testing::RunTool;
using testing::SplitTabs;
using testing::TempDir;
using testing::ToolRun;

const std::string kA = "0123456789abcdef0123456789abcdef";
const std::string kB = "fedcba9876543210fedcba9876543210";
const std::vector<std::string> kHeader = {"db_id", "stream", "watermark", "received",
                                          "above", "gaps",   "gap_seqs",  "forgotten"};

// What each (database, stream) receives, in this order.
struct Feed {
  std::string db;
  std::string stream;
  std::vector<uint64_t> seqs;
};
const std::vector<Feed> kFeeds = {
    {kA, "orders", {1, 2, 3, 4, 5}},           // in order
    {kA, "fills", {1, 2, 5, 6, 9}},            // out of order: 5-6 and 9 above the watermark 2
    {kB, "cmds", {1, 2, 20, 21, 40, 41, 60}},  // jumps past the horizon: gaps, the oldest forgotten
    {kB, "orders", {1, 3, 2}},                 // a late seq fills the hole
};

std::vector<std::string> IdsOf(const Feed& f) {
  std::vector<std::string> out;
  for (uint64_t s : f.seqs)
    out.push_back(f.db + "/" + f.stream + "/" + std::to_string(s));
  return out;
}

// Builds the inbox in `path` and returns its state, as the library reads it.
std::vector<InboxStreamState> MakeInbox(const std::string& path) {
  auto outbox = MustOpen(path);
  auto inbox = Inbox::Open(*outbox, {.horizon_seqs = 10, .max_gap_ranges = 2});
  EXPECT_TRUE(inbox.has_value());
  if (!inbox) return {};
  for (const Feed& f : kFeeds) {
    for (const std::string& id : IdsOf(f)) {
      Transaction txn = outbox->Begin();
      auto outcome = (*inbox)->Receive(txn, id);
      EXPECT_TRUE(outcome.has_value()) << id;
      EXPECT_EQ(outcome.value_or(ReceiveOutcome::kDuplicate), ReceiveOutcome::kNew) << id;
      EXPECT_TRUE(txn.Commit().has_value()) << id;
    }
  }
  auto state = (*inbox)->State();
  inbox->reset();
  EXPECT_TRUE(outbox->Close().has_value());
  return state;
}

std::string RangesText(const std::vector<SeqRange>& ranges) {
  if (ranges.empty()) return "-";
  std::string out;
  for (const SeqRange& r : ranges) {
    if (!out.empty()) out += ", ";
    out += r.first == r.last ? std::to_string(r.first) : std::to_string(r.first) + "-" + std::to_string(r.last);
  }
  return out;
}

std::vector<std::string> RowOf(const InboxStreamState& s) {
  return {s.db.ToHex(),        s.stream,           std::to_string(s.watermark), std::to_string(s.received),
          RangesText(s.above), RangesText(s.gaps), std::to_string(s.gap_seqs),  std::to_string(s.forgotten)};
}

// The rows the state gives, in the tool's order (database id bytes, then stream).
std::vector<std::vector<std::string>> RowsOf(const std::vector<InboxStreamState>& state) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(state.size());
  for (const auto& s : state)
    rows.push_back(RowOf(s));
  std::sort(rows.begin(), rows.end());
  return rows;
}

const InboxStreamState* Find(const std::vector<InboxStreamState>& state, const std::string& db,
                             const std::string& stream) {
  for (const auto& s : state) {
    if (s.db.ToHex() == db && s.stream == stream) return &s;
  }
  return nullptr;
}

void ExpectRanges(const Json& array, const std::vector<SeqRange>& want, const std::string& what) {
  ASSERT_EQ(array.kind(), Json::Kind::kArray) << what;
  ASSERT_EQ(array.array().size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(array.array()[i]["first_seq"].u64(), want[i].first) << what << " " << i;
    EXPECT_EQ(array.array()[i]["last_seq"].u64(), want[i].last) << what << " " << i;
    EXPECT_EQ(array.array()[i]["seqs"].u64(), want[i].last - want[i].first + 1) << what << " " << i;
  }
}

class ToolInbox : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.Sub("consumer.db");
    state_ = MakeInbox(path_);
    ASSERT_EQ(state_.size(), 4u);
    // The feeds give what they are meant to: ranges above, gaps, forgotten ones.
    const InboxStreamState* fills = Find(state_, kA, "fills");
    const InboxStreamState* cmds = Find(state_, kB, "cmds");
    ASSERT_TRUE(fills != nullptr && cmds != nullptr);
    ASSERT_EQ(fills->watermark, 2u);
    ASSERT_EQ(fills->above, (std::vector<SeqRange>{{5, 6}, {9, 9}}));
    ASSERT_EQ(cmds->gaps.size(), 2u);
    ASSERT_GT(cmds->forgotten, 0u);
    ASSERT_GT(cmds->gap_seqs, cmds->forgotten);
  }
  TempDir dir_;
  std::string path_;
  std::vector<InboxStreamState> state_;
};

TEST_F(ToolInbox, PipedTableGivesEveryStreamCellByCell) {
  ToolRun r = RunTool({"inbox", path_});
  ASSERT_EQ(r.code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  auto lines = r.OutLines();
  ASSERT_EQ(lines.size(), 5u) << Describe(r);
  EXPECT_EQ(SplitTabs(lines[0]), kHeader);
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 1; i < lines.size(); ++i)
    rows.push_back(SplitTabs(lines[i]));
  EXPECT_EQ(rows, RowsOf(state_));
  // Spot checks in plain numbers, not only against the library's view.
  EXPECT_EQ(rows[0], (std::vector<std::string>{kA, "fills", "2", "5", "5-6, 9", "-", "0", "0"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{kA, "orders", "5", "5", "-", "-", "0", "0"}));
  EXPECT_EQ(rows[3], (std::vector<std::string>{kB, "orders", "3", "3", "-", "-", "0", "0"}));
}

TEST_F(ToolInbox, TerminalTableIsAligned) {
  std::ostringstream out, err;
  tool::Io io{out, err, /*out_tty=*/true, /*err_tty=*/false};
  ASSERT_EQ(tool::InboxCommand({.path = path_}, io), 0) << err.str();
  auto lines = testing::SplitLines(out.str());
  ASSERT_EQ(lines.size(), 5u) << out.str();
  EXPECT_EQ(lines[0].find("DB_ID"), 0u) << lines[0];
  const size_t watermark = lines[0].find("WATERMARK");
  const size_t above = lines[0].find("ABOVE");
  ASSERT_NE(watermark, std::string::npos);
  ASSERT_NE(above, std::string::npos);
  auto rows = RowsOf(state_);
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].find(rows[i - 1][0]), 0u) << lines[i];
    EXPECT_EQ(lines[i].substr(watermark, rows[i - 1][2].size()), rows[i - 1][2]) << lines[i];
    EXPECT_EQ(lines[i].substr(above, rows[i - 1][4].size()), rows[i - 1][4]) << lines[i];
    EXPECT_EQ(lines[i].find('\t'), std::string::npos) << lines[i];
  }
}

TEST_F(ToolInbox, JsonFollowsTheSchema) {
  ToolRun r = RunTool({"inbox", path_, "--json"});
  ASSERT_EQ(r.code, 0) << Describe(r);
  auto objects = ParseLines(r);
  ASSERT_EQ(objects.size(), state_.size()) << Describe(r);
  for (const Json& o : objects) {
    const InboxStreamState* s = Find(state_, o["db_id"].str(), o["stream"].str());
    ASSERT_TRUE(s != nullptr) << r.out;
    const std::string what = o["db_id"].str() + "/" + o["stream"].str();
    EXPECT_EQ(o["watermark"].u64(), s->watermark) << what;
    EXPECT_EQ(o["received_events"].u64(), s->received) << what;
    EXPECT_EQ(o["gap_seqs"].u64(), s->gap_seqs) << what;
    EXPECT_EQ(o["forgotten_seqs"].u64(), s->forgotten) << what;
    uint64_t above_seqs = 0;
    for (const SeqRange& a : s->above)
      above_seqs += a.last - a.first + 1;
    EXPECT_EQ(o["above_seqs"].u64(), above_seqs) << what;
    ExpectRanges(o["above"], s->above, what + " above");
    ExpectRanges(o["gaps"], s->gaps, what + " gaps");
    for (const Json& a : o["above"].array()) {
      // When the range's earliest seq arrived: both forms of the schema's points in time.
      EXPECT_GT(a["arrived_at_us"].i64(), 1'700'000'000'000'000) << what;
      EXPECT_EQ(a["arrived_at"].str().size(), std::string("2024-05-01T12:00:00.000000Z").size()) << what;
    }
    for (const Json& g : o["gaps"].array())
      EXPECT_FALSE(g.Has("arrived_at")) << what;
    EXPECT_EQ(o.object().size(), 9u) << what << ": " << r.out;
  }
}

TEST_F(ToolInbox, GapsGivesOneRowPerGapRange) {
  const InboxStreamState* cmds = Find(state_, kB, "cmds");
  ToolRun r = RunTool({"inbox", path_, "--gaps"});
  ASSERT_EQ(r.code, 0) << Describe(r);
  auto lines = r.OutLines();
  ASSERT_EQ(lines.size(), 1 + cmds->gaps.size()) << Describe(r);
  EXPECT_EQ(SplitTabs(lines[0]), (std::vector<std::string>{"db_id", "stream", "first_seq", "last_seq", "seqs"}));
  for (size_t i = 0; i < cmds->gaps.size(); ++i) {
    const SeqRange& g = cmds->gaps[i];
    EXPECT_EQ(SplitTabs(lines[i + 1]),
              (std::vector<std::string>{kB, "cmds", std::to_string(g.first), std::to_string(g.last),
                                        std::to_string(g.last - g.first + 1)}));
  }
  ToolRun j = RunTool({"inbox", path_, "--gaps", "--json"});
  ASSERT_EQ(j.code, 0) << Describe(j);
  auto objects = ParseLines(j);
  ASSERT_EQ(objects.size(), cmds->gaps.size());
  for (size_t i = 0; i < objects.size(); ++i) {
    EXPECT_EQ(objects[i]["db_id"].str(), kB);
    EXPECT_EQ(objects[i]["stream"].str(), "cmds");
    EXPECT_EQ(objects[i]["first_seq"].u64(), cmds->gaps[i].first);
    EXPECT_EQ(objects[i]["last_seq"].u64(), cmds->gaps[i].last);
    EXPECT_EQ(objects[i]["seqs"].u64(), cmds->gaps[i].last - cmds->gaps[i].first + 1);
  }
}

TEST_F(ToolInbox, FiltersByDatabaseIdAndStream) {
  auto streams_of = [&](const std::vector<std::string>& args) {
    std::vector<std::string> all = {"inbox", path_};
    all.insert(all.end(), args.begin(), args.end());
    ToolRun r = RunTool(all);
    EXPECT_EQ(r.code, 0) << Describe(r);
    std::vector<std::string> out;
    auto lines = r.OutLines();
    EXPECT_FALSE(lines.empty()) << "no header: " << Describe(r);
    for (size_t i = 1; i < lines.size(); ++i) {
      auto cells = SplitTabs(lines[i]);
      out.push_back(cells[0].substr(0, 4) + "/" + cells[1]);
    }
    return out;
  };
  EXPECT_EQ(streams_of({"--db-id", kA}), (std::vector<std::string>{"0123/fills", "0123/orders"}));
  EXPECT_EQ(streams_of({"--db-id", "FEDCBA9876543210FEDCBA9876543210"}),
            (std::vector<std::string>{"fedc/cmds", "fedc/orders"}));
  EXPECT_EQ(streams_of({"--stream", "orders"}), (std::vector<std::string>{"0123/orders", "fedc/orders"}));
  EXPECT_EQ(streams_of({"--stream", "orders", "--db-id", kB}), (std::vector<std::string>{"fedc/orders"}));
  EXPECT_EQ(streams_of({"--stream", "fills", "--stream", "cmds"}),
            (std::vector<std::string>{"0123/fills", "fedc/cmds"}));
  EXPECT_EQ(streams_of({"--stream", "nothing"}), (std::vector<std::string>{}));
  EXPECT_EQ(streams_of({"--gaps", "--db-id", kA}), (std::vector<std::string>{}));
  // A malformed id is a usage error naming the option.
  for (const std::string& bad : {std::string("xyz"), kA.substr(1), kA + "0", "g" + kA.substr(1)}) {
    ToolRun r = RunTool({"inbox", path_, "--db-id", bad});
    EXPECT_EQ(r.code, 2) << bad << ": " << Describe(r);
    EXPECT_EQ(r.ErrLines().size(), 1u) << Describe(r);
    EXPECT_NE(r.err.find("--db-id"), std::string::npos) << Describe(r);
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(ToolInbox, CorruptRecordIsNamedWithExitOne) {
  const std::string fills_key = internal::InboxKey(Find(state_, kA, "fills")->db, "fills");
  {
    RawDb raw(path_);
    auto value = raw.Get(internal::kInboxFamily, fills_key);
    ASSERT_TRUE(value.has_value());
    std::string bad = *value;
    bad[1] = static_cast<char>(bad[1] ^ 0x40);  // the watermark's varint: the checksum no longer matches
    raw.Put(internal::kInboxFamily, fills_key, bad);
  }
  ToolRun r = RunTool({"inbox", path_});
  EXPECT_EQ(r.code, 1) << Describe(r);
  // The good records are still shown.
  auto lines = r.OutLines();
  ASSERT_EQ(lines.size(), 4u) << Describe(r);
  for (size_t i = 1; i < lines.size(); ++i)
    EXPECT_NE(SplitTabs(lines[i])[1] + SplitTabs(lines[i])[0], "fills" + kA) << Describe(r);
  ASSERT_EQ(r.ErrLines().size(), 2u) << Describe(r);
  const std::string named = r.ErrLines()[0];
  EXPECT_NE(named.find("stream 'fills' from database " + kA), std::string::npos) << named;
  EXPECT_NE(named.find("checksum mismatch"), std::string::npos) << named;
  EXPECT_NE(named.find(path_), std::string::npos) << named;
  EXPECT_NE(r.ErrLines()[1].find("1 bad"), std::string::npos) << Describe(r);
  // --json: the good objects, the bad record on stderr, exit 1.
  ToolRun j = RunTool({"inbox", path_, "--json"});
  EXPECT_EQ(j.code, 1) << Describe(j);
  EXPECT_EQ(ParseLines(j).size(), 3u) << Describe(j);
  // Filtered out: not looked at.
  ToolRun other = RunTool({"inbox", path_, "--db-id", kB});
  EXPECT_EQ(other.code, 0) << Describe(other);
  // An unknown version and a key of the wrong form are named too.
  {
    RawDb raw(path_);
    std::string record;
    internal::InboxRecord three;
    three.watermark = 3;
    three.received = 3;
    internal::EncodeInboxRecord(three, &record);
    record[0] = 9;
    raw.Put(internal::kInboxFamily, internal::InboxKey(Find(state_, kB, "orders")->db, "orders"), record);
    raw.Put(internal::kInboxFamily, "x-not-a-key", record);
  }
  ToolRun v = RunTool({"inbox", path_});
  EXPECT_EQ(v.code, 1) << Describe(v);
  EXPECT_NE(v.err.find("unknown version 9"), std::string::npos) << Describe(v);
  EXPECT_NE(v.err.find("is not an inbox record key"), std::string::npos) << Describe(v);
  EXPECT_NE(v.err.find("3 bad"), std::string::npos) << Describe(v);
  // verify checks the inbox's records too.
  ToolRun verify = RunTool({"verify", path_});
  EXPECT_EQ(verify.code, 1) << Describe(verify);
  EXPECT_NE(verify.err.find("checksum mismatch"), std::string::npos) << Describe(verify);
  EXPECT_NE(verify.err.find("unknown version 9"), std::string::npos) << Describe(verify);
}

TEST_F(ToolInbox, VerifyPassesAGoodInbox) {
  ToolRun r = RunTool({"verify", path_});
  EXPECT_EQ(r.code, 0) << Describe(r);
  EXPECT_NE(r.err.find("4 inbox records"), std::string::npos) << Describe(r);
}

TEST(ToolInboxNone, ADatabaseWithoutAnInboxSaysSoAndExitsZero) {
  TempDir dir;
  const std::string path = dir.Sub("plain.db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox->Close().has_value());
  }
  ToolRun r = RunTool({"inbox", path});
  EXPECT_EQ(r.code, 0) << Describe(r);
  ASSERT_EQ(r.OutLines().size(), 1u) << Describe(r);
  EXPECT_EQ(SplitTabs(r.OutLines()[0]), kHeader);
  ASSERT_EQ(r.ErrLines().size(), 1u) << Describe(r);
  EXPECT_NE(r.err.find(path + " has no inbox"), std::string::npos) << Describe(r);
  ToolRun j = RunTool({"inbox", path, "--json"});
  EXPECT_EQ(j.code, 0) << Describe(j);
  EXPECT_EQ(j.out, "");
}

TEST(ToolInboxLive, WorksWhileAProcessHoldsTheDatabase) {
  TempDir dir;
  const std::string path = dir.Sub("held.db");
  std::vector<std::string> argv = {JM_HOLD_DB, path, "--inbox"};
  for (int s : {1, 2, 4}) {
    argv.push_back(kA + "/fills/" + std::to_string(s));
    argv.push_back(kB + "/cmds/" + std::to_string(s));
  }
  Child holder(argv);
  ASSERT_EQ(holder.ReadLine(), "ready " + std::to_string(holder.pid()));
  auto before = testing::Snapshot(path);
  for (auto& [name, info] : before) {
    if (name.ends_with("LOG")) info = {};
  }
  ToolRun r = RunTool({"inbox", path});
  ASSERT_EQ(r.code, 0) << Describe(r);
  auto lines = r.OutLines();
  ASSERT_EQ(lines.size(), 3u) << Describe(r);
  EXPECT_EQ(SplitTabs(lines[1]), (std::vector<std::string>{kA, "fills", "2", "3", "4", "-", "0", "0"}));
  EXPECT_EQ(SplitTabs(lines[2]), (std::vector<std::string>{kB, "cmds", "2", "3", "4", "-", "0", "0"}));
  auto after = testing::Snapshot(path);
  for (auto& [name, info] : after) {
    if (name.ends_with("LOG")) info = {};
  }
  EXPECT_EQ(after, before) << "inbox changed the held database";
  holder.WriteLine("");
  EXPECT_EQ(holder.Wait(), 0);
}

}  // namespace
}  // namespace jaiminho
