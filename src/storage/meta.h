// Records of the jaiminho.meta column family. ON-DISK FORMAT.
//
//   "format"                 uint32 big-endian: the database's format version
//   "db_id"                  16 random bytes: the database identity in EventIds
//   "stream/<name>/config"   StreamConfig FlatBuffer (fbs/meta.fbs)
//   "stream/<name>/hwm"      uint64 big-endian: seqs below it may have been issued;
//                            the next process continues from it
//   "stream/<name>/cursor"   uint64 big-endian: no pending key of the stream is below it
//   "stream/<name>/last"     uint64 big-endian: the last seq assigned, written with each
//                            seq reservation and at a clean close (exact then; after a
//                            crash, a lower bound); absent in databases written before it
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "jaiminho/options.h"
#include "jaiminho/result.h"

namespace jaiminho::internal {

inline constexpr std::string_view kMetaFamily = "jaiminho.meta";
inline constexpr std::string_view kStreamFamilyPrefix = "jaiminho.stream.";
inline constexpr std::string_view kFormatKey = "format";
inline constexpr std::string_view kDbIdKey = "db_id";

// Resolved per-stream settings, as stored.
struct StreamConfig {
  Strategy strategy = Strategy::kPublishOnCommit;
  RetryPolicy retry;
  OnExhaustion on_exhaustion = OnExhaustion::kBlock;
  std::chrono::seconds time_to_delete{std::chrono::hours(24 * 7)};
  StreamQuota quota{};
  bool has_quota() const { return quota.max_events != 0 || quota.max_bytes != 0; }
  bool operator==(const StreamConfig& o) const;
};

std::string StreamMetaKey(std::string_view stream, std::string_view field);  // field: config|hwm|cursor|last

std::string EncodeU64(uint64_t v);
// kCorruption naming `what` when the value is not 8 bytes.
Result<uint64_t> DecodeU64(std::string_view v, std::string_view what);
std::string EncodeU32(uint32_t v);
Result<uint32_t> DecodeU32(std::string_view v, std::string_view what);

std::string EncodeStreamConfig(const StreamConfig& c);
// Verifies; kCorruption naming the stream when bad.
Result<StreamConfig> DecodeStreamConfig(std::string_view bytes, std::string_view stream);

// Validation, shared by Open, OpenStream and the tool. Errors name the option.
Status ValidateStreamName(std::string_view name);
Status ValidateRetryPolicy(const RetryPolicy& r, std::string_view where);
Status ValidateTimeToDelete(std::chrono::seconds ttd, std::string_view where);
Status ValidateStrategy(Strategy s, std::string_view where);

}  // namespace jaiminho::internal
