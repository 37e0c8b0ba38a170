#!/usr/bin/env bash
# The benchmark suite in its quick mode, once: it must build and run; nothing
# about speed is asserted. Reuses the main build directory (already built by
# 10-build-and-test), so only the benchmark binary is (re)linked here.
set -euo pipefail
bash bench/run --quick --build-dir "$BUILD_DIR"
