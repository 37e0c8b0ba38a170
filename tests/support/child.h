// Runs a helper program as a child process with pipes to its stdin and stdout.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace jaiminho::testing {

class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();  // closes stdin and waits
  // Reads one line from the child's stdout ("" at EOF).
  std::string ReadLine();
  void WriteLine(const std::string& line);
  // Closes stdin and waits; returns the exit status (or 128 + signal).
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  bool waited_ = false;
  int status_ = 0;
};

}  // namespace jaiminho::testing
