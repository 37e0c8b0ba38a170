// Test helper: a program that owns a database with its control socket on
// (OutboxOptions::control_socket) and a keep-order stream whose head its
// publisher refuses, as a live daemon with a stuck stream.
//
//   jaiminho_live_daemon PATH STREAM N FAIL_SEQ
//
// Opens PATH, commits N events into the keep-order stream STREAM (payloads
// "event-1".."event-N"), and relays them with a publisher that refuses event
// FAIL_SEQ on every attempt (kUnavailable, retried every 10-50 ms; 0: none),
// so the stream stays blocked at it. Prints "ready <pid>" once the events are
// committed and the relay runs, then "delivered <seq> <payload>" for each event
// the publisher acknowledges, in that order. Lines on stdin: "heal" (the
// publisher accepts FAIL_SEQ from now on), "crash" (exit at once without
// closing: the socket file stays behind), "exit" or EOF (stop the relay, close
// the Outbox, exit 0).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>

#include "jaiminho/jaiminho.h"

namespace {

class RefusingPublisher final : public jaiminho::Publisher {
 public:
  explicit RefusingPublisher(uint64_t fail_seq) : fail_seq_(fail_seq) {}
  jaiminho::Status Publish(const jaiminho::Event& e) override {
    if (e.id.seq == fail_seq_ && !healed.load()) {
      return jaiminho::MakeError(jaiminho::ErrorCode::kUnavailable,
                                 "the broker refuses " + std::string(e.id.stream) + " seq " + std::to_string(e.id.seq));
    }
    Say("delivered " + std::to_string(e.id.seq) + " " + std::string(e.payload));
    return {};
  }
  // One line on stdout, whole: the relay's thread and main both write there.
  void Say(const std::string& line) {
    std::lock_guard<std::mutex> l(mu_);
    std::cout << line + "\n" << std::flush;
  }
  std::atomic<bool> healed{false};

 private:
  const uint64_t fail_seq_;
  std::mutex mu_;
};

int Fail(const jaiminho::Error& e) {
  std::cerr << "jaiminho_live_daemon: " << e.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: jaiminho_live_daemon PATH STREAM N FAIL_SEQ\n";
    return 2;
  }
  using namespace std::chrono_literals;
  auto outbox = jaiminho::Outbox::Open({.path = argv[1], .control_socket = true});
  if (!outbox) return Fail(outbox.error());
  auto stream =
      (*outbox)->OpenStream(argv[2], {.strategy = jaiminho::Strategy::kKeepOrder,
                                      .retry = jaiminho::RetryPolicy{.initial_backoff = 10ms, .max_backoff = 50ms}});
  if (!stream) return Fail(stream.error());
  const int n = std::stoi(argv[3]);
  for (int i = 1; i <= n; ++i) {
    auto txn = (*outbox)->Begin();
    std::string payload = "event-" + std::to_string(i);
    if (auto s = txn.Enqueue(**stream, {.type = "live.v1", .payload = payload}); !s) return Fail(s.error());
    if (auto r = txn.Commit({.sync = true}); !r) return Fail(r.error());
  }
  auto publisher = std::make_shared<RefusingPublisher>(std::stoull(argv[4]));
  auto relay = jaiminho::Relay::Make(**outbox, publisher, {.interval = 20ms});
  if (!relay) return Fail(relay.error());
  (*relay)->Start();
  // The relay may already be delivering: "ready" must not split a "delivered" line.
  publisher->Say("ready " + std::to_string(getpid()));
  for (std::string line; std::getline(std::cin, line);) {
    if (line == "heal") publisher->healed = true;
    if (line == "crash") _exit(0);  // no Close: the socket file stays
    if (line == "exit") break;
  }
  (*relay)->Stop();
  if (auto s = (*outbox)->Close(); !s) return Fail(s.error());
  return 0;
}
