# Warnings for the project's own code. Generated and third-party headers are
# included as SYSTEM so these flags apply only to what we write.
function(jaiminho_set_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Woverloaded-virtual -Wimplicit-fallthrough)
  # g++ 12 at -O3 (Release) reports -Wrestrict inside libstdc++'s
  # operator+(const char*, std::string&&) for every `"k" + std::to_string(i)`:
  # a known g++ 12 false positive (the warning sees a memcpy that the size
  # checks before it rule out). Off for g++ 12 only.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  # Clang checks the thread-safety annotations (src/util/thread_annotations.h):
  # GUARDED_BY fields touched without their mutex, REQUIRES not met.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  if(JAIMINHO_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
