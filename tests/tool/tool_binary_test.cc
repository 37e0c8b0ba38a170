// jaiminho-tool as operators run it: the built binary (JM_TOOL), on databases
// these tests create, with its exit code, stdout and stderr captured.
#include <gtest/gtest.h>
#include <rocksdb/version.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "storage/envelope.h"
#include "storage/keys.h"
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
using testing::Snapshot;
using testing::SplitTabs;
using testing::TempDir;
using testing::ToolRun;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// 2023-11-14T22:13:20.123456Z
constexpr int64_t kT0 = 1'700'000'000'123'456;

const std::vector<std::string> kCommands = {"dump",  "streams", "stats",   "verify", "inbox",
                                            "relay", "clean",   "requeue", "skip"};
const std::vector<std::string> kReadCommands = {"dump", "streams", "stats", "verify", "inbox"};
const std::vector<std::string> kWriteCommands = {"relay", "clean", "requeue", "skip"};

// The smallest valid invocation of `command` on `path`.
std::vector<std::string> ArgsFor(const std::string& command, const std::string& path) {
  if (command == "requeue") return {command, path, "--stream", "telemetry", "--all-parked"};
  if (command == "skip") return {command, path, "--stream", "telemetry", "--seq", "1", "--reason", "test"};
  return {command, path};
}

// Snapshot() of a database held by another process. The holder's own LOG file
// is compared by name only: RocksDB buffers it and flushes it from a periodic
// background task up to 10 s after the holder wrote, so its size and mtime move
// on their own. A LOG rotated or created by someone else still shows (a new
// LOG.old.* file), and so does every other file the tool could touch.
auto HeldSnapshot(const std::string& dir) {
  auto snap = Snapshot(dir);
  for (auto& [name, info] : snap) {
    if (fs::path(name).filename() == "LOG") info = {};
  }
  return snap;
}

// `field` of each JSON line of `file` (lines that are not JSON fail the test).
std::vector<std::string> ReadJsonLines(const std::string& file, const std::function<std::string(const Json&)>& field) {
  std::vector<std::string> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto j = Json::Parse(line);
    EXPECT_TRUE(j.has_value()) << "not JSON: " << line;
    if (j) out.push_back(field(*j));
  }
  return out;
}

void Enqueue(Outbox& outbox, Stream& stream, const Message& m) {
  auto txn = outbox.Begin();
  ASSERT_OK(txn.Enqueue(stream, m));
  ASSERT_OK(txn.Commit());
}

void EnqueueN(Outbox& outbox, Stream& stream, int n, const std::string& prefix) {
  for (int i = 1; i <= n; ++i) {
    std::string payload = prefix + std::to_string(i);
    Enqueue(outbox, stream, {.type = "test.v1", .key = "k" + std::to_string(i), .payload = payload});
  }
}

// --- help and usage -------------------------------------------------------

TEST(ToolBinary, HelpWorksForTheToolAndEveryCommand) {
  ToolRun top = RunTool({"--help"});
  EXPECT_EQ(top.code, 0) << Describe(top);
  for (const auto& command : kCommands) {
    EXPECT_NE(top.out.find(command), std::string::npos) << "tool help does not list " << command;
    ToolRun r = RunTool({command, "--help"});
    EXPECT_EQ(r.code, 0) << command << ": " << Describe(r);
    EXPECT_NE(r.out.find("jaiminho-tool " + command), std::string::npos) << Describe(r);
    EXPECT_NE(r.out.find("Exit codes"), std::string::npos) << Describe(r);
    EXPECT_EQ(r.err, "") << command;
  }
  ToolRun skip = RunTool({"skip", "--help"});
  EXPECT_NE(skip.out.find("--reason"), std::string::npos) << Describe(skip);
  ToolRun version = RunTool({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_EQ(version.out, std::string("jaiminho-tool ") + JAIMINHO_VERSION_STRING + " (RocksDB " +
                             rocksdb::GetRocksVersionAsString() + ", on-disk format " +
                             std::to_string(jaiminho::kFormatVersion) + ")\n");
}

TEST(ToolBinary, UsageErrorsExitTwoWithOneLine) {
  TempDir dir;
  const std::string db = dir.Sub("db");
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate", db},
      {"dump"},
      {"dump", db, "--state", "lost"},
      {"dump", db, "--limit", "many"},
      {"skip", db, "--stream", "s", "--seq", "1"},
      {"skip", db, "--stream", "s", "--seq", "1", "--reason", ""},
      {"requeue", db, "--stream", "s"},
      {"requeue", db, "--stream", "s", "--seq", "1", "--all-parked"},
      {"relay", db, "--sink", "carrier-pigeon"},
      {"relay", db, "--interval", "0s"},
      {"stats", db, "--prometheus", "--json"},
      {"inbox", db, "--db-id", "xyz"},
  };
  for (const auto& args : cases) {
    ToolRun r = RunTool(args);
    std::string shown;
    for (const auto& a : args)
      shown += a + " ";
    EXPECT_EQ(r.code, 2) << shown << Describe(r);
    EXPECT_EQ(r.ErrLines().size(), 1u) << shown << Describe(r);
    EXPECT_EQ(r.out, "") << shown;
  }
  EXPECT_FALSE(fs::exists(db)) << "a usage error created the database";
}

// --- paths that are not databases -------------------------------------------

TEST(ToolBinary, MissingPathExitsTwoAndCreatesNothing) {
  TempDir dir;
  const std::string path = dir.Sub("nope.db");
  auto before = Snapshot(dir.path());
  for (const auto& command : kCommands) {
    ToolRun r = RunTool(ArgsFor(command, path));
    EXPECT_EQ(r.code, 2) << command << ": " << Describe(r);
    ASSERT_EQ(r.ErrLines().size(), 1u) << command << ": " << Describe(r);
    EXPECT_NE(r.err.find(path), std::string::npos) << "the error does not name the path: " << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_FALSE(fs::exists(path)) << command << " created " << path;
  }
  EXPECT_EQ(Snapshot(dir.path()), before);
}

TEST(ToolBinary, NotADatabaseExitsTwoAndChangesNothing) {
  TempDir dir;
  const std::string file = dir.Sub("file");
  std::ofstream(file) << "not a database\n";
  const std::string other = dir.Sub("other");
  fs::create_directories(other);
  std::ofstream(other + "/notes.txt") << "hello\n";
  const std::string empty = dir.Sub("empty");
  fs::create_directories(empty);
  const std::string plain = dir.Sub("plain-rocksdb");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, plain, &raw).ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "k", "v").ok());
    delete raw;
  }
  auto before = Snapshot(dir.path());
  for (const std::string& path : {file, other, empty, plain}) {
    for (const auto& command : kCommands) {
      ToolRun r = RunTool(ArgsFor(command, path));
      EXPECT_EQ(r.code, 2) << command << " " << path << ": " << Describe(r);
      EXPECT_EQ(r.ErrLines().size(), 1u) << command << " " << path << ": " << Describe(r);
      EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
      EXPECT_EQ(r.out, "");
    }
  }
  EXPECT_EQ(Snapshot(dir.path()), before) << "refusing a path changed something under it";
}

