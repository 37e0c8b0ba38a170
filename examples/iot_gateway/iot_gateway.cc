// An IoT gateway: sensor readings and device state are committed together
// with the events that announce them, and relayed to an MQTT broker over a
// link that drops.
//
//   jaiminho-iot-gateway [--db DIR] [--sensors N] [--readings N] [--broker HOST:PORT|URI]
//                        [--ca FILE] [--cert FILE --key FILE] [--tls-demo DIR]
//                        [--quota-events N] [--quota-bytes N]
//
// Each reading is one transaction: the reading itself ("readings" family),
// the device's new state ("devices" family), a "reading.v1" event on the
// publish-on-commit stream "telemetry" and, when the device's alarm state
// flips, an "alarm.v1" event on the keep-order stream "device-state". Both,
// or neither: a power cut never leaves a state change without its event.
//
// Without --broker (the demo) the gateway starts its own mosquitto broker
// (/usr/sbin/mosquitto) on a free loopback port and a "cloud" subscriber, and
// runs three phases of readings: link up; link down (the broker is stopped:
// readings keep being committed and buffer in the outbox while the relay
// retries); link back (the broker restarts and the backlog drains). It then
// checks that the cloud received every event, device-state events in order,
// and exits 0. With --broker it publishes there and waits until every event
// was acknowledged.
//
// TLS: --ca (the CA that signed the broker's certificate), --cert and --key
// (a client certificate, for mutual TLS), or an mqtts:// URI as --broker,
// publish over TLS. With --tls-demo DIR (certificates made by
// src/adapters/testing/make-test-certs.sh DIR) the demo broker also listens
// with TLS, requiring a client certificate from DIR's CA, and the gateway
// publishes over mutual TLS with DIR/client.pem (the cloud subscriber stays on
// the plain loopback port).
//
// Quota: --quota-events and --quota-bytes bound what "telemetry" keeps waiting
// for delivery, dropping its oldest undelivered readings to make room
// (QuotaPolicy::kDropOldest; readings are worth less than the newest ones
// after a long outage). The gateway counts what was reported dropped
// (Observer::OnDropped) and prints it; the check then expects every telemetry
// event either acknowledged or reported dropped, and the cloud to have
// received every acknowledged one. A dropped event may still reach the cloud
// when the broker got it but its acknowledgement was lost (the link went down
// in between): the check allows that only for events with a failed publish
// attempt reported, i.e. sent before they were dropped.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "adapters/testing/mosquitto_broker.h"
#include "adapters/testing/mqtt_subscriber.h"
#include "example_args.h"
#include "example_metrics.h"
#include "jaiminho/adapters/mqtt.h"
#include "jaiminho/jaiminho.h"

namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Args {
  std::string db = "var/iot-gateway.db";
  int sensors = 4;
  int readings = 3000;   // in total, over the three phases
  std::string broker{};  // HOST:PORT or mqtt[s]:// URI; empty: run our own
  std::string ca{}, cert{}, key{};
  std::string tls_demo{};  // certificates for the demo broker's TLS listener
  std::string metrics{};
  jaiminho::StreamQuota quota{.policy = jaiminho::QuotaPolicy::kDropOldest};  // telemetry's; 0: no limit
};

constexpr std::string_view kTelemetry = "telemetry";

// One OnDropped report: `count` events of seqs first..last.
struct Drop {
  uint64_t first = 0, last = 0, count = 0;
};

