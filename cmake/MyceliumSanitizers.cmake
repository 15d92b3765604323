# One sanitizer build at a time: -DMYCELIUM_SANITIZE=thread or =address (with UBSan).
# MYC_SANITIZE_THREAD / MYC_SANITIZE_ADDRESS tell the code which one: gcc defines
# __SANITIZE_ADDRESS__, but clang 14 (the ASan and fuzz builds) defines neither macro.
if(MYCELIUM_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -g -O1)
  add_link_options(-fsanitize=thread)
  add_compile_definitions(MYC_SANITIZE_THREAD=1)
elseif(MYCELIUM_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1)
  add_link_options(-fsanitize=address,undefined)
  add_compile_definitions(MYC_SANITIZE_ADDRESS=1)
elseif(NOT MYCELIUM_SANITIZE STREQUAL "")
  message(FATAL_ERROR "MYCELIUM_SANITIZE must be '', 'thread' or 'address', not '${MYCELIUM_SANITIZE}'")
endif()
