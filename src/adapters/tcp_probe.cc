#include "adapters/tcp_probe.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace jaiminho::internal {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// Longest time spent in one poll, so that `stop` is noticed promptly.
constexpr milliseconds kStopSlice(100);

}  // namespace

Status ProbeTcp(const std::string& host, uint16_t port, milliseconds timeout, const std::atomic<bool>& stop,
                std::string_view stopped_why) {
  std::string endpoint = fmt::format("{}:{}", host, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  std::string port_text = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &addrs); rc != 0) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot connect to MQTT broker {}: {}", endpoint, ::gai_strerror(rc)));
  }
  std::string why = "no address";
  auto deadline = SteadyClock::now() + timeout;
  for (addrinfo* a = addrs; a != nullptr && !stop; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      while (err == EINPROGRESS && !stop) {
        auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
        if (left.count() <= 0) {
          err = ETIMEDOUT;
          break;
        }
        pollfd p{fd, POLLOUT, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::min(left, kStopSlice).count()));
        if (r < 0 && errno != EINTR) {
          err = errno;
        } else if (r > 0) {
          socklen_t len = sizeof err;
          if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        }
      }
    }
    ::close(fd);
    if (err == 0) {
      ::freeaddrinfo(addrs);
      return {};
    }
    why = err == ETIMEDOUT ? fmt::format("no answer within {} ms", timeout.count()) : std::strerror(err);
  }
  ::freeaddrinfo(addrs);
  if (stop) why = std::string(stopped_why);
  return MakeError(ErrorCode::kUnavailable, fmt::format("cannot connect to MQTT broker {}: {}", endpoint, why));
}

}  // namespace jaiminho::internal
