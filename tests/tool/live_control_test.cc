// Live control through the built binary (issue 20): jaiminho-tool requeue,
// skip, clean and stats on a database that a running program holds, through
// that program's control socket (OutboxOptions::control_socket). The running
// program is jaiminho_live_daemon (tests/support/live_daemon.cc: a keep-order
// stream whose head its publisher refuses), or this test process itself.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "support/child.h"
#include "support/test_util.h"
#include "tool/json_reader.h"
#include "tool/run_tool.h"
#include "util/user.h"

namespace jaiminho {
namespace {

using testing::Child;
using testing::Describe;
using testing::Json;
using testing::MustOpen;
using testing::ParseLines;
using testing::RecordingPublisher;
using testing::RunTool;
using testing::TempDir;
using testing::ToolRun;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// How long a test waits for something a running process does.
constexpr auto kDeadline = 60s;

// The value of series `name{stream="<stream>"}` in Prometheus text; -1 when absent.
double Series(const std::string& text, const std::string& name, const std::string& stream) {
  const std::string prefix = name + "{stream=\"" + stream + "\"} ";
  for (const std::string& line : testing::SplitLines(text)) {
    if (line.starts_with(prefix)) return std::stod(line.substr(prefix.size()));
  }
  return -1;
}

// Polls `done` (an observable condition) until it holds or kDeadline passes.
bool WaitUntil(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

bool IsSocket(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// Every event of the database as "seq:state", by seq (a read-only dump).
std::vector<std::string> SeqStates(const std::string& path) {
  std::vector<std::pair<uint64_t, std::string>> rows;
  for (const Json& j : ParseLines(RunTool({"dump", path, "--json"})))
    rows.emplace_back(j["seq"].u64(), j["state"].str());
  std::sort(rows.begin(), rows.end());
  std::vector<std::string> out;
  for (const auto& [seq, state] : rows)
    out.push_back(std::to_string(seq) + ":" + state);
  return out;
}

std::string Via(const std::string& socket) {
  return "via the running process's control socket " + socket;
}

// The test: a running program's keep-order stream is stuck at a head
// its broker refuses forever; `jaiminho-tool skip` against the live database
// unblocks it. The rest is delivered in order, nothing is lost, and the
// skipped event is parked with its reason.
TEST(LiveControl, SkipUnblocksAStuckKeepOrderStreamOfARunningProgram) {
  TempDir dir;
  const std::string path = dir.Sub("live.db");
  const std::string socket = path + "/control.sock";
  Child daemon({JM_LIVE_DAEMON, path, "orders", "5", "1"});
  ASSERT_EQ(daemon.ReadLineFor(kDeadline), "ready " + std::to_string(daemon.pid()));
  ASSERT_TRUE(IsSocket(socket));

  // Stuck: the head failed (more than once), nothing was published. The live
  // counters come from the program, through its socket.
  std::string prom;
  ASSERT_TRUE(WaitUntil([&] {
    ToolRun stats = RunTool({"stats", path, "--prometheus"});
    prom = stats.out;
    return stats.code == 0 && Series(prom, "jaiminho_blocked", "orders") == 1 &&
           Series(prom, "jaiminho_failed_attempts_total", "orders") >= 2;
  })) << prom;
  EXPECT_EQ(Series(prom, "jaiminho_published_events_total", "orders"), 0) << prom;
  EXPECT_EQ(Series(prom, "jaiminho_pending_events", "orders"), 5) << prom;

  ToolRun skip = RunTool({"skip", path, "--stream", "orders", "--seq", "1", "--reason", "poison order, OPS-7"});
  ASSERT_EQ(skip.code, 0) << Describe(skip);
  EXPECT_EQ(skip.out, "skipped stream 'orders' seq 1 (parked; requeue it to deliver it later)\n");
  EXPECT_NE(skip.err.find(Via(socket)), std::string::npos) << skip.err;
  EXPECT_NE(skip.err.find("process " + std::to_string(daemon.pid())), std::string::npos) << skip.err;

  // The rest, in order, by the program's own relay.
  for (int seq = 2; seq <= 5; ++seq) {
    auto line = daemon.ReadLineFor(kDeadline);
    ASSERT_TRUE(line) << "seq " << seq << " was not delivered after the skip";
    EXPECT_EQ(*line, "delivered " + std::to_string(seq) + " event-" + std::to_string(seq));
  }
  auto parked = ParseLines(RunTool({"dump", path, "--state", "parked", "--json"}));
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0]["seq"].u64(), 1u);
  EXPECT_EQ(parked[0]["payload"].str(), "event-1");
  EXPECT_NE(parked[0]["note"].str().find("poison order, OPS-7"), std::string::npos) << parked[0]["note"].str();
  // The history names the operator (the tool's user) and the way it came.
  const auto& history = parked[0]["history"].array();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0]["action"].str(), "skip");
  EXPECT_EQ(history[0]["reason"].str(), "poison order, OPS-7");
  EXPECT_TRUE(history[0]["user"].str().starts_with(internal::EffectiveUserName() + " (control socket, pid "))
      << history[0]["user"].str();
  ASSERT_TRUE(WaitUntil([&] {
    prom = RunTool({"stats", path, "--prometheus"}).out;
    return Series(prom, "jaiminho_published_events_total", "orders") == 4;
  })) << prom;
  EXPECT_EQ(Series(prom, "jaiminho_blocked", "orders"), 0) << prom;

