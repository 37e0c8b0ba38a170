#include "reliability/workload.h"

#include <cstdlib>
#include <iostream>

namespace jaiminho::testing::crash {

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

uint64_t SeedFromEnv(const char* name) {
  const char* v = std::getenv(name);
  uint64_t seed = v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : std::random_device{}();
  std::cout << "seed " << seed << " (" << name << "=" << seed << " repeats this run's random choices)\n";
  return seed;
}

std::vector<StreamSpec> DefaultStreams() {
  return {{"ko.a", Strategy::kKeepOrder},
          {"ko.b", Strategy::kKeepOrder},
          {"poc.a", Strategy::kPublishOnCommit},
          {"poc.b", Strategy::kPublishOnCommit}};
}

std::vector<StreamSpec> DropOldestStreams() {
  return {{"ko.a", Strategy::kKeepOrder},
          {"poc.a", Strategy::kPublishOnCommit},
          {std::string(kDropStream), Strategy::kPublishOnCommit,
           StreamQuota{.max_events = kDropQuotaEvents, .policy = QuotaPolicy::kDropOldest}}};
}

Result<Workload> OpenWorkload(Outbox& outbox, const std::vector<StreamSpec>& streams) {
  Workload w;
  auto accounts = outbox.FindBusinessFamily(kBusinessFamily);
  if (!accounts) return tl::unexpected(accounts.error());
  w.accounts = *accounts;
  for (const auto& spec : streams) {
    auto s = outbox.OpenStream(spec.name, {.strategy = spec.strategy, .quota = spec.quota});
    if (!s) return tl::unexpected(s.error());
    w.streams.push_back(*s);
  }
  return w;
}

Result<Ack> CommitIdentified(Outbox& outbox, const Workload& w, const std::string& commit, std::mt19937_64& rng,
                             std::optional<bool> sync, int first_stream, Receipt* receipt_out) {
  const int n = 1 + static_cast<int>(rng() % 3);
  auto txn = outbox.Begin();
  if (auto s = txn.Put(w.accounts, std::string(kBusinessPrefix) + commit, std::to_string(n)); !s) {
    return tl::unexpected(s.error());
  }
  for (int k = 0; k < n; ++k) {
    std::string payload = EventPayload(commit, k, n);
    size_t i = k == 0 && first_stream >= 0 ? static_cast<size_t>(first_stream) : rng() % w.streams.size();
    if (auto s = txn.Enqueue(*w.streams[i], {.type = kEventType, .key = commit, .payload = payload}); !s) {
      return tl::unexpected(s.error());
    }
  }
  auto receipt = txn.Commit({.sync = sync});
  if (!receipt) return tl::unexpected(receipt.error());
  Ack ack{commit, n, {}};
  for (const auto& id : receipt->events)
    ack.events.push_back(EventRef{std::string(id.stream), id.seq});
  if (receipt_out != nullptr) *receipt_out = std::move(*receipt);
  return ack;
}

Status MemoryDeliveryLog::Publish(const Event& e) {
  if (powered_ && !powered_()) return MakeError(ErrorCode::kUnavailable, "the power is off");
  std::lock_guard l(mu_);
  deliveries_.push_back(Delivery{generation_.load(), EventRef{std::string(e.id.stream), e.id.seq}, std::string(e.type),
                                 std::string(e.payload)});
  return {};
}

Logs MemoryDeliveryLog::logs() const {
  std::lock_guard l(mu_);
  Logs out;
  out.deliveries = deliveries_;
  return out;
}

}  // namespace jaiminho::testing::crash
