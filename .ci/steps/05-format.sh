#!/usr/bin/env bash
# Formatting: every C++ file of the project (git ls-files, so nothing generated
# or fetched) as clang-format 14 formats it with .clang-format. Fails listing
# the files to format: `clang-format -i FILE...` fixes them.
set -euo pipefail
start=$(date +%s)
mapfile -t files < <(git ls-files '*.h' '*.cc')
if ! out=$(clang-format --dry-run -Werror "${files[@]}" 2>&1); then
  printf '%s\n' "$out" | head -n 40
  bad=$(printf '%s\n' "$out" | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' | sort -u | sed "s#^$PWD/##")
  echo "== clang-format: $(wc -l <<<"$bad") of ${#files[@]} files need formatting:" $bad
  exit 1
fi
echo "== clang-format: ${#files[@]} files formatted ($(($(date +%s) - start)) s)"