  daemon.WriteLine("exit");
  EXPECT_EQ(daemon.Wait(), 0);
  EXPECT_FALSE(fs::exists(socket)) << "Close left the socket file";
  // Nothing lost: the skipped event parked, every other one sent.
  EXPECT_EQ(SeqStates(path), (std::vector<std::string>{"1:parked", "2:sent", "3:sent", "4:sent", "5:sent"}));
}

TEST(LiveControl, RequeueAndStatsGoThroughTheSocketAndErrorsNameStreamAndSeq) {
  TempDir dir;
  const std::string path = dir.Sub("live.db");
  const std::string socket = path + "/control.sock";
  Child daemon({JM_LIVE_DAEMON, path, "orders", "3", "1"});
  ASSERT_EQ(daemon.ReadLineFor(kDeadline), "ready " + std::to_string(daemon.pid()));

  // A refused action says why, naming the stream and seq; exit 1 as on the
  // direct path, nothing changed.
  ToolRun missing_seq = RunTool({"requeue", path, "--stream", "orders", "--seq", "99"});
  EXPECT_EQ(missing_seq.code, 1) << Describe(missing_seq);
  EXPECT_NE(missing_seq.err.find("seq 99"), std::string::npos) << missing_seq.err;
  EXPECT_NE(missing_seq.err.find(Via(socket)), std::string::npos) << missing_seq.err;
  ToolRun missing_stream = RunTool({"skip", path, "--stream", "nope", "--seq", "1", "--reason", "x"});
  EXPECT_EQ(missing_stream.code, 1) << Describe(missing_stream);
  EXPECT_NE(missing_stream.err.find("'nope'"), std::string::npos) << missing_stream.err;
  ToolRun stats_missing = RunTool({"stats", path, "--stream", "nope"});
  EXPECT_EQ(stats_missing.code, 1) << Describe(stats_missing);
  EXPECT_NE(stats_missing.err.find("streams: orders"), std::string::npos) << stats_missing.err;

  ASSERT_EQ(RunTool({"skip", path, "--stream", "orders", "--seq", "1", "--reason", "later"}).code, 0);
  EXPECT_EQ(daemon.ReadLineFor(kDeadline), "delivered 2 event-2");
  EXPECT_EQ(daemon.ReadLineFor(kDeadline), "delivered 3 event-3");
  ToolRun skip_parked = RunTool({"skip", path, "--stream", "orders", "--seq", "1", "--reason", "again"});
  EXPECT_EQ(skip_parked.code, 1) << Describe(skip_parked);
  EXPECT_NE(skip_parked.err.find("stream 'orders' seq 1"), std::string::npos) << skip_parked.err;

  // The broker takes it now: requeue every parked event, live.
  daemon.WriteLine("heal");
  ToolRun all = RunTool({"requeue", path, "--stream", "orders", "--all-parked", "--note", "fixed upstream", "--json"});
  ASSERT_EQ(all.code, 0) << Describe(all);
  auto result = ParseLines(all);
  ASSERT_EQ(result.size(), 1u);
  EXPECT_EQ(result[0]["requeued"].u64(), 1u);
  EXPECT_EQ(daemon.ReadLineFor(kDeadline), "delivered 1 event-1");

  // stats: the table and JSON carry the program's counters.
  ToolRun table;
  ASSERT_TRUE(WaitUntil([&] {
    table = RunTool({"stats", path});
    auto lines = table.OutLines();
    return table.code == 0 && lines.size() == 2 &&
           testing::SplitTabs(lines[1]) == std::vector<std::string>{"orders", "0", "0",
                                                                    "0",      "-", "no",
                                                                    "3",      "3", testing::SplitTabs(lines[1]).back()};
  })) << Describe(table);
  EXPECT_EQ(testing::SplitTabs(table.OutLines()[0]),
            (std::vector<std::string>{"stream", "pending", "retrying", "parked", "oldest_pending", "blocked",
                                      "last_seq", "published", "failed"}));
  EXPECT_GE(std::stoi(testing::SplitTabs(table.OutLines()[1]).back()), 1) << table.out;
  auto json = ParseLines(RunTool({"stats", path, "--json"}));
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0]["published_events_total"].u64(), 3u);
  EXPECT_EQ(json[0]["committed_events_total"].u64(), 3u);
  EXPECT_GE(json[0]["failed_attempts_total"].u64(), 1u);

  daemon.WriteLine("exit");
  EXPECT_EQ(daemon.Wait(), 0);
  EXPECT_EQ(SeqStates(path), (std::vector<std::string>{"1:sent", "2:sent", "3:sent"}));
  // Not held any more: stats reads the files again (gauges, no counters).
  ToolRun after = RunTool({"stats", path, "--prometheus"});
  EXPECT_EQ(after.code, 0) << Describe(after);
  EXPECT_EQ(after.err, "");
  EXPECT_EQ(after.out.find("_total"), std::string::npos) << after.out;
}

