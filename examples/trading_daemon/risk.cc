// A risk process: the trading daemon's fills, consumed from Kafka, each fill's
// effect on the risk positions applied exactly once, in seq order.
//
//   jaiminho-risk --bootstrap HOST:PORT,... [--db DIR] [--group G] [--topic T] [--until-seq S]
//                 [--rewind N] [--session-timeout-ms MS] [--progress-every N]
//
// A jaiminho::KafkaConsumer in the consumer group G reads the topic the
// daemon's relay writes ("trading.fills"); every message goes through an Inbox
// (keep-order on the stream "fills") in the risk database's own transaction,
// together with the fill's effect on the business family "positions", applied
// by a typed handler (jaiminho::ConsumerHandlers: "fill.v1" decoded with the
// daemon's codec, fill.h):
//
//   position/<symbol>   "fills volume notional net": the symbol's fill count,
//                       quantity, notional (price x quantity, in cents) and the
//                       aggressors' net quantity (bought minus sold)
//   fill/<db>/<seq>     how many times this fill's effect was applied ("1")
//   last/<db>           the last fill seq applied (seq order check)
//   violation/<db>/<seq> a fill applied after a seq other than seq - 1
//   symbols             the symbols seen, comma-separated
//
// The group's offset is committed after that transaction, so a crash re-reads
// at most the message in progress, and the inbox drops what was applied
// before: a killed and restarted risk process (SIGKILL at any point), a
// rewound group (--rewind N: before consuming, the group's committed offsets
// move back by N per partition, as `kafka-consumer-groups --reset-offsets
// --shift-by -N` would, so N fills are read again) and a producer's resent
// prefix are dropped, counted as duplicates.
//
// "fills" is keep-order in the inbox: a risk database follows one daemon
// database from its first fill (start both fresh, or keep both); facing a
// topic that begins past its watermark + 1 it holds there (kOutOfOrder,
// logged), it never applies a fill with a hole before it.
//
// Without --until-seq the process consumes until SIGINT or SIGTERM. With it, it
// stops once every fill up to seq S is applied. Either way it then prints its
// consumer's counts, the positions as JSON lines and its own check: every
// fill applied once, in seq order ("OK", exit 0; else "FAILED", exit 1).
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "example_args.h"
#include "example_signals.h"
#include "fill.h"
#include "jaiminho/adapters/kafka_consumer.h"
#include "jaiminho/consumer_handlers.h"
#include "jaiminho/jaiminho.h"

