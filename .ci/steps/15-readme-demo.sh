#!/usr/bin/env bash
# The README's first command (the block marked readme:demo), verbatim, in a
# fresh clone of this checkout, as a new user would run it, and the tool's
# --version. A README whose command drifts from the code fails here.
set -euo pipefail
command=$(bash .ci/readme command demo)
work=$(realpath -m "$BUILD_DIR/readme-demo")
rm -rf "$work"
mkdir -p "$work"
git clone -q "$PWD" "$work/clone"
echo "== README demo command: $command"
start=$(date +%s)
(cd "$work/clone" && bash -c "$command")
echo "== README demo command passed in $(($(date +%s) - start)) s"
"$work/clone/build/tools/jaiminho-tool" --version
