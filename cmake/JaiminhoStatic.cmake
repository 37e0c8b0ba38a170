# JAIMINHO_STATIC: a static build for gateways.
#
#   cmake -S . -B build-static -G Ninja -DCMAKE_BUILD_TYPE=Release -DJAIMINHO_STATIC=ON
#
# links the project's programs (jaiminho-demo, jaiminho-tool, the examples) and
# libjaiminho's users with every dependency Debian ships as a static archive:
# librocksdb.a and what it was built with (gflags, snappy, zlib, bz2, lz4, zstd),
# FlatBuffers, libstdc++ and libgcc (-static-libstdc++ -static-libgcc), and
# OpenSSL's libcrypto.a -- but only when no broker adapter is built: Debian ships
# libmosquitto only as a shared library that needs the shared libssl and
# libcrypto, and librdkafka.so likewise, and a process must not hold two
# libcryptos. So in a static build the adapters default to OFF; turning one on
# (the MQTT gateway recipe: -DJAIMINHO_WITH_MQTT=ON) keeps libcrypto shared,
# and ldd then shows libmosquitto, libssl and one libcrypto, nothing else of ours.
# JAIMINHO_STATIC_LIBC=ON adds -static (glibc too): a binary with no run-time
# dependency at all, for core-only gateways (no adapter: glibc's name lookup
# is not usable from a static binary).

if(JAIMINHO_STATIC_LIBC AND NOT JAIMINHO_STATIC)
  message(FATAL_ERROR "JAIMINHO_STATIC_LIBC needs JAIMINHO_STATIC=ON")
endif()

if(JAIMINHO_STATIC)
  # The adapters' default; an explicit -DJAIMINHO_WITH_*=ON still wins.
  if(NOT DEFINED JAIMINHO_WITH_MQTT)
    set(JAIMINHO_WITH_MQTT OFF CACHE BOOL "Build the MQTT publisher (jaiminho::mqtt, needs libmosquitto)")
  endif()
  if(NOT DEFINED JAIMINHO_WITH_KAFKA)
    set(JAIMINHO_WITH_KAFKA OFF CACHE BOOL "Build the Kafka publisher (jaiminho::kafka, needs librdkafka)")
  endif()
  if(JAIMINHO_STATIC_LIBC AND (JAIMINHO_WITH_MQTT OR JAIMINHO_WITH_KAFKA))
    message(FATAL_ERROR "JAIMINHO_STATIC_LIBC: the broker adapters need shared libraries "
                        "(libmosquitto, librdkafka); turn them off or JAIMINHO_STATIC_LIBC off")
  endif()
  if(NOT JAIMINHO_WITH_MQTT AND NOT JAIMINHO_WITH_KAFKA)
    set(OPENSSL_USE_STATIC_LIBS TRUE)
    set(JAIMINHO_STATIC_OPENSSL ON)
  else()
    set(JAIMINHO_STATIC_OPENSSL OFF)
  endif()
  # Given to every program that links jaiminho (the project's and, through the
  # installed package, the user's).
  if(JAIMINHO_STATIC_LIBC)
    set(JAIMINHO_STATIC_LINK_OPTIONS -static)
  else()
    set(JAIMINHO_STATIC_LINK_OPTIONS -static-libstdc++ -static-libgcc)
  endif()
  message(STATUS "jaiminho static build: libcrypto ${JAIMINHO_STATIC_OPENSSL}, glibc ${JAIMINHO_STATIC_LIBC}")
endif()

# Called after find_package(RocksDB) and find_package(OpenSSL): Debian's
# RocksDBTargets.cmake names the shared gflags and bz2 (and the others through
# targets that resolve to .so); a static build names the archives instead.
macro(jaiminho_static_dependencies)
  if(JAIMINHO_STATIC)
    set_target_properties(RocksDB::rocksdb PROPERTIES INTERFACE_LINK_LIBRARIES
      "-l:libgflags.a;-l:libsnappy.a;-l:libz.a;-l:libbz2.a;-l:liblz4.a;-l:libzstd.a;Threads::Threads")
  endif()
endmacro()