namespace {

using namespace std::chrono_literals;

struct Args {
  std::string db = "var/risk.db";
  std::string bootstrap{};
  std::string group = "risk";
  std::string topic = "trading.fills";
  uint64_t until_seq = 0;  // 0: until a signal
  int rewind = 0;
  int session_timeout_ms = 6000;
  int progress_every = 0;  // 0: no progress lines
};

int Fail(const std::string& what) {
  std::cerr << "jaiminho-risk: " << what << "\n";
  return 1;
}

// One symbol's risk: fills, volume, notional (cents), the aggressors' net quantity.
struct Position {
  int64_t fills = 0, volume = 0, notional = 0, net = 0;
  std::string Encode() const {
    return std::to_string(fills) + " " + std::to_string(volume) + " " + std::to_string(notional) + " " +
           std::to_string(net);
  }
  static Position Decode(const std::string& s) {
    Position p;
    std::istringstream in(s);
    in >> p.fills >> p.volume >> p.notional >> p.net;
    return p;
  }
};

// --rewind: joins the group with a plain librdkafka consumer, moves each
// assigned partition's committed offset back by `n` (not below 0; a partition
// without one is left alone), commits, and leaves the group.
jaiminho::Status Rewind(const Args& args) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::pair<std::string, std::string> props[] = {
      {"bootstrap.servers", args.bootstrap},
      {"group.id", args.group},
      {"enable.auto.commit", "false"},
      {"session.timeout.ms", std::to_string(args.session_timeout_ms)},
      {"heartbeat.interval.ms", std::to_string(std::max(1, args.session_timeout_ms / 10))},
      {"log_level", "3"}};
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return jaiminho::MakeError(jaiminho::ErrorCode::kInvalidArgument, "rewind: " + k + ": " + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) return jaiminho::MakeError(jaiminho::ErrorCode::kInvalidArgument, std::string("rewind: ") + err);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, args.topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  std::string failure;
  rd_kafka_topic_partition_list_t* assigned = nullptr;
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) failure = std::string("subscribe: ") + rd_kafka_err2str(e);
  // The group assigns the partitions at the next rebalance: librdkafka's own
  // event loop (each poll returns on an event or after 100 ms), up to 60 s.
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (failure.empty()) {
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100); m != nullptr) {
      // Fetched before the rewind: not consumed here (nothing is committed for it).
      rd_kafka_message_destroy(m);
    }
    if (rd_kafka_assignment(rk, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR && assigned->cnt > 0) break;
    if (assigned != nullptr) rd_kafka_topic_partition_list_destroy(assigned);
    assigned = nullptr;
    if (std::chrono::steady_clock::now() > give_up) failure = "no partition assigned within 60 s";
  }
  if (failure.empty() && (e = rd_kafka_committed(rk, assigned, 10000)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = std::string("reading the committed offsets: ") + rd_kafka_err2str(e);
  }
  if (failure.empty()) {
    rd_kafka_topic_partition_list_t* moved = rd_kafka_topic_partition_list_new(assigned->cnt);
    for (int i = 0; i < assigned->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = assigned->elems[i];
      if (p.offset < 0) continue;  // nothing committed
      int64_t to = std::max<int64_t>(0, p.offset - args.rewind);
      rd_kafka_topic_partition_list_add(moved, p.topic, p.partition)->offset = to;
      std::printf("rewound group '%s' topic '%s' partition %d from offset %lld to %lld\n", args.group.c_str(), p.topic,
                  static_cast<int>(p.partition), static_cast<long long>(p.offset), static_cast<long long>(to));
    }
    if (moved->cnt > 0 && (e = rd_kafka_commit(rk, moved, 0)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failure = std::string("committing the rewound offsets: ") + rd_kafka_err2str(e);
    }
    if (moved->cnt == 0) std::printf("rewind: group '%s' has no committed offset yet\n", args.group.c_str());
    rd_kafka_topic_partition_list_destroy(moved);
  }
  if (assigned != nullptr) rd_kafka_topic_partition_list_destroy(assigned);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  std::fflush(stdout);
  if (!failure.empty()) {
    return jaiminho::MakeError(
        jaiminho::ErrorCode::kUnavailable,
        "rewind of group '" + args.group + "' on topic '" + args.topic + "' at " + args.bootstrap + ": " + failure);
  }
  return {};
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  example::CommandLine cli(
      "jaiminho-risk",
      "--bootstrap HOST:PORT,... [--db DIR] [--group G] [--topic T] [--until-seq S] [--rewind N]\n"
      "       [--session-timeout-ms MS] [--progress-every N]",
      "Consumes the trading daemon's fills from Kafka (a consumer group) and applies each fill's effect on\n"
      "per-symbol positions exactly once, in seq order: an Inbox in the same transaction as the positions,\n"
      "the group's offset committed after it. Then prints the positions and checks every fill applied once.");
  cli.Option("--bootstrap", "HOST:PORT,...", "Kafka bootstrap servers (the daemon prints its mock cluster's)",
             [&](const std::string& v) { a.bootstrap = v; });
  cli.Option("--db", "DIR", "risk database directory (default var/risk.db)", [&](const std::string& v) { a.db = v; });
  cli.Option("--group", "G", "consumer group (default risk)", [&](const std::string& v) { a.group = v; });
  cli.Option("--topic", "T", "topic (default trading.fills)", [&](const std::string& v) { a.topic = v; });
  cli.Option("--until-seq", "S", "stop once every fill up to seq S is applied (default: until SIGINT/SIGTERM)",
             [&](const std::string& v) { a.until_seq = static_cast<uint64_t>(cli.Int("--until-seq", v, 1)); });
  cli.Option("--rewind", "N",
             "before consuming, move the group's committed offsets back by N per partition: N fills read again",
             [&](const std::string& v) { a.rewind = cli.Int("--rewind", v, 1); });
  cli.Option("--session-timeout-ms", "MS",
             "group session timeout (default 6000): how long a killed consumer holds its partitions",
             [&](const std::string& v) { a.session_timeout_ms = cli.Int("--session-timeout-ms", v, 100); });
  cli.Option("--progress-every", "N", "print 'progress applied=K seq=S' after every N fills applied",
             [&](const std::string& v) { a.progress_every = cli.Int("--progress-every", v, 1); });
  cli.Parse(argc, argv);
  if (a.bootstrap.empty()) cli.Fail("--bootstrap is required");
  return a;
}

// The risk database's check: each fill of `db` up to its last applied seq
// applied once, no seq order violation. Prints the positions; true when OK.
bool Check(jaiminho::Outbox& outbox, jaiminho::Inbox& inbox, const jaiminho::BusinessFamily& positions,
           uint64_t until_seq) {
  auto get = [&](const std::string& key) -> std::optional<std::string> {
    auto v = outbox.Get(positions, key);
    if (!v) {
      std::cerr << "jaiminho-risk: " << v.error().ToString() << "\n";
      return std::nullopt;
    }
    return *v;
  };
  bool ok = true;
  uint64_t applied = 0, doubled = 0, missing = 0, misordered = 0;
  for (const auto& st : inbox.State()) {
    if (st.stream != "fills") continue;
    const std::string db = st.db.ToHex();
    const uint64_t last = std::max(st.watermark, until_seq);
    for (uint64_t seq = 1; seq <= last; ++seq) {
      auto v = get("fill/" + db + "/" + std::to_string(seq));
      if (!v) {
        ++missing;
      } else if (*v != "1") {
        ++doubled;
      } else {
        ++applied;
      }
      if (get("violation/" + db + "/" + std::to_string(seq))) ++misordered;
    }
    std::printf("inbox: producer %s stream fills: watermark %llu, received %llu, gaps %zu\n", db.c_str(),
                static_cast<unsigned long long>(st.watermark), static_cast<unsigned long long>(st.received),
                st.gaps.size());
    ok = ok && st.gaps.empty() && st.above.empty() && st.received == st.watermark;
  }
  std::printf("fills applied once: %llu, applied more than once: %llu, missing: %llu, out of seq order: %llu\n",
              static_cast<unsigned long long>(applied), static_cast<unsigned long long>(doubled),
              static_cast<unsigned long long>(missing), static_cast<unsigned long long>(misordered));
  ok = ok && doubled == 0 && missing == 0 && misordered == 0;
  std::string symbols = get("symbols").value_or("");
  std::istringstream in(symbols);
  for (std::string symbol; std::getline(in, symbol, ',');) {
    Position p = Position::Decode(get("position/" + symbol).value_or(""));
    std::printf("{\"symbol\":\"%s\",\"fills\":%lld,\"volume\":%lld,\"notional\":%lld,\"net\":%lld}\n", symbol.c_str(),
                static_cast<long long>(p.fills), static_cast<long long>(p.volume), static_cast<long long>(p.notional),
                static_cast<long long>(p.net));
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  example::StopSignals stop;  // before the first thread starts, so that every thread inherits the mask
  std::filesystem::path db = args.db;
  std::filesystem::create_directories(db.parent_path().empty() ? "." : db.parent_path());

  auto outbox = jaiminho::Outbox::Open({.path = db.string(), .business_families = {{.name = "positions"}}});
  if (!outbox) return Fail(outbox.error().ToString());
  auto inbox = jaiminho::Inbox::Open(**outbox, {.keep_order_streams = {"fills"}});
  if (!inbox) return Fail(inbox.error().ToString());
  auto family = (*outbox)->FindBusinessFamily("positions");
  if (!family) return Fail(family.error().ToString());
  const jaiminho::BusinessFamily positions = *family;
  jaiminho::Outbox& ob = **outbox;

  if (args.rewind > 0) {
    if (auto s = Rewind(args); !s) return Fail(s.error().ToString());
  }

  // Where this run starts: the highest fills watermark (one producer database
  // in practice), so that --until-seq S means S - start fills to apply.
  uint64_t start = 0;
  for (const auto& st : (*inbox)->State())
    if (st.stream == "fills") start = std::max(start, st.watermark);

  // A fill's effect, in the inbox's transaction: the typed handler of
  // "fill.v1", the payload decoded by Codec<Fill> (fill.h), the daemon's codec.
  // The reads see what earlier fills committed: one message at a time, each
  // committed before the next.
  auto apply = [&](const example::Fill& fill, const jaiminho::ReceivedEvent& e,
                   jaiminho::Transaction& txn) -> jaiminho::Status {
    const std::string& symbol = fill.symbol;
    const std::string producer = e.id.db.ToHex();
    auto read = [&](const std::string& key) -> jaiminho::Result<std::optional<std::string>> {
      return ob.Get(positions, key);
    };
    // The applied count of this fill: "1" unless something applied it twice.
    const std::string fill_key = "fill/" + producer + "/" + std::to_string(e.id.seq);
    auto before = read(fill_key);
    if (!before) return tl::unexpected(before.error());
    if (auto s = txn.Put(positions, fill_key, *before ? std::to_string(std::stoll(**before) + 1) : "1"); !s) return s;
    // Seq order: each fill after the previous one.
    auto last = read("last/" + producer);
    if (!last) return tl::unexpected(last.error());
    const uint64_t last_seq = *last ? std::stoull(**last) : 0;
    if (e.id.seq != last_seq + 1) {
      if (auto s =
              txn.Put(positions, "violation/" + producer + "/" + std::to_string(e.id.seq), std::to_string(last_seq));
          !s) {
        return s;
      }
    }
    if (auto s = txn.Put(positions, "last/" + producer, std::to_string(e.id.seq)); !s) return s;
    // The position.
    auto old = read("position/" + symbol);
    if (!old) return tl::unexpected(old.error());
    Position p = *old ? Position::Decode(**old) : Position{};
    if (!*old) {
      auto symbols = read("symbols");
      if (!symbols) return tl::unexpected(symbols.error());
      std::string list = symbols->value_or("");
      if (auto s = txn.Put(positions, "symbols", list.empty() ? symbol : list + "," + symbol); !s) return s;
    }
    p.fills += 1;
    p.volume += fill.qty;
    p.notional += fill.price * fill.qty;
    p.net += fill.aggressor_buys ? fill.qty : -fill.qty;
    return txn.Put(positions, "position/" + symbol, p.Encode());
  };
  jaiminho::ConsumerHandlers handlers;  // another event type: not committed, waits for a handler (logged)
  if (auto s = handlers.Register<example::Fill>("fill.v1", apply); !s) return Fail(s.error().ToString());

  std::atomic<uint64_t> applied{0};
  jaiminho::KafkaConsumerOptions options{
      .bootstrap_servers = args.bootstrap,
      .group_id = args.group,
      .topics = {args.topic},
      .retry_min = 10ms,
      .retry_max = 500ms,
      .config = {{"session.timeout.ms", std::to_string(args.session_timeout_ms)},
                 {"heartbeat.interval.ms", std::to_string(std::max(1, args.session_timeout_ms / 10))},
                 {"log_level", "3"}}};
  options.on_outcome = [&](const jaiminho::KafkaMessage& m, jaiminho::ReceiveOutcome outcome) {
    if (outcome != jaiminho::ReceiveOutcome::kNew) return;
    const uint64_t n = ++applied;
    if (args.progress_every > 0 && n % static_cast<uint64_t>(args.progress_every) == 0) {
      // After the fill's inbox commit, before its offset commit.
      std::printf("progress applied=%llu seq=%llu\n", static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(m.id.seq));
      std::fflush(stdout);
    }
  };
  options.logger = jaiminho::MakeStderrLogger(jaiminho::LogLevel::kWarn);
  auto consumer = jaiminho::KafkaConsumer::Start(ob, **inbox, options, std::move(handlers));
  if (!consumer) return Fail(consumer.error().ToString());
  std::printf("consuming topic '%s' as group '%s' from %s into %s%s\n", args.topic.c_str(), args.group.c_str(),
              args.bootstrap.c_str(), db.c_str(),
              start > 0 ? (" (fills applied up to seq " + std::to_string(start) + ")").c_str() : "");
  std::fflush(stdout);
  // Assigned within 60 s, in slices so that a signal still stops it.
  for (int slice = 0; !(*consumer)->WaitAssigned(200ms);) {
    if (++slice == 300) return Fail("no partition assigned within 60 s: " + (*consumer)->last_error());
    if (stop.WaitFor(0ms)) return Fail("stopped by a signal before a partition was assigned");
  }
  std::printf("assigned\n");
  std::fflush(stdout);

  bool finished = true;
  if (args.until_seq > 0) {
    const uint64_t want = args.until_seq > start ? args.until_seq - start : 0;
    // Wait in slices so that a signal still stops it.
    while (!(*consumer)->WaitApplied(want, 200ms)) {
      if ((*consumer)->stopped() || stop.WaitFor(0ms)) {
        finished = false;
        break;
      }
    }
  } else {
    while (!stop.WaitFor(1000ms)) {
    }
  }
  const jaiminho::KafkaConsumerStats st = (*consumer)->stats();
  const std::string last_error = (*consumer)->last_error();
  consumer->reset();  // leaves the group
  std::printf("consumer: applied=%llu duplicates=%llu invalid=%llu not_committed=%llu offset_commit_failures=%llu\n",
              static_cast<unsigned long long>(st.applied), static_cast<unsigned long long>(st.duplicates),
              static_cast<unsigned long long>(st.invalid), static_cast<unsigned long long>(st.not_committed),
              static_cast<unsigned long long>(st.offset_commit_failures));
  if (!finished)
    std::printf("stopped before seq %llu: %s\n", static_cast<unsigned long long>(args.until_seq), last_error.c_str());
  bool ok = Check(ob, **inbox, positions, args.until_seq) && finished;
  std::printf("%s; database %s\n", ok ? "OK" : "FAILED", db.c_str());
  inbox->reset();
  if (auto s = ob.Close(); !s) return Fail(s.error().ToString());
  return ok ? 0 : 1;
}
