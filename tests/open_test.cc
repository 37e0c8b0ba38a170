// Opening databases: creation, reopen, validation of paths and options, the
// on-disk format check. Bad input must give a clear error and change nothing.
#include "storage/open.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "core/outbox_impl.h"
#include "storage/meta.h"
#include "support/child.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustOpen;
using testing::Snapshot;
using testing::TempDir;

TEST(Open, CreatesDatabaseWithMetaAndReopens) {
  TempDir dir;
  std::string path = dir.Sub("db");
  DatabaseId first;
  {
    auto outbox = MustOpen(path);
    ASSERT_NE(outbox, nullptr);
    first = outbox->id();
    EXPECT_NE(first.ToHex(), std::string(32, '0'));
    ASSERT_OK(outbox->OpenStream("telemetry"));
    ASSERT_OK(outbox->Close());
  }
  auto outbox = MustOpen(path);
  ASSERT_NE(outbox, nullptr);
  EXPECT_EQ(outbox->id(), first) << "the database id is stored, not regenerated";
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream("telemetry"));
  EXPECT_EQ(s->name(), "telemetry");
  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &families).ok());
  EXPECT_NE(std::find(families.begin(), families.end(), "jaiminho.meta"), families.end());
  EXPECT_NE(std::find(families.begin(), families.end(), "jaiminho.stream.telemetry"), families.end());
}

TEST(Open, DefaultsMatchTheSeed) {
  OutboxOptions o;
  EXPECT_FALSE(o.persist_all_events);
  EXPECT_FALSE(o.delete_after_send);
  EXPECT_EQ(o.strategy, Strategy::kPublishOnCommit);
  EXPECT_EQ(o.time_to_delete, std::chrono::hours(24 * 7));
  EXPECT_EQ(o.info_log_level, rocksdb::InfoLogLevel::WARN_LEVEL);
  // Every commit synced unless the program chooses a profile or a commit says.
  EXPECT_EQ(o.durability, Durability::kSyncEachCommit);
  EXPECT_EQ(o.sync_interval, std::chrono::milliseconds(10));
  EXPECT_FALSE(CommitOptions{}.sync.has_value());
}

TEST(Open, PathThatIsAFileIsRefusedAndUntouched) {
  TempDir dir;
  std::string path = dir.Sub("file");
  { std::ofstream(path) << "not a database"; }
  auto before = Snapshot(dir.path());
  auto r = Outbox::Open({.path = path});
  ASSERT_ERROR(r, ErrorCode::kNotADatabase);
  EXPECT_NE(r.error().message().find(path), std::string::npos) << r.error().message();
  EXPECT_EQ(Snapshot(dir.path()), before);
}

TEST(Open, UnrelatedDirectoryIsRefusedAndUntouched) {
  TempDir dir;
  { std::ofstream(dir.Sub("notes.txt")) << "hello"; }
  auto before = Snapshot(dir.path());
  auto r = Outbox::Open({.path = dir.path()});
  ASSERT_ERROR(r, ErrorCode::kNotADatabase);
  EXPECT_NE(r.error().message().find(dir.path()), std::string::npos);
  EXPECT_EQ(Snapshot(dir.path()), before);
}

TEST(Open, PlainRocksDbIsRefusedAndUntouched) {
  TempDir dir;
  std::string path = dir.Sub("plain");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, path, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "k", "v").ok());
    delete db;
  }
  auto before = Snapshot(path);
  auto r = Outbox::Open({.path = path});
  ASSERT_ERROR(r, ErrorCode::kNotADatabase);
  EXPECT_NE(r.error().message().find("jaiminho.meta"), std::string::npos) << r.error().message();
  EXPECT_EQ(Snapshot(path), before);
}

