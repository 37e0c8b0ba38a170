// Outbox::Clean and the periodic maintenance pass (internal::Cleaner).
#include "clean/cleaner.h"

#include <fmt/format.h>
#include <rocksdb/db.h>

#include <algorithm>

#include "core/outbox_impl.h"
#include "storage/check.h"
#include "storage/delivery_log.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/status.h"
#include "storage/stream_reader.h"
#include "util/macros.h"

namespace jaiminho {

namespace {

Result<uint64_t> LiveBytes(rocksdb::DB* db, const std::vector<Stream*>& streams) {
  uint64_t total = 0;
  for (Stream* s : streams) {
    uint64_t v = 0;
    if (!db->GetIntProperty(StreamAccess::Of(*s).cf, "rocksdb.live-sst-files-size", &v)) {
      return MakeError(ErrorCode::kInternal, fmt::format("stream '{}': no live-sst-files-size property", s->name()));
    }
    total += v;
  }
  return total;
}

Status CompactKeys(rocksdb::DB* db, StreamState& s, std::string_view begin, std::string_view end) {
  if (begin >= end) return {};
  rocksdb::CompactRangeOptions o;
  // Rewrite the bottom level too: that is where old sent events and the
  // delivered head's tombstones end up.
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  rocksdb::Slice b(begin.data(), begin.size()), e(end.data(), end.size());
  return internal::ToStatus(db->CompactRange(o, s.cf, &b, &e), fmt::format("compact stream '{}'", s.name));
}

// Format 2 (storage/delivery_log.h): the delivered pending keys whose runs
// are past time_to_delete (or that no run covers), and those runs, compacted
// away once their boundary has moved since the last pass.
Status CompactDeliveredPrefix(rocksdb::DB* db, StreamState& st, int64_t now_us, int64_t ttd_us) {
  int64_t limit = 0;
  if (__builtin_sub_overflow(now_us, ttd_us, &limit)) limit = std::numeric_limits<int64_t>::min();
  const internal::CleanerState::Delivered d = st.cleaner->delivered();
  uint64_t boundary = d.cursor;
  for (const internal::SentRun& r : d.runs.runs()) {
    if (r.sent_at_us >= limit) {
      boundary = std::min(boundary, r.first);
      break;
    }
  }
  if (boundary > st.cleaner->compacted_below.load()) {
    internal::KeyBuf lo = internal::SeqKey(internal::kPendingTag, 0);
    internal::KeyBuf hi = internal::SeqKey(internal::kPendingTag, boundary);
    JM_RETURN_IF_ERROR(CompactKeys(db, st, lo.view(), hi.view()));
    internal::KeyBuf log_lo = internal::RunKey(0);
    internal::KeyBuf log_hi = internal::RunKey(boundary);
    JM_RETURN_IF_ERROR(CompactKeys(db, st, log_lo.view(), log_hi.view()));
    st.cleaner->compacted_below.store(boundary);
  }
  st.cleaner->ForgetExpiredRuns(limit);
  return {};
}

}  // namespace

namespace internal {

Cleaner::~Cleaner() {
  Stop();
}

void Cleaner::Start() {
  MutexLock l(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Loop(); });
}

void Cleaner::Stop() {
  std::thread thread;
  {
    MutexLock l(mu_);
    stop_ = true;
    thread = std::move(thread_);
  }
  cv_.SignalAll();
  if (thread.joinable()) thread.join();
}

Result<CleanReport> Cleaner::Clean() {
  auto& db = o_.db;
  CleanReport report;
  auto streams = o_.Streams();
  if (streams.empty()) return report;
  uint64_t removed0 = 0, corrupt0 = 0;
  for (Stream* s : streams) {
    StreamState& st = StreamAccess::Of(*s);
    removed0 += st.cleaner->removed.load();
    corrupt0 += st.cleaner->kept_corrupt.load();
  }
  // Every family, not only the streams: a write-ahead log file is deleted
  // only once every family with writes in it is flushed. Flushing the streams
  // alone gave back their SST bytes but kept the whole log.
  JM_RETURN_IF_ERROR(FlushAll());
  JM_ASSIGN_OR_RETURN(report.bytes_before, LiveBytes(db.get(), streams));
  for (Stream* s : streams) {
    StreamState& st = StreamAccess::Of(*s);
    // The delivered head (below the persisted cursor), the delivery log and
    // the sent range.
    KeyBuf head_lo = internal::SeqKey(internal::kPendingTag, 0);
    KeyBuf head_hi = internal::SeqKey(internal::kPendingTag, st.cleaner->delivered().cursor);
    JM_RETURN_IF_ERROR(CompactKeys(db.get(), st, head_lo.view(), head_hi.view()));
    KeyBuf log_lo = internal::RunKey(0);
    KeyBuf log_hi = internal::TagEnd(internal::kRunTag);
    JM_RETURN_IF_ERROR(CompactKeys(db.get(), st, log_lo.view(), log_hi.view()));
    KeyBuf sent_lo = internal::SeqKey(internal::kSentTag, 0);
    KeyBuf sent_hi = internal::TagEnd(internal::kSentTag);
    JM_RETURN_IF_ERROR(CompactKeys(db.get(), st, sent_lo.view(), sent_hi.view()));
  }
  JM_ASSIGN_OR_RETURN(report.bytes_after, LiveBytes(db.get(), streams));
  uint64_t removed1 = 0, corrupt1 = 0;
  for (Stream* s : streams) {
    removed1 += StreamAccess::Of(*s).cleaner->removed.load();
    corrupt1 += StreamAccess::Of(*s).cleaner->kept_corrupt.load();
  }
  report.removed = removed1 - removed0;
  report.kept_corrupt = corrupt1 - corrupt0;
  return report;
}

Status Cleaner::FlushAll() {
  std::vector<rocksdb::ColumnFamilyHandle*> all = OtherFamilies();
  for (Stream* s : o_.Streams())
    all.push_back(StreamAccess::Of(*s).cf);
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return internal::ToStatus(o_.db->Flush(fo, all), fmt::format("flush the families of {}", o_.options.path));
}

std::vector<rocksdb::ColumnFamilyHandle*> Cleaner::OtherFamilies() const {
  std::vector<rocksdb::ColumnFamilyHandle*> out{o_.meta_cf, o_.db->DefaultColumnFamily()};
  for (const auto& [name, info] : o_.business) {
    if (std::find(out.begin(), out.end(), info.handle) == out.end()) out.push_back(info.handle);
  }
  return out;
}

Status Cleaner::Maintain() {
  auto& db = o_.db;
  // The durable watermark (storage/check.h), so that WAL damage is detected
  // after a crash too, not only after a clean Close: what is written now is
  // synced first.
  // A failure here is reported and does not stop the cleaning below.
  const uint64_t sequence = db->GetLatestSequenceNumber();
  if (auto synced = o_.SyncWal(); !synced) {
    o_.Capture(synced.error());
  } else if (auto w = internal::WriteDurableWatermark(o_.options.path, sequence); !w) {
    o_.Capture(w.error());
  }
  // The other families' writes, flushed too: until they are, the log files
  // holding them (and every event beside them) stay on disk.
  for (auto* cf : OtherFamilies()) {
    uint64_t mem_entries = 0;
    if (db->GetIntProperty(cf, "rocksdb.num-entries-active-mem-table", &mem_entries) && mem_entries > 0) {
      rocksdb::FlushOptions fo;
      fo.wait = true;
      JM_RETURN_IF_ERROR(internal::ToStatus(db->Flush(fo, cf), fmt::format("flush family '{}'", cf->GetName())));
    }
  }
  const int64_t now = ToMicros(o_.Now());
  for (Stream* s : o_.Streams()) {
    StreamState& st = StreamAccess::Of(*s);
    uint64_t mem_entries = 0;
    if (db->GetIntProperty(st.cf, "rocksdb.num-entries-active-mem-table", &mem_entries) && mem_entries > 0) {
      rocksdb::FlushOptions fo;
      fo.wait = true;
      JM_RETURN_IF_ERROR(internal::ToStatus(db->Flush(fo, st.cf), fmt::format("flush stream '{}'", st.name)));
    }
    const int64_t ttd = st.cleaner->time_to_delete_us.load();
    JM_RETURN_IF_ERROR(CompactDeliveredPrefix(db.get(), st, now, ttd));
    // The expired prefix of the sent range (in seq order), compacted away.
    const CleanerState::Delivered delivered = st.cleaner->delivered();
    KeyBuf lo = internal::SeqKey(internal::kSentTag, 0);
    KeyBuf hi = internal::TagEnd(internal::kSentTag);
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    internal::StateRange it(db.get(), st.cf, EventState::kSent, {}, ro);
    std::optional<uint64_t> first_live;
    uint64_t expired = 0;
    for (; it.Valid(); it.Next()) {
      bool corrupt = false;
      if (!internal::ShouldDrop(it.raw_key(), it.value(), now, ttd, delivered, &corrupt)) {
        auto k = it.key();
        first_live = k ? k->seq : 0;
        break;
      }
      ++expired;
    }
    JM_RETURN_IF_ERROR(it.status(fmt::format("scan sent events of stream '{}'", st.name)));
    if (expired == 0) continue;
    KeyBuf end = first_live ? internal::SeqKey(internal::kSentTag, *first_live) : hi;
    JM_RETURN_IF_ERROR(CompactKeys(db.get(), st, lo.view(), end.view()));
  }
  return {};
}

void Cleaner::Loop() {
  MutexLock l(mu_);
  while (!stop_) {
    const auto deadline = std::chrono::steady_clock::now() + o_.options.clean_interval;
    while (!stop_ && cv_.WaitUntil(mu_, deadline)) {
    }
    if (stop_) break;
    mu_.Unlock();
    if (auto s = Maintain(); !s) o_.Capture(s.error());
    mu_.Lock();
  }
}

}  // namespace internal

}  // namespace jaiminho
