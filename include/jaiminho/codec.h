// Codecs: how Transaction::Emit turns a value into a payload (django-jaiminho's
// DEFAULT_ENCODER, overridable per call).
//
// Make a codec the default for your type by specializing jaiminho::Codec:
//
//   template <> struct jaiminho::Codec<Reading> {
//     static constexpr std::string_view kEncoding = "application/x-reading";
//     static std::string Encode(const Reading& r) { return r.SerializeAsString(); }
//   };
//   txn.Emit(*stream, "reading.v1", reading);                 // uses Codec<Reading>
//   txn.Emit(*stream, "reading.v1", reading, {}, MyJson{});   // overrides per call
//
// A codec is any type with `kEncoding` and a const `Encode(const T&)` returning
// something convertible to std::string_view (std::string or a view); both may
// be static or members of a codec with state (Emit calls them on the instance
// it is given).
// Thread-safety: codecs are called from the thread that calls Emit.
#pragma once

#include <charconv>
#include <concepts>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>

namespace jaiminho {

template <class T, class Enable = void>
struct Codec;  // no default for arbitrary types: specialize it, or pass a codec

// Bytes as they are.
template <class T>
struct Codec<T, std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>> {
  static constexpr std::string_view kEncoding = "application/octet-stream";
  static std::string_view Encode(const T& v) { return std::string_view(v); }
};

// Numbers as decimal text.
template <class T>
struct Codec<T, std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>> {
  static constexpr std::string_view kEncoding = "text/plain";
  static std::string Encode(T v) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
  }
};

// A flat string map as a JSON object (the seed's JSON default, for the common case).
template <>
struct Codec<std::map<std::string, std::string>> {
  static constexpr std::string_view kEncoding = "application/json";
  static std::string Encode(const std::map<std::string, std::string>& m);
};

template <class C, class T>
concept CodecFor = requires(const C& c, const T& v) {
  { c.kEncoding } -> std::convertible_to<std::string_view>;
  {c.Encode(v)};
};

}  // namespace jaiminho
