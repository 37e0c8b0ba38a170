#include "storage/envelope.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <optional>

#include "jaiminho/fb/envelope_generated.h"
#include "util/macros.h"

namespace jaiminho::internal {
namespace {

flatbuffers::FlatBufferBuilder& ThreadBuilder() {
  thread_local flatbuffers::FlatBufferBuilder fbb(1024);
  return fbb;
}

// Generated tables inherit privately from flatbuffers::Table, at the same address.
const flatbuffers::Table* AsTable(const fb::Envelope* env) {
  return reinterpret_cast<const flatbuffers::Table*>(env);
}

uint32_t OffsetOf(const uint8_t* base, const fb::Envelope* env, flatbuffers::voffset_t field) {
  const uint8_t* p = AsTable(env)->GetAddressOf(field);
  return static_cast<uint32_t>(p - base);
}

ScalarOffsets OffsetsOf(const uint8_t* base, const fb::Envelope* env) {
  ScalarOffsets o;
  o.seq = OffsetOf(base, env, fb::Envelope::VT_SEQ);
  o.attempts = OffsetOf(base, env, fb::Envelope::VT_ATTEMPTS);
  o.next_attempt_at = OffsetOf(base, env, fb::Envelope::VT_NEXT_ATTEMPT_AT);
  o.sent_at = OffsetOf(base, env, fb::Envelope::VT_SENT_AT);
  if (const auto* sig = env->signature(); sig != nullptr && sig->size() > 0) {
    o.signature = static_cast<uint32_t>(sig->data() - base);
  }
  return o;
}

std::string_view View(const flatbuffers::String* s) {
  return s == nullptr ? std::string_view() : std::string_view(s->c_str(), s->size());
}

std::string_view View(const flatbuffers::Vector<uint8_t>* v) {
  return v == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(v->data()), v->size());
}

// A u64 whose first `n` bytes in memory (n <= 8) are 0xff, the others 0.
constexpr uint64_t FirstBytes(size_t n) {
  if (n >= 8) return ~uint64_t{0};
  if constexpr (std::endian::native == std::endian::little) return (uint64_t{1} << (8 * n)) - 1;
  return ~(~uint64_t{0} >> (8 * n));
}

// The relay updates seq, attempts, next_attempt_at and sent_at in place, so a
// verified buffer is not enough: a crafted vtable can place those scalars on
// bytes that belong to another field, the vtable, or a string or vector. They
// must each own their bytes.
bool PatchableScalarsAreDisjoint(const fb::Envelope* env) {
  const auto* table = reinterpret_cast<const uint8_t*>(env);
  const uint8_t* vtable = table - flatbuffers::ReadScalar<flatbuffers::soffset_t>(table);
  const auto vsize = flatbuffers::ReadScalar<flatbuffers::voffset_t>(vtable);
  const auto tsize = flatbuffers::ReadScalar<flatbuffers::voffset_t>(vtable + 2);
  // Our envelope's inline part is well under 128 bytes (17 fields of at most 8).
  constexpr size_t kMaxInline = 128;
  if (tsize < sizeof(flatbuffers::soffset_t) || tsize > kMaxInline) return false;
  // Every inline field, the patchable ones included, inside the table's inline
  // bytes and owning its bytes (one byte map, no allocation: the relay decodes
  // every record it reads). A field's bytes are tested and marked with one
  // 8-byte load and store (the map has 8 bytes of padding for the last field).
  static constexpr uint8_t kSize[] = {2, 8, 4, 4, 4, 4, 4, 4, 8, 1, 4, 4, 8, 8, 4, 4, 4};
  static constexpr auto kBytes = [] {
    std::array<uint64_t, sizeof kSize> m{};
    for (size_t id = 0; id < m.size(); ++id)
      m[id] = FirstBytes(kSize[id]);
    return m;
  }();
  uint8_t used[kMaxInline + 8] = {};
  std::memset(used, 0xff, sizeof(flatbuffers::soffset_t));
  const size_t nfields = std::min<size_t>((vsize - 4) / 2, sizeof kSize);
  for (size_t id = 0; id < nfields; ++id) {
    auto off = flatbuffers::ReadScalar<flatbuffers::voffset_t>(vtable + 4 + 2 * id);
    if (off == 0) continue;
    if (off + kSize[id] > tsize) return false;
    uint64_t window;
    std::memcpy(&window, used + off, 8);
    if ((window & kBytes[id]) != 0) return false;
    window |= kBytes[id];
    std::memcpy(used + off, &window, 8);
  }
  // Nothing the table refers to (its vtable, strings, vectors, header tables)
  // lies on its inline bytes.
  const uint8_t* const table_end = table + tsize;
  bool ok = true;
  auto outside = [&](const uint8_t* begin, const uint8_t* end) { ok = ok && (end <= table || begin >= table_end); };
  outside(vtable, vtable + vsize);
  auto string = [&](const flatbuffers::String* str) {
    if (str != nullptr) {
      auto* p = reinterpret_cast<const uint8_t*>(str);
      outside(p, p + 4 + str->size() + 1);
    }
  };
  string(env->stream());
  string(env->type());
  string(env->key());
  string(env->encoding());
  string(env->last_error());
  string(env->key_id());
  string(env->note());
  for (const auto* v : {env->payload(), env->signature()}) {
    if (v != nullptr) {
      auto* p = reinterpret_cast<const uint8_t*>(v);
      outside(p, p + 4 + v->size());
    }
  }
  if (const auto* hs = env->headers(); hs != nullptr) {
    auto* p = reinterpret_cast<const uint8_t*>(hs);
    outside(p, p + 4 + size_t{4} * hs->size());
    for (const fb::Header* h : *hs) {
      auto* hp = reinterpret_cast<const uint8_t*>(h);
      const uint8_t* hv = hp - flatbuffers::ReadScalar<flatbuffers::soffset_t>(hp);
      outside(hv, hv + flatbuffers::ReadScalar<flatbuffers::voffset_t>(hv));
      outside(hp, hp + flatbuffers::ReadScalar<flatbuffers::voffset_t>(hv + 2));
      string(h->name());
      string(h->value());
    }
  }
  return ok;
}

Error Corrupt(std::string_view what) {
  return Error(ErrorCode::kCorruption, fmt::format("bad envelope: {}", what));
}

}  // namespace

