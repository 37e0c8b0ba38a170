#!/usr/bin/env bash
# The main build -- Release, as a user's, so the warnings users would see fail
# CI (-Werror) -- and the whole ctest suite. The `release` preset
# (CMakePresets.json), in BUILD_DIR.
set -euo pipefail
cmake --preset release -B "$BUILD_DIR"
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
