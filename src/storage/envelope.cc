#include "storage/envelope.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>

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
  // Our envelope's inline part is well under 160 bytes (19 fields of at most 8).
  constexpr size_t kMaxInline = 160;
  if (tsize < sizeof(flatbuffers::soffset_t) || tsize > kMaxInline) return false;
  // Every inline field, the patchable ones included, inside the table's inline
  // bytes and owning its bytes (one byte map, no allocation: the relay decodes
  // every record it reads). A field's bytes are tested and marked with one
  // 8-byte load and store (the map has 8 bytes of padding for the last field).
  static constexpr uint8_t kSize[] = {2, 8, 4, 4, 4, 4, 4, 4, 8, 1, 4, 4, 8, 8, 4, 4, 4, 4, 4};
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
  // A vector of tables: the vector, and each table's vtable and inline bytes.
  auto tables = [&](const auto* v) {
    auto* p = reinterpret_cast<const uint8_t*>(v);
    outside(p, p + 4 + size_t{4} * v->size());
    for (const auto* t : *v) {
      auto* tp = reinterpret_cast<const uint8_t*>(t);
      const uint8_t* tv = tp - flatbuffers::ReadScalar<flatbuffers::soffset_t>(tp);
      outside(tv, tv + flatbuffers::ReadScalar<flatbuffers::voffset_t>(tv));
      outside(tp, tp + flatbuffers::ReadScalar<flatbuffers::voffset_t>(tv + 2));
    }
  };
  if (const auto* hs = env->headers(); hs != nullptr) {
    tables(hs);
    for (const fb::Header* h : *hs) {
      string(h->name());
      string(h->value());
    }
  }
  if (const auto* hs = env->history(); hs != nullptr) {
    tables(hs);
    for (const fb::HistoryEntry* h : *hs) {
      string(h->user());
      string(h->action());
      string(h->reason());
      string(h->previous_note());
    }
  }
  return ok;
}

Error Corrupt(std::string_view what) {
  return Error(ErrorCode::kCorruption, fmt::format("bad envelope: {}", what));
}

// Stores a scalar little-endian, as FlatBuffers does.
template <class T>
void StoreLE(uint8_t* p, T v) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &v, sizeof(T));
  } else {
    auto u = static_cast<std::make_unsigned_t<T>>(v);
    for (size_t i = 0; i < sizeof(T); ++i)
      p[i] = static_cast<uint8_t>(static_cast<uint64_t>(u) >> (8 * i));
  }
}

// The envelope without headers, written directly: the same steps as
// FlatBufferBuilder (flatbuffers 2.0.8, flatbuffer_builder.h) takes in
// EncodeEnvelopeWithBuilder below, in the same order, so the bytes are the
// same (tests/codec_test.cc compares the two on every combination of sizes it
// tries); without its bookkeeping (field list, vtable search, growth checks):
// 861 instructions an envelope against 1,943 (callgrind, the commit bench's
// envelope), 393 when the layout of the previous one is reused (Layout below).
// A FlatBuffers layout depends only on the sizes and presence of the fields,
// never on their contents.
class DownwardWriter {
 public:
  // REQUIRES: the `room` bytes before `end` are writable, and enough for
  // everything written. Zeroes them: padding is then only a move.
  DownwardWriter(uint8_t* end, size_t room) : end_(end), cur_(end) { std::memset(end - room, 0, room); }

  uint32_t size() const { return static_cast<uint32_t>(end_ - cur_); }
  const uint8_t* data() const { return cur_; }
  size_t minalign() const { return minalign_; }

