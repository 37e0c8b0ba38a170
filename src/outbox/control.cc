#include "outbox/control.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "core/outbox_impl.h"
#include "util/macros.h"
#include "util/user.h"

namespace jaiminho::internal {
namespace {

using Clock = std::chrono::steady_clock;

// A client must send its request within this time of connecting; a reply must
// be taken within this time too. Either way the server moves on.
constexpr std::chrono::seconds kExchangeTimeout{5};
constexpr size_t kMaxRequestBytes = size_t{64} << 10;

std::string Errno(int err) {
  return std::strerror(err);
}

bool NeedsEscape(unsigned char c) {
  return c == '%' || c == ' ' || c < 0x20 || c == 0x7f;
}

void AppendEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (NeedsEscape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const int hi = i + 2 < s.size() ? HexDigit(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? HexDigit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("bad %XX escape in '{}'", s));
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// One line for a status line: newlines would end it.
std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

Result<uint64_t> ParseU64(std::string_view key, std::string_view v) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}={} is not an unsigned number", key, v));
  }
  return n;
}

Result<double> ParseDouble(std::string_view key, std::string_view v) {
  double d = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}={} is not a number", key, v));
  }
  return d;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

// "b1,b2,...;c1,...,cN+1;sum;count".
std::string EncodeHistogram(const Histogram& h) {
  return fmt::format("{};{};{};{}", fmt::join(h.upper_bounds, ","), fmt::join(h.bucket_counts, ","), h.sum, h.count);
}

Result<Histogram> DecodeHistogram(std::string_view key, std::string_view v) {
  auto parts = Split(v, ';');
  if (parts.size() != 4) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: expected BOUNDS;COUNTS;SUM;COUNT, got '{}'", key, v));
  }
  Histogram h;
  if (!parts[0].empty()) {
    for (auto b : Split(parts[0], ',')) {
      JM_ASSIGN_OR_RETURN(double d, ParseDouble(key, b));
      h.upper_bounds.push_back(d);
    }
  }
  if (!parts[1].empty()) {
    for (auto c : Split(parts[1], ',')) {
      JM_ASSIGN_OR_RETURN(uint64_t n, ParseU64(key, c));
      h.bucket_counts.push_back(n);
    }
  }
  JM_ASSIGN_OR_RETURN(h.sum, ParseDouble(key, parts[2]));
  JM_ASSIGN_OR_RETURN(h.count, ParseU64(key, parts[3]));
  return h;
}

sockaddr_un Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  return addr;
}

Status CheckLength(const std::string& path) {
  if (path.size() <= MaxSocketPathLength()) return {};
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("control socket {} is {} bytes long; a Unix socket path holds at most {} "
                               "(sockaddr_un.sun_path): open the database by a shorter path (a relative path or a "
                               "symbolic link)",
                               path, path.size(), MaxSocketPathLength()));
}

// What a connect to `path` found: nobody (ECONNREFUSED, ENOENT), someone
// (connected: their pid), or another error.
struct Probe {
  bool listening = false;
  long pid = -1;
  int err = 0;  // 0: connected or refused
  bool refused = false;
};

Probe ProbeSocket(const std::string& path) {
  Probe p;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    p.err = errno;
    return p;
  }
  sockaddr_un addr = Address(path);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    p.listening = true;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) p.pid = cred.pid;
  } else if (errno == EAGAIN) {
    p.listening = true;  // a listener whose queue is full
  } else if (errno == ECONNREFUSED || errno == ENOENT) {
    p.refused = true;
  } else {
    p.err = errno;
  }
  ::close(fd);
  return p;
}

// Waits until `fd` is ready for `events`, the deadline passes or `wake` is
// signalled (-1: no wake descriptor).
enum class Ready { kReady, kTimeout, kStop };
Ready WaitFor(int fd, short events, int wake, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Ready::kTimeout;
    pollfd fds[2] = {{fd, events, 0}, {wake, POLLIN, 0}};
    int n = ::poll(fds, wake >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) return Ready::kStop;
    if (n <= 0) continue;
    if (wake >= 0 && fds[1].revents != 0) return Ready::kStop;
    if (fds[0].revents != 0) return Ready::kReady;
  }
}

