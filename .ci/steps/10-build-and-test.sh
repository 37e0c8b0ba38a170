#!/usr/bin/env bash
# The main build -- Release, as a user's, so the warnings users would see fail
# CI (-Werror) -- and the whole ctest suite.
set -euo pipefail
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DJAIMINHO_WERROR=ON
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
