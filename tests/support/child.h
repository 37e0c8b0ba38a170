// Child processes for tests: a helper program with pipes to its stdin and
// stdout (Child), and a test body run in a forked child so that a crash (an
// abort inside RocksDB, a segfault) fails the test instead of killing the test
// binary (ForkTest, RunInChild, EXPECT_IN_CHILD).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace jaiminho::testing {

class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();  // closes stdin and waits
  // Reads one line from the child's stdout ("" at EOF).
  std::string ReadLine();
  // ReadLine, waiting at most `timeout` for the whole line: nullopt when it
  // did not come in time (what was read of it is kept for the next call).
  std::optional<std::string> ReadLineFor(std::chrono::milliseconds timeout);
  void WriteLine(const std::string& line);
  // Closes stdin and waits; returns the exit status (or 128 + signal).
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  bool waited_ = false;
  std::string partial_;  // a line ReadLineFor began
  int status_ = 0;
};

// Forks and runs `body` in the child, which exits 1 when an assertion failed
// in it (printed by the child), else 0. Returns the child's pid (-1: fork failed).
pid_t ForkTest(const std::function<void()>& body);
// Waits for a child: its exit code, or 128 + the signal that killed it.
int WaitChild(pid_t pid);
// ForkTest + WaitChild: a failed assertion in the child or a signal fails the
// calling test, naming `what` and the signal.
void RunInChild(const std::string& what, const std::function<void()>& body);

// In a child process: exits 0 when `failure` is empty, else prints it and exits 1.
[[noreturn]] void ExitWith(const std::string& failure);

}  // namespace jaiminho::testing

// Runs `body` (an expression returning a failure description, "" for success)
// in a child process, gtest death-test style; the test fails when the child
// crashes or `body` describes a failure.
#define EXPECT_IN_CHILD(body)                                                                                 \
  do {                                                                                                        \
    GTEST_FLAG_SET(death_test_style, "threadsafe");                                                           \
    EXPECT_EXIT(::jaiminho::testing::ExitWith(body), ::testing::ExitedWithCode(0), "") << "see child stderr"; \
  } while (0)
