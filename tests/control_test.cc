// The control socket (OutboxOptions::control_socket, src/outbox/control.h):
// off by default, bound with mode 0600 and removed at Close, a stale file
// replaced, a listener or a foreign file refused, a too-long path a clear
// error, silent clients neither blocking others nor Close, protocol errors
// naming what is wrong, and the line codec. The tool's use of it is tested
// through the built binary in tests/tool/live_control_test.cc.
#include "outbox/control.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/test_util.h"

namespace jaiminho {
namespace {

using internal::ControlCall;
using internal::ControlLine;
using testing::MustOpen;
using testing::TempDir;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kTimeout = 60s;

// A connected client socket (-1 on failure, with a test failure).
int Connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "connect " << path << ": " << std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `text` as it is and returns everything the server answers until it closes.
std::string Exchange(const std::string& path, const std::string& text) {
  int fd = Connect(path);
  if (fd < 0) return "";
  EXPECT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
  ::shutdown(fd, SHUT_WR);  // the end of the request, as `nc -U -N` does
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return reply;
}

// A socket bound at `path`, listening or not (a stale file once closed).
int Bind(const std::string& path, bool listen) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  if (listen) {
    EXPECT_EQ(::listen(fd, 4), 0);
  }
  return fd;
}

bool IsSocket(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::unique_ptr<Outbox> OpenLive(const std::string& path) {
  return MustOpen(path, {.control_socket = true});
}

TEST(ControlSocket, OffByDefault) {
  TempDir dir;
  auto outbox = MustOpen(dir.Sub("db"));
  ASSERT_TRUE(outbox);
  EXPECT_FALSE(outbox->options().control_socket);
  EXPECT_FALSE(fs::exists(dir.Sub("db/control.sock")));
  ASSERT_OK(outbox->Close());
}

TEST(ControlSocket, BoundWithMode0600ServesAndIsRemovedAtClose) {
  TempDir dir;
  const std::string socket = dir.Sub("db/control.sock");
  auto outbox = OpenLive(dir.Sub("db"));
  ASSERT_TRUE(outbox);
  struct stat st {};
  ASSERT_EQ(::lstat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_OK_AND_ASSIGN(auto reply, ControlCall(socket, {.action = "ping"}, kTimeout));
  ASSERT_FALSE(reply.error) << reply.error->ToString();
  ASSERT_EQ(reply.lines.size(), 1u);
  EXPECT_EQ(reply.lines[0].Get("pid"), std::to_string(::getpid()));
  EXPECT_EQ(reply.lines[0].Get("path"), dir.Sub("db"));

  ASSERT_OK(outbox->Close());
  EXPECT_FALSE(fs::exists(socket));
  ASSERT_ERROR(ControlCall(socket, {.action = "ping"}, kTimeout), ErrorCode::kUnavailable);
}

TEST(ControlSocket, StatsCarriesTheCountersOfThisProcess) {
  TempDir dir;
  auto outbox = OpenLive(dir.Sub("db"));
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(Stream * s, outbox->OpenStream("fills", {.strategy = Strategy::kKeepOrder}));
  for (int i = 0; i < 3; ++i) {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*s, {.type = "fill.v1", .payload = "f"}));
    ASSERT_OK(txn.Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto reply, ControlCall(dir.Sub("db/control.sock"), {.action = "stats"}, kTimeout));
  ASSERT_FALSE(reply.error) << reply.error->ToString();
  ASSERT_EQ(reply.lines.size(), 1u);
  ASSERT_OK_AND_ASSIGN(StreamMetrics m, internal::DecodeMetrics(reply.lines[0]));
  EXPECT_EQ(m.stream, "fills");
  EXPECT_EQ(m.strategy, Strategy::kKeepOrder);
  EXPECT_EQ(m.committed, 3u);
  EXPECT_EQ(m.pending, 3u);
  EXPECT_EQ(m.last_seq, 3u);
  ASSERT_OK(outbox->Close());
}

TEST(ControlSocket, StaleSocketFileIsReplaced) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  const std::string socket = path + "/control.sock";
  ASSERT_OK(MustOpen(path)->Close());
  ::close(Bind(socket, /*listen=*/false));  // a file nobody accepts on: a killed process's
  ASSERT_TRUE(IsSocket(socket));
  auto outbox = OpenLive(path);
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(auto reply, ControlCall(socket, {.action = "ping"}, kTimeout));
  EXPECT_FALSE(reply.error);
  ASSERT_OK(outbox->Close());
  EXPECT_FALSE(fs::exists(socket));
}

TEST(ControlSocket, RefusesASocketSomeoneListensOnAndLeavesIt) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  const std::string socket = path + "/control.sock";
  ASSERT_OK(MustOpen(path)->Close());
  int listener = Bind(socket, /*listen=*/true);
  auto outbox = Outbox::Open({.path = path, .control_socket = true});
  ASSERT_FALSE(outbox);
  EXPECT_EQ(outbox.error().code(), ErrorCode::kBusy) << outbox.error().ToString();
  EXPECT_NE(outbox.error().message().find(socket), std::string::npos) << outbox.error().ToString();
  EXPECT_NE(outbox.error().message().find("process " + std::to_string(::getpid())), std::string::npos)
      << outbox.error().ToString();
  EXPECT_TRUE(IsSocket(socket)) << "the listener's socket was removed";
  ::close(listener);
  // The database itself was closed again: it opens.
  auto again = OpenLive(path);
  ASSERT_TRUE(again);
  ASSERT_OK(again->Close());
}

