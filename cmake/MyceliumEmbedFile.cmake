# mycelium_embed_file(<target> <input> <symbol>): compiles the bytes of <input> into
# <target> as `extern const std::string_view <symbol>;` (namespace mycelium::embedded_files).
# Used for the bundled demo contracts and the Python support code, so the binary works
# from any folder.
function(mycelium_embed_file target input symbol)
  set(output ${CMAKE_CURRENT_BINARY_DIR}/embedded_files/${symbol}.cpp)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${input} -DOUTPUT=${output} -DSYMBOL=${symbol}
            -P ${PROJECT_SOURCE_DIR}/cmake/MyceliumEmbedFileScript.cmake
    DEPENDS ${input} ${PROJECT_SOURCE_DIR}/cmake/MyceliumEmbedFileScript.cmake
    COMMENT "Embedding ${input}")
  target_sources(${target} PRIVATE ${output})
endfunction()
