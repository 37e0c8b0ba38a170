// The gateway's commands: a "cloud" sends commands to an IoT gateway through
// mosquitto, and the gateway applies each one's effect exactly once and in
// order, though the broker and the relay deliver some of them twice.
//
//   jaiminho-gateway-commands [--db DIR] [--commands N] [--devices N] [--resend N] [--tls-demo DIR]
//   (--gateway-child --port N --client-id ID: the gateway process the demo starts)
//
// The cloud side (DIR/cloud.db) commits each command ("set-interval",
// "set-threshold", "reboot" for one device) to the keep-order stream
// "commands"; a Relay publishes them with an MqttPublisher to
// cloud/commands/{key}. The gateway side (DIR/gateway.db) consumes them with
// an MqttConsumer (a persistent session, QoS 1) into an Inbox that enforces
// the stream's order, with one typed handler (ConsumerHandlers: "command.v1"
// decoded by the Codec<Command> the cloud encoded it with): each command's
// effect (the device's configuration in the business family "config", and a
// count of applications per command in "applied") commits in one transaction
// with the inbox's record of its id.
//
// The gateway runs as a child process of the demo (this program again, with
// --gateway-child), as it would on its own machine. The demo runs its own
// mosquitto broker (/usr/sbin/mosquitto) and injects duplicates for real, in
// four phases of commands:
//   1. link up;
//   2. a resent prefix: a second publisher sends the first --resend commands
//      again with their event ids, as a relay does after a lost PUBACK;
//   3. the broker is stopped halfway through and restarted (its persistent
//      session queues what the gateway has not acknowledged; the relay resends
//      what was unacknowledged when the link went);
//   4. the gateway process is killed (SIGKILL) mid-stream and started again:
//      what it had committed but not acknowledged comes again.
// It then opens the gateway's database and checks that every command was
// applied exactly once (its count in "applied" is 1, the configs count each
// device's commands), in the stream's order and each device's, that the
// inbox's watermark is the last seq with no gap, and that duplicates were seen
// and dropped; prints a summary and exits 1 if a check fails.
//
// TLS: with --tls-demo DIR (certificates made by
// src/adapters/testing/make-test-certs.sh DIR) the broker also listens with
// TLS, requiring a client certificate from DIR's CA, and both the cloud's
// publishers and the gateway's consumer connect there over mutual TLS.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
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
  // The gateway process (--gateway-child): the broker's port and the consumer's client id.
  bool gateway_child = false;
  int port = 0;
  std::string client_id{};
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
      "restart, the gateway process killed). Checks that each command's effect was applied exactly once, in order.");
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
  cli.Flag("--gateway-child", "(internal) run as the gateway process the demo starts, on --db DIR's gateway.db",
           [&] { a.gateway_child = true; });
  cli.Option("--port", "N", "(internal, with --gateway-child) the broker's port",
             [&](const std::string& v) { a.port = cli.Int("--port", v, 1); });
  cli.Option("--client-id", "ID", "(internal, with --gateway-child) the consumer's MQTT client id",
             [&](const std::string& v) { a.client_id = v; });
  cli.Parse(argc, argv);
  return a;
}

// A command as the cloud sends it (event type "command.v1"), n counting the
// device's commands from 1. Its codec is below: the cloud emits it with
// Transaction::Emit, the gateway decodes it with ConsumerHandlers.
struct Command {
  std::string device;
  uint64_t n = 0;
  std::string op;
  int value = 0;
};

}  // namespace

// "device=D n=K op=OP value=V".
template <>
struct jaiminho::Codec<Command> {
  static constexpr std::string_view kEncoding = "text/x-gateway-command";
  static std::string Encode(const Command& c) {
    return "device=" + c.device + " n=" + std::to_string(c.n) + " op=" + c.op + " value=" + std::to_string(c.value);
  }
  static jaiminho::Result<Command> Decode(std::string_view s) {
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
    Command c{.device = std::string(field("device")), .op = std::string(field("op"))};
    if (c.device.empty() || c.op.empty() || !number(field("n"), c.n) || !number(field("value"), c.value)) {
      return jaiminho::MakeError(jaiminho::ErrorCode::kInvalidArgument,
                                 "not a command (device=D n=K op=OP value=V): '" + std::string(s) + "'");
    }
    return c;
  }
};

