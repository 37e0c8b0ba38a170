// The cleaner: a compaction filter that drops sent events past time_to_delete
// (and never a pending or parked one), the forced clean, the periodic
// maintenance pass, and a queue head that does not rot.
#include <rocksdb/perf_context.h>
#include <rocksdb/table_properties.h>

#include <filesystem>
#include <set>

#include "clean/cleaner.h"
#include "core/outbox_impl.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "support/test_util.h"

namespace jaiminho {
namespace {

using testing::MustMakeRelay;
using testing::MustOpen;
using testing::RecordingPublisher;
using testing::TempDir;

constexpr int64_t kStart = 1'700'000'000'000'000;
constexpr auto kDay = std::chrono::hours(24);

struct CleanFixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(FromMicros(kStart));
  std::shared_ptr<RecordingPublisher> publisher = std::make_shared<RecordingPublisher>();
  std::unique_ptr<Outbox> outbox;

  void Open(OutboxOptions o = {}) {
    o.clock = clock;
    o.clean_interval = std::chrono::seconds(0);  // tests drive maintenance themselves
    outbox = MustOpen(dir.Sub("db"), std::move(o));
    ASSERT_NE(outbox, nullptr);
  }
  void Commit(Stream* s, int n, int per_txn = 1) {
    for (int done = 0; done < n;) {
      auto txn = outbox->Begin();
      for (int i = 0; i < per_txn && done < n; ++i, ++done) {
        ASSERT_OK(txn.Enqueue(*s, {.type = "t", .payload = "payload-" + std::to_string(done)}));
      }
      ASSERT_OK(txn.Commit({.sync = false}));
    }
  }
  void Deliver(Stream* s, size_t batch = 256) {
    ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, publisher, {.streams = {s->name()}, .batch_size = batch}));
    ASSERT_OK(relay->RunOnce());
  }
  size_t Count(Stream* s, EventState st) {
    auto l = outbox->ListEvents(*s, st, 10'000'000);
    EXPECT_TRUE(l.has_value());
    return l ? l->size() : 0;
  }
};

TEST(Cleaner, DropsSentPastTimeToDeleteKeepsNewerSentPendingAndParked) {
  CleanFixture f;
  f.Open();
  ASSERT_OK_AND_ASSIGN(Stream * old_sent, f.outbox->OpenStream("old"));
  ASSERT_OK_AND_ASSIGN(Stream * new_sent, f.outbox->OpenStream("new"));
  ASSERT_OK_AND_ASSIGN(Stream * pending, f.outbox->OpenStream("pending", {.strategy = Strategy::kKeepOrder}));
  ASSERT_OK_AND_ASSIGN(Stream * parked, f.outbox->OpenStream("parked", {.retry = RetryPolicy{.max_attempts = 1}}));
  // Day 0: everything is committed; the parked stream's events fail for good.
  f.Commit(old_sent, 5);
  f.Commit(new_sent, 4);
  f.Commit(pending, 3);
  f.Commit(parked, 2);
  f.publisher->fail = [](const Event& e) -> std::optional<Error> {
    if (e.id.stream == "parked") return Error(ErrorCode::kRejected, "refused");
    return std::nullopt;
  };
  f.Deliver(parked);
  ASSERT_EQ(f.Count(parked, EventState::kParked), 2u);
  // Day 22: "old" is sent. Day 24: "new" is sent. Day 30: clean.
  f.clock->Advance(22 * kDay);
  f.Deliver(old_sent);
  f.clock->Advance(2 * kDay);
  f.Deliver(new_sent);
  f.clock->Advance(6 * kDay);
  ASSERT_OK_AND_ASSIGN(CleanReport r, f.outbox->Clean());
  EXPECT_EQ(r.removed, 5u) << "sent 8 days ago: gone";
  EXPECT_EQ(r.kept_corrupt, 0u);
  EXPECT_EQ(f.Count(old_sent, EventState::kSent), 0u);
  EXPECT_EQ(f.Count(new_sent, EventState::kSent), 4u) << "sent 6 days ago: kept";
  EXPECT_EQ(f.Count(pending, EventState::kPending), 3u) << "pending 30 days: never dropped";
  EXPECT_EQ(f.Count(parked, EventState::kParked), 2u) << "parked 30 days: never dropped";
  EXPECT_GT(r.bytes_before, 0u);
}

