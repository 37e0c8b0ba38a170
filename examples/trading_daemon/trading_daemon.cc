// A trading daemon: order books matched in memory, the book state and the
// fills committed together, fills relayed to Kafka in strict order.
//
//   jaiminho-trading-daemon [--db DIR] [--orders N] [--threads T] [--brokers HOST:PORT,...]
//                           [--control-socket] [--refuse-seq N] [--bootstraps-file FILE]
//
// T threads submit N random limit orders to three order books. Matching an
// order and committing its effects happen under the book's lock, in one
// transaction: the changed price levels ("book" family), the order's status
// ("orders" family) and one "fill.v1" event per fill on the keep-order stream
// "fills". So the fills' seqs follow the matching order, and a crash can never
// leave a book change without its fills (or fills without the change).
//
// The relay publishes "fills" to the Kafka topic "trading.fills" through the
// idempotent producer, all of the stream in one partition (kByStream): a
// consumer reads the fills exactly in seq order. Without --brokers the daemon
// runs librdkafka's in-process mock cluster (three brokers, the topic with
// three partitions, and a few injected produce errors that the producer
// retries). At the end it reads the topic back with a consumer, checks that
// every fill of this run is there once, in order, and prints commit latency
// and throughput. Each fill is emitted with its codec (fill.h: symbol, the
// symbol's fill counter, price in cents, qty, the buy and sell order ids, the
// aggressor's side, as JSON).
//
// A second process: the mock cluster listens on loopback ports, so another
// process can consume the fills (examples/trading_daemon/risk.cc, the risk
// process). --bootstraps-file FILE writes the cluster's bootstrap servers to
// FILE (once the cluster is up, before the first order) and keeps the daemon,
// and so the cluster, up after its check until SIGINT or SIGTERM.
//
// Live control: with --control-socket the Outbox serves <db>/control.sock, so
// an operator can act on the running daemon with jaiminho-tool (skip, requeue,
// clean, stats), and the daemon stays up after its check until SIGINT or
// SIGTERM. --refuse-seq N is a demonstration switch: the publisher refuses the
// fill with seq N (retryably, as a broker refusing a poison message), so the
// keep-order stream blocks there and every later fill waits behind it. The
// daemon then waits until each fill is acknowledged or parked; the operator
// unblocks the stream live:
//
//   jaiminho-tool skip DB --stream fills --seq N --reason "poison fill, OPS-7"
//
// The skipped fill is parked (with its history: who, when, why), the relay
// delivers the rest in order, and the check expects every fill but the parked
// ones, once each, in strict order.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "example_args.h"
#include "example_metrics.h"
#include "example_signals.h"
#include "fill.h"
#include "jaiminho/adapters/kafka.h"
#include "jaiminho/jaiminho.h"

namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kTopic = "trading.fills";
const std::vector<std::string> kSymbols = {"AAPL", "MSFT", "NVDA"};

struct Args {
  std::string db = "var/trading.db";
  int orders = 20000;
  int threads = 4;
  std::string brokers{};  // empty: the in-process mock cluster
  std::string metrics{};
  bool control_socket = false;
  uint64_t refuse_seq = 0;  // 0: refuse nothing
  std::string bootstraps_file{};
};

struct Order {
  uint64_t id;
  bool buy;
  int64_t price;  // in cents
  int64_t qty;
};

// One instrument's book. Matching and committing happen under mu.
struct Book {
  std::string symbol;
  std::mutex mu;
  std::map<int64_t, std::deque<Order>, std::greater<>> bids;
  std::map<int64_t, std::deque<Order>> asks;
  uint64_t fills = 0;  // this symbol's fill counter (carried in each fill)
};

// Counts fills acknowledged by Kafka; tells the operator when "fills" blocks
// (and, when `control_db` is a database served live, how to unblock it).
class Acks final : public jaiminho::Observer {
 public:
  explicit Acks(std::string control_db) : db_(std::move(control_db)) {}
  void OnPublishedByRelay(const jaiminho::Event&) override { ++acked_; }
  void OnFailedToPublishByRelay(const jaiminho::Event&, const jaiminho::Error&) override { ++failed_; }
  void OnStreamBlocked(std::string_view stream, uint64_t seq, const jaiminho::Error& e) override {
    std::string line =
        "stream '" + std::string(stream) + "' blocked at seq " + std::to_string(seq) + ": " + e.ToString() + "\n";
    if (!db_.empty()) {
      line += "  unblock it live: jaiminho-tool skip " + db_ + " --stream " + std::string(stream) + " --seq " +
              std::to_string(seq) + " --reason TEXT\n";
    }
    std::fputs(line.c_str(), stdout);
    std::fflush(stdout);
  }
  void OnStreamUnblocked(std::string_view stream, uint64_t seq) override {
    std::string line = "stream '" + std::string(stream) + "' unblocked at seq " + std::to_string(seq) + "\n";
    std::fputs(line.c_str(), stdout);
    std::fflush(stdout);
  }
  uint64_t acked() const { return acked_; }
  uint64_t failed() const { return failed_; }

