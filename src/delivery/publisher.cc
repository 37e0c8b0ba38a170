#include "jaiminho/publisher.h"

#include <fmt/format.h>

#include <mutex>

#include "delivery/retry.h"

namespace jaiminho {

Error AbortedError() {
  return Error(ErrorCode::kAborted, "not attempted: an earlier event of the ordered batch failed");
}

void Publisher::PublishBatch(std::span<const Event> events, Order order, std::span<Status> results) {
  bool stopped = false;
  for (size_t i = 0; i < events.size(); ++i) {
    if (stopped) {
      results[i] = tl::unexpected(AbortedError());
      continue;
    }
    results[i] = internal::CallPublish(*this, events[i]);
    if (!results[i] && order == Order::kKeep) stopped = true;
  }
}

uint64_t Publisher::AddReadyListener(std::function<void()> listener) {
  std::lock_guard l(ready_mu_);
  const uint64_t id = next_listener_++;
  ready_listeners_.emplace(id, std::move(listener));
  return id;
}

void Publisher::RemoveReadyListener(uint64_t id) {
  std::lock_guard l(ready_mu_);
  ready_listeners_.erase(id);
}

void Publisher::NotifyReady() {
  std::lock_guard l(ready_mu_);
  for (auto& [id, listener] : ready_listeners_) {
    try {
      listener();
    } catch (...) {
      // A listener's failure must not stop the adapter's thread.
    }
  }
}

bool IsPermanent(ErrorCode code) {
  switch (code) {
    case ErrorCode::kRejected:
    case ErrorCode::kTampered:
    case ErrorCode::kCorruption:
      return true;
    default:
      return false;
  }
}

Status HandlerRegistry::Register(std::string type, Handler handler) {
  if (type.empty()) return MakeError(ErrorCode::kInvalidArgument, "HandlerRegistry::Register: empty type");
  if (!handler) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("HandlerRegistry::Register('{}'): empty handler", type));
  }
  std::unique_lock l(mu_);
  auto [it, inserted] = handlers_.emplace(type, std::move(handler));
  if (!inserted) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("a handler for type '{}' is already registered", type));
  }
  return {};
}

bool HandlerRegistry::Contains(std::string_view type) const {
  std::shared_lock l(mu_);
  return handlers_.contains(std::string(type));
}

Status HandlerRegistry::Publish(const Event& event) {
  Handler h;
  {
    std::shared_lock l(mu_);
    auto it = handlers_.find(std::string(event.type));
    if (it == handlers_.end()) {
      return MakeError(ErrorCode::kUnknownHandler,
                       fmt::format("no handler registered for type '{}' (event {})", event.type, event.id.ToString()));
    }
    h = it->second;
  }
  return h(event);
}

}  // namespace jaiminho