// Delivered events that are already past time_to_delete when their memtable
// is flushed (delete_after_send: at once) are dropped by the flush: they are
// never written to a table file (flash wear on a gateway whose relay keeps
// up), and Clean() does not read them back to drop them. Undelivered events in
// the same flush are kept.
TEST(Cleaner, DeliveredEventsPastTimeToDeleteAreNotWrittenByTheFlush) {
  CleanFixture f;
  f.Open({.delete_after_send = true});
  ASSERT_OK_AND_ASSIGN(Stream * delivered, f.outbox->OpenStream("delivered"));
  ASSERT_OK_AND_ASSIGN(Stream * waiting, f.outbox->OpenStream("waiting"));
  constexpr int kEvents = 3000;
  f.Commit(delivered, kEvents, 100);
  f.Commit(waiting, kEvents, 100);
  f.Deliver(delivered);
  ASSERT_EQ(f.publisher->count(), static_cast<size_t>(kEvents));
  auto sst_bytes = [&](Stream* s) {
    uint64_t v = 0;
    EXPECT_TRUE(f.outbox->db()->GetIntProperty(StreamAccess::Of(*s).cf, "rocksdb.live-sst-files-size", &v));
    return v;
  };
  ASSERT_EQ(sst_bytes(delivered), 0u) << "nothing flushed yet";
  rocksdb::FlushOptions fo;
  fo.wait = true;
  ASSERT_TRUE(f.outbox->db()->Flush(fo, {StreamAccess::Of(*delivered).cf, StreamAccess::Of(*waiting).cf}).ok());
  // The waiting stream's table holds its events (envelopes of about 180
  // bytes); the delivered stream's only its run records (and a deletion
  // marker per dropped event, until the bottom level), not its events.
  auto value_bytes = [&](Stream* s) {
    rocksdb::TablePropertiesCollection tables;
    EXPECT_TRUE(f.outbox->db()->GetPropertiesOfAllTables(StreamAccess::Of(*s).cf, &tables).ok());
    uint64_t n = 0;
    for (const auto& [file, props] : tables)
      n += props->raw_value_size;
    return n;
  };
  EXPECT_GT(sst_bytes(waiting), 0u);
  EXPECT_GE(value_bytes(waiting), uint64_t{kEvents} * 100);
  EXPECT_LT(value_bytes(delivered), uint64_t{kEvents}) << "less than a byte per delivered event";
  EXPECT_EQ(StreamAccess::Of(*delivered).cleaner->removed.load(), static_cast<uint64_t>(kEvents));
  EXPECT_EQ(f.Count(waiting, EventState::kPending), static_cast<size_t>(kEvents));
  EXPECT_EQ(f.Count(delivered, EventState::kPending), 0u);
  EXPECT_EQ(f.Count(delivered, EventState::kSent), 0u);
  // And after a reopen (the WAL is replayed from where the flush left off).
  ASSERT_OK(f.outbox->Close());
  f.Open({.delete_after_send = true});
  ASSERT_OK_AND_ASSIGN(waiting, f.outbox->FindStream("waiting"));
  ASSERT_OK_AND_ASSIGN(delivered, f.outbox->FindStream("delivered"));
  EXPECT_EQ(f.Count(waiting, EventState::kPending), static_cast<size_t>(kEvents));
  EXPECT_EQ(f.Count(delivered, EventState::kPending), 0u);
  f.Deliver(delivered);
  EXPECT_EQ(f.publisher->count(), static_cast<size_t>(kEvents)) << "nothing delivered comes back";
}