// Counts acknowledged events (inline and by the relay) and the telemetry
// events dropped for its quota, with a wait; remembers which telemetry seqs
// were acknowledged, which had a failed publish attempt, and the drops.
class Acks final : public jaiminho::Observer {
 public:
  void OnPublished(const jaiminho::Event& e) override { Add(e); }
  void OnPublishedByRelay(const jaiminho::Event& e) override { Add(e); }
  void OnFailedToPublish(const jaiminho::Event& e, const jaiminho::Error&) override { Failed(e); }
  void OnFailedToPublishByRelay(const jaiminho::Event& e, const jaiminho::Error&) override { Failed(e); }
  void OnDropped(std::string_view stream, uint64_t first_seq, uint64_t last_seq, uint64_t count) override {
    if (stream != kTelemetry) return;
    std::lock_guard l(mu_);
    drops_.push_back({first_seq, last_seq, count});
    dropped_ += count;
    ++progress_;
    cv_.notify_all();
  }
  // Until `n` events were acknowledged or reported dropped.
  bool WaitFor(uint64_t n, std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return acked_ + dropped_ >= n; });
  }
  // Deliveries that moved (acknowledged, failed, dropped), for WaitProgress.
  uint64_t progress() {
    std::lock_guard l(mu_);
    return progress_;
  }
  // Until progress() differs from `seen`.
  bool WaitProgress(uint64_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return progress_ != seen; });
  }
  uint64_t dropped() {
    std::lock_guard l(mu_);
    return dropped_;
  }
  std::vector<Drop> drops() {
    std::lock_guard l(mu_);
    return drops_;
  }
  std::set<uint64_t> telemetry_acked() {
    std::lock_guard l(mu_);
    return telemetry_acked_;
  }
  std::set<uint64_t> telemetry_failed() {
    std::lock_guard l(mu_);
    return telemetry_failed_;
  }

 private:
  void Add(const jaiminho::Event& e) {
    std::lock_guard l(mu_);
    ++acked_;
    if (e.id.stream == kTelemetry) telemetry_acked_.insert(e.id.seq);
    ++progress_;
    cv_.notify_all();
  }
  void Failed(const jaiminho::Event& e) {
    std::lock_guard l(mu_);
    if (e.id.stream == kTelemetry) telemetry_failed_.insert(e.id.seq);
    ++progress_;
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t acked_ = 0, dropped_ = 0, progress_ = 0;
  std::vector<Drop> drops_;
  std::set<uint64_t> telemetry_acked_, telemetry_failed_;
};

// Waits until `committed` events were acknowledged or reported dropped. Fails
// after `timeout`, or soon after nothing waits in the outbox any more (an
// event neither acknowledged nor reported dropped will never be).
bool WaitSettled(Acks& acks, jaiminho::Outbox& outbox, uint64_t committed, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    if (acks.WaitFor(committed, 200ms)) return true;
    auto metrics = jaiminho::CollectMetrics(outbox);
    if (!metrics) continue;
    uint64_t waiting = 0;
    for (const auto& m : *metrics)
      waiting += m.pending + m.retrying;
    // The observers run right after the delivery state is written: a moment's grace.
    if (waiting == 0) return acks.WaitFor(committed, 5s);
  }
  return false;
}

// One sensor's state, as stored in the "devices" family: "readings=N last=V alarm=0|1".
struct DeviceState {
  uint64_t readings = 0;
  double last = 0;
  bool alarm = false;
  std::string Encode() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "readings=%llu last=%.2f alarm=%d", static_cast<unsigned long long>(readings), last,
                  alarm ? 1 : 0);
    return buf;
  }
  static DeviceState Decode(const std::string& s) {
    DeviceState d;
    unsigned long long n = 0;
    int alarm = 0;
    if (std::sscanf(s.c_str(), "readings=%llu last=%lf alarm=%d", &n, &d.last, &alarm) == 3) {
      d.readings = n;
      d.alarm = alarm != 0;
    }
    return d;
  }
};

struct Gateway {
  jaiminho::Outbox* outbox;
  jaiminho::Stream* telemetry;
  jaiminho::Stream* device_state;
  Acks* acks;
  jaiminho::BusinessFamily devices;
  jaiminho::BusinessFamily readings;
  std::atomic<uint64_t> events{0};
  std::atomic<uint64_t> alarms{0};
  std::atomic<uint64_t> refused{0};          // commits refused by the quota, then retried
  std::atomic<uint64_t> telemetry_bytes{0};  // the events' own bytes (type, key, payload)
  std::mutex ids_mu{};
  std::map<uint64_t, std::string> telemetry_ids{};  // seq -> event id, committed by this run
  std::set<std::string> state_ids{};                // device-state event ids committed by this run

