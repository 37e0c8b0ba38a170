#include "harness.h"

#include <fmt/format.h>
#include <rocksdb/convenience.h>
#include <rocksdb/utilities/options_util.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

namespace jbench {
namespace fs = std::filesystem;

const Config& config() {
  return mutable_config();
}
Config& mutable_config() {
  static Config c;
  return c;
}

void Die(std::string_view what) {
  std::fprintf(stderr, "jaiminho-bench: %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::abort();
}

void Check(const jaiminho::Status& s, std::string_view what) {
  if (!s) Die(std::string(what) + ": " + s.error().ToString());
}

void Check(const rocksdb::Status& s, std::string_view what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.ToString());
}

std::string FreshDir(std::string_view name) {
  fs::path p = fs::path(config().dir) / std::string(name);
  std::error_code ec;
  fs::remove_all(p, ec);
  fs::create_directories(p, ec);
  if (ec) Die(fmt::format("create {}: {}", p.string(), ec.message()));
  return p.string();
}

void RemoveDir(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string_view Payload(uint64_t i) {
  constexpr size_t kPool = 1 << 20;
  static const std::string pool = [] {
    std::mt19937_64 rng(42);
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string p(kPool + config().payload, '\0');
    for (char& c : p)
      c = kAlphabet[rng() % 64];
    return p;
  }();
  return std::string_view(pool).substr((i * 7919) % kPool, config().payload);
}

std::string KeyOf(uint64_t n) {
  return fmt::format("dev/{:012d}", n % 1'000'000'000'000);
}

std::string ShortCount(size_t n) {
  if (n >= 1'000'000 && n % 1'000'000 == 0) return fmt::format("{}M", n / 1'000'000);
  if (n >= 1000 && n % 1000 == 0) return fmt::format("{}k", n / 1000);
  return fmt::format("{}", n);
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  if (!std::is_sorted(v.begin(), v.end())) std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(std::lround(p * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}

void SetLatencyCounters(benchmark::State& st, std::vector<double>& us) {
  st.counters["samples"] = static_cast<double>(us.size());
  st.counters["p50_us"] = Percentile(us, 0.50);
  st.counters["p99_us"] = Percentile(us, 0.99);
  st.counters["p999_us"] = Percentile(us, 0.999);
  st.counters["max_us"] = Percentile(us, 1.0);
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void WaitForBackgroundWork(rocksdb::DB* db) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < deadline) {
    uint64_t busy = 0, v = 0;
    for (const char* p : {"rocksdb.num-running-flushes", "rocksdb.num-running-compactions",
                          "rocksdb.mem-table-flush-pending", "rocksdb.compaction-pending"}) {
      if (db->GetAggregatedIntProperty(p, &v)) busy += v;
    }
    if (busy == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Die("RocksDB background work did not settle within 5 minutes");
}

std::shared_ptr<rocksdb::Statistics> NewTickerStatistics() {
  auto stats = rocksdb::CreateDBStatistics();
  stats->set_stats_level(rocksdb::StatsLevel::kExceptHistogramOrTimers);
  return stats;
}

WriteVolume Written(const rocksdb::Statistics& stats) {
  auto t = [&](rocksdb::Tickers ticker) { return static_cast<double>(stats.getTickerCount(ticker)); };
  return {.wal = t(rocksdb::WAL_FILE_BYTES),
          .flush = t(rocksdb::FLUSH_WRITE_BYTES),
          .compact = t(rocksdb::COMPACT_WRITE_BYTES)};
}

void FlushAndSettle(rocksdb::DB* db) {
  std::vector<std::string> files;
  uint64_t manifest_size = 0;
  Check(db->GetLiveFiles(files, &manifest_size, /*flush_memtable=*/true), "flush every column family");
  WaitForBackgroundWork(db);
}

// ---------------------------------------------------------------------------
// Ours.

Ours::~Ours() {
  if (outbox) Check(outbox->Close(), "close " + path);
  outbox.reset();
  RemoveDir(path);
}

std::unique_ptr<Ours> OpenOurs(std::string_view name, jaiminho::OutboxOptions options) {
  auto o = std::make_unique<Ours>();
  o->path = FreshDir(name);
  options.path = o->path + "/db";
  options.business_families = {{.name = std::string(kBusiness)}};
  o->outbox = Check(jaiminho::Outbox::Open(std::move(options)), "open " + o->path);
  o->stream = Check(o->outbox->OpenStream(kStream, {.strategy = jaiminho::Strategy::kKeepOrder}), "open stream");
  o->business = Check(o->outbox->FindBusinessFamily(kBusiness), "business family");
  return o;
}

void FillOurs(Ours& ours, size_t n) {
  size_t done = 0;
  while (done < n) {
    auto txn = ours.outbox->Begin();
    for (size_t i = 0; i < config().fill_batch && done < n; ++i, ++done) {
      std::string key = KeyOf(done);
      Check(txn.Enqueue(*ours.stream, {.type = kType, .key = key, .payload = Payload(done)}), "fill: enqueue");
    }
    // The last commit syncs, as an application's default commit would: the
    // relay then publishes without a WAL sync of its own.
    Check(txn.Commit({.sync = done == n}).map([](auto&&) {}), "fill: commit");
  }
}

// ---------------------------------------------------------------------------
// Raw RocksDB.

namespace {

// Our options and one envelope, read from a reference Outbox once.
struct Reference {
  rocksdb::DBOptions db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;  // with our options
  std::string envelope;                                   // of an event with payload Payload(0)
};

const Reference& Ref() {
  static Reference* ref = [] {
    auto r = new Reference;
    std::string dir;
    {
      auto ours = OpenOurs("reference");
      dir = ours->path + "/db";
      auto txn = ours->outbox->Begin();
      const std::string key = KeyOf(0);
      Check(txn.Enqueue(*ours->stream, {.type = kType, .key = key, .payload = Payload(0)}), "reference: enqueue");
      Check(txn.Commit({.sync = true}).map([](auto&&) {}), "reference: commit");
      Check(ours->outbox->Close(), "reference: close");
      ours->outbox.reset();

      rocksdb::ConfigOptions cfg;
      cfg.ignore_unknown_options = true;
      cfg.ignore_unsupported_options = true;
      cfg.env = rocksdb::Env::Default();
      Check(rocksdb::LoadLatestOptions(cfg, dir, &r->db_options, &r->families), "load our RocksDB options");
      std::vector<rocksdb::ColumnFamilyHandle*> handles;
      rocksdb::DB* db = nullptr;
      Check(rocksdb::DB::OpenForReadOnly(r->db_options, dir, r->families, &handles, &db), "reference: open raw");
      const std::string stream_family = "jaiminho.stream." + std::string(kStream);
      for (size_t i = 0; i < r->families.size(); ++i) {
        if (r->families[i].name == stream_family) {
          Check(db->Get(rocksdb::ReadOptions(), handles[i], PendingKey(1), &r->envelope), "reference: read event");
        }
      }
      for (auto* h : handles)
        db->DestroyColumnFamilyHandle(h);
      delete db;
      if (r->envelope.empty()) Die("reference: no event found in " + stream_family);
    }
    // Raw keeps the families that hold data: the business one and the stream.
    std::vector<rocksdb::ColumnFamilyDescriptor> keep;
    for (auto& f : r->families) {
      if (f.name == rocksdb::kDefaultColumnFamilyName || f.name == kBusiness ||
          f.name == "jaiminho.stream." + std::string(kStream)) {
        f.options.compaction_filter_factory = nullptr;
        f.options.compaction_filter = nullptr;
        keep.push_back(f);
      }
    }
    r->families = keep;
    r->db_options.create_if_missing = true;
    r->db_options.create_missing_column_families = true;
    r->db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
    return r;
  }();
  return *ref;
}

}  // namespace

RawEnvelope::RawEnvelope() : bytes_(Ref().envelope) {
  payload_at_ = bytes_.find(Payload(0));
  if (payload_at_ == std::string::npos) Die("reference envelope: payload not found");
}

std::string_view RawEnvelope::For(uint64_t i) {
  std::string_view p = Payload(i);
  bytes_.replace(payload_at_, p.size(), p);
  return bytes_;
}

std::string PendingKey(uint64_t seq) {
  std::string k(9, 'p');
  for (int i = 0; i < 8; ++i)
    k[1 + i] = static_cast<char>(seq >> (56 - 8 * i));
  return k;
}

std::string SentKey(uint64_t seq) {
  std::string k = PendingKey(seq);
  k[0] = 's';
  return k;
}

Raw::~Raw() {
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h);
  if (db) Check(db->Close(), "close raw " + path);
  db.reset();
  RemoveDir(path);
}

std::unique_ptr<Raw> OpenRaw(std::string_view name, std::shared_ptr<rocksdb::Statistics> stats) {
  const Reference& ref = Ref();
  auto r = std::make_unique<Raw>();
  r->path = FreshDir(name);
  rocksdb::DBOptions db_options = ref.db_options;
  db_options.statistics = std::move(stats);
  rocksdb::DB* db = nullptr;
  Check(rocksdb::DB::Open(db_options, r->path + "/db", ref.families, &r->handles, &db), "open raw " + r->path);
  r->db.reset(db);
  for (size_t i = 0; i < ref.families.size(); ++i) {
    if (ref.families[i].name == kBusiness) r->business = r->handles[i];
    if (ref.families[i].name.starts_with("jaiminho.stream.")) r->stream = r->handles[i];
  }
  if (r->business == nullptr || r->stream == nullptr) Die("raw: missing column families");
  return r;
}

void FillRaw(Raw& raw, size_t n) {
  RawEnvelope envelope;
  rocksdb::WriteBatch b;
  for (size_t seq = 1; seq <= n; ++seq) {
    std::string_view value = envelope.For(seq - 1);
    b.Put(raw.stream, PendingKey(seq), rocksdb::Slice(value.data(), value.size()));
    if (seq % config().fill_batch == 0 || seq == n) {
      rocksdb::WriteOptions wo;
      wo.sync = seq == n;  // as FillOurs
      Check(raw.db->Write(wo, &b), "raw fill");
      b.Clear();
    }
  }
}

namespace {
uint64_t SeqOf(const rocksdb::Slice& key) {
  uint64_t seq = 0;
  for (int i = 1; i <= 8; ++i)
    seq = (seq << 8) | static_cast<uint8_t>(key[i]);
  return seq;
}
}  // namespace

size_t RawRelayPass(Raw& raw, bool del) {
  rocksdb::ReadOptions ro;
  const std::string upper = "q";  // the first key after the pending range
  rocksdb::Slice ub(upper);
  ro.iterate_upper_bound = &ub;
  std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator(ro, raw.stream));
  rocksdb::WriteBatch batch;
  size_t n = 0, in_batch = 0;
  uint64_t first = 0, last = 0, touched = 0;
  auto ack = [&] {
    batch.DeleteRange(raw.stream, PendingKey(first), PendingKey(last + 1));
    Check(raw.db->Write(rocksdb::WriteOptions(), &batch), "raw ack");
    batch.Clear();
    in_batch = 0;
  };
  for (it->Seek("p"); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key(), v = it->value();
    touched += v.size() + static_cast<uint8_t>(v[0]);  // the no-op publisher reads the value
    last = SeqOf(k);
    if (in_batch++ == 0) first = last;
    if (!del) batch.Put(raw.stream, SentKey(last), v);
    ++n;
    if (in_batch == kRelayBatch) ack();
  }
  Check(it->status(), "raw iterate");
  if (in_batch > 0) ack();
  if (touched == 0 && n > 0) Die("raw pass read nothing");
  return n;
}

size_t RawReadPass(Raw& raw) {
  rocksdb::ReadOptions ro;
  const std::string upper = "q";
  rocksdb::Slice ub(upper);
  ro.iterate_upper_bound = &ub;
  std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator(ro, raw.stream));
  const std::string cursor_key = "c";  // outside the pending range
  std::string cursor(8, '\0');
  size_t n = 0, in_batch = 0;
  uint64_t last = 0, touched = 0;
  auto ack = [&] {
    for (int i = 0; i < 8; ++i)
      cursor[i] = static_cast<char>(last >> (56 - 8 * i));
    Check(raw.db->Put(rocksdb::WriteOptions(), raw.stream, cursor_key, cursor), "raw cursor put");
    in_batch = 0;
  };
  for (it->Seek("p"); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key(), v = it->value();
    touched += v.size() + static_cast<uint8_t>(v[0]);  // the no-op publisher reads the value
    last = SeqOf(k);
    ++n;
    if (++in_batch == kRelayBatch) ack();
  }
  Check(it->status(), "raw iterate");
  if (in_batch > 0) ack();
  if (touched == 0 && n > 0) Die("raw read pass read nothing");
  return n;
}

size_t EventBytes() {
  RawEnvelope envelope;
  return PendingKey(1).size() + envelope.For(0).size();
}

// ---------------------------------------------------------------------------
// SQLite.

namespace {
void SqlCheck(sqlite3* db, int rc, std::string_view what) {
  if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
    Die(fmt::format("sqlite {}: {} ({})", what, sqlite3_errmsg(db), rc));
  }
}
}  // namespace

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  SqlCheck(db, sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s_, nullptr), sql);
}
Stmt::~Stmt() {
  sqlite3_finalize(s_);
}
bool Stmt::Step() {
  int rc = sqlite3_step(s_);
  SqlCheck(db_, rc, sqlite3_sql(s_));
  if (rc == SQLITE_DONE) sqlite3_reset(s_);
  return rc == SQLITE_ROW;
}
void Stmt::Reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}
void Stmt::Bind(int i, std::string_view text) {
  SqlCheck(db_, sqlite3_bind_text(s_, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC), "bind");
}
void Stmt::BindBlob(int i, std::string_view bytes) {
  SqlCheck(db_, sqlite3_bind_blob(s_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC), "bind");
}
void Stmt::Bind(int i, int64_t v) {
  SqlCheck(db_, sqlite3_bind_int64(s_, i, v), "bind");
}