  void Fill(size_t n) { cur_ -= n; }  // zero bytes (the constructor zeroed them)
  void Push(const void* p, size_t n) {
    cur_ -= n;
    if (n != 0) std::memcpy(cur_, p, n);
  }
  static size_t Padding(size_t size, size_t align) { return (~size + 1) & (align - 1); }
  void Align(size_t a) {
    minalign_ = std::max(minalign_, a);
    Fill(Padding(size(), a));
  }
  void PreAlign(size_t len, size_t a) {
    if (len == 0) return;
    minalign_ = std::max(minalign_, a);
    Fill(Padding(size() + len, a));
  }
  template <class T>
  uint32_t Scalar(T v) {
    Align(sizeof(T));
    cur_ -= sizeof(T);
    StoreLE(cur_, v);
    return size();
  }
  // CreateString.
  [[gnu::always_inline]] uint32_t String(std::string_view s) {
    PreAlign(s.size() + 1, sizeof(uint32_t));
    Fill(1);
    Push(s.data(), s.size());
    return Scalar(static_cast<uint32_t>(s.size()));
  }
  // CreateVector<uint8_t>.
  [[gnu::always_inline]] uint32_t Bytes(std::string_view s) {
    PreAlign(s.size(), sizeof(uint32_t));
    Push(s.data(), s.size());
    return Scalar(static_cast<uint32_t>(s.size()));
  }
  uint32_t ReferTo(uint32_t off) {
    Align(sizeof(uint32_t));
    return size() - off + static_cast<uint32_t>(sizeof(uint32_t));
  }
  uint8_t* At(uint32_t off) { return end_ - off; }

 private:
  uint8_t* const end_;
  uint8_t* cur_;
  size_t minalign_ = 1;
};

// One table being written (StartTable .. EndTable), the only one of its buffer.
class TableWriter {
 public:
  explicit TableWriter(DownwardWriter& w) : w_(w), start_(w.size()) {}
  template <class T>
  uint32_t Add(flatbuffers::voffset_t field, T v) {
    uint32_t off = w_.Scalar(v);
    Track(field, off);
    return off;
  }
  // REQUIRES: target != 0 (0: the field is absent, not added).
  [[gnu::always_inline]] void AddOffset(flatbuffers::voffset_t field, uint32_t target) {
    Track(field, w_.Scalar(w_.ReferTo(target)));
  }
  uint32_t End() {
    const uint32_t vtableoffsetloc = w_.Scalar(int32_t{0});
    const auto vsize = std::max<flatbuffers::voffset_t>(static_cast<flatbuffers::voffset_t>(max_field_ + 2), 4);
    w_.Fill(vsize);
    uint8_t* vt = w_.At(w_.size());
    auto put16 = [](uint8_t* p, uint32_t v) {
      p[0] = static_cast<uint8_t>(v);
      p[1] = static_cast<uint8_t>(v >> 8);
    };
    put16(vt, vsize);
    put16(vt + 2, vtableoffsetloc - start_);
    for (size_t i = 0; i < n_; ++i)
      put16(vt + fields_[i].id, vtableoffsetloc - fields_[i].off);
    const auto soff = static_cast<int32_t>(w_.size()) - static_cast<int32_t>(vtableoffsetloc);
    uint8_t* t = w_.At(vtableoffsetloc);
    for (size_t i = 0; i < 4; ++i)
      t[i] = static_cast<uint8_t>(static_cast<uint32_t>(soff) >> (8 * i));
    return vtableoffsetloc;
  }

 private:
  void Track(flatbuffers::voffset_t field, uint32_t off) {
    fields_[n_++] = {off, field};
    max_field_ = std::max(max_field_, field);
  }
  struct Loc {
    uint32_t off;
    flatbuffers::voffset_t id;
  };
  DownwardWriter& w_;
  const uint32_t start_;
  std::array<Loc, 17> fields_{};
  size_t n_ = 0;
  flatbuffers::voffset_t max_field_ = 0;
};

// The layout of the last envelope EncodeEnvelopeDirect wrote on this thread,
// whose bytes are still at the end of its scratch buffer. An envelope whose
// fields have the same sizes (and presence) has the same bytes but for the
// fields' contents and the scalars: it is that one with them overwritten (a
// stream of fixed-size readings: a few copies instead of an encoding).
struct Layout {
  static constexpr size_t kFields = 9;  // stream, type, key, payload, encoding, last_error, key_id, note, signature
  std::array<size_t, kFields> sizes{};
  std::array<uint32_t, kFields> data{};  // where each field's bytes start in the envelope
  uint32_t total = 0;                    // 0: none
  uint32_t created_at = 0, strategy = 0;
  ScalarOffsets offsets;
};

