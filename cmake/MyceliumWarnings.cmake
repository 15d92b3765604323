# Warnings for our own targets only; third-party headers come in as SYSTEM includes.
function(mycelium_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor)
  if(MYCELIUM_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