Sqlite::Sqlite(std::string path, SqliteSync sync) : path_(std::move(path)) {
  SqlCheck(
      db_,
      sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr),
      "open " + path_);
  Exec("PRAGMA journal_mode=WAL");
  {
    Stmt page_size(db_, "PRAGMA page_size");
    if (page_size.Step()) page_size_ = static_cast<double>(sqlite3_column_int64(page_size.get(), 0));
    page_size.Reset();
  }
  // Replaces the default hook (sqlite3_wal_autocheckpoint's) by one that does
  // the same and counts.
  sqlite3_wal_hook(db_, &Sqlite::WalHook, this);
  Exec(sync == SqliteSync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF");
  // The business table is a key-value table (one b-tree); the outbox table is
  // django-jaiminho's Event model: rowid order is commit order.
  Exec("CREATE TABLE IF NOT EXISTS business(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID");
  Exec(
      "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY, stream TEXT NOT NULL, type TEXT NOT NULL, "
      "key TEXT, payload BLOB, encoding TEXT, created_at INTEGER NOT NULL, sent_at INTEGER)");
  begin_ = std::make_unique<Stmt>(db_, "BEGIN");
  commit_ = std::make_unique<Stmt>(db_, "COMMIT");
  put_ = std::make_unique<Stmt>(db_, "INSERT OR REPLACE INTO business(key, value) VALUES(?1, ?2)");
  enqueue_ = std::make_unique<Stmt>(
      db_, "INSERT INTO outbox(stream, type, key, payload, encoding, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
}

Sqlite::~Sqlite() {
  begin_.reset();
  commit_.reset();
  put_.reset();
  enqueue_.reset();
  sqlite3_close(db_);
  RemoveDir(fs::path(path_).parent_path().string());
}

void Sqlite::Exec(std::string_view sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    Die(fmt::format("sqlite {}: {}", sql, msg));
  }
}

