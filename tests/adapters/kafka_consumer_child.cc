// A consumer process for KafkaConsumerCrash (kafka_consumer_test.cc): a
// KafkaConsumer over an Outbox + Inbox whose handler writes one business record
// per event, which the test SIGKILLs and restarts. The Kafka cluster (the
// librdkafka mock) lives in the test process; this one reaches it through
// its bootstrap servers.
//
//   kafka_consumer_child --db DIR --bootstrap HOST:PORT,... --group G --topic T...
//                        [--keep-order STREAM]... [--log FILE] [--block-after RAW_ID] [--expect N]
//                        [--session-timeout-ms MS] [--print-settled 1]
//
// Business records (family "applied"), written by the handler in the inbox's
// transaction:
//   e/<stream>/<seq>          how many times the event's effect was applied ("1")
//   last/<stream>             keep-order streams: the last seq applied
//   violation/<stream>/<seq>  keep-order streams: seq applied after `last` != seq - 1
// Stdout: "assigned" once the group assigned partitions; "blocking <id>" when
// the event --block-after was committed by the inbox (on_outcome, before its
// offset commit: the process then blocks until killed); with --expect, "done
// applied=A duplicates=D" once the inbox holds N events, then exit 0.
// --log: one line per settled message, "new <id>" or "dup <id>" (O_APPEND).
// --print-settled 1: also "settled <n>" on stdout after the n-th message this
// process settled (after its inbox commit or drop, before its offset commit).
// Without --expect the process runs until its stdin closes.
// --session-timeout-ms: the group session timeout (default 6000; the heartbeat
// interval is a tenth of it): how long a killed member holds its partitions.
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "jaiminho/adapters/kafka_consumer.h"
#include "jaiminho/inbox.h"
#include "jaiminho/outbox.h"

namespace {

using namespace std::chrono_literals;

int Fail(const std::string& what) {
  std::cout << "error " << what << std::endl;
  std::cerr << "kafka_consumer_child: " << what << "\n";
  return 2;
}

uint64_t ParseU64(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db, bootstrap, group, log_path, block_after;
  std::vector<std::string> topics, keep_order;
  uint64_t expect = 0;
  uint64_t session_timeout_ms = 6000;
  bool print_settled = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--db") {
      db = value;
    } else if (flag == "--bootstrap") {
      bootstrap = value;
    } else if (flag == "--group") {
      group = value;
    } else if (flag == "--topic") {
      topics.push_back(value);
    } else if (flag == "--keep-order") {
      keep_order.push_back(value);
    } else if (flag == "--log") {
      log_path = value;
    } else if (flag == "--block-after") {
      block_after = value;
    } else if (flag == "--expect") {
      expect = ParseU64(value);
    } else if (flag == "--session-timeout-ms") {
      session_timeout_ms = ParseU64(value);
    } else if (flag == "--print-settled") {
      print_settled = value == "1";
    } else {
      return Fail("unknown flag " + std::string(flag));
    }
  }
  auto outbox = jaiminho::Outbox::Open({.path = db, .business_families = {{.name = "applied"}}});
  if (!outbox) return Fail(outbox.error().ToString());
  auto inbox = jaiminho::Inbox::Open(**outbox, {.keep_order_streams = keep_order});
  if (!inbox) return Fail(inbox.error().ToString());
  auto family = (*outbox)->FindBusinessFamily("applied");
  if (!family) return Fail(family.error().ToString());
  const jaiminho::BusinessFamily applied = *family;
  uint64_t base = 0;
  for (const auto& s : (*inbox)->State())
    base += s.received;

  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return Fail("cannot open " + log_path);
  }
  jaiminho::Outbox& ob = **outbox;
  auto get_u64 = [&](const std::string& key) -> jaiminho::Result<uint64_t> {
    auto v = ob.Get(applied, key);
    if (!v) return tl::unexpected(v.error());
    return *v ? ParseU64(**v) : 0;
  };
  auto handler = [&](const jaiminho::KafkaMessage& m, jaiminho::Transaction& txn) -> jaiminho::Status {
    const std::string stream(m.id.stream);
    const std::string key = "e/" + stream + "/" + std::to_string(m.id.seq);
    auto count = get_u64(key);
    if (!count) return tl::unexpected(count.error());
    if (auto s = txn.Put(applied, key, std::to_string(*count + 1)); !s) return s;
    for (const auto& ko : keep_order) {
      if (ko != stream) continue;
      auto last = get_u64("last/" + stream);
      if (!last) return tl::unexpected(last.error());
      if (m.id.seq != *last + 1) {
        if (auto s = txn.Put(applied, "violation/" + stream + "/" + std::to_string(m.id.seq), std::to_string(*last));
            !s) {
          return s;
        }
      }
      if (auto s = txn.Put(applied, "last/" + stream, std::to_string(m.id.seq)); !s) return s;
    }
    return {};
  };
  jaiminho::KafkaConsumerOptions o{.bootstrap_servers = bootstrap,
                                   .group_id = group,
                                   .topics = topics,
                                   .retry_min = 10ms,
                                   .retry_max = 200ms,
                                   // A killed member holds its partitions until the
                                   // coordinator expires it: keep that short.
                                   .config = {{"session.timeout.ms", std::to_string(session_timeout_ms)},
                                              {"heartbeat.interval.ms", std::to_string(session_timeout_ms / 10)}}};
  uint64_t settled = 0;  // on the consumer's thread only
  o.on_outcome = [&](const jaiminho::KafkaMessage& m, jaiminho::ReceiveOutcome outcome) {
    if (log_fd >= 0) {
      std::string line = (outcome == jaiminho::ReceiveOutcome::kNew ? "new " : "dup ") + std::string(m.raw_id) + "\n";
      if (::write(log_fd, line.data(), line.size()) < 0) std::perror("write log");
    }
    if (print_settled) {
      // One write per line: main's lines never split it.
      std::cout << ("settled " + std::to_string(++settled) + "\n") << std::flush;
    }
    if (!block_after.empty() && m.raw_id == block_after && outcome == jaiminho::ReceiveOutcome::kNew) {
      // After the inbox commit, before the offset commit.
      std::cout << "blocking " << m.raw_id << std::endl;
      for (;;)
        ::pause();  // until SIGKILLed
    }
  };
  auto consumer = jaiminho::KafkaConsumer::Start(ob, **inbox, o, handler);
  if (!consumer) return Fail(consumer.error().ToString());
  if (!(*consumer)->WaitAssigned(60s)) return Fail("no partition assigned: " + (*consumer)->last_error());
  std::cout << "assigned\n" << std::flush;
  if (expect > 0) {
    const uint64_t want = expect > base ? expect - base : 0;
    if (!(*consumer)->WaitApplied(want, 120s)) {
      auto st = (*consumer)->stats();
      return Fail("applied " + std::to_string(base + st.applied) + " of " + std::to_string(expect) +
                  "; last error: " + (*consumer)->last_error());
    }
    auto st = (*consumer)->stats();
    consumer->reset();
    std::cout << "done applied=" << st.applied << " duplicates=" << st.duplicates << std::endl;
    return 0;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}
