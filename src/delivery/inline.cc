#include "delivery/inline.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/outbox_impl.h"
#include "core/transaction_internal.h"
#include "delivery/delivery.h"
#include "delivery/retry.h"

namespace jaiminho {

InlinePublisher::InlinePublisher(OutboxImpl* outbox)
    : outbox_(outbox), enabled_(outbox->options.publisher != nullptr), rng_(std::random_device{}()) {
  if (enabled_ && outbox_->options.inline_dispatch == InlineDispatch::kDispatcherThread) {
    thread_ = std::thread([this] { DispatchLoop(); });
  }
}

InlinePublisher::~InlinePublisher() {
  Stop();
}

void InlinePublisher::Claim(const Transaction& txn) {
  for (const auto& e : TransactionInternal::Events(txn)) {
    if (e.strategy != Strategy::kPublishOnCommit) continue;
    StreamAccess::Of(*e.stream).claims.Claim(e.seq);
  }
}

void InlinePublisher::Release(StreamState& s, uint64_t seq) {
  s.claims.Release(seq);
}

void InlinePublisher::Unclaim(const Transaction& txn) {
  for (const auto& e : TransactionInternal::Events(txn)) {
    if (e.strategy == Strategy::kPublishOnCommit) Release(StreamAccess::Of(*e.stream), e.seq);
  }
}

void InlinePublisher::AfterCommit(const Transaction& txn) {
  if (!enabled_) return;
  std::vector<Item> items;
  for (const auto& e : TransactionInternal::Events(txn)) {
    if (e.strategy != Strategy::kPublishOnCommit) continue;
    items.push_back(Item{&StreamAccess::Of(*e.stream), e.seq, std::string(TransactionInternal::Envelope(txn, e))});
  }
  if (items.empty()) return;
  if (outbox_->options.inline_dispatch == InlineDispatch::kDispatcherThread) {
    {
      internal::MutexLock l(mu_);
      if (!stop_) {
        for (auto& i : items)
          queue_.push_back(std::move(i));
        items.clear();
      }
    }
    cv_.Signal();
    // Stopped: leave the events pending for the relay.
    for (auto& i : items)
      Release(*i.stream, i.seq);
    return;
  }
  Deliver(items);
}

void InlinePublisher::Deliver(std::vector<Item>& items) {
  // Group by stream: one outcome batch per stream.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.stream != b.stream ? a.stream < b.stream : a.seq < b.seq;
  });
  Publisher& publisher = *outbox_->options.publisher;
  internal::AlignedArena arena;
  size_t i = 0;
  while (i < items.size()) {
    StreamState& s = *items[i].stream;
    size_t j = i;
    while (j < items.size() && items[j].stream == &s)
      ++j;
    internal::DeliveryBatch batch(*outbox_, s, internal::Source::kInline);
    batch.Reset(s.config(), outbox_->Now());
    std::vector<internal::DecodedEnvelope> decoded;
    decoded.reserve(j - i);
    for (size_t k = i; k < j; ++k) {
      std::string_view raw = arena.Copy(items[k].bytes);
      auto key = internal::SeqKey(internal::kPendingTag, items[k].seq);
      auto d = internal::DecodeEnvelope(raw);
      if (!d) {
        // We encoded these bytes ourselves a moment ago: this is a bug, not bad input.
        outbox_->Capture(Error(ErrorCode::kInternal, fmt::format("publish-on-commit: {}", d.error().message())));
        StreamAccess::RewindTo(s, items[k].seq);  // stays pending; the relay parks it with the reason
        continue;
      }
      d->event.id.db = outbox_->id;
      d->event.id.stream = s.name;
      decoded.push_back(std::move(*d));
      internal::DecodedEnvelope& env = decoded.back();
      Status st;
      {
        internal::ScopedDuration timed(s.publish_duration);
        st = internal::CallPublish(publisher, env.event);
      }
      if (st) {
        const bool keep = outbox_->options.persist_all_events && !outbox_->options.delete_after_send;
        batch.Succeeded(env, raw, keep);
        batch.RemoveKey(key.view(), /*single=*/true);
      } else {
        internal::MutexLock l(rng_mu_);
        batch.Failed(env, st.error(), rng_, /*at_head=*/false);
        batch.RemoveKey(key.view(), /*single=*/true);
      }
    }
    // On a write failure the events stay pending on disk; the relay retries them.
    if (!batch.Commit()) StreamAccess::RewindTo(s, items[i].seq);
    for (size_t k = i; k < j; ++k)
      Release(s, items[k].seq);
    s.poke.fetch_add(1, std::memory_order_release);
    i = j;
  }
  outbox_->WakeRelays();
}

void InlinePublisher::DispatchLoop() {
  internal::MutexLock l(mu_);
  while (true) {
    while (!stop_ && queue_.empty())
      cv_.Wait(mu_);
    if (stop_) break;
    std::vector<Item> items;
    while (!queue_.empty() && items.size() < 256) {
      items.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    mu_.Unlock();
    Deliver(items);
    mu_.Lock();
  }
  // Whatever is still queued stays pending on disk for the relay.
  for (auto& i : queue_)
    Release(*i.stream, i.seq);
  queue_.clear();
}

void InlinePublisher::Stop() {
  {
    internal::MutexLock l(mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

}  // namespace jaiminho
