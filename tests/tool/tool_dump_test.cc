// jaiminho-tool dump (seq order, filters, --follow), the CLI's checks and the
// JSON schema shared by streams and stats: the built binary (JM_TOOL), as
// operators run it.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "support/child.h"
#include "support/test_util.h"
#include "tool/json_reader.h"
#include "tool/run_tool.h"

namespace jaiminho {
namespace {

using testing::Child;
using testing::Describe;
using testing::Json;
using testing::MustOpen;
using testing::ParseLines;
using testing::RecordingPublisher;
using testing::RunTool;
using testing::SplitTabs;
using testing::TempDir;
using testing::ToolRun;
using V = std::vector<std::string>;

// 2023-11-14T22:13:20.123456Z
constexpr int64_t kT0 = 1'700'000'000'123'456;

void Enqueue(Outbox& outbox, Stream& stream, const Message& m) {
  auto txn = outbox.Begin();
  ASSERT_OK(txn.Enqueue(stream, m));
  ASSERT_OK(txn.Commit());
}

// Events `from`..`to` with key "k<i>" and payload "<prefix><i>".
void EnqueueRange(Outbox& outbox, Stream& stream, int from, int to, const std::string& prefix) {
  for (int i = from; i <= to; ++i) {
    std::string payload = prefix + std::to_string(i);
    Enqueue(outbox, stream, {.type = "test.v1", .key = "k" + std::to_string(i), .payload = payload});
  }
}

// "<stream><seq>" of each event `dump PATH --json ARGS...` prints (exit 0 required).
V Seqs(const std::string& path, const V& args) {
  V all = {"dump", path, "--json"};
  all.insert(all.end(), args.begin(), args.end());
  ToolRun r = RunTool(all);
  EXPECT_EQ(r.code, 0) << Describe(r);
  V out;
  for (const Json& j : ParseLines(r))
    out.push_back(j["stream"].str() + j["seq"].number_text());
  return out;
}

// Issue 20: `dump --from-seq 1999 --limit 4` returned 2001-2004, because dump
// walked the states' key ranges (parked, pending, retrying, sent) one after
// the other. Events of one stream in four states come out in seq order.
TEST(ToolDump, PrintsEventsInSeqOrderAcrossStates) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * t, outbox->OpenStream("telemetry"));
    EnqueueRange(*outbox, *t, 1, 6, "t");
    // 2 fails (retrying), 4 is rejected (parked), the others are delivered (sent).
    auto publisher = std::make_shared<RecordingPublisher>();
    publisher->fail = [](const Event& e) -> std::optional<Error> {
      if (e.id.seq == 2) return Error(ErrorCode::kUnavailable, "broker down");
      if (e.id.seq == 4) return Error(ErrorCode::kRejected, "schema");
      return std::nullopt;
    };
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
    ASSERT_EQ(stats.published, 4u);
    ASSERT_EQ(stats.parked, 1u);
    EnqueueRange(*outbox, *t, 7, 8, "t");  // pending
  }
  ToolRun all = RunTool({"dump", path, "--json"});
  ASSERT_EQ(all.code, 0) << Describe(all);
  V states;
  for (const Json& j : ParseLines(all))
    states.push_back(j["seq"].number_text() + ":" + j["state"].str());
  EXPECT_EQ(states, (V{"1:sent", "2:retrying", "3:sent", "4:parked", "5:sent", "6:sent", "7:pending", "8:pending"}));

  EXPECT_EQ(Seqs(path, {"--from-seq", "2", "--limit", "4"}),
            (V{"telemetry2", "telemetry3", "telemetry4", "telemetry5"}));
  EXPECT_EQ(Seqs(path, {"--from-seq", "2", "--to-seq", "4"}), (V{"telemetry2", "telemetry3", "telemetry4"}));
  EXPECT_EQ(Seqs(path, {"--to-seq", "5", "--state", "sent"}), (V{"telemetry1", "telemetry3", "telemetry5"}));
  EXPECT_EQ(Seqs(path, {"--from-seq", "3", "--state", "retrying,parked,pending"}),
            (V{"telemetry4", "telemetry7", "telemetry8"}));
  EXPECT_EQ(Seqs(path, {"--from-seq", "9"}), V{});

  // The table (piped: tab-separated) in the same order.
  ToolRun table = RunTool({"dump", path, "--from-seq", "1", "--limit", "4"});
  ASSERT_EQ(table.code, 0) << Describe(table);
  auto lines = table.OutLines();
  ASSERT_EQ(lines.size(), 5u) << Describe(table);
  for (size_t i = 1; i < lines.size(); ++i)
    EXPECT_EQ(SplitTabs(lines[i])[1], std::to_string(i)) << table.out;
}

