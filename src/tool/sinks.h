// Where `jaiminho-tool relay --sink SPEC` delivers: one dispatch from a sink
// spec to a Publisher.
//
//   auto sink = tool::MakeSink("exec:./deliver.sh");
//   auto relay = jaiminho::Relay::Make(*outbox, *sink);
//
// Specs: "stdout" (JsonLinesSink on `out`: one JSON object per line) and
// "exec:CMD" (ExecSink: CMD runs with /bin/sh -c once per event, the event's
// JSON line on its stdin; exit status 0 is success); with the broker adapters
// built, "mqtt://HOST[:PORT][/TOPIC-TEMPLATE][?...]" or "mqtts://..." (TLS) (MqttPublisher, options as
// in ParseMqttUri) and "kafka://HOST:PORT[,...][/TOPIC-TEMPLATE][?...]"
// (KafkaPublisher, ParseKafkaUri); without them those schemes fail with
// kNotSupported saying how to build them.
//
// Thread-safety: a function; the sinks it returns are safe for concurrent use.
#pragma once

#include <iostream>
#include <memory>
#include <ostream>
#include <string_view>

#include "jaiminho/publisher.h"
#include "jaiminho/result.h"

namespace jaiminho::tool {

// kInvalidArgument naming the spec and the accepted forms when it is not one of
// them. REQUIRES: `out` outlives the returned sink.
[[nodiscard]] Result<std::shared_ptr<Publisher>> MakeSink(std::string_view spec, std::ostream& out = std::cout);

}  // namespace jaiminho::tool
