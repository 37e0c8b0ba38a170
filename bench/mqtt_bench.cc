// End to end: a backlog delivered to a real mosquitto broker on loopback at
// QoS 1, against a plain libmosquitto program publishing the same messages
// with the same in-flight window.
//
//   e2e/mqtt/{ours,plain}/events:N         broker with set_tcp_nodelay true
//   e2e/mqtt_nagle/{ours,plain}/events:N   broker with its default (Nagle's algorithm on)
//
// ours:  Relay::RunOnce() of a backlog of N committed events (mark-sent,
//        default RelayOptions: batches of 256) through MqttPublisher with
//        max_inflight = 256 (topic "bench/{stream}", the event id as a user
//        property, as by default).
// plain: one thread, one libmosquitto client (MQTT 5, TCP_NODELAY, send
//        maximum 256): publishes the same payloads to the same topic with a
//        user property of the same size while fewer than 256 await their
//        PUBACK, and runs mosquitto_loop until every PUBACK is in.
// Both connect before the timed part; the broker (/usr/sbin/mosquitto, no
// persistence, no subscriber) is started by the benchmark. With mosquitto's
// default set_tcp_nodelay false, the broker holds each PUBACK behind an
// unacknowledged one until the client's TCP ACK, which Linux delays up to 40 ms:
// a publisher that waits for a whole batch to be acknowledged before sending
// more stalled once per batch (0.06x) until MqttPublisher acknowledged at once
// (TCP_QUICKACK); the _nagle pair shows that case, the targets apply to the
// nodelay pair.
// The broker is a child process, not in the process measured. Counters: cpu_us (user + system CPU time of the whole
// benchmark process, getrusage(RUSAGE_SELF), per delivered event: every
// thread of ours — relay, MQTT network loop, RocksDB — is in it) and
// cs (voluntary + involuntary context switches of the process per event).
// Ratios: e2e_mqtt_vs_plain (throughput, > 1 means jaiminho is faster) and
// e2e_mqtt_cpu_plain_vs_ours (plain's CPU per event / ours: > 1 means
// jaiminho uses less CPU per event), and the same with the _nagle broker.
//
// When the MQTT adapter is not built or /usr/sbin/mosquitto is missing, the
// benchmarks are not registered and a `SKIP` line says why.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "harness.h"
#include "report.h"

#ifdef JBENCH_WITH_MQTT
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "adapters/testing/mosquitto_broker.h"
#include "jaiminho/adapters/mqtt.h"
#endif

namespace jbench {

#ifdef JBENCH_WITH_MQTT
namespace {

constexpr uint32_t kWindow = 256;
constexpr const char* kBrokerBinary = "/usr/sbin/mosquitto";

struct Usage {
  double cpu = 0;  // seconds
  double cs = 0;   // context switches
};
Usage ProcessUsage() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return {.cpu = sec(u.ru_utime) + sec(u.ru_stime), .cs = static_cast<double>(u.ru_nvcsw + u.ru_nivcsw)};
}

std::unique_ptr<jaiminho::testing::MosquittoBroker> StartBroker(std::string_view name, bool nodelay) {
  auto broker = jaiminho::testing::MosquittoBroker::Start(
      {.dir = FreshDir(name), .persistence = false, .extra_config = nodelay ? "set_tcp_nodelay true\n" : ""});
  if (!broker) Die("start mosquitto: " + broker.error().ToString());
  return std::move(*broker);
}

void SetUsage(benchmark::State& st, const Usage& total, size_t events) {
  const double n = static_cast<double>(events);
  st.counters["cpu_us"] = total.cpu * 1e6 / n;
  st.counters["cs"] = total.cs / n;
}

void MqttOurs(benchmark::State& st, size_t n, bool nodelay) {
  auto broker = StartBroker("e2e-broker-ours", nodelay);
  Usage total;
  for (auto _ : st) {
    auto ours = OpenOurs("e2e-ours");
    FillOurs(*ours, n);
    WaitForBackgroundWork(ours->outbox->db());
    auto mqtt =
        Check(jaiminho::MqttPublisher::Create(
                  {.host = broker->host(), .port = broker->port(), .topic = "bench/{stream}", .max_inflight = kWindow}),
              "mqtt publisher");
    if (!mqtt->WaitConnected(std::chrono::seconds(10))) Die("mqtt: not connected: " + mqtt->last_error());
    auto relay = Check(jaiminho::Relay::Make(*ours->outbox, mqtt), "relay");
    const Usage u0 = ProcessUsage();
    auto t0 = std::chrono::steady_clock::now();
    jaiminho::RelayStats stats = Check(relay->RunOnce(), "relay");
    st.SetIterationTime(SecondsSince(t0));
    const Usage u1 = ProcessUsage();
    total.cpu += u1.cpu - u0.cpu;
    total.cs += u1.cs - u0.cs;
    if (stats.published != n) Die(fmt::format("e2e relay published {} of {}", stats.published, n));
  }
  SetUsage(
      st,
      {.cpu = total.cpu / static_cast<double>(st.iterations()), .cs = total.cs / static_cast<double>(st.iterations())},
      n);
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * n));
}

// The plain client's state, reached from libmosquitto's callbacks.
struct Plain {
  bool connected = false;
  int connect_rc = -1;
  size_t acked = 0;
  size_t failed = 0;
};

