#!/usr/bin/env bash
# The files an installation adds around jaiminho-tool, tried through the built
# tool:
#   service_files_test.sh TOOL HOLD_DB UNIT_IN COMPLETION [MAN_PAGE]
# - the systemd unit (tools/systemd/jaiminho-relay@.service.in): accepted by
#   systemd-analyze without a warning (when systemd is installed), and its
#   ExecStartPre/ExecStart run as systemd runs them: verify passes on a good
#   database and exits 4 on a damaged one (which the unit does not restart),
#   relay --loop delivers every event in order, answers `stats` on its control
#   socket, and SIGTERM ends it with exit 0;
# - the bash completion: commands, every option of every command, --state
#   values, --stream names read from the database;
# - the man page (when help2man built it): every command and every option.
set -euo pipefail
tool=$(realpath "$1")
hold=$2
unit_in=$3
completion=$4
man_page=${5:-}
work=$(mktemp -d)
relay_pid=""
cleanup() {
  if [ -n "$relay_pid" ]; then kill -KILL "$relay_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
commands=$("$tool" --help | awk '/^Subcommands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
[ -n "$commands" ] || fail "no commands in jaiminho-tool --help"
options_of() { "$tool" "$1" --help | awk '/^Options:/ { on = 1; next } on && /^$/ { exit } on' | grep -o -- '--[a-z][a-z0-9-]*' | sort -u; }

# --- the systemd unit ------------------------------------------------------
unit="$work/jaiminho-relay@demo.service"
sed "s|@JAIMINHO_TOOL_PATH@|$tool|g" "$unit_in" >"$unit"
if command -v systemd-analyze >/dev/null; then
  out=$(cd "$work" && systemd-analyze verify --man=no "./$(basename "$unit")" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warned: $out"
  echo "unit: systemd-analyze verify accepts it"
else
  echo "unit: systemd-analyze not installed, not verified"
fi
grep -q '^RestartPreventExitStatus=2 4$' "$unit" || fail "the unit restarts on a usage error or a damaged database"

# The unit's command lines as systemd runs them: %S the state root, %i the
# instance, ${VAR} one word and $VAR split, from the EnvironmentFile.
state="$work/state"
mkdir -p "$state/jaiminho"
db="$state/jaiminho/demo"
JAIMINHO_SINK=stdout
JAIMINHO_RELAY_ARGS="--interval 100ms --stream telemetry"
command_of() {
  local line
  line=$(grep "^$1=" "$unit" | head -1)
  [ -n "$line" ] || fail "the unit has no $1"
  line=${line#*=}
  line=${line//%S/$state}
  line=${line//%i/demo}
  line=${line//'${JAIMINHO_SINK}'/$JAIMINHO_SINK}
  line=${line//'$JAIMINHO_RELAY_ARGS'/$JAIMINHO_RELAY_ARGS}
  echo "$line"
}
read -ra pre <<<"$(command_of ExecStartPre)"
read -ra start <<<"$(command_of ExecStart)"
[ "${pre[0]}" = "$tool" ] && [ "${start[0]}" = "$tool" ] || fail "the unit does not run the tool: ${pre[*]} / ${start[*]}"

echo | "$hold" "$db" telemetry 20 >/dev/null || fail "could not make the demo database"
"${pre[@]}" >"$work/verify.out" 2>&1 || fail "ExecStartPre (${pre[*]}) failed on a good database: $(cat "$work/verify.out")"
echo "unit: ExecStartPre passes on a good database"

"${start[@]}" >"$work/relay.out" 2>"$work/relay.err" &
relay_pid=$!
# Wait for the 20 events (polling the output, 30 s at most), then stop it as systemctl stop does.
for _ in $(seq 300); do
  [ "$(wc -l <"$work/relay.out")" -ge 20 ] && break
  kill -0 "$relay_pid" 2>/dev/null || break
  sleep 0.1
done
# The operator's tool reaches the running relay through its control socket.
"$tool" stats "$db" >"$work/stats.out" 2>"$work/stats.err" || fail "stats while the relay runs: $(cat "$work/stats.err")"
grep -q "control socket" "$work/stats.err" || fail "stats did not go through the relay's control socket: $(cat "$work/stats.err")"
kill -TERM "$relay_pid" 2>/dev/null || true
code=0
wait "$relay_pid" || code=$?
relay_pid=""
[ "$code" -eq 0 ] || fail "relay --loop ended with $code after SIGTERM: $(cat "$work/relay.err")"
seqs=$(grep -o '"seq":[0-9]*' "$work/relay.out" | cut -d: -f2 | tr '\n' ' ')
[ "$seqs" = "$(seq -s ' ' 1 20) " ] || fail "relay --loop delivered seqs [$seqs], not 1..20 in order"
echo "unit: ExecStart delivered 20 events in order, served stats on its control socket; SIGTERM ended it with exit 0"

mv "$db/CURRENT" "$db/CURRENT.moved"
code=0
"${pre[@]}" >/dev/null 2>"$work/verify.err" || code=$?
[ "$code" -eq 4 ] || fail "ExecStartPre exited $code on a damaged database, not 4: $(cat "$work/verify.err")"
mv "$db/CURRENT.moved" "$db/CURRENT"
echo "unit: ExecStartPre exits 4 on a damaged database (not restarted)"

# --- bash completion -------------------------------------------------------
# shellcheck disable=SC1090
source "$completion"
complete_line() {  # WORD... : COMPREPLY for the last word, one per line
  COMP_WORDS=("$tool" "$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _jaiminho_tool
  printf '%s\n' "${COMPREPLY[@]}" | sort
}
[ "$(complete_line "")" = "$(echo "$commands" | sort)" ] || fail "completion of the command: $(complete_line "")"
for c in $commands; do
  for o in $(options_of "$c"); do
    complete_line "$c" "$db" "${o:0:4}" | grep -qx -- "$o" || fail "completion of '$c ${o:0:4}' misses $o"
  done
done
[ "$(complete_line dump "$db" --state p | tr '\n' ' ')" = "parked pending " ] || fail "completion of --state p"
complete_line dump "$db" --stream "" | grep -qx telemetry || fail "completion of --stream: $(complete_line dump "$db" --stream "")"
echo "completion: the commands, every option of every command, --state, --stream"

# --- the man page ----------------------------------------------------------
if [ -n "$man_page" ]; then
  [ -s "$man_page" ] || fail "no man page at $man_page"
  rendered=$(MANWIDTH=200 man --warnings -l "$man_page" 2>"$work/man.err")
  [ ! -s "$work/man.err" ] || fail "man warned: $(cat "$work/man.err")"
  for c in $commands; do
    grep -q "^\.SS $c\$" "$man_page" || fail "the man page has no section for $c"
    for o in $(options_of "$c"); do
      grep -qF -- "$o" <<<"$rendered" || fail "the man page does not show $c $o (ASCII hyphens)"
    done
  done
  echo "$rendered" | grep -qE "EXIT|Exit +codes" || fail "the man page does not give the exit codes"
  echo "man page: every command and option, renders without warnings"
fi
echo "service files: all checks passed"