// Writes all of `data` before `deadline`; false when the peer is gone, the
// time is up or `wake` is signalled.
bool SendAll(int fd, std::string_view data, int wake, Clock::time_point deadline) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (WaitFor(fd, POLLOUT, wake, deadline) != Ready::kReady) return false;
      continue;
    }
    return false;
  }
  return true;
}

// The keys an action accepts (a typo is an error, not a silent default).
Status CheckKeys(const ControlLine& req, std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, v] : req.fields) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: unknown field '{}' (accepted: {})", req.action, k, fmt::join(allowed, ", ")));
    }
  }
  return {};
}

}  // namespace

std::string ControlSocketPath(std::string_view db_path) {
  std::string p(db_path);
  while (p.size() > 1 && p.back() == '/')
    p.pop_back();
  return p + "/control.sock";
}

size_t MaxSocketPathLength() {
  return sizeof(sockaddr_un::sun_path) - 1;
}

// ---------------------------------------------------------------------------
// Lines.

std::optional<std::string_view> ControlLine::Get(std::string_view key) const {
  for (const auto& [k, v] : fields) {
    if (k == key) return std::string_view(v);
  }
  return std::nullopt;
}

Result<uint64_t> ControlLine::GetU64(std::string_view key, std::optional<uint64_t> fallback) const {
  auto v = Get(key);
  if (!v) {
    if (fallback) return *fallback;
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}{}{}= is required", action, action.empty() ? "" : ": ", key));
  }
  return ParseU64(key, *v);
}

std::string EncodeControlLine(const ControlLine& line) {
  std::string out = line.action;
  for (const auto& [k, v] : line.fields) {
    if (!out.empty()) out += ' ';
    out += k;
    out += '=';
    AppendEscaped(out, v);
  }
  return out;
}

Result<ControlLine> ParseControlLine(std::string_view text, bool with_action) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  ControlLine line;
  bool first = true;
  for (std::string_view word : Split(text, ' ')) {
    if (word.empty()) continue;  // repeated spaces
    if (first && with_action) {
      line.action = std::string(word);
      first = false;
      continue;
    }
    first = false;
    size_t eq = word.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("expected key=value, got '{}'", word));
    }
    JM_ASSIGN_OR_RETURN(std::string value, Unescape(word.substr(eq + 1)));
    line.fields.emplace_back(std::string(word.substr(0, eq)), std::move(value));
  }
  if (with_action && line.action.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "empty request (expected an action: requeue, skip, clean, stats)");
  }
  return line;
}

ControlLine EncodeMetrics(const StreamMetrics& m) {
  ControlLine l;
  auto add = [&](std::string k, std::string v) { l.fields.emplace_back(std::move(k), std::move(v)); };
  add("stream", m.stream);
  add("strategy", std::string(ToString(m.strategy)));
  add("pending", std::to_string(m.pending));
  add("retrying", std::to_string(m.retrying));
  add("parked_records", std::to_string(m.parked_records));
  if (m.oldest_pending_age) add("oldest_pending_age_us", std::to_string(m.oldest_pending_age->count()));
  add("last_seq", std::to_string(m.last_seq));
  add("cursor", std::to_string(m.cursor));
  add("blocked", m.blocked ? "1" : "0");
  add("blocked_seq", std::to_string(m.blocked_seq));
  add("blocked_error", m.blocked_error);
  add("committed", std::to_string(m.committed));
  add("published", std::to_string(m.published));
  add("failed", std::to_string(m.failed));
  add("retried", std::to_string(m.retried));
  add("parked", std::to_string(m.parked));
  add("dropped", std::to_string(m.dropped));
  add("commit_to_publish_seconds", EncodeHistogram(m.commit_to_publish_seconds));
  add("publish_duration_seconds", EncodeHistogram(m.publish_duration_seconds));
  if (m.bytes_on_disk) add("bytes_on_disk", std::to_string(*m.bytes_on_disk));
  add("quota_max_events", std::to_string(m.quota_max_events));
  add("quota_max_bytes", std::to_string(m.quota_max_bytes));
  if (m.waiting_bytes) add("waiting_bytes", std::to_string(*m.waiting_bytes));
  return l;
}