 private:
  std::string db_;
  std::atomic<uint64_t> acked_{0}, failed_{0};
};

// The demonstration switch --refuse-seq: Kafka's publisher, but the fill with
// seq `refused` fails (kUnavailable: retried, so the keep-order stream blocks
// at it instead of parking it) until an operator skips it.
class RefuseOneSeq final : public jaiminho::Publisher {
 public:
  RefuseOneSeq(std::shared_ptr<jaiminho::Publisher> inner, uint64_t refused)
      : inner_(std::move(inner)), refused_(refused) {}
  jaiminho::Status Publish(const jaiminho::Event& e) override {
    if (e.id.seq == refused_) return Refusal();
    return inner_->Publish(e);
  }
  void PublishBatch(std::span<const jaiminho::Event> events, jaiminho::Order order,
                    std::span<jaiminho::Status> results) override {
    auto at =
        std::find_if(events.begin(), events.end(), [&](const jaiminho::Event& e) { return e.id.seq == refused_; });
    if (at == events.end()) return inner_->PublishBatch(events, order, results);
    // The fills before the refused one go out; in a keep-order run nothing
    // after it (nor the refused one, when an earlier fill already failed).
    const auto i = static_cast<size_t>(at - events.begin());
    inner_->PublishBatch(events.first(i), order, results.first(i));
    if (order == jaiminho::Order::kAny) {
      results[i] = Refusal();
      return inner_->PublishBatch(events.subspan(i + 1), order, results.subspan(i + 1));
    }
    bool failed = std::any_of(results.begin(), results.begin() + static_cast<std::ptrdiff_t>(i),
                              [](const jaiminho::Status& st) { return !st; });
    results[i] = failed ? jaiminho::Status(tl::unexpected(jaiminho::AbortedError())) : Refusal();
    for (size_t j = i + 1; j < events.size(); ++j)
      results[j] = tl::unexpected(jaiminho::AbortedError());
  }
  std::optional<bool> IsConnected() const override { return inner_->IsConnected(); }

 private:
  jaiminho::Status Refusal() const {
    return jaiminho::MakeError(jaiminho::ErrorCode::kUnavailable,
                               "seq " + std::to_string(refused_) + " refused (demonstration: --refuse-seq)");
  }
  std::shared_ptr<jaiminho::Publisher> inner_;
  uint64_t refused_;
};

template <class Side>
int64_t LevelQty(const Side& side, int64_t price) {
  auto it = side.find(price);
  if (it == side.end()) return 0;
  int64_t q = 0;
  for (const Order& o : it->second)
    q += o.qty;
  return q;
}

class Exchange {
 public:
  Exchange(jaiminho::Outbox& outbox, jaiminho::Stream& fills, jaiminho::BusinessFamily book,
           jaiminho::BusinessFamily orders)
      : outbox_(outbox), fills_(fills), book_family_(book), orders_family_(orders) {
    for (const auto& s : kSymbols) {
      books_.push_back(std::make_unique<Book>());
      books_.back()->symbol = s;
    }
  }