TEST(ToolDump, KeyAndCreatedAtFilters) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto clock = std::make_shared<ManualClock>(FromMicros(kT0));
    auto outbox = MustOpen(path, {.clock = clock});
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * a, outbox->OpenStream("a"));
    ASSERT_OK_AND_ASSIGN(Stream * b, outbox->OpenStream("b"));
    for (int i = 1; i <= 3; ++i) {  // a1, a2, a3 ten seconds apart, b1 with a1's key at a3's time
      EnqueueRange(*outbox, *a, i, i, "a");
      if (i < 3) clock->Advance(std::chrono::seconds(10));
    }
    EnqueueRange(*outbox, *b, 1, 1, "b");
  }
  EXPECT_EQ(Seqs(path, {"--key", "k1"}), (V{"a1", "b1"}));
  EXPECT_EQ(Seqs(path, {"--key", "k2"}), (V{"a2"}));
  EXPECT_EQ(Seqs(path, {"--key", "nope"}), V{});
  // --since is inclusive, --until exclusive; ISO-8601 UTC or seconds since the epoch.
  EXPECT_EQ(Seqs(path, {"--since", "2023-11-14T22:13:30.123456Z"}), (V{"a2", "a3", "b1"}));
  EXPECT_EQ(Seqs(path, {"--until", "2023-11-14T22:13:30.123456Z"}), (V{"a1"}));
  EXPECT_EQ(Seqs(path, {"--since", "2023-11-14T22:13:30Z", "--until", "2023-11-14T22:13:40Z"}), (V{"a2"}));
  EXPECT_EQ(Seqs(path, {"--since", "1700000010"}), (V{"a2", "a3", "b1"}));
  EXPECT_EQ(Seqs(path, {"--until", "1700000010.2"}), (V{"a1", "a2"}));
  EXPECT_EQ(Seqs(path, {"--since", "2023-11-15"}), V{});
  EXPECT_EQ(Seqs(path, {"--since", "2023-11-14", "--key", "k1", "--stream", "b"}), (V{"b1"}));

  for (const V& bad :
       {V{"--since", "yesterday"}, V{"--until", "2023-13-01T00:00:00Z"}, V{"--since", "2023-11-14T22:13:30+01:00"},
        V{"--since", "1700000020", "--until", "1700000010"}}) {
    V args = {"dump", path};
    args.insert(args.end(), bad.begin(), bad.end());
    ToolRun r = RunTool(args);
    EXPECT_EQ(r.code, 2) << bad[0] << " " << bad[1] << ": " << Describe(r);
    EXPECT_EQ(r.ErrLines().size(), 1u) << Describe(r);
    EXPECT_NE(r.err.find(bad[0]), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

// dump --follow on a database another process holds and writes: the events
// committed after it started are printed as they come, streams created
// meanwhile too, until SIGINT (exit 0).
TEST(ToolDump, FollowPrintsNewEventsOfALiveDatabaseUntilSigint) {
  TempDir dir;
  const std::string path = dir.Sub("live.db");
  auto outbox = MustOpen(path);  // held by this process while the tool follows it
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(Stream * t, outbox->OpenStream("telemetry"));
  EnqueueRange(*outbox, *t, 1, 2, "f");

  Child follow({JM_TOOL, "dump", path, "--follow", "--json", "--interval", "20ms"});
  auto next = [&] {
    auto j = Json::Parse(follow.ReadLine());
    EXPECT_TRUE(j.has_value());
    return j ? (*j)["stream"].str() + (*j)["seq"].number_text() + ":" + (*j)["payload"].str() : std::string("EOF");
  };
  EXPECT_EQ(next(), "telemetry1:f1");
  EXPECT_EQ(next(), "telemetry2:f2");
  EnqueueRange(*outbox, *t, 3, 4, "f");
  EXPECT_EQ(next(), "telemetry3:f3");
  EXPECT_EQ(next(), "telemetry4:f4");
  ASSERT_OK_AND_ASSIGN(Stream * late, outbox->OpenStream("late"));
  EnqueueRange(*outbox, *late, 1, 1, "l");
  EXPECT_EQ(next(), "late1:l1");
  EnqueueRange(*outbox, *t, 5, 5, "f");
  EXPECT_EQ(next(), "telemetry5:f5");

  ASSERT_EQ(::kill(follow.pid(), SIGINT), 0);
  EXPECT_EQ(follow.Wait(), 0);
  EXPECT_EQ(follow.ReadLine(), "") << "nothing after the last event";
  ASSERT_OK(outbox->Close());
}

// --follow with the table output: the header once, then rows as they come.
TEST(ToolDump, FollowTableAndFilters) {
  TempDir dir;
  const std::string path = dir.Sub("live.db");
  auto outbox = MustOpen(path);
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(Stream * t, outbox->OpenStream("telemetry"));
  EnqueueRange(*outbox, *t, 1, 1, "f");
  Child follow({JM_TOOL, "dump", path, "--follow", "--key", "k3", "--interval", "20ms"});
  EXPECT_EQ(follow.ReadLine(),
            "stream\tseq\tstate\ttype\tkey\tattempts\tcreated_at\tsent_at\tlast_error\tnote\tpayload");
  EnqueueRange(*outbox, *t, 2, 3, "f");
  auto row = SplitTabs(follow.ReadLine());
  ASSERT_EQ(row.size(), 11u);
  EXPECT_EQ(row[1], "3");
  EXPECT_EQ(row[4], "k3");
  ASSERT_EQ(::kill(follow.pid(), SIGINT), 0);
  EXPECT_EQ(follow.Wait(), 0);
  ASSERT_OK(outbox->Close());
}

// --follow ends by itself once --limit events were printed (exit 0).
TEST(ToolDump, FollowStopsAtTheLimit) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  auto outbox = MustOpen(path);
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(Stream * t, outbox->OpenStream("telemetry"));
  EnqueueRange(*outbox, *t, 1, 3, "f");
  ToolRun r = RunTool({"dump", path, "--follow", "--json", "--limit", "2", "--interval", "20ms"});
  EXPECT_EQ(r.code, 0) << Describe(r);
  ASSERT_EQ(r.OutLines().size(), 2u) << Describe(r);
  EXPECT_EQ(r.err, "");
  ASSERT_OK(outbox->Close());
}

// --- the command line --------------------------------------------------------

TEST(ToolCli, NumericOptionsAreRangeChecked) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * t, outbox->OpenStream("telemetry"));
    EnqueueRange(*outbox, *t, 1, 2, "x");
  }
  const std::vector<std::pair<V, std::string>> cases = {
      {{"dump", path, "--limit", "-5"}, "--limit: '-5' is not a whole number from 1 to "},
      {{"dump", path, "--limit", "0"}, "--limit: '0' is not a whole number from 1 to "},
      {{"dump", path, "--limit", "3x"}, "--limit: '3x'"},
      {{"dump", path, "--from-seq", "-1"}, "--from-seq: '-1' is not a whole number from 1 to "},
      {{"dump", path, "--from-seq", "99999999999999999999"}, "--from-seq: '99999999999999999999'"},
      {{"dump", path, "--to-seq", "0"}, "--to-seq: '0'"},
      {{"dump", path, "--from-seq", "5", "--to-seq", "3"}, "--to-seq 3 is below --from-seq 5"},
      {{"dump", path, "--interval", "-1s", "--follow"}, "--interval"},
      {{"skip", path, "--stream", "telemetry", "--seq", "-1", "--reason", "x"}, "--seq: '-1'"},
      {{"skip", path, "--stream", "telemetry", "--seq", "0", "--reason", "x"}, "--seq: '0'"},
      {{"requeue", path, "--stream", "telemetry", "--seq", "18446744073709551616"}, "--seq: '18446744073709551616'"},
  };
  for (const auto& [args, message] : cases) {
    ToolRun r = RunTool(args);
    std::string shown;
    for (const auto& a : args)
      shown += a + " ";
    EXPECT_EQ(r.code, 2) << shown << Describe(r);
    EXPECT_EQ(r.ErrLines().size(), 1u) << shown << Describe(r);
    EXPECT_NE(r.err.find(message), std::string::npos) << shown << Describe(r);
    EXPECT_EQ(r.out, "") << shown;
  }
  // The largest seq is accepted (and simply matches nothing).
  ToolRun top = RunTool({"dump", path, "--json", "--from-seq", "9223372036854775807"});
  EXPECT_EQ(top.code, 0) << Describe(top);
  EXPECT_EQ(top.out, "");
}

