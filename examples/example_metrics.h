// --metrics ADDR for the broker examples: serves /metrics and /healthz
// (jaiminho::MetricsServer, jaiminho/adapters/metrics_server.h) while the
// example runs and, once it is done, until its standard input reaches end of
// file, so that a scraper (or .ci/steps/60-run-examples.sh) can read the final
// figures. Off unless given. Refused when the project was built without
// jaiminho::metrics_http (civetweb).
//
//   example::Metrics metrics;
//   cli.Option("--metrics", "ADDR", example::Metrics::kHelp, [&](const std::string& v) { metrics_addr = v; });
//   if (!metrics.Start(outbox, metrics_addr)) return 1;   // prints "metrics: http://HOST:PORT/metrics"
//   ...
//   metrics.HoldUntilStdinCloses();
#pragma once

#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "jaiminho/jaiminho.h"
#if JAIMINHO_EXAMPLE_METRICS_HTTP
#include "jaiminho/adapters/metrics_server.h"
#endif

namespace example {

class Metrics {
 public:
  static constexpr const char* kHelp =
      "serve /metrics and /healthz on ADDR (HOST:PORT; port 0 picks one); once done, until stdin is closed";

  // Starts the server when `addr` is not empty. False, with the error on
  // stderr, when it cannot.
  bool Start(jaiminho::Outbox& outbox, const std::string& addr,
             std::function<std::optional<bool>()> publisher_connected = {}) {
    if (addr.empty()) return true;
#if JAIMINHO_EXAMPLE_METRICS_HTTP
    auto server =
        jaiminho::MetricsServer::Start(outbox, {.listen = addr, .publisher_connected = std::move(publisher_connected)});
    if (!server) {
      std::cerr << "--metrics: " << server.error().ToString() << "\n";
      return false;
    }
    server_ = std::move(*server);
    const auto colon = addr.rfind(':');
    const std::string host = colon == std::string::npos || colon == 0 ? "0.0.0.0" : addr.substr(0, colon);
    std::printf("metrics: http://%s:%u/metrics (and /healthz)\n", host.c_str(), server_->port());
    std::fflush(stdout);
    return true;
#else
    (void)outbox;
    (void)publisher_connected;
    std::cerr << "--metrics: this build has no metrics server (configure with JAIMINHO_WITH_METRICS_HTTP=ON, "
                 "needs libcivetweb-dev)\n";
    return false;
#endif
  }

  // With a server: keeps serving until stdin reaches end of file.
  void HoldUntilStdinCloses() {
#if JAIMINHO_EXAMPLE_METRICS_HTTP
    if (!server_) return;
    std::printf("metrics: still serving; close stdin (Ctrl-D) to exit\n");
    std::fflush(stdout);
    while (std::getchar() != EOF) {
    }
    server_.reset();
#endif
  }

 private:
#if JAIMINHO_EXAMPLE_METRICS_HTTP
  std::unique_ptr<jaiminho::MetricsServer> server_;
#endif
};

}  // namespace example
