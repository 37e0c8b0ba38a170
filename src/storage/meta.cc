#include "storage/meta.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "jaiminho/fb/meta_generated.h"
#include "storage/keys.h"
#include "util/macros.h"

namespace jaiminho::internal {

bool StreamConfig::operator==(const StreamConfig& o) const {
  return strategy == o.strategy && retry.max_attempts == o.retry.max_attempts &&
         retry.initial_backoff == o.retry.initial_backoff && retry.max_backoff == o.retry.max_backoff &&
         retry.multiplier == o.retry.multiplier && retry.jitter == o.retry.jitter && on_exhaustion == o.on_exhaustion &&
         time_to_delete == o.time_to_delete && quota.max_events == o.quota.max_events &&
         quota.max_bytes == o.quota.max_bytes && quota.policy == o.quota.policy &&
         quota.drop_keep_order == o.quota.drop_keep_order;
}

std::string StreamMetaKey(std::string_view stream, std::string_view field) {
  return fmt::format("stream/{}/{}", stream, field);
}

std::string EncodeU64(uint64_t v) {
  std::string s(8, '\0');
  PutBigEndian64(s.data(), v);
  return s;
}

Result<uint64_t> DecodeU64(std::string_view v, std::string_view what) {
  if (v.size() != 8) {
    return MakeError(ErrorCode::kCorruption, fmt::format("{}: expected 8 bytes, found {}", what, v.size()));
  }
  return GetBigEndian64(v.data());
}

std::string EncodeU32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 3; i >= 0; --i) {
    s[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return s;
}

Result<uint32_t> DecodeU32(std::string_view v, std::string_view what) {
  if (v.size() != 4) {
    return MakeError(ErrorCode::kCorruption, fmt::format("{}: expected 4 bytes, found {}", what, v.size()));
  }
  uint32_t x = 0;
  for (int i = 0; i < 4; ++i)
    x = (x << 8) | static_cast<unsigned char>(v[i]);
  return x;
}

std::string EncodeStreamConfig(const StreamConfig& c) {
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.ForceDefaults(true);
  fb::StreamConfigBuilder b(fbb);
  b.add_version(1);
  b.add_strategy(static_cast<fb::Strategy>(c.strategy));
  b.add_max_attempts(c.retry.max_attempts);
  b.add_initial_backoff_us(c.retry.initial_backoff.count());
  b.add_max_backoff_us(c.retry.max_backoff.count());
  b.add_backoff_multiplier(c.retry.multiplier);
  b.add_jitter(c.retry.jitter);
  b.add_on_exhaustion(static_cast<uint8_t>(c.on_exhaustion));
  b.add_time_to_delete_s(c.time_to_delete.count());
  b.add_quota_max_events(c.quota.max_events);
  b.add_quota_max_bytes(c.quota.max_bytes);
  b.add_quota_policy(static_cast<uint8_t>(c.quota.policy));
  b.add_quota_drop_keep_order(c.quota.drop_keep_order);
  fbb.Finish(b.Finish(), fb::StreamConfigIdentifier());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

Result<StreamConfig> DecodeStreamConfig(std::string_view bytes, std::string_view stream) {
  auto bad = [&](std::string_view why) {
    return MakeError(ErrorCode::kCorruption, fmt::format("stream '{}': bad stored config: {}", stream, why));
  };
  // Values from RocksDB are not aligned: verify an aligned copy.
  std::unique_ptr<uint64_t[]> copy(new uint64_t[(bytes.size() + 7) / 8 + 1]);
  std::memcpy(copy.get(), bytes.data(), bytes.size());
  const auto* base = reinterpret_cast<const uint8_t*>(copy.get());
  if (bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(base, fb::StreamConfigIdentifier())) {
    return bad("missing JMSC identifier");
  }
  flatbuffers::Verifier v(base, bytes.size());
  if (!fb::VerifyStreamConfigBuffer(v)) return bad("flatbuffers verification failed");
  const fb::StreamConfig* t = fb::GetStreamConfig(base);
  if (t->version() != 1) return bad(fmt::format("unknown version {}", t->version()));
  StreamConfig c;
  c.strategy = static_cast<Strategy>(t->strategy());
  c.retry.max_attempts = t->max_attempts();
  c.retry.initial_backoff = std::chrono::microseconds(t->initial_backoff_us());
  c.retry.max_backoff = std::chrono::microseconds(t->max_backoff_us());
  c.retry.multiplier = t->backoff_multiplier();
  c.retry.jitter = t->jitter();
  c.on_exhaustion = static_cast<OnExhaustion>(t->on_exhaustion());
  c.time_to_delete = std::chrono::seconds(t->time_to_delete_s());
  c.quota.max_events = t->quota_max_events();
  c.quota.max_bytes = t->quota_max_bytes();
  // Records written before quotas have no policy byte: the default.
  c.quota.policy = t->quota_policy() == 0 ? QuotaPolicy::kReject : static_cast<QuotaPolicy>(t->quota_policy());
  c.quota.drop_keep_order = t->quota_drop_keep_order();
  if (c.quota.policy != QuotaPolicy::kReject && c.quota.policy != QuotaPolicy::kDropOldest) {
    return bad(fmt::format("unknown quota policy {}", t->quota_policy()));
  }
  std::string where = fmt::format("stored config of stream '{}'", stream);
  if (auto s = ValidateStrategy(c.strategy, where); !s) return bad(s.error().message());
  if (auto s = ValidateRetryPolicy(c.retry, where); !s) return bad(s.error().message());
  if (auto s = ValidateTimeToDelete(c.time_to_delete, where); !s) return bad(s.error().message());
  if (c.on_exhaustion != OnExhaustion::kBlock && c.on_exhaustion != OnExhaustion::kPark) {
    return bad(fmt::format("unknown on_exhaustion {}", static_cast<int>(c.on_exhaustion)));
  }
  return c;
}

Status ValidateStreamName(std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("stream name must be 1-128 bytes, got {} bytes", name.size()));
  }
  for (char c : name) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("stream name '{}' has byte 0x{:02x}; allowed: [A-Za-z0-9._-]", name,
                                   static_cast<unsigned char>(c)));
    }
  }
  return {};
}

Status ValidateRetryPolicy(const RetryPolicy& r, std::string_view where) {
  auto bad = [&](std::string msg) { return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: {}", where, msg)); };
  if (r.initial_backoff.count() <= 0) {
    return bad(fmt::format("retry.initial_backoff must be > 0, got {} us", r.initial_backoff.count()));
  }
  if (r.max_backoff < r.initial_backoff) {
    return bad(fmt::format("retry.max_backoff ({} us) must be >= retry.initial_backoff ({} us)", r.max_backoff.count(),
                           r.initial_backoff.count()));
  }
  if (!(r.multiplier >= 1.0) || !std::isfinite(r.multiplier)) {
    return bad(fmt::format("retry.multiplier must be >= 1, got {}", r.multiplier));
  }
  if (!(r.jitter >= 0.0 && r.jitter < 1.0)) return bad(fmt::format("retry.jitter must be in [0, 1), got {}", r.jitter));
  return {};
}

Status ValidateTimeToDelete(std::chrono::seconds ttd, std::string_view where) {
  if (ttd.count() <= 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: time_to_delete must be > 0, got {} s", where, ttd.count()));
  }
  return {};
}

Status ValidateStrategy(Strategy s, std::string_view where) {
  if (s != Strategy::kPublishOnCommit && s != Strategy::kKeepOrder) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: unknown strategy {} (expected kPublishOnCommit or kKeepOrder)", where, static_cast<int>(s)));
  }
  return {};
}

}  // namespace jaiminho::internal