Result<StreamMetrics> DecodeMetrics(const ControlLine& l) {
  StreamMetrics m;
  auto stream = l.Get("stream");
  if (!stream) return MakeError(ErrorCode::kInvalidArgument, "stats line without stream=");
  m.stream = std::string(*stream);
  auto strategy = l.Get("strategy");
  if (!strategy) return MakeError(ErrorCode::kInvalidArgument, "stats line without strategy=");
  JM_ASSIGN_OR_RETURN(m.strategy, ParseStrategy(*strategy));
  JM_ASSIGN_OR_RETURN(m.pending, l.GetU64("pending"));
  JM_ASSIGN_OR_RETURN(m.retrying, l.GetU64("retrying"));
  JM_ASSIGN_OR_RETURN(m.parked_records, l.GetU64("parked_records"));
  if (l.Get("oldest_pending_age_us")) {
    JM_ASSIGN_OR_RETURN(uint64_t age, l.GetU64("oldest_pending_age_us"));
    m.oldest_pending_age = std::chrono::microseconds(static_cast<int64_t>(age));
  }
  JM_ASSIGN_OR_RETURN(m.last_seq, l.GetU64("last_seq"));
  JM_ASSIGN_OR_RETURN(m.cursor, l.GetU64("cursor"));
  JM_ASSIGN_OR_RETURN(uint64_t blocked, l.GetU64("blocked"));
  m.blocked = blocked != 0;
  JM_ASSIGN_OR_RETURN(m.blocked_seq, l.GetU64("blocked_seq"));
  m.blocked_error = std::string(l.Get("blocked_error").value_or(""));
  JM_ASSIGN_OR_RETURN(m.committed, l.GetU64("committed"));
  JM_ASSIGN_OR_RETURN(m.published, l.GetU64("published"));
  JM_ASSIGN_OR_RETURN(m.failed, l.GetU64("failed"));
  JM_ASSIGN_OR_RETURN(m.retried, l.GetU64("retried"));
  JM_ASSIGN_OR_RETURN(m.parked, l.GetU64("parked"));
  JM_ASSIGN_OR_RETURN(m.dropped, l.GetU64("dropped"));
  if (auto h = l.Get("commit_to_publish_seconds")) {
    JM_ASSIGN_OR_RETURN(m.commit_to_publish_seconds, DecodeHistogram("commit_to_publish_seconds", *h));
  }
  if (auto h = l.Get("publish_duration_seconds")) {
    JM_ASSIGN_OR_RETURN(m.publish_duration_seconds, DecodeHistogram("publish_duration_seconds", *h));
  }
  if (l.Get("bytes_on_disk")) {
    JM_ASSIGN_OR_RETURN(m.bytes_on_disk, l.GetU64("bytes_on_disk"));
  }
  JM_ASSIGN_OR_RETURN(m.quota_max_events, l.GetU64("quota_max_events", 0));
  JM_ASSIGN_OR_RETURN(m.quota_max_bytes, l.GetU64("quota_max_bytes", 0));
  if (l.Get("waiting_bytes")) {
    JM_ASSIGN_OR_RETURN(m.waiting_bytes, l.GetU64("waiting_bytes"));
  }
  return m;
}

ControlLine EncodeCleanReport(const CleanReport& r) {
  return {.fields = {{"removed", std::to_string(r.removed)},
                     {"kept_corrupt", std::to_string(r.kept_corrupt)},
                     {"bytes_before", std::to_string(r.bytes_before)},
                     {"bytes_after", std::to_string(r.bytes_after)}}};
}

Result<CleanReport> DecodeCleanReport(const ControlLine& l) {
  CleanReport r;
  JM_ASSIGN_OR_RETURN(r.removed, l.GetU64("removed"));
  JM_ASSIGN_OR_RETURN(r.kept_corrupt, l.GetU64("kept_corrupt"));
  JM_ASSIGN_OR_RETURN(r.bytes_before, l.GetU64("bytes_before"));
  JM_ASSIGN_OR_RETURN(r.bytes_after, l.GetU64("bytes_after"));
  return r;
}

// ---------------------------------------------------------------------------
// The server.