void MqttPlain(benchmark::State& st, size_t n, bool nodelay) {
  auto broker = StartBroker("e2e-broker-plain", nodelay);
  Usage total;
  for (auto _ : st) {
    Plain plain;
    mosquitto* m = mosquitto_new(fmt::format("jbench-plain-{}", getpid()).c_str(), true, &plain);
    if (m == nullptr) Die("mosquitto_new failed");
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, static_cast<int>(kWindow));
    mosquitto_connect_v5_callback_set(m, [](mosquitto*, void* p, int rc, int, const mosquitto_property*) {
      static_cast<Plain*>(p)->connected = rc == 0;
      static_cast<Plain*>(p)->connect_rc = rc;
    });
    mosquitto_publish_v5_callback_set(m, [](mosquitto*, void* p, int /*mid*/, int reason, const mosquitto_property*) {
      ++static_cast<Plain*>(p)->acked;
      if (reason >= 0x80) ++static_cast<Plain*>(p)->failed;
    });
    if (mosquitto_connect_bind_v5(m, broker->host().c_str(), broker->port(), 30, nullptr, nullptr) !=
        MOSQ_ERR_SUCCESS) {
      Die("plain: connect failed");
    }
    while (plain.connect_rc < 0) {
      if (mosquitto_loop(m, 1000, 1) != MOSQ_ERR_SUCCESS) Die("plain: loop failed while connecting");
    }
    if (!plain.connected) Die(fmt::format("plain: broker refused: {}", plain.connect_rc));
    const std::string topic = fmt::format("bench/{}", kStream);
    // A user property as ours sends: the id property name and a 36-byte id.
    const std::string id_name = "jaiminho-event-id";
    const Usage u0 = ProcessUsage();
    auto t0 = std::chrono::steady_clock::now();
    size_t sent = 0;
    while (plain.acked < n) {
      while (sent < n && sent - plain.acked < kWindow) {
        mosquitto_property* props = nullptr;
        const std::string id = fmt::format("{:036d}", sent);
        mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, id_name.c_str(), id.c_str());
        std::string_view payload = Payload(sent);
        int rc = mosquitto_publish_v5(m, nullptr, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 1,
                                      false, props);
        mosquitto_property_free_all(&props);
        if (rc != MOSQ_ERR_SUCCESS) Die(fmt::format("plain: publish: {}", mosquitto_strerror(rc)));
        ++sent;
      }
      if (int rc = mosquitto_loop(m, 1000, 1); rc != MOSQ_ERR_SUCCESS) {
        Die(fmt::format("plain: loop: {}", mosquitto_strerror(rc)));
      }
    }
    st.SetIterationTime(SecondsSince(t0));
    const Usage u1 = ProcessUsage();
    total.cpu += u1.cpu - u0.cpu;
    total.cs += u1.cs - u0.cs;
    if (plain.failed > 0) Die(fmt::format("plain: {} PUBACKs with an error", plain.failed));
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
  }
  SetUsage(
      st,
      {.cpu = total.cpu / static_cast<double>(st.iterations()), .cs = total.cs / static_cast<double>(st.iterations())},
      n);
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * n));
}

}  // namespace

void RegisterMqttBenchmarks() {
  Report& report = Report::Get();
  if (access(kBrokerBinary, X_OK) != 0) {
    report.Skip(fmt::format("e2e/mqtt: {} is not installed (Debian package mosquitto)", kBrokerBinary));
    return;
  }
  mosquitto_lib_init();
  const size_t n = config().mqtt_events;
  for (bool nodelay : {true, false}) {
    const char* broker = nodelay ? "" : "_nagle";
    const std::string ours = fmt::format("e2e/mqtt{}/ours/events:{}", broker, n);
    const std::string plain = fmt::format("e2e/mqtt{}/plain/events:{}", broker, n);
    for (auto* b : {benchmark::RegisterBenchmark(ours.c_str(), MqttOurs, n, nodelay),
                    benchmark::RegisterBenchmark(plain.c_str(), MqttPlain, n, nodelay)}) {
      b->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
    }
    const std::string section =
        fmt::format("End to end: {} events of {} bytes to mosquitto on loopback, QoS 1, window {}, broker {}",
                    ShortCount(n), config().payload, kWindow, nodelay ? "set_tcp_nodelay true" : "default (Nagle on)");
    report.Compare({.name = fmt::format("e2e_mqtt{}_vs_plain", broker),
                    .section = section,
                    .ours = ours,
                    .baseline = plain,
                    .label = "relay + MqttPublisher / plain libmosquitto client (events/s)",
                    .target = nodelay ? std::optional<double>(0.9) : std::nullopt});
    report.Compare({.name = fmt::format("e2e_mqtt{}_cpu_plain_vs_ours", broker),
                    .section = section,
                    .ours = ours,
                    .baseline = plain,
                    .label = "CPU µs per event: plain / ours (> 1: ours uses less)",
                    .target = nodelay ? std::optional<double>(1 / 1.2) : std::nullopt,
                    .counter = "cpu_us",
                    .lower_is_better = true});
    report.Table({.title = section,
                  .columns = {{"items_per_second", "events/s"},
                              {"cpu_us", "CPU µs per event"},
                              {"cs", "context switches per event"}},
                  .rows = {{"ours: Relay + MqttPublisher", ours}, {"plain libmosquitto client", plain}}});
  }
}

#else  // JBENCH_WITH_MQTT

void RegisterMqttBenchmarks() {
  Report::Get().Skip("e2e/mqtt: the MQTT adapter is not built (JAIMINHO_WITH_MQTT=OFF: install libmosquitto-dev)");
}

#endif  // JBENCH_WITH_MQTT

}  // namespace jbench
