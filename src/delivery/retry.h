// Retry arithmetic and exception-safe publishing, shared by the relay and
// publish-on-commit.
#pragma once

#include <random>

#include "jaiminho/clock.h"
#include "jaiminho/options.h"
#include "jaiminho/publisher.h"

namespace jaiminho::internal {

// Delay before attempt `attempts + 1`, after `attempts` failures (>= 1):
// initial * multiplier^(attempts-1), capped at max_backoff, times a random
// factor in [1 - jitter, 1 + jitter]. Saturates: never negative, at most
// microseconds::max() (which DueAfter turns into "no automatic retry").
std::chrono::microseconds Backoff(const RetryPolicy& policy, uint32_t attempts, std::mt19937_64& rng);

// now_us + delay, saturated at INT64_MAX (the "not before an operator acts" due time).
int64_t DueAfter(int64_t now_us, std::chrono::microseconds delay);

// True when `attempts` failures exhaust the policy.
bool Exhausted(const RetryPolicy& policy, uint32_t attempts);

// Calls publisher.Publish, turning an exception into a retryable error.
Status CallPublish(Publisher& publisher, const Event& event);
// Calls publisher.PublishBatch, turning an exception into failures (the first
// event failed, the rest not attempted). A result the publisher leaves unset
// (or sets to kAborted with an empty message) is kAborted "not attempted".
void CallPublishBatch(Publisher& publisher, std::span<const Event> events, Order order, std::span<Status> results);

}  // namespace jaiminho::internal