// --- a live database, held open by a writer in another process ------------

TEST(ToolBinary, ReadCommandsWorkOnALiveDatabaseAndChangeNothing) {
  TempDir dir;
  const std::string path = dir.Sub("live.db");
  Child holder({JM_HOLD_DB, path, "telemetry", "5"});
  ASSERT_EQ(holder.ReadLine(), "ready " + std::to_string(holder.pid()));
  auto before = HeldSnapshot(path);

  ToolRun dump = RunTool({"dump", path, "--json"});
  ASSERT_EQ(dump.code, 0) << Describe(dump);
  auto events = ParseLines(dump);
  ASSERT_EQ(events.size(), 5u) << Describe(dump);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i]["stream"].str(), "telemetry");
    EXPECT_EQ(events[i]["seq"].u64(), i + 1);
    EXPECT_EQ(events[i]["state"].str(), "pending");
    EXPECT_EQ(events[i]["type"].str(), "held.v1");
    EXPECT_EQ(events[i]["payload"].str(), "held-" + std::to_string(i));
  }

  ToolRun streams = RunTool({"streams", path, "--json"});
  ASSERT_EQ(streams.code, 0) << Describe(streams);
  auto rows = ParseLines(streams);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["stream"].str(), "telemetry");
  EXPECT_EQ(rows[0]["pending_events"].u64(), 5u);
  EXPECT_EQ(rows[0]["last_seq"].u64(), 5u);
  EXPECT_FALSE(rows[0]["blocked"].boolean());

  ToolRun stats = RunTool({"stats", path, "--prometheus"});
  ASSERT_EQ(stats.code, 0) << Describe(stats);
  EXPECT_NE(stats.out.find("jaiminho_pending_events{stream=\"telemetry\"} 5\n"), std::string::npos) << stats.out;
  EXPECT_EQ(stats.out.find("_total"), std::string::npos) << "counters of another process shown as 0:\n" << stats.out;

  ToolRun verify = RunTool({"verify", path});
  EXPECT_EQ(verify.code, 0) << Describe(verify);
  EXPECT_NE(verify.err.find("5 records in 1 streams"), std::string::npos) << verify.err;

  EXPECT_EQ(HeldSnapshot(path), before) << "a read command changed the live database";
  holder.WriteLine("");
  EXPECT_EQ(holder.Wait(), 0);
}

TEST(ToolBinary, WriteCommandsNameTheHolderOfALiveDatabaseAndTouchNothing) {
  TempDir dir;
  const std::string path = dir.Sub("live.db");
  Child holder({JM_HOLD_DB, path, "telemetry", "3"});
  ASSERT_EQ(holder.ReadLine(), "ready " + std::to_string(holder.pid()));
  auto before = HeldSnapshot(path);
  for (const auto& command : kWriteCommands) {
    ToolRun r = RunTool(ArgsFor(command, path));
    EXPECT_EQ(r.code, 3) << command << ": " << Describe(r);
    EXPECT_NE(r.err.find("in use by process " + std::to_string(holder.pid())), std::string::npos)
        << command << ": " << Describe(r);
    EXPECT_EQ(r.ErrLines().size(), 1u) << Describe(r);
    EXPECT_EQ(r.out, "") << command;
    EXPECT_EQ(HeldSnapshot(path), before) << command << " touched the live database";
  }
  holder.WriteLine("");
  EXPECT_EQ(holder.Wait(), 0);
  // Once the holder is gone, the same write command works.
  ToolRun relay = RunTool({"relay", path, "--sink", "stdout"});
  EXPECT_EQ(relay.code, 0) << Describe(relay);
  EXPECT_EQ(ParseLines(relay).size(), 3u);
}

