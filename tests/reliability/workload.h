// The commits the reliability tests make: each one names itself in its
// business write and in every event (crash_log.h), so a checker can tell from
// the database and the delivery logs which commit every record belongs to.
//
//   ASSERT_OK_AND_ASSIGN(Workload w, OpenWorkload(*outbox));
//   ASSERT_OK_AND_ASSIGN(Ack ack, CommitIdentified(*outbox, w, "g0.w1.7", rng, /*sync=*/true));
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "jaiminho/jaiminho.h"
#include "reliability/crash_log.h"

namespace jaiminho::testing::crash {

struct StreamSpec {
  std::string name;
  Strategy strategy;
  std::optional<StreamQuota> quota{};
};
// An integer from the environment, or `fallback` when unset.
int EnvInt(const char* name, int fallback);
// A seed from the environment variable `name`, else a random one; prints it
// with how to repeat the run.
uint64_t SeedFromEnv(const char* name);

// Two keep-order and two publish-on-commit streams.
std::vector<StreamSpec> DefaultStreams();
// A publish-on-commit stream under a drop-oldest quota of kDropQuotaEvents
// events ("drop.a"), beside a keep-order and a publish-on-commit one without.
inline constexpr uint64_t kDropQuotaEvents = 6;
inline constexpr std::string_view kDropStream = "drop.a";
std::vector<StreamSpec> DropOldestStreams();

struct Workload {
  BusinessFamily accounts;
  std::vector<Stream*> streams;
};
// The business family kBusinessFamily must be in the outbox's options.
Result<Workload> OpenWorkload(Outbox& outbox, const std::vector<StreamSpec>& streams = DefaultStreams());

// Commits business key "c/<commit>" and 1-3 events into random streams of `w`
// (the first one into w.streams[first_stream] when first_stream >= 0). Returns
// the acknowledgement (receipt ids in enqueue order), and the receipt in
// `*receipt` when given. `sync` unset: the outbox's durability profile.
Result<Ack> CommitIdentified(Outbox& outbox, const Workload& w, const std::string& commit, std::mt19937_64& rng,
                             std::optional<bool> sync, int first_stream = -1, Receipt* receipt = nullptr);

// Records deliveries in memory as crash_log.h's Delivery, tagged with the
// current generation (bump it at each simulated restart). With `powered` set,
// a publish that begins while it returns false fails and is not recorded: a
// machine without power reaches no broker.
class MemoryDeliveryLog final : public Publisher {
 public:
  explicit MemoryDeliveryLog(std::function<bool()> powered = {}) : powered_(std::move(powered)) {}
  Status Publish(const Event& e) override;
  void set_generation(int g) { generation_.store(g); }
  Logs logs() const;  // deliveries only

 private:
  const std::function<bool()> powered_;
  std::atomic<int> generation_{0};
  mutable std::mutex mu_;
  std::vector<Delivery> deliveries_;
};

}  // namespace jaiminho::testing::crash