ScalarOffsets EncodeEnvelope(const EnvelopeFields& f, std::string* out) {
  auto& fbb = ThreadBuilder();
  fbb.Clear();
  fbb.ForceDefaults(true);
  auto stream = fbb.CreateString(f.stream.data(), f.stream.size());
  auto type = fbb.CreateString(f.type.data(), f.type.size());
  auto key = fbb.CreateString(f.key.data(), f.key.size());
  auto payload = fbb.CreateVector(reinterpret_cast<const uint8_t*>(f.payload.data()), f.payload.size());
  auto encoding = fbb.CreateString(f.encoding.data(), f.encoding.size());
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Header>>> headers = 0;
  if (!f.headers.empty()) {
    std::vector<flatbuffers::Offset<fb::Header>> hs;
    hs.reserve(f.headers.size());
    for (const Header& h : f.headers) {
      auto n = fbb.CreateString(h.name.data(), h.name.size());
      auto v = fbb.CreateString(h.value.data(), h.value.size());
      hs.push_back(fb::CreateHeader(fbb, n, v));
    }
    headers = fbb.CreateVector(hs);
  }
  flatbuffers::Offset<flatbuffers::String> last_error = 0, key_id = 0, note = 0;
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> signature = 0;
  if (!f.last_error.empty()) last_error = fbb.CreateString(f.last_error.data(), f.last_error.size());
  if (!f.key_id.empty()) key_id = fbb.CreateString(f.key_id.data(), f.key_id.size());
  if (!f.note.empty()) note = fbb.CreateString(f.note.data(), f.note.size());
  if (!f.signature.empty()) {
    signature = fbb.CreateVector(reinterpret_cast<const uint8_t*>(f.signature.data()), f.signature.size());
  }
  fb::EnvelopeBuilder b(fbb);
  b.add_seq(f.seq);
  b.add_created_at(f.created_at);
  b.add_next_attempt_at(f.next_attempt_at);
  b.add_sent_at(f.sent_at);
  b.add_stream(stream);
  b.add_type(type);
  b.add_key(key);
  b.add_payload(payload);
  b.add_encoding(encoding);
  if (!headers.IsNull()) b.add_headers(headers);
  b.add_attempts(f.attempts);
  if (!last_error.IsNull()) b.add_last_error(last_error);
  if (!signature.IsNull()) b.add_signature(signature);
  if (!key_id.IsNull()) b.add_key_id(key_id);
  if (!note.IsNull()) b.add_note(note);
  b.add_version(kEnvelopeVersion);
  b.add_strategy(static_cast<fb::Strategy>(f.strategy));
  fbb.Finish(b.Finish(), fb::EnvelopeIdentifier());

  const uint8_t* base = fbb.GetBufferPointer();
  ScalarOffsets offsets = OffsetsOf(base, flatbuffers::GetRoot<fb::Envelope>(base));
  out->append(reinterpret_cast<const char*>(base), fbb.GetSize());
  return offsets;
}

void PatchU64(char* envelope, uint32_t offset, uint64_t v) {
  uint8_t le[8];
  for (int i = 0; i < 8; ++i)
    le[i] = static_cast<uint8_t>(v >> (8 * i));
  std::memcpy(envelope + offset, le, 8);
}

void PatchU32(char* envelope, uint32_t offset, uint32_t v) {
  uint8_t le[4];
  for (int i = 0; i < 4; ++i)
    le[i] = static_cast<uint8_t>(v >> (8 * i));
  std::memcpy(envelope + offset, le, 4);
}