TEST(ControlSocket, RefusesAPathThatIsNotASocket) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  const std::string socket = path + "/control.sock";
  ASSERT_OK(MustOpen(path)->Close());
  std::ofstream(socket) << "notes\n";
  auto outbox = Outbox::Open({.path = path, .control_socket = true});
  ASSERT_FALSE(outbox);
  EXPECT_EQ(outbox.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(outbox.error().message().find(socket + ": the path exists and is not a socket"), std::string::npos)
      << outbox.error().ToString();
  std::ifstream in(socket);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "notes\n");
}

TEST(ControlSocket, TooLongPathIsAClearErrorNamingIt) {
  TempDir dir;
  std::string path = dir.path();
  while (path.size() + std::strlen("/control.sock") <= internal::MaxSocketPathLength())
    path += "/long-directory-name";
  const std::string socket = path + "/control.sock";
  auto outbox = Outbox::Open({.path = path, .control_socket = true});
  ASSERT_FALSE(outbox);
  EXPECT_EQ(outbox.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(outbox.error().message().find(socket), std::string::npos) << outbox.error().ToString();
  EXPECT_NE(outbox.error().message().find("at most 107"), std::string::npos) << outbox.error().ToString();
  // Without the socket the same path opens.
  auto plain = MustOpen(path);
  ASSERT_TRUE(plain);
  ASSERT_OK(plain->Close());
}

// A client that connects and says nothing is dropped after the request
// timeout, so the next one is served; and Close never waits for one.
TEST(ControlSocket, SilentClientsBlockNeitherOthersNorClose) {
  TempDir dir;
  const std::string socket = dir.Sub("db/control.sock");
  auto outbox = OpenLive(dir.Sub("db"));
  ASSERT_TRUE(outbox);
  int silent = Connect(socket);
  ASSERT_GE(silent, 0);
  ASSERT_OK_AND_ASSIGN(auto reply, ControlCall(socket, {.action = "ping"}, kTimeout));
  EXPECT_FALSE(reply.error);
  // The silent one was told why it was dropped.
  std::string told;
  char buf[512];
  for (ssize_t n; (n = ::recv(silent, buf, sizeof buf, 0)) > 0;)
    told.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(told.rfind("error 1 no request line within 5 s", 0), 0u) << told;
  ::close(silent);

  // Another silent client, being served (its request awaited) when Close comes.
  silent = Connect(socket);
  ASSERT_GE(silent, 0);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK(outbox->Close());
  std::printf("Close with a silent client connected took %.1f ms\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  EXPECT_FALSE(fs::exists(socket));
  pollfd p{silent, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kTimeout).count())), 1);
  EXPECT_LE(::recv(silent, buf, sizeof buf, 0), 0) << "the dropped client got a reply";
  ::close(silent);
}

