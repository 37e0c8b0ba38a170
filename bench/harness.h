// Shared pieces of the benchmark suite: the workload parameters, scratch
// directories, and the three systems under comparison opened the same way
// everywhere (ours, raw RocksDB with our RocksDB options, SQLite).
//
//   jbench::Ours ours = jbench::OpenOurs("commit", {});
//   jbench::Raw raw = jbench::OpenRaw("commit");
//   jbench::Sqlite sql = jbench::OpenSqlite("commit", jbench::SqliteSync::kOff);
//
// Every failure aborts the benchmark binary with a message: a benchmark that
// silently measures an error path is worse than none.
#pragma once

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/statistics.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/jaiminho.h"

namespace jbench {

// The workload, from the --jm_* flags (see main.cc).
struct Config {
  bool quick = false;
  std::string dir = "jaiminho-bench-data";  // scratch databases
  size_t payload = 200;                     // event payload and business value bytes
  std::vector<int> threads = {1, 4, 16, 64};
  std::vector<size_t> backlogs = {10'000, 100'000, 1'000'000};
  size_t relay_min_events = 200'000;  // events delivered per relay measurement
  size_t latency_commits = 5000;      // per committing thread
  size_t clean_events = 1'000'000;
  size_t writevol_events = 1'000'000;  // events per write-volume pass
  size_t mqtt_events = 100'000;        // events per end-to-end MQTT run
  size_t fill_batch = 1000;            // events per transaction when filling a backlog
};
const Config& config();
Config& mutable_config();

[[noreturn]] void Die(std::string_view what);
void Check(const jaiminho::Status& s, std::string_view what);
template <class T>
T Check(jaiminho::Result<T> r, std::string_view what) {
  if (!r) Die(std::string(what) + ": " + r.error().ToString());
  return std::move(*r);
}
void Check(const rocksdb::Status& s, std::string_view what);

// An empty directory `name` under config().dir (whatever was there is removed).
std::string FreshDir(std::string_view name);
void RemoveDir(const std::string& path);

// Payload number i: config().payload printable bytes from a random pool, so
// that events differ from each other (and do not compress away) as real ones do.
std::string_view Payload(uint64_t i);
// A 16-byte key, "dev/" + 12 digits.
std::string KeyOf(uint64_t n);
// 10000 -> "10k", 1000000 -> "1M".
std::string ShortCount(size_t n);
inline constexpr std::string_view kType = "reading.v1";
inline constexpr std::string_view kStream = "telemetry";
inline constexpr std::string_view kBusiness = "devices";

// The commit workload (commit_bench, durability_bench). What each commit
// writes: a 16-byte business key unique per thread and iteration (formatted
// without allocating), the business value and the event payload
// (Payload(2i), Payload(2i + 1)).
struct Workload {
  explicit Workload(int thread) : n(static_cast<uint64_t>(thread) * 10'000'000'000ULL) {}
  void Next() {
    auto r = fmt::format_to_n(buf, sizeof buf, "dev/{:012d}", n);
    key = std::string_view(buf, r.size);
    value = Payload(2 * n);
    payload = Payload(2 * n + 1);
    ++n;
  }
  uint64_t n;
  char buf[16];
  std::string_view key, value, payload;
};

// The Workload thread of the commit each system makes before the timed loop
// (thread 0): ours reserves its first block of seqs there (one synced write
// per 65536 seqs), which would otherwise be a whole first measurement on its own.
constexpr int kWarmupThread = 99;

// Waits until RocksDB has no flush or compaction running or pending, so that
// work caused by a setup phase does not land in the timed phase.
void WaitForBackgroundWork(rocksdb::DB* db);

// --- Write volume: bytes a database wrote to its files.
// RocksDB's from its statistics tickers: WAL_FILE_BYTES (the write-ahead log),
// FLUSH_WRITE_BYTES (memtables written as SST files) and COMPACT_WRITE_BYTES
// (SST files rewritten by compactions).
struct WriteVolume {
  double wal = 0, flush = 0, compact = 0;
  double total() const { return wal + flush + compact; }
  WriteVolume operator-(const WriteVolume& o) const {
    return {.wal = wal - o.wal, .flush = flush - o.flush, .compact = compact - o.compact};
  }
};
// Statistics with tickers only (no histograms or timers: the least overhead).
std::shared_ptr<rocksdb::Statistics> NewTickerStatistics();
WriteVolume Written(const rocksdb::Statistics& stats);
// Flushes the memtables of every column family (DB::GetLiveFiles with
// flush_memtable) and waits for the flushes and the compactions they trigger,
// so that the writes a pass deferred are counted.
void FlushAndSettle(rocksdb::DB* db);

// --- Ours: an Outbox with one business family and one keep-order stream.
struct Ours {
  std::string path;
  std::unique_ptr<jaiminho::Outbox> outbox;
  jaiminho::Stream* stream = nullptr;
  jaiminho::BusinessFamily business;
  ~Ours();
};
// `options.path` and business_families are filled in.
std::unique_ptr<Ours> OpenOurs(std::string_view name, jaiminho::OutboxOptions options = {});
// Commits `n` events (no business write) in transactions of config().fill_batch;
// only the last commit syncs.
void FillOurs(Ours& ours, size_t n);

// Accepts every event at once.
class NoopPublisher final : public jaiminho::Publisher {
 public:
  jaiminho::Status Publish(const jaiminho::Event&) override { return {}; }
};

// --- Raw RocksDB with the RocksDB options our Outbox persists (read back from
// its OPTIONS file; our compaction filter is not loadable there, so raw has
// none), one column family for the business data and one for the stream.
struct Raw {
  std::string path;
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* business = nullptr;
  rocksdb::ColumnFamilyHandle* stream = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  ~Raw();
};
// `stats`, when given, is attached to the database (DBOptions::statistics).
std::unique_ptr<Raw> OpenRaw(std::string_view name, std::shared_ptr<rocksdb::Statistics> stats = nullptr);
// The bytes our Outbox stores for an event whose payload is Payload(i) (its
// envelope, read back from a reference Outbox, with the payload swapped), so
// raw writes the same values. For() reuses one buffer.
class RawEnvelope {
 public:
  RawEnvelope();
  std::string_view For(uint64_t i);

