#!/usr/bin/env bash
# Writes jaiminho-tool's man page from the built tool's own help, so the page
# cannot drift from the options:
#   make-man.sh HELP2MAN TOOL OUT
# help2man turns `TOOL --help` and `TOOL --version` into the page; a COMMANDS
# section adds each subcommand's `--help`, verbatim.
set -euo pipefail
help2man=$1
tool=$2
out=$3
include=$(mktemp)
trap 'rm -f "$include"' EXIT

# The subcommands: the lines of the "Subcommands:" block of `TOOL --help`.
mapfile -t commands < <("$tool" --help | awk '/^Subcommands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
if [ ${#commands[@]} -eq 0 ]; then
  echo "make-man.sh: no subcommands found in '$tool --help'" >&2
  exit 1
fi

# roff: a backslash is written \e, a minus \- (an ASCII '-' when rendered, so
# options copy and paste), and a line starting with . or ' gets \& first.
roff() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\([.']\)/\\\\\&\1/"; }
{
  echo "[COMMANDS]"
  for c in "${commands[@]}"; do
    echo ".SS $c"
    echo ".nf"
    # The exit codes footer is the same for every command: the DESCRIPTION has it.
    "$tool" "$c" --help | grep -v '^Exit codes:' | roff
    echo ".fi"
  done
  echo "[SEE ALSO]"
  echo "The README of jaiminho: the tool's output formats, its JSON fields and the operator's guide."
  echo ".br"
  echo "The systemd unit jaiminho-relay@.service (relay --loop as a service)."
} >"$include"

"$help2man" --no-info --no-discard-stderr \
  --name="inspect, relay, clean and unstick a jaiminho outbox database" \
  --section=1 --include="$include" --output="$out.tmp" "$tool"
mv "$out.tmp" "$out"
