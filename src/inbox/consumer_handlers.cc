// ConsumerHandlers (include/jaiminho/consumer_handlers.h).
#include "jaiminho/consumer_handlers.h"

#include <fmt/format.h>

namespace jaiminho {

namespace {

// "event <id> (type 'T', encoding 'E')" for messages; absent parts say so.
std::string Describe(const ReceivedEvent& e) {
  return fmt::format("event {} (type {}, encoding {})", e.raw_id,
                     e.type.empty() ? std::string("none") : fmt::format("'{}'", e.type),
                     e.encoding.empty() ? std::string("none") : fmt::format("'{}'", e.encoding));
}

}  // namespace

Status ConsumerHandlers::Add(std::string type, std::string encoding, RawHandler handler) {
  if (type.empty()) return MakeError(ErrorCode::kInvalidArgument, "ConsumerHandlers::Register: the type is empty");
  if (!handler) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("ConsumerHandlers::Register of type '{}': the handler is empty", type));
  }
  if (Contains(type)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("ConsumerHandlers::Register: type '{}' already has a handler", type));
  }
  auto next = std::make_shared<std::map<std::string, Entry, std::less<>>>(*handlers_);
  next->emplace(std::move(type), Entry{std::move(encoding), std::move(handler)});
  handlers_ = std::move(next);
  return {};
}

Status ConsumerHandlers::DecodeFailed(const ReceivedEvent& e, std::string_view encoding, const Error& why) {
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: the payload ({} bytes) does not decode as '{}': {}",
                                                            Describe(e), e.payload.size(), encoding, why.message()));
}

Status ConsumerHandlers::Handle(const ReceivedEvent& event, Transaction& txn) const {
  auto it = handlers_->find(event.type);
  if (it == handlers_->end()) {
    if (unknown_ == UnknownTypes::kSkip) return {};
    return MakeError(
        ErrorCode::kUnknownHandler,
        fmt::format(
            "{}: no handler for type {} (registered: {})", Describe(event),
            event.type.empty() ? std::string("none: the message carries no type") : fmt::format("'{}'", event.type),
            handlers_->empty() ? std::string("none") : [&] {
              std::string names;
              for (const auto& [name, entry] : *handlers_)
                names += (names.empty() ? "'" : ", '") + name + "'";
              return names;
            }()));
  }
  const Entry& entry = it->second;
  if (!entry.encoding.empty() && !event.encoding.empty() && event.encoding != entry.encoding) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: the handler of type '{}' decodes '{}', not '{}'", Describe(event), it->first,
                                 entry.encoding, event.encoding));
  }
  return entry.handler(event, txn);
}

}  // namespace jaiminho