// clean through the socket of a running program (this test process): the
// program's own cleaner drops its expired sent events, never a pending one.
TEST(LiveControl, CleanThroughTheSocketRemovesExpiredSentEventsOnly) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  auto clock = std::make_shared<ManualClock>(SystemClock()->Now() - std::chrono::hours(24 * 30));
  auto outbox = MustOpen(path, {.control_socket = true, .clock = clock});
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
  auto enqueue = [&](const std::string& payload) {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*orders, {.type = "test.v1", .payload = payload}));
    ASSERT_OK(txn.Commit());
  };
  for (int i = 1; i <= 4; ++i)
    enqueue("o" + std::to_string(i));
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, std::make_shared<RecordingPublisher>()));
  ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
  ASSERT_EQ(stats.published, 4u);
  enqueue("late");
  clock->Set(SystemClock()->Now());  // the four sent events are 30 days old now

  ToolRun clean = RunTool({"clean", path, "--json"});
  ASSERT_EQ(clean.code, 0) << Describe(clean);
  EXPECT_NE(clean.err.find(Via(path + "/control.sock")), std::string::npos) << clean.err;
  auto report = ParseLines(clean);
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0]["removed"].u64(), 4u);
  EXPECT_EQ(report[0]["kept_corrupt"].u64(), 0u);
  ASSERT_OK_AND_ASSIGN(auto sent, outbox->ListEvents(*orders, EventState::kSent));
  EXPECT_EQ(sent.size(), 0u);
  ASSERT_OK_AND_ASSIGN(auto pending, outbox->ListEvents(*orders, EventState::kPending));
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0]->payload, "late");
  ToolRun again = RunTool({"clean", path});
  EXPECT_EQ(again.code, 0) << Describe(again);
  EXPECT_EQ(again.out.rfind("removed 0 sent events", 0), 0u) << again.out;
  ASSERT_OK(outbox->Close());
  EXPECT_FALSE(fs::exists(path + "/control.sock"));
}

