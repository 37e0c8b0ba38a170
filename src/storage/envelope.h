// The event envelope codec: the only file that includes the generated
// FlatBuffers code for envelopes. Every read is verified.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/event.h"
#include "jaiminho/result.h"

namespace jaiminho::internal {

inline constexpr uint16_t kEnvelopeVersion = 1;

// Everything stored in an envelope, as views.
struct EnvelopeFields {
  uint64_t seq = 0;
  std::string_view stream;
  std::string_view type;
  std::string_view key;
  std::string_view payload;
  std::string_view encoding;
  std::span<const Header> headers;
  int64_t created_at = 0;
  Strategy strategy = Strategy::kPublishOnCommit;
  uint32_t attempts = 0;
  std::string_view last_error;
  int64_t next_attempt_at = 0;
  int64_t sent_at = 0;
  std::string_view signature;
  std::string_view key_id;
  std::string_view note;
  // Operator actions, oldest first; absent (not written) when empty.
  std::span<const HistoryEntry> history;
  uint32_t history_dropped = 0;  // written with a history, or when not 0
};

// An event's history after one more operator action: its entries and
// `action` (whose previous_note is set to the event's note; texts cut to
// kMaxHistoryText bytes), the oldest dropped beyond kMaxHistoryEntries and
// counted in `dropped`. Views point into the event, the action and `owned`.
struct HistoryUpdate {
  std::vector<HistoryEntry> entries;
  uint32_t dropped = 0;
  std::array<std::string, 4> owned;  // the cut texts of the new entry
};
void AppendHistory(const Event& e, const HistoryEntry& action, HistoryUpdate* out);

// `text` cut to at most `limit` bytes at a UTF-8 character boundary, "…" marking a cut.
std::string CutText(std::string_view text, size_t limit);

// Byte offsets of the scalars the relay updates in place (all are always present).
struct ScalarOffsets {
  uint32_t seq = 0;
  uint32_t attempts = 0;
  uint32_t next_attempt_at = 0;
  uint32_t sent_at = 0;
  uint32_t signature = 0;  // start of the signature bytes; 0 when unsigned
};

// Appends the encoded envelope to *out; returns the offsets of its scalars
// relative to the start of the appended bytes. Not thread-safe per builder;
// each thread uses its own builder internally.
ScalarOffsets EncodeEnvelope(const EnvelopeFields& f, std::string* out);
// The same bytes, always through flatbuffers::FlatBufferBuilder. EncodeEnvelope
// writes envelopes without headers directly (the commit path's usual case);
// tests compare the two.
ScalarOffsets EncodeEnvelopeWithBuilder(const EnvelopeFields& f, std::string* out);

// Overwrites a little-endian scalar at `offset` of an encoded envelope.
void PatchU64(char* envelope, uint32_t offset, uint64_t v);
void PatchU32(char* envelope, uint32_t offset, uint32_t v);

struct DecodedEnvelope {
  Event event;  // id.db and state are left for the caller
  ScalarOffsets offsets;
  std::string_view stream;
  std::string_view signature;
};

// An event's own bytes: type, key, payload, header names and values. What a
// stream's quota counts (StreamQuota); unchanged by the record's rewrites
// (attempts, errors, notes), so a commit adds what its delivery subtracts.
template <class Headers>
uint64_t EventBytes(std::string_view type, std::string_view key, std::string_view payload, const Headers& headers) {
  uint64_t n = type.size() + key.size() + payload.size();
  for (const auto& h : headers)
    n += h.name.size() + h.value.size();
  return n;
}
inline uint64_t EventBytes(const Event& e) {
  return EventBytes(e.type, e.key, e.payload, e.headers);
}

// Verifies and decodes. REQUIRES: `bytes` starts at an 8-byte aligned address
// (use AlignedArena). Fails with kCorruption naming what is wrong.
Result<DecodedEnvelope> DecodeEnvelope(std::string_view bytes);
// The same, decoding into `*out` (a default-constructed DecodedEnvelope) in
// place: the relay decodes every record it reads. `*out` is unspecified on error.
Status DecodeEnvelopeInto(std::string_view bytes, DecodedEnvelope* out);

// DecodeEnvelopeInto verifies an envelope with the structure (root offset,
// vtable) of the last one it verified in full on this thread without the
// generic walk: it checks what differs between the two, each string and vector
// field's bounds. For tests and the fuzzer: forget that structure (the next
// decode on this thread takes the full path), and how many decodes on this
// thread took the short one.
void ForgetEnvelopeShape();
uint64_t EnvelopeShapeHits();

// The fields of a decoded event, for re-encoding with some of them changed.
EnvelopeFields FieldsOf(const DecodedEnvelope& d);

// Copies of values with stable addresses, 8-byte aligned, for decoding.
// Views returned stay valid until Reset() or destruction.
class AlignedArena {
 public:
  std::string_view Copy(std::string_view bytes);
  void Reset();

 private:
  struct Block {
    std::unique_ptr<uint64_t[]> words;
    size_t capacity = 0;  // bytes
    size_t used = 0;      // bytes
  };
  std::vector<Block> blocks_;
  size_t current_ = 0;
};

}  // namespace jaiminho::internal
