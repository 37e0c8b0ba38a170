// A fill, as the trading daemon emits it (event type "fill.v1" on the stream
// "fills") and the risk process decodes it: one codec for both sides, so the
// daemon commits it with Transaction::Emit and the risk process's
// ConsumerHandlers decode it (jaiminho/codec.h, jaiminho/consumer_handlers.h).
//
//   {"symbol":"AAPL","fill":7,"price":10003,"qty":4,"buy":11,"sell":9,"side":"buy"}
//
// symbol: the instrument; fill: the symbol's fill counter in the daemon's run;
// price in cents; qty; the buy and sell order ids; side: the aggressor's (the
// incoming order's) side, "buy" or "sell".
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "jaiminho/codec.h"
#include "jaiminho/result.h"

namespace example {

struct Fill {
  std::string symbol;
  uint64_t fill = 0;
  int64_t price = 0;
  int64_t qty = 0;
  uint64_t buy = 0;
  uint64_t sell = 0;
  bool aggressor_buys = false;
};

}  // namespace example

template <>
struct jaiminho::Codec<example::Fill> {
  static constexpr std::string_view kEncoding = "application/json";

  static std::string Encode(const example::Fill& f) {
    return "{\"symbol\":\"" + f.symbol + "\",\"fill\":" + std::to_string(f.fill) +
           ",\"price\":" + std::to_string(f.price) + ",\"qty\":" + std::to_string(f.qty) +
           ",\"buy\":" + std::to_string(f.buy) + ",\"sell\":" + std::to_string(f.sell) + ",\"side\":\"" +
           (f.aggressor_buys ? "buy" : "sell") + "\"}";
  }

  // The object Encode writes (its fields in any order; every one required).
  // kInvalidArgument naming the field and the payload otherwise.
  static jaiminho::Result<example::Fill> Decode(std::string_view json) {
    example::Fill f;
    std::string missing;
    // The value of "name": a string's characters (no escapes in a fill), or a
    // number's text up to the next ',' or '}'.
    auto field = [&](std::string_view name) -> std::string_view {
      const std::string key = "\"" + std::string(name) + "\":";
      const size_t at = json.find(key);
      if (at == std::string_view::npos) return {};
      std::string_view rest = json.substr(at + key.size());
      if (!rest.empty() && rest.front() == '"') {
        const size_t end = rest.find('"', 1);
        return end == std::string_view::npos ? std::string_view{} : rest.substr(1, end - 1);
      }
      return rest.substr(0, rest.find_first_of(",}"));
    };
    auto number = [&](std::string_view name, auto& out) {
      const std::string_view v = field(name);
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
      if (v.empty() || ec != std::errc() || end != v.data() + v.size())
        missing += (missing.empty() ? "" : ", ") + std::string(name);
    };
    f.symbol = std::string(field("symbol"));
    if (f.symbol.empty() || f.symbol.find_first_of(",\\") != std::string::npos) missing = "symbol";
    number("fill", f.fill);
    number("price", f.price);
    number("qty", f.qty);
    number("buy", f.buy);
    number("sell", f.sell);
    const std::string_view side = field("side");
    if (side != "buy" && side != "sell") missing += (missing.empty() ? "" : ", ") + std::string("side");
    f.aggressor_buys = side == "buy";
    if (json.empty() || json.front() != '{' || json.back() != '}') missing = "the object";
    if (!missing.empty()) {
      return jaiminho::MakeError(jaiminho::ErrorCode::kInvalidArgument,
                                 "not a fill.v1: no valid " + missing + " in '" + std::string(json) + "'");
    }
    return f;
  }
};