// What a first start killed inside RocksDB's creation leaves (found by the
// crash harness's early kills): CURRENT and a MANIFEST with only the default
// family, empty, before the jaiminho families were created. No data: the next
// start finishes the creation, and the read-only tools see an empty database.
TEST(Open, CreationKilledBeforeTheFamiliesExistedIsFinishedByTheNextOpen) {
  TempDir dir;
  std::string path = dir.Sub("half");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, path, &db).ok());
    delete db;
  }
  {
    auto ro = internal::OpenReadOnly(path);
    ASSERT_TRUE(ro.has_value()) << ro.error().ToString();
    EXPECT_EQ((*ro)->snapshot.format, 0u);
  }
  ASSERT_OK_AND_ASSIGN(auto outbox, Outbox::Open({.path = path}));
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("s"));
  auto txn = outbox->Begin();
  ASSERT_OK(txn.Enqueue(*s, {.type = "t", .payload = "p"}));
  ASSERT_OK_AND_ASSIGN(Receipt r, txn.Commit());
  EXPECT_EQ(r.events.at(0).seq, 1u);
  ASSERT_OK(outbox->Close());
  outbox.reset();
  ASSERT_OK_AND_ASSIGN(auto again, Outbox::Open({.path = path}));
  ASSERT_OK(again->FindStream("s"));
}

TEST(Open, MissingPathWithoutCreateIsNotFoundAndCreatesNothing) {
  TempDir dir;
  std::string path = dir.Sub("absent");
  ASSERT_ERROR(Outbox::Open({.path = path, .create_if_missing = false}), ErrorCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(path));
}

// The README's first program opens "var/gw.db" in a fresh checkout, where var/
// does not exist.
TEST(Open, CreatesMissingParentDirectories) {
  TempDir dir;
  std::string path = dir.Sub("var/deeper/gw.db");
  auto outbox = Outbox::Open({.path = path});
  ASSERT_TRUE(outbox.has_value()) << outbox.error().ToString();
  ASSERT_OK((*outbox)->OpenStream("telemetry"));
  ASSERT_OK((*outbox)->Close());
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(path) / "CURRENT"));
}

TEST(Open, ParentThatIsAFileIsNamedAndNothingIsCreated) {
  TempDir dir;
  std::string file = dir.Sub("var");
  { std::ofstream(file) << "a file where a directory should be"; }
  auto before = Snapshot(dir.path());
  auto r = Outbox::Open({.path = dir.Sub("var/sub/gw.db")});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find(file + " is not a directory"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(Snapshot(dir.path()), before);
}

TEST(Open, NewerFormatIsRefusedAndUntouched) {
  TempDir dir;
  std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_NE(outbox, nullptr);
    auto& impl = OutboxAccess::Of(*outbox);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    ASSERT_TRUE(outbox->db()->Put(wo, impl.meta_cf, "format", internal::EncodeU32(kFormatVersion + 1)).ok());
    ASSERT_OK(outbox->Close());
  }
  auto before = Snapshot(path);
  auto r = Outbox::Open({.path = path});
  ASSERT_ERROR(r, ErrorCode::kFormatTooNew);
  EXPECT_NE(r.error().message().find(std::to_string(kFormatVersion + 1)), std::string::npos) << r.error().message();
  EXPECT_EQ(Snapshot(path), before) << "refusing a database must not write to it";
}

TEST(Open, InvalidOptionsNameTheOption) {
  TempDir dir;
  struct Case {
    OutboxOptions options;
    std::string mentions;
  };
  std::vector<Case> cases;
  cases.push_back({{.path = ""}, "path"});
  cases.push_back({{.path = dir.Sub("a"), .time_to_delete = std::chrono::seconds(0)}, "time_to_delete"});
  cases.push_back({{.path = dir.Sub("b"), .strategy = static_cast<Strategy>(7)}, "strategy"});
  cases.push_back(
      {{.path = dir.Sub("c"), .retry = {.initial_backoff = std::chrono::microseconds(0)}}, "initial_backoff"});
  cases.push_back({{.path = dir.Sub("d"), .retry = {.multiplier = 0.5}}, "multiplier"});
  cases.push_back({{.path = dir.Sub("e"), .retry = {.jitter = 1.5}}, "jitter"});
  cases.push_back({{.path = dir.Sub("f"), .max_payload_bytes = 0}, "max_payload_bytes"});
  cases.push_back({{.path = dir.Sub("g"), .business_families = {{.name = "jaiminho.x"}}}, "reserved"});
  cases.push_back({{.path = dir.Sub("h"), .business_families = {{.name = "a"}, {.name = "a"}}}, "twice"});
  for (auto& c : cases) {
    auto r = Outbox::Open(c.options);
    ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.mentions), std::string::npos) << r.error().message();
    if (!c.options.path.empty()) {
      EXPECT_FALSE(std::filesystem::exists(c.options.path));
    }
  }
}