void Sqlite::Commit(std::string_view key, std::string_view value, std::string_view payload) {
  begin_->Step();
  put_->Bind(1, key);
  put_->BindBlob(2, value);
  put_->Step();
  enqueue_->Bind(1, kStream);
  enqueue_->Bind(2, kType);
  enqueue_->Bind(3, key);
  enqueue_->BindBlob(4, payload);
  enqueue_->Bind(5, std::string_view("application/octet-stream"));
  enqueue_->Bind(6, NowMicros());
  enqueue_->Step();
  commit_->Step();
}

void Sqlite::Fill(size_t n) {
  size_t done = 0;
  while (done < n) {
    begin_->Step();
    for (size_t i = 0; i < config().fill_batch && done < n; ++i, ++done) {
      std::string key = KeyOf(done);
      enqueue_->Bind(1, kStream);
      enqueue_->Bind(2, kType);
      enqueue_->Bind(3, key);
      enqueue_->BindBlob(4, Payload(done));
      enqueue_->Bind(5, std::string_view("application/octet-stream"));
      enqueue_->Bind(6, NowMicros());
      enqueue_->Step();
    }
    commit_->Step();
  }
}

int Sqlite::WalHook(void* self, sqlite3* /*db*/, const char* name, int frames) {
  auto* s = static_cast<Sqlite*>(self);
  if (s->restart_pending_) {  // this commit restarted the WAL: all its frames are new
    s->wal_frames_ += static_cast<uint64_t>(frames);
    s->restart_pending_ = false;
    s->ckpt_seen_ = 0;
  } else {
    s->wal_frames_ += static_cast<uint64_t>(std::max(0, frames - s->last_frames_));
  }
  s->last_frames_ = frames;
  if (frames >= 1000) s->CountedCheckpoint(name, SQLITE_CHECKPOINT_PASSIVE);
  return SQLITE_OK;
}

