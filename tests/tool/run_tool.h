// Runs the built jaiminho-tool binary (JM_TOOL) and captures what it did.
#pragma once

#include <string>
#include <vector>

#include "tool/json_reader.h"

namespace jaiminho::testing {

struct ToolRun {
  int code = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
  // Lines of `out` (without the newlines).
  std::vector<std::string> OutLines() const;
  std::vector<std::string> ErrLines() const;
};

// fork/exec of JM_TOOL with `args`, stdin from /dev/null, stdout and stderr
// captured through pipes (read concurrently, so neither can fill up and block).
ToolRun RunTool(const std::vector<std::string>& args);

// "exit N", then stdout and stderr, for a failed expectation's message.
std::string Describe(const ToolRun& r);
// Each line of r.out as JSON (a line that is not JSON fails the test).
std::vector<Json> ParseLines(const ToolRun& r);

std::vector<std::string> SplitLines(const std::string& text);
std::vector<std::string> SplitTabs(const std::string& line);

}  // namespace jaiminho::testing
