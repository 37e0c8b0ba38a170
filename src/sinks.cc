#include "jaiminho/sinks.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/json.h"

extern char** environ;

namespace jaiminho {

std::string EventToJson(const Event& e) {
  std::string out = "{\"id\":";
  internal::AppendJsonString(out, e.id.ToString());
  out += ",\"stream\":";
  internal::AppendJsonString(out, e.id.stream);
  out += fmt::format(",\"seq\":{},\"type\":", e.id.seq);
  internal::AppendJsonString(out, e.type);
  out += ",\"key\":";
  internal::AppendJsonString(out, e.key);
  out += ",\"encoding\":";
  internal::AppendJsonString(out, e.encoding);
  out += ",\"strategy\":";
  internal::AppendJsonString(out, ToString(e.strategy));
  out += fmt::format(",\"created_at_us\":{},\"attempts\":{}", ToMicros(e.created_at), e.attempts);
  out += ",\"headers\":{";
  for (size_t i = 0; i < e.headers.size(); ++i) {
    if (i > 0) out.push_back(',');
    internal::AppendJsonString(out, e.headers[i].name);
    out.push_back(':');
    internal::AppendJsonString(out, e.headers[i].value);
  }
  out.push_back('}');
  if (internal::IsPrintableUtf8(e.payload)) {
    out += ",\"payload\":";
    internal::AppendJsonString(out, e.payload);
  } else {
    out += ",\"payload_hex\":\"" + internal::ToHex(e.payload) + "\"";
  }
  out.push_back('}');
  return out;
}

Status JsonLinesSink::Publish(const Event& event) {
  std::string line = EventToJson(event);
  line.push_back('\n');
  std::lock_guard l(mu_);
  out_.write(line.data(), static_cast<std::streamsize>(line.size()));
  out_.flush();
  if (!out_) return MakeError(ErrorCode::kIOError, "JsonLinesSink: write failed");
  return {};
}

namespace {
struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  void Close(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};
}  // namespace

Status ExecSink::Publish(const Event& event) {
  std::string input = EventToJson(event) + "\n";
  Pipe in, err;
  if (::pipe2(in.fd, O_CLOEXEC) != 0 || ::pipe2(err.fd, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kIOError, fmt::format("exec sink: pipe: {}", std::strerror(errno)));
  }
  std::string id = event.id.ToString(), seq = std::to_string(event.id.seq);
  std::string env_id = "JAIMINHO_EVENT_ID=" + id, env_stream = "JAIMINHO_STREAM=" + std::string(event.id.stream),
              env_seq = "JAIMINHO_SEQ=" + seq, env_type = "JAIMINHO_TYPE=" + std::string(event.type);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e)
    envp.push_back(*e);
  for (std::string* s : {&env_id, &env_stream, &env_seq, &env_type})
    envp.push_back(s->data());
  envp.push_back(nullptr);
  const char* argv[] = {"/bin/sh", "-c", command_.c_str(), nullptr};
  pid_t pid = ::fork();
  if (pid < 0) return MakeError(ErrorCode::kIOError, fmt::format("exec sink: fork: {}", std::strerror(errno)));
  if (pid == 0) {
    ::dup2(in.fd[0], 0);
    ::dup2(err.fd[1], 2);
    ::execve("/bin/sh", const_cast<char* const*>(argv), envp.data());
    ::_exit(127);
  }
  in.Close(0);
  err.Close(1);
  // Feed stdin, tolerating a child that does not read it: SIGPIPE is blocked in
  // this thread for the write and a pending one is consumed (a library must not
  // change the process's signal dispositions).
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  size_t off = 0;
  bool broken = false;
  while (off < input.size()) {
    ssize_t n = ::write(in.fd[1], input.data() + off, input.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      broken = errno == EPIPE;
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (broken) {
    timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  in.Close(1);
  std::string stderr_text;
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  bool timed_out = false;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{err.fd[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      timed_out = r == 0;
      break;
    }
    char buf[512];
    ssize_t n = ::read(err.fd[0], buf, sizeof buf);
    if (n <= 0) break;
    if (stderr_text.size() < 4096) stderr_text.append(buf, static_cast<size_t>(n));
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string first_line = stderr_text.substr(0, stderr_text.find('\n'));
  if (timed_out) {
    return MakeError(ErrorCode::kUnavailable, fmt::format("exec sink: '{}' ran longer than {} ms for event {}; killed",
                                                          command_, timeout_.count(), id));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::string how = WIFEXITED(status) ? fmt::format("exited with {}", WEXITSTATUS(status))
                                      : fmt::format("killed by signal {}", WTERMSIG(status));
  return MakeError(ErrorCode::kUnavailable, fmt::format("exec sink: '{}' {} for event {}{}{}", command_, how, id,
                                                        first_line.empty() ? "" : ": ", first_line));
}

}  // namespace jaiminho
