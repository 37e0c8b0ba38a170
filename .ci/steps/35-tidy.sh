#!/usr/bin/env bash
# clang-tidy 14 with the checks .clang-tidy allows, warnings as errors, over
# the .cc files of src/ and tools/ (the library, the adapters, jaiminho-tool).
# Uses the compile_commands.json of the clang ASan tree .ci/steps/30-sanitizers.sh
# configured and built (its generated FlatBuffers headers are needed), else
# configures and generates a clang tree of its own (TIDY_BUILD_DIR, build-tidy).
# Files run in parallel (JOBS); prints its duration.
set -euo pipefail
JOBS=${JOBS:-$(nproc)}
start=$(date +%s)
TIDY_DIR=${TIDY_BUILD_DIR:-${ASAN_BUILD_DIR:-build-asan}}
if [[ ! -f $TIDY_DIR/compile_commands.json ]]; then
  TIDY_DIR=${TIDY_BUILD_DIR:-build-tidy}
  cmake --preset asan -B "$TIDY_DIR" >/dev/null
  cmake --build "$TIDY_DIR" --target jaiminho_fbs
fi
# Only the files this configure compiles (an adapter whose library is missing
# is not configured).
files=()
while read -r f; do
  if grep -qF "\"file\": \"$PWD/$f\"" "$TIDY_DIR/compile_commands.json"; then files+=("$f"); fi
done < <(git ls-files 'src/*.cc' 'tools/*.cc')
echo "== clang-tidy: ${#files[@]} files, $JOBS jobs, tree $TIDY_DIR"
printf '%s\n' "${files[@]}" |
  xargs -P "$JOBS" -n 2 clang-tidy -p "$TIDY_DIR" --quiet --warnings-as-errors='*' 2> >(grep -v ' warnings\? generated\.$\|^Suppressed \|^Use -header-filter\|NOLINT' >&2)
echo "== clang-tidy: passed in $(($(date +%s) - start)) s"