// A stream's tables are LZ4, flushed or compacted: a relay pass reads every
// block of a flushed backlog, and Snappy (RocksDB's default) decompresses our
// envelopes about half as fast at about the same size.
TEST(Cleaner, FlushedAndCompactedTablesAreLz4) {
  CleanFixture f;
  f.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("head"));
  f.Commit(s, 2000, 100);
  rocksdb::ColumnFamilyHandle* cf = StreamAccess::Of(*s).cf;
  auto compressions = [&] {
    rocksdb::TablePropertiesCollection tables;
    EXPECT_TRUE(f.outbox->db()->GetPropertiesOfAllTables(cf, &tables).ok());
    std::set<std::string> names;
    for (const auto& [file, props] : tables)
      names.insert(props->compression_name);
    return names;
  };
  rocksdb::FlushOptions fo;
  fo.wait = true;
  ASSERT_TRUE(f.outbox->db()->Flush(fo, cf).ok());
  EXPECT_EQ(compressions(), std::set<std::string>{"LZ4"});
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  ASSERT_TRUE(f.outbox->db()->CompactRange(co, cf, nullptr, nullptr).ok());
  EXPECT_EQ(compressions(), std::set<std::string>{"LZ4"});
  EXPECT_EQ(f.Count(s, EventState::kPending), 2000u);
}

// Bytes of the write-ahead log files in `db` (what is on disk, as an operator
// sees it).
uint64_t WalBytesOnDisk(const std::string& db) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(db)) {
    if (e.path().extension() == ".log") {
      std::error_code ec;
      const auto size = e.file_size(ec);
      if (!ec) total += size;
    }
  }
  return total;
}

// jaiminho.meta is written at every commit and relay batch but fills its
// memtable slowly, so it pins every log file since its last flush: RocksDB's
// default limit (4x all write buffers) let the log grow past 1 GiB between
// maintenance passes. The log stays near max_total_wal_size (64 MiB): a
// gateway's card keeps its space, and a Clean() deletes a few files, not all.
TEST(Cleaner, TheWriteAheadLogStaysBoundedBetweenMaintenancePasses) {
  CleanFixture f;
  f.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("big"));
  const std::string payload(4000, 'x');
  const std::string db = f.dir.Sub("db");
  uint64_t most = 0;
  for (int commit = 0; commit < 160; ++commit) {  // about 160 MiB of log
    auto txn = f.outbox->Begin();
    for (int i = 0; i < 256; ++i)
      ASSERT_OK(txn.Enqueue(*s, {.type = "t", .payload = payload}));
    ASSERT_OK(txn.Commit({.sync = false}));
    most = std::max(most, WalBytesOnDisk(db));
  }
  // The limit, plus the stream's memtables (2 x 16 MiB) still being flushed.
  EXPECT_LE(most, uint64_t{64 + 48} << 20) << "the write-ahead log reached " << (most >> 20) << " MiB";
}

TEST(Cleaner, PerStreamTimeToDeleteIsHonoured) {
  CleanFixture f;
  f.Open();
  ASSERT_OK_AND_ASSIGN(Stream * short_lived, f.outbox->OpenStream("short", {.time_to_delete = kDay}));
  ASSERT_OK_AND_ASSIGN(Stream * normal, f.outbox->OpenStream("normal"));
  f.Commit(short_lived, 3);
  f.Commit(normal, 3);
  f.Deliver(short_lived);
  f.Deliver(normal);
  f.clock->Advance(2 * kDay);
  ASSERT_OK_AND_ASSIGN(CleanReport r, f.outbox->Clean());
  EXPECT_EQ(r.removed, 3u);
  EXPECT_EQ(f.Count(short_lived, EventState::kSent), 0u);
  EXPECT_EQ(f.Count(normal, EventState::kSent), 3u);

  // Changing it later applies to the next compaction, and survives reopen.
  ASSERT_OK(f.outbox->OpenStream("normal", {.time_to_delete = kDay}));
  ASSERT_OK(f.outbox->Close());
  f.Open();
  ASSERT_OK_AND_ASSIGN(normal, f.outbox->FindStream("normal"));
  EXPECT_EQ(normal->time_to_delete(), kDay);
  ASSERT_OK_AND_ASSIGN(r, f.outbox->Clean());
  EXPECT_EQ(r.removed, 3u);
}

