# Install rules, the CMake package and the pkg-config files.
#
#   cmake --install build --prefix /opt/jaiminho
#
# installs:
#   include/jaiminho/*.h, include/jaiminho/adapters/*.h (for the adapters built)
#   lib/libjaiminho.a, lib/libjaiminho_adapter_common.a, lib/libjaiminho_{mqtt,kafka,metrics_http}.a
#   bin/jaiminho-tool (when built), with its man page (share/man/man1, when
#                         help2man is installed), bash completion
#                         (share/bash-completion/completions), the systemd unit
#                         jaiminho-relay@.service (lib/systemd/system) and its
#                         user (lib/sysusers.d/jaiminho.conf)
#   lib/cmake/jaiminho/   find_package(jaiminho CONFIG [COMPONENTS mqtt kafka metrics_http])
#                         -> jaiminho::jaiminho, jaiminho::mqtt, jaiminho::kafka, jaiminho::metrics_http
#   lib/pkgconfig/        jaiminho.pc, jaiminho-mqtt.pc, jaiminho-kafka.pc, jaiminho-metrics_http.pc
#
# Every library is static. The package finds the dependencies the libraries
# were linked with (find_dependency), derived from the targets' link lists so
# that a new dependency of the core cannot be forgotten here.

option(JAIMINHO_INSTALL "Generate the install rules" ${PROJECT_IS_TOP_LEVEL})
if(NOT JAIMINHO_INSTALL)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(JAIMINHO_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/jaiminho" CACHE STRING
    "Where the CMake package files go, relative to the prefix")
set(JAIMINHO_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
    "Where the pkg-config files go, relative to the prefix")

# ---------------------------------------------------------------------------
# What each linked target needs: a find_dependency() line for the package
# config, and linker flags for pkg-config (static linking, in dependency
# order). Header-only targets need no flags.
function(_jaiminho_dependency lib out_find out_libs)
  set(find "")
  set(libs "")
  if(lib MATCHES "^RocksDB::" AND JAIMINHO_STATIC)
    # The archives, as cmake/JaiminhoStatic.cmake links them (JAIMINHO_STATIC_CONFIG).
    set(find "find_dependency(RocksDB CONFIG)")
    set(libs "-l:librocksdb.a -l:libgflags.a -l:libsnappy.a -l:libz.a -l:libbz2.a -l:liblz4.a -l:libzstd.a")
  elseif(lib MATCHES "^RocksDB::")
    set(find "find_dependency(RocksDB CONFIG)")
    # Debian's librocksdb.a and what it was built with (RocksDBTargets.cmake).
    set(libs "-l:librocksdb.a -lgflags -lsnappy -lz -lbz2 -llz4 -lzstd")
  elseif(lib MATCHES "^tl::")
    set(find "find_dependency(tl-expected CONFIG)")
  elseif(lib MATCHES "^Threads::")
    set(find "find_dependency(Threads)")
    set(libs "-pthread")
  elseif(lib MATCHES "^fmt::")
    set(find "find_dependency(fmt CONFIG)")
  elseif(lib MATCHES "^flatbuffers::")
    set(find "find_dependency(FlatBuffers CONFIG)")
    set(libs "-l:libflatbuffers.a")
  elseif(lib MATCHES "^OpenSSL::" AND JAIMINHO_STATIC_OPENSSL)
    set(find "set(OPENSSL_USE_STATIC_LIBS TRUE)\nfind_dependency(OpenSSL COMPONENTS Crypto)")
    set(libs "-l:libcrypto.a -ldl")
  elseif(lib MATCHES "^OpenSSL::")
    set(find "find_dependency(OpenSSL COMPONENTS Crypto)")
    set(libs "-lcrypto")
  elseif(lib MATCHES "^(jaiminho|PkgConfig)::" OR lib MATCHES "^jaiminho")
    # Ours, or an adapter's pkg-config module (handled per component).
  elseif(lib MATCHES "::")
    message(FATAL_ERROR "cmake/JaiminhoInstall.cmake: jaiminho links ${lib}; "
                        "add its find_dependency() and pkg-config flags to _jaiminho_dependency()")
  endif()
  set(${out_find} "${find}" PARENT_SCOPE)
  set(${out_libs} "${libs}" PARENT_SCOPE)
endfunction()

