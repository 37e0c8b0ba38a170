// Damaged databases and creation races (issue 13, item 7): a database whose
// CURRENT is deleted, whose MANIFEST is corrupt or missing, is kCorruption
// naming the path and what is damaged (the tool exits 4), never "not a
// database" (exit 2, kept for wrong paths); two processes creating one new
// database at once get a database or kBusy, never "not a jaiminho database".
//
// Databases are opened in forked children only (see full_disk_test.cc).
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "support/child.h"
#include "support/test_util.h"
#ifdef JM_TOOL
#include "tool/run_tool.h"
#endif

namespace jaiminho::testing {
namespace {
namespace fs = std::filesystem;

// A database with one stream and 3 events, closed.
void MakeDatabase(const std::string& path) {
  RunInChild("create " + path, [&] {
    auto opened = Outbox::Open({.path = path});
    ASSERT_OK(opened);
    ASSERT_OK_AND_ASSIGN(Stream * s, (*opened)->OpenStream("telemetry"));
    for (int i = 0; i < 3; ++i) {
      Transaction t = (*opened)->Begin();
      ASSERT_OK(t.Enqueue(*s, {.type = "t", .payload = "p"}));
      ASSERT_OK(t.Commit());
    }
    ASSERT_OK((*opened)->Close());
  });
}

std::string FileStartingWith(const std::string& dir, std::string_view prefix) {
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.starts_with(prefix)) return e.path().string();
  }
  return "";
}

enum class Damage { kCurrentDeleted, kManifestCorrupt, kManifestDeleted, kCurrentGarbage };

struct DamageCase {
  Damage damage;
  std::string name;
  std::string names;  // what the error must name
};

// Damages the database at `path` as `d` says.
void Inflict(const std::string& path, Damage d) {
  std::string manifest = FileStartingWith(path, "MANIFEST-");
  ASSERT_FALSE(manifest.empty());
  switch (d) {
    case Damage::kCurrentDeleted:
      ASSERT_TRUE(fs::remove(fs::path(path) / "CURRENT"));
      break;
    case Damage::kManifestCorrupt: {
      auto size = fs::file_size(manifest);
      std::fstream f(manifest, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(0);
      std::string junk(size, '\x5a');
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
      break;
    }
    case Damage::kManifestDeleted:
      ASSERT_TRUE(fs::remove(manifest));
      break;
    case Damage::kCurrentGarbage: {
      std::ofstream f(fs::path(path) / "CURRENT", std::ios::trunc);
      f << "garbage";
      break;
    }
  }
}

class DamagedDatabase : public ::testing::TestWithParam<DamageCase> {};

TEST_P(DamagedDatabase, OpenIsCorruptionNamingThePathAndWhatIsDamagedAndChangesNothing) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  MakeDatabase(path);
  ASSERT_NO_FATAL_FAILURE(Inflict(path, GetParam().damage));
  auto before = Snapshot(path);
  RunInChild("open the damaged database", [&] {
    for (bool create : {false, true}) {
      auto opened = Outbox::Open({.path = path, .create_if_missing = create});
      ASSERT_FALSE(opened.has_value()) << "a damaged database opened";
      const Error& e = opened.error();
      EXPECT_EQ(e.code(), ErrorCode::kCorruption) << e.ToString();
      EXPECT_NE(e.message().find(path), std::string::npos) << e.message();
      EXPECT_NE(e.message().find(GetParam().names), std::string::npos) << e.message();
    }
  });
  EXPECT_EQ(Snapshot(path), before) << "opening a damaged database changed it";
}

#ifdef JM_TOOL
TEST_P(DamagedDatabase, EveryToolCommandExitsFour) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  MakeDatabase(path);
  ASSERT_NO_FATAL_FAILURE(Inflict(path, GetParam().damage));
  auto before = Snapshot(path);
  const std::vector<std::vector<std::string>> runs = {
      {"dump", path},
      {"streams", path},
      {"stats", path},
      {"verify", path},
      {"relay", path},
      {"clean", path},
      {"requeue", path, "--stream", "telemetry", "--all-parked"},
      {"skip", path, "--stream", "telemetry", "--seq", "1", "--reason", "test"}};
  for (const auto& args : runs) {
    ToolRun r = RunTool(args);
    EXPECT_EQ(r.code, 4) << args[0] << " on a damaged database:\n" << r.err;
    EXPECT_NE(r.err.find("corruption"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  }
  EXPECT_EQ(Snapshot(path), before) << "the tool changed a damaged database";
  // A wrong path is still a usage error.
  ToolRun wrong = RunTool({"dump", dir.Sub("nothing-here")});
  EXPECT_EQ(wrong.code, 2) << wrong.err;
}
#endif

INSTANTIATE_TEST_SUITE_P(Damages, DamagedDatabase,
                         ::testing::Values(DamageCase{Damage::kCurrentDeleted, "CurrentDeleted", "CURRENT"},
                                           DamageCase{Damage::kManifestCorrupt, "ManifestCorrupt", "MANIFEST"},
                                           DamageCase{Damage::kManifestDeleted, "ManifestDeleted", "MANIFEST"},
                                           DamageCase{Damage::kCurrentGarbage, "CurrentGarbage", "CURRENT"}),
                         [](const auto& p) { return p.param.name; });

// Two processes create one new database at once, 20 times. Each one keeps
// opening until it gets the database (bounded), so its attempts fall into
// every phase of the other's creation: each attempt gets the database or
// kBusy (the other holds it), never "not a jaiminho database"; both see the
// same database id (it is initialized once).
TEST(CreationRace, TwoProcessesCreatingOneDatabaseGetItOrBusy) {
  constexpr int kRounds = 20;
  constexpr int kMaxAttempts = 20000;
  struct Shared {
    std::array<uint8_t, 16> id[2];
    int opened[2];
    int busy[2];
  };
  void* mem = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* shared = static_cast<Shared*>(mem);
  int busy = 0;
  for (int round = 0; round < kRounds; ++round) {
    TempDir dir;
    const std::string path = dir.Sub("db");
    std::memset(shared, 0, sizeof(Shared));
    int gate[2];
    ASSERT_EQ(::pipe(gate), 0);
    pid_t pids[2];
    for (int c = 0; c < 2; ++c) {
      pids[c] = ForkTest([&, c] {
        ::close(gate[1]);
        char b;
        (void)!::read(gate[0], &b, 1);  // returns at EOF: both start together
        for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
          auto opened = Outbox::Open({.path = path});
          if (!opened) {
            ASSERT_EQ(opened.error().code(), ErrorCode::kBusy)
                << "round " << round << ", attempt " << attempt << ": " << opened.error().ToString();
            ++shared->busy[c];
            continue;
          }
          shared->opened[c] = 1;
          shared->id[c] = (*opened)->id().bytes;
          EXPECT_OK((*opened)->Close());
          return;
        }
      });
      ASSERT_GT(pids[c], 0);
    }
    ::close(gate[0]);
    ::close(gate[1]);
    for (int c = 0; c < 2; ++c)
      EXPECT_EQ(WaitChild(pids[c]), 0) << "round " << round << ", process " << c;
    EXPECT_TRUE(shared->opened[0] && shared->opened[1]) << "round " << round << ": a process never got the database";
    EXPECT_EQ(shared->id[0], shared->id[1]) << "round " << round << ": the database was initialized twice";
    busy += shared->busy[0] + shared->busy[1];
    if (::testing::Test::HasFailure()) break;
  }
  std::cout << busy << " attempts got kBusy while the other process held the database\n";
  ::munmap(mem, sizeof(Shared));
}

}  // namespace
}  // namespace jaiminho::testing
