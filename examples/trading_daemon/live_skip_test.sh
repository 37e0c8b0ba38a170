#!/usr/bin/env bash
# A stuck keep-order stream of the running trading daemon, unblocked live with
# `jaiminho-tool skip`, as an operator would (issue 20; run by
# .ci/steps/60-run-examples.sh):
#
#   1. start the daemon with its control socket and the demonstration switch
#      --refuse-seq N (its publisher refuses fill N, retryably), in a temp dir;
#   2. wait (polling, with a deadline) until `jaiminho-tool streams --json`
#      shows "fills" blocked at seq N;
#   3. `jaiminho-tool skip DB --stream fills --seq N --reason ...` against the
#      live process (through DB/control.sock);
#   4. the daemon's own check: its Kafka consumer got every other fill, once
#      each, in strict order; the database: fill N parked with the skip in its
#      history (by "USER (control socket, pid P)"), every other fill sent,
#      nothing pending;
#   5. SIGTERM: the daemon closes the database and exits 0.
#
#   examples/trading_daemon/live_skip_test.sh DAEMON TOOL [WORKDIR]
#
# Without WORKDIR: a temp dir (a short path: DB/control.sock must fit a Unix
# socket address), removed when the test passes, kept when it fails.
set -euo pipefail
daemon=${1:?usage: live_skip_test.sh DAEMON TOOL [WORKDIR]}
tool=${2:?usage: live_skip_test.sh DAEMON TOOL [WORKDIR]}
if [[ -n ${3:-} ]]; then
  dir=$3
  rm -rf "$dir"
  mkdir -p "$dir"
  remove_dir=false
else
  dir=$(mktemp -d -t jaiminho-live-skip.XXXXXX)
  remove_dir=true
fi
refused=7
reason="poison fill, OPS-7"
db=$dir/trading.db
out=$dir/daemon.out

"$daemon" --db "$db" --orders 600 --threads 2 --control-socket --refuse-seq "$refused" >"$out" 2>&1 &
pid=$!
trap 'kill -KILL "$pid" 2>/dev/null || true' EXIT

fail() {
  echo "live skip test: $*"
  echo "--- daemon output ($out):"
  cat "$out"
  exit 1
}

# Polls COMMAND... every 0.1 s until it succeeds; fails after 60 s, or at once
# when the daemon has exited.
wait_for() {
  local what=$1
  shift
  local deadline=$((SECONDS + 60))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "the daemon exited while waiting for $what"
    ((SECONDS < deadline)) || fail "no $what within 60 s"
    sleep 0.1
  done
}

blocked_at_refused() {
  # -s: no row (the stream not created yet) is a null row, not jq's empty success.
  "$tool" streams "$db" --stream fills --json | jq -e -s --argjson n "$refused" '.[0].blocked and .[0].blocked_seq == $n'
}
wait_for "block of stream fills at seq $refused" blocked_at_refused
"$tool" streams "$db" --stream fills

# The operator's action, against the live process.
skip_err=$dir/skip.err
"$tool" skip "$db" --stream fills --seq "$refused" --reason "$reason" 2>"$skip_err" || fail "skip failed: $(cat "$skip_err")"
cat "$skip_err"
grep -q "via the running process's control socket" "$skip_err" || fail "skip did not go through the control socket"

wait_for "check by the daemon" grep -q "^serving .*control.sock until SIGINT or SIGTERM" "$out"
grep -q "^OK; database" "$out" || fail "the daemon's check failed"
grep -q "but parked $refused): all present, once each, in strict order" "$out" ||
  fail "the daemon's consumer did not get every fill but $refused in order"

# The database: fill N parked with its history, every other fill of the run sent.
committed=$(sed -n 's/^\([0-9]*\) fills committed (seqs 1\.\.\([0-9]*\)).*/\2/p' "$out")
[[ -n $committed ]] || fail "no 'fills committed (seqs 1..N)' line"
parked=$("$tool" dump "$db" --stream fills --state parked --json)
jq -e --argjson n "$refused" --arg reason "$reason" -s \
  'length == 1 and .[0].seq == $n and .[0].history[0].action == "skip" and .[0].history[0].reason == $reason
   and (.[0].history[0].user | contains("(control socket"))' <<<"$parked" >/dev/null ||
  fail "fill $refused is not parked with the skip in its history: $parked"
jq -e -s --argjson n "$refused" --argjson last "$committed" \
  '(map(.seq) == [range(1; $last + 1)]) and (map(select(.state != "sent")) | map(.seq)) == [$n]' \
  < <("$tool" dump "$db" --stream fills --json) >/dev/null ||
  fail "the database does not hold fills 1..$committed, all sent but $refused"
"$tool" streams "$db" --stream fills --json |
  jq -e -s 'length == 1 and .[0].pending_events == 0 and .[0].retrying_events == 0 and .[0].parked_events == 1
            and .[0].blocked == false' >/dev/null ||
  fail "stream fills is not drained: $("$tool" streams "$db" --stream fills --json)"

kill -TERM "$pid"
code=0
wait "$pid" || code=$?
trap - EXIT
((code == 0)) || fail "the daemon exited $code after SIGTERM"
grep -q "^stopping: closing the database" "$out" || fail "the daemon did not stop cleanly"
[[ ! -e $db/control.sock ]] || fail "$db/control.sock left behind"
if $remove_dir; then rm -rf "$dir"; fi
echo "live skip test: fill $refused skipped live through $db/control.sock; $committed fills, the rest delivered in order"
