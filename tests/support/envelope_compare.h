// Field-by-field equality of two decoded envelopes, for the codec tests and the
// envelope fuzzer (no GoogleTest: the fuzzer links without it).
#pragma once

#include "storage/envelope.h"

namespace jaiminho::internal {

// Every decoded field and view's contents (not their addresses) equal.
inline bool SameFields(const DecodedEnvelope& a, const DecodedEnvelope& b) {
  const auto &x = a.event, &y = b.event;
  if (x.headers.size() != y.headers.size() || x.history.size() != y.history.size()) return false;
  for (size_t i = 0; i < x.history.size(); ++i) {
    const auto &g = x.history[i], &h = y.history[i];
    if (g.at != h.at || g.user != h.user || g.action != h.action || g.reason != h.reason ||
        g.previous_note != h.previous_note) {
      return false;
    }
  }
  if (x.history_dropped != y.history_dropped) return false;
  for (size_t i = 0; i < x.headers.size(); ++i) {
    if (x.headers[i].name != y.headers[i].name || x.headers[i].value != y.headers[i].value) return false;
  }
  return x.id.seq == y.id.seq && a.stream == b.stream && x.type == y.type && x.key == y.key && x.payload == y.payload &&
         x.encoding == y.encoding && x.created_at == y.created_at && x.strategy == y.strategy &&
         x.attempts == y.attempts && x.last_error == y.last_error && x.next_attempt_at == y.next_attempt_at &&
         x.sent_at == y.sent_at && x.note == y.note && x.key_id == y.key_id && a.signature == b.signature;
}

// SameFields, and the in-place scalars at the same offsets.
inline bool SameDecoded(const DecodedEnvelope& a, const DecodedEnvelope& b) {
  const ScalarOffsets &p = a.offsets, &q = b.offsets;
  return SameFields(a, b) && p.seq == q.seq && p.attempts == q.attempts && p.next_attempt_at == q.next_attempt_at &&
         p.sent_at == q.sent_at && p.signature == q.signature;
}

}  // namespace jaiminho::internal