// --- corrupt records --------------------------------------------------------

TEST(ToolBinary, CorruptRecordIsShownByDumpAndReportedByVerify) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * stream, outbox->OpenStream("telemetry"));
    EnqueueN(*outbox, *stream, 3, "reading-");
    // Garbage straight into the stream family: over seq 2, and under a key of no known form.
    auto key = internal::SeqKey(internal::kPendingTag, 2);
    ASSERT_TRUE(outbox->db()
                    ->Put(rocksdb::WriteOptions(), testing::StreamFamily(*stream), rocksdb::Slice(key.bytes, key.size),
                          "\x01garbage bytes\xff")
                    .ok());
    ASSERT_TRUE(outbox->db()->Put(rocksdb::WriteOptions(), testing::StreamFamily(*stream), "zz", "junk").ok());
    ASSERT_OK(outbox->Close());
  }

  ToolRun dump = RunTool({"dump", path, "--json"});
  ASSERT_EQ(dump.code, 0) << Describe(dump);
  auto records = ParseLines(dump);
  ASSERT_EQ(records.size(), 4u) << Describe(dump);
  EXPECT_EQ(records[0]["state"].str(), "pending");
  EXPECT_EQ(records[0]["payload"].str(), "reading-1");
  EXPECT_EQ(records[1]["state"].str(), "corrupt");
  EXPECT_EQ(records[1]["seq"].u64(), 2u);
  EXPECT_EQ(records[1]["stored_state"].str(), "pending");
  EXPECT_NE(records[1]["error"].str().find("JMEV"), std::string::npos) << records[1]["error"].str();
  EXPECT_EQ(records[1]["value_hex"].str(), "0167617262616765206279746573ff");
  EXPECT_EQ(records[2]["payload"].str(), "reading-3");
  EXPECT_EQ(records[3]["state"].str(), "corrupt");
  EXPECT_TRUE(records[3]["seq"].is_null());
  EXPECT_EQ(records[3]["raw_key_hex"].str(), "7a7a");
  EXPECT_NE(records[3]["error"].str().find("unrecognized key"), std::string::npos);

  ToolRun table = RunTool({"dump", path});
  ASSERT_EQ(table.code, 0) << Describe(table);
  auto lines = table.OutLines();
  ASSERT_EQ(lines.size(), 5u) << Describe(table);
  auto header = SplitTabs(lines[0]);
  auto row = SplitTabs(lines[2]);
  ASSERT_EQ(row.size(), header.size()) << lines[2];
  EXPECT_EQ(row[1], "2");
  EXPECT_EQ(row[2], "corrupt");
  EXPECT_NE(row[8].find("JMEV"), std::string::npos) << lines[2];

  ToolRun only = RunTool({"dump", path, "--state", "corrupt", "--json"});
  EXPECT_EQ(ParseLines(only).size(), 2u) << Describe(only);

  ToolRun verify = RunTool({"verify", path});
  EXPECT_EQ(verify.code, 1) << Describe(verify);
  auto bad = verify.OutLines();
  ASSERT_EQ(bad.size(), 3u) << Describe(verify);
  EXPECT_EQ(bad[0], "stream\tseq\tstored_state\terror");
  EXPECT_EQ(SplitTabs(bad[1])[0], "telemetry");
  EXPECT_EQ(SplitTabs(bad[1])[1], "2");
  EXPECT_EQ(SplitTabs(bad[1])[2], "pending");
  EXPECT_EQ(SplitTabs(bad[2])[1], "?");
  EXPECT_NE(verify.err.find("4 records in 1 streams"), std::string::npos) << verify.err;
  EXPECT_NE(verify.err.find("2 bad"), std::string::npos) << verify.err;

  ToolRun verify_json = RunTool({"verify", path, "--json"});
  EXPECT_EQ(verify_json.code, 1);
  auto reports = ParseLines(verify_json);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0]["seq"].u64(), 2u);
  EXPECT_EQ(reports[0]["error"].str(), records[1]["error"].str()) << "dump and verify disagree";
}

TEST(ToolBinary, VerifyReportsAnEnvelopeStoredUnderTheWrongSeq) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * stream, outbox->OpenStream("telemetry"));
    EnqueueN(*outbox, *stream, 2, "x");
    // A valid envelope copied under another seq's key.
    auto k1 = internal::SeqKey(internal::kPendingTag, 1), k9 = internal::SeqKey(internal::kPendingTag, 9);
    std::string value;
    auto* cf = testing::StreamFamily(*stream);
    ASSERT_TRUE(outbox->db()->Get(rocksdb::ReadOptions(), cf, rocksdb::Slice(k1.bytes, k1.size), &value).ok());
    ASSERT_TRUE(outbox->db()->Put(rocksdb::WriteOptions(), cf, rocksdb::Slice(k9.bytes, k9.size), value).ok());
    ASSERT_OK(outbox->Close());
  }
  ToolRun verify = RunTool({"verify", path, "--json"});
  EXPECT_EQ(verify.code, 1) << Describe(verify);
  auto reports = ParseLines(verify);
  ASSERT_EQ(reports.size(), 1u) << Describe(verify);
  EXPECT_EQ(reports[0]["seq"].u64(), 9u);
  EXPECT_EQ(reports[0]["error"].str(), "envelope has seq 1 but is stored under seq 9");
}

