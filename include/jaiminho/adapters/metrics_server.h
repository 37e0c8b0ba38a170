// MetricsServer: serves an Outbox's metrics over HTTP for a Prometheus
// scraper, with civetweb (Debian libcivetweb-dev). Built when the project is
// configured with JAIMINHO_WITH_METRICS_HTTP (CMake target jaiminho::metrics_http).
//
//   auto server = jaiminho::MetricsServer::Start(*outbox, {.listen = "0.0.0.0:9464"});
//   if (!server) { std::cerr << server.error().ToString() << "\n"; return 1; }
//   // ... scrape http://host:9464/metrics; the server stops when destroyed.
//
// Routes (GET; HEAD answers the same headers):
//   /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8":
//             RenderPrometheus(CollectMetrics(outbox)) with the counters and
//             histograms, jaiminho_build_info, and jaiminho_publisher_connected
//             when MetricsServerOptions::publisher_connected is set. 503 with
//             the error when the metrics cannot be collected (the outbox is closed).
//   /healthz  200 "ok" while the outbox is open; 503 "closed" after Close().
//   anything else: 404. Another method than GET or HEAD: 405.
// Each scrape costs one CollectMetrics (it reads the backlog: see
// jaiminho/metrics.h), on one of the server's threads.
//
// Thread-safety: Start may be called from any thread; port() from any thread.
// The destructor stops the server, waiting for requests in flight; it can take
// up to 2 s (civetweb's poll interval). REQUIRES:
// the Outbox outlives the server (destroy the server before the Outbox; an
// Outbox closed while the server runs is fine: /healthz says 503).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "jaiminho/result.h"

namespace jaiminho {

class Outbox;

struct MetricsServerOptions {
  // Address to listen on: "HOST:PORT" (an IPv4 address or a name such as
  // localhost, or "[v6]:PORT"), or "PORT" for every interface. Port 0 picks a
  // free port; port() tells which.
  // Default: "127.0.0.1:9464" (loopback only; 9464 is the port Prometheus
  // exporters of OpenTelemetry use).
  std::string listen = "127.0.0.1:9464";
  // Reports whether the publisher is connected (for example
  // MqttPublisher::connected), as the jaiminho_publisher_connected gauge;
  // nullopt from the function omits the gauge for that scrape. Called on a
  // server thread at each scrape: it must be thread-safe and quick.
  // Default: unset (no gauge).
  std::function<std::optional<bool>()> publisher_connected{};
  // Threads that answer requests. Must be in [1, 16]. Default: 2.
  int threads = 2;
};

class MetricsServer {
 public:
  // Starts listening. Fails with kInvalidArgument for a bad option, and with
  // kUnavailable naming the address when it cannot listen there (in use,
  // not a local address, no permission).
  [[nodiscard]] static Result<std::unique_ptr<MetricsServer>> Start(Outbox& outbox, MetricsServerOptions options = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port listened on (the one picked when options.listen asked for 0).
  uint16_t port() const;

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jaiminho