// Off unless enabled: no socket file, and the refusal says how to enable it.
TEST(LiveControl, SocketIsOffByDefaultAndTheRefusalSaysHowToEnableIt) {
  TempDir dir;
  const std::string path = dir.Sub("live.db");
  Child holder({JM_HOLD_DB, path, "telemetry", "2"});
  ASSERT_EQ(holder.ReadLine(), "ready " + std::to_string(holder.pid()));
  EXPECT_FALSE(fs::exists(path + "/control.sock"));
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"skip", path, "--stream", "telemetry", "--seq", "1", "--reason", "x"},
                                             {"requeue", path, "--stream", "telemetry", "--all-parked"},
                                             {"clean", path}}) {
    ToolRun r = RunTool(args);
    EXPECT_EQ(r.code, 3) << args[0] << ": " << Describe(r);
    ASSERT_EQ(r.ErrLines().size(), 1u) << Describe(r);
    EXPECT_NE(r.err.find("in use by process " + std::to_string(holder.pid())), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("OutboxOptions::control_socket = true"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // stats reads the files, as before: gauges, nothing about a socket.
  ToolRun stats = RunTool({"stats", path, "--prometheus"});
  EXPECT_EQ(stats.code, 0) << Describe(stats);
  EXPECT_EQ(stats.err, "");
  EXPECT_EQ(Series(stats.out, "jaiminho_pending_events", "telemetry"), 2) << stats.out;
  holder.WriteLine("");
  EXPECT_EQ(holder.Wait(), 0);
}

// A killed program leaves its socket file; the tool then takes the direct path
// (nobody holds the database), and the next program replaces the file.
TEST(LiveControl, StaleSocketOfAKilledProgramIsReplaced) {
  TempDir dir;
  const std::string path = dir.Sub("live.db");
  const std::string socket = path + "/control.sock";
  {
    Child first({JM_LIVE_DAEMON, path, "orders", "2", "0"});
    ASSERT_EQ(first.ReadLineFor(kDeadline), "ready " + std::to_string(first.pid()));
    EXPECT_EQ(first.ReadLineFor(kDeadline), "delivered 1 event-1");
    EXPECT_EQ(first.ReadLineFor(kDeadline), "delivered 2 event-2");
    // Both acknowledgements written (so the next program has nothing to redeliver).
    ASSERT_TRUE(WaitUntil([&] {
      return Series(RunTool({"stats", path, "--prometheus"}).out, "jaiminho_published_events_total", "orders") == 2;
    }));
    first.WriteLine("crash");
    EXPECT_EQ(first.Wait(), 0);
  }
  ASSERT_TRUE(IsSocket(socket)) << "the killed program's socket file is gone: nothing stale to test";

  // Nobody holds the database: the direct path, whatever file lies there.
  ToolRun direct = RunTool({"requeue", path, "--stream", "orders", "--all-parked", "--json"});
  EXPECT_EQ(direct.code, 0) << Describe(direct);
  EXPECT_EQ(direct.err.find("control socket"), std::string::npos) << direct.err;
  ToolRun stats = RunTool({"stats", path, "--json"});
  EXPECT_EQ(stats.code, 0) << Describe(stats);
  EXPECT_EQ(stats.err, "");

  Child second({JM_LIVE_DAEMON, path, "orders", "1", "0"});
  ASSERT_EQ(second.ReadLineFor(kDeadline), "ready " + std::to_string(second.pid()));
  auto delivered = second.ReadLineFor(kDeadline);
  ASSERT_TRUE(delivered);
  EXPECT_TRUE(delivered->ends_with(" event-1")) << *delivered;
  struct stat st {};
  ASSERT_EQ(::lstat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ToolRun live = RunTool({"stats", path, "--prometheus"});
  ASSERT_EQ(live.code, 0) << Describe(live);
  EXPECT_NE(live.err.find(Via(socket) + " (process " + std::to_string(second.pid())), std::string::npos) << live.err;
  EXPECT_EQ(Series(live.out, "jaiminho_committed_events_total", "orders"), 1) << live.out;
  second.WriteLine("exit");
  EXPECT_EQ(second.Wait(), 0);
  EXPECT_FALSE(fs::exists(socket));
}

// `jaiminho-tool relay --loop --control-socket` (as a service would run it):
// a skip from another jaiminho-tool run unblocks the stream it relays.
TEST(LiveControl, RelayLoopWithControlSocketIsUnstuckBySkip) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  const std::string socket = path + "/control.sock";
  const std::string received = dir.Sub("received");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(
        Stream * s, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder,
                                                  .retry = RetryPolicy{.initial_backoff = 10ms, .max_backoff = 50ms}}));
    for (int i = 1; i <= 3; ++i) {
      auto txn = outbox->Begin();
      ASSERT_OK(txn.Enqueue(*s, {.type = "test.v1", .payload = "o" + std::to_string(i)}));
      ASSERT_OK(txn.Commit());
    }
  }
  // The broker refuses seq 1 for good; the others are written to `received`.
  const std::string sink =
      "exec:read -r l; case \"$l\" in *'\"seq\":1,'*) exit 3;; esac; printf '%s\\n' \"$l\" >> '" + received + "'";
  Child relay({JM_TOOL, "relay", path, "--loop", "--interval", "20ms", "--control-socket", "--sink", sink});
  std::string prom;
  ASSERT_TRUE(WaitUntil([&] {
    ToolRun stats = RunTool({"stats", path, "--prometheus"});
    prom = stats.out;
    return stats.code == 0 && stats.err.find(Via(socket)) != std::string::npos &&
           Series(prom, "jaiminho_blocked", "orders") == 1;
  })) << prom;
  EXPECT_FALSE(fs::exists(received));

  ToolRun skip = RunTool({"skip", path, "--stream", "orders", "--seq", "1", "--reason", "refused for good"});
  ASSERT_EQ(skip.code, 0) << Describe(skip);
  EXPECT_NE(skip.err.find(Via(socket) + " (process " + std::to_string(relay.pid())), std::string::npos) << skip.err;
  std::vector<std::string> payloads;
  ASSERT_TRUE(WaitUntil([&] {
    payloads.clear();
    std::ifstream in(received);
    for (std::string line; std::getline(in, line);) {
      auto j = Json::Parse(line);
      payloads.push_back(j ? (*j)["payload"].str() : line);
    }
    return payloads.size() >= 2;
  }));
  EXPECT_EQ(payloads, (std::vector<std::string>{"o2", "o3"}));
  ASSERT_EQ(::kill(relay.pid(), SIGTERM), 0);
  EXPECT_EQ(relay.Wait(), 0);
  EXPECT_FALSE(fs::exists(socket));
  EXPECT_EQ(SeqStates(path), (std::vector<std::string>{"1:parked", "2:sent", "3:sent"}));
}

}  // namespace
}  // namespace jaiminho
