#include "commit/committer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "clean/cleaner.h"
#include "core/outbox_impl.h"
#include "core/transaction_internal.h"
#include "delivery/inline.h"
#include "sign/signer.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/status.h"
#include "storage/write_recovery.h"
#include "util/macros.h"

namespace jaiminho {
namespace {
constexpr uint64_t kSeqReservation = 1 << 16;

// A small number per thread, for telling a group's threads apart.
uint32_t ThreadNumber() {
  static std::atomic<uint32_t> next{1};
  thread_local const uint32_t n = next.fetch_add(1, std::memory_order_relaxed);
  return n;
}
constexpr size_t kMaxGroupBytes = 1 << 20;
// Gather gives up once no writer joined the queue for this long.
constexpr std::chrono::microseconds kGatherStall{20};
}  // namespace

Committer::Committer(OutboxImpl* outbox) : outbox_(outbox), what_(fmt::format("commit to {}", outbox->options.path)) {}

size_t Committer::SizeOf(const Transaction& t) {
  return TransactionInternal::ArenaSize(t) +
         24 * (TransactionInternal::Ops(t).size() + TransactionInternal::Events(t).size()) +
         64 * TransactionInternal::Hooks(t).size();
}

void Committer::Wake(Writer* w, uint32_t state) {
  w->state.Set(state);
}

Result<Committer::Written> Committer::Commit(Transaction& txn, bool sync) {
  std::vector<internal::DropPlan> drops;
  HeldStreams held;
  JM_RETURN_IF_ERROR(CheckQuotas(txn, drops, held));
  JM_RETURN_IF_ERROR(AdmitToDisk(txn));
  Writer w;
  w.txn = &txn;
  w.sync = sync;
  w.drops = &drops;
  w.thread = ThreadNumber();
  // Leader: takes a group from the front. A non-sync group never takes a sync
  // writer (its commit would be acknowledged before reaching the disk); a sync
  // group takes everyone. Small non-sync writes keep their group small so they
  // do not wait behind large ones.
  size_t size = SizeOf(txn);
  const size_t max_size = w.sync ? 4 * kMaxGroupBytes : std::min(kMaxGroupBytes, size + (128 << 10));
  // A list of this thread's (not a member: once the group leaves the queue, a
  // new writer can find it empty and lead at once, while this leader still
  // wakes its members), kept from commit to commit: no allocation once warm.
  thread_local std::vector<Writer*> group_of_thread;
  std::vector<Writer*>& group = group_of_thread;
  group.assign(1, &w);
  auto take_group = [&]() REQUIRES(mu_) {
    for (auto it = writers_.begin() + 1; it != writers_.end(); ++it) {
      Writer* o = *it;
      if (o->sync && !w.sync) break;
      size += SizeOf(*o->txn);
      if (size > max_size) break;
      group.push_back(o);
    }
  };
  bool leader = false;
  {
    internal::MutexLock l(mu_);
    writers_.push_back(&w);
    queued_.store(writers_.size(), std::memory_order_release);
    leader = writers_.front() == &w;
    // A non-sync leader takes its group at once (one lock a commit less).
    if (leader && !w.sync) take_group();
  }
  if (!leader) {
    if (w.state.WaitWhile(kWaiting) == kDone) {
      if (w.error) return tl::unexpected(*w.error);
      Dropped(drops);
      return w.result;
    }
  }
  // A sync leader first gathers the writers on their way (Gather), and a
  // writer made leader by the previous one takes its group now.
  if (w.sync || !leader) {
    if (w.sync) Gather();
    internal::MutexLock l(mu_);
    take_group();
  }

  std::chrono::steady_clock::time_point write_start;
  if (w.sync) write_start = std::chrono::steady_clock::now();
  Result<Written> st = WriteGroup(group, w.sync);
  if (w.sync) {
    last_sync_write_ns_ =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - write_start).count();
    group_threads_.clear();
    for (Writer* o : group)
      group_threads_.push_back(o->thread);
    std::sort(group_threads_.begin(), group_threads_.end());
  }

