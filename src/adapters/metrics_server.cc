#include "jaiminho/adapters/metrics_server.h"

#include <civetweb.h>
#include <fmt/format.h>

#include <cstring>
#include <string_view>

#include "jaiminho/metrics.h"
#include "jaiminho/outbox.h"

namespace jaiminho {

namespace {

// What the request handlers read (never written after Start).
struct State {
  Outbox* outbox = nullptr;
  MetricsServerOptions options;
};

int Reply(mg_connection* conn, int code, std::string_view reason, std::string_view content_type,
          std::string_view body) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const bool head = ri->request_method != nullptr && std::strcmp(ri->request_method, "HEAD") == 0;
  const std::string header = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: "
      "close\r\n\r\n",
      code, reason, content_type, body.size());
  mg_write(conn, header.data(), header.size());
  if (!head) mg_write(conn, body.data(), body.size());
  return code;  // 1..999: handled, with this status
}

constexpr std::string_view kText = "text/plain; charset=utf-8";

bool IsOpen(const Outbox& outbox) {
  // Any call into a closed Outbox is refused with kClosed; this one reads
  // nothing from disk (a missing family answers kNotFound).
  auto f = outbox.FindBusinessFamily("default");
  return f || f.error().code() != ErrorCode::kClosed;
}

int Handle(mg_connection* conn, void* data) {
  auto& state = *static_cast<State*>(data);
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string_view method = ri->request_method != nullptr ? ri->request_method : "";
  const std::string_view uri = ri->local_uri != nullptr ? ri->local_uri : "";
  if (uri != "/metrics" && uri != "/healthz") return Reply(conn, 404, "Not Found", kText, "not found\n");
  if (method != "GET" && method != "HEAD") {
    return Reply(conn, 405, "Method Not Allowed", kText, "only GET and HEAD\n");
  }
  if (uri == "/healthz") {
    return IsOpen(*state.outbox) ? Reply(conn, 200, "OK", kText, "ok\n")
                                 : Reply(conn, 503, "Service Unavailable", kText, "closed\n");
  }
  auto metrics = CollectMetrics(*state.outbox);
  if (!metrics) return Reply(conn, 503, "Service Unavailable", kText, metrics.error().ToString() + "\n");
  PrometheusOptions po;
  if (state.options.publisher_connected) po.publisher_connected = state.options.publisher_connected();
  return Reply(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", RenderPrometheus(*metrics, po));
}

int Quiet(const mg_connection* /*conn*/, const char* /*message*/) {
  return 1;  // errors reach the caller through Start's result, not stderr
}

}  // namespace

struct MetricsServer::Impl {
  State state;
  mg_context* ctx = nullptr;
  uint16_t port = 0;

  ~Impl() {
    if (ctx != nullptr) mg_stop(ctx);  // waits for the requests in flight
  }
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsServer::~MetricsServer() = default;

uint16_t MetricsServer::port() const {
  return impl_->port;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(Outbox& outbox, MetricsServerOptions options) {
  if (options.listen.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "MetricsServerOptions.listen: empty (want HOST:PORT or PORT)");
  }
  if (options.listen.find_first_of(", \t") != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("MetricsServerOptions.listen '{}': one HOST:PORT or PORT", options.listen));
  }
  if (options.threads < 1 || options.threads > 16) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("MetricsServerOptions.threads {}: must be in [1, 16]", options.threads));
  }
  auto impl = std::make_unique<Impl>();
  impl->state.outbox = &outbox;
  impl->state.options = std::move(options);
  const std::string threads = std::to_string(impl->state.options.threads);
  const char* config[] = {"listening_ports",
                          impl->state.options.listen.c_str(),
                          "num_threads",
                          threads.c_str(),
                          "request_timeout_ms",
                          "10000",
                          "enable_keep_alive",
                          "no",
                          nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = &Quiet;
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.configuration_options = config;
  char text[256] = {};
  unsigned code = 0;
  mg_error_data error{};
  error.code = &code;
  error.text = text;
  error.text_buffer_size = sizeof(text);
  impl->ctx = mg_start2(&init, &error);
  if (impl->ctx == nullptr) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("metrics server: cannot listen on {}: {}", impl->state.options.listen,
                                 text[0] != 0 ? text : "civetweb failed"));
  }
  mg_server_port ports[1] = {};
  if (mg_get_server_ports(impl->ctx, 1, ports) < 1 || ports[0].port <= 0 || ports[0].port > 65535) {
    return MakeError(ErrorCode::kInternal, fmt::format("metrics server on {}: civetweb reports no listening port",
                                                       impl->state.options.listen));
  }
  impl->port = static_cast<uint16_t>(ports[0].port);
  mg_set_request_handler(impl->ctx, "/", &Handle, &impl->state);
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

}  // namespace jaiminho
