#include "support/child.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace jaiminho::testing {

Child::Child(const std::vector<std::string>& argv) {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) std::abort();
  pid_ = fork();
  if (pid_ == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  in_ = in[1];
  out_ = out[0];
}

Child::~Child() {
  Wait();
}

std::string Child::ReadLine() {
  std::string line;
  char c;
  while (read(out_, &c, 1) == 1) {
    if (c == '\n') return line;
    line.push_back(c);
  }
  return line;
}

void Child::WriteLine(const std::string& line) {
  std::string l = line + "\n";
  (void)!write(in_, l.data(), l.size());
}

int Child::Wait() {
  if (waited_) return status_;
  if (in_ >= 0) close(in_);
  int st = 0;
  waitpid(pid_, &st, 0);
  if (out_ >= 0) close(out_);
  waited_ = true;
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return status_;
}

}  // namespace jaiminho::testing
