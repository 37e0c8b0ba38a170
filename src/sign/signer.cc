#include "sign/signer.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cstring>

#include "util/macros.h"

namespace jaiminho::internal {
namespace {

constexpr std::string_view kDomain = "jaiminho.event.v1";

void PutU32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutLp(std::string& out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

Error Bad(std::string msg) {
  return Error(ErrorCode::kInvalidArgument, "OutboxOptions.signing: " + std::move(msg));
}

}  // namespace

Result<std::unique_ptr<Signer>> Signer::Make(const SigningOptions& o, const DatabaseId& db) {
  JM_RETURN_IF_ERROR(Validate(o));
  std::unique_ptr<Signer> s(new Signer());
  s->keys_ = o.keys;
  s->db_ = db;
  const bool have = !o.keys.empty();
  s->signs_ = o.sign_events.value_or(have);
  s->verifies_ = o.verify_signatures.value_or(have);
  s->requires_ = o.require_signature.value_or(s->signs_);
  return s;
}

Status Signer::Validate(const SigningOptions& o) {
  const bool have = !o.keys.empty();
  if (!have && (o.sign_events.value_or(false) || o.verify_signatures.value_or(false))) {
    return tl::unexpected(Bad("sign_events / verify_signatures need at least one key"));
  }
  for (size_t i = 0; i < o.keys.size(); ++i) {
    const auto& k = o.keys[i];
    if (k.id.empty() || k.id.size() > 64) {
      return tl::unexpected(Bad(fmt::format("keys[{}].id must be 1-64 bytes, got {}", i, k.id.size())));
    }
    if (k.secret.size() < 16) {
      return tl::unexpected(
          Bad(fmt::format("keys[{}] ('{}'): secret must be at least 16 bytes, got {}", i, k.id, k.secret.size())));
    }
    for (size_t j = 0; j < i; ++j) {
      if (o.keys[j].id == k.id) return tl::unexpected(Bad(fmt::format("key id '{}' is listed twice", k.id)));
    }
  }
  return {};
}

Digest Signer::FieldsDigest(const EnvelopeFields& f) {
  thread_local std::string buf;
  buf.clear();
  PutLp(buf, f.type);
  PutLp(buf, f.key);
  PutLp(buf, f.payload);
  PutLp(buf, f.encoding);
  PutU32(buf, static_cast<uint32_t>(f.headers.size()));
  for (const Header& h : f.headers) {
    PutLp(buf, h.name);
    PutLp(buf, h.value);
  }
  buf.push_back(static_cast<char>(f.strategy));
  PutU64(buf, static_cast<uint64_t>(f.created_at));
  Digest d;
  SHA256(reinterpret_cast<const unsigned char*>(buf.data()), buf.size(), d.data());
  return d;
}

void Signer::Mac(const SigningKey& key, std::string_view stream, uint64_t seq, const Digest& fields,
                 uint8_t out[kSignatureBytes]) const {
  thread_local std::string msg;
  msg.clear();
  msg.append(kDomain);
  msg.append(reinterpret_cast<const char*>(db_.bytes.data()), db_.bytes.size());
  PutLp(msg, stream);
  PutU64(msg, seq);
  PutLp(msg, key.id);
  msg.append(reinterpret_cast<const char*>(fields.data()), fields.size());
  unsigned int len = kSignatureBytes;
  HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
}

void Signer::Sign(std::string_view stream, uint64_t seq, const Digest& fields, uint8_t out[kSignatureBytes]) const {
  Mac(keys_.front(), stream, seq, fields, out);
}

Status Signer::Verify(const DecodedEnvelope& d, std::string_view stream) const {
  const Event& e = d.event;
  if (d.signature.empty()) {
    if (!requires_) return {};
    return MakeError(ErrorCode::kTampered, fmt::format("event {}/{} carries no signature", stream, e.id.seq));
  }
  const SigningKey* key = nullptr;
  for (const auto& k : keys_) {
    if (k.id == e.key_id) key = &k;
  }
  if (key == nullptr) {
    return MakeError(
        ErrorCode::kTampered,
        fmt::format("event {}/{} is signed with key '{}', which is not an accepted key", stream, e.id.seq, e.key_id));
  }
  if (d.signature.size() != kSignatureBytes) {
    return MakeError(ErrorCode::kTampered,
                     fmt::format("event {}/{} has a {}-byte signature", stream, e.id.seq, d.signature.size()));
  }
  uint8_t expect[kSignatureBytes];
  Mac(*key, stream, e.id.seq, FieldsDigest(FieldsOf(d)), expect);
  if (CRYPTO_memcmp(expect, d.signature.data(), kSignatureBytes) != 0) {
    return MakeError(
        ErrorCode::kTampered,
        fmt::format("event {}/{} has been tampered: signature does not match (key '{}')", stream, e.id.seq, e.key_id));
  }
  return {};
}

}  // namespace jaiminho::internal