  // Commits `count` readings of sensor `id`, continuing from its stored state.
  jaiminho::Status RunSensor(int id, int count) {
    std::string device = "sensor-" + std::to_string(id);
    auto stored = outbox->Get(devices, device);
    if (!stored) return tl::unexpected(stored.error());
    DeviceState state = *stored ? DeviceState::Decode(**stored) : DeviceState{};
    for (int i = 0; i < count; ++i) {
      // A temperature that drifts across the 30 degree alarm threshold.
      double value = 25 + 8 * std::sin(static_cast<double>(state.readings) / 40.0 + id);
      bool alarm = value > 30;
      std::string payload = "{\"sensor\":\"" + device + "\",\"n\":" + std::to_string(state.readings) +
                            ",\"celsius\":" + std::to_string(value) + "}";
      bool flipped = alarm != state.alarm;
      DeviceState next{state.readings + 1, value, alarm};
      auto commit = [&]() -> jaiminho::Result<jaiminho::Receipt> {
        auto txn = outbox->Begin();
        jaiminho::Status st = txn.Put(readings, device + "/" + std::to_string(state.readings), payload);
        if (st)
          st = txn.Enqueue(*telemetry,
                           {.type = "reading.v1", .key = device, .payload = payload, .encoding = "application/json"});
        if (st && flipped) {
          st = txn.Enqueue(
              *device_state,
              {.type = "alarm.v1", .key = device, .payload = alarm ? "raised" : "cleared", .encoding = "text/plain"});
        }
        if (st) st = txn.Put(devices, device, next.Encode());
        if (!st) return tl::unexpected(st.error());
        return txn.Commit();  // sync: durable before it returns
      };
      uint64_t progress = acks->progress();
      auto receipt = commit();
      // Refused by the telemetry quota: even drop-oldest cannot drop the events
      // still queued for publish-on-commit. Nothing was written; try again when
      // a delivery has moved (acknowledged, failed or dropped).
      while (!receipt && receipt.error().code() == jaiminho::ErrorCode::kResourceExhausted &&
             acks->WaitProgress(progress, 10s)) {
        ++refused;
        progress = acks->progress();
        receipt = commit();
      }
      if (!receipt) return tl::unexpected(receipt.error());
      events += receipt->events.size();
      telemetry_bytes += std::string_view("reading.v1").size() + device.size() + payload.size();
      {
        std::lock_guard l(ids_mu);
        for (const auto& event : receipt->events) {
          if (event.stream == kTelemetry) {
            telemetry_ids.emplace(event.seq, event.ToString());
          } else {
            state_ids.insert(event.ToString());
          }
        }
      }
      if (flipped) ++alarms;
      state = next;
    }
    return {};
  }

  jaiminho::Status RunPhase(int sensors, int per_sensor) {
    std::vector<std::thread> threads;
    std::vector<jaiminho::Status> results(static_cast<size_t>(sensors));
    for (int s = 0; s < sensors; ++s)
      threads.emplace_back([&, s] { results[static_cast<size_t>(s)] = RunSensor(s, per_sensor); });
    for (auto& t : threads)
      t.join();
    for (auto& r : results)
      if (!r) return r;
    return {};
  }
};

