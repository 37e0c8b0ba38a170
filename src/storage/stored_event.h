// Building StoredEvents (owning copies of records) for the API and the tool.
#pragma once

#include <string_view>

#include "jaiminho/outbox.h"
#include "storage/envelope.h"

namespace jaiminho {

class StoredEventAccess {
 public:
  // Copies `raw` (stored under `key`) into an aligned buffer owned by the
  // result and checks it with internal::CheckAlignedRecord (no signer).
  // kCorruption when it fails the check.
  static Result<StoredEvent> Make(std::string_view key, std::string_view raw, std::string_view stream,
                                  const DatabaseId& db);
  // A delivered event read under its pending key (format 2): sent at `sent_at`.
  static void MarkSent(StoredEvent& e, Timestamp sent_at) {
    e.event_.state = EventState::kSent;
    e.event_.sent_at = sent_at;
  }
};

}  // namespace jaiminho
