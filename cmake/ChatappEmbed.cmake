# chatapp_embed(<output.c> SYMBOL <name> BASE <dir> FILES <file>...)
# Generates <output.c> defining `const ca_embedded <name>[]` from the files,
# regenerated whenever one of them changes.
function(chatapp_embed output)
  cmake_parse_arguments(E "" "SYMBOL;BASE" "FILES" ${ARGN})
  string(REPLACE ";" "|" files_arg "${E_FILES}")
  add_custom_command(
    OUTPUT "${output}"
    COMMAND ${CMAKE_COMMAND} -DOUTPUT=${output} -DSYMBOL=${E_SYMBOL}
            -DBASE=${E_BASE} "-DFILES=${files_arg}"
            -P ${PROJECT_SOURCE_DIR}/cmake/embed-files.cmake
    DEPENDS ${E_FILES} ${PROJECT_SOURCE_DIR}/cmake/embed-files.cmake
    COMMENT "Embedding ${E_SYMBOL}"
    VERBATIM)
endfunction()
