#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>

#include <cstring>

#include "clean/cleaner.h"
#include "storage/delivery_log.h"
#include "storage/envelope.h"
#include "storage/keys.h"

namespace jaiminho::internal {

bool ShouldDrop(std::string_view key, std::string_view value, int64_t now_us, int64_t ttd_us,
                const CleanerState::Delivered& delivered, bool* corrupt) {
  *corrupt = false;
  if (key.size() != 9) return false;
  // As the seed: sent_at strictly before now - time_to_delete (saturated: a
  // huge time_to_delete never drops anything sent).
  int64_t limit = 0;
  const bool can_expire = !__builtin_sub_overflow(now_us, ttd_us, &limit);
  auto expired = [&](int64_t sent_at) { return can_expire && sent_at > 0 && sent_at < limit; };
  switch (key[0]) {
    case kPendingTag: {
      // Format 2: delivered events stay under their pending key
      // (storage/delivery_log.h).
      const PendingKeyState st = ClassifyPendingKey(GetBigEndian64(key.data() + 1), delivered.cursor, delivered.runs);
      if (st.kind == PendingKeyState::kGone) return true;
      return st.kind == PendingKeyState::kSent && expired(st.sent_at_us);
    }
    case kRunTag: {
      auto run = DecodeRun(key, value);
      if (!run) {
        *corrupt = true;
        return false;
      }
      // Once every event it covers is delivered and past time_to_delete.
      return run->last < delivered.cursor && expired(run->sent_at_us);
    }
    case kSentTag: {
      // Values handed to the filter are not aligned: verify an aligned copy.
      thread_local AlignedArena arena;
      arena.Reset();
      auto d = DecodeEnvelope(arena.Copy(value));
      if (!d) {
        *corrupt = true;
        return false;
      }
      return expired(ToMicros(d->event.sent_at));
    }
    default:
      return false;
  }
}

namespace {

class SentEventFilter final : public rocksdb::CompactionFilter {
 public:
  // `count_corrupt`: a corrupt record is counted (CleanerState::kept_corrupt)
  // by compactions, not by the flush that writes it first.
  SentEventFilter(std::shared_ptr<CleanerState> state, int64_t now_us, bool count_corrupt)
      : state_(std::move(state)),
        now_us_(now_us),
        count_corrupt_(count_corrupt),
        ttd_us_(state_->time_to_delete_us.load()),
        delivered_(state_->delivered()) {}

  Decision FilterV2(int /*level*/, const rocksdb::Slice& key, ValueType type, const rocksdb::Slice& value,
                    std::string* /*new_value*/, std::string* /*skip_until*/) const override {
    if (type != ValueType::kValue) return Decision::kKeep;
    bool corrupt = false;
    // Exceptions must not propagate into RocksDB: nothing below throws except
    // allocation failure, in which case keeping the record is the safe answer.
    try {
      if (ShouldDrop(key.ToStringView(), value.ToStringView(), now_us_, ttd_us_, delivered_, &corrupt)) {
        // Counts events; the delivery log's run records are not events.
        if (!key.starts_with(rocksdb::Slice(&kRunTag, 1))) state_->removed.fetch_add(1, std::memory_order_relaxed);
        return Decision::kRemove;
      }
    } catch (...) {
      return Decision::kKeep;
    }
    if (corrupt && count_corrupt_) state_->kept_corrupt.fetch_add(1, std::memory_order_relaxed);
    return Decision::kKeep;
  }
  const char* Name() const override { return "jaiminho.SentEventFilter"; }

