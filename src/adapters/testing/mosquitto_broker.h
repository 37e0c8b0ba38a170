// A mosquitto broker run as a child process on a loopback port, for the
// adapter tests and the examples. Not part of the installed library.
//
//   auto broker = jaiminho::testing::MosquittoBroker::Start({.dir = tmp.path()});
//   ASSERT_OK(broker);
//   ... (*broker)->port() ...
//   ASSERT_OK((*broker)->Stop());      // SIGTERM: the broker saves its sessions
//   ASSERT_OK((*broker)->Restart());   // same port, same persistence file
//
// Readiness is observed, not guessed: Start returns once the broker has logged
// that it is running and a TCP connection to its port succeeds.
//
// Thread-safety: one thread drives a broker; log() may be called from any.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "jaiminho/result.h"
#include "util/mutex.h"

namespace jaiminho::testing {

struct MosquittoBrokerOptions {
  // The broker binary. Default: /usr/sbin/mosquitto (Debian's package).
  std::string binary = "/usr/sbin/mosquitto";
  // Directory for the configuration and the persistence file. Required.
  std::string dir{};
  // Loopback port; 0 picks a free one. Default: 0.
  uint16_t port = 0;
  // Keep sessions and queued messages across Stop/Restart. Default: true.
  bool persistence = true;
  // Accept clients without a username. Default: true.
  bool allow_anonymous = true;
  // Appended to the generated configuration file.
  std::string extra_config{};
  // How long Start and Restart wait for the broker to be ready. Default: 20 s.
  std::chrono::milliseconds ready_timeout = std::chrono::seconds(20);
  // A second listener, TLS, beside the plain one on `port` (which the test
  // subscribers use): enabled by tls_cert_file. Its port: tls_port, 0 picks a
  // free one. PEM files: the CA that client certificates must chain to, the
  // broker's certificate and key. With tls_require_certificate a client
  // without a certificate signed by tls_ca_file is refused. Default: none.
  uint16_t tls_port = 0;
  std::string tls_ca_file{};
  std::string tls_cert_file{};
  std::string tls_key_file{};
  bool tls_require_certificate = false;
};

// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
uint16_t FreeLoopbackPort();

// Polls a TCP connect to host:port until it succeeds or `timeout` passes.
bool WaitForListener(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);

class MosquittoBroker {
 public:
  [[nodiscard]] static Result<std::unique_ptr<MosquittoBroker>> Start(MosquittoBrokerOptions options);
  ~MosquittoBroker();  // stops the broker if it runs
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  // SIGTERM and wait for the exit (SIGKILL after 10 s). The broker writes its
  // persistence file on the way out. Idempotent.
  [[nodiscard]] Status Stop();
  // Starts the broker again on the same port with the same configuration.
  [[nodiscard]] Status Restart();

  // SIGSTOP / SIGCONT: a paused broker keeps its connections open but
  // answers nothing (a hung broker, for timeout tests).
  void Pause();
  void Resume();

  bool running() const { return pid_ > 0; }
  uint16_t port() const { return options_.port; }
  // The TLS listener's port, 0 without one.
  uint16_t tls_port() const { return options_.tls_cert_file.empty() ? 0 : options_.tls_port; }
  std::string host() const { return "127.0.0.1"; }
  // Everything the broker wrote to stdout and stderr, across restarts.
  std::string log() const EXCLUDES(mu_);

 private:
  explicit MosquittoBroker(MosquittoBrokerOptions options) : options_(std::move(options)) {}
  Status Launch() EXCLUDES(mu_);
  void Drain(int fd) EXCLUDES(mu_);

  MosquittoBrokerOptions options_;
  std::string config_path_{};
  pid_t pid_ = -1;
  std::thread drain_{};
  mutable internal::Mutex mu_;
  internal::CondVar cv_;
  std::string log_ GUARDED_BY(mu_){};
  bool eof_ GUARDED_BY(mu_) = false;      // the current child closed its output
  size_t log_start_ GUARDED_BY(mu_) = 0;  // where the current child's log begins
};

}  // namespace jaiminho::testing
