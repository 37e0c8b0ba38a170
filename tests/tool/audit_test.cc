// Issue 20, through the built binary (JM_TOOL): operator actions append to the
// event's history (time, user, action, reason) instead of overwriting its note;
// `requeue` refuses events that are neither parked, retrying nor a blocked
// keep-order head; `streams` shows the last seq the program assigned, also when
// the last events were published inline and left nothing on disk.
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <regex>

#include "support/test_util.h"
#include "tool/json_reader.h"
#include "tool/run_tool.h"

namespace jaiminho {
namespace {

using testing::Describe;
using testing::Json;
using testing::MustOpen;
using testing::ParseLines;
using testing::RecordingPublisher;
using testing::RunTool;
using testing::SplitTabs;
using testing::TempDir;
using testing::ToolRun;

// The user the tool runs as (this test's process runs it).
std::string OsUser() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? std::string(pw->pw_name) : "uid " + std::to_string(::geteuid());
}

void Enqueue(Outbox& outbox, Stream& stream, int n) {
  for (int i = 1; i <= n; ++i) {
    auto txn = outbox.Begin();
    ASSERT_OK(txn.Enqueue(stream, {.type = "test.v1", .payload = "p" + std::to_string(i)}));
    ASSERT_OK(txn.Commit());
  }
}

// The one event `seq` of `stream` as dump --json shows it.
Json DumpOne(const std::string& path, const std::string& stream, uint64_t seq) {
  for (Json& j : ParseLines(RunTool({"dump", path, "--stream", stream, "--json"}))) {
    if (j["seq"].u64() == seq) return j;
  }
  ADD_FAILURE() << "dump shows no " << stream << " seq " << seq;
  return Json();
}

// --- requeue refuses what is not parked, retrying or blocked ----------------

TEST(ToolAudit, RequeueRefusesAPendingEventThatIsNotBlocked) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
    ASSERT_OK_AND_ASSIGN(Stream * telemetry, outbox->OpenStream("telemetry"));
    Enqueue(*outbox, *orders, 2);
    Enqueue(*outbox, *telemetry, 1);
  }
  // An ordinary keep-order head (never attempted), the event behind it, and a
  // publish-on-commit event waiting for its first delivery.
  for (auto [stream, seq] : {std::pair<std::string, std::string>{"orders", "1"}, {"orders", "2"}, {"telemetry", "1"}}) {
    ToolRun r = RunTool({"requeue", path, "--stream", stream, "--seq", seq, "--note", "just in case"});
    EXPECT_EQ(r.code, 1) << stream << " " << seq << ": " << Describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("stream '" + stream + "' seq " + seq + " is pending"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not blocked"), std::string::npos) << r.err;
    EXPECT_EQ(r.ErrLines().size(), 1u) << r.err;
  }
  // Nothing changed: no note, no history, no attempt.
  for (auto [stream, seq] : {std::pair<std::string, uint64_t>{"orders", 1}, {"orders", 2}, {"telemetry", 1}}) {
    Json e = DumpOne(path, stream, seq);
    EXPECT_EQ(e["state"].str(), "pending");
    EXPECT_EQ(e["note"].str(), "");
    EXPECT_EQ(e["history"].array().size(), 0u);
  }
  // The relay delivers them in order without any requeue.
  ToolRun relay = RunTool({"relay", path});
  ASSERT_EQ(relay.code, 0) << Describe(relay);
  EXPECT_EQ(ParseLines(relay).size(), 3u);
}