Result<std::shared_ptr<ControlServer>> ControlServer::Start(Outbox& outbox) {
  std::string path = ControlSocketPath(outbox.options().path);
  JM_RETURN_IF_ERROR(CheckLength(path));
  OutboxImpl& impl = OutboxAccess::Of(outbox);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("control socket {}: the path exists and is not a socket; move it away or turn "
                                   "OutboxOptions::control_socket off",
                                   path));
    }
    Probe p = ProbeSocket(path);
    if (p.listening) {
      return MakeError(
          ErrorCode::kBusy,
          fmt::format("control socket {}: {} listens on it already, although this process holds the database", path,
                      p.pid > 0 ? fmt::format("process {}", p.pid) : std::string("another process")));
    }
    if (!p.refused) {
      return MakeError(ErrorCode::kIOError, fmt::format("control socket {}: cannot check whether a process listens "
                                                        "on it: {}",
                                                        path, Errno(p.err)));
    }
    // Left by a process that is gone (killed, crashed): nobody accepts on it.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return MakeError(ErrorCode::kIOError,
                       fmt::format("control socket {}: cannot remove the stale socket: {}", path, Errno(errno)));
    }
    impl.Log({.level = LogLevel::kInfo,
              .message = "removed a stale control socket (its process is gone)",
              .fields = {{"path", path}}});
  } else if (errno != ENOENT) {
    return MakeError(ErrorCode::kIOError, fmt::format("control socket {}: cannot stat: {}", path, Errno(errno)));
  }

  std::shared_ptr<ControlServer> server(new ControlServer(outbox, path));
  auto fail = [&](std::string_view what, int err) -> Error {
    server->Stop();
    return Error(err == EADDRINUSE ? ErrorCode::kBusy : ErrorCode::kIOError,
                 fmt::format("control socket {}: {}: {}", path, what, Errno(err)));
  };
  server->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (server->listen_fd_ < 0) return tl::unexpected(fail("socket", errno));
  // On Linux the socket's file takes the mode of the socket's inode: 0600
  // before bind, so the file is never reachable by others, whatever the umask.
  (void)::fchmod(server->listen_fd_, 0600);
  sockaddr_un addr = Address(path);
  if (::bind(server->listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return tl::unexpected(fail("bind", errno));
  }
  if (::lstat(path.c_str(), &st) != 0) return tl::unexpected(fail("stat after bind", errno));
  server->dev_ = st.st_dev;
  server->ino_ = st.st_ino;
  if (::chmod(path.c_str(), 0600) != 0) return tl::unexpected(fail("chmod 0600", errno));
  if (::listen(server->listen_fd_, 16) != 0) return tl::unexpected(fail("listen", errno));
  server->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->wake_fd_ < 0) return tl::unexpected(fail("eventfd", errno));
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

void ControlServer::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
    wake_fd_ = -1;
  }
  if (ino_ != 0) {
    // Only our own file: never one another process bound there since.
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
    ino_ = 0;
  }
}

ControlServer::~ControlServer() {
  Stop();
}

void ControlServer::Loop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & (POLLERR | POLLNVAL)) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: wait a little (or for Stop), never spin.
        pollfd wake{wake_fd_, POLLIN, 0};
        if (::poll(&wake, 1, 100) > 0) return;
      }
      continue;
    }
    Serve(fd);
    ::close(fd);
  }
}

void ControlServer::Serve(int fd) {
  long pid = -1, uid = -1;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    pid = cred.pid;
    uid = static_cast<long>(cred.uid);
  }
  const auto deadline = Clock::now() + kExchangeTimeout;
  auto reply = [&](const std::string& text) { (void)SendAll(fd, text, wake_fd_, Clock::now() + kExchangeTimeout); };
  // The socket's mode keeps others out; a peer that got in anyway (a changed
  // mode) is refused unless it is this process's user or root.
  if (uid != static_cast<long>(::geteuid()) && uid != 0) {
    reply(fmt::format("error {} control socket {}: uid {} is neither this process's user ({}) nor root\n",
                      static_cast<int>(ErrorCode::kInvalidArgument), path_, uid, ::geteuid()));
    return;
  }
  std::string request;
  while (true) {
    size_t nl = request.find('\n');
    if (nl != std::string::npos) {
      request.resize(nl);
      break;
    }
    if (request.size() > kMaxRequestBytes) {
      reply(fmt::format("error {} request longer than {} bytes\n", static_cast<int>(ErrorCode::kInvalidArgument),
                        kMaxRequestBytes));
      return;
    }
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      request.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      if (request.empty()) return;  // connected and left: nothing to do
      break;                        // a last line without '\n'
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;
    Ready r = WaitFor(fd, POLLIN, wake_fd_, deadline);
    if (r == Ready::kStop) return;
    if (r == Ready::kTimeout) {
      reply(fmt::format("error {} no request line within {} s\n", static_cast<int>(ErrorCode::kInvalidArgument),
                        kExchangeTimeout.count()));
      return;
    }
  }
  reply(Handle(request, pid, uid));
}

