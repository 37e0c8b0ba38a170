// The one place that maps rocksdb::Status to jaiminho::Error.
#pragma once

#include <rocksdb/status.h>

#include <string_view>

#include "jaiminho/result.h"

namespace jaiminho::internal {

// `context` says what was being done, naming the path, stream or record:
// "commit to /var/gw.db", "open /var/gw.db".
Error FromRocks(const rocksdb::Status& s, std::string_view context);

inline Status ToStatus(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return {};
  return tl::unexpected(FromRocks(s, context));
}

}  // namespace jaiminho::internal
