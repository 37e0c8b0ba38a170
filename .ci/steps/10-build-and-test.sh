#!/usr/bin/env bash
# The main build (RelWithDebInfo, -Werror) and the whole ctest suite.
set -euo pipefail
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJAIMINHO_WERROR=ON
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
