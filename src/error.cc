#include <fmt/format.h>

#include <map>

#include "jaiminho/codec.h"
#include "jaiminho/event.h"
#include "jaiminho/options.h"
#include "jaiminho/result.h"
#include "util/json.h"

namespace jaiminho {

std::string_view ToString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kCorruption:
      return "corruption";
    case ErrorCode::kIOError:
      return "io error";
    case ErrorCode::kBusy:
      return "busy";
    case ErrorCode::kNotADatabase:
      return "not a database";
    case ErrorCode::kFormatTooNew:
      return "format too new";
    case ErrorCode::kNotSupported:
      return "not supported";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kRejected:
      return "rejected";
    case ErrorCode::kUnknownHandler:
      return "unknown handler";
    case ErrorCode::kTampered:
      return "tampered";
    case ErrorCode::kAborted:
      return "aborted";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kClosed:
      return "closed";
    case ErrorCode::kResourceExhausted:
      return "resource exhausted";
    case ErrorCode::kFatal:
      return "fatal";
  }
  return "unknown error";
}

std::string Error::ToString() const {
  return fmt::format("{}: {}", jaiminho::ToString(code_), message_);
}

std::string_view ToString(Strategy s) {
  switch (s) {
    case Strategy::kPublishOnCommit:
      return "publish-on-commit";
    case Strategy::kKeepOrder:
      return "keep-order";
  }
  return "unknown";
}

Result<Strategy> ParseStrategy(std::string_view name) {
  if (name == "publish-on-commit") return Strategy::kPublishOnCommit;
  if (name == "keep-order") return Strategy::kKeepOrder;
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown strategy '{}' (expected publish-on-commit or keep-order)", name));
}

std::string_view ToString(EventState s) {
  switch (s) {
    case EventState::kPending:
      return "pending";
    case EventState::kRetrying:
      return "retrying";
    case EventState::kSent:
      return "sent";
    case EventState::kParked:
      return "parked";
  }
  return "unknown";
}

std::string DatabaseId::ToHex() const {
  return internal::ToHex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string EventId::ToString() const {
  return fmt::format("{}/{}/{}", db.ToHex(), stream, seq);
}

std::string Codec<std::map<std::string, std::string>>::Encode(const std::map<std::string, std::string>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) {
    if (out.size() > 1) out.push_back(',');
    internal::AppendJsonString(out, k);
    out.push_back(':');
    internal::AppendJsonString(out, v);
  }
  out.push_back('}');
  return out;
}

Result<std::map<std::string, std::string>> Codec<std::map<std::string, std::string>>::Decode(std::string_view payload) {
  return internal::ParseJsonStringObject(payload);
}

}  // namespace jaiminho
