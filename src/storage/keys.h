// Keys inside a stream column family. ON-DISK FORMAT: never change a byte value.
//
//   'p' seq(8, big-endian)                 pending: first delivery, keep-order retries
//   'r' due(8, big-endian) seq(8)          retrying: publish-on-commit event waiting
//                                          for its next attempt at `due` (micros)
//   's' seq(8)                             sent (delete_after_send = false)
//   'd' seq(8)                             parked (dead-lettered)
//
// Iteration order within a state is commit order (or due time for 'r'), and each
// state is a contiguous range, so the relay reads only the pending range from
// its cursor, with an upper bound.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "jaiminho/event.h"

namespace jaiminho::internal {

inline constexpr char kPendingTag = 'p';
inline constexpr char kRetryTag = 'r';
inline constexpr char kSentTag = 's';
inline constexpr char kParkedTag = 'd';

// A fixed-size key buffer (up to 17 bytes).
struct KeyBuf {
  char bytes[17];
  uint8_t size = 0;
  std::string_view view() const { return {bytes, size}; }
};

// Big-endian (key order) u64 at `out`/`in`, unaligned. Inline: every key the
// relay reads is decoded.
inline void PutBigEndian64(char* out, uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  std::memcpy(out, &v, 8);
}
inline uint64_t GetBigEndian64(const char* in) {
  uint64_t v;
  std::memcpy(&v, in, 8);
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  return v;
}

// 'p'/'s'/'d' + seq.
KeyBuf SeqKey(char tag, uint64_t seq);
// 'r' + due + seq.
KeyBuf RetryKey(int64_t due_us, uint64_t seq);
// The first key after every key of `tag` (tag + 1).
KeyBuf TagEnd(char tag);

struct DecodedKey {
  EventState state;
  uint64_t seq;
  int64_t due_us;  // retry keys only
};
// nullopt when the key is not one of the forms above.
std::optional<DecodedKey> DecodeKey(std::string_view key);

char TagOf(EventState s);

}  // namespace jaiminho::internal
