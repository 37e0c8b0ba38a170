#!/usr/bin/env bash
# The README's demo, on a fresh database.
set -euo pipefail
rm -rf "$BUILD_DIR/demo"
"$BUILD_DIR/examples/jaiminho-demo" "$BUILD_DIR/demo/demo.db" 2000
