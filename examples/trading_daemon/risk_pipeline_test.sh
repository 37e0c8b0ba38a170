#!/usr/bin/env bash
# The trading daemon's fills consumed by a second process, jaiminho-risk,
# through the daemon's Kafka mock cluster, with duplicates injected for real
# (issue 19; run by .ci/steps/60-run-examples.sh and as the ctest
# Examples.TradingRiskPipeline, label examples):
#
#   1. the daemon commits fills and relays them to Kafka (its mock cluster,
#      whose bootstrap servers it writes to a file and keeps up until SIGTERM);
#   2. risk #1 consumes them into its own database (KafkaConsumer + Inbox,
#      positions per symbol) and is SIGKILLed mid-stream, after a random number
#      of fills (it re-reads from its group's last committed offset);
#   3. risk #2 first rewinds the group's committed offset by REWIND fills
#      (--rewind: a replayed prefix), then consumes to the daemon's last fill;
#   4. checks: risk #2 dropped duplicates (>= REWIND) and says OK (every fill of
#      its database applied once, in seq order); its positions per symbol
#      (fills, volume, notional, net) equal what the daemon's stored fills imply
#      (jaiminho-tool dump of the daemon's database); the daemon's own check OK;
#   5. SIGTERM: the daemon exits 0.
#
#   examples/trading_daemon/risk_pipeline_test.sh DAEMON RISK TOOL [WORKDIR]
#
# Without WORKDIR: a temp dir, removed when the test passes, kept when it fails.
# ORDERS (default 2000) and REWIND (default 150) override the sizes.
set -euo pipefail
daemon=${1:?usage: risk_pipeline_test.sh DAEMON RISK TOOL [WORKDIR]}
risk=${2:?usage: risk_pipeline_test.sh DAEMON RISK TOOL [WORKDIR]}
tool=${3:?usage: risk_pipeline_test.sh DAEMON RISK TOOL [WORKDIR]}
if [[ -n ${4:-} ]]; then
  dir=$4
  rm -rf "$dir"
  mkdir -p "$dir"
  remove_dir=false
else
  dir=$(mktemp -d -t jaiminho-risk.XXXXXX)
  remove_dir=true
fi
orders=${ORDERS:-2000}
rewind=${REWIND:-150}
# Risk #1 is killed once it has applied kill_at fills: 200, 250, ... 500.
kill_at=$((200 + 50 * (RANDOM % 7)))
session=4000 # ms: how long a killed consumer holds its partition (the mock coordinator's first join takes 3 s: more)

pids=()
kill_all() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap kill_all EXIT

fail() {
  echo "risk pipeline test: $*"
  for f in "$dir"/*.out; do
    echo "--- $f:"
    cat "$f"
  done
  exit 1
}

# Polls COMMAND... every 0.1 s until it succeeds; fails after 60 s, or at once
# when process PID has exited.
wait_for() {
  local what=$1 pid=$2
  shift 2
  local deadline=$((SECONDS + 60))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "process $pid exited while waiting for $what"
    ((SECONDS < deadline)) || fail "no $what within 60 s"
    sleep 0.1
  done
}

"$daemon" --db "$dir/trading.db" --orders "$orders" --threads 2 --bootstraps-file "$dir/kafka.bootstraps" \
  >"$dir/daemon.out" 2>&1 &
daemon_pid=$!
pids+=("$daemon_pid")
wait_for "bootstrap servers file" "$daemon_pid" test -s "$dir/kafka.bootstraps"
bootstrap=$(cat "$dir/kafka.bootstraps")

# Risk #1, killed mid-stream.
"$risk" --db "$dir/risk.db" --bootstrap "$bootstrap" --session-timeout-ms "$session" --progress-every 50 \
  >"$dir/risk1.out" 2>&1 &
risk1=$!
pids+=("$risk1")
wait_for "$kill_at fills applied by risk #1" "$risk1" grep -q "^progress applied=$kill_at " "$dir/risk1.out"
kill -KILL "$risk1"
code=0
{ wait "$risk1"; } 2>/dev/null || code=$?
((code == 128 + 9)) || fail "risk #1 exited $code, not by SIGKILL"
applied1=$(sed -n 's/^progress applied=\([0-9]*\) .*/\1/p' "$dir/risk1.out" | tail -1)
echo "risk #1 SIGKILLed after at least $applied1 fills applied"

# The daemon's fills: all committed (and its own read-back check done).
wait_for "the daemon's check" "$daemon_pid" grep -q "^serving Kafka at" "$dir/daemon.out"
grep -q "^OK; database" "$dir/daemon.out" || fail "the daemon's check failed"
last=$(sed -n 's/^\([0-9]*\) fills committed (seqs 1\.\.\([0-9]*\)).*/\2/p' "$dir/daemon.out")
[[ -n $last ]] || fail "no 'N fills committed (seqs 1..L)' line from the daemon"
((last > kill_at + rewind)) || fail "only $last fills: too few for this test (ORDERS=$orders)"

# Risk #2: the group rewound by $rewind, then everything to the last fill;
# SIGTERM after 120 s (it then stops and reports what it had, and why).
code=0
timeout 120 "$risk" --db "$dir/risk.db" --bootstrap "$bootstrap" --session-timeout-ms "$session" --rewind "$rewind" \
  --until-seq "$last" >"$dir/risk2.out" 2>&1 || code=$?
((code == 0)) || fail "risk #2 exited $code$( ((code == 124)) && echo ": not done within 120 s")"
grep -q "^rewound group 'risk' topic 'trading.fills' partition [0-9]* from offset" "$dir/risk2.out" ||
  fail "risk #2 did not rewind the group"
grep -q "^OK; database" "$dir/risk2.out" || fail "risk #2's check failed"
grep -q "^fills applied once: $last, applied more than once: 0, missing: 0, out of seq order: 0$" "$dir/risk2.out" ||
  fail "risk #2 does not hold fills 1..$last applied once each, in order"
duplicates=$(sed -n 's/^consumer: applied=[0-9]* duplicates=\([0-9]*\) .*/\1/p' "$dir/risk2.out")
applied2=$(sed -n 's/^consumer: applied=\([0-9]*\) .*/\1/p' "$dir/risk2.out")
((duplicates >= rewind)) || fail "risk #2 dropped $duplicates duplicates, expected at least $rewind (the rewind)"

# The positions: what the daemon's stored fills imply, per symbol.
want=$("$tool" dump "$dir/trading.db" --stream fills --full --json |
  jq -c -s 'map(.payload | fromjson) | group_by(.symbol) | map({symbol: .[0].symbol, fills: length,
            volume: (map(.qty) | add), notional: (map(.price * .qty) | add),
            net: (map(if .side == "buy" then .qty else -.qty end) | add)})')
got=$(grep '^{"symbol"' "$dir/risk2.out" | jq -c -s 'sort_by(.symbol)')
[[ $want == "$got" ]] || fail "risk positions differ from the daemon's fills: want $want, got $got"

kill -TERM "$daemon_pid"
code=0
wait "$daemon_pid" || code=$?
((code == 0)) || fail "the daemon exited $code after SIGTERM"
trap - EXIT
if $remove_dir; then rm -rf "$dir"; fi
echo "risk pipeline test: $last fills; risk #1 SIGKILLed after $applied1 applied, risk #2 rewound $rewind and" \
  "applied $applied2, dropped $duplicates duplicates; every fill applied once, in seq order; positions" \
  "$got equal the daemon's fills"
