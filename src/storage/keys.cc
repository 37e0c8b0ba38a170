#include "storage/keys.h"

namespace jaiminho::internal {

KeyBuf SeqKey(char tag, uint64_t seq) {
  KeyBuf k;
  k.bytes[0] = tag;
  PutBigEndian64(k.bytes + 1, seq);
  k.size = 9;
  return k;
}

KeyBuf RetryKey(int64_t due_us, uint64_t seq) {
  KeyBuf k;
  k.bytes[0] = kRetryTag;
  // Times before the epoch sort first: clamp instead of wrapping.
  PutBigEndian64(k.bytes + 1, due_us < 0 ? 0 : static_cast<uint64_t>(due_us));
  PutBigEndian64(k.bytes + 9, seq);
  k.size = 17;
  return k;
}

KeyBuf TagEnd(char tag) {
  KeyBuf k;
  k.bytes[0] = static_cast<char>(tag + 1);
  k.size = 1;
  return k;
}

std::optional<DecodedKey> DecodeKey(std::string_view key) {
  if (key.empty()) return std::nullopt;
  switch (key[0]) {
    case kPendingTag:
    case kSentTag:
    case kParkedTag: {
      if (key.size() != 9) return std::nullopt;
      EventState st = key[0] == kPendingTag ? EventState::kPending
                      : key[0] == kSentTag  ? EventState::kSent
                                            : EventState::kParked;
      return DecodedKey{st, GetBigEndian64(key.data() + 1), 0};
    }
    case kRetryTag:
      if (key.size() != 17) return std::nullopt;
      return DecodedKey{EventState::kRetrying, GetBigEndian64(key.data() + 9),
                        static_cast<int64_t>(GetBigEndian64(key.data() + 1))};
    default:
      return std::nullopt;
  }
}

char TagOf(EventState s) {
  switch (s) {
    case EventState::kPending:
      return kPendingTag;
    case EventState::kRetrying:
      return kRetryTag;
    case EventState::kSent:
      return kSentTag;
    case EventState::kParked:
      return kParkedTag;
  }
  return kPendingTag;
}

}  // namespace jaiminho::internal
