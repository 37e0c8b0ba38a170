#!/usr/bin/env bash
# Metrics a scraper can reach: the IoT gateway example runs with --metrics on a
# free port; once its run is done it keeps serving (until its stdin closes),
# and /metrics must pass `promtool check metrics` (Debian's prometheus
# package: no lint warning either) and /healthz must answer 200 "ok". Then
# `jaiminho-tool stats --prometheus --output FILE` on the same database, read
# while the example still has it open, must pass promtool too. HTTP is fetched
# with bash's /dev/tcp (no curl needed).
set -euo pipefail
gateway="$BUILD_DIR/examples/iot_gateway/jaiminho-iot-gateway"
if ! grep -q '^JAIMINHO_WITH_METRICS_HTTP:BOOL=ON' "$BUILD_DIR/CMakeCache.txt" || [ ! -x "$gateway" ]; then
  echo "metrics: skipped (no metrics server or no MQTT example in this build)"
  exit 0
fi
command -v promtool >/dev/null || { echo "promtool is missing (.ci/install-deps installs prometheus)"; exit 1; }
run="$BUILD_DIR/metrics-run"
rm -rf "$run"
mkdir -p "$run"

# GET http://127.0.0.1:PORT/PATH; the status line to $run/status, the body to stdout.
http_get() {  # port path
  local response
  exec 5<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&5
  response=$(cat <&5)
  exec 5<&-
  printf '%s\n' "$response" | head -1 | tr -d '\r' >"$run/status"
  printf '%s\n' "$response" | sed '1,/^\r$/d'
}

# The example's stdin is a FIFO this script holds open: closing it ends the example.
mkfifo "$run/stdin"
"$gateway" --db "$run/gateway.db" --readings 300 --metrics 127.0.0.1:0 <"$run/stdin" >"$run/gateway.out" 2>&1 &
pid=$!
exec 6>"$run/stdin"
finish() { exec 6>&- 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap finish EXIT

# Wait (at most 120 s) until the run is done and the server still serves.
for _ in $(seq 1200); do
  grep -q '^metrics: still serving' "$run/gateway.out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$run/gateway.out"; echo "the gateway exited early"; exit 1; }
  sleep 0.1
done
grep -q '^metrics: still serving' "$run/gateway.out" || { cat "$run/gateway.out"; echo "no metrics in 120 s"; exit 1; }
port=$(sed -n 's|^metrics: http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$run/gateway.out")
[[ -n "$port" ]] || { cat "$run/gateway.out"; echo "no metrics port printed"; exit 1; }

http_get "$port" /metrics >"$run/metrics.txt"
[[ "$(cat "$run/status")" == "HTTP/1.1 200 OK" ]] || { echo "/metrics: $(cat "$run/status")"; exit 1; }
promtool check metrics <"$run/metrics.txt"
for family in commit_to_publish_seconds_bucket publish_duration_seconds_count publisher_connected disk_bytes \
  build_info published_events_total; do
  grep -q "^jaiminho_$family" "$run/metrics.txt" || { echo "/metrics has no jaiminho_$family"; exit 1; }
done
[[ "$(http_get "$port" /healthz)" == "ok" && "$(cat "$run/status")" == "HTTP/1.1 200 OK" ]] ||
  { echo "/healthz: $(cat "$run/status")"; exit 1; }
http_get "$port" /nothing-here >/dev/null
[[ "$(cat "$run/status")" == "HTTP/1.1 404 Not Found" ]] || { echo "/nothing-here: $(cat "$run/status")"; exit 1; }

"$BUILD_DIR/tools/jaiminho-tool" stats "$run/gateway.db" --prometheus --output "$run/textfile/jaiminho.prom" 2>"$run/stats.err" &&
  { echo "stats --output into a missing directory succeeded"; exit 1; }
grep -q "$run/textfile/jaiminho.prom" "$run/stats.err" || { cat "$run/stats.err"; echo "the error does not name the file"; exit 1; }
mkdir -p "$run/textfile"
"$BUILD_DIR/tools/jaiminho-tool" stats "$run/gateway.db" --prometheus --output "$run/textfile/jaiminho.prom"
promtool check metrics <"$run/textfile/jaiminho.prom"

exec 6>&-
wait "$pid"
trap - EXIT
grep '^jaiminho_commit_to_publish_seconds_count\|^jaiminho_publisher_connected\|^jaiminho_disk_bytes' "$run/metrics.txt"
echo "metrics: /metrics ($(grep -vc '^#' "$run/metrics.txt") samples) and stats --output pass promtool; /healthz ok"