namespace {

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

// What the gateway processes reported on their stdout, one line each:
// "N seq" (applied), "D seq" (a duplicate dropped), "V text" (out of order),
// "S applied duplicates invalid not_acknowledged connects" (a consumer's
// stats, at its orderly end). A process killed between a commit and its line
// leaves that one unreported; the database tells (the checks read it).
class Tracker {
 public:
  void Line(std::string_view line) {
    std::lock_guard l(mu_);
    uint64_t v[5] = {};
    auto numbers = [&](size_t n) {
      std::string_view rest = line.substr(std::min<size_t>(2, line.size()));
      for (size_t i = 0; i < n; ++i) {
        auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v[i]);
        if (ec != std::errc()) return false;
        rest.remove_prefix(static_cast<size_t>(end - rest.data()));
        if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      }
      return true;
    };
    if (line.starts_with("N ") && numbers(1)) {
      ++applied_;
      settled_through_ = std::max(settled_through_, v[0]);
    } else if (line.starts_with("D ") && numbers(1)) {
      ++duplicates_;
      settled_through_ = std::max(settled_through_, v[0]);
    } else if (line.starts_with("V ")) {
      if (violations_.size() < 10) violations_.emplace_back(line.substr(2));
    } else if (line.starts_with("S ") && numbers(5)) {
      stats_.applied += v[0];
      stats_.duplicates += v[1];
      stats_.invalid += v[2];
      stats_.not_acknowledged += v[3];
      stats_.connects += v[4];
    } else if (line == "READY") {
      ++ready_;
    }
    cv_.notify_all();
  }
  // Until `pred` holds (called under the lock), or `timeout`.
  template <class Pred>
  bool Wait(std::chrono::milliseconds timeout, Pred pred) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return pred(*this); });
  }
  // Readers for Wait's predicate (under the lock) or with it taken here.
  uint64_t applied() const { return applied_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t settled_through() const { return settled_through_; }  // every seq <= it applied (keep order)
  int ready() const { return ready_; }
  template <class F>
  auto Read(F f) {
    std::lock_guard l(mu_);
    return f(*this);
  }
  const std::vector<std::string>& violations() const { return violations_; }
  const jaiminho::MqttConsumerStats& stats() const { return stats_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t applied_ = 0, duplicates_ = 0, settled_through_ = 0;
  int ready_ = 0;
  std::vector<std::string> violations_;
  jaiminho::MqttConsumerStats stats_;
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
  std::function<void(const std::string&)> violation;  // out of order (stream or device)

  void Violation(const std::string& what) const { violation(what); }

  // The consumer's thread only: it reads the committed state, which only this
  // handler writes, one message at a time.
  jaiminho::Status Apply(const Command& c, const jaiminho::ReceivedEvent& m, jaiminho::Transaction& txn) const {
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

// The gateway's TLS and broker settings for a consumer (both processes).
jaiminho::MqttConsumerOptions ConsumerOptions(const Args& args) {
  jaiminho::MqttConsumerOptions o{.host = "127.0.0.1",
                                  .port = static_cast<uint16_t>(args.port),
                                  .client_id = args.client_id,
                                  .filter = "cloud/commands/#",
                                  .connect_timeout = 1s,
                                  .reconnect_min = 20ms,
                                  .reconnect_max = 500ms};
  if (!args.tls_demo.empty()) {
    o.tls = true;
    o.ca_file = args.tls_demo + "/ca.pem";
    o.cert_file = args.tls_demo + "/client.pem";
    o.key_file = args.tls_demo + "/client.key";
  }
  return o;
}

// One line to stdout in one write(2): the demo reads them; a kill never
// leaves half a line.
void Report(const std::string& line) {
  std::string out = line + "\n";
  for (size_t done = 0; done < out.size();) {
    ssize_t n = ::write(STDOUT_FILENO, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// The gateway process: consumes until its stdin closes (the demo's stop),
// reporting each outcome on stdout (see Tracker); then its consumer's stats.
int GatewayChild(const Args& args) {
  const std::filesystem::path dir = args.db;
  auto outbox = jaiminho::Outbox::Open(
      {.path = (dir / "gateway.db").string(), .business_families = {{.name = "config"}, {.name = "applied"}}});
  if (!outbox) return Fail(outbox.error().ToString());
  auto inbox = jaiminho::Inbox::Open(**outbox, {.keep_order_streams = {"commands"}});
  if (!inbox) return Fail(inbox.error().ToString());
  Gateway gateway{.outbox = outbox->get(),
                  .config = *(*outbox)->FindBusinessFamily("config"),
                  .applied = *(*outbox)->FindBusinessFamily("applied"),
                  .violation = [](const std::string& what) { Report("V " + what); }};
  jaiminho::MqttConsumerOptions options = ConsumerOptions(args);
  std::atomic<uint64_t> reported_new{0};
  options.on_outcome = [&](const jaiminho::MqttMessage& m, jaiminho::ReceiveOutcome o) {
    if (o == jaiminho::ReceiveOutcome::kNew) ++reported_new;
    Report((o == jaiminho::ReceiveOutcome::kNew ? "N " : "D ") + std::to_string(m.id.seq));
  };
  // One typed handler: "command.v1" events decoded with Codec<Command>.
  jaiminho::ConsumerHandlers handlers;
  if (auto s = handlers.Register<Command>("command.v1",
                                          [&](const Command& c, const jaiminho::ReceivedEvent& e,
                                              jaiminho::Transaction& txn) { return gateway.Apply(c, e, txn); });
      !s) {
    return Fail(s.error().ToString());
  }
  auto consumer = jaiminho::MqttConsumer::Start(**outbox, **inbox, std::move(options), std::move(handlers));
  if (!consumer) return Fail(consumer.error().ToString());
  // Subscribed before the first command: the session (and what the broker
  // queues for it) exists from then on.
  if (!(*consumer)->WaitSubscribed(20s)) return Fail("did not subscribe: " + (*consumer)->last_error());
  Report("READY");
  char buf[64];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    break;  // EOF (or an error): stop
  }
  // Its stats count a commit just after on_outcome reported it: let them catch up.
  (*consumer)->WaitApplied(reported_new, 5s);
  const jaiminho::MqttConsumerStats st = (*consumer)->stats();
  Report("S " + std::to_string(st.applied) + " " + std::to_string(st.duplicates) + " " + std::to_string(st.invalid) +
         " " + std::to_string(st.not_acknowledged) + " " + std::to_string(st.connects));
  consumer->reset();  // lets the message in progress finish (commit or not)
  if (auto s = (*outbox)->Close(); !s) return Fail(s.error().ToString());
  return 0;
}

// The demo's handle on a gateway process: its stdin (closed to stop it) and
// a thread feeding its stdout lines to the Tracker.
class GatewayProcess {
 public:
  static jaiminho::Result<std::unique_ptr<GatewayProcess>> Spawn(const std::vector<std::string>& argv,
                                                                 Tracker& tracker) {
    // Close-on-exec: no other child (the broker, restarted) inherits them and
    // keeps this one's stdin open; posix_spawn's dup2 gives the child its own.
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
      return jaiminho::MakeError(jaiminho::ErrorCode::kInternal, std::string("pipe: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    if (rc != 0) {
      ::close(in[1]);
      ::close(out[0]);
      return jaiminho::MakeError(jaiminho::ErrorCode::kInternal, std::string("posix_spawn: ") + std::strerror(rc));
    }
    return std::unique_ptr<GatewayProcess>(new GatewayProcess(pid, in[1], out[0], tracker));
  }
  ~GatewayProcess() {
    if (stdin_ >= 0) ::close(stdin_);
    Wait();
  }
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  pid_t pid() const { return pid_; }
  void Kill() { ::kill(pid_, SIGKILL); }
  // Closes its stdin (it stops and exits) and waits; its exit status, or
  // 128 + the signal that ended it.
  int Stop() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
    return Wait();
  }
  int Wait() {
    if (reader_.joinable()) reader_.join();  // its stdout closes when it exits
    if (!waited_) {
      int st = 0;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      waited_ = true;
    }
    return status_;
  }

 private:
  GatewayProcess(pid_t pid, int in, int out, Tracker& tracker) : pid_(pid), stdin_(in) {
    reader_ = std::thread([out, &tracker] {
      std::string buffer;
      char chunk[4096];
      for (;;) {
        ssize_t n = ::read(out, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buffer.append(chunk, static_cast<size_t>(n));
        for (size_t eol; (eol = buffer.find('\n')) != std::string::npos; buffer.erase(0, eol + 1))
          tracker.Line(std::string_view(buffer).substr(0, eol));
      }
      ::close(out);
    });
  }
  pid_t pid_;
  int stdin_;
  std::thread reader_;
  bool waited_ = false;
  int status_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  if (args.gateway_child) return GatewayChild(args);
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
  args.port = tls ? broker->tls_port() : broker->port();
  args.client_id = "gateway-" + std::to_string(::getpid());
  std::printf("mosquitto on %s:%d%s (log and persistence in %s)\n", broker->host().c_str(), args.port,
              tls ? ", TLS with client certificates" : "", (dir / "broker").c_str());

  // The gateway: a process of its own (see GatewayChild), started again after
  // it is killed; the same client id, so the same broker session.
  Tracker tracker;
  std::vector<std::string> child_argv = {
      "jaiminho-gateway-commands", "--gateway-child", "--db",        dir.string(), "--port",
      std::to_string(args.port),   "--client-id",     args.client_id};
  if (tls) child_argv.insert(child_argv.end(), {"--tls-demo", args.tls_demo});
  std::unique_ptr<GatewayProcess> gateway;
  auto start_gateway = [&]() -> jaiminho::Status {
    const int ready = tracker.Read([](const Tracker& t) { return t.ready(); });
    auto p = GatewayProcess::Spawn(child_argv, tracker);
    if (!p) return tl::unexpected(p.error());
    gateway = std::move(*p);
    if (!tracker.Wait(30s, [&](const Tracker& t) { return t.ready() > ready; })) {
      return jaiminho::MakeError(jaiminho::ErrorCode::kUnavailable,
                                 "the gateway process did not subscribe within 30 s (its errors are on stderr)");
    }
    return {};
  };
  if (auto s = start_gateway(); !s) return Fail(s.error().ToString());

  // The cloud: its database, the keep-order stream, the publisher and relay.
  jaiminho::MqttOptions mqtt_options{.host = broker->host(),
                                     .port = static_cast<uint16_t>(args.port),
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
      if (auto s = txn.Emit(**commands, "command.v1", c, {.key = c.device}); !s) return s;
      auto receipt = txn.Commit();
      if (!receipt) return tl::unexpected(receipt.error());
      sent_ids.push_back(receipt->events.at(0).ToString());
    }
    return {};
  };
  const uint64_t quarter = static_cast<uint64_t>(args.commands) / 4;
  const uint64_t total = static_cast<uint64_t>(args.commands);
  // Until the gateway applied commands 1..n (a keep-order stream: seq n
  // settled means every seq before it was applied).
  auto wait_through = [&](uint64_t n, const char* phase) -> jaiminho::Status {
    if (tracker.Wait(60s, [&](const Tracker& t) { return t.settled_through() >= n; })) return {};
    return jaiminho::MakeError(jaiminho::ErrorCode::kUnavailable,
                               std::string(phase) + ": the gateway reported commands 1.." +
                                   std::to_string(tracker.Read([](const Tracker& t) { return t.settled_through(); })) +
                                   " of 1.." + std::to_string(n) +
                                   " applied within 60 s; publisher: " + (*mqtt)->last_error());
  };
  auto duplicates = [&] { return tracker.Read([](const Tracker& t) { return t.duplicates(); }); };

  std::printf("phase 1, link up: %llu commands to %d devices\n", static_cast<unsigned long long>(quarter),
              args.devices);
  if (auto s = send(0, quarter); !s) return Fail(s.error().ToString());
  if (auto s = wait_through(quarter, "phase 1"); !s) return Fail(s.error().ToString());

  const uint64_t resend = std::min<uint64_t>(static_cast<uint64_t>(args.resend), quarter);
  std::printf("phase 2, a resent prefix: commands 1-%llu published again with their ids, then %llu new ones\n",
              static_cast<unsigned long long>(resend), static_cast<unsigned long long>(quarter));
  const uint64_t settled_before_resend = tracker.Read([](const Tracker& t) { return t.applied() + t.duplicates(); });
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
  // The resent prefix and the new commands all settled (applied, or dropped
  // as duplicates: the checks at the end tell which).
  if (!tracker.Wait(60s, [&](const Tracker& t) {
        return t.settled_through() >= 2 * quarter &&
               t.applied() + t.duplicates() >= settled_before_resend + quarter + resend;
      })) {
    return Fail("phase 2: the resent prefix and the new commands were not all settled within 60 s");
  }
  const uint64_t dups_after_resend = duplicates();

  std::printf("phase 3, broker restart: %llu commands, the broker stopped after %llu and restarted\n",
              static_cast<unsigned long long>(quarter), static_cast<unsigned long long>(quarter / 2));
  if (auto s = send(2 * quarter, 2 * quarter + quarter / 2); !s) return Fail(s.error().ToString());
  if (auto s = broker->Stop(); !s) return Fail(s.error().ToString());
  if (auto s = send(2 * quarter + quarter / 2, 3 * quarter); !s) return Fail(s.error().ToString());
  if (auto s = broker->Restart(); !s) return Fail(s.error().ToString());
  if (auto s = wait_through(3 * quarter, "phase 3"); !s) return Fail(s.error().ToString());
  const uint64_t dups_after_restart = duplicates();

  const uint64_t rest = total - 3 * quarter;
  std::printf("phase 4, gateway killed: %llu commands, the gateway process SIGKILLed mid-stream and started again\n",
              static_cast<unsigned long long>(rest));
  if (auto s = send(3 * quarter, total); !s) return Fail(s.error().ToString());
  if (auto s = wait_through(3 * quarter + rest / 3, "phase 4"); !s) return Fail(s.error().ToString());
  gateway->Kill();
  const int killed_status = gateway->Wait();
  const uint64_t killed_at = tracker.Read([](const Tracker& t) { return t.settled_through(); });
  if (killed_status != 128 + SIGKILL) {
    return Fail("the gateway process ended with " + std::to_string(killed_status) + ", not by SIGKILL");
  }
  if (auto s = start_gateway(); !s) return Fail(s.error().ToString());
  if (auto s = wait_through(total, "phase 4"); !s) return Fail(s.error().ToString());
  (*relay)->Stop();
  if (const int status = gateway->Stop(); status != 0) {
    return Fail("the gateway process exited with " + std::to_string(status));
  }
  gateway.reset();
  const auto elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();

  // The checks, on the gateway's database: each command applied exactly
  // once, each device's commands all applied, in order; duplicates seen and
  // dropped.
  auto gw_outbox = jaiminho::Outbox::Open(
      {.path = (dir / "gateway.db").string(), .business_families = {{.name = "config"}, {.name = "applied"}}});
  if (!gw_outbox) return Fail(gw_outbox.error().ToString());
  auto inbox = jaiminho::Inbox::Open(**gw_outbox, {.keep_order_streams = {"commands"}});
  if (!inbox) return Fail(inbox.error().ToString());
  const jaiminho::BusinessFamily config = *(*gw_outbox)->FindBusinessFamily("config");
  const jaiminho::BusinessFamily applied = *(*gw_outbox)->FindBusinessFamily("applied");
  int status = 0;
  int failed_checks = 0;
  auto check = [&](bool ok, const std::string& what) {
    if (ok) return;
    if (++failed_checks <= 10) std::printf("CHECK FAILED: %s\n", what.c_str());
    status = 1;
  };
  uint64_t once = 0;
  for (const std::string& id : sent_ids) {
    auto count = (*gw_outbox)->Get(applied, id);
    if (!count) return Fail(count.error().ToString());
    if (*count && **count == "1") {
      ++once;
    } else {
      check(false, "command " + id + " applied " + (*count ? **count : std::string("0")) + " times");
    }
  }
  for (const auto& [device, n] : sent_per_device) {
    auto stored = (*gw_outbox)->Get(config, device);
    if (!stored) return Fail(stored.error().ToString());
    Config cfg = *stored ? Config::Decode(**stored) : Config{};
    check(cfg.commands == n && cfg.last == n, device + ": " + std::to_string(n) + " commands sent, config says " +
                                                  (*stored ? **stored : std::string("none")));
  }
  const auto [reported_applied, reported_duplicates, violations, stats] =
      tracker.Read([](const Tracker& t) { return std::tuple(t.applied(), t.duplicates(), t.violations(), t.stats()); });
  for (const auto& v : violations)
    check(false, "out of order: " + v);
  check(reported_duplicates > 0, "no duplicate reached the gateway: nothing was injected");
  check(stats.invalid == 0, std::to_string(stats.invalid) + " invalid messages");
  for (const auto& st : (*inbox)->State()) {
    check(st.watermark == sent_ids.size() && st.gaps.empty() && st.above.empty(),
          "inbox: stream " + st.stream + " watermark " + std::to_string(st.watermark) + ", " +
              std::to_string(st.gaps.size()) + " gaps");
  }
  if (failed_checks > 10) std::printf("CHECK FAILED: ... and %d more\n", failed_checks - 10);
  const uint64_t deliveries = reported_applied + reported_duplicates;
  std::printf(
      "sent %zu commands (%zu devices); the gateway reported %llu deliveries: applied %llu, duplicates dropped %llu "
      "(%llu after the resent prefix of %llu, %llu after the broker restart, %llu after the gateway was killed at "
      "command %llu); applied exactly once (its database): %llu; in order: %s; last consumer's stats: duplicates "
      "%llu, connections %llu, not acknowledged %llu\n",
      sent_ids.size(), sent_per_device.size(), static_cast<unsigned long long>(deliveries),
      static_cast<unsigned long long>(reported_applied), static_cast<unsigned long long>(reported_duplicates),
      static_cast<unsigned long long>(dups_after_resend), static_cast<unsigned long long>(resend),
      static_cast<unsigned long long>(dups_after_restart - dups_after_resend),
      static_cast<unsigned long long>(reported_duplicates - dups_after_restart),
      static_cast<unsigned long long>(killed_at), static_cast<unsigned long long>(once),
      violations.empty() ? "yes" : "NO", static_cast<unsigned long long>(stats.duplicates),
      static_cast<unsigned long long>(stats.connects), static_cast<unsigned long long>(stats.not_acknowledged));
  auto dev = (*gw_outbox)->Get(config, "sensor-0");
  if (dev && *dev) std::printf("device sensor-0: %s\n", (*dev)->c_str());
  std::printf("%s in %.1f s; databases in %s\n", status == 0 ? "OK" : "FAILED", elapsed, dir.c_str());
  if (auto s = (*cloud)->Close(); !s) return Fail(s.error().ToString());
  if (auto s = (*gw_outbox)->Close(); !s) return Fail(s.error().ToString());
  return status;
}
