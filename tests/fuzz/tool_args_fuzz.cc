// libFuzzer target: jaiminho-tool's argument handling (tool::Run, the whole
// command line: CLI11 parsing, option validation, then the command itself).
// An input is the argument vector, NUL-separated. Whatever the arguments, Run
// must return one of the documented exit codes (0-3) without crashing or
// throwing.
//
// Sandbox: the process works in a scratch directory holding one small
// database, "db" (pending, parked, sent and corrupt records). Inputs that name
// a path outside it (any "/"), run a command (an exec: sink) or loop until a
// signal (--loop) are skipped, so fuzzing never touches other files, runs
// programs or hangs. Write commands may change "db"; that is fine.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "jaiminho/jaiminho.h"
#include "tool/commands.h"

namespace {

void MakeDatabase(const std::string& path) {
  using namespace jaiminho;
  auto outbox = Outbox::Open({.path = path});
  if (!outbox) std::abort();
  auto s = (*outbox)->OpenStream("s", {.strategy = Strategy::kKeepOrder});
  auto p = (*outbox)->OpenStream("p");
  if (!s || !p) std::abort();
  for (int i = 0; i < 6; ++i) {
    auto txn = (*outbox)->Begin();
    std::string payload = "payload " + std::to_string(i);
    if (!txn.Enqueue(**s, {.type = i == 3 ? "unknown" : "t", .key = "k", .payload = payload}) ||
        !txn.Enqueue(**p, {.type = "t", .payload = payload}) || !txn.Commit()) {
      std::abort();
    }
  }
  // Deliver part of it, park one, and leave the rest pending.
  auto handlers = std::make_shared<HandlerRegistry>();
  if (!handlers->Register("t", [](const Event&) -> Status { return {}; })) std::abort();
  {
    auto relay = Relay::Make(**outbox, handlers, {.streams = {"p"}});
    if (!relay || !(*relay)->RunOnce()) std::abort();
  }
  if (!(*outbox)->Skip(**s, 2, "fuzz fixture")) std::abort();
  if (!(*outbox)->Close()) std::abort();
}

std::string& Scratch() {
  static std::string dir;
  return dir;
}

// Runs `f` in the scratch directory (libFuzzer itself keeps the caller's
// working directory for its corpus and artifacts).
template <class F>
auto InScratch(F&& f) {
  int back = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (back < 0 || ::chdir(Scratch().c_str()) != 0) std::abort();
  auto r = f();
  if (::fchdir(back) != 0) std::abort();
  ::close(back);
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  const char* tmp = std::getenv("TMPDIR");
  Scratch() = std::string(tmp != nullptr ? tmp : "/tmp") + "/jaiminho-tool-fuzz-" + std::to_string(::getpid());
  std::filesystem::remove_all(Scratch());
  std::filesystem::create_directories(Scratch());
  MakeDatabase(Scratch() + "/db");
  // The scratch directory goes when the process ends normally.
  std::atexit([] { std::filesystem::remove_all(Scratch()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 2048) return 0;
  std::vector<std::string> args{"jaiminho-tool"};
  std::string current;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (!current.empty()) args.push_back(current);
  if (args.size() > 24) return 0;
  for (const auto& a : args) {
    if (a.find('/') != std::string::npos || a.find("exec") != std::string::npos ||
        a.find("loop") != std::string::npos) {
      return 0;  // outside the sandbox, see the file comment
    }
  }
  std::vector<const char*> argv;
  for (const auto& a : args)
    argv.push_back(a.c_str());
  argv.push_back(nullptr);
  std::ostringstream out, err;
  jaiminho::tool::Io io{out, err, false, false};
  int code = InScratch([&] { return jaiminho::tool::Run(static_cast<int>(args.size()), argv.data(), io); });
  if (code < 0 || code > 3) std::abort();
  // A usage error says what is wrong.
  if (code == 2 && err.str().empty() && out.str().empty()) std::abort();
  return 0;
}
