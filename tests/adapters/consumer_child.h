// What the consumer processes of the crash tests (mqtt_consumer_child.cc,
// kafka_consumer_child.cc) share: the database they apply into, the effect
// their handler records, the outcome log, and the end of a run with --expect.
//
// Business records (family "applied"), written by Apply in the inbox's
// transaction (consumer_harness.h CheckAppliedOnce reads them):
//   e/<stream>/<seq>          how many times the event's effect was applied ("1")
//   last/<stream>             keep-order streams: the last seq applied
//   violation/<stream>/<seq>  keep-order streams: seq applied after `last` != seq - 1
// The outcome log (--log FILE): one line per settled message, "new <id>" or
// "dup <id>" (O_APPEND, one write per line: every process appends to it).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/inbox.h"
#include "jaiminho/outbox.h"

namespace jaiminho::testing {

inline uint64_t ParseU64(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

class ConsumerChild {
 public:
  // `name` prefixes error messages ("mqtt_consumer_child").
  explicit ConsumerChild(std::string name) : name_(std::move(name)) {}
  ~ConsumerChild() {
    if (log_fd_ >= 0) ::close(log_fd_);
  }
  ConsumerChild(const ConsumerChild&) = delete;
  ConsumerChild& operator=(const ConsumerChild&) = delete;

  // "error <what>" on stdout (what the test reads), the same on stderr; exit code 2.
  int Fail(const std::string& what) const {
    std::cout << "error " << what << std::endl;
    std::cerr << name_ << ": " << what << "\n";
    return 2;
  }

  // Opens the database at `db` with its inbox (keep-order `keep_order`) and
  // the outcome log; false after Fail's message.
  bool Open(const std::string& db, std::vector<std::string> keep_order, const std::string& log_path) {
    keep_order_ = keep_order;
    auto outbox = Outbox::Open({.path = db, .business_families = {{.name = "applied"}}});
    if (!outbox) {
      Fail(outbox.error().ToString());
      return false;
    }
    outbox_ = std::move(*outbox);
    auto inbox = Inbox::Open(*outbox_, {.keep_order_streams = std::move(keep_order)});
    if (!inbox) {
      Fail(inbox.error().ToString());
      return false;
    }
    inbox_ = std::move(*inbox);
    auto family = outbox_->FindBusinessFamily("applied");
    if (!family) {
      Fail(family.error().ToString());
      return false;
    }
    applied_ = *family;
    for (const auto& s : inbox_->State())
      base_ += s.received;
    if (!log_path.empty()) {
      log_fd_ = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (log_fd_ < 0) {
        Fail("cannot open " + log_path);
        return false;
      }
    }
    return true;
  }
  Outbox& outbox() { return *outbox_; }
  Inbox& inbox() { return *inbox_; }

  // The handler's effect for event `id` (see the file comment), in `txn`.
  Status Apply(const EventId& id, Transaction& txn) {
    const std::string stream(id.stream);
    const std::string key = "e/" + stream + "/" + std::to_string(id.seq);
    auto count = GetU64(key);
    if (!count) return tl::unexpected(count.error());
    if (auto s = txn.Put(applied_, key, std::to_string(*count + 1)); !s) return s;
    for (const auto& ko : keep_order_) {
      if (ko != stream) continue;
      auto last = GetU64("last/" + stream);
      if (!last) return tl::unexpected(last.error());
      if (id.seq != *last + 1) {
        if (auto s = txn.Put(applied_, "violation/" + stream + "/" + std::to_string(id.seq), std::to_string(*last));
            !s) {
          return s;
        }
      }
      if (auto s = txn.Put(applied_, "last/" + stream, std::to_string(id.seq)); !s) return s;
    }
    return {};
  }

  // Appends "new <id>" or "dup <id>" to the outcome log (when there is one).
  void LogOutcome(std::string_view raw_id, ReceiveOutcome outcome) const {
    if (log_fd_ < 0) return;
    std::string line = (outcome == ReceiveOutcome::kNew ? "new " : "dup ") + std::string(raw_id) + "\n";
    if (::write(log_fd_, line.data(), line.size()) < 0) std::perror("write log");
  }

  // With expect > 0: waits until the inbox holds `expect` events (this process
  // applied the rest), destroys the consumer, prints "done applied=A
  // duplicates=D" and returns 0. Without: runs until stdin closes.
  template <class Consumer>
  int Finish(std::unique_ptr<Consumer>& consumer, uint64_t expect) {
    using namespace std::chrono_literals;
    if (expect == 0) {
      std::string line;
      while (std::getline(std::cin, line)) {
      }
      return 0;
    }
    const uint64_t want = expect > base_ ? expect - base_ : 0;
    if (!consumer->WaitApplied(want, 120s)) {
      auto st = consumer->stats();
      return Fail("applied " + std::to_string(base_ + st.applied) + " of " + std::to_string(expect) +
                  "; last error: " + consumer->last_error());
    }
    auto st = consumer->stats();
    consumer.reset();
    std::cout << "done applied=" << st.applied << " duplicates=" << st.duplicates << std::endl;
    return 0;
  }

 private:
  Result<uint64_t> GetU64(const std::string& key) {
    auto v = outbox_->Get(applied_, key);
    if (!v) return tl::unexpected(v.error());
    return *v ? ParseU64(**v) : 0;
  }

  std::string name_;
  std::vector<std::string> keep_order_;
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<Inbox> inbox_;
  BusinessFamily applied_{};
  uint64_t base_ = 0;  // events the inbox held at Open
  int log_fd_ = -1;
};

}  // namespace jaiminho::testing
