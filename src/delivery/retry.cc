#include "delivery/retry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace jaiminho::internal {

std::chrono::microseconds Backoff(const RetryPolicy& policy, uint32_t attempts, std::mt19937_64& rng) {
  double base = static_cast<double>(policy.initial_backoff.count()) *
                std::pow(policy.multiplier, static_cast<double>(attempts > 0 ? attempts - 1 : 0));
  base = std::min(base, static_cast<double>(policy.max_backoff.count()));
  double factor = 1.0;
  if (policy.jitter > 0) {
    std::uniform_real_distribution<double> d(1.0 - policy.jitter, 1.0 + policy.jitter);
    factor = d(rng);
  }
  // Beyond the int64 range (or infinite: multiplier^n overflowed and max_backoff
  // is huge) the delay saturates; llround would overflow.
  const double delay = base * factor;
  constexpr double kLimit = 9.2e18;  // < 2^63, exactly representable
  if (!(delay < kLimit)) return std::chrono::microseconds::max();
  return std::chrono::microseconds(std::max<int64_t>(0, std::llround(delay)));
}

int64_t DueAfter(int64_t now_us, std::chrono::microseconds delay) {
  int64_t due = 0;
  if (__builtin_add_overflow(now_us, std::max<int64_t>(0, delay.count()), &due)) {
    return std::numeric_limits<int64_t>::max();
  }
  return due;
}

bool Exhausted(const RetryPolicy& policy, uint32_t attempts) {
  return policy.max_attempts != 0 && attempts >= policy.max_attempts;
}

namespace {
Error Threw(const Event& event, std::string_view what) {
  return Error(ErrorCode::kInternal, fmt::format("publisher threw on event {}: {}", event.id.ToString(), what));
}
}  // namespace

Status CallPublish(Publisher& publisher, const Event& event) {
  try {
    return publisher.Publish(event);
  } catch (const std::exception& e) {
    return tl::unexpected(Threw(event, e.what()));
  } catch (...) {
    return tl::unexpected(Threw(event, "non-standard exception"));
  }
}

void CallPublishBatch(Publisher& publisher, std::span<const Event> events, Order order, std::span<Status> results) {
  // A result the publisher leaves unset reads "not attempted". Marked first
  // with an empty message (no string to build: the message cost 5 % of a
  // relay pass), and named after the call.
  for (auto& r : results)
    r = tl::unexpected(Error(ErrorCode::kAborted, std::string()));
  auto name_unset = [&] {
    for (auto& r : results) {
      if (!r && r.error().code() == ErrorCode::kAborted && r.error().message().empty()) {
        r = MakeError(ErrorCode::kAborted, "not attempted");
      }
    }
  };
  auto fail_all = [&](std::string_view what) {
    for (size_t i = 0; i < events.size(); ++i) {
      if (i == 0 || order == Order::kAny) {
        results[i] = tl::unexpected(Threw(events[i], what));
      } else {
        results[i] = MakeError(ErrorCode::kAborted, "not attempted: the publisher threw");
      }
    }
  };
  try {
    publisher.PublishBatch(events, order, results);
  } catch (const std::exception& e) {
    fail_all(e.what());
  } catch (...) {
    fail_all("non-standard exception");
  }
  name_unset();
}

}  // namespace jaiminho::internal