TEST(Cleaner, CorruptValuesAreKeptAndCounted) {
  CleanFixture f;
  f.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s"));
  auto key = internal::SeqKey(internal::kSentTag, 99);
  ASSERT_TRUE(f.outbox->db()
                  ->Put(rocksdb::WriteOptions(), testing::StreamFamily(*s), rocksdb::Slice(key.bytes, key.size),
                        "not an envelope")
                  .ok());
  f.clock->Advance(365 * kDay);
  ASSERT_OK_AND_ASSIGN(CleanReport r, f.outbox->Clean());
  EXPECT_EQ(r.removed, 0u);
  EXPECT_EQ(r.kept_corrupt, 1u);
  std::string v;
  EXPECT_TRUE(f.outbox->db()
                  ->Get(rocksdb::ReadOptions(), testing::StreamFamily(*s), rocksdb::Slice(key.bytes, key.size), &v)
                  .ok());
  EXPECT_EQ(v, "not an envelope");
}

TEST(Cleaner, NeverRunsOnBusinessFamilies) {
  CleanFixture f;
  f.Open({.business_families = {{.name = "devices"}}});
  ASSERT_OK_AND_ASSIGN(BusinessFamily devices, f.outbox->FindBusinessFamily("devices"));
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s"));
  // A business value that looks exactly like an expired sent event.
  internal::EnvelopeFields fields;
  fields.seq = 1;
  fields.stream = "s";
  fields.type = "t";
  fields.sent_at = kStart;
  std::string envelope;
  internal::EncodeEnvelope(fields, &envelope);
  auto key = internal::SeqKey(internal::kSentTag, 1);
  auto txn = f.outbox->Begin();
  ASSERT_OK(txn.Put(devices, key.view(), envelope));
  ASSERT_OK(txn.Enqueue(*s, {.type = "t"}));
  ASSERT_OK(txn.Commit());
  f.clock->Advance(100 * kDay);
  ASSERT_OK(f.outbox->Clean());
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  ASSERT_TRUE(f.outbox->db()->CompactRange(o, devices.handle, nullptr, nullptr).ok());
  ASSERT_OK_AND_ASSIGN(auto v, f.outbox->Get(devices, key.view()));
  EXPECT_EQ(v, envelope);
  rocksdb::ColumnFamilyDescriptor d;
  ASSERT_TRUE(devices.handle->GetDescriptor(&d).ok());
  EXPECT_EQ(d.options.compaction_filter_factory, nullptr);
  ASSERT_TRUE(testing::StreamFamily(*s)->GetDescriptor(&d).ok());
  EXPECT_NE(d.options.compaction_filter_factory, nullptr);
  EXPECT_LE(d.options.periodic_compaction_seconds, 7u * 86400) << "set explicitly, not RocksDB's 30-day default";
}

TEST(Cleaner, MaintenancePassCleansAnIdleDatabaseWithoutBeingAsked) {
  CleanFixture f;
  f.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s", {.time_to_delete = kDay}));
  f.Commit(s, 10);
  f.Deliver(s);
  f.clock->Advance(kDay / 2);
  ASSERT_OK(OutboxAccess::Of(*f.outbox).maintenance->Maintain());
  EXPECT_EQ(f.Count(s, EventState::kSent), 10u) << "not expired yet";
  f.clock->Advance(kDay);
  ASSERT_OK(OutboxAccess::Of(*f.outbox).maintenance->Maintain());
  EXPECT_EQ(f.Count(s, EventState::kSent), 0u);
}