  // Matches `o` in book `b` and commits the result; returns the commit's latency.
  jaiminho::Result<std::chrono::nanoseconds> Submit(size_t b, Order o) {
    Book& book = *books_[b];
    std::lock_guard l(book.mu);
    auto txn = outbox_.Begin();
    std::vector<int64_t> touched_bids, touched_asks;
    int64_t left = o.qty;
    auto match = [&](auto& opposite, auto crosses, std::vector<int64_t>& touched) -> jaiminho::Status {
      while (left > 0 && !opposite.empty() && crosses(opposite.begin()->first)) {
        auto level = opposite.begin();
        Order& resting = level->second.front();
        int64_t qty = std::min(left, resting.qty);
        left -= qty;
        resting.qty -= qty;
        uint64_t n = ++book.fills;
        const example::Fill fill{.symbol = book.symbol,
                                 .fill = n,
                                 .price = level->first,
                                 .qty = qty,
                                 .buy = o.buy ? o.id : resting.id,
                                 .sell = o.buy ? resting.id : o.id,
                                 .aggressor_buys = o.buy};
        // Encoded by Codec<Fill> (fill.h), the codec the risk process decodes with.
        if (auto s = txn.Emit(fills_, "fill.v1", fill, {.key = book.symbol}); !s) return s;
        if (auto s =
                txn.Put(orders_family_, "order/" + std::to_string(resting.id), resting.qty == 0 ? "filled" : "partial");
            !s) {
          return s;
        }
        if (touched.empty() || touched.back() != level->first) touched.push_back(level->first);
        if (resting.qty == 0) level->second.pop_front();
        if (level->second.empty()) opposite.erase(level);
      }
      return {};
    };
    jaiminho::Status st = o.buy ? match(
                                      book.asks, [&](int64_t p) { return p <= o.price; }, touched_asks)
                                : match(
                                      book.bids, [&](int64_t p) { return p >= o.price; }, touched_bids);
    if (!st) return tl::unexpected(st.error());
    if (left > 0) {
      Order rest = o;
      rest.qty = left;
      if (o.buy) {
        book.bids[o.price].push_back(rest);
        touched_bids.push_back(o.price);
      } else {
        book.asks[o.price].push_back(rest);
        touched_asks.push_back(o.price);
      }
    }
    std::string status = left == 0 ? "filled" : (left < o.qty ? "partial" : "resting");
    if (auto s = txn.Put(orders_family_, "order/" + std::to_string(o.id), status); !s) return tl::unexpected(s.error());
    // The book's state: one key per price level, deleted when the level empties.
    auto write_levels = [&](const auto& side, const char* name, const std::vector<int64_t>& prices) {
      for (int64_t p : prices) {
        std::string key = book.symbol + "/" + name + "/" + std::to_string(p);
        int64_t q = LevelQty(side, p);
        jaiminho::Status s = q > 0 ? txn.Put(book_family_, key, std::to_string(q)) : txn.Delete(book_family_, key);
        if (!s) return s;
      }
      return jaiminho::Status{};
    };
    if (auto s = write_levels(book.bids, "bid", touched_bids); !s) return tl::unexpected(s.error());
    if (auto s = write_levels(book.asks, "ask", touched_asks); !s) return tl::unexpected(s.error());
    fills_committed_ += txn.event_count();
    auto start = SteadyClock::now();
    auto receipt = txn.Commit();  // durable (sync) before the lock is released
    auto latency = SteadyClock::now() - start;
    if (!receipt) return tl::unexpected(receipt.error());
    if (!receipt->events.empty()) {
      // Commits of different books finish in any order: keep the extremes.
      uint64_t first = receipt->events.front().seq, last = receipt->events.back().seq;
      for (uint64_t cur = first_seq_; (cur == 0 || first < cur) && !first_seq_.compare_exchange_weak(cur, first);) {
      }
      for (uint64_t cur = last_seq_; last > cur && !last_seq_.compare_exchange_weak(cur, last);) {
      }
    }
    return latency;
  }

  size_t books() const { return books_.size(); }
  uint64_t fills_committed() const { return fills_committed_; }
  uint64_t first_seq() const { return first_seq_; }
  uint64_t last_seq() const { return last_seq_; }

 private:
  jaiminho::Outbox& outbox_;
  jaiminho::Stream& fills_;
  jaiminho::BusinessFamily book_family_, orders_family_;
  std::vector<std::unique_ptr<Book>> books_;
  std::atomic<uint64_t> fills_committed_{0};
  std::atomic<uint64_t> first_seq_{0}, last_seq_{0};
};

// The in-process Kafka: three mock brokers hosted by a throwaway handle.
struct MockKafka {
  rd_kafka_t* host = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~MockKafka() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (host != nullptr) rd_kafka_destroy(host);
  }
};

struct Fill {
  std::string symbol;
  uint64_t seq = 0;
  uint64_t fill = 0;
};