// --- signed events ------------------------------------------------------------

// A signed database with one record whose payload was rewritten (a valid
// envelope, its signature kept): only --keys tells it apart.
TEST(ToolBinary, KeysFileChecksSignaturesInVerifyDumpAndRelay) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  const std::string keys = dir.Sub("keys.txt");
  const std::string wrong = dir.Sub("wrong.txt");
  std::ofstream(keys)
      << "# rotated keys, newest last\nold-key 0123456789abcdef-old-secret\nkey-1 0123456789abcdef-secret-1\n";
  std::ofstream(wrong) << "key-1 0123456789abcdef-not-the-secret\n";
  {
    auto outbox = MustOpen(path, {.signing = {.keys = {{"key-1", "0123456789abcdef-secret-1"}}}});
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * stream, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
    EnqueueN(*outbox, *stream, 3, "fill-");
    auto key = internal::SeqKey(internal::kPendingTag, 2);
    auto* cf = testing::StreamFamily(*stream);
    std::string value;
    ASSERT_TRUE(outbox->db()->Get(rocksdb::ReadOptions(), cf, rocksdb::Slice(key.bytes, key.size), &value).ok());
    internal::AlignedArena arena;
    auto decoded = internal::DecodeEnvelope(arena.Copy(value));
    ASSERT_TRUE(decoded.has_value());
    internal::EnvelopeFields fields = internal::FieldsOf(*decoded);
    fields.payload = "fill-2 at a better price";
    std::string forged;
    internal::EncodeEnvelope(fields, &forged);
    ASSERT_TRUE(outbox->db()->Put(rocksdb::WriteOptions(), cf, rocksdb::Slice(key.bytes, key.size), forged).ok());
    ASSERT_OK(outbox->Close());
  }

  ToolRun plain = RunTool({"verify", path});
  EXPECT_EQ(plain.code, 0) << "without keys the forged envelope is well formed\n" << Describe(plain);

  ToolRun checked = RunTool({"verify", path, "--keys", keys, "--json"});
  EXPECT_EQ(checked.code, 1) << Describe(checked);
  auto reports = ParseLines(checked);
  ASSERT_EQ(reports.size(), 1u) << Describe(checked);
  EXPECT_EQ(reports[0]["stream"].str(), "orders");
  EXPECT_EQ(reports[0]["seq"].u64(), 2u);
  EXPECT_NE(reports[0]["error"].str().find("signature"), std::string::npos) << reports[0]["error"].str();
  EXPECT_NE(reports[0]["error"].str().find("key-1"), std::string::npos) << reports[0]["error"].str();

  ToolRun wrong_key = RunTool({"verify", path, "--keys", wrong, "--json"});
  EXPECT_EQ(wrong_key.code, 1);
  EXPECT_EQ(ParseLines(wrong_key).size(), 3u) << "a wrong secret fails every record\n" << Describe(wrong_key);

  auto dumped = ParseLines(RunTool({"dump", path, "--keys", keys, "--json"}));
  ASSERT_EQ(dumped.size(), 3u);
  EXPECT_EQ(dumped[0]["state"].str(), "pending");
  EXPECT_EQ(dumped[1]["state"].str(), "corrupt");
  EXPECT_EQ(dumped[2]["state"].str(), "pending");

  ToolRun missing = RunTool({"verify", path, "--keys", dir.Sub("absent.txt")});
  EXPECT_EQ(missing.code, 2) << Describe(missing);
  EXPECT_NE(missing.err.find("absent.txt"), std::string::npos) << missing.err;

  // The relay parks the forged record as tampered and, the stream keeping
  // order otherwise, delivers the two genuine ones around it.
  const std::string received = dir.Sub("received.jsonl");
  ToolRun relay = RunTool({"relay", path, "--keys", keys, "--sink", "exec:cat >> '" + received + "'"});
  EXPECT_EQ(relay.code, 0) << Describe(relay);
  EXPECT_EQ(ReadJsonLines(received, [](const Json& j) { return j["payload"].str(); }),
            (std::vector<std::string>{"fill-1", "fill-3"}));
  auto parked = ParseLines(RunTool({"dump", path, "--json", "--state", "parked"}));
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0]["seq"].u64(), 2u);
  EXPECT_NE(parked[0]["note"].str().find("tampered"), std::string::npos) << parked[0]["note"].str();
}

// --- a blocked keep-order stream --------------------------------------------

