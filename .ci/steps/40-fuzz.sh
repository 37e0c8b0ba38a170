#!/usr/bin/env bash
# Fuzzing (issue 7): runs each libFuzzer target for FUZZ_SECONDS (default 30)
# over its seed corpus in tests/fuzz/corpus/<target>. The targets come from the
# ASan tree of .ci/steps/30-sanitizers.sh when it built them (clang, ASan +
# UBSan, JAIMINHO_FUZZ=ON), else from a clang build of their own (build-fuzz,
# the `fuzz` preset of CMakePresets.json).
# New inputs go to a scratch directory, never into the committed corpus; a
# crash leaves its input in <build>/crashes/.
set -euo pipefail
JOBS=${JOBS:-$(nproc)}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
start=$(date +%s)
FUZZ_DIR=${FUZZ_BUILD_DIR:-${ASAN_BUILD_DIR:-build-asan}}
if [[ ! -x $FUZZ_DIR/tests/fuzz/envelope_fuzz ]]; then
  FUZZ_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
  cmake --preset fuzz -B "$FUZZ_DIR"
  cmake --build "$FUZZ_DIR" -j "$JOBS" --target jaiminho_fuzz
fi
built=$(date +%s)
mkdir -p "$FUZZ_DIR/crashes"
for corpus in tests/fuzz/corpus/*/; do
  target=$(basename "$corpus")
  exe="$FUZZ_DIR/tests/fuzz/${target}_fuzz"
  if [[ ! -x $exe ]]; then echo "no fuzz target for corpus $corpus" >&2; exit 1; fi
  scratch=$(mktemp -d)
  echo "== fuzz $target for ${SECONDS_PER_TARGET} s"
  "$exe" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_DIR/crashes/${target}-" "$scratch" "$corpus"
  rm -rf "$scratch"
done
echo "== fuzz: build $((built - start)) s, runs $(($(date +%s) - built)) s (targets from $FUZZ_DIR)"