 private:
  std::shared_ptr<CleanerState> state_;
  const int64_t now_us_;
  const bool count_corrupt_;
  const int64_t ttd_us_;
  const CleanerState::Delivered delivered_;  // as of the compaction's start
};

class SentEventFilterFactory final : public rocksdb::CompactionFilterFactory {
 public:
  explicit SentEventFilterFactory(std::shared_ptr<CleanerState> state) : state_(std::move(state)) {}
  // Flushes too (RocksDB filters compactions only by default): a delivered
  // event already past time_to_delete when its memtable is flushed (with
  // delete_after_send: every delivered one) is never written to a table file,
  // so a relay that keeps up costs no table bytes, and Clean() need not read
  // it back. The decision is the compactions' (ShouldDrop), on the same
  // durable cursor and runs: a dropped key's WAL is not replayed once its
  // family's flush is recorded.
  bool ShouldFilterTableFileCreation(rocksdb::TableFileCreationReason reason) const override {
    return reason == rocksdb::TableFileCreationReason::kFlush ||
           reason == rocksdb::TableFileCreationReason::kCompaction;
  }
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override {
    // One clock reading per compaction: consistent decisions within it.
    return std::make_unique<SentEventFilter>(state_, ToMicros(state_->clock->Now()),
                                             context.reason != rocksdb::TableFileCreationReason::kFlush);
  }
  const char* Name() const override { return "jaiminho.SentEventFilterFactory"; }

 private:
  std::shared_ptr<CleanerState> state_;
};

}  // namespace

std::shared_ptr<rocksdb::CompactionFilterFactory> NewSentEventFilterFactory(std::shared_ptr<CleanerState> state) {
  return std::make_shared<SentEventFilterFactory>(std::move(state));
}

rocksdb::ColumnFamilyOptions StreamFamilyOptions(const std::shared_ptr<CleanerState>& state) {
  rocksdb::ColumnFamilyOptions o;
  // Queue-shaped data: written once, read once from the head, then deleted or
  // moved. Small memtables keep recovery quick on gateways.
  o.write_buffer_size = 16 << 20;
  // Three memtables, not two: the log's size limit (max_total_wal_size, in
  // DbOptions) can switch a stream's memtable while the previous one is still
  // being flushed, and with two RocksDB then stops every write until that flush
  // ends (44-69 ms commit stalls in durability/none, against at most 17 ms).
  o.max_write_buffer_number = 3;
  // Read in key order, in runs (the relay, the cleaner's compactions), and by
  // key only by an operator: 64 KiB blocks instead of 4 KiB. A pass over a
  // flushed backlog then pays one block fetch (read, checksum, decompression,
  // index step) per ~150 records of 400 bytes instead of per ~10, which was most
  // of a relay pass at 1M records (bench/RESULTS.md: relay_*_1M, rawread); the
  // index is 16 times smaller. A point read (jaiminho-tool, requeue, skip)
  // decompresses one 64 KiB block. Only new files are written with it: a
  // database's existing files keep theirs (RocksDB reads any block size).
  {
    rocksdb::BlockBasedTableOptions t;
    t.block_size = 64 << 10;
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  }
  // LZ4, not Snappy (RocksDB's default): it decompresses our envelopes about
  // twice as fast, and a relay pass over a flushed backlog reads every block
  // (decompression was a fifth of a pass over 1M with Snappy). The tables are
  // no larger (1M events of 200 random bytes: 217 MB against 218) and smaller
  // for repetitive text (the JSON readings of tests/reliability: ~70 bytes an
  // event against ~240). Still compressed at every level: a full disk
  // recovers by flushing a memtable into the little space that comes back
  // (FullDiskTmpfs.*). Existing files keep their compression.
  o.compression = rocksdb::kLZ4Compression;
  o.compaction_filter_factory = NewSentEventFilterFactory(state);
  // A filter makes RocksDB default periodic compaction to 30 days; say it: files
  // are revisited once per time_to_delete (at least daily), a backstop to the
  // maintenance pass (OutboxOptions::clean_interval).
  o.periodic_compaction_seconds =
      std::max<uint64_t>(86400, static_cast<uint64_t>(state->time_to_delete_us.load() / 1'000'000));
  // Files whose entries are mostly deletions (the delivered head of the queue)
  // are compacted soon, so tombstones do not pile up in front of the cursor.
  o.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/4096, /*deletion_trigger=*/2048));
  return o;
}

}  // namespace jaiminho::internal