Status DecodeEnvelopeInto(std::string_view bytes, DecodedEnvelope* out) {
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(base, fb::EnvelopeIdentifier())) {
    return tl::unexpected(Corrupt(fmt::format("missing JMEV identifier ({} bytes)", bytes.size())));
  }
  flatbuffers::Verifier verifier(base, bytes.size());
  if (!fb::VerifyEnvelopeBuffer(verifier)) return tl::unexpected(Corrupt("flatbuffers verification failed"));
  const fb::Envelope* env = fb::GetEnvelope(base);
  if (env->version() != kEnvelopeVersion) {
    return tl::unexpected(Corrupt(fmt::format("unknown envelope version {}", env->version())));
  }
  auto strategy = static_cast<uint8_t>(env->strategy());
  if (strategy != static_cast<uint8_t>(Strategy::kPublishOnCommit) &&
      strategy != static_cast<uint8_t>(Strategy::kKeepOrder)) {
    return tl::unexpected(Corrupt(fmt::format("unknown strategy {}", strategy)));
  }
  if (env->type() == nullptr || env->type()->size() == 0) return tl::unexpected(Corrupt("empty type"));
  if (env->stream() == nullptr) return tl::unexpected(Corrupt("no stream"));
  // Scalars are always written; an envelope without them was not written by us.
  for (auto field :
       {fb::Envelope::VT_SEQ, fb::Envelope::VT_ATTEMPTS, fb::Envelope::VT_NEXT_ATTEMPT_AT, fb::Envelope::VT_SENT_AT}) {
    if (AsTable(env)->GetAddressOf(field) == nullptr) return tl::unexpected(Corrupt("missing scalar field"));
  }
  if (!PatchableScalarsAreDisjoint(env)) {
    return tl::unexpected(Corrupt("a scalar field overlaps other data"));
  }

  DecodedEnvelope& d = *out;
  Event& e = d.event;
  e.id.seq = env->seq();
  d.stream = View(env->stream());
  e.id.stream = d.stream;
  e.type = View(env->type());
  e.key = View(env->key());
  e.payload = View(env->payload());
  e.encoding = View(env->encoding());
  if (const auto* hs = env->headers(); hs != nullptr) {
    e.headers.reserve(hs->size());
    for (const fb::Header* h : *hs)
      e.headers.push_back(Header{View(h->name()), View(h->value())});
  }
  e.created_at = FromMicros(env->created_at());
  e.strategy = static_cast<Strategy>(strategy);
  e.attempts = env->attempts();
  e.last_error = View(env->last_error());
  e.next_attempt_at = FromMicros(env->next_attempt_at());
  e.sent_at = FromMicros(env->sent_at());
  e.note = View(env->note());
  e.key_id = View(env->key_id());
  d.signature = View(env->signature());
  d.offsets = OffsetsOf(base, env);
  return {};
}

Result<DecodedEnvelope> DecodeEnvelope(std::string_view bytes) {
  DecodedEnvelope d;
  JM_RETURN_IF_ERROR(DecodeEnvelopeInto(bytes, &d));
  return d;
}

EnvelopeFields FieldsOf(const DecodedEnvelope& d) {
  const Event& e = d.event;
  EnvelopeFields f;
  f.seq = e.id.seq;
  f.stream = d.stream;
  f.type = e.type;
  f.key = e.key;
  f.payload = e.payload;
  f.encoding = e.encoding;
  f.headers = e.headers;
  f.created_at = ToMicros(e.created_at);
  f.strategy = e.strategy;
  f.attempts = e.attempts;
  f.last_error = e.last_error;
  f.next_attempt_at = ToMicros(e.next_attempt_at);
  f.sent_at = ToMicros(e.sent_at);
  f.signature = d.signature;
  f.key_id = e.key_id;
  f.note = e.note;
  return f;
}

std::string_view AlignedArena::Copy(std::string_view bytes) {
  size_t need = (bytes.size() + 7) & ~size_t{7};
  if (need == 0) need = 8;
  while (current_ < blocks_.size() && blocks_[current_].capacity - blocks_[current_].used < need)
    ++current_;
  if (current_ == blocks_.size()) {
    Block b;
    b.capacity = std::max<size_t>(need, size_t{64} * 1024);
    b.words.reset(new uint64_t[b.capacity / 8]);
    blocks_.push_back(std::move(b));
  }
  Block& b = blocks_[current_];
  char* dst = reinterpret_cast<char*>(b.words.get()) + b.used;
  if (!bytes.empty()) std::memcpy(dst, bytes.data(), bytes.size());
  b.used += need;
  return {dst, bytes.size()};
}

void AlignedArena::Reset() {
  // Keep the standard blocks for reuse; drop the oversized ones.
  std::erase_if(blocks_, [](const Block& b) { return b.capacity != size_t{64} * 1024; });
  for (Block& b : blocks_)
    b.used = 0;
  current_ = 0;
}

}  // namespace jaiminho::internal
