// The gateway's commands: a "cloud" sends commands to an IoT gateway through
// mosquitto, and the gateway applies each one's effect exactly once and in
// order, though the broker and the relay deliver some of them twice.
//
//   jaiminho-gateway-commands [--db DIR] [--commands N] [--devices N] [--resend N] [--tls-demo DIR]
//
// The cloud side (DIR/cloud.db) commits each command ("set-interval",
// "set-threshold", "reboot" for one device) to the keep-order stream
// "commands"; a Relay publishes them with an MqttPublisher to
// cloud/commands/{key}. The gateway side (DIR/gateway.db) consumes them with
// an MqttConsumer (a persistent session, QoS 1) into an Inbox that enforces
// the stream's order: each command's effect (the device's configuration in
// the business family "config", and a count of applications per command in
// "applied") commits in one transaction with the inbox's record of its id.
//
// The demo runs its own mosquitto broker (/usr/sbin/mosquitto) and injects
// duplicates for real, in four phases of commands:
//   1. link up;
//   2. a resent prefix: a second publisher sends the first --resend commands
//      again with their event ids, as a relay does after a lost PUBACK;
//   3. the broker is stopped halfway through and restarted (its persistent
//      session queues what the gateway has not acknowledged; the relay resends
//      what was unacknowledged when the link went);
//   4. the gateway's consumer is stopped mid-stream and started again (what it
//      was delivered but had not acknowledged comes again).
// It then checks that every command was applied exactly once (its count in
// "applied" is 1, the configs count each device's commands), in the stream's
// order and each device's, and that duplicates were seen and dropped; prints
// a summary and exits 1 if a check fails.
//
// TLS: with --tls-demo DIR (certificates made by
// src/adapters/testing/make-test-certs.sh DIR) the broker also listens with
// TLS, requiring a client certificate from DIR's CA, and both the cloud's
// publishers and the gateway's consumer connect there over mutual TLS.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/testing/mosquitto_broker.h"
#include "example_args.h"
#include "jaiminho/adapters/mqtt.h"
#include "jaiminho/adapters/mqtt_consumer.h"
#include "jaiminho/inbox.h"
#include "jaiminho/jaiminho.h"

namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Args {
  std::string db = "var/gateway-commands";
  int commands = 400;
  int devices = 4;
  int resend = 50;
  std::string tls_demo{};
};

int Fail(const std::string& why) {
  std::fprintf(stderr, "jaiminho-gateway-commands: %s\n", why.c_str());
  return 1;
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  example::CommandLine cli(
      "jaiminho-gateway-commands", "[--db DIR] [--commands N] [--devices N] [--resend N] [--tls-demo DIR]",
      "Commands from a cloud to an IoT gateway through its own mosquitto broker: an outbox and a relay on the cloud "
      "side, an MqttConsumer and an inbox on the gateway's, with duplicates injected (a resent prefix, a broker "
      "restart, a consumer restart). Checks that each command's effect was applied exactly once, in order.");
  cli.Option("--db", "DIR",
             "a new (or empty) directory for both databases and the broker (default var/gateway-commands)",
             [&](const std::string& v) { a.db = v; });
  cli.Option("--commands", "N", "commands in all, over the four phases (default 400)",
             [&](const std::string& v) { a.commands = cli.Int("--commands", v, 8); });
  cli.Option("--devices", "N", "devices the commands go to (default 4)",
             [&](const std::string& v) { a.devices = cli.Int("--devices", v, 1); });
  cli.Option("--resend", "N", "commands of the first phase published again with their ids (default 50)",
             [&](const std::string& v) { a.resend = cli.Int("--resend", v, 1); });
  cli.Option("--tls-demo", "DIR",
             "the broker's clients over mutual TLS with the certificates make-test-certs.sh made in DIR",
             [&](const std::string& v) { a.tls_demo = v; });
  cli.Parse(argc, argv);
  return a;
}

// A command as the cloud sends it: "device=D n=K op=OP value=V", n counting
// the device's commands from 1.
struct Command {
  std::string device;
  uint64_t n = 0;
  std::string op;
  int value = 0;
  std::string Encode() const {
    return "device=" + device + " n=" + std::to_string(n) + " op=" + op + " value=" + std::to_string(value);
  }
  static bool Decode(std::string_view s, Command& c) {
    auto field = [&](std::string_view name) -> std::string_view {
      size_t at = s.find(std::string(name) + "=");
      if (at == std::string_view::npos) return {};
      std::string_view rest = s.substr(at + name.size() + 1);
      return rest.substr(0, rest.find(' '));
    };
    auto number = [](std::string_view v, auto& out) {
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
      return ec == std::errc() && end == v.data() + v.size();
    };
    c.device = std::string(field("device"));
    c.op = std::string(field("op"));
    return !c.device.empty() && !c.op.empty() && number(field("n"), c.n) && number(field("value"), c.value);
  }
};

