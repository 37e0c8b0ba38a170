// A machine for fault tests: one database on a FaultFileSystem, with a
// recovery listener and an in-memory delivery log that counts only deliveries
// made while the power is on.
//
//   Machine m;
//   m.Open(m.Options({.inline_publisher = true}));
//   ASSERT_OK_AND_ASSIGN(Ack a, CommitIdentified(*m.outbox, m.w, "c1", rng, true));
//   m.PowerLoss(nullptr);            // cut, destroy, drop what was not synced
//   m.Open(m.Options({}));            // and carry on
#pragma once

#include <memory>
#include <random>
#include <string>

#include "reliability/workload.h"
#include "support/fault_fs.h"
#include "support/recovery_listener.h"
#include "support/test_util.h"

namespace jaiminho::testing::crash {

struct MachineOptions {
  bool inline_publisher = false;
  bool delete_after_send = false;
  InlineDispatch dispatch = InlineDispatch::kCommittingThread;
};

struct Machine {
  TempDir dir;
  std::shared_ptr<FaultFileSystem> fs = std::make_shared<FaultFileSystem>();
  std::unique_ptr<rocksdb::Env> env = fs->NewEnv();
  std::shared_ptr<RecoveryListener> listener = std::make_shared<RecoveryListener>();
  std::shared_ptr<MemoryDeliveryLog> deliveries =
      std::make_shared<MemoryDeliveryLog>([fs = fs.get()] { return fs->active(); });
  std::unique_ptr<Outbox> outbox;
  Workload w;

  std::string path() const { return dir.Sub("db"); }
  // Business family, env, listener, sub-millisecond retries; the delivery log
  // as inline publisher when asked.
  OutboxOptions Options(MachineOptions m = {}) const;
  // Opens (ASSERTs success) and opens the workload's streams.
  void Open(OutboxOptions o);
  // Closes (ignoring errors: the instance may be dead) and destroys the outbox.
  void Close();
  // Cuts the power, destroys the outbox, keeps only what was synced (with
  // `rng`, also a random part of each unsynced tail). Returns the bytes dropped.
  uint64_t PowerLoss(std::mt19937_64* rng);
  // Runs a relay until nothing is pending or retrying.
  void Drain();
};

}  // namespace jaiminho::testing::crash
