// TLS for the MQTT adapters, shared by MqttPublisher (adapters/mqtt.cc) and
// MqttConsumer (adapters/mqtt_consumer.cc): MqttOptions and
// MqttConsumerOptions carry the same TLS fields (tls, ca_file, ca_path,
// cert_file, key_file, key_password[_file|_env], tls_version,
// verify_hostname, alpn); MqttTlsSettingsOf copies them into one struct that
// the functions below validate, apply to a libmosquitto handle, and use to
// explain a failed TLS connection.
#pragma once

#include <string>
#include <string_view>

#include "jaiminho/result.h"

struct mosquitto;

namespace jaiminho::internal {

struct MqttTlsSettings {
  bool tls = false;
  std::string ca_file{};
  std::string ca_path{};
  std::string cert_file{};
  std::string key_file{};
  std::string key_password{};  // resolved (ResolveMqttTls): the pass phrase itself
  std::string key_password_file{};
  std::string key_password_env{};
  std::string tls_version{};
  bool verify_hostname = true;
  std::string alpn{};
};

// The TLS fields of MqttOptions or MqttConsumerOptions.
template <class Options>
MqttTlsSettings MqttTlsSettingsOf(const Options& o) {
  return MqttTlsSettings{.tls = o.tls,
                         .ca_file = o.ca_file,
                         .ca_path = o.ca_path,
                         .cert_file = o.cert_file,
                         .key_file = o.key_file,
                         .key_password = o.key_password,
                         .key_password_file = o.key_password_file,
                         .key_password_env = o.key_password_env,
                         .tls_version = o.tls_version,
                         .verify_hostname = o.verify_hostname,
                         .alpn = o.alpn};
}

// A secret given directly, read from a file (its content without a trailing
// newline) or from an environment variable; at most one of the three.
// kInvalidArgument naming `options_name`::option and the file or variable.
[[nodiscard]] Result<std::string> ReadMqttSecret(std::string_view options_name, std::string_view option,
                                                 const std::string& value, const std::string& file,
                                                 const std::string& env);

// Reads the key password (into key_password) and validates the TLS settings:
// none set without tls; cert_file and key_file both or neither; the files
// readable; tls_version; alpn. kInvalidArgument "<options_name>::<field>: ...".
[[nodiscard]] Status ResolveMqttTls(std::string_view options_name, MqttTlsSettings& tls);

// The callback OpenSSL calls for an encrypted key's pass phrase, as
// libmosquitto passes it on (its last argument is the mosquitto handle).
using MqttKeyPasswordCallback = int (*)(char* buf, int size, int rwflag, void* mosq);

// Copies `password` into OpenSSL's buffer: its length, or 0 when it does not fit.
int CopyMqttKeyPassword(const std::string& password, char* buf, int size);

// Sets up TLS on `m` when tls.tls (nothing otherwise): CA file/path or the
// system's trust store, the client certificate (with `key_password_callback`
// when key_password is set), the minimum version, host name checking and
// ALPN. "" on success, else "cannot set up TLS for MQTT broker <endpoint>:
// <why> (check <options_name> ...)".
std::string SetUpMqttTls(mosquitto* m, const MqttTlsSettings& tls, MqttKeyPasswordCallback key_password_callback,
                         const std::string& endpoint, std::string_view options_name);

// The error of a failed connection attempt: `plain`, unless TLS is on and it
// failed in TLS (rc MOSQ_ERR_TLS, or libmosquitto logged an error,
// `logged_error`, OpenSSL's reason): then "TLS connection to MQTT broker
// <endpoint> failed: <reason> (<what to check>)".
std::string MqttConnectError(const MqttTlsSettings& tls, const std::string& host, const std::string& endpoint,
                             std::string plain, int rc, const std::string& logged_error);

// The error of a connection the broker closed before its CONNACK: as
// MqttConnectError, and with TLS on but no TLS error read, a TLS failure too:
// "TLS connection to MQTT broker <endpoint> failed: <plain> (...)". Under TLS
// 1.3 the client's side of the handshake ends before the broker checks the
// client's certificate; a broker that refuses it sends an alert and closes,
// and the reset our CONNECT then draws can discard the alert, so the read sees
// only EPROTO or a lost connection, with nothing logged.
std::string MqttClosedBeforeConnackError(const MqttTlsSettings& tls, const std::string& host,
                                         const std::string& endpoint, std::string plain, int rc,
                                         const std::string& logged_error);

}  // namespace jaiminho::internal