TEST(ControlSocket, ProtocolErrorsNameWhatIsWrong) {
  TempDir dir;
  const std::string socket = dir.Sub("db/control.sock");
  auto outbox = OpenLive(dir.Sub("db"));
  ASSERT_TRUE(outbox);
  ASSERT_OK_AND_ASSIGN(Stream * orders, outbox->OpenStream("orders", {.strategy = Strategy::kKeepOrder}));
  {
    auto txn = outbox->Begin();
    ASSERT_OK(txn.Enqueue(*orders, {.type = "o.v1", .payload = "o"}));
    ASSERT_OK(txn.Commit());
  }
  auto error_of = [&](const ControlLine& request) -> std::string {
    auto reply = ControlCall(socket, request, kTimeout);
    if (!reply) return "call failed: " + reply.error().ToString();
    if (!reply->error) return "no error";
    return reply->error->ToString();
  };
  EXPECT_EQ(error_of({.action = "frobnicate"}),
            "invalid argument: unknown action 'frobnicate' (requeue, skip, clean, stats, ping)");
  EXPECT_EQ(error_of({.action = "skip", .fields = {{"stream", "nope"}, {"seq", "1"}, {"reason", "x"}}}),
            "not found: no stream 'nope'");
  EXPECT_EQ(error_of({.action = "skip", .fields = {{"stream", "orders"}, {"seq", "abc"}, {"reason", "x"}}}),
            "invalid argument: seq=abc is not an unsigned number");
  EXPECT_EQ(error_of({.action = "skip", .fields = {{"stream", "orders"}, {"seq", "1"}}}),
            "invalid argument: skip of stream 'orders' seq 1: reason= is required");
  EXPECT_EQ(error_of({.action = "skip", .fields = {{"stream", "orders"}, {"seq", "1"}, {"reasn", "x"}}}),
            "invalid argument: skip: unknown field 'reasn' (accepted: stream, seq, reason, user)");
  EXPECT_EQ(error_of({.action = "requeue", .fields = {{"stream", "orders"}}}),
            "invalid argument: requeue of stream 'orders': give exactly one of seq=N and all_parked=1");
  std::string missing = error_of({.action = "requeue", .fields = {{"stream", "orders"}, {"seq", "99"}}});
  EXPECT_EQ(missing.rfind("not found: ", 0), 0u) << missing;
  EXPECT_NE(missing.find("seq 99"), std::string::npos) << missing;

  // Raw lines, as `nc -U` would send them.
  EXPECT_EQ(Exchange(socket, "skip stream=orders seq=1 reason=%zz\n"), "error 1 bad %XX escape in '%zz'\n");
  EXPECT_EQ(Exchange(socket, "\n"), "error 1 empty request (expected an action: requeue, skip, clean, stats)\n");
  EXPECT_EQ(Exchange(socket, "skip stream=orders seq=1 reason=poison%20order"),  // no final newline: still a line
            "ok\nstream=orders seq=1 skipped=1\n");
  ASSERT_OK_AND_ASSIGN(StoredEvent parked, outbox->FindEvent(*orders, 1));
  EXPECT_NE(parked->note.find("poison order"), std::string::npos) << parked->note;
  ASSERT_OK(outbox->Close());
}

