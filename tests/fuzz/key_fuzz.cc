// libFuzzer target: the stream key codec (internal::DecodeKey). Arbitrary
// bytes decode to nothing or to a key that encodes back to the same bytes
// (SeqKey / RetryKey), so no two byte strings name the same record.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storage/keys.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace jaiminho::internal;
  std::string_view key(reinterpret_cast<const char*>(data), size);
  auto k = DecodeKey(key);
  if (!k) return 0;
  KeyBuf again =
      k->state == jaiminho::EventState::kRetrying ? RetryKey(k->due_us, k->seq) : SeqKey(TagOf(k->state), k->seq);
  // A retry key's due time is clamped at 0 when encoded: the only lossy case.
  if (again.view() != key && !(k->due_us < 0 && k->state == jaiminho::EventState::kRetrying)) std::abort();
  if (TagOf(k->state) != key[0]) std::abort();
  // Order: a key sorts before the end of its state's range.
  if (!(key < TagEnd(key[0]).view())) std::abort();
  return 0;
}
