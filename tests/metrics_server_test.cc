// MetricsServer (jaiminho::metrics_http): /metrics, /healthz, 404, a port
// picked by the system, and a clear error when the address is taken.
#include "jaiminho/adapters/metrics_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/test_util.h"

namespace jaiminho {
namespace {

using ::testing::HasSubstr;
using testing::MustOpen;
using ::testing::StartsWith;
using testing::TempDir;

// One HTTP/1.0 request to 127.0.0.1:port; the whole response (the server closes).
std::string Http(uint16_t port, std::string_view method, std::string_view path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    std::string req = std::string(method) + " " + std::string(path) + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
    EXPECT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
      out.append(buf, static_cast<size_t>(n));
  } else {
    ADD_FAILURE() << "connect to 127.0.0.1:" << port << ": " << strerror(errno);
  }
  close(fd);
  return out;
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<Outbox> outbox = MustOpen(dir.Sub("db"));
};

TEST(MetricsServer, ServesMetricsAndHealthOnAPickedPort) {
  Fixture f;
  ASSERT_NE(f.outbox, nullptr);
  ASSERT_OK_AND_ASSIGN(Stream * s, f.outbox->OpenStream("telemetry"));
  auto txn = f.outbox->Begin();
  ASSERT_OK(txn.Enqueue(*s, {.type = "t", .key = "k", .payload = "p"}));
  ASSERT_OK(txn.Commit());
  std::atomic<bool> connected{true};
  ASSERT_OK_AND_ASSIGN(
      auto server,
      MetricsServer::Start(*f.outbox, {.listen = "127.0.0.1:0", .publisher_connected = [&]() -> std::optional<bool> {
                                         return connected.load();
                                       }}));
  ASSERT_NE(server->port(), 0);

  std::string m = Http(server->port(), "GET", "/metrics");
  EXPECT_THAT(m, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(m, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  EXPECT_THAT(m, HasSubstr("jaiminho_pending_events{stream=\"telemetry\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("jaiminho_committed_events_total{stream=\"telemetry\"} 1\n"));  // counters
  EXPECT_THAT(m, HasSubstr("# TYPE jaiminho_commit_to_publish_seconds histogram\n"));
  EXPECT_THAT(m, HasSubstr("jaiminho_publisher_connected 1\n"));
  connected = false;
  EXPECT_THAT(Http(server->port(), "GET", "/metrics"), HasSubstr("jaiminho_publisher_connected 0\n"));

  std::string h = Http(server->port(), "GET", "/healthz");
  EXPECT_THAT(h, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(h, ::testing::EndsWith("\r\n\r\nok\n"));
  EXPECT_THAT(Http(server->port(), "HEAD", "/healthz"), ::testing::EndsWith("\r\n\r\n"));
  EXPECT_THAT(Http(server->port(), "GET", "/"), StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Http(server->port(), "GET", "/metrics/x"), StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Http(server->port(), "POST", "/metrics"), StartsWith("HTTP/1.1 405 "));

  ASSERT_OK(f.outbox->Close());
  EXPECT_THAT(Http(server->port(), "GET", "/healthz"), StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(Http(server->port(), "GET", "/metrics"), StartsWith("HTTP/1.1 503 "));
}

// (One server per test: stopping one takes up to civetweb's 2 s poll interval.)
TEST(MetricsServer, WithoutTheGaugeOptionAndAnAddressInUseIsAnErrorNamingIt) {
  Fixture f;
  ASSERT_OK_AND_ASSIGN(auto first, MetricsServer::Start(*f.outbox, {.listen = "127.0.0.1:0"}));
  std::string m = Http(first->port(), "GET", "/metrics");
  EXPECT_THAT(m, HasSubstr("jaiminho_build_info{version="));
  EXPECT_THAT(m, ::testing::Not(HasSubstr("publisher_connected")));

  const std::string taken = "127.0.0.1:" + std::to_string(first->port());
  auto second = MetricsServer::Start(*f.outbox, {.listen = taken});
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(second.error().message(), HasSubstr(taken));

  auto bad = MetricsServer::Start(*f.outbox, {.listen = "127.0.0.1:0", .threads = 0});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad.error().message(), HasSubstr("threads"));
}

}  // namespace
}  // namespace jaiminho
