// A bounded TCP reachability check for the MQTT adapters (publisher and
// consumer), which connect with libmosquitto's blocking connect.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "jaiminho/result.h"

namespace jaiminho::internal {

// Opens a TCP connection to host:port within `timeout`, checking `stop` every
// 100 ms, and closes it again. libmosquitto's own connect blocks for as long
// as the kernel lets it (minutes for an unroutable host), which would make a
// destructor hang; probing first bounds that, and gives a precise error
// ("Connection refused", "No route to host", a DNS failure):
// kUnavailable "cannot connect to MQTT broker host:port: <why>", <why> being
// `stopped_why` when `stop` was set.
[[nodiscard]] Status ProbeTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
                              const std::atomic<bool>& stop, std::string_view stopped_why);

}  // namespace jaiminho::internal