ScalarOffsets EncodeEnvelopeDirect(const EnvelopeFields& f, std::string* out) {
  const std::array<std::string_view, Layout::kFields> fields = {f.stream,     f.type,   f.key,  f.payload,  f.encoding,
                                                                f.last_error, f.key_id, f.note, f.signature};
  // Room for it all: the fields' bytes, and at most 8 more per string or
  // vector (length, NUL, padding), 17 * 16 for the table's fields with their
  // padding, 40 for the vtable and 16 for the root offset and identifier.
  size_t room = 512;
  for (std::string_view field : fields)
    room += field.size();
  thread_local std::unique_ptr<uint64_t[]> scratch;
  thread_local size_t scratch_bytes = 0;
  thread_local Layout last;
  if (scratch_bytes < room) {
    const size_t n = std::max<size_t>((room + 7) & ~size_t{7}, 4096);
    scratch.reset(new uint64_t[n / 8]);
    scratch_bytes = n;
    last.total = 0;
  }
  uint8_t* const end = reinterpret_cast<uint8_t*>(scratch.get()) + scratch_bytes;

  bool same = last.total != 0;
  for (size_t i = 0; i < Layout::kFields && same; ++i)
    same = fields[i].size() == last.sizes[i];
  if (same) {
    uint8_t* e = end - last.total;
    for (size_t i = 0; i < Layout::kFields; ++i) {
      if (!fields[i].empty()) std::memcpy(e + last.data[i], fields[i].data(), fields[i].size());
    }
    StoreLE(e + last.offsets.seq, f.seq);
    StoreLE(e + last.created_at, f.created_at);
    StoreLE(e + last.offsets.next_attempt_at, f.next_attempt_at);
    StoreLE(e + last.offsets.sent_at, f.sent_at);
    StoreLE(e + last.offsets.attempts, f.attempts);
    StoreLE(e + last.strategy, static_cast<uint8_t>(f.strategy));
    out->append(reinterpret_cast<const char*>(e), last.total);
    return last.offsets;
  }

  DownwardWriter w(end, room);
  std::array<uint32_t, Layout::kFields> at{};  // each field's offset (from the end); 0: absent
  at[0] = w.String(f.stream);
  at[1] = w.String(f.type);
  at[2] = w.String(f.key);
  at[3] = w.Bytes(f.payload);
  at[4] = w.String(f.encoding);
  if (!f.last_error.empty()) at[5] = w.String(f.last_error);
  if (!f.key_id.empty()) at[6] = w.String(f.key_id);
  if (!f.note.empty()) at[7] = w.String(f.note);
  if (!f.signature.empty()) at[8] = w.Bytes(f.signature);
  TableWriter t(w);
  const uint32_t seq = t.Add(fb::Envelope::VT_SEQ, f.seq);
  const uint32_t created_at = t.Add(fb::Envelope::VT_CREATED_AT, f.created_at);
  const uint32_t next_attempt_at = t.Add(fb::Envelope::VT_NEXT_ATTEMPT_AT, f.next_attempt_at);
  const uint32_t sent_at = t.Add(fb::Envelope::VT_SENT_AT, f.sent_at);
  t.AddOffset(fb::Envelope::VT_STREAM, at[0]);
  t.AddOffset(fb::Envelope::VT_TYPE, at[1]);
  t.AddOffset(fb::Envelope::VT_KEY, at[2]);
  t.AddOffset(fb::Envelope::VT_PAYLOAD, at[3]);
  t.AddOffset(fb::Envelope::VT_ENCODING, at[4]);
  const uint32_t attempts = t.Add(fb::Envelope::VT_ATTEMPTS, f.attempts);
  if (at[5] != 0) t.AddOffset(fb::Envelope::VT_LAST_ERROR, at[5]);
  if (at[8] != 0) t.AddOffset(fb::Envelope::VT_SIGNATURE, at[8]);
  if (at[6] != 0) t.AddOffset(fb::Envelope::VT_KEY_ID, at[6]);
  if (at[7] != 0) t.AddOffset(fb::Envelope::VT_NOTE, at[7]);
  t.Add(fb::Envelope::VT_VERSION, kEnvelopeVersion);
  const uint32_t strategy = t.Add(fb::Envelope::VT_STRATEGY, static_cast<uint8_t>(f.strategy));
  const uint32_t root = t.End();
  // Finish(root, identifier).
  w.PreAlign(sizeof(uint32_t) + flatbuffers::kFileIdentifierLength, w.minalign());
  w.Push(fb::EnvelopeIdentifier(), flatbuffers::kFileIdentifierLength);
  w.Scalar(w.ReferTo(root));

  const uint32_t total = w.size();
  ScalarOffsets o;
  o.seq = total - seq;
  o.attempts = total - attempts;
  o.next_attempt_at = total - next_attempt_at;
  o.sent_at = total - sent_at;
  if (at[8] != 0) o.signature = total - at[8] + sizeof(uint32_t);
  out->append(reinterpret_cast<const char*>(w.data()), total);

  last.total = total;
  for (size_t i = 0; i < Layout::kFields; ++i) {
    last.sizes[i] = fields[i].size();
    last.data[i] = at[i] == 0 ? 0 : total - at[i] + static_cast<uint32_t>(sizeof(uint32_t));
  }
  last.created_at = total - created_at;
  last.strategy = total - strategy;
  last.offsets = o;
  return o;
}

}  // namespace

