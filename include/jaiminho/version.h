// The library's version: the one place it is written (CMakeLists.txt reads it).
#pragma once

#define JAIMINHO_VERSION_MAJOR 0
#define JAIMINHO_VERSION_MINOR 1
#define JAIMINHO_VERSION_PATCH 0
#define JAIMINHO_VERSION_STRING "0.1.0"

namespace jaiminho {
// The on-disk format this library writes and the newest it can read. A database
// whose format is newer is refused at Open (ErrorCode::kFormatTooNew); an older
// one is upgraded in place by Outbox::Open (format 1 -> 2: storage/delivery_log.h).
inline constexpr unsigned kFormatVersion = 2;
}  // namespace jaiminho
