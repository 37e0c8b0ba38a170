// Test helper: opens a jaiminho database in its own process and holds it.
//
//   jaiminho_hold_db PATH [STREAM N]
//   jaiminho_hold_db PATH --inbox ID...
//
// Opens PATH (creating it), optionally commits N events into STREAM, or
// receives each event id ("<db hex>/<stream>/<seq>") through an Inbox, one
// committed transaction each, while holding it; prints "ready <pid>" on stdout, then waits until stdin closes
// (or a line arrives) and exits without closing cleanly when told "crash".
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "jaiminho/jaiminho.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: jaiminho_hold_db PATH [STREAM N]\n";
    return 2;
  }
  auto outbox = jaiminho::Outbox::Open({.path = argv[1]});
  if (!outbox) {
    std::cerr << outbox.error().ToString() << "\n";
    return 1;
  }
  std::unique_ptr<jaiminho::Inbox> inbox;
  if (argc >= 3 && std::string(argv[2]) == "--inbox") {
    auto opened = jaiminho::Inbox::Open(**outbox);
    if (!opened) {
      std::cerr << opened.error().ToString() << "\n";
      return 1;
    }
    inbox = std::move(*opened);
    for (int i = 3; i < argc; ++i) {
      auto txn = (*outbox)->Begin();
      auto outcome = inbox->Receive(txn, std::string_view(argv[i]));
      if (!outcome || *outcome != jaiminho::ReceiveOutcome::kNew || !txn.Commit()) {
        std::cerr << "could not receive " << argv[i] << "\n";
        return 1;
      }
    }
  } else if (argc >= 4) {
    auto stream = (*outbox)->OpenStream(argv[2]);
    if (!stream) return 1;
    int n = std::stoi(argv[3]);
    for (int i = 0; i < n; ++i) {
      auto txn = (*outbox)->Begin();
      std::string payload = "held-" + std::to_string(i);
      if (!txn.Enqueue(**stream, {.type = "held.v1", .payload = payload})) return 1;
      if (!txn.Commit({.sync = true})) return 1;
    }
  }
  std::cout << "ready " << getpid() << std::endl;
  std::string line;
  std::getline(std::cin, line);
  if (line == "crash") _exit(0);  // no clean close
  inbox.reset();
  return (*outbox)->Close() ? 0 : 1;
}
