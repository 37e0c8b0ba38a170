#include "core/wal_syncer.h"

#include <vector>

#include "core/outbox_impl.h"
#include "util/macros.h"

namespace jaiminho::internal {

void WalSyncer::Covered(uint64_t position) {
  uint64_t cur = durable_.load(std::memory_order_acquire);
  while (cur < position && !durable_.compare_exchange_weak(cur, position, std::memory_order_acq_rel)) {
  }
  cv_.SignalAll();
}

void WalSyncer::Synced(uint64_t position) {
  MutexLock l(mu_);
  Covered(position);
}

Status WalSyncer::SyncUpTo(uint64_t position) {
  MutexLock l(mu_);
  while (durable() < position) {
    if (syncing_) {
      cv_.Wait(mu_);
      continue;
    }
    // Read before the sync starts: every group up to `target` is written, so
    // the sync covers it.
    const uint64_t target = written();
    syncing_ = true;
    mu_.Unlock();
    Status s = outbox_->SyncWal();
    mu_.Lock();
    syncing_ = false;
    if (!s) {
      cv_.SignalAll();
      return s;
    }
    syncs_.fetch_add(1, std::memory_order_relaxed);
    Covered(target);
  }
  return {};
}

Status WalSyncer::MakeDurable() {
  // Each stream's written_seq is published after its group's position
  // (Committer), so every seq read here belongs to a position <= `position`.
  auto streams = outbox_->Streams();
  std::vector<uint64_t> seqs(streams.size());
  for (size_t i = 0; i < streams.size(); ++i)
    seqs[i] = StreamAccess::Of(*streams[i]).written_seq.load(std::memory_order_acquire);
  JM_RETURN_IF_ERROR(SyncUpTo(written()));
  for (size_t i = 0; i < streams.size(); ++i) {
    auto& d = StreamAccess::Of(*streams[i]).durable_seq;
    uint64_t cur = d.load(std::memory_order_acquire);
    while (cur < seqs[i] && !d.compare_exchange_weak(cur, seqs[i], std::memory_order_acq_rel)) {
    }
  }
  return {};
}

bool WalSyncer::StreamsBehind() const {
  for (Stream* s : outbox_->Streams()) {
    const StreamState& st = StreamAccess::Of(*s);
    if (st.written_seq.load(std::memory_order_acquire) > st.durable_seq.load(std::memory_order_acquire)) return true;
  }
  return false;
}

Status WalSyncer::WaitDurable(uint64_t position) {
  {
    MutexLock l(mu_);
    const uint64_t failures = failures_;
    while (durable() < position && interval_running_ && failures_ == failures)
      cv_.Wait(mu_);
    if (durable() >= position) return {};
    if (failures_ != failures && last_failure_) return tl::unexpected(*last_failure_);
  }
  return SyncUpTo(position);
}

void WalSyncer::StartInterval(std::chrono::milliseconds interval) {
  MutexLock run(run_mu_);
  {
    MutexLock l(mu_);
    if (interval_running_) return;
    interval_running_ = true;
    stop_ = false;
  }
  thread_ = std::thread([this, interval] { Run(interval); });
}

void WalSyncer::Stop() {
  MutexLock run(run_mu_);
  {
    MutexLock l(mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  MutexLock l(mu_);
  interval_running_ = false;
  cv_.SignalAll();  // WaitDurable callers sync themselves now
}

void WalSyncer::Run(std::chrono::milliseconds interval) {
  auto next = std::chrono::steady_clock::now() + interval;
  for (;;) {
    {
      MutexLock l(mu_);
      while (!stop_ && std::chrono::steady_clock::now() < next)
        cv_.WaitUntil(mu_, next);
      if (stop_) return;
    }
    next += interval;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now + interval;  // fell behind (a slow sync): no burst
    if (written() <= durable() && !StreamsBehind()) continue;
    if (auto s = MakeDurable(); !s) {
      outbox_->Capture(s.error());
      MutexLock l(mu_);
      ++failures_;
      last_failure_ = s.error();
      cv_.SignalAll();
      continue;
    }
    outbox_->WakeRelays();
  }
}

}  // namespace jaiminho::internal