// A device's configuration, as the gateway stores it in "config".
struct Config {
  uint64_t commands = 0;  // commands applied
  uint64_t last = 0;      // n of the last one
  int interval_s = 60;
  int threshold = 30;
  uint64_t reboots = 0;
  std::string Encode() const {
    return "commands=" + std::to_string(commands) + " last=" + std::to_string(last) +
           " interval=" + std::to_string(interval_s) + " threshold=" + std::to_string(threshold) +
           " reboots=" + std::to_string(reboots);
  }
  static Config Decode(const std::string& s) {
    Config c;
    unsigned long long commands = 0, last = 0, reboots = 0;
    if (std::sscanf(s.c_str(), "commands=%llu last=%llu interval=%d threshold=%d reboots=%llu", &commands, &last,
                    &c.interval_s, &c.threshold, &reboots) == 5) {
      c.commands = commands;
      c.last = last;
      c.reboots = reboots;
    }
    return c;
  }
};

// Counts what the gateway's consumers settled (across consumer restarts),
// with a wait.
class Settled {
 public:
  void Add(jaiminho::ReceiveOutcome outcome) {
    std::lock_guard l(mu_);
    (outcome == jaiminho::ReceiveOutcome::kNew ? applied_ : duplicates_)++;
    cv_.notify_all();
  }
  // Until applied >= a, or `timeout`.
  bool WaitApplied(uint64_t a, std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return applied_ >= a; });
  }
  // Until applied + duplicates >= n (n deliveries settled), or `timeout`.
  bool WaitSettled(uint64_t n, std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return applied_ + duplicates_ >= n; });
  }
  uint64_t applied() {
    std::lock_guard l(mu_);
    return applied_;
  }
  uint64_t duplicates() {
    std::lock_guard l(mu_);
    return duplicates_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t applied_ = 0, duplicates_ = 0;
};

// The events the cloud's relay delivered (copies), for the resent prefix.
class Delivered final : public jaiminho::Observer {
 public:
  void OnPublishedByRelay(const jaiminho::Event& e) override {
    std::lock_guard l(mu_);
    events_.push_back({e.id, std::string(e.id.stream), std::string(e.type), std::string(e.key), std::string(e.payload),
                       std::string(e.encoding)});
    ++count_;
    cv_.notify_all();
  }
  // Until the relay reported `n` events delivered (its observer runs after
  // the broker's PUBACK, which may come after the gateway applied them).
  bool WaitFor(uint64_t n, std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return count_ >= n; });
  }
  // Publishes the delivered events of seqs 1..n again, in order, with their
  // ids; returns how many the broker acknowledged.
  jaiminho::Result<uint64_t> Resend(jaiminho::Publisher& publisher, uint64_t n) {
    std::vector<jaiminho::Event> batch;
    {
      std::lock_guard l(mu_);
      for (const Copy& c : events_) {
        if (c.id.seq < 1 || c.id.seq > n) continue;
        jaiminho::Event e;
        e.id = c.id;
        e.id.stream = c.stream;
        e.type = c.type;
        e.key = c.key;
        e.payload = c.payload;
        e.encoding = c.encoding;
        e.strategy = jaiminho::Strategy::kKeepOrder;
        batch.push_back(e);
      }
    }  // the copies live in a deque that only grows: the views stay valid
    std::sort(batch.begin(), batch.end(), [](const auto& a, const auto& b) { return a.id.seq < b.id.seq; });
    std::vector<jaiminho::Status> results(batch.size());
    publisher.PublishBatch(batch, jaiminho::Order::kKeep, results);
    uint64_t ok = 0;
    for (const auto& r : results) {
      if (!r) return tl::unexpected(r.error());
      ++ok;
    }
    return ok;
  }

 private:
  struct Copy {
    jaiminho::EventId id;
    std::string stream, type, key, payload, encoding;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Copy> events_;
  uint64_t count_ = 0;
};

// The gateway: applies a command to its device's configuration, in the
// consumer's transaction, and counts each command's applications.
struct Gateway {
  jaiminho::Outbox* outbox;
  jaiminho::BusinessFamily config;
  jaiminho::BusinessFamily applied;
  std::mutex mu{};
  std::vector<std::string> violations{};  // out of order (stream or device): should stay empty