uint64_t SkippedDuringPass(Outbox& outbox, const std::shared_ptr<Publisher>& publisher, int64_t* pass_us = nullptr) {
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  auto relay = MustMakeRelay(outbox, publisher);
  if (!relay) return 0;
  auto t0 = std::chrono::steady_clock::now();
  auto r = relay->RunOnce();
  if (pass_us) {
    *pass_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  }
  EXPECT_TRUE(r.has_value());
  const auto* pc = rocksdb::get_perf_context();
  uint64_t skipped =
      pc->internal_delete_skipped_count + pc->internal_key_skipped_count + pc->internal_range_del_reseek_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  return skipped;
}

// 1M events committed, delivered and marked sent, then cleaned: the stream
// families shrink back to almost nothing, and a relay pass over the (empty)
// pending range skips no more entries than on a fresh database.
TEST(Cleaner, MillionSentEventsAreReclaimedAndTheHeadDoesNotRot) {
  const char* env = std::getenv("JAIMINHO_CLEAN_EVENTS");
  const int n = env ? std::atoi(env) : 1'000'000;
  CleanFixture fresh;
  fresh.Open();
  ASSERT_OK_AND_ASSIGN(Stream * fs, fresh.outbox->OpenStream("s"));
  (void)fs;
  int64_t fresh_us = 0, loaded_us = 0, cleaned_us = 0;
  const uint64_t fresh_skipped = SkippedDuringPass(*fresh.outbox, fresh.publisher, &fresh_us);

  CleanFixture f;
  f.Open();
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("s"));
  f.Commit(s, n, 1000);
  auto t0 = std::chrono::steady_clock::now();
  f.Deliver(s, 4096);
  auto deliver_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  ASSERT_EQ(f.publisher->count(), static_cast<size_t>(n));
  const uint64_t loaded_skipped = SkippedDuringPass(*f.outbox, f.publisher, &loaded_us);

  f.clock->Advance(8 * kDay);
  ASSERT_OK_AND_ASSIGN(CleanReport r, f.outbox->Clean());
  EXPECT_EQ(r.removed, static_cast<uint64_t>(n));
  EXPECT_GT(r.bytes_before, static_cast<uint64_t>(n) * 20) << "the sent events took real space";
  EXPECT_LT(r.bytes_after, 64u * 1024) << "back to (nearly) an empty database";
  const uint64_t cleaned_skipped = SkippedDuringPass(*f.outbox, f.publisher, &cleaned_us);
  EXPECT_LE(loaded_skipped, fresh_skipped + 16) << "the delivered head is not scanned";
  EXPECT_LE(cleaned_skipped, fresh_skipped + 16);

  // Reopen: Open does not scan the delivered history either.
  ASSERT_OK(f.outbox->Close());
  f.Open();
  ASSERT_OK_AND_ASSIGN(s, f.outbox->FindStream("s"));
  f.Commit(s, 1);
  const uint64_t reopened_skipped = SkippedDuringPass(*f.outbox, f.publisher);
  EXPECT_LE(reopened_skipped, fresh_skipped + 16);

  RecordProperty("events", n);
  RecordProperty("bytes_before", static_cast<int>(r.bytes_before));
  RecordProperty("bytes_after", static_cast<int>(r.bytes_after));
  RecordProperty("deliver_ms", static_cast<int>(deliver_us.count() / 1000));
  // Informational (not asserted: timings belong to benchmarks).
  std::printf(
      "clean: %d events delivered in %lld ms; stream bytes before %llu after %llu; empty relay pass: fresh %lld us "
      "(skipped %llu), after delivery %lld us (skipped %llu), after clean %lld us (skipped %llu)\n",
      n, static_cast<long long>(deliver_us.count() / 1000), static_cast<unsigned long long>(r.bytes_before),
      static_cast<unsigned long long>(r.bytes_after), static_cast<long long>(fresh_us),
      static_cast<unsigned long long>(fresh_skipped), static_cast<long long>(loaded_us),
      static_cast<unsigned long long>(loaded_skipped), static_cast<long long>(cleaned_us),
      static_cast<unsigned long long>(cleaned_skipped));
}

}  // namespace
}  // namespace jaiminho
