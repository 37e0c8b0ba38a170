#include "storage/inbox_record.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

namespace jaiminho::internal {
namespace {

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads a varint; false at the end of the input or past 10 bytes.
bool GetVarint(std::string_view& in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    if (shift == 63 && byte > 1) return false;
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

std::string Hex(std::string_view bytes) {
  std::string out;
  for (char c : bytes)
    out += fmt::format("{:02x}", static_cast<uint8_t>(c));
  return out;
}

}  // namespace

uint32_t Crc32c(std::string_view bytes) {
  uint32_t c = 0xFFFFFFFFu;
  for (char ch : bytes)
    c = kCrcTable[(c ^ static_cast<uint8_t>(ch)) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string InboxKey(const DatabaseId& db, std::string_view stream) {
  std::string key;
  key.reserve(1 + db.bytes.size() + stream.size());
  key.push_back(kInboxStateTag);
  key.append(reinterpret_cast<const char*>(db.bytes.data()), db.bytes.size());
  key.append(stream);
  return key;
}

Result<std::pair<DatabaseId, std::string>> DecodeInboxKey(std::string_view key) {
  if (key.size() < 18 || key.size() > 17 + 128 || key[0] != kInboxStateTag) {
    return MakeError(ErrorCode::kCorruption,
                     fmt::format("{}: key {} is not an inbox record key ('s' + 16-byte database id + stream)",
                                 kInboxFamily, Hex(key)));
  }
  std::pair<DatabaseId, std::string> out;
  std::memcpy(out.first.bytes.data(), key.data() + 1, 16);
  out.second = std::string(key.substr(17));
  return out;
}

void EncodeInboxRecord(const InboxRecord& r, std::string* out) {
  out->clear();
  out->push_back(static_cast<char>(kInboxRecordVersion));
  PutVarint(out, r.watermark);
  PutVarint(out, r.received);
  PutVarint(out, r.gap_seqs);
  PutVarint(out, r.forgotten);
  PutVarint(out, r.above.size());
  uint64_t prev = r.watermark;
  for (const InboxRange& a : r.above) {
    PutVarint(out, a.first - prev - 2);
    PutVarint(out, a.last - a.first);
    PutVarint(out, static_cast<uint64_t>(a.since_us));
    prev = a.last;
  }
  PutVarint(out, r.gaps.size());
  prev = 0;
  for (const InboxRange& g : r.gaps) {
    PutVarint(out, g.first - prev - 1);
    PutVarint(out, g.last - g.first);
    prev = g.last;
  }
  const uint32_t crc = Crc32c(*out);
  for (int i = 0; i < 4; ++i)
    out->push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
}

Result<InboxRecord> DecodeInboxRecord(std::string_view value, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return MakeError(ErrorCode::kCorruption,
                     fmt::format("{}: bad inbox record of {} bytes: {}", what, value.size(), why));
  };
  if (value.size() < 5) return bad("shorter than a version byte and a checksum");
  if (static_cast<uint8_t>(value[0]) != kInboxRecordVersion) {
    return bad(
        fmt::format("unknown version {} (this library reads {})", static_cast<uint8_t>(value[0]), kInboxRecordVersion));
  }
  std::string_view body = value.substr(0, value.size() - 4);
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i)
    stored |= static_cast<uint32_t>(static_cast<uint8_t>(value[value.size() - 4 + static_cast<size_t>(i)])) << (8 * i);
  if (Crc32c(body) != stored) return bad("checksum mismatch");
  std::string_view in = body.substr(1);
  InboxRecord r;
  uint64_t n = 0;
  if (!GetVarint(in, &r.watermark) || !GetVarint(in, &r.received) || !GetVarint(in, &r.gap_seqs) ||
      !GetVarint(in, &r.forgotten) || !GetVarint(in, &n)) {
    return bad("truncated header");
  }
  if (n > in.size() / 3) return bad(fmt::format("{} ranges above the watermark do not fit", n));
  uint64_t prev = r.watermark;
  r.above.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t d = 0, len = 0, since = 0;
    if (!GetVarint(in, &d) || !GetVarint(in, &len) || !GetVarint(in, &since)) return bad("truncated range");
    if (d > UINT64_MAX - prev - 2 || len > UINT64_MAX - (prev + 2 + d)) return bad("range past the last seq");
    InboxRange a{prev + 2 + d, prev + 2 + d + len, static_cast<int64_t>(since)};
    r.above.push_back(a);
    prev = a.last;
  }
  if (!GetVarint(in, &n)) return bad("truncated gap count");
  if (n > in.size() / 2) return bad(fmt::format("{} gaps do not fit", n));
  prev = 0;
  r.gaps.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t d = 0, len = 0;
    if (!GetVarint(in, &d) || !GetVarint(in, &len)) return bad("truncated gap");
    if (d > UINT64_MAX - prev - 1 || len > UINT64_MAX - (prev + 1 + d)) return bad("gap past the last seq");
    InboxRange g{prev + 1 + d, prev + 1 + d + len, 0};
    if (g.last > r.watermark) return bad(fmt::format("gap {}-{} above the watermark {}", g.first, g.last, r.watermark));
    r.gaps.push_back(g);
    prev = g.last;
  }
  if (!in.empty()) return bad(fmt::format("{} trailing bytes", in.size()));
  return r;
}

rocksdb::ColumnFamilyOptions InboxFamilyOptions() {
  rocksdb::ColumnFamilyOptions o;
  o.inplace_update_support = true;
  return o;
}

}  // namespace jaiminho::internal
