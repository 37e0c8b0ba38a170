#include "tool/sinks.h"

#include <fmt/format.h>

#include "jaiminho/sinks.h"

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
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown sink '{}' (accepted: stdout, exec:COMMAND)", spec));
}

}  // namespace jaiminho::tool