TEST(ToolBinary, BlockedKeepOrderStreamIsReportedAndSkipUnsticksIt) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder,
                                                                        .retry = RetryPolicy{.max_attempts = 1},
                                                                        .on_exhaustion = OnExhaustion::kBlock}));
    EnqueueN(*outbox, *orders, 3, "order-");
    auto publisher = std::make_shared<RecordingPublisher>();
    publisher->fail = [](const Event& e) -> std::optional<Error> {
      if (e.id.seq == 1) return Error(ErrorCode::kUnavailable, "broker down for order 1");
      return std::nullopt;
    };
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
    ASSERT_EQ(stats.published, 0u);
    ASSERT_EQ(stats.blocked, 1u);
  }

  ToolRun streams = RunTool({"streams", path, "--json"});
  ASSERT_EQ(streams.code, 0) << Describe(streams);
  auto rows = ParseLines(streams);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["strategy"].str(), "keep-order");
  EXPECT_TRUE(rows[0]["blocked"].boolean());
  EXPECT_EQ(rows[0]["blocked_seq"].u64(), 1u);
  EXPECT_NE(rows[0]["blocked_error"].str().find("broker down for order 1"), std::string::npos);
  EXPECT_EQ(rows[0]["pending_events"].u64(), 3u);
  EXPECT_EQ(rows[0]["config"]["max_attempts"].u64(), 1u);
  EXPECT_EQ(rows[0]["config"]["on_exhaustion"].str(), "block");

  ToolRun table = RunTool({"streams", path});
  ASSERT_EQ(table.code, 0);
  ASSERT_EQ(table.OutLines().size(), 2u) << Describe(table);
  auto row = SplitTabs(table.OutLines()[1]);
  EXPECT_EQ(row.back().rfind("by seq 1: ", 0), 0u) << table.out;
  EXPECT_EQ(row[8], "1, then block") << table.out;

  // The relay cannot get past the head: nothing is delivered, exit 1.
  ToolRun stuck = RunTool({"relay", path, "--sink", "stdout"});
  EXPECT_EQ(stuck.code, 1) << Describe(stuck);
  EXPECT_EQ(stuck.out, "");
  EXPECT_NE(stuck.err.find("1 stream blocked ("), std::string::npos) << stuck.err;

  ToolRun skip = RunTool({"skip", path, "--stream", "orders", "--seq", "1", "--reason", "poison order"});
  ASSERT_EQ(skip.code, 0) << Describe(skip);
  EXPECT_NE(skip.out.find("skipped stream 'orders' seq 1"), std::string::npos) << skip.out;

  rows = ParseLines(RunTool({"streams", path, "--json"}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_FALSE(rows[0]["blocked"].boolean());
  EXPECT_EQ(rows[0]["parked_events"].u64(), 1u);
  EXPECT_EQ(rows[0]["pending_events"].u64(), 2u);

  ToolRun relay = RunTool({"relay", path, "--sink", "stdout"});
  ASSERT_EQ(relay.code, 0) << Describe(relay);
  auto delivered = ParseLines(relay);
  ASSERT_EQ(delivered.size(), 2u) << Describe(relay);
  EXPECT_EQ(delivered[0]["seq"].u64(), 2u);
  EXPECT_EQ(delivered[0]["payload"].str(), "order-2");
  EXPECT_EQ(delivered[1]["seq"].u64(), 3u);
  EXPECT_NE(relay.err.find("2 published"), std::string::npos) << relay.err;

  auto parked = ParseLines(RunTool({"dump", path, "--state", "parked", "--json"}));
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_EQ(parked[0]["seq"].u64(), 1u);
  EXPECT_NE(parked[0]["note"].str().find("poison order"), std::string::npos) << parked[0]["note"].str();

  // Requeued, it goes back to delivery with the action in its note, and is delivered.
  ToolRun requeue = RunTool({"requeue", path, "--stream", "orders", "--seq", "1", "--note", "fixed upstream"});
  ASSERT_EQ(requeue.code, 0) << Describe(requeue);
  // (Requeued events wait in the retry range; delivered ones stay under their
  // pending keys, listed before it.)
  auto back = ParseLines(
      RunTool({"dump", path, "--state", "retrying", "--from-seq", "1", "--limit", "1", "--type", "test.v1", "--json"}));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0]["seq"].u64(), 1u);
  EXPECT_NE(back[0]["state"].str(), "parked");
  EXPECT_EQ(back[0]["attempts"].u64(), 0u);
  EXPECT_NE(back[0]["note"].str().find("fixed upstream"), std::string::npos) << back[0]["note"].str();
  ToolRun again = RunTool({"relay", path});
  ASSERT_EQ(again.code, 0) << Describe(again);
  auto last = ParseLines(again);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0]["seq"].u64(), 1u);
}

TEST(ToolBinary, RequeueAllParkedAndErrorsNameTheStreamAndSeq) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * stream, outbox->OpenStream("telemetry"));
    EnqueueN(*outbox, *stream, 3, "t");
    auto publisher = std::make_shared<RecordingPublisher>();
    publisher->fail = [](const Event&) -> std::optional<Error> { return Error(ErrorCode::kRejected, "schema"); };
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher));
    ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
    ASSERT_EQ(stats.parked, 3u);
  }
  ToolRun missing_seq = RunTool({"requeue", path, "--stream", "telemetry", "--seq", "99"});
  EXPECT_EQ(missing_seq.code, 1) << Describe(missing_seq);
  EXPECT_NE(missing_seq.err.find("seq 99"), std::string::npos) << missing_seq.err;
  ToolRun missing_stream = RunTool({"skip", path, "--stream", "nope", "--seq", "1", "--reason", "x"});
  EXPECT_EQ(missing_stream.code, 1) << Describe(missing_stream);
  EXPECT_NE(missing_stream.err.find("nope"), std::string::npos) << missing_stream.err;
  ToolRun dump_missing = RunTool({"dump", path, "--stream", "nope"});
  EXPECT_EQ(dump_missing.code, 1) << Describe(dump_missing);
  EXPECT_NE(dump_missing.err.find("streams: telemetry"), std::string::npos) << dump_missing.err;
  ToolRun skip_parked = RunTool({"skip", path, "--stream", "telemetry", "--seq", "1", "--reason", "x"});
  EXPECT_EQ(skip_parked.code, 1) << Describe(skip_parked);
  EXPECT_NE(skip_parked.err.find("not pending"), std::string::npos) << skip_parked.err;

  ToolRun all = RunTool({"requeue", path, "--stream", "telemetry", "--all-parked", "--json"});
  ASSERT_EQ(all.code, 0) << Describe(all);
  auto result = ParseLines(all);
  ASSERT_EQ(result.size(), 1u);
  EXPECT_EQ(result[0]["requeued"].u64(), 3u);
  EXPECT_EQ(ParseLines(RunTool({"dump", path, "--state", "parked", "--json"})).size(), 0u);
  EXPECT_EQ(ParseLines(RunTool({"dump", path, "--state", "retrying", "--json"})).size(), 3u);
}

