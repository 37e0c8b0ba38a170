#!/usr/bin/env bash
# The static build for gateways (cmake/JaiminhoStatic.cmake), as the README's
# "Static binaries for gateways" recipe builds it:
#   1. core only, JAIMINHO_STATIC + JAIMINHO_STATIC_LIBC: jaiminho-demo and
#      jaiminho-tool with no run-time dependency at all; the demo runs.
#   2. the MQTT gateway, JAIMINHO_STATIC + JAIMINHO_WITH_MQTT: everything static
#      but glibc and libmosquitto with its libssl/libcrypto -- exactly one
#      libcrypto in the process (jaiminho's HMAC uses the same shared one).
# Prints each binary's ldd and stripped size. The compile flags are the main
# build's (the `release` preset), so with ccache (.ci/test) only the links are
# new work.
set -euo pipefail
work=$(realpath -m "$BUILD_DIR/static")
rm -rf "$work"
common=(--preset release -DJAIMINHO_BUILD_TESTS=OFF -DJAIMINHO_BUILD_BENCH=OFF)

show() {  # binary
  strip -o "$1.stripped" "$1"
  echo "== $(basename "$1"): $(stat -c %s "$1.stripped") bytes stripped; ldd:"
  ldd "$1" 2>&1 | sed 's/^/   /' || true
}

# 1. Core only, fully static.
cmake "${common[@]}" -B "$work/core" -DJAIMINHO_STATIC=ON -DJAIMINHO_STATIC_LIBC=ON >"$work-core.log"
cmake --build "$work/core" -j "$JOBS" --target jaiminho-demo jaiminho-tool >>"$work-core.log"
for b in "$work/core/examples/jaiminho-demo" "$work/core/tools/jaiminho-tool"; do
  show "$b"
  if ldd "$b" >/dev/null 2>&1; then echo "$b is dynamic: JAIMINHO_STATIC_LIBC did not link statically"; exit 1; fi
done
"$work/core/examples/jaiminho-demo" "$work/core/run/demo.db" 500
"$work/core/tools/jaiminho-tool" verify "$work/core/run/demo.db"

# 2. The MQTT gateway: one libcrypto.
if pkg-config --exists libmosquitto; then
  cmake "${common[@]}" -B "$work/mqtt" -DJAIMINHO_STATIC=ON -DJAIMINHO_WITH_MQTT=ON >"$work-mqtt.log"
  cmake --build "$work/mqtt" -j "$JOBS" --target jaiminho-iot-gateway >>"$work-mqtt.log"
  gw="$work/mqtt/examples/iot_gateway/jaiminho-iot-gateway"
  show "$gw"
  deps=$(ldd "$gw")
  crypto=$(grep -c 'libcrypto' <<<"$deps" || true)
  [[ $crypto -eq 1 ]] || { echo "the gateway has $crypto libcrypto entries, expected 1"; exit 1; }
  for lib in librocksdb libstdc++ libgcc_s libsnappy liblz4 libzstd libbz2 libz.so libgflags; do
    if grep -q "$lib" <<<"$deps"; then echo "the static gateway still needs $lib at run time"; exit 1; fi
  done
  if [[ $(nm "$gw" | grep -c ' T HMAC$') -gt 0 ]]; then echo "the gateway links a static libcrypto besides the shared one"; exit 1; fi
  "$gw" --db "$work/mqtt/run/gw.db" --readings 300
fi
