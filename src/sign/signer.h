// Event signatures: HMAC-SHA256 (OpenSSL libcrypto) with key ids for rotation.
//
// signature = HMAC-SHA256(key, "jaiminho.event.v1" || db_id || lp(stream) || seq ||
//                              lp(key_id) || SHA-256(fields))
// fields    = lp(type) lp(key) lp(payload) lp(encoding) u32(#headers)
//             {lp(name) lp(value)}* u8(strategy) i64(created_at)
// where lp(x) = u32 big-endian length then the bytes, and integers are
// big-endian. The field digest is computed when the event is enqueued (in the
// caller's thread); only the final HMAC, over ~100 bytes, runs at commit, when
// the seq is known.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "jaiminho/event.h"
#include "jaiminho/options.h"
#include "jaiminho/result.h"
#include "storage/envelope.h"

namespace jaiminho::internal {

inline constexpr size_t kSignatureBytes = 32;
using Digest = std::array<uint8_t, 32>;

class Signer {
 public:
  // kInvalidArgument naming the problem, before anything is opened.
  static Status Validate(const SigningOptions& options);
  // REQUIRES: Validate(options) succeeded.
  static Result<std::unique_ptr<Signer>> Make(const SigningOptions& options, const DatabaseId& db);

  bool signs() const { return signs_; }
  bool verifies() const { return verifies_; }
  const std::string& signing_key_id() const { return keys_.front().id; }

  // The digest of the fields covered besides stream/seq/key id.
  static Digest FieldsDigest(const EnvelopeFields& f);
  // REQUIRES: signs().
  void Sign(std::string_view stream, uint64_t seq, const Digest& fields, uint8_t out[kSignatureBytes]) const;

  // kTampered with the reason when the record does not verify under the
  // policy. REQUIRES: verifies().
  Status Verify(const DecodedEnvelope& d, std::string_view stream) const;

 private:
  Signer() = default;
  void Mac(const SigningKey& key, std::string_view stream, uint64_t seq, const Digest& fields,
           uint8_t out[kSignatureBytes]) const;

  std::vector<SigningKey> keys_;
  DatabaseId db_;
  bool signs_ = false;
  bool verifies_ = false;
  bool requires_ = false;
};

}  // namespace jaiminho::internal