// --- JSON output, field by field ---------------------------------------------

TEST(ToolBinary, DumpJsonCarriesEveryField) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  auto clock = std::make_shared<ManualClock>(FromMicros(kT0));
  std::string db_id;
  {
    auto outbox = MustOpen(path, {.clock = clock});
    ASSERT_TRUE(outbox);
    db_id = outbox->id().ToHex();
    ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
    ASSERT_OK_AND_ASSIGN(Stream * telemetry, outbox->OpenStream("telemetry"));
    Header headers[] = {{"trace", "abc"}, {"unit", "celsius"}};
    Enqueue(
        *outbox, *telemetry,
        {.type = "reading.v1", .key = "dev/42", .payload = "21.5 °C", .encoding = "text/plain", .headers = headers});
    Enqueue(*outbox, *telemetry, {.type = "blob.v1", .payload = std::string_view("\x00\x01\xff", 3)});
    Enqueue(*outbox, *orders, {.type = "fill.v1", .key = "ord/1", .payload = "{\"qty\":1}"});
    clock->Advance(std::chrono::seconds(5));
    ASSERT_OK_AND_ASSIGN(auto relay,
                         Relay::Make(*outbox, std::make_shared<RecordingPublisher>(), {.streams = {"orders"}}));
    ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
    ASSERT_EQ(stats.published, 1u);
  }
  ToolRun dump = RunTool({"dump", path, "--json"});
  ASSERT_EQ(dump.code, 0) << Describe(dump);
  auto e = ParseLines(dump);
  ASSERT_EQ(e.size(), 3u) << Describe(dump);

  // Streams by name, so orders first: delivered and kept as sent.
  EXPECT_EQ(e[0]["id"].str(), db_id + "/orders/1");
  EXPECT_EQ(e[0]["stream"].str(), "orders");
  EXPECT_EQ(e[0]["seq"].u64(), 1u);
  EXPECT_EQ(e[0]["state"].str(), "sent");
  EXPECT_EQ(e[0]["strategy"].str(), "keep-order");
  EXPECT_EQ(e[0]["type"].str(), "fill.v1");
  EXPECT_EQ(e[0]["key"].str(), "ord/1");
  EXPECT_EQ(e[0]["payload"].str(), "{\"qty\":1}");
  EXPECT_EQ(e[0]["created_at_us"].i64(), kT0);
  EXPECT_EQ(e[0]["created_at"].str(), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(e[0]["sent_at_us"].i64(), kT0 + 5'000'000);
  EXPECT_EQ(e[0]["sent_at"].str(), "2023-11-14T22:13:25.123456Z");
  EXPECT_EQ(e[0]["attempts"].u64(), 0u);

  EXPECT_EQ(e[1]["id"].str(), db_id + "/telemetry/1");
  EXPECT_EQ(e[1]["state"].str(), "pending");
  EXPECT_EQ(e[1]["strategy"].str(), "publish-on-commit");
  EXPECT_EQ(e[1]["type"].str(), "reading.v1");
  EXPECT_EQ(e[1]["key"].str(), "dev/42");
  EXPECT_EQ(e[1]["encoding"].str(), "text/plain");
  EXPECT_EQ(e[1]["payload"].str(), "21.5 °C");
  EXPECT_EQ(e[1]["payload_size"].u64(), std::string("21.5 °C").size());
  ASSERT_EQ(e[1]["headers"].object().size(), 2u);
  EXPECT_EQ(e[1]["headers"]["trace"].str(), "abc");
  EXPECT_EQ(e[1]["headers"]["unit"].str(), "celsius");
  EXPECT_TRUE(e[1]["sent_at"].is_null());
  EXPECT_TRUE(e[1]["sent_at_us"].is_null());
  EXPECT_TRUE(e[1]["next_attempt_at"].is_null());
  EXPECT_EQ(e[1]["last_error"].str(), "");
  EXPECT_EQ(e[1]["note"].str(), "");

  EXPECT_EQ(e[2]["type"].str(), "blob.v1");
  EXPECT_FALSE(e[2].Has("payload"));
  EXPECT_EQ(e[2]["payload_hex"].str(), "0001ff");
  EXPECT_EQ(e[2]["encoding"].str(), "application/octet-stream");

  // The same records as tab-separated text, payload truncated unless --full.
  ToolRun table = RunTool({"dump", path, "--stream", "telemetry"});
  auto lines = table.OutLines();
  ASSERT_EQ(lines.size(), 3u) << Describe(table);
  EXPECT_EQ(lines[0], "stream\tseq\tstate\ttype\tkey\tattempts\tcreated_at\tsent_at\tlast_error\tnote\tpayload");
  EXPECT_EQ(SplitTabs(lines[1])[6], "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(SplitTabs(lines[2]).back(), "hex:0001ff");
}

TEST(ToolBinary, DumpFiltersAndTruncation) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * a, outbox->OpenStream("a"));
    ASSERT_OK_AND_ASSIGN(Stream * b, outbox->OpenStream("b"));
    EnqueueN(*outbox, *a, 5, "a");
    EnqueueN(*outbox, *b, 3, "b");
    Enqueue(*outbox, *b, {.type = "big.v1", .payload = std::string(200, 'z')});
  }
  auto seqs = [&](const std::vector<std::string>& args) {
    std::vector<std::string> all = {"dump", path, "--json"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<std::string> out;
    for (const Json& j : ParseLines(RunTool(all)))
      out.push_back(j["stream"].str() + j["seq"].number_text());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(seqs({}), (V{"a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3", "b4"}));
  EXPECT_EQ(seqs({"--stream", "b"}), (V{"b1", "b2", "b3", "b4"}));
  EXPECT_EQ(seqs({"--from-seq", "4"}), (V{"a4", "a5", "b4"}));
  EXPECT_EQ(seqs({"--limit", "6"}), (V{"a1", "a2", "a3", "a4", "a5", "b1"}));
  EXPECT_EQ(seqs({"--type", "big.v1"}), (V{"b4"}));
  EXPECT_EQ(seqs({"--state", "sent"}), V{});
  EXPECT_EQ(seqs({"--state", "pending,sent", "--stream", "a", "--from-seq", "5"}), (V{"a5"}));

  ToolRun shortened = RunTool({"dump", path, "--type", "big.v1"});
  EXPECT_EQ(SplitTabs(shortened.OutLines().at(1)).back(), std::string(64, 'z') + "…(200 bytes)");
  ToolRun full = RunTool({"dump", path, "--type", "big.v1", "--full"});
  EXPECT_EQ(SplitTabs(full.OutLines().at(1)).back(), std::string(200, 'z'));
}

// --- relay ---------------------------------------------------------------

TEST(ToolBinary, RelayExecSinkDeliversAndReportsFailures) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  const std::string received = dir.Sub("received.jsonl");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * a, outbox->OpenStream("a"));
    ASSERT_OK_AND_ASSIGN(Stream * b, outbox->OpenStream("b"));
    EnqueueN(*outbox, *a, 2, "a");
    EnqueueN(*outbox, *b, 2, "b");
  }
  ToolRun failing = RunTool({"relay", path, "--stream", "a", "--sink", "exec:echo refused >&2; exit 3"});
  EXPECT_EQ(failing.code, 1) << Describe(failing);
  EXPECT_NE(failing.err.find("0 published"), std::string::npos) << failing.err;
  auto after = ParseLines(RunTool({"dump", path, "--json", "--stream", "a"}));
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0]["attempts"].u64(), 1u);
  EXPECT_NE(after[0]["last_error"].str().find("exited with 3"), std::string::npos) << after[0]["last_error"].str();
  EXPECT_NE(after[0]["last_error"].str().find("refused"), std::string::npos);
  EXPECT_EQ(after[0]["state"].str(), "retrying");
  ASSERT_EQ(ParseLines(RunTool({"dump", path, "--json", "--stream", "b"}))[0]["attempts"].u64(), 0u)
      << "--stream a touched stream b";

  // Only stream b, through a command that appends each event's JSON line to a file.
  ToolRun ok = RunTool({"relay", path, "--stream", "b", "--sink", "exec:cat >> '" + received + "'"});
  EXPECT_EQ(ok.code, 0) << Describe(ok);
  EXPECT_EQ(ReadJsonLines(received, [](const Json& j) { return j["stream"].str() + j["payload"].str(); }),
            (std::vector<std::string>{"bb1", "bb2"}));
  ToolRun unknown = RunTool({"relay", path, "--stream", "nope"});
  EXPECT_EQ(unknown.code, 1) << Describe(unknown);
  EXPECT_NE(unknown.err.find("'nope'"), std::string::npos);
}

