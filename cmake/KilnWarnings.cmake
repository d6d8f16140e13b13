# Warnings as errors and sanitizers, applied to kiln's own targets only (never pushed onto
# consumers through the exported target).
function(kiln_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  if(KILN_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${KILN_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${KILN_SANITIZE})
  endif()
endfunction()
