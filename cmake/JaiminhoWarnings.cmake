# Warnings for the project's own code. Generated and third-party headers are
# included as SYSTEM so these flags apply only to what we write.
function(jaiminho_set_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Woverloaded-virtual -Wimplicit-fallthrough)
  if(JAIMINHO_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
