#include "adapters/mqtt_tls.h"

#include <fmt/format.h>
#include <mosquitto.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace jaiminho::internal {
namespace {

// Fails unless `path` is a readable file (or, with `directory`, a directory).
Status CheckReadable(std::string_view options_name, std::string_view option, const std::string& path, bool directory) {
  if (::access(path.c_str(), R_OK | (directory ? X_OK : 0)) != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}::{}: cannot read '{}': {}", options_name, option, path, std::strerror(errno)));
  }
  return {};
}

}  // namespace

Result<std::string> ReadMqttSecret(std::string_view options_name, std::string_view option, const std::string& value,
                                   const std::string& file, const std::string& env) {
  if (int(!value.empty()) + int(!file.empty()) + int(!env.empty()) > 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{0}: set only one of {1}, {1}_file and {1}_env", options_name, option));
  }
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream content;
    if (in) content << in.rdbuf();
    if (!in || in.bad()) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}::{}_file: cannot read '{}': {}", options_name,
                                                                option, file, std::strerror(errno)));
    }
    std::string secret = content.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
      secret.pop_back();
    return secret;
  }
  if (!env.empty()) {
    const char* v = std::getenv(env.c_str());  // NOLINT(concurrency-mt-unsafe): read once, at Create/Start
    if (v == nullptr) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}::{}_env: environment variable '{}' is not set", options_name, option, env));
    }
    return std::string(v);
  }
  return value;
}

Status ResolveMqttTls(std::string_view options_name, MqttTlsSettings& o) {
  auto invalid = [&](const std::string& msg) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}::{}", options_name, msg));
  };
  auto key_password =
      ReadMqttSecret(options_name, "key_password", o.key_password, o.key_password_file, o.key_password_env);
  if (!key_password) return tl::unexpected(key_password.error());
  o.key_password = std::move(*key_password);
  if (!o.tls) {
    for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"ca_file", o.ca_file},
                                      {"ca_path", o.ca_path},
                                      {"cert_file", o.cert_file},
                                      {"key_file", o.key_file},
                                      {"key_password", o.key_password},
                                      {"tls_version", o.tls_version},
                                      {"alpn", o.alpn}}) {
      if (!value.empty()) return invalid(fmt::format("{} is set but tls is false (use mqtts:// or tls=1)", name));
    }
    return {};
  }
  if (o.cert_file.empty() != o.key_file.empty()) {
    return invalid(o.cert_file.empty() ? "key_file is set without cert_file (mutual TLS needs both)"
                                       : "cert_file is set without key_file (mutual TLS needs both)");
  }
  if (!o.key_password.empty() && o.key_file.empty()) return invalid("key_password is set without key_file");
  for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"ca_file", o.ca_file},
                                    {"cert_file", o.cert_file},
                                    {"key_file", o.key_file}}) {
    if (value.empty()) continue;
    if (Status st = CheckReadable(options_name, name, value, false); !st) return st;
  }
  if (!o.ca_path.empty()) {
    if (Status st = CheckReadable(options_name, "ca_path", o.ca_path, true); !st) return st;
  }
  if (!o.tls_version.empty() && o.tls_version != "tlsv1.2" && o.tls_version != "tlsv1.3") {
    return invalid(fmt::format("tls_version = '{}': must be tlsv1.2, tlsv1.3 or empty", o.tls_version));
  }
  if (o.alpn.size() > 255) return invalid("alpn is longer than 255 bytes");
  return {};
}

int CopyMqttKeyPassword(const std::string& password, char* buf, int size) {
  if (size <= 0 || password.size() >= static_cast<size_t>(size)) return 0;
  std::memcpy(buf, password.c_str(), password.size() + 1);
  return static_cast<int>(password.size());
}

std::string SetUpMqttTls(mosquitto* m, const MqttTlsSettings& o, MqttKeyPasswordCallback key_password_callback,
                         const std::string& endpoint, std::string_view options_name) {
  if (!o.tls) return {};
  auto path = [](const std::string& p) { return p.empty() ? nullptr : p.c_str(); };
  int rc = MOSQ_ERR_SUCCESS;
  if (o.ca_file.empty() && o.ca_path.empty()) rc = mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
  if (rc == MOSQ_ERR_SUCCESS) {
    rc = mosquitto_tls_set(m, path(o.ca_file), path(o.ca_path), path(o.cert_file), path(o.key_file),
                           o.key_password.empty() ? nullptr : key_password_callback);
  }
  if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_opts_set(m, 1, path(o.tls_version), nullptr);
  if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_insecure_set(m, !o.verify_hostname);
  if (rc == MOSQ_ERR_SUCCESS && !o.alpn.empty()) rc = mosquitto_string_option(m, MOSQ_OPT_TLS_ALPN, o.alpn.c_str());
  if (rc == MOSQ_ERR_SUCCESS) return {};
  return fmt::format(
      "cannot set up TLS for MQTT broker {}: {} (check {} ca_file, ca_path, cert_file, key_file, tls_version, alpn)",
      endpoint, rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc), options_name);
}

std::string MqttConnectError(const MqttTlsSettings& o, const std::string& host, const std::string& endpoint,
                             std::string plain, int rc, const std::string& logged_error) {
  if (!o.tls || (rc != MOSQ_ERR_TLS && logged_error.empty())) return plain;
  std::string reason = logged_error.empty() ? mosquitto_strerror(rc) : logged_error;
  std::string check;
  if (reason.starts_with("Error: ")) reason.erase(0, 7);
  if (reason.find("host name verification failed") != std::string::npos) {
    check = fmt::format(
        "the broker's certificate does not name '{}': connect by a name or address its subjectAltName holds "
        "(verify_hostname = false skips this check, insecurely)",
        host);
  } else if (reason.find("certificate verify failed") != std::string::npos) {
    check = fmt::format(
        "the broker's certificate was not accepted: check that ca_file/ca_path hold the CA that signed it, that it "
        "has not expired, and that it names '{}' (verify_hostname)",
        host);
  } else if (reason.find("alert") != std::string::npos) {
    check =
        "the broker ended the handshake: check cert_file/key_file (a client certificate it trusts), tls_version "
        "and alpn";
  } else {
    check = "check ca_file, ca_path, cert_file, key_file, key_password, tls_version and alpn";
  }
  return fmt::format("TLS connection to MQTT broker {} failed: {} ({})", endpoint, reason, check);
}

std::string MqttClosedBeforeConnackError(const MqttTlsSettings& o, const std::string& host, const std::string& endpoint,
                                         std::string plain, int rc, const std::string& logged_error) {
  if (!o.tls || rc == MOSQ_ERR_TLS || !logged_error.empty()) {
    return MqttConnectError(o, host, endpoint, std::move(plain), rc, logged_error);
  }
  return fmt::format(
      "TLS connection to MQTT broker {} failed: {}, with no TLS alert read (a broker that requires a client "
      "certificate closes so when it refuses ours: check cert_file/key_file (a client certificate it trusts), "
      "tls_version and alpn)",
      endpoint, plain);
}

}  // namespace jaiminho::internal
