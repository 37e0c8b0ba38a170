// jaiminho_tool_lib in-process: formatting, sinks, record checks, and the
// commands with captured streams (terminal and pipe modes).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "storage/envelope.h"
#include "storage/keys.h"
#include "support/test_util.h"
#include "tool/commands.h"
#include "tool/format.h"
#include "tool/json_reader.h"
#include "tool/progress.h"
#include "tool/records.h"
#include "tool/run_tool.h"
#include "tool/sinks.h"

namespace jaiminho {
namespace {

using testing::Json;
using testing::MustOpen;
using testing::TempDir;

TEST(ToolFormat, TimesAreIso8601UtcWithMicroseconds) {
  EXPECT_EQ(tool::FormatTime(FromMicros(1'700'000'000'123'456)), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(tool::FormatTime(FromMicros(1)), "1970-01-01T00:00:00.000001Z");
  EXPECT_EQ(tool::FormatTime(FromMicros(-1)), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(tool::FormatTime(FromMicros(0)), "") << "zero means not set";
}

TEST(ToolFormat, AgesAreShortAndReadable) {
  using std::chrono::microseconds;
  EXPECT_EQ(tool::FormatAge(microseconds(850'000)), "850ms");
  EXPECT_EQ(tool::FormatAge(microseconds(12'340'000)), "12.3s");
  EXPECT_EQ(tool::FormatAge(std::chrono::seconds(5 * 60 + 7)), "5m07s");
  EXPECT_EQ(tool::FormatAge(std::chrono::minutes(3 * 60 + 5)), "3h05m");
  EXPECT_EQ(tool::FormatAge(std::chrono::hours(52)), "2d04h");
}

TEST(ToolFormat, DurationsParseWithUnits) {
  using std::chrono::microseconds;
  EXPECT_EQ(*tool::ParseDuration("250ms", "x"), microseconds(250'000));
  EXPECT_EQ(*tool::ParseDuration("2", "x"), microseconds(2'000'000));
  EXPECT_EQ(*tool::ParseDuration("1.5s", "x"), microseconds(1'500'000));
  EXPECT_EQ(*tool::ParseDuration("1m", "x"), microseconds(60'000'000));
  EXPECT_EQ(*tool::ParseDuration("1h", "x"), microseconds(3'600'000'000));
  EXPECT_EQ(*tool::ParseDuration("100us", "x"), microseconds(100));
  for (const char* bad : {"", "0", "0s", "-1s", "s", "1d", "1.2.3s", "abc", "0.1us"}) {
    auto r = tool::ParseDuration(bad, "--interval");
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("--interval"), std::string::npos);
  }
}

TEST(ToolFormat, TimesParseAsIso8601UtcOrEpochSeconds) {
  auto us = [](std::string_view t) { return tool::ParseTime(t, "--since"); };
  EXPECT_EQ(us("2023-11-14T22:13:20.123456Z"), 1'700'000'000'123'456);
  EXPECT_EQ(us("2023-11-14T22:13:20Z"), 1'700'000'000'000'000);
  EXPECT_EQ(us("2023-11-14T22:13:20.5+00:00"), 1'700'000'000'500'000);
  EXPECT_EQ(us("2023-11-14T22:13Z"), 1'699'999'980'000'000);
  EXPECT_EQ(us("2023-11-14"), 1'699'920'000'000'000);
  EXPECT_EQ(us("2024-02-29"), 1'709'164'800'000'000);  // a leap day
  EXPECT_EQ(us("1700000000"), 1'700'000'000'000'000);
  EXPECT_EQ(us("1700000000.25"), 1'700'000'000'250'000);
  EXPECT_EQ(us("0"), 0);
  for (std::string_view bad :
       {"", "yesterday", "2023-02-30", "2023-11-14T25:00:00Z", "2023-11-14T22:13:20", "2023-11-14T22:13:20+02:00",
        "2023-11-14T22:13:60Z", "-5", "17e8", "1700000000.", "2023-11-14T22:13:20.Z"}) {
    auto r = us(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message().find("--since: '" + std::string(bad) + "'"), std::string::npos)
        << r.error().message();
  }
}

TEST(ToolFormat, CountsAreWholeNumbersInRange) {
  EXPECT_EQ(tool::ParseCount("1", "--limit", 1, 10), 1u);
  EXPECT_EQ(tool::ParseCount("10", "--limit", 1, 10), 10u);
  EXPECT_EQ(tool::ParseCount("18446744073709551615", "--seq", 1, UINT64_MAX), UINT64_MAX);
  for (std::string_view bad : {"", "0", "11", "-1", "+1", " 1", "1 ", "1.0", "0x5", "18446744073709551616"}) {
    auto r = tool::ParseCount(bad, "--limit", 1, 10);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().message(), "--limit: '" + std::string(bad) + "' is not a whole number from 1 to 10");
  }
}

TEST(ToolFormat, PayloadsAreTextWhenPrintableElseHexAndTruncated) {
  EXPECT_EQ(tool::RenderPayload("hello", false), "hello");
  EXPECT_EQ(tool::RenderPayload(std::string_view("\x00\xff", 2), false), "hex:00ff");
  EXPECT_EQ(tool::RenderPayload(std::string(10, 'a'), false, 4), "aaaa…(10 bytes)");
  EXPECT_EQ(tool::RenderPayload(std::string(10, 'a'), true, 4), std::string(10, 'a'));
  EXPECT_EQ(tool::RenderPayload(std::string(10, '\x01'), false, 4), "hex:0101…(10 bytes)");
  // "é" is two bytes: a cut never splits it.
  EXPECT_EQ(tool::RenderPayload("aééé", false, 4), "aé…(7 bytes)");
  EXPECT_EQ(tool::Shorten("abcdef", 4), "abc…");
  EXPECT_EQ(tool::Shorten("abcd", 4), "abcd");
}

TEST(ToolFormat, CellsAreEscapedToOneLine) {
  EXPECT_EQ(tool::EscapeCell("a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
}

TEST(ToolFormat, TablesAreAlignedOnTerminalsAndTabSeparatedOtherwise) {
  std::ostringstream aligned, piped;
  {
    tool::Table t(aligned, {"name", "n"}, true);
    t.Add({"a", "1"});
    t.Add({"longer", "22"});
  }
  EXPECT_EQ(aligned.str(), "NAME    N\na       1\nlonger  22\n");
  {
    tool::Table t(piped, {"name", "n"}, false);
    t.Add({"a\tb", "1"});
  }
  EXPECT_EQ(piped.str(), "name\tn\na\\tb\t1\n");
  std::ostringstream none;
  { tool::Table t(none, {"name"}, false); }
  EXPECT_EQ(none.str(), "name\n") << "piped: the header line even without rows";
}

TEST(ToolProgress, DrawsOnlyWhenEnabled) {
  std::ostringstream on, off;
  {
    tool::Progress p(on, true, "verify");
    p.Add(3);
    p.Finish();
    tool::Progress q(off, false, "verify");
    q.Add(3);
    q.Finish();
    EXPECT_EQ(q.count(), 3u);
  }
  EXPECT_NE(on.str().find("verify: 3 events"), std::string::npos) << on.str();
  EXPECT_EQ(on.str().back(), '\n');
  EXPECT_EQ(off.str(), "");
}

// With a known total: done/total, the percentage, the rate over the last
// seconds (Progress::kRateWindow) and the time left at that rate.
TEST(ToolProgress, ShowsTotalPercentageRecentRateAndEta) {
  std::ostringstream err;
  auto t = std::chrono::steady_clock::time_point{};
  tool::Progress p(err, true, "relay", [&] { return t; });
  p.SetTotal(1000);
  auto last_line = [&] {
    std::string s = err.str();
    return s.substr(s.rfind("\x1b[K") + 3);
  };
  p.Add(100);
  EXPECT_EQ(last_line(), "relay: 100/1000 events (10%) ...");
  t += std::chrono::seconds(1);
  p.Add(100);
  EXPECT_EQ(last_line(), "relay: 200/1000 events (20%), 200/s, ETA 4.0s ...");
  t += std::chrono::seconds(1);
  p.Add(300);
  EXPECT_EQ(last_line(), "relay: 500/1000 events (50%), 250/s, ETA 2.0s ...");
  // Four seconds later: the rate of the last five seconds only (from t = 1 s).
  t += std::chrono::seconds(4);
  p.Add(100);
  EXPECT_EQ(last_line(), "relay: 600/1000 events (60%), 80/s, ETA 5.0s ...");
  p.Finish();
  EXPECT_EQ(last_line(), "relay: 600/1000 events (60%) in 6.0s, 100/s\n");

  std::ostringstream unknown;
  tool::Progress q(unknown, true, "verify", [&] { return t; });
  t += std::chrono::seconds(2);
  q.Add(50);
  EXPECT_NE(unknown.str().find("verify: 50 events, 25/s ..."), std::string::npos) << unknown.str();
  EXPECT_EQ(unknown.str().find("ETA"), std::string::npos) << "no total, no ETA";

  // An estimated total (verify: RocksDB's estimate of the keys) shows as such.
  std::ostringstream estimated;
  tool::Progress e(estimated, true, "verify", [&] { return t; });
  e.SetTotal(200, /*estimate=*/true);
  t += std::chrono::seconds(1);
  e.Add(300);
  EXPECT_NE(estimated.str().find("verify: 300/~200 events (100%), 300/s ..."), std::string::npos) << estimated.str();
}

TEST(ToolSinks, MakeSinkDispatchesOnTheSpec) {
  std::ostringstream out;
  ASSERT_OK_AND_ASSIGN(auto sink, tool::MakeSink("stdout", out));
  Event e;
  e.id.stream = "s";
  e.id.seq = 7;
  e.type = "t.v1";
  e.payload = "p";
  ASSERT_OK(sink->Publish(e));
  auto j = Json::Parse(out.str());
  ASSERT_TRUE(j) << out.str();
  EXPECT_EQ((*j)["seq"].u64(), 7u);
  EXPECT_EQ((*j)["payload"].str(), "p");

  ASSERT_OK_AND_ASSIGN(auto ok, tool::MakeSink("exec:cat >/dev/null"));
  EXPECT_OK(ok->Publish(e));
  ASSERT_OK_AND_ASSIGN(auto failing, tool::MakeSink("exec:exit 4"));
  auto s = failing->Publish(e);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("exited with 4"), std::string::npos) << s.error().ToString();

  for (const char* bad : {"", "exec:", "stdout2", "ftp://broker/topic"}) {
    auto r = tool::MakeSink(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(ToolRecords, CheckRecordAcceptsGoodRecordsAndNamesWhatIsWrong) {
  internal::AlignedArena arena;
  DatabaseId id;
  auto key = [](internal::KeyBuf k) { return std::string(k.view()); };
  std::string p3 = key(internal::SeqKey(internal::kPendingTag, 3));

  std::string good_value = testing::EncodedEnvelope(3, "s");
  tool::Record good = tool::CheckRecord("s", p3, good_value, id, arena);
  ASSERT_TRUE(good.ok()) << good.error;
  EXPECT_EQ(good.state_name(), "pending");
  EXPECT_EQ(good.event->id.seq, 3u);
  EXPECT_EQ(good.event->payload, "data");
  EXPECT_EQ(good.event->state, EventState::kPending);

  std::string wrong_seq = testing::EncodedEnvelope(4, "s");
  EXPECT_EQ(tool::CheckRecord("s", p3, wrong_seq, id, arena).error, "envelope has seq 4 but is stored under seq 3");
  std::string wrong_stream = testing::EncodedEnvelope(3, "other");
  EXPECT_EQ(tool::CheckRecord("s", p3, wrong_stream, id, arena).error,
            "envelope names stream 'other' but is stored in stream 's'");
  tool::Record garbage = tool::CheckRecord("s", p3, "garbage!", id, arena);
  EXPECT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.state_name(), "corrupt");
  tool::Record bad_key = tool::CheckRecord("s", "x", good_value, id, arena);
  EXPECT_NE(bad_key.error.find("unrecognized key 78"), std::string::npos) << bad_key.error;

  std::string retry_key = key(internal::RetryKey(100, 3));
  std::string due_100 = testing::EncodedEnvelope(3, "s", 100), due_200 = testing::EncodedEnvelope(3, "s", 200);
  EXPECT_TRUE(tool::CheckRecord("s", retry_key, due_100, id, arena).ok());
  EXPECT_NE(tool::CheckRecord("s", retry_key, due_200, id, arena).error.find("next_attempt_at"), std::string::npos);

  std::string sent_key = key(internal::SeqKey(internal::kSentTag, 3));
  std::string unsent = testing::EncodedEnvelope(3, "s"), sent = testing::EncodedEnvelope(3, "s", 0, 9);
  EXPECT_EQ(tool::CheckRecord("s", sent_key, unsent, id, arena).error, "sent record without sent_at");
  EXPECT_TRUE(tool::CheckRecord("s", sent_key, sent, id, arena).ok());
}

TEST(ToolRecords, FilterSelectsStatesSeqsAndTypes) {
  internal::AlignedArena arena;
  DatabaseId id;
  std::string k = std::string(internal::SeqKey(internal::kPendingTag, 3).view());
  std::string v = testing::EncodedEnvelope(3, "s");
  tool::Record good = tool::CheckRecord("s", k, v, id, arena);
  tool::Record bad = tool::CheckRecord("s", k, "junk", id, arena);
  EXPECT_TRUE(tool::RecordFilter{}.Wants(good));
  EXPECT_TRUE(tool::RecordFilter{}.Wants(bad));
  EXPECT_TRUE(tool::RecordFilter{.states = {EventState::kPending}}.Wants(good));
  EXPECT_FALSE(tool::RecordFilter{.states = {EventState::kPending}}.Wants(bad));
  EXPECT_FALSE(tool::RecordFilter{.states = {EventState::kSent}}.Wants(good));
  EXPECT_TRUE(tool::RecordFilter{.corrupt = true}.Wants(bad));
  EXPECT_FALSE(tool::RecordFilter{.corrupt = true}.Wants(good));
  EXPECT_TRUE(tool::RecordFilter{.from_seq = 3}.Wants(good));
  EXPECT_FALSE(tool::RecordFilter{.from_seq = 4}.Wants(good));
  EXPECT_TRUE(tool::RecordFilter{.type = "t.v1"}.Wants(good));
  EXPECT_FALSE(tool::RecordFilter{.type = "u.v1"}.Wants(good));
  EXPECT_FALSE(tool::RecordFilter{.type = "t.v1"}.Wants(bad));
}

// The commands in-process, with output captured and the terminal mode forced.
TEST(ToolCommands, StreamsPrintsAnAlignedTableOnATerminal) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("telemetry"));
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*s, {.type = "t.v1", .payload = "x"}));
    ASSERT_OK(txn.Commit());
  }
  std::ostringstream out, err;
  tool::Io io{out, err, /*out_tty=*/true, /*err_tty=*/false};
  const char* argv[] = {"jaiminho-tool", "streams", path.c_str()};
  EXPECT_EQ(tool::Run(3, argv, io), tool::kExitOk) << err.str();
  auto lines = testing::SplitLines(out.str());
  ASSERT_EQ(lines.size(), 2u) << out.str();
  EXPECT_EQ(lines[0].rfind("STREAM     STRATEGY", 0), 0u) << out.str();
  EXPECT_EQ(lines[1].rfind("telemetry  publish-on-commit  1", 0), 0u) << out.str();
  EXPECT_EQ(err.str(), "");

  // A dump redirected from a terminal shows its progress on stderr.
  std::ostringstream out2, err2;
  tool::Io redirected{out2, err2, /*out_tty=*/false, /*err_tty=*/true};
  EXPECT_EQ(tool::Dump({.path = path}, redirected), tool::kExitOk);
  EXPECT_NE(err2.str().find("dump: 1 events"), std::string::npos) << err2.str();
  EXPECT_EQ(testing::SplitLines(out2.str()).size(), 2u);
}

// A stream's quota (issue 17): its limits and what waits against them, in the
// table, in the JSON and in the metrics; counted from the records.
TEST(ToolCommands, StreamsShowsTheQuotaAndWhatWaitsAgainstIt) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * s,
                         outbox->OpenStream("telemetry", {.quota = StreamQuota{.max_events = 100, .max_bytes = 4096}}));
    ASSERT_OK_AND_ASSIGN(Stream * unbounded, outbox->OpenStream("free"));
    for (int i = 0; i < 3; ++i) {
      auto txn = outbox->Begin();
      ASSERT_OK(txn.Enqueue(*s, {.type = "t.v1", .key = "k", .payload = "0123456789"}));  // 15 bytes
      ASSERT_OK(txn.Enqueue(*unbounded, {.type = "t.v1", .payload = "x"}));
      ASSERT_OK(txn.Commit());
    }
    ASSERT_OK_AND_ASSIGN(auto metrics, CollectMetrics(*outbox));
    ASSERT_EQ(metrics.size(), 2u);
    const StreamMetrics& m = metrics[0].stream == "telemetry" ? metrics[0] : metrics[1];
    EXPECT_EQ(m.quota_max_events, 100u);
    EXPECT_EQ(m.quota_max_bytes, 4096u);
    EXPECT_EQ(m.waiting_bytes, std::optional<uint64_t>(45));
    const std::string text = RenderPrometheus(metrics);
    EXPECT_NE(text.find("jaiminho_quota_max_events{stream=\"telemetry\"} 100\n"), std::string::npos) << text;
    EXPECT_NE(text.find("jaiminho_waiting_bytes{stream=\"telemetry\"} 45\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("jaiminho_waiting_bytes{stream=\"free\"}"), std::string::npos) << text;
  }
  std::ostringstream out, err;
  tool::Io io{out, err, /*out_tty=*/false, /*err_tty=*/false};
  const char* argv[] = {"jaiminho-tool", "streams", path.c_str()};
  EXPECT_EQ(tool::Run(3, argv, io), tool::kExitOk) << err.str();
  EXPECT_NE(out.str().find("3/100 events, 45/4096 bytes, reject"), std::string::npos) << out.str();
  std::ostringstream jout, jerr;
  tool::Io jio{jout, jerr, /*out_tty=*/false, /*err_tty=*/false};
  const char* jargv[] = {"jaiminho-tool", "streams", "--json", path.c_str()};
  EXPECT_EQ(tool::Run(4, jargv, jio), tool::kExitOk) << jerr.str();
  EXPECT_NE(jout.str().find("\"waiting_events\":3,\"waiting_bytes\":45,"), std::string::npos) << jout.str();
  EXPECT_NE(jout.str().find("\"quota_max_events\":100,\"quota_max_bytes\":4096,\"quota_policy\":\"reject\""),
            std::string::npos)
      << jout.str();
  EXPECT_NE(jout.str().find("\"quota_max_events\":0,\"quota_max_bytes\":0,\"quota_policy\":null"), std::string::npos)
      << jout.str();
  // stats --json and --prometheus carry the limits and the waiting bytes too.
  std::ostringstream sout, serr;
  tool::Io sio{sout, serr, /*out_tty=*/false, /*err_tty=*/false};
  const char* sargv[] = {"jaiminho-tool", "stats", "--json", path.c_str()};
  EXPECT_EQ(tool::Run(4, sargv, sio), tool::kExitOk) << serr.str();
  EXPECT_NE(sout.str().find("\"quota_max_events\":100,\"quota_max_bytes\":4096,\"quota_policy\":\"reject\""),
            std::string::npos)
      << sout.str();
  EXPECT_NE(sout.str().find("\"waiting_bytes\":45,"), std::string::npos) << sout.str();
  std::ostringstream pout, perr;
  tool::Io pio{pout, perr, /*out_tty=*/false, /*err_tty=*/false};
  const char* pargv[] = {"jaiminho-tool", "stats", "--prometheus", path.c_str()};
  EXPECT_EQ(tool::Run(4, pargv, pio), tool::kExitOk) << perr.str();
  EXPECT_NE(pout.str().find("jaiminho_waiting_bytes{stream=\"telemetry\"} 45\n"), std::string::npos) << pout.str();
}

// stats --prometheus --output FILE (node_exporter's textfile collector): the
// file is replaced whole, nothing else is left in its directory, and an error
// names the file.
TEST(ToolCommands, StatsOutputReplacesTheFileAtomically) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("telemetry"));
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*s, {.type = "t.v1", .payload = "x"}));
    ASSERT_OK(txn.Commit());
  }
  const std::string textfiles = dir.Sub("textfiles");
  std::filesystem::create_directories(textfiles);
  const std::string file = textfiles + "/jaiminho.prom";
  {
    std::ofstream old(file);
    old << "old contents\n";
  }
  std::ostringstream out, err;
  tool::Io io{out, err, /*out_tty=*/false, /*err_tty=*/false};
  ASSERT_EQ(tool::Stats({.path = path, .prometheus = true, .output = file}, io), tool::kExitOk) << err.str();
  EXPECT_EQ(out.str(), "");  // all of it went to the file
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("old contents"), std::string::npos) << text;
  EXPECT_NE(text.find("jaiminho_pending_events{stream=\"telemetry\"} 1\n"), std::string::npos) << text;
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::all, std::filesystem::perms(0644));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(textfiles))
    ++entries;
  EXPECT_EQ(entries, 1u) << "a temporary file was left behind";

  // A directory that does not exist: exit 1, the file named.
  std::ostringstream out2, err2;
  tool::Io io2{out2, err2, false, false};
  const std::string missing = dir.Sub("no-such-dir") + "/jaiminho.prom";
  EXPECT_EQ(tool::Stats({.path = path, .prometheus = true, .output = missing}, io2), tool::kExitFailed);
  EXPECT_NE(err2.str().find(missing), std::string::npos) << err2.str();
}

// Format 2: delivered events stay under their pending keys below the cursor.
// dump shows them as sent (with their run's sent_at), never as pending, and a
// dump of pending events starts at the cursor.
TEST(ToolCommands, DumpShowsDeliveredEventsAsSentAndPendingFromTheCursor) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path, {.strategy = Strategy::kKeepOrder});
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("orders"));
    auto commit = [&](int n) {
      auto txn = outbox->Begin();
      for (int i = 0; i < n; ++i)
        ASSERT_OK(txn.Enqueue(*s, {.type = "t.v1", .payload = "x"}));
      ASSERT_OK(txn.Commit());
    };
    commit(40);
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, std::make_shared<testing::RecordingPublisher>()));
    ASSERT_OK(relay->RunOnce());
    commit(3);
    ASSERT_OK(outbox->Close());
  }
  auto dump = [&](std::vector<std::string> states) {
    std::ostringstream out, err;
    tool::Io io{out, err};
    EXPECT_EQ(tool::Dump({.path = path, .states = std::move(states), .json = true}, io), tool::kExitOk) << err.str();
    std::vector<std::pair<uint64_t, std::string>> seqs;
    for (const auto& line : testing::SplitLines(out.str())) {
      std::optional<Json> j = Json::Parse(line);
      if (!j) {
        ADD_FAILURE() << "not JSON: " << line;
        continue;
      }
      seqs.emplace_back((*j)["seq"].u64(), (*j)["state"].str());
      if ((*j)["state"].str() == "sent") {
        EXPECT_GT((*j)["sent_at_us"].u64(), 0u) << line;
      }
    }
    return seqs;
  };
  auto pending = dump({"pending"});
  ASSERT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending[0], (std::pair<uint64_t, std::string>{41, "pending"}));
  EXPECT_EQ(dump({"sent"}).size(), 40u);
  auto all = dump({});
  EXPECT_EQ(all.size(), 43u);
  EXPECT_EQ(all[0], (std::pair<uint64_t, std::string>{1, "sent"}));
}

}  // namespace
}  // namespace jaiminho
