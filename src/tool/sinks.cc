#include "tool/sinks.h"

#include <fmt/format.h>

#include "jaiminho/sinks.h"
#if JAIMINHO_TOOL_WITH_MQTT
#include "jaiminho/adapters/mqtt.h"
#endif
#if JAIMINHO_TOOL_WITH_KAFKA
#include "jaiminho/adapters/kafka.h"
#endif

namespace jaiminho::tool {

Result<std::shared_ptr<Publisher>> MakeSink(std::string_view spec, std::ostream& out) {
  if (spec == "stdout") return std::make_shared<JsonLinesSink>(out);
  if (spec.starts_with("exec:")) {
    std::string_view command = spec.substr(5);
    if (command.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "sink 'exec:' needs a command, for example exec:./deliver.sh");
    }
    return std::make_shared<ExecSink>(std::string(command));
  }
  // Broker adapters, when built (src/adapters/CMakeLists.txt wires them into
  // the tool and defines JAIMINHO_TOOL_WITH_*).
  if (spec.starts_with("mqtt://") || spec.starts_with("mqtts://")) {
#if JAIMINHO_TOOL_WITH_MQTT
    auto options = ParseMqttUri(spec);
    if (!options) return tl::unexpected(options.error());
    auto mqtt = MqttPublisher::Create(std::move(*options));
    if (!mqtt) return tl::unexpected(mqtt.error());
    return std::shared_ptr<Publisher>(std::move(*mqtt));
#else
    return MakeError(ErrorCode::kNotSupported,
                     fmt::format("sink '{}': this jaiminho-tool was built without the MQTT adapter "
                                 "(configure with -DJAIMINHO_WITH_MQTT=ON; needs libmosquitto-dev)",
                                 spec));
#endif
  }
  if (spec.starts_with("kafka://")) {
#if JAIMINHO_TOOL_WITH_KAFKA
    auto options = ParseKafkaUri(spec);
    if (!options) return tl::unexpected(options.error());
    auto kafka = KafkaPublisher::Create(std::move(*options));
    if (!kafka) return tl::unexpected(kafka.error());
    return std::shared_ptr<Publisher>(std::move(*kafka));
#else
    return MakeError(ErrorCode::kNotSupported,
                     fmt::format("sink '{}': this jaiminho-tool was built without the Kafka adapter "
                                 "(configure with -DJAIMINHO_WITH_KAFKA=ON; needs librdkafka-dev)",
                                 spec));
#endif
  }
  return MakeError(
      ErrorCode::kInvalidArgument,
      fmt::format(
          "unknown sink '{}' (accepted: stdout, exec:COMMAND, mqtt://HOST[:PORT]/TOPIC-TEMPLATE, mqtts://... (TLS), "
          "kafka://HOST:PORT[,...]/TOPIC-TEMPLATE)",
          spec));
}

}  // namespace jaiminho::tool