// Reads the topic back until `expected` fills with a seq in [first, last] of
// this database were seen (or `timeout`); returns them in arrival order.
std::vector<Fill> ReadBack(const std::string& brokers, const std::string& db_id, uint64_t first, uint64_t last,
                           size_t expected, std::chrono::milliseconds timeout, std::string* error) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "trading-daemon-check", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) {
    *error = err;
    return {};
  }
  std::vector<Fill> out;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, kTopic, nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
    *error = "no metadata for topic " + std::string(kTopic);
  } else {
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; ++p)
      rd_kafka_topic_partition_list_add(parts, kTopic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    size_t seen = 0;
    auto deadline = SteadyClock::now() + timeout;
    while (seen < expected && SteadyClock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
      if (m == nullptr) continue;
      rd_kafka_headers_t* hdrs = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(hdrs, "jaiminho-event-id", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::string id(static_cast<const char*>(value), size);  // "<db>/fills/<seq>"
        Fill f;
        std::from_chars(id.data() + id.rfind('/') + 1, id.data() + id.size(), f.seq);
        std::string payload(static_cast<const char*>(m->payload), m->len);
        size_t at = payload.find("\"fill\":");
        if (at != std::string::npos) std::from_chars(payload.data() + at + 7, payload.data() + payload.size(), f.fill);
        if (m->key != nullptr) f.symbol.assign(static_cast<const char*>(m->key), m->key_len);
        if (id.starts_with(db_id) && f.seq >= first && f.seq <= last) {
          out.push_back(f);
          ++seen;
        }
      }
      rd_kafka_message_destroy(m);
    }
  }
  if (md != nullptr) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