get_target_property(_jm_public jaiminho INTERFACE_LINK_LIBRARIES)
get_target_property(_jm_all jaiminho LINK_LIBRARIES)
set(_jm_find_dependencies "")
set(_jm_pc_libs "")
foreach(_lib IN LISTS _jm_public _jm_all)
  string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" _lib "${_lib}")
  if(NOT _lib OR _lib MATCHES "NOTFOUND")
    continue()
  endif()
  _jaiminho_dependency("${_lib}" _find _libs)
  if(_find AND NOT _find IN_LIST _jm_find_dependencies)
    list(APPEND _jm_find_dependencies "${_find}")
  endif()
  if(_libs)
    string(FIND " ${_jm_pc_libs} " " ${_libs} " _seen)
    if(_seen EQUAL -1)
      string(APPEND _jm_pc_libs " ${_libs}")
    endif()
  endif()
endforeach()
list(JOIN _jm_find_dependencies "\n" JAIMINHO_FIND_DEPENDENCIES)
# pkg-config: the headers need C++20 (Cflags), and a static build's link options.
list(JOIN JAIMINHO_STATIC_LINK_OPTIONS " " JAIMINHO_STATIC_LINK_OPTIONS_PC)
set(JAIMINHO_STATIC_CONFIG "")
if(JAIMINHO_STATIC)
  get_target_property(_jm_static RocksDB::rocksdb INTERFACE_LINK_LIBRARIES)
  set(JAIMINHO_STATIC_CONFIG "# Built with JAIMINHO_STATIC: RocksDB's dependencies as static archives.
set_target_properties(RocksDB::rocksdb PROPERTIES INTERFACE_LINK_LIBRARIES \"${_jm_static}\")")
endif()
string(STRIP "${_jm_pc_libs}" JAIMINHO_PC_LIBS)

# The pkg-config files find the prefix from their own location (relocatable,
# like the CMake package): ${pcfiledir}/<back to the prefix>.
file(RELATIVE_PATH _jm_pc_to_prefix "/prefix/${JAIMINHO_INSTALL_PKGCONFIGDIR}" "/prefix")
set(_jm_pc_prefix "\${pcfiledir}/${_jm_pc_to_prefix}")

# ---------------------------------------------------------------------------
# Headers. Adapter headers only for the adapters built.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/jaiminho"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.h"
        PATTERN "adapters" EXCLUDE)

