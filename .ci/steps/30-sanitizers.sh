#!/usr/bin/env bash
# Sanitizers (issue 7), with clang at -O1 (sanitizer builds compile 2-4 times
# faster than with g++ -O2, which keeps CI within its budget):
#   ASan + UBSan: the whole test suite (build-asan; benchmarks and examples are
#   not built, they have no tests). The same tree builds the fuzz targets
#   (JAIMINHO_FUZZ=ON; .ci/steps/40-fuzz.sh reuses it) and replays their corpus.
#   TSan: the tests labelled `concurrency` (build-tsan; only their executables
#   are built, found from the ASan tree's test list). Debian's librocksdb.a is
#   not instrumented: tests/tsan.supp suppresses reports inside RocksDB only.
# The trees are the `asan` and `tsan` presets of CMakePresets.json, in
# ASAN_BUILD_DIR and TSAN_BUILD_DIR.
# Each half prints its duration. SANITIZERS=asan or SANITIZERS=tsan runs one.
set -euo pipefail
JOBS=${JOBS:-$(nproc)}
ASAN_DIR=${ASAN_BUILD_DIR:-build-asan}
TSAN_DIR=${TSAN_BUILD_DIR:-build-tsan}
WHICH=${SANITIZERS:-asan,tsan}
now() { date +%s; }

# Executables of the tests with a label, from a configured and built tree.
executables_with_label() {
  ctest --test-dir "$1" -N -V -L "$2" | sed -n 's/^.*Test command: \([^ ]*\).*$/\1/p' | sort -u
}

if [[ $WHICH == *asan* ]]; then
  start=$(now)
  cmake --preset asan -B "$ASAN_DIR"
  cmake --build "$ASAN_DIR" -j "$JOBS"
  built=$(now)
  # The crash, power-loss and consumer-kill loops run shorter here: 10 kills, 4
  # cuts, 10 consumer kills (the main step runs the default 20, 8 and 20; the
  # Kafka consumer harness spends about 7 s per kill in the mock coordinator).
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  JAIMINHO_CRASH_CYCLES=${JAIMINHO_CRASH_CYCLES:-10} JAIMINHO_POWER_ROUNDS=${JAIMINHO_POWER_ROUNDS:-4} \
  JAIMINHO_CONSUMER_KILLS=${JAIMINHO_CONSUMER_KILLS:-10} \
    ctest --test-dir "$ASAN_DIR" --output-on-failure -j "$JOBS"
  echo "== asan+ubsan: build $((built - start)) s, tests $(($(now) - built)) s"
fi

if [[ $WHICH == *tsan* ]]; then
  start=$(now)
  cmake --preset tsan -B "$TSAN_DIR"
  # The concurrency tests' executables, named like their targets. Taken from
  # the ASan tree when it exists (it built everything), else built in full.
  targets=()
  if [[ -d $ASAN_DIR ]]; then
    while read -r exe; do targets+=("$(basename "$exe")"); done < <(executables_with_label "$ASAN_DIR" concurrency)
  fi
  if [[ ${#targets[@]} -gt 0 ]]; then
    cmake --build "$TSAN_DIR" -j "$JOBS" --target "${targets[@]}"
  else
    cmake --build "$TSAN_DIR" -j "$JOBS"
  fi
  built=$(now)
  # ignore_noninstrumented_modules: memcpy and friends called from libstdc++.so
  # (not instrumented) on RocksDB's behalf are not checked; everything called
  # from our code and from RocksDB's (static, uninstrumented) code still is.
  TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$PWD/tests/tsan.supp} \
  JAIMINHO_CRASH_CYCLES=${JAIMINHO_CRASH_CYCLES:-10} JAIMINHO_POWER_ROUNDS=${JAIMINHO_POWER_ROUNDS:-4} \
    ctest --test-dir "$TSAN_DIR" --output-on-failure -j "$JOBS" -L concurrency
  echo "== tsan: build $((built - start)) s, tests $(($(now) - built)) s (targets: ${targets[*]:-all})"
fi