std::string ControlServer::Handle(std::string_view text, long peer_pid, long peer_uid) {
  std::vector<ControlLine> out;
  std::string action;
  std::string stream_name;
  std::optional<uint64_t> seq;
  Status done = [&]() -> Status {
    JM_ASSIGN_OR_RETURN(ControlLine req, ParseControlLine(text, true));
    action = req.action;
    if (action == "ping") {
      JM_RETURN_IF_ERROR(CheckKeys(req, {}));
      out.push_back({.fields = {{"pid", std::to_string(::getpid())}, {"path", outbox_.options().path}}});
      return {};
    }
    if (action == "stats") {
      JM_RETURN_IF_ERROR(CheckKeys(req, {}));
      JM_ASSIGN_OR_RETURN(auto metrics, CollectMetrics(outbox_));
      for (const StreamMetrics& m : metrics)
        out.push_back(EncodeMetrics(m));
      return {};
    }
    if (action == "clean") {
      JM_RETURN_IF_ERROR(CheckKeys(req, {}));
      JM_ASSIGN_OR_RETURN(CleanReport r, outbox_.Clean());
      out.push_back(EncodeCleanReport(r));
      return {};
    }
    if (action != "requeue" && action != "skip") {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("unknown action '{}' (requeue, skip, clean, stats, ping)", action));
    }
    if (action == "requeue") {
      JM_RETURN_IF_ERROR(CheckKeys(req, {"stream", "seq", "all_parked", "note", "user"}));
    } else {
      JM_RETURN_IF_ERROR(CheckKeys(req, {"stream", "seq", "reason", "user"}));
    }
    // The event's history names who acted: the user the client says it runs
    // as (jaiminho-tool sends its own; the peer's uid is this process's user or
    // root, so it can claim no more than it could do on the files), else the
    // peer's uid, and that it came through the socket.
    const std::string actor = fmt::format("{} (control socket, pid {})",
                                          req.Get("user").has_value() && !req.Get("user")->empty()
                                              ? std::string(*req.Get("user"))
                                              : internal::UserName(static_cast<unsigned>(peer_uid)),
                                          peer_pid);
    auto name = req.Get("stream");
    if (!name || name->empty()) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: stream= is required", action));
    }
    stream_name = std::string(*name);
    JM_ASSIGN_OR_RETURN(Stream * stream, outbox_.FindStream(stream_name));
    if (action == "skip") {
      JM_ASSIGN_OR_RETURN(seq, req.GetU64("seq"));
      auto reason = req.Get("reason");
      if (!reason || reason->empty()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("skip of stream '{}' seq {}: reason= is required", stream_name, *seq));
      }
      JM_RETURN_IF_ERROR(outbox_.Skip(*stream, *seq, *reason, actor));
      out.push_back({.fields = {{"stream", stream_name}, {"seq", std::to_string(*seq)}, {"skipped", "1"}}});
      return {};
    }
    const std::string note(req.Get("note").value_or(""));
    JM_ASSIGN_OR_RETURN(uint64_t all, req.GetU64("all_parked", 0));
    if ((all != 0) == req.Get("seq").has_value()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("requeue of stream '{}': give exactly one of seq=N and all_parked=1", stream_name));
    }
    if (all != 0) {
      JM_ASSIGN_OR_RETURN(size_t n, outbox_.RequeueAllParked(*stream, note, actor));
      out.push_back({.fields = {{"stream", stream_name}, {"requeued", std::to_string(n)}}});
      return {};
    }
    JM_ASSIGN_OR_RETURN(seq, req.GetU64("seq"));
    JM_RETURN_IF_ERROR(outbox_.Requeue(*stream, *seq, note, actor));
    out.push_back({.fields = {{"stream", stream_name}, {"seq", std::to_string(*seq)}, {"requeued", "1"}}});
    return {};
  }();
  if (action == "requeue" || action == "skip" || action == "clean") {
    // Every change made through the socket is logged with who asked for it.
    const OutboxImpl& impl = OutboxAccess::Of(outbox_);
    const LogLevel level = done ? LogLevel::kInfo : LogLevel::kWarn;
    if (impl.LogEnabled(level)) {
      impl.Log(
          {.level = level,
           .message = done ? "operator action via the control socket" : "operator action refused",
           .stream = stream_name,
           .seq = seq,
           .error = done ? nullptr : &done.error(),
           .fields = {
               {"action", action}, {"peer_pid", std::to_string(peer_pid)}, {"peer_uid", std::to_string(peer_uid)}}});
    }
  }
  if (!done)
    return fmt::format("error {} {}\n", static_cast<int>(done.error().code()), OneLine(done.error().message()));
  std::string reply = "ok\n";
  for (const ControlLine& l : out)
    reply += EncodeControlLine(l) + "\n";
  return reply;
}

