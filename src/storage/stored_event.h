// Building StoredEvents (owning copies of records) for the API and the tool.
#pragma once

#include <string_view>

#include "jaiminho/outbox.h"
#include "storage/envelope.h"

namespace jaiminho {

class StoredEventAccess {
 public:
  // Copies `raw` into an aligned buffer owned by the result and decodes it.
  // kCorruption when it fails verification.
  static Result<StoredEvent> Make(std::string_view raw, std::string_view stream, EventState state,
                                  const DatabaseId& db);
};

}  // namespace jaiminho
