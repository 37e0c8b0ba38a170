#!/usr/bin/env bash
# The floors of src/ only point down: fails when a file of src/ includes a
# header of a higher floor than its own, or is on no floor (src/LAYERS).
set -euo pipefail
cd "$(dirname "$0")/../.."
git ls-files 'src/*.h' 'src/*.cc' | awk '
  NR == FNR {
    if ($0 ~ /^#/ || NF < 2) next
    for (i = 2; i <= NF; i++) floor_of[$i] = $1
    next
  }
  function floor(path,   best, p, n) {
    best = ""; n = -1
    for (p in floor_of) {
      if ((p ~ /\/$/ ? index(path, p) == 1 : path == p) && length(p) > n) { best = floor_of[p]; n = length(p) }
    }
    return best
  }
  {
    file = substr($0, 5)  # without "src/"
    mine = floor(file)
    if (mine == "") { printf "%s: on no floor of src/LAYERS\n", $0; bad = 1; next }
    dir = file; sub(/[^\/]*$/, "", dir)
    while ((getline line < $0) > 0) {
      if (line !~ /^#include "/) continue
      inc = line; sub(/^#include "/, "", inc); sub(/".*/, "", inc)
      # A header beside the file ("uri.h" in adapters/) is on its floor.
      if ((getline dummy < ("src/" dir inc)) >= 0 && inc !~ /\//) { close("src/" dir inc); inc = dir inc }
      theirs = floor(inc)
      if (theirs == "") { printf "%s: includes \"%s\", on no floor of src/LAYERS\n", $0, inc; bad = 1 }
      else if (theirs + 0 > mine + 0) {
        printf "%s (floor %s) includes \"%s\" (floor %s): an include may not point up\n", $0, mine, inc, theirs; bad = 1
      }
    }
    close($0)
  }
  END { if (bad) exit 1; print "layers: every include of src/ points down or sideways (src/LAYERS)" }
' src/LAYERS -