  Writer* next = nullptr;
  {
    internal::MutexLock l(mu_);
    writers_.erase(writers_.begin(), writers_.begin() + static_cast<std::ptrdiff_t>(group.size()));
    queued_.store(writers_.size(), std::memory_order_release);
    if (!writers_.empty()) next = writers_.front();
  }
  // The next leader first: its write and sync then overlap the wake-ups
  // below, which cost a system call each.
  if (next != nullptr) Wake(next, kLeader);
  for (size_t i = 1; i < group.size(); ++i) {
    Writer* o = group[i];
    if (st) {
      o->result = *st;
    } else {
      o->error = st.error();
    }
    Wake(o, kDone);
  }

  if (st) {
    Dropped(drops);
    outbox_->WakeRelays();
  }
  return st;
}

void Committer::Gather() {
  if (last_sync_write_ns_ == 0 || group_threads_.size() < 2) return;
  size_t expect = 0;
  {
    internal::MutexLock l(mu_);
    scratch_.assign(group_threads_.begin(), group_threads_.end());
    for (Writer* o : writers_)
      scratch_.push_back(o->thread);
    std::sort(scratch_.begin(), scratch_.end());
    expect = static_cast<size_t>(std::unique(scratch_.begin(), scratch_.end()) - scratch_.begin());
    if (writers_.size() >= expect) return;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::min<int64_t>(last_sync_write_ns_ / 4, 200'000));
  size_t seen = queued_.load(std::memory_order_acquire);
  auto grew = std::chrono::steady_clock::now();
  while (seen < expect) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    if (now - grew > kGatherStall) break;  // they are not on their way: no use waiting
    std::this_thread::yield();
    const size_t q = queued_.load(std::memory_order_acquire);
    if (q != seen) {
      seen = q;
      grew = std::chrono::steady_clock::now();
    }
  }
}

Committer::HeldStreams::~HeldStreams() NO_THREAD_SAFETY_ANALYSIS {
  for (StreamState* s : held_)
    s->delivery_mu.Unlock();
}

void Committer::HeldStreams::Hold(StreamState& s) NO_THREAD_SAFETY_ANALYSIS {
  s.delivery_mu.Lock();
  held_.push_back(&s);
}

void Committer::Dropped(const std::vector<internal::DropPlan>& drops) {
  for (const internal::DropPlan& d : drops) {
    if (d.events == 0) continue;
    StreamState& s = *d.stream;
    s.waiting_events.fetch_sub(static_cast<int64_t>(d.events), std::memory_order_relaxed);
    s.waiting_bytes.fetch_sub(static_cast<int64_t>(d.bytes), std::memory_order_relaxed);
    s.dropped.fetch_add(d.events, std::memory_order_relaxed);
    outbox_->Notify([&](Observer& o) { o.OnDropped(s.name, d.first_seq, d.last_seq, d.events); });
    outbox_->Log({.level = LogLevel::kWarn,
                  .message = "dropped the oldest events for the quota",
                  .stream = s.name,
                  .fields = {{"first_seq", std::to_string(d.first_seq)},
                             {"last_seq", std::to_string(d.last_seq)},
                             {"events", std::to_string(d.events)},
                             {"bytes", std::to_string(d.bytes)}}});
  }
}

Result<Committer::Written> Committer::WriteGroup(const std::vector<Writer*>& group, bool sync) {
  // An earlier write (or a flush) failed and RocksDB stopped accepting
  // writes: ask it to resume first (the fault may have cleared).
  JM_RETURN_IF_ERROR(outbox_->recovery->ResumeIfStopped(outbox_->db.get(), what_));
  batch_.Clear();
  AssignSeqs(group);
  // A new reservation must reach the disk before any seq beyond the old one is used.
  if (ReserveSeqs()) sync = true;
  // Claim publish-on-commit events for inline publishing before they are visible.
  const bool claim = sync && outbox_->inline_publisher->enabled();
  if (claim) {
    for (Writer* w : group)
      outbox_->inline_publisher->Claim(*w->txn);
  }
  AddWrites(group);

  rocksdb::WriteOptions wo;
  wo.sync = sync;
  auto s = outbox_->db->Write(wo, &batch_);
  if (!s.ok()) {
    Undo(group, claim);
    for (Writer* w : group) {
      for (auto& h : TransactionInternal::Hooks(*w->txn))
        h->Unwritten();
    }
    Error e = outbox_->recovery->WriteFailed(s, what_);
    if (!write_failing_.exchange(true, std::memory_order_relaxed)) {
      outbox_->Log({.level = LogLevel::kError, .message = "commit writes fail", .error = &e});
    }
    return tl::unexpected(std::move(e));
  }
  if (write_failing_.load(std::memory_order_relaxed) && write_failing_.exchange(false, std::memory_order_relaxed)) {
    outbox_->Log({.level = LogLevel::kInfo, .message = "commit writes succeed again"});
  }
  // Hooks learn of the write before the next group is prepared.
  for (Writer* w : group) {
    for (auto& h : TransactionInternal::Hooks(*w->txn))
      h->Written();
  }
  return AfterWrite(sync);
}

namespace {
int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Status Committer::AdmitToDisk(const Transaction& t) {
  Status admitted = outbox_->disk_guard->Admit(SizeOf(t));
  if (!admitted && admitted.error().code() == ErrorCode::kResourceExhausted) {
    // Below the reserve: first give back what the memtables hold for nothing
    // (records deleted or dropped since the last flush, and the write-ahead
    // log files they keep), at most once a second, then look again.
    // At most once a second, or sooner once commits wrote a quarter of the
    // reserve since the last flush (at a gateway's burst rates a second of
    // commits can be several times the reserve; a full disk admits nothing,
    // so then it stays once a second).
    const int64_t now = NowMicros();
    int64_t last = last_reclaim_us_.load(std::memory_order_relaxed);
    const bool due = now - last >= 1'000'000 ||
                     admitted_since_reclaim_.load(std::memory_order_relaxed) >= outbox_->disk_guard->reserve() / 4;
    if (due && last_reclaim_us_.compare_exchange_strong(last, now)) {
      admitted_since_reclaim_.store(0, std::memory_order_relaxed);
      if (auto flushed = outbox_->maintenance->FlushAll(); flushed) {
        admitted = outbox_->disk_guard->Admit(SizeOf(t));
      }
    }
  }
  if (admitted) admitted_since_reclaim_.fetch_add(SizeOf(t), std::memory_order_relaxed);
  if (!admitted) {
    if (!disk_refusing_.exchange(true, std::memory_order_relaxed)) {
      outbox_->Log({.level = LogLevel::kWarn,
                    .message = "commits refused: free space below the reserve",
                    .error = &admitted.error()});
    }
  } else if (disk_refusing_.load(std::memory_order_relaxed) &&
             disk_refusing_.exchange(false, std::memory_order_relaxed)) {
    outbox_->Log({.level = LogLevel::kInfo, .message = "commits resumed: free space above the reserve"});
  }
  return admitted;
}

Status Committer::QuotaRefused(StreamState& s, Error e) {
  if (!s.quota_refusing.exchange(true, std::memory_order_relaxed)) {
    outbox_->Log(
        {.level = LogLevel::kWarn, .message = "stream over its quota: commits refused", .stream = s.name, .error = &e});
  }
  return tl::unexpected(std::move(e));
}

Status Committer::CheckQuotas(const Transaction& t, std::vector<internal::DropPlan>& drops,
                              HeldStreams& held) NO_THREAD_SAFETY_ANALYSIS {
  const auto& events = TransactionInternal::Events(t);
  struct ToDrop {
    StreamState* stream;
    uint64_t events, bytes;
  };
  std::vector<ToDrop> to_drop;
  for (size_t i = 0; i < events.size(); ++i) {
    StreamState& s = StreamAccess::Of(*events[i].stream);
    const uint64_t max_events = s.quota_events(), max_bytes = s.quota_bytes();
    if (max_events == 0 && max_bytes == 0) continue;
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j)
      seen = events[j].stream == events[i].stream;
    if (seen) continue;
    uint64_t n = 0, bytes = 0;
    for (size_t j = i; j < events.size(); ++j) {
      if (events[j].stream != events[i].stream) continue;
      ++n;
      bytes += events[j].bytes;
    }
    const uint64_t waiting = s.WaitingEvents();
    const uint64_t waiting_bytes = s.WaitingBytes();
    auto refuse = [&](std::string_view what, uint64_t usage, uint64_t adds, uint64_t limit) -> Status {
      Error e(ErrorCode::kResourceExhausted,
              fmt::format("stream '{}' quota: {} {} waiting for delivery, this commit adds {}, the limit is {} "
                          "(StreamOptions::quota, policy reject); nothing was written",
                          s.name, usage, what, adds, limit));
      return QuotaRefused(s, std::move(e));
    };
    const bool over =
        (max_events != 0 && waiting + n > max_events) || (max_bytes != 0 && waiting_bytes + bytes > max_bytes);
    if (over && s.quota_policy() == QuotaPolicy::kDropOldest) {
      to_drop.push_back({&s, n, bytes});
      continue;
    }
    if (max_events != 0 && waiting + n > max_events) return refuse("events", waiting, n, max_events);
    if (max_bytes != 0 && waiting_bytes + bytes > max_bytes) return refuse("bytes", waiting_bytes, bytes, max_bytes);
    if (s.quota_refusing.load(std::memory_order_relaxed) &&
        s.quota_refusing.exchange(false, std::memory_order_relaxed)) {
      outbox_->Log(
          {.level = LogLevel::kInfo,
           .message = "stream under its quota again: commits accepted",
           .stream = s.name,
           .fields = {{"waiting_events", std::to_string(waiting)}, {"waiting_bytes", std::to_string(waiting_bytes)}}});
    }
  }
  // Streams held in one order (their address), so two commits dropping from
  // the same streams never wait for each other in a cycle.
  std::sort(to_drop.begin(), to_drop.end(), [](const ToDrop& a, const ToDrop& b) { return a.stream < b.stream; });
  for (const ToDrop& d : to_drop) {
    StreamState& s = *d.stream;
    held.Hold(s);  // until the commit is written: no relay pass moves the records meanwhile
    auto plan = internal::PlanDrop(*outbox_, s, d.events, d.bytes);
    if (!plan) return QuotaRefused(s, plan.error());
    drops.push_back(std::move(*plan));
  }
  return {};
}

void Committer::AssignSeqs(const std::vector<Writer*>& group) {
  touched_.clear();
  saved_next_.clear();
  touched_bytes_.clear();
  for (Writer* w : group) {
    for (auto& e : TransactionInternal::Events(*w->txn)) {
      StreamState& s = StreamAccess::Of(*e.stream);
      auto t = std::find(touched_.begin(), touched_.end(), &s);
      if (t == touched_.end()) {
        touched_.push_back(&s);
        saved_next_.push_back(s.next_seq);
        touched_bytes_.push_back(0);
        t = touched_.end() - 1;
      }
      touched_bytes_[static_cast<size_t>(t - touched_.begin())] += e.bytes;
      e.seq = s.next_seq++;
      char* envelope = TransactionInternal::Arena(*w->txn) + e.offset;
      internal::PatchU64(envelope, e.seq_field, e.seq);
      if (e.sig_field != 0) {
        outbox_->signer->Sign(s.name, e.seq, e.digest, reinterpret_cast<uint8_t*>(envelope + e.sig_field));
      }
    }
  }
}

bool Committer::ReserveSeqs() {
  new_hwm_.assign(touched_.size(), 0);
  bool reserved = false;
  for (size_t i = 0; i < touched_.size(); ++i) {
    StreamState& s = *touched_[i];
    if (s.next_seq > s.hwm) {
      new_hwm_[i] = s.next_seq + kSeqReservation;
      batch_.Put(outbox_->meta_cf, internal::StreamMetaKey(s.name, "hwm"), internal::EncodeU64(new_hwm_[i]));
      // With it, the last seq assigned so far (exact again at Close).
      batch_.Put(outbox_->meta_cf, internal::StreamMetaKey(s.name, "last"), internal::EncodeU64(s.next_seq - 1));
      reserved = true;
    }
  }
  return reserved;
}

void Committer::AddWrites(const std::vector<Writer*>& group) {
  for (Writer* w : group) {
    for (auto& h : TransactionInternal::Hooks(*w->txn))
      h->Prepare(batch_);
    const Transaction& t = *w->txn;
    const char* a = TransactionInternal::Arena(t);
    for (const auto& op : TransactionInternal::Ops(t)) {
      rocksdb::Slice key(a + op.key_offset, op.key_size);
      switch (op.type) {
        case TransactionInternal::Op::Type::kPut:
          batch_.Put(op.family, key, rocksdb::Slice(a + op.value_offset, op.value_size));
          break;
        case TransactionInternal::Op::Type::kDelete:
          batch_.Delete(op.family, key);
          break;
        case TransactionInternal::Op::Type::kMerge:
          batch_.Merge(op.family, key, rocksdb::Slice(a + op.value_offset, op.value_size));
          break;
      }
    }
    for (const internal::DropPlan& d : *w->drops) {
      for (const internal::KeyBuf& k : d.keys)
        batch_.Delete(d.stream->cf, rocksdb::Slice(k.bytes, k.size));
    }
    for (const auto& e : TransactionInternal::Events(t)) {
      auto key = internal::SeqKey(internal::kPendingTag, e.seq);
      batch_.Put(StreamAccess::Of(*e.stream).cf, rocksdb::Slice(key.bytes, key.size),
                 rocksdb::Slice(a + e.offset, e.size));
    }
  }
}

void Committer::Undo(const std::vector<Writer*>& group, bool claimed) {
  for (size_t i = 0; i < touched_.size(); ++i)
    touched_[i]->next_seq = saved_next_[i];
  for (Writer* w : group) {
    if (claimed) outbox_->inline_publisher->Unclaim(*w->txn);
    for (auto& e : TransactionInternal::Events(*w->txn))
      e.seq = 0;
  }
}

Committer::Written Committer::AfterWrite(bool sync) {
  // The position before the streams' written_seq (core/wal_syncer.h relies on it).
  const uint64_t position = outbox_->syncer->Written();
  if (sync) outbox_->syncer->Synced(position);
  for (size_t i = 0; i < touched_.size(); ++i) {
    StreamState& st = *touched_[i];
    if (new_hwm_[i] != 0) st.hwm = new_hwm_[i];
    // Only the leader writes it (one group at a time): no read-modify-write.
    st.committed.store(st.committed.load(std::memory_order_relaxed) + (st.next_seq - saved_next_[i]),
                       std::memory_order_relaxed);
    st.waiting_events.fetch_add(static_cast<int64_t>(st.next_seq - saved_next_[i]), std::memory_order_relaxed);
    st.waiting_bytes.fetch_add(static_cast<int64_t>(touched_bytes_[i]), std::memory_order_relaxed);
    st.written_seq.store(st.next_seq - 1, std::memory_order_release);
    if (sync) st.durable_seq.store(st.next_seq - 1, std::memory_order_release);
  }
  return Written{.position = position, .durable = sync};
}

}  // namespace jaiminho