# The core (and the adapters' shared part) in one export set.
set(_jm_core_targets jaiminho)
if(TARGET jaiminho_adapter_common)
  list(APPEND _jm_core_targets jaiminho_adapter_common)
  install(FILES "${PROJECT_SOURCE_DIR}/include/jaiminho/adapters/topic.h"
          DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/jaiminho/adapters")
endif()
install(TARGETS ${_jm_core_targets} EXPORT jaiminho-targets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT jaiminho-targets NAMESPACE jaiminho:: DESTINATION "${JAIMINHO_INSTALL_CMAKEDIR}")

# One export set and one pkg-config file per adapter (a component).
set(JAIMINHO_COMPONENTS "")
foreach(_comp mqtt kafka)
  if(NOT TARGET jaiminho_${_comp})
    continue()
  endif()
  list(APPEND JAIMINHO_COMPONENTS ${_comp})
  set(_comp_headers "${PROJECT_SOURCE_DIR}/include/jaiminho/adapters/${_comp}.h")
  if(_comp STREQUAL "mqtt")
    list(APPEND _comp_headers "${PROJECT_SOURCE_DIR}/include/jaiminho/adapters/mqtt_consumer.h")
  elseif(_comp STREQUAL "kafka")
    list(APPEND _comp_headers "${PROJECT_SOURCE_DIR}/include/jaiminho/adapters/kafka_consumer.h")
  endif()
  install(FILES ${_comp_headers} DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/jaiminho/adapters")
  install(TARGETS jaiminho_${_comp} EXPORT jaiminho-${_comp}-targets
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  install(EXPORT jaiminho-${_comp}-targets NAMESPACE jaiminho:: DESTINATION "${JAIMINHO_INSTALL_CMAKEDIR}")
  if(_comp STREQUAL "mqtt")
    set(_pc_module libmosquitto)
    set(_pc_description "MQTT publisher and consumer for jaiminho (libmosquitto)")
  else()
    set(_pc_module rdkafka)
    set(_pc_description "Kafka publisher and consumer for jaiminho (librdkafka)")
  endif()
  file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/pkgconfig/jaiminho-${_comp}.pc" CONTENT
"prefix=${_jm_pc_prefix}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: jaiminho-${_comp}
Description: ${_pc_description}
Version: ${PROJECT_VERSION}
Requires: jaiminho = ${PROJECT_VERSION}, ${_pc_module}
Libs: -L\${libdir} -ljaiminho_${_comp} -ljaiminho_adapter_common
")
  install(FILES "${PROJECT_BINARY_DIR}/pkgconfig/jaiminho-${_comp}.pc" DESTINATION "${JAIMINHO_INSTALL_PKGCONFIGDIR}")
endforeach()

# The metrics HTTP server: a component too. civetweb has no pkg-config module
# (and Debian's CMake config of it fails): its library is linked by path.
if(TARGET jaiminho_metrics_http)
  list(APPEND JAIMINHO_COMPONENTS metrics_http)
  install(FILES "${PROJECT_SOURCE_DIR}/include/jaiminho/adapters/metrics_server.h"
          DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/jaiminho/adapters")
  install(TARGETS jaiminho_metrics_http EXPORT jaiminho-metrics_http-targets
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  install(EXPORT jaiminho-metrics_http-targets NAMESPACE jaiminho:: DESTINATION "${JAIMINHO_INSTALL_CMAKEDIR}")
  file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/pkgconfig/jaiminho-metrics_http.pc" CONTENT
"prefix=${_jm_pc_prefix}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: jaiminho-metrics_http
Description: Prometheus /metrics and /healthz endpoint for jaiminho (civetweb)
Version: ${PROJECT_VERSION}
Requires: jaiminho = ${PROJECT_VERSION}
Libs: -L\${libdir} -ljaiminho_metrics_http -lcivetweb
")
  install(FILES "${PROJECT_BINARY_DIR}/pkgconfig/jaiminho-metrics_http.pc"
          DESTINATION "${JAIMINHO_INSTALL_PKGCONFIGDIR}")
endif()

set(JAIMINHO_INSTALL_SYSTEMDDIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit jaiminho-relay@.service goes, relative to the prefix")
set(JAIMINHO_INSTALL_SYSUSERSDIR "lib/sysusers.d" CACHE STRING
    "Where the sysusers.d file of the unit's user goes, relative to the prefix")
set(JAIMINHO_INSTALL_BASHCOMPLETIONDIR "${CMAKE_INSTALL_DATADIR}/bash-completion/completions" CACHE STRING
    "Where jaiminho-tool's bash completion goes, relative to the prefix")
if(TARGET jaiminho-tool)
  install(TARGETS jaiminho-tool RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
  # The unit names the installed tool: written at install time, so that
  # `cmake --install --prefix P` names P's tool.
  set(_jm_unit_dir "${PROJECT_BINARY_DIR}/systemd")
  install(CODE "
    set(JAIMINHO_TOOL_PATH \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/jaiminho-tool\")
    configure_file(\"${PROJECT_SOURCE_DIR}/tools/systemd/jaiminho-relay@.service.in\"
                   \"${_jm_unit_dir}/jaiminho-relay@.service\" @ONLY)")
  install(FILES "${_jm_unit_dir}/jaiminho-relay@.service" DESTINATION "${JAIMINHO_INSTALL_SYSTEMDDIR}")
  install(FILES "${PROJECT_SOURCE_DIR}/tools/systemd/jaiminho.sysusers" DESTINATION "${JAIMINHO_INSTALL_SYSUSERSDIR}"
          RENAME jaiminho.conf)
  install(FILES "${PROJECT_SOURCE_DIR}/tools/completion/jaiminho-tool.bash"
          DESTINATION "${JAIMINHO_INSTALL_BASHCOMPLETIONDIR}" RENAME jaiminho-tool)
  if(TARGET jaiminho-tool-man)
    install(FILES "${PROJECT_BINARY_DIR}/tools/jaiminho-tool.1" DESTINATION "${CMAKE_INSTALL_MANDIR}/man1")
  endif()
endif()

# ---------------------------------------------------------------------------
# The CMake package.
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/jaiminho-config.cmake.in"
                              "${PROJECT_BINARY_DIR}/cmake/jaiminho-config.cmake"
                              INSTALL_DESTINATION "${JAIMINHO_INSTALL_CMAKEDIR}")
# The library's API is not stable before 1.0: 0.x versions only match exactly
# their minor version.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/cmake/jaiminho-config-version.cmake"
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/cmake/jaiminho-config.cmake"
              "${PROJECT_BINARY_DIR}/cmake/jaiminho-config-version.cmake"
        DESTINATION "${JAIMINHO_INSTALL_CMAKEDIR}")

# pkg-config for the core. For static linking everything is in Libs.
file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/pkgconfig/jaiminho.pc" CONTENT
"prefix=${_jm_pc_prefix}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: jaiminho
Description: Transactional outbox on an embedded RocksDB database (static library)
Version: ${PROJECT_VERSION}
Cflags: -std=c++20 -I\${includedir}
Libs: -L\${libdir} -ljaiminho ${JAIMINHO_PC_LIBS} ${JAIMINHO_STATIC_LINK_OPTIONS_PC}
")
install(FILES "${PROJECT_BINARY_DIR}/pkgconfig/jaiminho.pc" DESTINATION "${JAIMINHO_INSTALL_PKGCONFIGDIR}")