ScalarOffsets EncodeEnvelope(const EnvelopeFields& f, std::string* out) {
  // Headers and histories (an operator's action) are left to the builder.
  if (f.headers.empty() && f.history.empty() && f.history_dropped == 0) return EncodeEnvelopeDirect(f, out);
  return EncodeEnvelopeWithBuilder(f, out);
}

ScalarOffsets EncodeEnvelopeWithBuilder(const EnvelopeFields& f, std::string* out) {
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
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::HistoryEntry>>> history = 0;
  if (!f.history.empty()) {
    auto str = [&](std::string_view v) {
      return v.empty() ? flatbuffers::Offset<flatbuffers::String>(0) : fbb.CreateString(v.data(), v.size());
    };
    std::vector<flatbuffers::Offset<fb::HistoryEntry>> hs;
    hs.reserve(f.history.size());
    for (const HistoryEntry& h : f.history) {
      auto user = str(h.user);
      auto action = str(h.action);
      auto reason = str(h.reason);
      auto previous = str(h.previous_note);
      hs.push_back(fb::CreateHistoryEntry(fbb, ToMicros(h.at), user, action, reason, previous));
    }
    history = fbb.CreateVector(hs);
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
  if (!history.IsNull()) b.add_history(history);
  if (!history.IsNull() || f.history_dropped != 0) b.add_history_dropped(f.history_dropped);
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

namespace {

// The structure of the last envelope this thread verified in full, so the
// next one of the same structure is verified without the generic walk (the
// relay decodes every record it reads, and a stream's records share one
// structure: flatbuffers 2.0.8's Verifier, the scalar checks and the overlap
// check were a third of a relay pass).
//
// A FlatBuffers table's structure is its root offset, the table's vtable
// offset and the vtable's bytes. Two buffers that agree on those have every
// inline field at the same place, so everything the Verifier and
// PatchableScalarsAreDisjoint check of the table holds for both once the
// buffer is long enough (`min_size`). What remains differs per record: each
// string and vector field's offset and length, checked here exactly as
// flatbuffers::Verifier::VerifyOffset and VerifyVectorOrString/VerifyString
// do. Structures with headers or a history (vectors of tables) are not
// memoized. Anything that does not match, or fails, takes the full path,
// which gives the error. tests/codec_test.cc and the envelope fuzzer compare
// the two paths.
class VerifiedShape {
 public:
  static constexpr size_t kMaxVtable = 64;
  // FLATBUFFERS_MIN_BUFFER_SIZE.
  static constexpr size_t kMinBuffer =
      sizeof(flatbuffers::uoffset_t) + sizeof(flatbuffers::soffset_t) + 2 * sizeof(flatbuffers::voffset_t);

  // True when `b` has the memoized structure and its strings and vectors are
  // in bounds: it verifies as the memoized one did.
  bool Matches(const uint8_t* b, size_t size) const {
    if (min_size_ == 0 || size < min_size_ || size >= FLATBUFFERS_MAX_BUFFER_SIZE) return false;
    if (std::memcmp(b, head_.data(), head_.size()) != 0) return false;
    if (std::memcmp(b + vtable_, vt_.data(), vsize_) != 0) return false;
    if (std::memcmp(b + table_, soffset_.data(), soffset_.size()) != 0) return false;
    for (size_t i = 0; i < kVar; ++i) {
      if (var_[i] != 0 && !FieldInBounds(b, size, var_[i], IsString(i), table_, table_end_)) return false;
    }
    return true;
  }

  // Decodes `b`, which Matches(): what DecodeEnvelopeInto's full path gives,
  // read at the memoized places. False when a field check fails (`*out` is
  // then decoded again by the full path, which gives the error).
  bool Decode(const uint8_t* b, DecodedEnvelope* out) const {
    const auto version = Scalar<uint16_t>(b, version_);
    const auto strategy = Scalar<uint8_t>(b, strategy_);
    if (version != kEnvelopeVersion || (strategy != static_cast<uint8_t>(Strategy::kPublishOnCommit) &&
                                        strategy != static_cast<uint8_t>(Strategy::kKeepOrder))) {
      return false;
    }
    // Each field read straight into `out`: a local array of the views cost a
    // `rep stos` a record (a quarter of this function in a relay pass).
    auto var = [&](size_t i) -> std::string_view {
      if (var_[i] == 0) return {};
      const uint8_t* vec = b + var_[i] + flatbuffers::ReadScalar<flatbuffers::uoffset_t>(b + var_[i]);
      return {reinterpret_cast<const char*>(vec) + sizeof(flatbuffers::uoffset_t),
              flatbuffers::ReadScalar<flatbuffers::uoffset_t>(vec)};
    };
    const std::string_view type = var(kType);
    if (type.empty() || var_[kStream] == 0) return false;
    DecodedEnvelope& d = *out;
    Event& e = d.event;
    e.id.seq = Scalar<uint64_t>(b, seq_);
    d.stream = var(kStream);
    e.id.stream = d.stream;
    e.type = type;
    e.key = var(kKey);
    e.payload = var(kPayload);
    e.encoding = var(kEncoding);
    e.created_at = FromMicros(Scalar<int64_t>(b, created_at_));
    e.strategy = static_cast<Strategy>(strategy);
    e.attempts = Scalar<uint32_t>(b, attempts_);
    e.last_error = var(kLastError);
    e.next_attempt_at = FromMicros(Scalar<int64_t>(b, next_attempt_at_));
    e.sent_at = FromMicros(Scalar<int64_t>(b, sent_at_));
    e.note = var(kNote);
    e.key_id = var(kKeyId);
    e.history_dropped = Scalar<uint32_t>(b, history_dropped_);
    d.signature = var(kSignature);
    d.offsets = offsets_;
    d.offsets.signature =
        d.signature.empty() ? 0 : static_cast<uint32_t>(reinterpret_cast<const uint8_t*>(d.signature.data()) - b);
    return true;
  }

  // Memoizes `b` (which verified and decoded in full) unless it has headers
  // or a history.
  void Remember(const uint8_t* b, const fb::Envelope* env) {
    min_size_ = 0;
    if (env->headers() != nullptr || env->history() != nullptr) return;
    const auto* table = reinterpret_cast<const uint8_t*>(env);
    const uint8_t* vtable = table - flatbuffers::ReadScalar<flatbuffers::soffset_t>(table);
    const auto vsize = flatbuffers::ReadScalar<flatbuffers::voffset_t>(vtable);
    const auto tsize = flatbuffers::ReadScalar<flatbuffers::voffset_t>(vtable + 2);
    if (vsize > kMaxVtable) return;
    table_ = static_cast<uint32_t>(table - b);
    table_end_ = table_ + tsize;
    vtable_ = static_cast<uint32_t>(vtable - b);
    vsize_ = vsize;
    std::memcpy(head_.data(), b, head_.size());
    std::memcpy(soffset_.data(), table, soffset_.size());
    std::memcpy(vt_.data(), vtable, vsize);
    auto at = [&](flatbuffers::voffset_t field) -> uint32_t {
      const uint8_t* p = AsTable(env)->GetAddressOf(field);
      return p == nullptr ? 0 : static_cast<uint32_t>(p - b);
    };
    static constexpr std::array<flatbuffers::voffset_t, kVar> kVarFields = {
        fb::Envelope::VT_STREAM,  fb::Envelope::VT_TYPE,     fb::Envelope::VT_KEY,
        fb::Envelope::VT_PAYLOAD, fb::Envelope::VT_ENCODING, fb::Envelope::VT_LAST_ERROR,
        fb::Envelope::VT_KEY_ID,  fb::Envelope::VT_NOTE,     fb::Envelope::VT_SIGNATURE};
    for (size_t i = 0; i < kVar; ++i)
      var_[i] = at(kVarFields[i]);
    seq_ = at(fb::Envelope::VT_SEQ);
    created_at_ = at(fb::Envelope::VT_CREATED_AT);
    next_attempt_at_ = at(fb::Envelope::VT_NEXT_ATTEMPT_AT);
    sent_at_ = at(fb::Envelope::VT_SENT_AT);
    attempts_ = at(fb::Envelope::VT_ATTEMPTS);
    version_ = at(fb::Envelope::VT_VERSION);
    strategy_ = at(fb::Envelope::VT_STRATEGY);
    history_dropped_ = at(fb::Envelope::VT_HISTORY_DROPPED);
    offsets_ = OffsetsOf(b, env);
    min_size_ =
        std::max({kMinBuffer, head_.size(), table_end_, size_t{table_} + soffset_.size(), size_t{vtable_} + vsize});
  }

  void Forget() { min_size_ = 0; }

 private:
  // The variable-size fields, in this order.
  enum Var : size_t { kStream, kType, kKey, kPayload, kEncoding, kLastError, kKeyId, kNote, kSignature, kVar };
  static bool IsString(size_t i) { return i != kPayload && i != kSignature; }

  // A scalar field at `pos` (0: absent, its default 0), read as the accessors do.
  template <class T>
  static T Scalar(const uint8_t* b, uint32_t pos) {
    return pos == 0 ? T{0} : flatbuffers::ReadScalar<T>(b + pos);
  }

  // flatbuffers::Verifier::Verify(elem, len).
  static bool InBuffer(size_t size, size_t elem, size_t len) { return len < size && elem <= size - len; }

  // The Verifier's VerifyOffset at `pos` (aligned: the memoized buffer's was),
  // then VerifyString (`string`) or VerifyVector<uint8_t> at its target; and,
  // as PatchableScalarsAreDisjoint requires, not on the table's inline bytes
  // [table, table_end).
  static bool FieldInBounds(const uint8_t* b, size_t size, uint32_t pos, bool string, size_t table, size_t table_end) {
    const auto o = flatbuffers::ReadScalar<flatbuffers::uoffset_t>(b + pos);
    if (o == 0 || static_cast<flatbuffers::soffset_t>(o) < 0 || !InBuffer(size, size_t{pos} + o, 1)) return false;
    const size_t vec = size_t{pos} + o;
    if ((vec & (sizeof(flatbuffers::uoffset_t) - 1)) != 0 || !InBuffer(size, vec, sizeof(flatbuffers::uoffset_t))) {
      return false;
    }
    const auto n = flatbuffers::ReadScalar<flatbuffers::uoffset_t>(b + vec);
    if (n >= FLATBUFFERS_MAX_BUFFER_SIZE) return false;
    const size_t bytes = sizeof(flatbuffers::uoffset_t) + size_t{n};
    if (!InBuffer(size, vec, bytes)) return false;
    if (string && !(InBuffer(size, vec + bytes, 1) && b[vec + bytes] == 0)) return false;
    const size_t end = vec + bytes + (string ? 1 : 0);
    return end <= table || vec >= table_end;
  }

  size_t min_size_ = 0;  // 0: nothing memoized
  uint32_t table_ = 0, vtable_ = 0;
  size_t table_end_ = 0;  // table_ + its inline size
  size_t vsize_ = 0;
  std::array<uint8_t, 8> head_{};  // root offset and identifier
  std::array<uint8_t, sizeof(flatbuffers::soffset_t)> soffset_{};
  std::array<uint8_t, kMaxVtable> vt_{};
  // Where each field is, from the buffer's start (0: absent).
  std::array<uint32_t, kVar> var_{};  // the offset to its string or vector
  uint32_t seq_ = 0, created_at_ = 0, next_attempt_at_ = 0, sent_at_ = 0, attempts_ = 0, version_ = 0, strategy_ = 0,
           history_dropped_ = 0;
  ScalarOffsets offsets_;  // but the signature's, which moves with the strings before it
};

thread_local VerifiedShape verified_shape;
thread_local uint64_t verified_shape_hits = 0;

}  // namespace

void ForgetEnvelopeShape() {
  verified_shape.Forget();
}

uint64_t EnvelopeShapeHits() {
  return verified_shape_hits;
}

Status DecodeEnvelopeInto(std::string_view bytes, DecodedEnvelope* out) {
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  // BufferHasIdentifier compares with strncmp, a library call: a fixed-size
  // memcmp compiles to one 4-byte comparison (the identifier has no NUL).
  if (bytes.size() < 8 || std::memcmp(base + sizeof(flatbuffers::uoffset_t), fb::EnvelopeIdentifier(),
                                      flatbuffers::kFileIdentifierLength) != 0) {
    return tl::unexpected(Corrupt(fmt::format("missing JMEV identifier ({} bytes)", bytes.size())));
  }
  if (verified_shape.Matches(base, bytes.size()) && verified_shape.Decode(base, out)) {
    ++verified_shape_hits;
    return {};
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
  if (const auto* hs = env->history(); hs != nullptr) {
    e.history.reserve(hs->size());
    for (const fb::HistoryEntry* h : *hs) {
      e.history.push_back(HistoryEntry{FromMicros(h->at()), View(h->user()), View(h->action()), View(h->reason()),
                                       View(h->previous_note())});
    }
  }
  e.history_dropped = env->history_dropped();
  d.signature = View(env->signature());
  d.offsets = OffsetsOf(base, env);
  verified_shape.Remember(base, env);
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
  f.history = e.history;
  f.history_dropped = e.history_dropped;
  return f;
}

std::string CutText(std::string_view text, size_t limit) {
  if (text.size() <= limit) return std::string(text);
  constexpr std::string_view kMark = "…";
  size_t end = limit > kMark.size() ? limit - kMark.size() : 0;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80)
    --end;
  std::string out(text.substr(0, end));
  out += kMark;
  return out;
}

void AppendHistory(const Event& e, const HistoryEntry& action, HistoryUpdate* out) {
  out->owned[0] = CutText(action.user, kMaxHistoryText);
  out->owned[1] = CutText(action.action, kMaxHistoryText);
  out->owned[2] = CutText(action.reason, kMaxHistoryText);
  out->owned[3] = CutText(e.note, kMaxHistoryText);
  const size_t keep = std::min(e.history.size(), kMaxHistoryEntries - 1);
  const uint64_t dropped = uint64_t{e.history_dropped} + (e.history.size() - keep);
  out->dropped = static_cast<uint32_t>(std::min<uint64_t>(dropped, UINT32_MAX));
  out->entries.assign(e.history.end() - static_cast<std::ptrdiff_t>(keep), e.history.end());
  out->entries.push_back(HistoryEntry{action.at, out->owned[0], out->owned[1], out->owned[2], out->owned[3]});
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
