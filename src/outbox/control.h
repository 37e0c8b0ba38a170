// The control socket: a process that owns a database serves operator actions
// (requeue, skip, clean, stats) on a Unix socket in the database directory,
// "<path>/control.sock", when OutboxOptions::control_socket is on; jaiminho-tool
// uses it while that process holds the database (README, "Live control").
// Internal (floor 5, src/LAYERS): the server calls the Outbox's own operator
// actions and CollectMetrics; the tool (floor 6) uses the client half.
//
// Protocol: one request per connection, text lines.
//   request  "<action>[ <key>=<value>]...\n"
//   reply    "ok\n" then zero or more result lines of the same form (without
//            the action word: "<key>=<value> ..."), or "error <code> <message>\n"
//            with <code> the ErrorCode's number (result.h); then the server closes.
// Keys are [a-z_]; a value escapes '%', space, and bytes below 0x20 or 0x7f as
// %XX (hex), everything else as it is. Actions:
//   requeue stream=S seq=N [note=T]          -> stream=S seq=N requeued=1
//   requeue stream=S all_parked=1 [note=T]   -> stream=S requeued=N
//   skip stream=S seq=N reason=T             -> stream=S seq=N skipped=1
//   clean                                    -> removed=N kept_corrupt=N bytes_before=N bytes_after=N
//   stats                                    -> one line per stream (EncodeMetrics)
//   ping                                     -> pid=N path=P
// A request line is at most 64 KiB and must arrive within 5 s of the connection.
//
// Thread-safety: ControlServer::Start/Stop from one thread at a time (Open and
// Close); the server runs one thread that serves one connection at a time.
// The codec functions are pure; ControlCall is independent per call.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "jaiminho/metrics.h"
#include "jaiminho/outbox.h"
#include "jaiminho/result.h"

namespace jaiminho::internal {

// "<db_path>/control.sock".
std::string ControlSocketPath(std::string_view db_path);
// The longest path a Unix socket address holds (sockaddr_un.sun_path less its NUL).
size_t MaxSocketPathLength();

// One line of the protocol: a word and key=value fields, in order.
struct ControlLine {
  std::string action{};  // empty for a result line
  std::vector<std::pair<std::string, std::string>> fields{};

  // The first value of `key`, if any.
  std::optional<std::string_view> Get(std::string_view key) const;
  // The value of `key` as an unsigned number: kInvalidArgument naming `key`
  // when missing (and no default) or not a number.
  Result<uint64_t> GetU64(std::string_view key, std::optional<uint64_t> fallback = std::nullopt) const;
};

// The line without its '\n'.
std::string EncodeControlLine(const ControlLine& line);
// Parses a request (`with_action`) or a result line; kInvalidArgument naming
// what is wrong (a field without '=', a bad %XX escape, an empty key).
Result<ControlLine> ParseControlLine(std::string_view text, bool with_action);

// A stream's metrics as a result line, and back: every field of
// StreamMetrics, the histograms included.
ControlLine EncodeMetrics(const StreamMetrics& m);
Result<StreamMetrics> DecodeMetrics(const ControlLine& line);
ControlLine EncodeCleanReport(const CleanReport& r);
Result<CleanReport> DecodeCleanReport(const ControlLine& line);

// The server of one Outbox (see the file comment).
class ControlServer {
 public:
  // Binds ControlSocketPath(outbox's path) with mode 0600 and starts the
  // thread. A socket file left by a process that is gone (nobody accepts on
  // it) is replaced. Fails, binding nothing, with kInvalidArgument when the
  // path is longer than MaxSocketPathLength() or names something that is not
  // a socket, kBusy when a process listens on it, kIOError otherwise; each
  // error names the socket's path. `outbox` must outlive Stop().
  static Result<std::shared_ptr<ControlServer>> Start(Outbox& outbox);
  // Stops the thread (a connection in progress is dropped, never waited for
  // beyond the action it runs), closes the socket and removes its file when it
  // is still the one bound. Idempotent.
  void Stop();
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const { return path_; }

 private:
  ControlServer(Outbox& outbox, std::string path) : outbox_(outbox), path_(std::move(path)) {}
  void Loop();
  void Serve(int fd);
  // The reply to one request line (status line, result lines).
  std::string Handle(std::string_view request, long peer_pid, long peer_uid);

  Outbox& outbox_;
  const std::string path_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: Stop() writes it, the thread polls it
  // The bound file's identity, so Stop removes only our own socket.
  uint64_t dev_ = 0, ino_ = 0;
  std::thread thread_;
};

// A reply: the server's error, or its result lines.
struct ControlReply {
  std::optional<Error> error{};
  std::vector<ControlLine> lines{};
};

// Sends `request` to the socket at `socket_path` and reads the reply, waiting
// at most `timeout` for it. Errors of the exchange itself name the socket:
// kUnavailable when nobody listens there (no file, connection refused),
// kIOError otherwise (the request may then have been carried out).
Result<ControlReply> ControlCall(const std::string& socket_path, const ControlLine& request,
                                 std::chrono::milliseconds timeout);

}  // namespace jaiminho::internal