// ---------------------------------------------------------------------------
// The client.

Result<ControlReply> ControlCall(const std::string& socket_path, const ControlLine& request,
                                 std::chrono::milliseconds timeout) {
  JM_RETURN_IF_ERROR(CheckLength(socket_path));
  const auto deadline = Clock::now() + timeout;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return MakeError(ErrorCode::kIOError, fmt::format("control socket {}: socket: {}", socket_path, Errno(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  sockaddr_un addr = Address(socket_path);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    if (err == ECONNREFUSED || err == ENOENT) {
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("nobody listens on control socket {} ({})", socket_path, Errno(err)));
    }
    std::string hint =
        err == EACCES ? " (the socket is its process's user's, mode 0600: run as that user or root)" : "";
    return MakeError(ErrorCode::kIOError,
                     fmt::format("cannot connect to control socket {}: {}{}", socket_path, Errno(err), hint));
  }
  const std::string line = EncodeControlLine(request) + "\n";
  if (!SendAll(fd, line, -1, deadline)) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("control socket {}: the request could not be sent: {}", socket_path, Errno(errno)));
  }
  ::shutdown(fd, SHUT_WR);
  std::string text;
  while (true) {
    if (WaitFor(fd, POLLIN, -1, deadline) != Ready::kReady) {
      return MakeError(ErrorCode::kIOError, fmt::format("control socket {}: no reply within {} s (the action may "
                                                        "still be carried out)",
                                                        socket_path, timeout.count() / 1000));
    }
    char buf[8192];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR || errno == EAGAIN) continue;
    // The server closed with part of the request unread (it refused it
    // early): what it wrote before is the reply.
    if (errno == ECONNRESET && !text.empty()) break;
    return MakeError(ErrorCode::kIOError,
                     fmt::format("control socket {}: reading the reply: {}", socket_path, Errno(errno)));
  }
  size_t nl = text.find('\n');
  if (nl == std::string::npos) {
    return MakeError(ErrorCode::kIOError,
                     fmt::format("control socket {}: the connection closed without a reply (the process may be "
                                 "closing the database; the action may not have been carried out)",
                                 socket_path));
  }
  std::string_view status(text.data(), nl);
  ControlReply reply;
  if (status.starts_with("error ")) {
    std::string_view rest = status.substr(6);
    size_t sp = rest.find(' ');
    int code = 0;
    std::string_view num = rest.substr(0, sp);
    auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), code);
    if (ec != std::errc() || code < 1 || code > static_cast<int>(ErrorCode::kFatal))
      code = static_cast<int>(ErrorCode::kInternal);
    reply.error =
        Error(static_cast<ErrorCode>(code), std::string(sp == std::string_view::npos ? "" : rest.substr(sp + 1)));
    return reply;
  }
  if (status != "ok") {
    return MakeError(ErrorCode::kIOError, fmt::format("control socket {}: unexpected reply '{}'", socket_path, status));
  }
  std::string_view body(text.data() + nl + 1, text.size() - nl - 1);
  for (std::string_view l : Split(body, '\n')) {
    if (l.empty()) continue;
    JM_ASSIGN_OR_RETURN(ControlLine parsed, ParseControlLine(l, false));
    reply.lines.push_back(std::move(parsed));
  }
  return reply;
}

}  // namespace jaiminho::internal
