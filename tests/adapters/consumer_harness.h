// What the consumer tests of both adapters share (hand-made events, the
// consumer side of their in-process tests), and what their crash harnesses share
// (MqttConsumerCrash.* in mqtt_consumer_test.cc, KafkaConsumerCrash.* in
// kafka_consumer_test.cc; their consumer processes record each effect as
// mqtt_consumer_child.cc / kafka_consumer_child.cc do): the run's switches,
// the producer, and the checks of the consumer's database and outcome log.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "jaiminho/event.h"
#include "jaiminho/inbox.h"
#include "jaiminho/outbox.h"
#include "jaiminho/relay.h"
#include "support/test_util.h"

namespace jaiminho::testing {

// An integer from the environment (JAIMINHO_CONSUMER_KILLS), or `fallback`.
inline int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// JAIMINHO_CONSUMER_SEED when set (to repeat a run), else a random seed.
inline uint64_t HarnessSeed() {
  const char* v = std::getenv("JAIMINHO_CONSUMER_SEED");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : std::random_device()();
}

// Events made by hand for direct publisher calls: stream `stream`, seqs
// first..last (the events' views point into `text`).
struct EventSet {
  std::deque<std::string> text;
  std::vector<Event> events;
  const Event& operator[](size_t i) const { return events[i]; }
  auto begin() const { return events.begin(); }
  auto end() const { return events.end(); }
};
EventSet MakeEvents(std::string_view stream, uint64_t first, uint64_t last) {
  EventSet out;
  for (uint64_t s = first; s <= last; ++s) {
    const std::string& key = out.text.emplace_back("k" + std::to_string(s));
    const std::string& payload = out.text.emplace_back(std::to_string(s));
    Event e;
    e.id.db.bytes[15] = 7;
    e.id.stream = stream;
    e.id.seq = s;
    e.type = "t";
    e.key = key;
    e.payload = payload;
    out.events.push_back(e);
  }
  return out;
}

// The consumer side in this process: a database with an "applied" family, its
// inbox, and a handler that counts each event's applications there and records
// the order of application.
// Message, Consumer, Options: the adapter's (MqttMessage, MqttConsumer, MqttConsumerOptions or the Kafka ones).
template <class Message, class Consumer, class Options>
struct ConsumerSide {
  std::unique_ptr<Outbox> outbox;
  std::unique_ptr<Inbox> inbox;
  BusinessFamily applied{};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> order;        // raw ids, in the order the handler ran
  std::vector<std::string> settled_dup;  // raw ids settled as duplicates
  int handler_calls = 0;
  std::function<Status(const Message&)> fail;  // optional: fail the handler

  explicit ConsumerSide(const std::string& dir, InboxOptions io = {}) {
    outbox = MustOpen(dir, {.business_families = {{.name = "applied"}}});
    auto i = Inbox::Open(*outbox, std::move(io));
    EXPECT_TRUE(i.has_value()) << i.error().ToString();
    if (i) inbox = std::move(*i);
    auto f = outbox->FindBusinessFamily("applied");
    EXPECT_TRUE(f.has_value());
    if (f) applied = *f;
  }

  typename Consumer::Handler Handler() {
    return [this](const Message& m, Transaction& txn) -> Status {
      {
        std::lock_guard l(mu);
        ++handler_calls;
        if (fail) {
          if (Status s = fail(m); !s) return s;
        }
        order.emplace_back(m.raw_id);
      }
      std::string key = "e/" + std::string(m.id.stream) + "/" + std::to_string(m.id.seq);
      auto old = outbox->Get(applied, key);
      if (!old) return tl::unexpected(old.error());
      return txn.Put(applied, key, std::to_string(*old ? std::stoi(**old) + 1 : 1));
    };
  }

  Options Observed(Options o) {
    o.on_outcome = [this](const Message& m, ReceiveOutcome outcome) {
      std::lock_guard l(mu);
      if (outcome == ReceiveOutcome::kDuplicate) settled_dup.emplace_back(m.raw_id);
      cv.notify_all();
    };
    return o;
  }

  bool WaitDuplicates(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::unique_lock l(mu);
    return cv.wait_for(l, timeout, [&] { return settled_dup.size() >= n; });
  }

  // How many times the effect of (stream, seq) was applied.
  int Applied(std::string_view stream, uint64_t seq) {
    auto v = outbox->Get(applied, "e/" + std::string(stream) + "/" + std::to_string(seq));
    EXPECT_TRUE(v.has_value());
    return v && *v ? std::stoi(**v) : 0;
  }

  // Seqs of `stream` in the order the handler ran (and committed or not).
  std::vector<uint64_t> OrderOf(std::string_view stream) {
    std::lock_guard l(mu);
    std::vector<uint64_t> out;
    for (const auto& raw : order) {
      auto id = Inbox::ParseEventId(raw);
      if (id && id->stream == stream) out.push_back(id->seq);
    }
    return out;
  }
};

// The producer: an outbox at `dir` delivering through `publisher`, "ko"
// keep-order (relay, in order), "a" and "b" publish-on-commit (inline,
// retried by the relay: out of order at times).
class HarnessProducer {
 public:
  static constexpr int kPerBurst = 45;  // events committed before each consumer run