TEST(ToolBinary, RelayLoopDeliversUntilSignalledAndHoldsTheDatabase) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("telemetry"));
    EnqueueN(*outbox, *s, 3, "loop-");
  }
  Child relay({JM_TOOL, "relay", path, "--loop", "--interval", "50ms"});
  for (int i = 1; i <= 3; ++i) {
    auto j = Json::Parse(relay.ReadLine());
    ASSERT_TRUE(j);
    EXPECT_EQ((*j)["payload"].str(), "loop-" + std::to_string(i));
  }
  ToolRun busy = RunTool(ArgsFor("skip", path));
  EXPECT_EQ(busy.code, 3) << Describe(busy);
  EXPECT_NE(busy.err.find("process " + std::to_string(relay.pid())), std::string::npos) << busy.err;
  ASSERT_EQ(::kill(relay.pid(), SIGTERM), 0);
  EXPECT_EQ(relay.Wait(), 0);
  auto sent = ParseLines(RunTool({"dump", path, "--json"}));
  ASSERT_EQ(sent.size(), 3u);
  for (const Json& j : sent)
    EXPECT_EQ(j["state"].str(), "sent");
  ToolRun streams = RunTool({"streams", path, "--json"});
  auto rows = ParseLines(streams);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["pending_events"].u64(), 0u);
  EXPECT_EQ(rows[0]["cursor"].u64(), 4u);
  EXPECT_EQ(rows[0]["last_seq"].u64(), 3u);
}