void PrintBacklog(jaiminho::Outbox& outbox, const jaiminho::MqttPublisher& mqtt) {
  auto metrics = jaiminho::CollectMetrics(outbox);
  if (!metrics) return;
  for (const auto& m : *metrics) {
    std::printf("  %-12s waiting %6llu (pending %llu, retrying %llu)%s\n", m.stream.c_str(),
                static_cast<unsigned long long>(m.pending + m.retrying), static_cast<unsigned long long>(m.pending),
                static_cast<unsigned long long>(m.retrying), m.blocked ? "  blocked at its head" : "");
  }
  std::printf("  publisher: %s\n", mqtt.connected() ? "connected" : mqtt.last_error().c_str());
}

// One line: the quota, how many telemetry events were dropped and their seq
// ranges (adjacent reports merged; the first few).
void PrintDrops(const jaiminho::StreamQuota& quota, size_t committed, uint64_t dropped, std::vector<Drop> drops,
                uint64_t arrived, uint64_t refused) {
  std::sort(drops.begin(), drops.end(), [](const Drop& a, const Drop& b) { return a.first < b.first; });
  std::vector<Drop> merged;
  for (const Drop& d : drops) {
    if (!merged.empty() && d.first <= merged.back().last + 1) {
      merged.back().last = std::max(merged.back().last, d.last);
      merged.back().count += d.count;
    } else {
      merged.push_back(d);
    }
  }
  std::string ranges;
  for (size_t i = 0; i < merged.size() && i < 6; ++i) {
    ranges += (i ? ", " : "") + std::to_string(merged[i].first) + "-" + std::to_string(merged[i].last);
  }
  if (merged.size() > 6) ranges += ", ... (" + std::to_string(merged.size()) + " ranges)";
  std::printf(
      "quota: telemetry max %llu events, %llu bytes (0: none), drop-oldest: %llu of %zu committed dropped in %zu "
      "reports, seqs %s; %llu of the dropped had reached the cloud before their drop; %llu commits refused "
      "and retried\n",
      static_cast<unsigned long long>(quota.max_events), static_cast<unsigned long long>(quota.max_bytes),
      static_cast<unsigned long long>(dropped), committed, drops.size(), ranges.empty() ? "-" : ranges.c_str(),
      static_cast<unsigned long long>(arrived), static_cast<unsigned long long>(refused));
}