TEST(ToolAudit, RequeueTakesABlockedHeadAndARetryingEvent) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    // The head fails once and waits for its backoff (not exhausted): blocked.
    ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
    ASSERT_OK_AND_ASSIGN(Stream * telemetry, outbox->OpenStream("telemetry"));
    Enqueue(*outbox, *orders, 2);
    Enqueue(*outbox, *telemetry, 1);
    auto publisher = std::make_shared<RecordingPublisher>();
    publisher->fail = [](const Event&) -> std::optional<Error> { return Error(ErrorCode::kUnavailable, "down"); };
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK(relay->RunOnce());
  }
  EXPECT_EQ(DumpOne(path, "telemetry", 1)["state"].str(), "retrying");
  for (auto [stream, seq] : {std::pair<std::string, std::string>{"orders", "1"}, {"telemetry", "1"}}) {
    ToolRun r = RunTool({"requeue", path, "--stream", stream, "--seq", seq, "--note", "broker back"});
    EXPECT_EQ(r.code, 0) << stream << ": " << Describe(r);
  }
  // The event behind the blocked head is not blocked itself.
  ToolRun behind = RunTool({"requeue", path, "--stream", "orders", "--seq", "2"});
  EXPECT_EQ(behind.code, 1) << Describe(behind);
  EXPECT_NE(behind.err.find("stream 'orders' seq 2 is pending"), std::string::npos) << behind.err;
  Json head = DumpOne(path, "orders", 1);
  EXPECT_EQ(head["attempts"].u64(), 0u);
  ASSERT_EQ(head["history"].array().size(), 1u);
  EXPECT_EQ(head["history"].array()[0]["action"].str(), "requeue");
}

// --- the history --------------------------------------------------------------

