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
// it is given). A codec that also has `Decode(std::string_view payload)`
// returning Result<T> serves the consuming side (jaiminho/consumer_handlers.h);
// the built-in codecs below have one.
// Thread-safety: codecs are called from the thread that calls Emit.
#pragma once

#include <charconv>
#include <concepts>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>

#include "jaiminho/result.h"

namespace jaiminho {

template <class T, class Enable = void>
struct Codec;  // no default for arbitrary types: specialize it, or pass a codec

// Bytes as they are.
template <class T>
struct Codec<T, std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>> {
  static constexpr std::string_view kEncoding = "application/octet-stream";
  static std::string_view Encode(const T& v) { return std::string_view(v); }
  // For a T made from a view (std::string, std::string_view: then into the payload).
  static Result<T> Decode(std::string_view payload) requires std::is_constructible_v<T, std::string_view> {
    return T(payload);
  }
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
  // The whole payload as a number of T, in range; kInvalidArgument otherwise.
  static Result<T> Decode(std::string_view payload) {
    T v{};
    const char* end = payload.data() + payload.size();
    auto r = std::from_chars(payload.data(), end, v);
    if (r.ec == std::errc() && r.ptr == end) return v;
    return MakeError(ErrorCode::kInvalidArgument,
                     r.ec == std::errc::result_out_of_range
                         ? "the number is out of range of the type"
                         : "not a decimal number (" + std::to_string(payload.size()) + " bytes)");
  }
};

// A flat string map as a JSON object (the seed's JSON default, for the common case).
template <>
struct Codec<std::map<std::string, std::string>> {
  static constexpr std::string_view kEncoding = "application/json";
  static std::string Encode(const std::map<std::string, std::string>& m);
  // A JSON object whose values are strings; kInvalidArgument naming the byte offset otherwise.
  static Result<std::map<std::string, std::string>> Decode(std::string_view payload);
};

template <class C, class T>
concept CodecFor = requires(const C& c, const T& v) {
  { c.kEncoding } -> std::convertible_to<std::string_view>;
  {c.Encode(v)};
};

}  // namespace jaiminho