int Fail(const std::string& what) {
  std::cerr << "jaiminho-iot-gateway: " << what << "\n";
  return 1;
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  example::CommandLine cli("jaiminho-iot-gateway",
                           "[--db DIR] [--sensors N] [--readings N] [--broker HOST:PORT|URI] [--ca FILE] "
                           "[--cert FILE --key FILE] [--tls-demo DIR] [--metrics ADDR] [--quota-events N] "
                           "[--quota-bytes N]",
                           "Commits sensor readings with their events and relays them to MQTT over a link that\n"
                           "drops (without --broker: its own mosquitto, link up, down, back), then checks what\n"
                           "the cloud received.");
  cli.Option("--db", "DIR", "database directory (default var/iot-gateway.db)", [&](const std::string& v) { a.db = v; });
  cli.Option("--sensors", "N", "sensors committing readings (default 4)",
             [&](const std::string& v) { a.sensors = cli.Int("--sensors", v, 1); });
  cli.Option("--readings", "N", "readings in all, over the three phases (default 3000)",
             [&](const std::string& v) { a.readings = cli.Int("--readings", v, 3); });
  cli.Option("--broker", "HOST:PORT|URI", "a real broker instead of the built-in demo (mqtts://... for TLS)",
             [&](const std::string& v) { a.broker = v; });
  cli.Option("--ca", "FILE", "publish over TLS, trusting the broker certificates this CA signed",
             [&](const std::string& v) { a.ca = v; });
  cli.Option("--cert", "FILE", "client certificate for mutual TLS (with --key)",
             [&](const std::string& v) { a.cert = v; });
  cli.Option("--key", "FILE", "client certificate's key (with --cert)", [&](const std::string& v) { a.key = v; });
  cli.Option("--tls-demo", "DIR", "demo over mutual TLS with the certificates make-test-certs.sh made in DIR",
             [&](const std::string& v) { a.tls_demo = v; });
  cli.Option("--metrics", "ADDR", example::Metrics::kHelp, [&](const std::string& v) { a.metrics = v; });
  cli.Option(
      "--quota-events", "N",
      "telemetry keeps at most N events waiting for delivery, dropping the oldest (default: no limit)",
      [&](const std::string& v) { a.quota.max_events = static_cast<uint64_t>(cli.Int("--quota-events", v, 1)); });
  cli.Option("--quota-bytes", "N",
             "telemetry keeps at most N bytes of events waiting for delivery, dropping the oldest (default: no limit)",
             [&](const std::string& v) { a.quota.max_bytes = static_cast<uint64_t>(cli.Int("--quota-bytes", v, 1)); });
  cli.Parse(argc, argv);
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  const bool demo = args.broker.empty();
  std::filesystem::path db = args.db;
  std::filesystem::create_directories(db.parent_path().empty() ? "." : db.parent_path());

  // The broker: ours (demo), or the one given.
  std::unique_ptr<jaiminho::testing::MosquittoBroker> broker;
  std::unique_ptr<jaiminho::testing::MqttSubscriber> cloud;
  jaiminho::MqttOptions mqtt_options{.client_id = "iot-gateway-" + std::to_string(::getpid()),
                                     .topic = "gw/{stream}/{key}",
                                     .ack_timeout = 5s,
                                     .connect_timeout = 1s,
                                     .reconnect_min = 50ms,
                                     .reconnect_max = 1s};
  if (!args.tls_demo.empty()) {
    if (!demo) return Fail("--tls-demo is for the built-in demo broker, not with --broker");
    if (args.ca.empty()) args.ca = args.tls_demo + "/ca.pem";
    if (args.cert.empty()) args.cert = args.tls_demo + "/client.pem";
    if (args.key.empty()) args.key = args.tls_demo + "/client.key";
  }
  if (demo) {
    jaiminho::testing::MosquittoBrokerOptions broker_options{.dir = (db.parent_path() / "iot-broker").string()};
    if (!args.tls_demo.empty()) {
      broker_options.tls_ca_file = args.tls_demo + "/ca.pem";
      broker_options.tls_cert_file = args.tls_demo + "/server.pem";
      broker_options.tls_key_file = args.tls_demo + "/server.key";
      broker_options.tls_require_certificate = true;
    }
    auto started = jaiminho::testing::MosquittoBroker::Start(broker_options);
    if (!started) return Fail(started.error().ToString());
    broker = std::move(*started);
    mqtt_options.host = broker->host();
    mqtt_options.port = args.tls_demo.empty() ? broker->port() : broker->tls_port();
    // The cloud side: a persistent session, so what the broker queues for it
    // while it is offline survives the broker's restart.
    auto sub = jaiminho::testing::MqttSubscriber::Connect(
        {.port = broker->port(), .filter = "gw/#", .client_id = "cloud-" + std::to_string(::getpid())});
    if (!sub) return Fail(sub.error().ToString());
    cloud = std::move(*sub);
    std::printf("mosquitto on %s:%u (log and persistence in %s)\n", broker->host().c_str(), broker->port(),
                (db.parent_path() / "iot-broker").c_str());
    if (!args.tls_demo.empty()) {
      std::printf("  and with TLS on port %u, requiring a client certificate; the gateway publishes there\n",
                  broker->tls_port());
    }
  } else {
    // A URI as given; HOST:PORT as mqtts:// with --ca/--cert/--key (port default 8883), else mqtt://.
    const bool uri = args.broker.find("://") != std::string::npos;
    const bool tls_flags = !args.ca.empty() || !args.cert.empty() || !args.key.empty();
    auto parsed = jaiminho::ParseMqttUri(uri ? args.broker : (tls_flags ? "mqtts://" : "mqtt://") + args.broker);
    if (!parsed) return Fail(parsed.error().ToString());
    // The URI's options, with the example's own client id, topic and timeouts.
    parsed->client_id = mqtt_options.client_id;
    if (!uri) parsed->topic = mqtt_options.topic;
    parsed->ack_timeout = mqtt_options.ack_timeout;
    parsed->connect_timeout = mqtt_options.connect_timeout;
    parsed->reconnect_min = mqtt_options.reconnect_min;
    parsed->reconnect_max = mqtt_options.reconnect_max;
    mqtt_options = *parsed;
  }
  if (!args.ca.empty() || !args.cert.empty() || !args.key.empty()) {
    mqtt_options.tls = true;
    if (!args.ca.empty()) mqtt_options.ca_file = args.ca;
    if (!args.cert.empty()) mqtt_options.cert_file = args.cert;
    if (!args.key.empty()) mqtt_options.key_file = args.key;
  }
  auto mqtt = jaiminho::MqttPublisher::Create(mqtt_options);
  if (!mqtt) return Fail(mqtt.error().ToString());

  auto acks = std::make_shared<Acks>();
  jaiminho::OutboxOptions options{.path = db.string(),
                                  .business_families = {{.name = "devices"}, {.name = "readings"}}};
  options.publisher = *mqtt;  // publish-on-commit events go out right after their commit ...
  options.inline_dispatch = jaiminho::InlineDispatch::kDispatcherThread;  // ... without blocking it
  options.observers = {acks};
  // Quick retries for the demo; the defaults (1 s doubling to 5 min) suit a real uplink.
  options.retry = {.initial_backoff = 100ms, .max_backoff = 2s};
  auto outbox = jaiminho::Outbox::Open(std::move(options));
  if (!outbox) return Fail(outbox.error().ToString());
  // The quota is stored with the stream: an empty one removes an earlier run's.
  const bool quota = args.quota.max_events > 0 || args.quota.max_bytes > 0;
  auto telemetry = (*outbox)->OpenStream(
      std::string(kTelemetry),
      {.strategy = jaiminho::Strategy::kPublishOnCommit, .quota = quota ? args.quota : jaiminho::StreamQuota{}});
  auto device_state = (*outbox)->OpenStream("device-state", {.strategy = jaiminho::Strategy::kKeepOrder});
  if (!telemetry) return Fail(telemetry.error().ToString());
  if (!device_state) return Fail(device_state.error().ToString());
  Gateway gw{.outbox = outbox->get(),
             .telemetry = *telemetry,
             .device_state = *device_state,
             .acks = acks.get(),
             .devices = *(*outbox)->FindBusinessFamily("devices"),
             .readings = *(*outbox)->FindBusinessFamily("readings")};
  example::Metrics metrics;
  auto* publisher = mqtt->get();
  if (!metrics.Start(**outbox, args.metrics, [publisher] { return std::optional<bool>(publisher->connected()); })) {
    return 1;
  }

  // The relay delivers the keep-order stream and retries whatever failed.
  auto relay = jaiminho::Relay::Make(**outbox, *mqtt, {.interval = 200ms});
  if (!relay) return Fail(relay.error().ToString());
  (*relay)->Start();

  const int per_phase = std::max(1, args.readings / 3 / args.sensors);
  auto start = SteadyClock::now();
  std::printf("phase 1, link up: %d sensors x %d readings\n", args.sensors, per_phase);
  if (auto s = gw.RunPhase(args.sensors, per_phase); !s) return Fail(s.error().ToString());
  if (!WaitSettled(*acks, **outbox, gw.events, 60s)) return Fail("phase 1 was not acknowledged within 60 s");
  PrintBacklog(**outbox, **mqtt);

  if (demo) {
    std::printf("phase 2, link down (broker stopped): %d sensors x %d readings\n", args.sensors, per_phase);
    if (auto s = broker->Stop(); !s) return Fail(s.error().ToString());
  } else {
    std::printf("phase 2: %d sensors x %d readings\n", args.sensors, per_phase);
  }
  const uint64_t bytes_before_outage = gw.telemetry_bytes;
  if (auto s = gw.RunPhase(args.sensors, per_phase); !s) return Fail(s.error().ToString());
  const uint64_t outage_events = static_cast<uint64_t>(args.sensors) * static_cast<uint64_t>(per_phase);
  const uint64_t outage_bytes = gw.telemetry_bytes - bytes_before_outage;
  std::printf("  committed %llu events so far; buffered in the outbox:\n",
              static_cast<unsigned long long>(gw.events.load()));
  PrintBacklog(**outbox, **mqtt);

  auto back = SteadyClock::now();
  if (demo) {
    std::printf("phase 3, link back (broker restarted): %d sensors x %d readings\n", args.sensors, per_phase);
    if (auto s = broker->Restart(); !s) return Fail(s.error().ToString());
  } else {
    std::printf("phase 3: %d sensors x %d readings\n", args.sensors, per_phase);
  }
  if (auto s = gw.RunPhase(args.sensors, per_phase); !s) return Fail(s.error().ToString());
  const uint64_t total = gw.events;
  if (!WaitSettled(*acks, **outbox, total, 120s)) {
    PrintBacklog(**outbox, **mqtt);
    return Fail(
        "not every event was acknowledged or reported dropped (waited until nothing was left waiting, "
        "at most 120 s; " +
        std::to_string(acks->dropped()) + " reported dropped)");
  }
  auto drained = SteadyClock::now();
  (*relay)->Stop();
  const uint64_t dropped = acks->dropped();
  std::printf(
      "  all %llu events acknowledged by the broker or reported dropped (%llu) %.0f ms after the link came back\n",
      static_cast<unsigned long long>(total), static_cast<unsigned long long>(dropped),
      std::chrono::duration<double, std::milli>(drained - back).count());
  PrintBacklog(**outbox, **mqtt);

  int status = 0;
  // Telemetry's account: each event of this run acknowledged or reported
  // dropped, never both, and what is missing lies in the reported ranges.
  const std::vector<Drop> drops = acks->drops();
  const std::set<uint64_t> telemetry_acked = acks->telemetry_acked();
  auto in_drops = [&](uint64_t seq, bool whole_only) {
    return std::any_of(drops.begin(), drops.end(), [&](const Drop& d) {
      return seq >= d.first && seq <= d.last && (!whole_only || d.count == d.last - d.first + 1);
    });
  };
  std::set<uint64_t> unacked;  // this run's telemetry seqs never acknowledged: the dropped ones
  for (const auto& [seq, id] : gw.telemetry_ids)
    if (!telemetry_acked.contains(seq)) unacked.insert(seq);
  const uint64_t acked_run = gw.telemetry_ids.size() - unacked.size();
  if (unacked.size() != dropped) {
    std::printf(
        "CHECK FAILED: telemetry: %zu committed, %llu acknowledged, %llu reported dropped: they do not add up\n",
        gw.telemetry_ids.size(), static_cast<unsigned long long>(acked_run), static_cast<unsigned long long>(dropped));
    status = 1;
  }
  for (uint64_t seq : unacked) {
    if (!in_drops(seq, false)) {
      std::printf("CHECK FAILED: telemetry seq %llu was neither acknowledged nor in a reported drop\n",
                  static_cast<unsigned long long>(seq));
      status = 1;
      break;
    }
  }
  for (uint64_t seq : telemetry_acked) {
    if (in_drops(seq, true)) {
      std::printf("CHECK FAILED: telemetry seq %llu was acknowledged and reported dropped\n",
                  static_cast<unsigned long long>(seq));
      status = 1;
      break;
    }
  }
  const bool over_events = args.quota.max_events > 0 && outage_events > args.quota.max_events;
  const bool over_bytes = args.quota.max_bytes > 0 && outage_bytes > args.quota.max_bytes;
  if (demo && (over_events || over_bytes) && dropped == 0) {
    std::printf(
        "CHECK FAILED: the outage committed %llu telemetry events of %llu bytes, over the quota, and none "
        "was reported dropped\n",
        static_cast<unsigned long long>(outage_events), static_cast<unsigned long long>(outage_bytes));
    status = 1;
  }
  uint64_t arrived_dropped = 0;  // dropped ones the cloud received anyway
  if (demo) {
    // What the cloud saw: every event (by id), device-state in seq order.
    auto seq_of = [](const std::string& id) {
      uint64_t seq = 0;
      std::from_chars(id.data() + id.rfind('/') + 1, id.data() + id.size(), seq);
      return seq;
    };
    // Expected: every device-state event and every acknowledged telemetry one.
    std::set<std::string> expected = gw.state_ids;
    for (const auto& [seq, id] : gw.telemetry_ids)
      if (!unacked.contains(seq)) expected.insert(id);
    std::set<std::string> ids;
    bool complete = cloud->WaitUntil(
        [&](const auto& msgs) {
          ids.clear();
          for (const auto& m : msgs)
            ids.insert(m.Property("jaiminho-event-id").value_or(""));
          return std::includes(ids.begin(), ids.end(), expected.begin(), expected.end());
        },
        60s);
    if (!complete) {
      std::vector<std::string> missing;
      std::set_difference(expected.begin(), expected.end(), ids.begin(), ids.end(), std::back_inserter(missing));
      std::printf("CHECK FAILED: the cloud is missing %zu events that were not reported dropped, the first %s\n",
                  missing.size(), missing.empty() ? "-" : missing.front().c_str());
    }
    // A dropped event the cloud received must have been sent before its drop.
    const std::set<uint64_t> failed = acks->telemetry_failed();
    for (uint64_t seq : unacked) {
      if (!ids.contains(gw.telemetry_ids[seq])) continue;
      ++arrived_dropped;
      if (!failed.contains(seq)) {
        std::printf("CHECK FAILED: dropped telemetry seq %llu reached the cloud but was never sent\n",
                    static_cast<unsigned long long>(seq));
        status = 1;
      }
    }
    auto msgs = cloud->messages();
    uint64_t contiguous = 0, first_state_seq = 0;
    bool in_order = true;
    for (const auto& m : msgs) {
      std::string id = m.Property("jaiminho-event-id").value_or("");
      if (id.find("/device-state/") == std::string::npos) continue;
      uint64_t seq = seq_of(id);
      if (first_state_seq == 0) contiguous = (first_state_seq = seq) - 1;  // earlier runs may precede
      if (seq > contiguous + 1) in_order = false;
      if (seq == contiguous + 1) contiguous = seq;
    }
    std::printf(
        "cloud: %zu messages, %zu distinct events of %llu committed, %llu dropped (%zu duplicates), alarms %llu, "
        "device-state %s\n",
        msgs.size(), ids.size(), static_cast<unsigned long long>(total), static_cast<unsigned long long>(dropped),
        msgs.size() - ids.size(), static_cast<unsigned long long>(gw.alarms.load()),
        in_order ? "in order" : "OUT OF ORDER");
    if (!complete || !in_order) status = 1;
  }
  if (quota || dropped > 0)
    PrintDrops(args.quota, gw.telemetry_ids.size(), dropped, drops, arrived_dropped, gw.refused);
  auto dev = (*outbox)->Get(gw.devices, "sensor-0");
  if (dev && *dev) std::printf("device sensor-0: %s\n", (*dev)->c_str());
  std::printf("%s in %.1f s; database %s\n", status == 0 ? "OK" : "FAILED",
              std::chrono::duration<double>(SteadyClock::now() - start).count(), db.c_str());
  metrics.HoldUntilStdinCloses();
  if (auto s = (*outbox)->Close(); !s) return Fail(s.error().ToString());
  return status;
}