int Fail(const std::string& what) {
  std::cerr << "jaiminho-trading-daemon: " << what << "\n";
  return 1;
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  example::CommandLine cli("jaiminho-trading-daemon",
                           "[--db DIR] [--orders N] [--threads T] [--brokers HOST:PORT,...] [--metrics ADDR]\n"
                           "       [--control-socket] [--refuse-seq N] [--bootstraps-file FILE]",
                           "Matches limit orders and commits each fill with its event on the keep-order stream\n"
                           "'fills', relayed to Kafka (without --brokers: librdkafka's in-process mock cluster),\n"
                           "then reads the topic back and checks every fill arrived once, in order.");
  cli.Option("--db", "DIR", "database directory (default var/trading.db)", [&](const std::string& v) { a.db = v; });
  cli.Option("--orders", "N", "orders to submit (default 20000)",
             [&](const std::string& v) { a.orders = cli.Int("--orders", v, 1); });
  cli.Option("--threads", "T", "submitting threads (default 4)",
             [&](const std::string& v) { a.threads = cli.Int("--threads", v, 1); });
  cli.Option("--brokers", "HOST:PORT,...", "a real Kafka cluster instead of the mock",
             [&](const std::string& v) { a.brokers = v; });
  cli.Option("--metrics", "ADDR", example::Metrics::kHelp, [&](const std::string& v) { a.metrics = v; });
  cli.Flag("--control-socket",
           "serve DIR/control.sock for jaiminho-tool skip, requeue, clean and stats; after the check, stay up "
           "until SIGINT/SIGTERM",
           [&] { a.control_socket = true; });
  cli.Option("--refuse-seq", "N",
             "demonstration: the publisher refuses the fill with seq N, so the stream blocks there until an "
             "operator skips it (jaiminho-tool skip); the daemon waits for that",
             [&](const std::string& v) { a.refuse_seq = static_cast<uint64_t>(cli.Int("--refuse-seq", v, 1)); });
  cli.Option("--bootstraps-file", "FILE",
             "write the Kafka bootstrap servers (the mock cluster's) to FILE for another process (jaiminho-risk); "
             "after the check, stay up until SIGINT/SIGTERM",
             [&](const std::string& v) { a.bootstraps_file = v; });
  cli.Parse(argc, argv);
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  example::StopSignals stop;  // before the first thread starts, so that every thread inherits the mask
  std::filesystem::path db = args.db;
  std::filesystem::create_directories(db.parent_path().empty() ? "." : db.parent_path());

  MockKafka mock;
  std::string brokers = args.brokers;
  if (brokers.empty()) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    mock.host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (mock.host == nullptr) return Fail(err);
    mock.cluster = rd_kafka_mock_cluster_new(mock.host, 3);
    if (mock.cluster == nullptr) return Fail("cannot start librdkafka's mock cluster");
    rd_kafka_mock_topic_create(mock.cluster, kTopic, 3, 3);
    // Transient broker errors on the first produce requests: the idempotent
    // producer retries them without duplicating or reordering anything.
    rd_kafka_mock_push_request_errors(mock.cluster, 0 /* Produce */, 4, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    brokers = rd_kafka_mock_cluster_bootstraps(mock.cluster);
    std::printf("Kafka: librdkafka mock cluster, 3 brokers at %s, topic %s with 3 partitions\n", brokers.c_str(),
                kTopic);
  } else {
    std::printf("Kafka: %s, topic %s\n", brokers.c_str(), kTopic);
  }
  if (!args.bootstraps_file.empty()) {
    // Written whole, then renamed: a reader never sees half of it.
    const std::string tmp = args.bootstraps_file + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr || std::fprintf(f, "%s\n", brokers.c_str()) < 0 || std::fclose(f) != 0 ||
        std::rename(tmp.c_str(), args.bootstraps_file.c_str()) != 0) {
      return Fail("cannot write the bootstrap servers to " + args.bootstraps_file + ": " + std::strerror(errno));
    }
    std::printf("bootstrap servers written to %s\n", args.bootstraps_file.c_str());
  }
  std::fflush(stdout);
  auto kafka = jaiminho::KafkaPublisher::Create({.bootstrap_servers = brokers,
                                                 .topic = "trading.{stream}",
                                                 .partitioning = jaiminho::KafkaPartitioning::kByStream,
                                                 .config = {{"log_level", "3"}}});
  if (!kafka) return Fail(kafka.error().ToString());

  auto acks = std::make_shared<Acks>(args.control_socket ? db.string() : "");
  jaiminho::OutboxOptions options{.path = db.string(), .business_families = {{.name = "book"}, {.name = "orders"}}};
  options.observers = {acks};
  options.control_socket = args.control_socket;  // <db>/control.sock, for jaiminho-tool
  options.retry = {.initial_backoff = 100ms, .max_backoff = 5s};
  auto outbox = jaiminho::Outbox::Open(std::move(options));
  if (!outbox) return Fail(outbox.error().ToString());
  auto fills = (*outbox)->OpenStream("fills", {.strategy = jaiminho::Strategy::kKeepOrder});
  if (!fills) return Fail(fills.error().ToString());
  Exchange exchange(**outbox, **fills, *(*outbox)->FindBusinessFamily("book"),
                    *(*outbox)->FindBusinessFamily("orders"));
  example::Metrics metrics_server;
  if (!metrics_server.Start(**outbox, args.metrics)) return 1;

  if (args.control_socket) std::printf("control socket: %s/control.sock\n", db.c_str());
  std::shared_ptr<jaiminho::Publisher> publisher = *kafka;
  if (args.refuse_seq != 0) publisher = std::make_shared<RefuseOneSeq>(*kafka, args.refuse_seq);
  auto relay = jaiminho::Relay::Make(**outbox, publisher, {.streams = {"fills"}, .interval = 100ms});
  if (!relay) return Fail(relay.error().ToString());
  (*relay)->Start();

  // Order entry: T threads of random limit orders around 100.00.
  std::vector<std::vector<std::chrono::nanoseconds>> latencies(static_cast<size_t>(args.threads));
  std::atomic<uint64_t> next_id{static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count())};
  std::atomic<bool> failed{false};
  std::string failure;
  std::mutex failure_mu;
  auto start = SteadyClock::now();
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(args.threads));
  for (int t = 0; t < args.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) * 7919 + 1);
      int count = args.orders / args.threads + (t < args.orders % args.threads ? 1 : 0);
      for (int i = 0; i < count && !failed; ++i) {
        Order o{next_id++, rng() % 2 == 0, 10000 + static_cast<int64_t>(rng() % 21) - 10,
                1 + static_cast<int64_t>(rng() % 10)};
        auto latency = exchange.Submit(rng() % exchange.books(), o);
        if (!latency) {
          std::lock_guard l(failure_mu);
          failure = latency.error().ToString();
          failed = true;
          return;
        }
        latencies[static_cast<size_t>(t)].push_back(*latency);
      }
    });
  }
  for (auto& th : threads)
    th.join();
  if (failed) return Fail(failure);
  auto committed = SteadyClock::now();
  const uint64_t n_fills = exchange.fills_committed();
  std::printf("%llu fills committed (seqs %llu..%llu); waiting until each is acknowledged by Kafka or parked\n",
              static_cast<unsigned long long>(n_fills), static_cast<unsigned long long>(exchange.first_seq()),
              static_cast<unsigned long long>(exchange.last_seq()));
  std::fflush(stdout);
  // Every fill of this run acknowledged, or parked by an operator (jaiminho-tool
  // skip): within 120 s, or with --refuse-seq for as long as the operator takes.
  std::set<uint64_t> parked;
  auto read_parked = [&]() -> jaiminho::Status {
    auto events = (*outbox)->ListEvents(**fills, jaiminho::EventState::kParked);
    if (!events) return tl::unexpected(events.error());
    parked.clear();
    for (const auto& e : *events)
      if (e->id.seq >= exchange.first_seq() && e->id.seq <= exchange.last_seq()) parked.insert(e->id.seq);
    return {};
  };
  const auto give_up = committed + 120s;
  while (acks->acked() + parked.size() < n_fills) {
    if (stop.WaitFor(200ms)) return Fail("stopped by a signal before every fill was acknowledged or parked");
    if (args.refuse_seq == 0 && SteadyClock::now() > give_up)
      return Fail("not every fill was acknowledged by Kafka within 120 s");
    if (auto s = read_parked(); !s) return Fail(s.error().ToString());
  }
  auto acked = SteadyClock::now();
  (*relay)->Stop();

  std::vector<std::chrono::nanoseconds> all;
  for (auto& v : latencies)
    all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return std::chrono::duration<double, std::micro>(
               all[std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())))])
        .count();
  };
  double secs = std::chrono::duration<double>(committed - start).count();
  std::printf("%d orders from %d threads in %.2f s (%.0f orders/s), %llu fills\n", args.orders, args.threads, secs,
              args.orders / secs, static_cast<unsigned long long>(n_fills));
  std::printf("commit latency (sync, book+orders+fills in one batch): p50 %.0f us, p99 %.0f us, max %.0f us\n",
              pct(0.50), pct(0.99), pct(1.0));
  std::printf(
      "%llu fills acknowledged by Kafka and %zu parked %.0f ms after the last commit; relay failures retried: "
      "%llu\n",
      static_cast<unsigned long long>(acks->acked()), parked.size(),
      std::chrono::duration<double, std::milli>(acked - committed).count(),
      static_cast<unsigned long long>(acks->failed()));

  int status = 0;
  if (n_fills > 0) {
    std::string error;
    // What the consumer must get: every seq of this run but the parked ones.
    std::vector<uint64_t> expected;
    for (uint64_t seq = exchange.first_seq(); seq <= exchange.last_seq(); ++seq)
      if (!parked.contains(seq)) expected.push_back(seq);
    std::vector<Fill> got = ReadBack(brokers, (*outbox)->id().ToHex(), exchange.first_seq(), exchange.last_seq(),
                                     expected.size(), 60s, &error);
    if (!error.empty()) return Fail(error);
    // Strict order: the expected seqs arrive in seq order, once each; and each
    // symbol's fill counter only grows (a parked fill leaves a gap in it).
    bool ordered = got.size() == expected.size();
    std::map<std::string, uint64_t> last_fill;
    for (size_t i = 0; i < got.size() && ordered; ++i) {
      ordered = got[i].seq == expected[i] && got[i].fill > last_fill[got[i].symbol];
      last_fill[got[i].symbol] = got[i].fill;
    }
    std::string parked_list;
    for (uint64_t seq : parked)
      parked_list += (parked_list.empty() ? "" : ",") + std::to_string(seq);
    std::printf("consumer read %zu fills of this run (seqs %llu..%llu%s): %s\n", got.size(),
                static_cast<unsigned long long>(exchange.first_seq()),
                static_cast<unsigned long long>(exchange.last_seq()),
                parked.empty() ? "" : (" but parked " + parked_list).c_str(),
                ordered ? "all present, once each, in strict order" : "MISSING, DUPLICATED OR OUT OF ORDER");
    if (!ordered) status = 1;
  }
  auto metrics = jaiminho::CollectMetrics(**outbox);
  if (metrics) std::cout << jaiminho::RenderPrometheus(*metrics);
  std::printf("%s; database %s\n", status == 0 ? "OK" : "FAILED", db.c_str());
  if (args.control_socket || !args.bootstraps_file.empty()) {
    // A daemon: it stays up for the operator (and the cluster for its other
    // consumers) until told to stop.
    if (args.control_socket) std::printf("serving %s/control.sock until SIGINT or SIGTERM\n", db.c_str());
    if (!args.bootstraps_file.empty()) std::printf("serving Kafka at %s until SIGINT or SIGTERM\n", brokers.c_str());
    std::fflush(stdout);
    while (!stop.WaitFor(1000ms)) {
    }
    std::printf("stopping: closing the database\n");
  } else {
    metrics_server.HoldUntilStdinCloses();
  }
  if (auto s = (*outbox)->Close(); !s) return Fail(s.error().ToString());
  return status;
}