// Issue 16: with stderr redirected to a file (as under a service manager),
// `relay --loop` writes one line per change as it happens (the publisher down,
// the stream blocked, with time, stream, seq and error), not one per failed
// attempt, and its summary counts the blocked stream once.
TEST(ToolBinary, RelayLoopLogsEachChangeOnceAndCountsBlockedStreams) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  const std::string attempts = dir.Sub("attempts");
  const std::string err_file = dir.Sub("stderr.log");
  {
    auto outbox = MustOpen(path);
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(
        Stream * s, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder,
                                                  .retry = RetryPolicy{.initial_backoff = 20ms, .max_backoff = 50ms}}));
    EnqueueN(*outbox, *s, 2, "o");
  }
  // A broker that is down: every attempt fails (and is counted in `attempts`).
  const std::string sink = "exec:echo attempt >> '" + attempts + "'; echo 'connection refused' >&2; exit 3";
  Child relay({"/bin/sh", "-c",
               "exec '" + std::string(JM_TOOL) + "' relay '" + path + "' --loop --interval 20ms --sink \"" + sink +
                   "\" 2> '" + err_file + "'"});
  auto read = [](const std::string& file) {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  auto lines_in = [&](const std::string& file) { return testing::SplitLines(read(file)).size(); };
  // The lines are in the file while the relay still runs: written per line.
  while ((lines_in(attempts) < 4 || read(err_file).find("stream blocked") == std::string::npos) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(lines_in(attempts), 4u) << read(err_file);
  ASSERT_EQ(::kill(relay.pid(), SIGTERM), 0);
  EXPECT_EQ(relay.Wait(), 0);
  const std::string err = read(err_file);
  std::printf("relay --loop stderr:\n%s", err.c_str());
  std::vector<std::string> down, blocked, summary;
  for (const std::string& line : testing::SplitLines(err)) {
    if (line.find(" WARN publisher down ") != std::string::npos) down.push_back(line);
    if (line.find(" WARN stream blocked ") != std::string::npos) blocked.push_back(line);
    if (line.starts_with("relay: ")) summary.push_back(line);
  }
  ASSERT_EQ(down.size(), 1u) << err;
  ASSERT_EQ(blocked.size(), 1u) << err;
  // 2026-11-29T19:08:57.916Z WARN stream blocked stream=orders seq=1 error="unavailable: exec sink: ..."
  EXPECT_EQ(blocked[0][10], 'T') << blocked[0];
  EXPECT_EQ(blocked[0][23], 'Z') << blocked[0];
  EXPECT_NE(blocked[0].find("stream blocked stream=orders seq=1 error=\"unavailable: exec sink:"), std::string::npos)
      << blocked[0];
  EXPECT_NE(blocked[0].find("exited with 3"), std::string::npos) << blocked[0];
  EXPECT_NE(down[0].find("connection refused"), std::string::npos) << down[0];
  ASSERT_EQ(summary.size(), 1u) << err;
  EXPECT_NE(summary[0].find("0 published"), std::string::npos) << summary[0];
  EXPECT_NE(summary[0].find(", 1 stream blocked"), std::string::npos) << summary[0];
}

// --- clean -----------------------------------------------------------------

TEST(ToolBinary, CleanRemovesExpiredSentEventsOnly) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    // Delivered 30 days ago (a manual clock), kept as sent; one event still pending.
    auto clock = std::make_shared<ManualClock>(SystemClock()->Now() - std::chrono::hours(24 * 30));
    auto outbox = MustOpen(path, {.clock = clock});
    ASSERT_TRUE(outbox);
    ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
    EnqueueN(*outbox, *orders, 4, "o");
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, std::make_shared<RecordingPublisher>()));
    ASSERT_OK_AND_ASSIGN(RelayStats stats, relay->RunOnce());
    ASSERT_EQ(stats.published, 4u);
    EnqueueN(*outbox, *orders, 1, "late");
  }
  ASSERT_EQ(ParseLines(RunTool({"dump", path, "--state", "sent", "--json"})).size(), 4u);
  ToolRun clean = RunTool({"clean", path, "--json"});
  ASSERT_EQ(clean.code, 0) << Describe(clean);
  auto report = ParseLines(clean);
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0]["removed"].u64(), 4u);
  EXPECT_EQ(report[0]["kept_corrupt"].u64(), 0u);
  EXPECT_TRUE(report[0].Has("bytes_before"));
  EXPECT_EQ(ParseLines(RunTool({"dump", path, "--state", "sent", "--json"})).size(), 0u);
  auto left = ParseLines(RunTool({"dump", path, "--json"}));
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]["state"].str(), "pending");
  ToolRun again = RunTool({"clean", path});
  EXPECT_EQ(again.code, 0);
  EXPECT_EQ(again.out.rfind("removed 0 sent events", 0), 0u) << again.out;
}

}  // namespace
}  // namespace jaiminho
