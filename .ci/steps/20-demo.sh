#!/usr/bin/env bash
# The README's demo, on a fresh database, then the database as jaiminho-tool
# shows it (streams), and a check that every record it wrote verifies.
set -euo pipefail
rm -rf "$BUILD_DIR/demo"
"$BUILD_DIR/examples/jaiminho-demo" "$BUILD_DIR/demo/demo.db" 2000
"$BUILD_DIR/tools/jaiminho-tool" streams "$BUILD_DIR/demo/demo.db"
"$BUILD_DIR/tools/jaiminho-tool" verify "$BUILD_DIR/demo/demo.db"