TEST(ToolCli, UnknownOrMissingCommandIsNamed) {
  ToolRun r = RunTool({"frob", "/tmp/x"});
  EXPECT_EQ(r.code, 2) << Describe(r);
  ASSERT_EQ(r.ErrLines().size(), 1u) << Describe(r);
  EXPECT_EQ(r.err.rfind(
                "jaiminho-tool: unknown command 'frob'; commands are: dump, streams, stats, verify, inbox, relay, ", 0),
            0u)
      << r.err;
  ToolRun none = RunTool({});
  EXPECT_EQ(none.code, 2) << Describe(none);
  ASSERT_EQ(none.ErrLines().size(), 1u) << Describe(none);
  EXPECT_EQ(none.err.rfind("jaiminho-tool: a command is required; commands are: dump, ", 0), 0u) << none.err;
  ToolRun option_first = RunTool({"--frob"});
  EXPECT_EQ(option_first.code, 2) << Describe(option_first);
  EXPECT_EQ(option_first.ErrLines().size(), 1u) << Describe(option_first);
}

// Piped output (tab-separated) starts with its header line even when no row matches.
TEST(ToolCli, PipedTablesHaveTheirHeaderWithoutRows) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * t, outbox->OpenStream("telemetry"));
    EnqueueRange(*outbox, *t, 1, 2, "x");
  }
  ToolRun dump = RunTool({"dump", path, "--state", "parked"});
  EXPECT_EQ(dump.code, 0) << Describe(dump);
  EXPECT_EQ(dump.out, "stream\tseq\tstate\ttype\tkey\tattempts\tcreated_at\tsent_at\tlast_error\tnote\tpayload\n");
  ToolRun verify = RunTool({"verify", path});
  EXPECT_EQ(verify.code, 0) << Describe(verify);
  EXPECT_EQ(verify.out, "stream\tseq\tstored_state\terror\n");
  ToolRun json = RunTool({"dump", path, "--state", "parked", "--json"});
  EXPECT_EQ(json.out, "") << "JSON lines have no header";
}