 private:
  std::string bytes_;
  size_t payload_at_ = 0;
};
// 'p' + big-endian seq, as our keys.
std::string PendingKey(uint64_t seq);
std::string SentKey(uint64_t seq);
// Writes `n` pending events (RawEnvelope) in batches of config().fill_batch.
void FillRaw(Raw& raw, size_t n);
// Events per relay batch in the baselines: RelayOptions::batch_size's default.
inline constexpr size_t kRelayBatch = 256;
// The raw relay pass: one iterator over the pending range, each value read (a
// no-op publisher), and per kRelayBatch events one WriteBatch with a
// DeleteRange of the run (`del`) or, to mark them sent, a Put of each value
// under its sent key plus the DeleteRange. Returns the events delivered.
size_t RawRelayPass(Raw& raw, bool del);
// The raw read-only pass, the floor of any relay that must read each record:
// one iterator over the pending range, each value read (a no-op publisher),
// and per kRelayBatch events one small write (a Put of the last seq under a
// cursor key in the same column family); no write per event. Returns the
// events read.
size_t RawReadPass(Raw& raw);
// Bytes one event takes in the stream family: its key plus its envelope.
size_t EventBytes();

// --- SQLite: WAL mode, a business table and an outbox table.
enum class SqliteSync { kOff, kFull };
class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() const { return s_; }
  // Steps once; returns true while there is a row. Aborts on error.
  bool Step();
  void Reset();  // reset and clear bindings
  void Bind(int i, std::string_view text);
  void BindBlob(int i, std::string_view bytes);
  void Bind(int i, int64_t v);

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

class Sqlite {
 public:
  Sqlite(std::string path, SqliteSync sync);
  ~Sqlite();
  Sqlite(const Sqlite&) = delete;
  Sqlite& operator=(const Sqlite&) = delete;
  sqlite3* db() const { return db_; }
  const std::string& path() const { return path_; }
  void Exec(std::string_view sql);
  // One business upsert and one outbox insert in one transaction.
  void Commit(std::string_view key, std::string_view value, std::string_view payload);
  // Inserts `n` outbox rows (payloads Payload(i)) in transactions of config().fill_batch.
  void Fill(size_t n);
  // The SQLite relay: per transaction, SELECT the next kRelayBatch unsent rows
  // in id order (keyset: id > last), read them (a no-op publisher), then DELETE
  // them (`del`) or set their sent_at. Returns the rows delivered.
  size_t RelayLoop(bool del, int64_t sent_at);

  // Write volume. Every commit's WAL frames are counted by a WAL hook, which
  // also runs SQLite's default automatic checkpoint (PASSIVE at 1000 frames,
  // as sqlite3_wal_autocheckpoint does) and counts the pages it copies into
  // the database file. wal_bytes: frames x (24 + page size); checkpoint_bytes:
  // checkpointed frames x page size.
  double wal_bytes() const { return static_cast<double>(wal_frames_) * (24.0 + page_size_); }
  double checkpoint_bytes() const { return static_cast<double>(ckpt_frames_) * page_size_; }
  // A TRUNCATE checkpoint, counted: every WAL frame is copied to the database.
  void Checkpoint();

 private:
  static int WalHook(void* self, sqlite3* db, const char* name, int frames);
  void CountedCheckpoint(const char* name, int mode);

  std::string path_;
  sqlite3* db_ = nullptr;
  double page_size_ = 4096;
  uint64_t wal_frames_ = 0, ckpt_frames_ = 0;
  int last_frames_ = 0;           // frames in the WAL after the last commit
  int ckpt_seen_ = 0;             // frames of the current WAL already checkpointed
  bool restart_pending_ = false;  // the WAL was fully checkpointed: the next commit restarts it
  std::unique_ptr<Stmt> begin_, commit_, put_, enqueue_;
};
// A fresh database file "<dir>/<name>/db.sqlite".
std::unique_ptr<Sqlite> OpenSqlite(std::string_view name, SqliteSync sync);

int64_t NowMicros();
// The p-quantile (0..1, nearest rank) of `v`, which it sorts; 0 when empty.
double Percentile(std::vector<double>& v, double p);
// Counters samples, p50_us, p99_us, p999_us and max_us of `us` (microseconds;
// sorted on return).
void SetLatencyCounters(benchmark::State& st, std::vector<double>& us);

double SecondsSince(std::chrono::steady_clock::time_point t0);
// CPU time of the calling thread, in seconds: beside a wall-clock time it
// tells waiting (I/O, locks, preemption by other processes) from work.
double ThreadCpuSeconds();

}  // namespace jbench