TEST(Open, StreamNamesAreValidated) {
  TempDir dir;
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_NE(outbox, nullptr);
  for (std::string bad : {std::string(), std::string(129, 'a'), std::string("a b"), std::string("a/b"),
                          std::string("é"), std::string("a\0b", 3)}) {
    auto r = outbox->OpenStream(bad);
    ASSERT_ERROR(r, ErrorCode::kInvalidArgument);
  }
  for (std::string good : {std::string("a"), std::string(128, 'z'), std::string("A.b_c-9")}) {
    EXPECT_OK(outbox->OpenStream(good));
  }
  ASSERT_ERROR(outbox->FindStream("never"), ErrorCode::kNotFound);
}

TEST(Open, StreamOptionsAreValidatedAndStored) {
  TempDir dir;
  std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path);
    ASSERT_ERROR(outbox->OpenStream("s", {.time_to_delete = std::chrono::seconds(-1)}), ErrorCode::kInvalidArgument);
    ASSERT_ERROR(outbox->OpenStream("s", {.retry = RetryPolicy{.max_backoff = std::chrono::microseconds(1)}}),
                 ErrorCode::kInvalidArgument);
    ASSERT_OK(outbox->OpenStream("s", {.strategy = Strategy::kKeepOrder,
                                       .retry = RetryPolicy{.max_attempts = 3},
                                       .on_exhaustion = OnExhaustion::kPark,
                                       .time_to_delete = std::chrono::hours(2)}));
  }
  auto outbox = MustOpen(path);
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->FindStream("s"));
  EXPECT_EQ(s->strategy(), Strategy::kKeepOrder);
  EXPECT_EQ(s->retry().max_attempts, 3u);
  EXPECT_EQ(s->on_exhaustion(), OnExhaustion::kPark);
  EXPECT_EQ(s->time_to_delete(), std::chrono::hours(2));
}

TEST(Open, LockedDatabaseNamesTheHolder) {
  TempDir dir;
  std::string path = dir.Sub("db");
  testing::Child holder({JM_HOLD_DB, path});
  ASSERT_EQ(holder.ReadLine().rfind("ready", 0), 0u);
  auto before = Snapshot(path);
  auto r = Outbox::Open({.path = path});
  EXPECT_EQ(Snapshot(path), before) << "refusing a held database must not touch it (not even its LOG)";
  ASSERT_ERROR(r, ErrorCode::kBusy);
  EXPECT_NE(r.error().message().find("process " + std::to_string(holder.pid())), std::string::npos)
      << r.error().message();
  EXPECT_EQ(holder.Wait(), 0);
}

TEST(Open, BusinessFamiliesByName) {
  TempDir dir;
  std::string path = dir.Sub("db");
  {
    auto outbox = MustOpen(path, {.business_families = {{.name = "devices"}}});
    EXPECT_OK(outbox->FindBusinessFamily("devices"));
    EXPECT_OK(outbox->FindBusinessFamily("default"));
    auto r = outbox->FindBusinessFamily("orders");
    ASSERT_ERROR(r, ErrorCode::kNotFound);
    EXPECT_NE(r.error().message().find("orders"), std::string::npos);
  }
  // A family created earlier is found on reopen without being listed.
  auto outbox = MustOpen(path);
  EXPECT_OK(outbox->FindBusinessFamily("devices"));
}

}  // namespace
}  // namespace jaiminho