// --- one JSON schema ----------------------------------------------------------

// The facts streams --json and stats --json both give carry one name, unit and
// type (README, "JSON schema").
TEST(ToolJson, StreamsAndStatsNameTheSameFactsTheSameWay) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(
        Stream * orders,
        outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder,
                                      .retry = RetryPolicy{.max_attempts = 1},
                                      .on_exhaustion = OnExhaustion::kBlock,
                                      .quota = StreamQuota{.max_events = 100, .policy = QuotaPolicy::kReject}}));
    ASSERT_OK_AND_ASSIGN(Stream * idle, outbox->OpenStream("idle"));
    (void)idle;
    EnqueueRange(*outbox, *orders, 1, 3, "o");
    auto publisher = std::make_shared<RecordingPublisher>();
    publisher->fail = [](const Event&) -> std::optional<Error> { return Error(ErrorCode::kUnavailable, "down"); };
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
    ASSERT_EQ(stats.blocked, 1u);
  }
  ToolRun streams = RunTool({"streams", path, "--json"});
  ToolRun stats = RunTool({"stats", path, "--json"});
  ASSERT_EQ(streams.code, 0) << Describe(streams);
  ASSERT_EQ(stats.code, 0) << Describe(stats);
  auto s = ParseLines(streams);
  auto m = ParseLines(stats);
  ASSERT_EQ(s.size(), 2u);
  ASSERT_EQ(m.size(), 2u);
  // Streams by name: idle, then orders.
  for (size_t i = 0; i < 2; ++i) {
    for (const Json* j : {&s[i], &m[i]}) {
      for (const char* field :
           {"stream", "strategy", "pending_events", "retrying_events", "parked_events", "waiting_events",
            "oldest_pending_age_seconds", "last_seq", "cursor", "blocked", "blocked_seq", "blocked_error",
            "quota_max_events", "quota_max_bytes", "quota_policy", "waiting_bytes"}) {
        EXPECT_TRUE(j->Has(field)) << field << " missing in " << (j == &s[i] ? "streams" : "stats");
      }
      for (const char* old : {"pending", "retrying", "parked", "oldest_pending_age_us"})
        EXPECT_FALSE(j->Has(old)) << old;
    }
    for (const auto& [name, value] : m[i].object()) {
      ASSERT_TRUE(s[i].Has(name)) << "stats has " << name << ", streams has not";
      EXPECT_EQ(s[i][name].kind(), value.kind()) << name;
      if (name != "oldest_pending_age_seconds") {
        EXPECT_EQ(s[i][name].number_text(), value.number_text()) << name;
        EXPECT_EQ(s[i][name].boolean(), value.boolean()) << name;
      }
    }
  }
  const Json& idle = m[0];
  EXPECT_EQ(idle["stream"].str(), "idle");
  EXPECT_EQ(idle["pending_events"].u64(), 0u);
  EXPECT_TRUE(idle["oldest_pending_age_seconds"].is_null()) << "no pending event: null, not 0";
  EXPECT_EQ(idle["blocked"].kind(), Json::Kind::kBool);
  EXPECT_FALSE(idle["blocked"].boolean());
  EXPECT_TRUE(idle["blocked_seq"].is_null());
  EXPECT_EQ(idle["quota_max_events"].u64(), 0u);
  EXPECT_TRUE(idle["quota_policy"].is_null());
  EXPECT_TRUE(idle["waiting_bytes"].is_null());

  const Json& orders = m[1];
  EXPECT_EQ(orders["strategy"].str(), "keep-order");
  EXPECT_EQ(orders["pending_events"].u64(), 3u);
  EXPECT_EQ(orders["waiting_events"].u64(), 3u);
  EXPECT_EQ(orders["oldest_pending_age_seconds"].kind(), Json::Kind::kNumber);
  EXPECT_GE(orders["oldest_pending_age_seconds"].number(), 0.0);
  EXPECT_TRUE(orders["blocked"].boolean());
  EXPECT_EQ(orders["blocked_seq"].u64(), 1u);
  EXPECT_NE(orders["blocked_error"].str().find("down"), std::string::npos);
  EXPECT_EQ(orders["quota_max_events"].u64(), 100u);
  EXPECT_EQ(orders["quota_policy"].str(), "reject");
  EXPECT_EQ(orders["waiting_bytes"].kind(), Json::Kind::kNumber);
  // streams adds the configuration, durations in seconds.
  EXPECT_EQ(s[1]["config"]["max_attempts"].u64(), 1u);
  EXPECT_EQ(s[1]["config"]["on_exhaustion"].str(), "block");
  EXPECT_TRUE(s[1]["config"].Has("initial_backoff_seconds"));
  EXPECT_TRUE(s[1]["config"].Has("time_to_delete_seconds"));
  EXPECT_FALSE(s[1]["config"].Has("initial_backoff_us"));
}

}  // namespace
}  // namespace jaiminho