  void Violation(std::string what) {
    std::lock_guard l(mu);
    if (violations.size() < 10) violations.push_back(std::move(what));
  }

  // The consumer's thread only: it reads the committed state, which only this
  // handler writes, one message at a time.
  jaiminho::Status Apply(const jaiminho::MqttMessage& m, jaiminho::Transaction& txn) {
    Command c;
    if (!Command::Decode(m.payload, c)) {
      return jaiminho::MakeError(
          jaiminho::ErrorCode::kInvalidArgument,
          "command " + std::string(m.raw_id) + ": cannot decode '" + std::string(m.payload) + "'");
    }
    // The stream's order: seqs 1, 2, 3, ... (a fresh cloud database).
    auto seq = outbox->Get(config, "#stream-seq");
    if (!seq) return tl::unexpected(seq.error());
    const uint64_t last_seq = *seq ? std::stoull(**seq) : 0;
    if (m.id.seq != last_seq + 1) {
      Violation("stream seq " + std::to_string(m.id.seq) + " after " + std::to_string(last_seq));
    }
    // The device's order: n 1, 2, 3, ...
    auto stored = outbox->Get(config, c.device);
    if (!stored) return tl::unexpected(stored.error());
    Config cfg = *stored ? Config::Decode(**stored) : Config{};
    if (c.n != cfg.last + 1) {
      Violation(c.device + " command " + std::to_string(c.n) + " after " + std::to_string(cfg.last));
    }
    if (c.op == "set-interval") {
      cfg.interval_s = c.value;
    } else if (c.op == "set-threshold") {
      cfg.threshold = c.value;
    } else if (c.op == "reboot") {
      ++cfg.reboots;
    }
    ++cfg.commands;
    cfg.last = c.n;
    auto count = outbox->Get(applied, m.raw_id);
    if (!count) return tl::unexpected(count.error());
    const uint64_t times = *count ? std::stoull(**count) : 0;
    if (auto s = txn.Put(config, c.device, cfg.Encode()); !s) return s;
    if (auto s = txn.Put(config, "#stream-seq", std::to_string(m.id.seq)); !s) return s;
    return txn.Put(applied, m.raw_id, std::to_string(times + 1));
  }
};

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  const auto start = SteadyClock::now();
  const std::filesystem::path dir = args.db;
  std::error_code ec;
  if (std::filesystem::exists(dir) && !std::filesystem::is_empty(dir, ec)) {
    return Fail("--db " + dir.string() + " is not empty: give a new directory (each run starts both sides afresh)");
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail("cannot create " + dir.string() + ": " + ec.message());
  const bool tls = !args.tls_demo.empty();

  // The broker, with a TLS listener requiring client certificates for --tls-demo.
  jaiminho::testing::MosquittoBrokerOptions broker_options{.dir = (dir / "broker").string()};
  if (tls) {
    broker_options.tls_ca_file = args.tls_demo + "/ca.pem";
    broker_options.tls_cert_file = args.tls_demo + "/server.pem";
    broker_options.tls_key_file = args.tls_demo + "/server.key";
    broker_options.tls_require_certificate = true;
  }
  auto started = jaiminho::testing::MosquittoBroker::Start(broker_options);
  if (!started) return Fail(started.error().ToString());
  auto broker = std::move(*started);
  const uint16_t port = tls ? broker->tls_port() : broker->port();
  std::printf("mosquitto on %s:%u%s (log and persistence in %s)\n", broker->host().c_str(), port,
              tls ? ", TLS with client certificates" : "", (dir / "broker").c_str());

  // The gateway: its database, its inbox (commands in order) and its consumer.
  auto gw_outbox = jaiminho::Outbox::Open(
      {.path = (dir / "gateway.db").string(), .business_families = {{.name = "config"}, {.name = "applied"}}});
  if (!gw_outbox) return Fail(gw_outbox.error().ToString());
  auto inbox = jaiminho::Inbox::Open(**gw_outbox, {.keep_order_streams = {"commands"}});
  if (!inbox) return Fail(inbox.error().ToString());
  Gateway gateway{.outbox = gw_outbox->get(),
                  .config = *(*gw_outbox)->FindBusinessFamily("config"),
                  .applied = *(*gw_outbox)->FindBusinessFamily("applied")};
  Settled settled;
  jaiminho::MqttConsumerOptions consumer_options{.host = broker->host(),
                                                 .port = port,
                                                 .client_id = "gateway-" + std::to_string(::getpid()),
                                                 .filter = "cloud/commands/#",
                                                 .connect_timeout = 1s,
                                                 .reconnect_min = 20ms,
                                                 .reconnect_max = 500ms};
  consumer_options.on_outcome = [&](const jaiminho::MqttMessage&, jaiminho::ReceiveOutcome o) { settled.Add(o); };
  if (tls) {
    consumer_options.tls = true;
    consumer_options.ca_file = args.tls_demo + "/ca.pem";
    consumer_options.cert_file = args.tls_demo + "/client.pem";
    consumer_options.key_file = args.tls_demo + "/client.key";
  }
  // The consumers' own stats, summed over the ones ended. What they settled is
  // counted by on_outcome (Settled): a consumer being destroyed may still
  // commit the message in progress after its stats were read.
  jaiminho::MqttConsumerStats consumer_totals;
  std::unique_ptr<jaiminho::MqttConsumer> consumer;
  uint64_t applied_before = 0;  // settled.applied() when the current consumer started
  auto start_consumer = [&]() -> jaiminho::Status {
    applied_before = settled.applied();
    auto c = jaiminho::MqttConsumer::Start(
        **gw_outbox, **inbox, consumer_options,
        [&](const jaiminho::MqttMessage& m, jaiminho::Transaction& txn) { return gateway.Apply(m, txn); });
    if (!c) return tl::unexpected(c.error());
    consumer = std::move(*c);
    // Subscribed before the first command: the session (and what the broker
    // queues for it) exists from then on.
    if (!consumer->WaitSubscribed(20s)) {
      return jaiminho::MakeError(jaiminho::ErrorCode::kUnavailable,
                                 "the gateway's consumer did not subscribe: " + consumer->last_error());
    }
    return {};
  };
  auto stop_consumer = [&] {
    // Its stats count a commit just after on_outcome reported it: let them catch up.
    consumer->WaitApplied(settled.applied() - applied_before, 10s);
    const auto s = consumer->stats();
    consumer_totals.applied += s.applied;
    consumer_totals.duplicates += s.duplicates;
    consumer_totals.invalid += s.invalid;
    consumer_totals.not_acknowledged += s.not_acknowledged;
    consumer_totals.connects += s.connects;
    consumer.reset();
  };
  if (auto s = start_consumer(); !s) return Fail(s.error().ToString());

  // The cloud: its database, the keep-order stream, the publisher and relay.
  jaiminho::MqttOptions mqtt_options{.host = broker->host(),
                                     .port = port,
                                     .client_id = "cloud-" + std::to_string(::getpid()),
                                     .topic = "cloud/commands/{key}",
                                     .ack_timeout = 5s,
                                     .connect_timeout = 1s,
                                     .reconnect_min = 20ms,
                                     .reconnect_max = 500ms};
  if (tls) {
    mqtt_options.tls = true;
    mqtt_options.ca_file = args.tls_demo + "/ca.pem";
    mqtt_options.cert_file = args.tls_demo + "/client.pem";
    mqtt_options.key_file = args.tls_demo + "/client.key";
  }
  auto mqtt = jaiminho::MqttPublisher::Create(mqtt_options);
  if (!mqtt) return Fail(mqtt.error().ToString());
  auto delivered = std::make_shared<Delivered>();
  jaiminho::OutboxOptions cloud_options{.path = (dir / "cloud.db").string()};
  cloud_options.observers = {delivered};
  cloud_options.retry = {.initial_backoff = 20ms, .max_backoff = 500ms};
  auto cloud = jaiminho::Outbox::Open(std::move(cloud_options));
  if (!cloud) return Fail(cloud.error().ToString());
  auto commands = (*cloud)->OpenStream("commands", {.strategy = jaiminho::Strategy::kKeepOrder});
  if (!commands) return Fail(commands.error().ToString());
  auto relay = jaiminho::Relay::Make(**cloud, *mqtt, {.interval = 20ms});
  if (!relay) return Fail(relay.error().ToString());
  (*relay)->Start();

  // Commits commands [from, to) of the run, command i going to device i % devices.
  std::map<std::string, uint64_t> sent_per_device;
  std::vector<std::string> sent_ids;
  auto send = [&](uint64_t from, uint64_t to) -> jaiminho::Status {
    static constexpr std::string_view kOps[] = {"set-interval", "set-threshold", "reboot"};
    for (uint64_t i = from; i < to; ++i) {
      Command c{.device = "sensor-" + std::to_string(i % static_cast<uint64_t>(args.devices)),
                .op = std::string(kOps[(i / 3) % 3])};
      c.n = ++sent_per_device[c.device];
      c.value = static_cast<int>(c.op == "set-interval" ? 10 + (i % 7) * 5 : c.op == "set-threshold" ? 25 + i % 10 : 0);
      auto txn = (*cloud)->Begin();
      if (auto s = txn.Enqueue(
              **commands, {.type = "command.v1", .key = c.device, .payload = c.Encode(), .encoding = "text/plain"});
          !s) {
        return s;
      }
      auto receipt = txn.Commit();
      if (!receipt) return tl::unexpected(receipt.error());
      sent_ids.push_back(receipt->events.at(0).ToString());
    }
    return {};
  };
  const uint64_t quarter = static_cast<uint64_t>(args.commands) / 4;
  const uint64_t total = static_cast<uint64_t>(args.commands);
  auto wait_applied = [&](uint64_t n, const char* phase) -> jaiminho::Status {
    if (settled.WaitApplied(n, 60s)) return {};
    return jaiminho::MakeError(
        jaiminho::ErrorCode::kUnavailable,
        std::string(phase) + ": the gateway applied " + std::to_string(settled.applied()) + " of " + std::to_string(n) +
            " commands within 60 s; consumer: " + (consumer ? consumer->last_error() : "stopped") +
            "; publisher: " + (*mqtt)->last_error());
  };

  std::printf("phase 1, link up: %llu commands to %d devices\n", static_cast<unsigned long long>(quarter),
              args.devices);
  if (auto s = send(0, quarter); !s) return Fail(s.error().ToString());
  if (auto s = wait_applied(quarter, "phase 1"); !s) return Fail(s.error().ToString());

  const uint64_t resend = std::min<uint64_t>(static_cast<uint64_t>(args.resend), quarter);
  std::printf("phase 2, a resent prefix: commands 1-%llu published again with their ids, then %llu new ones\n",
              static_cast<unsigned long long>(resend), static_cast<unsigned long long>(quarter));
  {
    if (!delivered->WaitFor(resend, 60s)) return Fail("the relay did not report the first commands delivered");
    jaiminho::MqttOptions replay_options = mqtt_options;
    replay_options.client_id += "-replay";
    auto replay = jaiminho::MqttPublisher::Create(replay_options);
    if (!replay) return Fail(replay.error().ToString());
    if (!(*replay)->WaitConnected(20s))
      return Fail("the replaying publisher did not connect: " + (*replay)->last_error());
    auto resent = delivered->Resend(**replay, resend);
    if (!resent) return Fail("resending the prefix: " + resent.error().ToString());
    if (*resent != resend) return Fail("resent " + std::to_string(*resent) + " of " + std::to_string(resend));
  }
  if (auto s = send(quarter, 2 * quarter); !s) return Fail(s.error().ToString());
  // Each of the 2 * quarter commands so far, and the resent prefix: settled
  // (applied, or dropped as a duplicate: the checks at the end tell which).
  if (!settled.WaitSettled(2 * quarter + resend, 60s)) {
    return Fail("phase 2: applied " + std::to_string(settled.applied()) + ", duplicates dropped " +
                std::to_string(settled.duplicates()) + " of " + std::to_string(2 * quarter) + " commands and " +
                std::to_string(resend) + " resent; consumer: " + consumer->last_error());
  }
  const uint64_t dups_after_resend = settled.duplicates();

  std::printf("phase 3, broker restart: %llu commands, the broker stopped after %llu and restarted\n",
              static_cast<unsigned long long>(quarter), static_cast<unsigned long long>(quarter / 2));
  if (auto s = send(2 * quarter, 2 * quarter + quarter / 2); !s) return Fail(s.error().ToString());
  if (auto s = broker->Stop(); !s) return Fail(s.error().ToString());
  if (auto s = send(2 * quarter + quarter / 2, 3 * quarter); !s) return Fail(s.error().ToString());
  if (auto s = broker->Restart(); !s) return Fail(s.error().ToString());
  if (auto s = wait_applied(3 * quarter, "phase 3"); !s) return Fail(s.error().ToString());
  const uint64_t dups_after_restart = settled.duplicates();

  const uint64_t rest = total - 3 * quarter;
  std::printf("phase 4, consumer restart: %llu commands, the gateway's consumer stopped mid-stream and started again\n",
              static_cast<unsigned long long>(rest));
  if (auto s = send(3 * quarter, total); !s) return Fail(s.error().ToString());
  if (auto s = wait_applied(3 * quarter + rest / 3, "phase 4"); !s) {
    return Fail(s.error().ToString());
  }
  stop_consumer();
  const uint64_t applied_at_stop = settled.applied();
  if (auto s = start_consumer(); !s) return Fail(s.error().ToString());
  if (auto s = wait_applied(total, "phase 4"); !s) return Fail(s.error().ToString());
  (*relay)->Stop();
  stop_consumer();
  const auto elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();

  // The checks: each command applied exactly once, each device's commands
  // all applied, in order; duplicates seen and dropped.
  int status = 0;
  int failed_checks = 0;
  auto check = [&](bool ok, const std::string& what) {
    if (ok) return;
    if (++failed_checks <= 10) std::printf("CHECK FAILED: %s\n", what.c_str());
    status = 1;
  };
  uint64_t once = 0;
  for (const std::string& id : sent_ids) {
    auto count = (*gw_outbox)->Get(gateway.applied, id);
    if (!count) return Fail(count.error().ToString());
    if (*count && **count == "1") {
      ++once;
    } else {
      check(false, "command " + id + " applied " + (*count ? **count : std::string("0")) + " times");
    }
  }
  for (const auto& [device, n] : sent_per_device) {
    auto stored = (*gw_outbox)->Get(gateway.config, device);
    if (!stored) return Fail(stored.error().ToString());
    Config cfg = *stored ? Config::Decode(**stored) : Config{};
    check(cfg.commands == n && cfg.last == n, device + ": " + std::to_string(n) + " commands sent, config says " +
                                                  (*stored ? **stored : std::string("none")));
  }
  for (const auto& v : gateway.violations)
    check(false, "out of order: " + v);
  check(settled.duplicates() > 0 && consumer_totals.duplicates > 0,
        "no duplicate reached the gateway: nothing was injected");
  check(settled.applied() == sent_ids.size(), "the consumers applied " + std::to_string(settled.applied()) +
                                                  " commands, " + std::to_string(sent_ids.size()) + " were sent");
  check(consumer_totals.invalid == 0, std::to_string(consumer_totals.invalid) + " invalid messages");
  for (const auto& st : (*inbox)->State()) {
    check(st.watermark == sent_ids.size() && st.gaps.empty() && st.above.empty(),
          "inbox: stream " + st.stream + " watermark " + std::to_string(st.watermark) + ", " +
              std::to_string(st.gaps.size()) + " gaps");
  }

  const uint64_t deliveries = settled.applied() + settled.duplicates();
  if (failed_checks > 10) std::printf("CHECK FAILED: ... and %d more\n", failed_checks - 10);
  std::printf(
      "sent %zu commands (%zu devices); delivered %llu times to the gateway: applied %llu, duplicates dropped %llu "
      "(%llu after the resent prefix of %llu, %llu after the broker restart, %llu after the consumer restart at "
      "%llu applied); applied exactly once: %llu; in order: %s; consumers' stats: duplicates %llu, connections "
      "%llu, not acknowledged %llu\n",
      sent_ids.size(), sent_per_device.size(), static_cast<unsigned long long>(deliveries),
      static_cast<unsigned long long>(settled.applied()), static_cast<unsigned long long>(settled.duplicates()),
      static_cast<unsigned long long>(dups_after_resend), static_cast<unsigned long long>(resend),
      static_cast<unsigned long long>(dups_after_restart - dups_after_resend),
      static_cast<unsigned long long>(settled.duplicates() - dups_after_restart),
      static_cast<unsigned long long>(applied_at_stop), static_cast<unsigned long long>(once),
      gateway.violations.empty() ? "yes" : "NO", static_cast<unsigned long long>(consumer_totals.duplicates),
      static_cast<unsigned long long>(consumer_totals.connects),
      static_cast<unsigned long long>(consumer_totals.not_acknowledged));
  auto dev = (*gw_outbox)->Get(gateway.config, "sensor-0");
  if (dev && *dev) std::printf("device sensor-0: %s\n", (*dev)->c_str());
  std::printf("%s in %.1f s; databases in %s\n", status == 0 ? "OK" : "FAILED", elapsed, dir.c_str());
  if (auto s = (*cloud)->Close(); !s) return Fail(s.error().ToString());
  if (auto s = (*gw_outbox)->Close(); !s) return Fail(s.error().ToString());
  return status;
}
