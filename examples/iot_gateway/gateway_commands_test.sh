#!/usr/bin/env bash
# The gateway's commands pipeline, end to end (issue 19; ctest
# Examples.GatewayCommands, label examples): jaiminho-gateway-commands with its
# duplicates injected (a resent prefix, a broker restart, the gateway process
# SIGKILLed and started again), once over plain MQTT and once over mutual TLS
# (test certificates made by make-test-certs.sh). The program checks every command applied exactly once,
# in order, and that duplicates were dropped; it exits non-zero otherwise.
#
#   examples/iot_gateway/gateway_commands_test.sh BINARY MAKE_TEST_CERTS [WORKDIR]
#
# Without WORKDIR: a temp dir, removed when the test passes, kept when it fails.
set -euo pipefail
binary=${1:?usage: gateway_commands_test.sh BINARY MAKE_TEST_CERTS [WORKDIR]}
make_certs=${2:?usage: gateway_commands_test.sh BINARY MAKE_TEST_CERTS [WORKDIR]}
if [[ -n ${3:-} ]]; then
  dir=$3
  rm -rf "$dir"
  mkdir -p "$dir"
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/jm-gwcmd.XXXXXX")
fi
summary() {  # log: the summary line must report duplicates dropped (> 0) and every command applied once
  grep -Eq 'duplicates dropped [1-9][0-9]*' "$1" || { echo "no duplicates dropped in $1"; exit 1; }
  grep -q '^OK in ' "$1" || { echo "no OK in $1"; exit 1; }
}
"$binary" --db "$dir/plain" | tee "$dir/plain.log"
summary "$dir/plain.log"
bash "$make_certs" "$dir/certs" >/dev/null
"$binary" --db "$dir/tls" --tls-demo "$dir/certs" | tee "$dir/tls.log"
summary "$dir/tls.log"
[[ -n ${3:-} ]] || rm -rf "$dir"
echo "gateway_commands_test: OK"