TEST(ToolAudit, OperatorActionsAppendToTheHistoryAndNeverOverwrite) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder,
                                                                        .retry = RetryPolicy{.max_attempts = 1},
                                                                        .on_exhaustion = OnExhaustion::kBlock}));
    Enqueue(*outbox, *orders, 2);
    auto publisher = std::make_shared<RecordingPublisher>();
    publisher->fail = [](const Event& e) -> std::optional<Error> {
      if (e.id.seq == 1) return Error(ErrorCode::kUnavailable, "broker down for order 1");
      return std::nullopt;
    };
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
    ASSERT_EQ(stats.blocked, 1u);
  }
  const std::string blocked_note = DumpOne(path, "orders", 1)["note"].str();
  ASSERT_NE(blocked_note.find("attempts exhausted"), std::string::npos) << blocked_note;

  ASSERT_EQ(RunTool({"skip", path, "--stream", "orders", "--seq", "1", "--reason", "poison order"}).code, 0);
  ASSERT_EQ(RunTool({"requeue", path, "--stream", "orders", "--seq", "1", "--note", "fixed upstream"}).code, 0);
  ASSERT_EQ(RunTool({"skip", path, "--stream", "orders", "--seq", "1", "--reason", "still bad"}).code, 0);

  const Json e = DumpOne(path, "orders", 1);
  EXPECT_EQ(e["state"].str(), "parked");
  const std::string user = OsUser();
  // The note says why it is parked now: the last action, with its user.
  EXPECT_EQ(e["note"].str(), "skipped by operator " + user + ": still bad");
  const auto& h = e["history"].array();
  ASSERT_EQ(h.size(), 3u) << "every action kept, oldest first";
  EXPECT_EQ(e["history_dropped"].u64(), 0u);
  const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"skip", "poison order"}, {"requeue", "fixed upstream"}, {"skip", "still bad"}};
  for (size_t i = 0; i < h.size(); ++i) {
    SCOPED_TRACE("entry " + std::to_string(i));
    EXPECT_TRUE(std::regex_match(h[i]["at"].str(), iso)) << h[i]["at"].str();
    EXPECT_EQ(h[i]["user"].str(), user);
    EXPECT_EQ(h[i]["action"].str(), expected[i].first);
    EXPECT_EQ(h[i]["reason"].str(), expected[i].second);
  }
  EXPECT_LE(h[0]["at"].str(), h[1]["at"].str());
  EXPECT_LE(h[1]["at"].str(), h[2]["at"].str());
  // Each entry keeps the note its action replaced: nothing is lost.
  EXPECT_EQ(h[0]["previous_note"].str(), blocked_note);
  EXPECT_EQ(h[1]["previous_note"].str(), "skipped by operator " + user + ": poison order");
  EXPECT_EQ(h[2]["previous_note"].str(), "requeued by operator " + user + ": fixed upstream");

  // The table: one line per entry, in the note cell (tab-separated output
  // escapes the line breaks as \n so that each record stays one line).
  ToolRun table = RunTool({"dump", path, "--stream", "orders", "--state", "parked"});
  ASSERT_EQ(table.code, 0) << Describe(table);
  ASSERT_EQ(table.OutLines().size(), 2u) << Describe(table);
  const std::string note_cell = SplitTabs(table.OutLines()[1]).at(9);
  std::vector<std::string> lines;
  for (size_t start = 0;;) {
    size_t end = note_cell.find("\\n", start);
    lines.push_back(note_cell.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 2;
  }
  ASSERT_EQ(lines.size(), 4u) << note_cell;
  EXPECT_EQ(lines[0], "skipped by operator " + user + ": still bad");
  EXPECT_TRUE(std::regex_search(lines[1], std::regex("^\\d{4}-.*Z " + user + " skip: poison order"))) << lines[1];
  EXPECT_NE(lines[2].find(" requeue: fixed upstream"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find(" skip: still bad"), std::string::npos) << lines[3];

  // Requeued again, it is delivered (with seq 2, which waited behind it); its
  // history stays with it.
  ASSERT_EQ(RunTool({"requeue", path, "--stream", "orders", "--seq", "1"}).code, 0);
  ToolRun relay = RunTool({"relay", path});
  ASSERT_EQ(relay.code, 0) << Describe(relay);
  EXPECT_EQ(ParseLines(relay).size(), 2u) << Describe(relay);
  const Json sent = DumpOne(path, "orders", 1);
  EXPECT_EQ(sent["state"].str(), "sent");
  ASSERT_EQ(sent["history"].array().size(), 4u);
  EXPECT_EQ(sent["history"].array()[3]["reason"].str(), "");
}

// --- the last assigned seq ---------------------------------------------------

// The demo showed `last_seq 4999` for a stream whose program assigned 5000:
// events published inline leave no record, so the highest seq on disk is lower.
TEST(ToolAudit, StreamsShowsTheLastAssignedSeqAfterInlinePublishing) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  auto publisher = std::make_shared<RecordingPublisher>();
  // The first three fail inline and wait on disk; the last two are published
  // inline and deleted.
  publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.seq <= 3) return Error(ErrorCode::kUnavailable, "down");
    return std::nullopt;
  };
  {
    auto outbox = MustOpen(path, {.publisher = publisher});
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * telemetry, outbox->OpenStream("telemetry"));
    Enqueue(*outbox, *telemetry, 5);
    ASSERT_OK(outbox->Close());
  }
  ASSERT_EQ(publisher->count(), 2u);
  ToolRun streams = RunTool({"streams", path, "--json"});
  ASSERT_EQ(streams.code, 0) << Describe(streams);
  auto rows = ParseLines(streams);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["retrying_events"].u64(), 3u);
  EXPECT_EQ(rows[0]["last_seq"].u64(), 5u) << streams.out;
  ToolRun stats = RunTool({"stats", path, "--prometheus"});
  EXPECT_NE(stats.out.find("jaiminho_last_seq{stream=\"telemetry\"} 5\n"), std::string::npos) << stats.out;

  // Every event published inline: nothing on disk at all.
  {
    auto outbox = MustOpen(path, {.publisher = std::make_shared<RecordingPublisher>()});
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * fills, outbox->OpenStream("fills"));
    Enqueue(*outbox, *fills, 7);
    ASSERT_OK(outbox->Close());
  }
  rows = ParseLines(RunTool({"streams", path, "--stream", "fills", "--json"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["pending_events"].u64(), 0u);
  EXPECT_EQ(rows[0]["last_seq"].u64(), 7u);

  // The next process continues after it: no seq is reused.
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * fills, outbox->OpenStream("fills"));
    Enqueue(*outbox, *fills, 1);
    ASSERT_OK_AND_ASSIGN(auto pending, outbox->ListEvents(*fills, EventState::kPending));
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0]->id.seq, 8u);
  }
  rows = ParseLines(RunTool({"streams", path, "--stream", "fills", "--json"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["last_seq"].u64(), 8u);
}

}  // namespace
}  // namespace jaiminho