  HarnessProducer(const std::string& dir, std::shared_ptr<Publisher> publisher) {
    using namespace std::chrono_literals;
    OutboxOptions po;
    po.publisher = publisher;
    po.inline_dispatch = InlineDispatch::kDispatcherThread;
    po.retry = RetryPolicy{.initial_backoff = 20ms, .max_backoff = 200ms, .jitter = 0.1};
    outbox_ = MustOpen(dir, po);
    if (outbox_ == nullptr) return;
    for (auto [name, strategy] : {std::pair{"ko", Strategy::kKeepOrder}, std::pair{"a", Strategy::kPublishOnCommit},
                                  std::pair{"b", Strategy::kPublishOnCommit}}) {
      auto s = outbox_->OpenStream(name, {.strategy = strategy});
      EXPECT_TRUE(s.has_value()) << name;
      if (s) streams_.push_back(*s);
      per_stream[name] = 0;
    }
    auto relay = Relay::Make(*outbox_, std::move(publisher), {.interval = 20ms});
    EXPECT_TRUE(relay.has_value());
    if (relay) {
      relay_ = std::move(*relay);
      relay_->Start();
    }
  }
  bool ok() const { return outbox_ != nullptr && streams_.size() == 3 && relay_ != nullptr; }

  // kPerBurst events over random streams, in transactions of 1 to 3.
  void CommitBurst(std::mt19937_64& rng) {
    for (int i = 0; i < kPerBurst;) {
      auto txn = outbox_->Begin();
      const int n = std::uniform_int_distribution<int>(1, 3)(rng);
      for (int j = 0; j < n && i < kPerBurst; ++j, ++i) {
        Stream* s = streams_[std::uniform_int_distribution<size_t>(0, streams_.size() - 1)(rng)];
        std::string key = "k" + std::to_string(i);
        ASSERT_OK(txn.Enqueue(*s, {.type = "ev", .key = key, .payload = key}));
        ++per_stream[std::string(s->name())];
      }
      ASSERT_OK(txn.Commit());
    }
  }
  uint64_t events() const {
    uint64_t n = 0;
    for (const auto& [s, k] : per_stream)
      n += k;
    return n;
  }
  void StopRelay() { relay_.reset(); }

  std::map<std::string, uint64_t> per_stream;  // events committed per stream

 private:
  std::unique_ptr<Outbox> outbox_;
  std::vector<Stream*> streams_;
  std::unique_ptr<Relay> relay_;
};

struct AppliedCounts {
  uint64_t doubled = 0;     // an effect applied more than once
  uint64_t lost = 0;        // never applied
  uint64_t misordered = 0;  // applied after a later seq of a keep-order stream
};

// The consumer's database at `consumer_dir` after the last consumer ended:
// each event's record "1" (0: lost, 2+: applied twice), no keep-order
// violation, and the inbox's watermark at each stream's last seq with nothing
// above it and no gap. The first 20 bad events are named as failures.
inline AppliedCounts CheckAppliedOnce(const std::string& consumer_dir,
                                      const std::map<std::string, uint64_t>& per_stream) {
  AppliedCounts c;
  auto outbox = MustOpen(consumer_dir, {.business_families = {{.name = "applied"}}});
  if (outbox == nullptr) return c;
  auto applied = outbox->FindBusinessFamily("applied");
  auto inbox = Inbox::Open(*outbox);
  EXPECT_TRUE(applied.has_value() && inbox.has_value());
  if (!applied || !inbox) return c;
  uint64_t named = 0;
  auto bad = [&](const std::string& what) {
    if (++named <= 20) ADD_FAILURE() << what;
  };
  for (const auto& [stream, n] : per_stream) {
    for (uint64_t s = 1; s <= n; ++s) {
      const std::string id = stream + "/" + std::to_string(s);
      auto v = outbox->Get(*applied, "e/" + id);
      auto violation = outbox->Get(*applied, "violation/" + id);
      EXPECT_TRUE(v.has_value() && violation.has_value());
      if (!v || !violation) return c;
      if (!v->has_value()) {
        ++c.lost;
        bad(id + " never applied");
      } else if (**v != "1") {
        ++c.doubled;
        bad(id + " applied " + **v + " times");
      }
      if (violation->has_value()) {
        ++c.misordered;
        bad(id + " applied after " + **violation);
      }
    }
  }
  auto state = (*inbox)->State();
  EXPECT_EQ(state.size(), per_stream.size());
  for (const auto& st : state) {
    auto it = per_stream.find(st.stream);
    if (it == per_stream.end()) {
      ADD_FAILURE() << "inbox holds stream " << st.stream;
      continue;
    }
    EXPECT_EQ(st.watermark, it->second) << st.stream;
    EXPECT_EQ(st.received, it->second) << st.stream;
    EXPECT_TRUE(st.above.empty()) << st.stream;
    EXPECT_TRUE(st.gaps.empty()) << st.stream;
  }
  return c;
}

struct OutcomeCounts {
  uint64_t news = 0;  // "new <id>": applied
  uint64_t dups = 0;  // "dup <id>": a duplicate dropped
};

// The outcome log the consumer processes append to (one line per settled message).
inline OutcomeCounts CountOutcomes(const std::string& path) {
  OutcomeCounts c;
  std::ifstream log(path);
  for (std::string line; std::getline(log, line);) {
    if (line.starts_with("new ")) ++c.news;
    if (line.starts_with("dup ")) ++c.dups;
  }
  return c;
}

}  // namespace jaiminho::testing
