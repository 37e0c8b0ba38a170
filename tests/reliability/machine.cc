#include "reliability/machine.h"

namespace jaiminho::testing::crash {

OutboxOptions Machine::Options(MachineOptions m) const {
  OutboxOptions o;
  o.business_families = {{.name = std::string(kBusinessFamily)}};
  o.env = env.get();
  o.retry = RetryPolicy{
      .initial_backoff = std::chrono::microseconds(100), .max_backoff = std::chrono::milliseconds(1), .jitter = 0.0};
  o.delete_after_send = m.delete_after_send;
  if (m.inline_publisher) o.publisher = deliveries;
  o.inline_dispatch = m.dispatch;
  o.tune_db = [l = listener](rocksdb::DBOptions& d) { d.listeners.push_back(l); };
  return o;
}

void Machine::Open(OutboxOptions o) {
  outbox = MustOpen(path(), std::move(o));
  ASSERT_NE(outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(w, OpenWorkload(*outbox));
}

void Machine::Close() {
  if (outbox) (void)outbox->Close();
  outbox.reset();
}

uint64_t Machine::PowerLoss(std::mt19937_64* rng) {
  fs->Deactivate();
  outbox.reset();
  return fs->DropUnsyncedData(rng);
}

void Machine::Drain() {
  ASSERT_OK_AND_ASSIGN(auto relay, Relay::Make(*outbox, deliveries));
  for (int pass = 0; pass < 10000; ++pass) {
    ASSERT_OK_AND_ASSIGN(RelayStats st, relay->RunOnce());
    ASSERT_OK_AND_ASSIGN(auto metrics, CollectMetrics(*outbox));
    uint64_t waiting = 0;
    for (const auto& m : metrics)
      waiting += m.pending + m.retrying;
    if (waiting == 0 && st.published == 0) return;
  }
  FAIL() << "the relay never finished";
}

}  // namespace jaiminho::testing::crash
