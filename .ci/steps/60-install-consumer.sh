#!/usr/bin/env bash
# Packaging: installs the main build to a temporary prefix, builds the
# consumer project (tests/consumer) against it with find_package and again
# with pkg-config (neither sets the C++ standard: the package carries it), runs
# both, and checks that neither binary needs librocksdb at run time (static
# link). Then every README block marked readme:program is compiled against the
# same install with the README's own pkg-config line, and run.
set -euo pipefail
work=$(realpath -m "$BUILD_DIR/install-test")
prefix="$work/prefix"
rm -rf "$work"
mkdir -p "$work"
cmake --install "$BUILD_DIR" --prefix "$prefix" >"$work/install.log"
echo "installed $(find "$prefix" -type f | wc -l) files to $prefix"
test -x "$prefix/bin/jaiminho-tool" || { echo "jaiminho-tool was not installed"; exit 1; }
# The tool's service files: the unit names the installed tool; the man page
# renders; the completion loads.
unit="$prefix/lib/systemd/system/jaiminho-relay@.service"
grep -qx "ExecStart=$prefix/bin/jaiminho-tool relay --loop .*" "$unit" || { echo "$unit does not run $prefix/bin/jaiminho-tool"; exit 1; }
test -s "$prefix/lib/sysusers.d/jaiminho.conf" || { echo "the unit's sysusers.d file was not installed"; exit 1; }
MANWIDTH=80 man -l "$prefix/share/man/man1/jaiminho-tool.1" | grep -q "jaiminho-tool dump" || { echo "no man page"; exit 1; }
bash -c "source '$prefix/share/bash-completion/completions/jaiminho-tool' && complete -p jaiminho-tool" >/dev/null
echo "installed: jaiminho-relay@.service, sysusers.d/jaiminho.conf, man1/jaiminho-tool.1, bash completion"

# The adapters this build has, required from the package.
components=()
grep -q '^JAIMINHO_WITH_MQTT:BOOL=ON' "$BUILD_DIR/CMakeCache.txt" && components+=(mqtt)
grep -q '^JAIMINHO_WITH_KAFKA:BOOL=ON' "$BUILD_DIR/CMakeCache.txt" && components+=(kafka)
grep -q '^JAIMINHO_WITH_METRICS_HTTP:BOOL=ON' "$BUILD_DIR/CMakeCache.txt" && components+=(metrics_http)
echo "components: ${components[*]:-none}"

no_rocksdb_needed() {
  if readelf -d "$1" | grep -i 'NEEDED.*rocksdb'; then
    echo "$1 needs librocksdb at run time: the static link failed"
    exit 1
  fi
  echo "$1: no dynamic dependency on librocksdb ($(readelf -d "$1" | grep -c NEEDED) NEEDED entries)"
}

# 1. CMake: find_package(jaiminho CONFIG COMPONENTS ...).
cmake -S tests/consumer -B "$work/cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DJAIMINHO_COMPONENTS="$(IFS=';'; echo "${components[*]}")"
cmake --build "$work/cmake"
no_rocksdb_needed "$work/cmake/jaiminho-consumer"
mkdir -p "$work/run-cmake"
"$work/cmake/jaiminho-consumer" "$work/run-cmake"

# 2. pkg-config: jaiminho.pc (+ jaiminho-<adapter>.pc).
pcdir=$(dirname "$(find "$prefix" -name jaiminho.pc)")
modules=(jaiminho)
defines=()
for c in "${components[@]}"; do
  modules+=("jaiminho-$c")
  defines+=("-DCONSUMER_WITH_$(echo "$c" | tr a-z A-Z)=1")
done
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs "${modules[@]}")
echo "pkg-config ${modules[*]}: $flags"
# shellcheck disable=SC2086
c++ -O1 "${defines[@]}" tests/consumer/main.cc -o "$work/consumer-pc" $flags
no_rocksdb_needed "$work/consumer-pc"
mkdir -p "$work/run-pc"
"$work/consumer-pc" "$work/run-pc"

# 3. The README's programs, with the README's recipe:
#    PKG_CONFIG_PATH=<prefix>/lib/pkgconfig; c++ gw.cc $(pkg-config --cflags --libs jaiminho) -o gw
export PKG_CONFIG_PATH="$pcdir"
for program in $(bash .ci/readme programs "$work/readme"); do
  name=$(basename "$program" .cc)
  # shellcheck disable=SC2046
  c++ -Wall -Wextra -Werror "$program" $(pkg-config --cflags --libs jaiminho) -o "$work/readme/$name"
  mkdir -p "$work/readme/run-$name"
  (cd "$work/readme/run-$name" && "$work/readme/$name")
  echo "README $name: compiled against the install and ran (exit 0)"
done