TEST(ControlSocket, LineCodecRoundTrips) {
  ControlLine line{
      .action = "skip",
      .fields = {{"stream", "orders"}, {"reason", "100% bad = wrong\tvalue\nnext line, café"}, {"empty", ""}}};
  std::string text = internal::EncodeControlLine(line);
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  EXPECT_EQ(text, "skip stream=orders reason=100%25%20bad%20=%20wrong%09value%0Anext%20line,%20café empty=");
  ASSERT_OK_AND_ASSIGN(ControlLine back, internal::ParseControlLine(text, true));
  EXPECT_EQ(back.action, line.action);
  EXPECT_EQ(back.fields, line.fields);

  StreamMetrics m;
  m.stream = "fills";
  m.strategy = Strategy::kKeepOrder;
  m.pending = 7;
  m.retrying = 1;
  m.parked_records = 2;
  m.oldest_pending_age = std::chrono::microseconds(1234567);
  m.last_seq = 42;
  m.cursor = 35;
  m.blocked = true;
  m.blocked_seq = 35;
  m.blocked_error = "unavailable: broker down 100%";
  m.committed = 42;
  m.published = 34;
  m.failed = 9;
  m.retried = 8;
  m.parked = 2;
  m.dropped = 1;
  m.commit_to_publish_seconds = {.upper_bounds = {0.001, 0.25}, .bucket_counts = {3, 4, 5}, .sum = 1.5, .count = 12};
  m.bytes_on_disk = 4096;
  m.quota_max_events = 100;
  m.waiting_bytes = 77;
  ASSERT_OK_AND_ASSIGN(ControlLine encoded,
                       internal::ParseControlLine(internal::EncodeControlLine(internal::EncodeMetrics(m)), false));
  ASSERT_OK_AND_ASSIGN(StreamMetrics d, internal::DecodeMetrics(encoded));
  EXPECT_EQ(d.stream, m.stream);
  EXPECT_EQ(d.strategy, m.strategy);
  EXPECT_EQ(d.pending, m.pending);
  EXPECT_EQ(d.retrying, m.retrying);
  EXPECT_EQ(d.parked_records, m.parked_records);
  EXPECT_EQ(d.oldest_pending_age, m.oldest_pending_age);
  EXPECT_EQ(d.last_seq, m.last_seq);
  EXPECT_EQ(d.cursor, m.cursor);
  EXPECT_EQ(d.blocked, m.blocked);
  EXPECT_EQ(d.blocked_seq, m.blocked_seq);
  EXPECT_EQ(d.blocked_error, m.blocked_error);
  EXPECT_EQ(d.committed, m.committed);
  EXPECT_EQ(d.published, m.published);
  EXPECT_EQ(d.failed, m.failed);
  EXPECT_EQ(d.retried, m.retried);
  EXPECT_EQ(d.parked, m.parked);
  EXPECT_EQ(d.dropped, m.dropped);
  EXPECT_EQ(d.commit_to_publish_seconds.upper_bounds, m.commit_to_publish_seconds.upper_bounds);
  EXPECT_EQ(d.commit_to_publish_seconds.bucket_counts, m.commit_to_publish_seconds.bucket_counts);
  EXPECT_EQ(d.commit_to_publish_seconds.sum, m.commit_to_publish_seconds.sum);
  EXPECT_EQ(d.commit_to_publish_seconds.count, m.commit_to_publish_seconds.count);
  EXPECT_TRUE(d.publish_duration_seconds.upper_bounds.empty());
  EXPECT_EQ(d.bytes_on_disk, m.bytes_on_disk);
  EXPECT_EQ(d.quota_max_events, m.quota_max_events);
  EXPECT_EQ(d.quota_max_bytes, 0u);
  EXPECT_EQ(d.waiting_bytes, m.waiting_bytes);

  StreamMetrics bare;  // unset optionals stay unset
  bare.stream = "s";
  ASSERT_OK_AND_ASSIGN(StreamMetrics bare_back, internal::DecodeMetrics(internal::EncodeMetrics(bare)));
  EXPECT_FALSE(bare_back.oldest_pending_age);
  EXPECT_FALSE(bare_back.bytes_on_disk);
  EXPECT_FALSE(bare_back.waiting_bytes);

  ASSERT_ERROR(internal::ParseControlLine("skip stream", true), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(internal::ParseControlLine("skip =x", true), ErrorCode::kInvalidArgument);
  ASSERT_ERROR(internal::ParseControlLine("skip a=%4", true), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace jaiminho