void Sqlite::CountedCheckpoint(const char* name, int mode) {
  int log = 0, ckpt = 0;
  int rc = sqlite3_wal_checkpoint_v2(db_, name, mode, &log, &ckpt);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) SqlCheck(db_, rc, "wal checkpoint");
  if (ckpt > ckpt_seen_) ckpt_frames_ += static_cast<uint64_t>(ckpt - ckpt_seen_);
  ckpt_seen_ = std::max(ckpt, 0);
  if (log >= 0 && ckpt == log) restart_pending_ = true;
}

void Sqlite::Checkpoint() {
  // PASSIVE first: a TRUNCATE checkpoint reports 0 frames once it has reset the WAL.
  CountedCheckpoint(nullptr, SQLITE_CHECKPOINT_PASSIVE);
  CountedCheckpoint(nullptr, SQLITE_CHECKPOINT_TRUNCATE);
}

size_t Sqlite::RelayLoop(bool del, int64_t sent_at) {
  Stmt select(db_, fmt::format("SELECT id, stream, type, key, payload, encoding, created_at FROM outbox "
                               "WHERE id > ?1 AND sent_at IS NULL ORDER BY id LIMIT {}",
                               kRelayBatch));
  Stmt ack(db_, del ? "DELETE FROM outbox WHERE id > ?1 AND id <= ?2"
                    : "UPDATE outbox SET sent_at = ?3 WHERE id > ?1 AND id <= ?2");
  int64_t last = 0;
  size_t n = 0;
  uint64_t touched = 0;
  while (true) {
    begin_->Step();
    select.Bind(1, last);
    int64_t id = last;
    while (select.Step()) {
      id = sqlite3_column_int64(select.get(), 0);
      auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(select.get(), 4));
      touched += static_cast<uint64_t>(sqlite3_column_bytes(select.get(), 4)) + (p ? p[0] : 0);
      touched += static_cast<uint64_t>(sqlite3_column_bytes(select.get(), 2) + sqlite3_column_bytes(select.get(), 3));
      ++n;
    }
    if (id == last) {
      commit_->Step();
      break;
    }
    ack.Bind(1, last);
    ack.Bind(2, id);
    if (!del) ack.Bind(3, sent_at);
    ack.Step();
    commit_->Step();
    last = id;
  }
  if (touched == 0 && n > 0) Die("sqlite loop read nothing");
  return n;
}

std::unique_ptr<Sqlite> OpenSqlite(std::string_view name, SqliteSync sync) {
  std::string dir = FreshDir(name);
  return std::make_unique<Sqlite>(dir + "/db.sqlite", sync);
}

}  // namespace jbench
