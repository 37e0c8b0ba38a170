#include "support/child.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

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
  std::string line = std::move(partial_);
  partial_.clear();
  char c;
  while (read(out_, &c, 1) == 1) {
    if (c == '\n') return line;
    line.push_back(c);
  }
  return line;
}

std::optional<std::string> Child::ReadLineFor(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    char c;
    ssize_t got = read(out_, &c, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0 || c == '\n') {
      std::string line = std::move(partial_);
      partial_.clear();
      return line;
    }
    partial_.push_back(c);
  }
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

pid_t ForkTest(const std::function<void()>& body) {
  std::cout.flush();
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    body();
    bool failed = ::testing::Test::HasFailure();
    std::cout.flush();
    std::fflush(nullptr);
    ::_exit(failed ? 1 : 0);
  }
  return pid;
}

int WaitChild(pid_t pid) {
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void RunInChild(const std::string& what, const std::function<void()>& body) {
  pid_t pid = ForkTest(body);
  ASSERT_GT(pid, 0) << "fork: " << std::strerror(errno);
  int code = WaitChild(pid);
  if (code > 128) {
    ADD_FAILURE() << what << ": the process was killed by signal " << code - 128 << " (" << strsignal(code - 128)
                  << ")";
  } else {
    EXPECT_EQ(code, 0) << what << ": failed (see the failures above)";
  }
}

void ExitWith(const std::string& failure) {
  if (!failure.empty()) std::fprintf(stderr, "child failed: %s\n", failure.c_str());
  std::fflush(stderr);
  std::_Exit(failure.empty() ? 0 : 1);
}

}  // namespace jaiminho::testing
